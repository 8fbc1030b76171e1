"""Invariances and conservation laws of the simulator, checked with hypothesis.

The normalised peak list must not change (same number of peaks, 2theta and I/I_max within 1e-6)
under a shift of the origin, a permutation of the atoms, a supercell, or another choice of basis
vectors of the same lattice. Patterns are non-negative with maximum 1, and the smeared profile of
peaks well inside the grid keeps the integrated intensity (area-normalised Gaussians).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from synthxrd import simulate
from synthxrd.simulate import physics
from synthxrd.structure import Crystal

TOL = 1e-6
SETTINGS = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

lengths = st.floats(3.0, 9.0, allow_nan=False)
angles = st.floats(65.0, 115.0, allow_nan=False)
unit = st.floats(0.0, 1.0, allow_nan=False, exclude_max=True)


def lattice_matrix(a, b, c, alpha, beta, gamma) -> np.ndarray | None:
    """Rows a, b, c (Angstrom) from cell parameters; None if the angles give no (or a flat) cell."""
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    v2 = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
    if v2 < 0.1:
        return None
    cx = cb
    cy = (ca - cb * cg) / sg
    cz = math.sqrt(v2) / sg
    return np.array([[a, 0, 0], [b * cg, b * sg, 0], [c * cx, c * cy, c * cz]])


@st.composite
def crystals(draw, max_atoms: int = 5) -> Crystal:
    lat = lattice_matrix(draw(lengths), draw(lengths), draw(lengths), draw(angles), draw(angles), draw(angles))
    assume(lat is not None)
    n = draw(st.integers(1, max_atoms))
    numbers = draw(st.lists(st.integers(1, 98), min_size=n, max_size=n))
    occupancies = draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n))
    frac = draw(st.lists(st.tuples(unit, unit, unit), min_size=n, max_size=n))
    return Crystal(lat, np.array(frac, np.float64), np.array(numbers, np.int64), np.array(occupancies, np.float64))


def peaks_of(crystal: Crystal, two_theta_range=(5.0, 90.0)):
    return simulate.peaks(crystal, two_theta_range=two_theta_range)


def assert_same_peaks(a, b, *, extra_reflections: bool = False) -> None:
    """Same number of peaks, 2theta and I/I_max within TOL.

    ``extra_reflections``: ``b`` is a supercell, whose reciprocal lattice has extra points that are
    systematically absent (|F|^2 ~ 1e-30). Like pymatgen, a peak is reported at the 2theta of the
    first reflection of its 1e-5 degree bin, and an absent reflection can come first: then the
    position may move by up to one bin (TWO_THETA_TOL), although the intensities agree. Such
    coincidences are rare; at most 1 % of the peaks may move, and none by more than a bin.
    """
    (tt_a, i_a), (tt_b, i_b) = a, b
    assert len(tt_a) == len(tt_b), f"{len(tt_a)} vs {len(tt_b)} peaks"
    np.testing.assert_allclose(i_a, i_b, rtol=0, atol=TOL)
    if not extra_reflections:
        np.testing.assert_allclose(tt_a, tt_b, rtol=0, atol=TOL)
        return
    moved = np.abs(tt_a - tt_b) > TOL
    np.testing.assert_allclose(tt_a, tt_b, rtol=0, atol=physics.TWO_THETA_TOL)
    assert moved.sum() <= max(1, 0.01 * len(tt_a)), f"{moved.sum()} of {len(tt_a)} peaks moved"


def with_(crystal: Crystal, **changes) -> Crystal:
    fields = {k: getattr(crystal, k) for k in ("lattice", "frac_coords", "numbers", "occupancies")}
    fields.update(changes)
    return Crystal(**fields)


@SETTINGS
@given(crystal=crystals(), shift=st.tuples(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0)),
       wrap=st.booleans())
def test_origin_shift_invariance(crystal, shift, wrap):
    frac = crystal.frac_coords + np.array(shift)
    shifted = with_(crystal, frac_coords=np.mod(frac, 1.0) if wrap else frac)
    reference = peaks_of(crystal)
    assume(len(reference[0]) > 0)
    assert_same_peaks(reference, peaks_of(shifted))


@SETTINGS
@given(crystal=crystals(max_atoms=8), data=st.data())
def test_atom_permutation_invariance(crystal, data):
    perm = np.array(data.draw(st.permutations(range(len(crystal.numbers)))), np.int64)
    permuted = with_(crystal, frac_coords=crystal.frac_coords[perm], numbers=crystal.numbers[perm],
                     occupancies=crystal.occupancies[perm])
    assert_same_peaks(peaks_of(crystal), peaks_of(permuted))


def supercell(crystal: Crystal, matrix: np.ndarray) -> Crystal:
    """Supercell with lattice M A (integer M, det > 0): every atom repeated over the det(M) cells."""
    matrix = np.asarray(matrix)
    det = round(abs(np.linalg.det(matrix)))
    inv = np.linalg.inv(matrix)
    # lattice translations inside the supercell: t M^-1 in [0, 1)^3 for integer t in a big enough box
    span = int(np.abs(matrix).sum(axis=0).max())
    grid = np.array(np.meshgrid(*[np.arange(-span, span + 1)] * 3, indexing="ij")).reshape(3, -1).T
    cand = grid @ inv
    inside = np.all((cand > -1e-9) & (cand < 1 - 1e-9), axis=1)
    shifts = cand[inside]
    assert len(shifts) == det
    frac = ((crystal.frac_coords @ inv)[:, None, :] + shifts[None, :, :]).reshape(-1, 3)
    return Crystal(matrix @ crystal.lattice, frac, np.repeat(crystal.numbers, det), np.repeat(crystal.occupancies, det))


@SETTINGS
@given(crystal=crystals(max_atoms=4),
       matrix=st.sampled_from([np.diag([2, 1, 1]), np.diag([1, 1, 2]), np.diag([1, 2, 2]), np.diag([1, 3, 1]),
                               np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 1]])]))
def test_supercell_invariance(crystal, matrix):
    big = supercell(crystal, matrix)
    assert len(big.numbers) == len(crystal.numbers) * round(abs(np.linalg.det(matrix)))
    assert_same_peaks(peaks_of(crystal), peaks_of(big), extra_reflections=True)


def test_supercell_with_pymatgen_make_supercell():
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 101), ["Fe", "O", {"Ni": 0.3, "Co": 0.5}],
                  [[0, 0, 0], [0.3, 0.1, 0.7], [0.6, 0.55, 0.2]])
    big = s.copy()
    big.make_supercell([2, 1, 1])
    assert len(big) == 2 * len(s)
    assert_same_peaks(simulate.peaks(s), simulate.peaks(big), extra_reflections=True)


@SETTINGS
@given(crystal=crystals(max_atoms=4),
       basis=st.sampled_from([np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]]), np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]),
                              np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]])]))
def test_change_of_basis_invariance(crystal, basis):
    """Same lattice, other basis vectors (unimodular M): the powder pattern cannot change."""
    assert_same_peaks(peaks_of(crystal), peaks_of(supercell(crystal, basis)))


@SETTINGS
@given(crystal=crystals(), size=st.floats(5.0, 200.0), wavelength=st.sampled_from(["CuKa1", "MoKa1", "CoKa1", 1.5406]))
def test_pattern_is_normalised(crystal, size, wavelength):
    assume(len(simulate.peaks(crystal, wavelength, (1.0, 100.0))[0]) > 0)
    pattern = simulate.pattern(crystal, crystallite_size_nm=size, wavelength=wavelength)
    assert pattern.dtype == np.float32 and pattern.shape == (8501,)
    assert pattern.max() == 1.0
    assert pattern.min() >= 0.0
    assert np.all(np.isfinite(pattern))


@SETTINGS
@given(
    peaks=st.lists(st.tuples(st.floats(15.0, 75.0), st.floats(1e-3, 1.0)), min_size=1, max_size=30),
    size=st.floats(20.0, 100.0),
    wavelength=st.sampled_from([1.5406, 0.7093, 1.78896, 2.2897]),
)
def test_smear_conserves_area(peaks, size, wavelength):
    two_theta = np.array([p[0] for p in peaks])
    intensity = np.array([p[1] for p in peaks])
    grid = simulate.Grid()
    profile = simulate.smear(two_theta, intensity, size, wavelength=wavelength, grid=grid)
    assert np.all(profile >= 0)
    assert profile.sum() * grid.step == pytest.approx(intensity.sum(), rel=1e-6)
