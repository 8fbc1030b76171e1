"""numba kernels against their numpy oracles in ``synthxrd.simulate.physics``.

* ``_kernels.reflections``: the same set of (h, k, l) as the brute-force box of
  ``physics.enumerate_hkl``, the same |g| and the intensities of ``physics.reflection_intensities``;
* ``_kernels.merged_peaks``: the merging of ``physics.merge_peaks`` (pymatgen's rule);
* ``smear`` (windowed +-7 sigma, recurrence) against the full-grid ``physics.gaussian_profile``,
  within 1e-6 of the maximum, including peaks just outside the grid;
* ``pattern`` against the oracle chain peak_list -> gaussian_profile -> normalise, tails of peaks
  outside 5-90 degrees included; ``patterns`` rows equal ``pattern``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from pymatgen.core import Lattice

from synthxrd import simulate
from synthxrd.simulate import _kernels, physics
from synthxrd.structure import Crystal, CrystalBatch, scattering_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROFILE_TOL = 1e-6  # fraction of the profile maximum
CU = 1.5406


def lattice(a, b, c, alpha=90.0, beta=90.0, gamma=90.0) -> np.ndarray:
    return np.asarray(Lattice.from_parameters(a, b, c, alpha, beta, gamma).matrix, np.float64)


LATTICES = {
    "cubic": lattice(5.64, 5.64, 5.64),
    "tetragonal": lattice(4.6, 4.6, 2.95),
    "orthorhombic-long": lattice(3.1, 4.7, 18.9),
    "hexagonal": lattice(3.2, 3.2, 5.2, 90, 90, 120),
    "monoclinic": lattice(7.3, 5.1, 9.8, 90, 107.5, 90),
    "triclinic": lattice(5.3, 6.9, 7.7, 81.0, 96.5, 112.0),
    "triclinic-acute": lattice(4.1, 4.4, 12.5, 62.0, 71.0, 58.0),
}


def random_crystal(rng: np.random.Generator, lat: np.ndarray, n_atoms: int = 6) -> Crystal:
    zs = rng.integers(1, 99, size=n_atoms)
    occ = rng.uniform(0.2, 1.0, size=n_atoms)
    occ[0] = 1.0
    frac = rng.uniform(0, 1, size=(n_atoms, 3))
    if n_atoms > 1:
        frac[1] = frac[0]  # two species sharing a site, like a disordered site
    return Crystal(lat, frac, zs.astype(np.int64), occ)


def kernel_reflections(crystal: Crystal, wavelength: float, g_min: float, g_max: float, dw: np.ndarray):
    _, a, b = scattering_table()
    return _kernels.reflections(crystal.lattice, crystal.frac_coords, crystal.numbers, crystal.occupancies,
                                a, b, dw, wavelength, g_min, g_max)


def oracle_intensities(crystal: Crystal, hkl, g, wavelength, dw):
    _, a, b = scattering_table()
    z = crystal.numbers
    return physics.reflection_intensities(hkl, g, crystal.frac_coords, z, crystal.occupancies, a[z], b[z], dw[z],
                                          wavelength)


# ----------------------------------------------------------------------------------------------
# reflections


@pytest.mark.parametrize("name", sorted(LATTICES))
@pytest.mark.parametrize(("wavelength", "window"), [(CU, (5.0, 90.0)), (0.7093, (0.0, 60.0)), (2.2897, (20.0, 160.0))])
def test_reflections_match_oracle(name, wavelength, window):
    rng = np.random.default_rng(zlib.crc32(f"{name}-{wavelength}".encode()))
    crystal = random_crystal(rng, LATTICES[name])
    dw = np.zeros(len(scattering_table()[1]))
    dw[crystal.numbers] = rng.uniform(0.0, 2.0, size=len(crystal.numbers))
    g_min, g_max = physics.g_range(window, wavelength)

    hkl, g, intensity = kernel_reflections(crystal, wavelength, g_min, g_max, dw)
    hkl_ref, g_ref = physics.enumerate_hkl(crystal.lattice, g_min, g_max)
    assert len(hkl) > 0
    assert {tuple(r) for r in hkl} == {tuple(r) for r in hkl_ref}
    assert len(hkl) == len(hkl_ref), "duplicate reflections"
    assert np.all(np.diff(g) >= 0), "kernel output is sorted by |g|"
    assert np.all((g >= g_min) & (g <= g_max))

    order = np.lexsort(hkl.T[::-1])
    order_ref = np.lexsort(hkl_ref.T[::-1])
    np.testing.assert_allclose(g[order], g_ref[order_ref], rtol=1e-12)
    ref = oracle_intensities(crystal, hkl_ref, g_ref, wavelength, dw)
    np.testing.assert_allclose(intensity[order], ref[order_ref], rtol=0, atol=1e-10 * ref.max())


def test_reflections_empty_window():
    crystal = random_crystal(np.random.default_rng(1), LATTICES["cubic"])
    hkl, g, intensity = kernel_reflections(crystal, CU, 0.0, 0.05, np.zeros(len(scattering_table()[1])))
    assert hkl.shape == (0, 3) and g.shape == (0,) and intensity.shape == (0,)


def test_systematic_absences_are_dropped():
    """Fm-3m: only unmixed hkl survive; the absent ones leave only numerical noise, dropped by merging."""
    from pymatgen.core import Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    hkl = simulate.peak_list(nacl, two_theta_range=(5, 150)).hkl
    parity = np.abs(hkl) % 2
    assert np.all((parity == parity[:, :1]).all(axis=1))


# ----------------------------------------------------------------------------------------------
# merging


@pytest.mark.parametrize("name", sorted(LATTICES))
def test_merge_matches_oracle(name):
    rng = np.random.default_rng(7)
    crystal = random_crystal(rng, LATTICES[name], n_atoms=3)
    dw = np.zeros(len(scattering_table()[1]))
    g_min, g_max = physics.g_range((5.0, 120.0), CU)
    hkl, g, intensity = kernel_reflections(crystal, CU, g_min, g_max, dw)

    tt_ref, i_ref, d_ref, _ = physics.merge_peaks(hkl, g, intensity, CU)
    tt, i = _kernels.merged_peaks(g, intensity, CU, physics.TWO_THETA_TOL, physics.SCALED_INTENSITY_TOL)
    assert len(tt) == len(tt_ref)
    np.testing.assert_allclose(tt, tt_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(i / i.max(), i_ref, rtol=0, atol=1e-12)

    result = simulate.peak_list(crystal, two_theta_range=(5.0, 120.0))
    np.testing.assert_allclose(result.two_theta, tt_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.intensity, i_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.d, d_ref, rtol=1e-12)


def test_merge_rules_on_synthetic_reflections():
    """Within 1e-5 degrees: one peak at the first 2theta; <= 1e-5 of the maximum: dropped."""
    tt = np.array([20.0, 20.000001, 20.000002, 30.0, 40.0, 40.00004, 50.0])
    inten = np.array([1.0, 2.0, 3.0, 100.0, 0.5, 0.5, 100.0 * 0.9e-5])
    g = 2 * np.sin(np.radians(tt / 2)) / CU
    hkl = np.arange(3 * len(g)).reshape(-1, 3)
    tt_ref, i_ref, _, _ = physics.merge_peaks(hkl, g, inten, CU)
    tt_k, i_k = _kernels.merged_peaks(g, inten, CU, physics.TWO_THETA_TOL, physics.SCALED_INTENSITY_TOL)
    np.testing.assert_allclose(tt_ref, [20.0, 30.0, 40.0, 40.00004], atol=1e-9)
    np.testing.assert_allclose(i_ref, [0.06, 1.0, 0.005, 0.005], atol=1e-12)
    np.testing.assert_allclose(tt_k, tt_ref, atol=1e-12)
    np.testing.assert_allclose(i_k / i_k.max(), i_ref, atol=1e-12)


def _exact_half_tie(wavelength: float) -> tuple[float, int]:
    """A |g| whose 2theta / TWO_THETA_TOL is exactly k + 0.5 (k even) in floating point."""
    tol = physics.TWO_THETA_TOL
    for k in range(3_000_000, 3_002_000, 2):
        g = 2 * math.sin(math.radians((k + 0.5) * tol / 2)) / wavelength
        for _ in range(4):
            g = float(np.nextafter(g, 0.0))
        for _ in range(9):
            tt = math.degrees(2.0 * math.asin(wavelength * g / 2.0))
            if tt / tol == k + 0.5 and float(physics.two_theta_of_g(np.array([g]), wavelength)[0]) == tt:
                return g, k
            g = float(np.nextafter(g, 1.0))
    pytest.skip("no exact rounding tie found")


def test_merge_rounding_tie_like_pymatgen():
    g_tie, k = _exact_half_tie(CU)
    g_near = 2 * math.sin(math.radians((k + 0.2) * physics.TWO_THETA_TOL / 2)) / CU
    g = np.array([g_near, g_tie])
    inten = np.ones(2)
    tt_ref, _, _, _ = physics.merge_peaks(np.array([[1, 0, 0], [0, 1, 0]]), g, inten, CU)
    tt_k, _ = _kernels.merged_peaks(g, inten, CU, physics.TWO_THETA_TOL, physics.SCALED_INTENSITY_TOL)
    assert len(tt_ref) == 1  # np.round(k + 0.5) == k == np.round(k + 0.2): one peak, as in pymatgen
    assert len(tt_k) == len(tt_ref)


# ----------------------------------------------------------------------------------------------
# broadening


def random_peaks(rng: np.random.Generator, n: int, lo: float, hi: float):
    return np.sort(rng.uniform(lo, hi, size=n)), rng.uniform(0.01, 1.0, size=n)


@pytest.mark.parametrize("size_nm", [0.6, 3.0, 20.0, 57.3, 100.0, 400.0])
@pytest.mark.parametrize("wavelength", [CU, 0.7093, 2.2897])
def test_smear_matches_full_grid(size_nm, wavelength):
    rng = np.random.default_rng(int(size_nm * 10) + int(wavelength * 1000))
    two_theta, intensity = random_peaks(rng, 40, 5.0, 90.0)
    # peaks just outside the grid, on its edges, and far outside
    two_theta = np.concatenate([two_theta, [4.6, 4.95, 5.0, 90.0, 90.05, 90.4, 1.0, 120.0]])
    intensity = np.concatenate([intensity, [0.7, 0.3, 0.2, 0.4, 0.9, 0.5, 1.0, 1.0]])
    grid = simulate.Grid()
    fast = simulate.smear(two_theta, intensity, size_nm, wavelength=wavelength, grid=grid)
    full = physics.gaussian_profile(two_theta, intensity, size_nm, wavelength, grid.values(), simulate.SCHERRER_K)
    assert fast.dtype == np.float64 and fast.shape == (grid.n,)
    assert np.max(np.abs(fast - full)) <= PROFILE_TOL * full.max()


@pytest.mark.parametrize("grid", [simulate.Grid(10.0, 80.0, 3501), simulate.Grid(5.0, 90.0, 851),
                                  simulate.Grid(2.0, 150.0, 20001)])
def test_smear_matches_full_grid_on_other_grids(grid):
    rng = np.random.default_rng(grid.n)
    two_theta, intensity = random_peaks(rng, 60, grid.start - 2.0, min(grid.stop + 2.0, 170.0))
    for size_nm in (15.0, 80.0):
        fast = simulate.smear(two_theta, intensity, size_nm, grid=grid)
        full = physics.gaussian_profile(two_theta, intensity, size_nm, CU, grid.values(), simulate.SCHERRER_K)
        assert np.max(np.abs(fast - full)) <= PROFILE_TOL * full.max()


def oracle_pattern(structure, size_nm: float, *, wavelength=CU, grid=None, debye_waller=None) -> np.ndarray:
    """peak_list over a range wider than the grid by far more than 7 sigma, full-grid Gaussians, max 1."""
    grid = grid or simulate.Grid()
    lo, hi = max(grid.start - 15.0, 0.0), min(grid.stop + 20.0, 179.0)
    pl = simulate.peak_list(structure, wavelength=wavelength, two_theta_range=(lo, hi), debye_waller=debye_waller)
    profile = physics.gaussian_profile(pl.two_theta, pl.intensity, size_nm, simulate.resolve_wavelength(wavelength),
                                       grid.values(), simulate.SCHERRER_K)
    return profile / profile.max()


def edge_crystal() -> Crystal:
    """Orthorhombic cell with (100) at 4.5 degrees and (0 0 10) at 90.3 degrees 2theta (Cu Ka1)."""
    a = CU / (2 * math.sin(math.radians(4.5 / 2)))
    c = 10 * CU / (2 * math.sin(math.radians(90.3 / 2)))
    return Crystal(np.diag([a, 13.3, c]), np.array([[0.0, 0.0, 0.0]]), np.array([29], np.int64), np.ones(1))


def test_pattern_includes_tails_of_peaks_outside_the_grid():
    crystal = edge_crystal()
    inside = simulate.peak_list(crystal)
    assert inside.two_theta[0] > 5.0 and inside.two_theta[-1] < 90.0
    wide = simulate.peak_list(crystal, two_theta_range=(1.0, 100.0))
    assert np.isclose(wide.two_theta[0], 4.5) and np.any(np.isclose(wide.two_theta, 90.3))
    assert wide.intensity.argmax() == 0  # the strongest peak is the (100) just below 5 degrees

    pattern = simulate.pattern(crystal, crystallite_size_nm=20.0)
    expected = oracle_pattern(crystal, 20.0)
    assert pattern.dtype == np.float32 and pattern.shape == (8501,)
    assert np.max(np.abs(pattern - expected)) <= PROFILE_TOL
    # the tails are really there: without the outside peaks the first points would differ a lot
    without = simulate.smear(inside.two_theta, inside.intensity, 20.0)
    without /= without.max()
    assert pattern[0] > 0.01 and without[0] < 1e-6
    assert abs(pattern[-1] - without[-1]) > 5e-3


@pytest.mark.parametrize("size_nm", [20.0, 45.0, 100.0])
def test_pattern_matches_oracle(size_nm):
    rng = np.random.default_rng(int(size_nm))
    for name in ("cubic", "monoclinic", "triclinic", "orthorhombic-long"):
        crystal = random_crystal(rng, LATTICES[name], n_atoms=4)
        pattern = simulate.pattern(crystal, crystallite_size_nm=size_nm)
        assert np.max(np.abs(pattern - oracle_pattern(crystal, size_nm))) <= PROFILE_TOL, name


def test_pattern_matches_oracle_other_settings():
    rng = np.random.default_rng(3)
    crystal = random_crystal(rng, LATTICES["hexagonal"], n_atoms=4)
    symbol = {z: s for s, z in scattering_table()[0].items() if s != "D"}
    dw = {symbol[int(z)]: 1.5 for z in crystal.numbers}
    grid = simulate.Grid(10.0, 60.0, 5001)
    for wavelength in ("MoKa1", "CoKa1", 1.1):
        pattern = simulate.pattern(crystal, crystallite_size_nm=35.0, grid=grid, wavelength=wavelength,
                                   debye_waller=dw)
        expected = oracle_pattern(crystal, 35.0, wavelength=wavelength, grid=grid, debye_waller=dw)
        assert pattern.shape == (grid.n,)
        assert np.max(np.abs(pattern - expected)) <= PROFILE_TOL, wavelength


# ----------------------------------------------------------------------------------------------
# batches


@pytest.fixture(scope="module")
def crystals() -> list[Crystal]:
    rng = np.random.default_rng(11)
    cs = [random_crystal(rng, lat, n_atoms=int(rng.integers(1, 9))) for lat in LATTICES.values()]
    return [*cs, edge_crystal()]


def test_patterns_rows_equal_pattern(crystals):
    batch = CrystalBatch.from_crystals(crystals)
    sizes = np.linspace(20.0, 100.0, len(crystals))
    out = simulate.patterns(batch, crystallite_size_nm=sizes)
    assert out.dtype == np.float32 and out.shape == (len(crystals), 8501)
    assert np.all(out >= 0) and np.all(out.max(axis=1) == 1.0)
    for row, crystal, size in zip(out, crystals, sizes):
        single = simulate.pattern(crystal, crystallite_size_nm=size)
        assert single.dtype == np.float32 and single.shape == (8501,) and single.max() == 1.0
        np.testing.assert_allclose(row, single, rtol=0, atol=1e-6)


def test_patterns_with_one_size_grid_and_wavelength(crystals):
    batch = CrystalBatch.from_crystals(crystals)
    grid = simulate.Grid(10.0, 70.0, 3001)
    out = simulate.patterns(batch, crystallite_size_nm=33.0, grid=grid, wavelength="CuKa1")
    assert out.shape == (len(crystals), 3001)
    for row, crystal in zip(out, crystals):
        np.testing.assert_allclose(
            row, simulate.pattern(crystal, crystallite_size_nm=33.0, grid=grid, wavelength="CuKa1"), rtol=0, atol=1e-6)


def test_patterns_random_sizes_are_reproducible(crystals):
    batch = CrystalBatch.from_crystals(crystals)
    a = simulate.patterns(batch, rng=np.random.default_rng(5))
    b = simulate.patterns(batch, rng=np.random.default_rng(5))
    c = simulate.patterns(batch, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a.max(axis=1) == 1.0)
    single = simulate.pattern(crystals[0], rng=np.random.default_rng(5))
    assert single.max() == 1.0


def test_patterns_allow_empty(crystals):
    tiny = Crystal(np.eye(3) * 0.5, np.zeros((1, 3)), np.array([1], np.int64), np.ones(1))
    batch = CrystalBatch.from_crystals([crystals[0], tiny, crystals[1]])
    out = simulate.patterns(batch, crystallite_size_nm=50.0, allow_empty=True)
    assert np.all(out[1] == 0) and out[0].max() == 1.0 and out[2].max() == 1.0
    np.testing.assert_allclose(out[2], simulate.pattern(crystals[1], crystallite_size_nm=50.0), atol=1e-6)


def test_empty_batch():
    batch = CrystalBatch.from_crystals([])
    out = simulate.patterns(batch, crystallite_size_nm=50.0)
    assert out.shape == (0, 8501) and out.dtype == np.float32


def test_batch_form_factor_table_matches_exact_form_factors():
    """Batches of >= 16 crystals interpolate f(s^2) in a per-batch table: same patterns within 1e-6."""
    from synthxrd.simulate._kernels import _TABLE_MIN_BATCH
    from synthxrd.structure import Crystal, CrystalBatch

    rng = np.random.default_rng(11)
    heavy = [55, 56, 82, 92, 98, 1, 8, 26]  # incl. the element with the steepest fit (b = 156)
    crystals = []
    for i in range(_TABLE_MIN_BATCH + 4):
        n = int(rng.integers(2, 20))
        lattice = np.diag(rng.uniform(4, 11, 3)) + rng.uniform(-0.5, 0.5, (3, 3))
        crystals.append(Crystal(lattice, rng.random((n, 3)), rng.choice(heavy, n), rng.uniform(0.3, 1.0, n)))
    sizes = rng.uniform(20, 100, len(crystals))
    batch = CrystalBatch.from_crystals(crystals)
    table = simulate.patterns(batch, crystallite_size_nm=sizes)
    exact = np.stack([simulate.pattern(c, crystallite_size_nm=s) for c, s in zip(crystals, sizes)])  # no table
    assert np.abs(table - exact).max() < 1e-6


def test_scherrer_width_is_one_formula_for_numpy_numba_and_torch():
    from synthxrd.simulate._kernels import scherrer_fwhm_compiled
    from synthxrd.simulate.common import sigma_coefficient
    from synthxrd.simulate.physics import FWHM_TO_SIGMA, scherrer_fwhm

    # by hand: (180/pi) 0.9 x 1.5406 A / (100 A x cos 30 deg) = 0.91733 degrees
    assert scherrer_fwhm(1.5406, 10.0, math.cos(math.radians(30.0))) == pytest.approx(0.917327, abs=1e-6)
    assert scherrer_fwhm_compiled(1.5406, 10.0, 0.5, 0.9) == pytest.approx(scherrer_fwhm(1.5406, 10.0, 0.5), rel=1e-15)
    sizes = np.array([20.0, 55.0, 100.0])
    assert np.allclose(sigma_coefficient(1.5406, sizes), FWHM_TO_SIGMA * scherrer_fwhm(1.5406, sizes), rtol=1e-15)
    torch = pytest.importorskip("torch")
    assert np.allclose(sigma_coefficient(1.5406, torch.as_tensor(sizes)).numpy(), sigma_coefficient(1.5406, sizes))
