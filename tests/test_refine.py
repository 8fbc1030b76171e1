"""Whole-pattern refinement (synthxrd.refine) and the re-ranking of search-match candidates: real fits."""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd import refine as R
from synthxrd._cif import lattice_from_parameters, lattice_parameters
from synthxrd.simulate.physics import lorentz_polarization, reciprocal_metric
from synthxrd.structure import Crystal, to_crystal

EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))
MEASURED = Path(str(files("synthxrd") / "resources" / "measured"))
CU_KA1, CU_KA2 = 1.54056, 1.54439


def _crystal(name: str) -> Crystal:
    return to_crystal(str(EXAMPLES / f"{name}.cif"))


def _strained(crystal: Crystal, factors) -> Crystal:
    return Crystal(crystal.lattice @ np.diag(factors), crystal.frac_coords, crystal.numbers, crystal.occupancies)


def _measured_like(crystal: Crystal, *, zero: float, kalpha2: bool, texture=None, r: float = 1.0,
                   seed: int = 0, counts: float = 20000.0) -> tuple[np.ndarray, np.ndarray]:
    """A pattern written independently of the refinement's model code path: reflections of the
    (strained) crystal from the simulator, pseudo-Voigt peaks, Chebyshev-free background, Poisson noise."""
    from synthxrd.match.library import structure_reflections

    d, f2, hkl = structure_reflections(crystal, d_min=0.8, min_intensity=1e-4, max_peaks=None)
    tt = np.arange(10.0, 110.0, 0.02)
    y = np.zeros_like(tt)
    factor = np.ones(len(d))
    if texture is not None:
        g = reciprocal_metric(crystal.lattice)
        factor = R.march_dollase(hkl, g, R.lattice_symmetry(g), np.asarray(texture, float), r)
    lines = ((CU_KA1, 1.0), (CU_KA2, 0.5)) if kalpha2 else ((CU_KA1, 1.0),)
    for lam, ratio in lines:
        s = lam / (2 * d)
        ok = s < 1
        centre = np.degrees(2 * np.arcsin(s[ok])) + zero
        theta = np.radians(centre) / 2
        fwhm = 0.06 + 0.03 * np.tan(theta)
        for c, h, i in zip(centre, fwhm, ratio * f2[ok] * factor[ok] * lorentz_polarization(theta)):
            y += i * R.pseudo_voigt(tt - c, h, 0.4)
    y = y / y.max() * counts + 200 + 50 * np.cos(tt / 30)
    return tt, np.random.default_rng(seed).poisson(y).astype(float)


# --------------------------------------------------------------------------------------------------
# the metric and its symmetry


@pytest.mark.parametrize("cell, k", [
    ((5.43, 5.43, 5.43, 90, 90, 90), 1),       # cubic
    ((4.59, 4.59, 2.96, 90, 90, 90), 2),       # tetragonal
    ((3.25, 3.25, 5.21, 90, 90, 120), 2),      # hexagonal
    ((8.48, 5.40, 6.96, 90, 90, 90), 3),       # orthorhombic
    ((7.3, 7.5, 7.7, 90, 91.2, 90), 4),        # monoclinic
    ((5.1, 6.2, 7.3, 81, 85, 77), 6),          # triclinic
])
def test_strain_basis_has_the_crystal_systems_free_components(cell, k):
    g = reciprocal_metric(lattice_from_parameters(*cell))
    basis = R.strain_basis(g, R.lattice_symmetry(g))
    assert basis.shape == (k, 3, 3)


def test_a_primitive_cell_of_a_centred_lattice_keeps_its_symmetry():
    # fcc Si as its rhombohedral primitive cell (60 degrees): still one free component (cubic)
    a = 5.431
    prim = np.array([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    g = reciprocal_metric(prim)
    assert len(R.lattice_symmetry(g)) == 48
    assert R.strain_basis(g, R.lattice_symmetry(g)).shape[0] == 1
    # and the map back to the conventional cell is found
    m = R._conventional_map(g, np.array([a, a, a, 90, 90, 90]))
    assert m is not None
    assert R.lattice_parameters_of_metric(np.linalg.inv(m @ np.linalg.inv(g) @ m.T)) == pytest.approx(
        [a, a, a, 90, 90, 90], abs=1e-6)


def test_a_metric_that_is_no_cell_has_no_conventional_map_and_no_cell():
    """A reciprocal metric that is not positive definite (no real cell) gives no map and no refined cell,
    without NaN square roots."""
    bad = np.diag([0.1, 0.1, -0.01])
    with np.errstate(invalid="raise"):
        assert R._conventional_map(bad, np.array([3.0, 3.0, 10.0, 90, 90, 90])) is None
    phase = R.phase_from_reflections([3.0, 2.0], [1.0, 1.0], [[1, 0, 0], [1, 1, 0]], g_star=np.diag([1 / 9] * 3),
                                     conventional=np.array([3.0, 3.0, 3.0, 90, 90, 90]))
    assert phase.cell(np.zeros(phase.n_cell)) == pytest.approx([3, 3, 3, 90, 90, 90])
    assert phase.cell(np.full(phase.n_cell, 2.0)) is None  # G* + p B = -G*: no cell


def test_metric_from_reflections_reproduces_the_cell():
    cr = _crystal("WO3_monoclinic")
    from synthxrd.match.library import structure_reflections

    d, _, hkl = structure_reflections(cr)
    g = R.metric_from_reflections(d, hkl)
    assert g == pytest.approx(reciprocal_metric(cr.lattice), rel=1e-6)
    assert R.metric_from_reflections(d[:4], hkl[:4]) is None  # too few to determine six components


# --------------------------------------------------------------------------------------------------
# fits of simulated patterns


def test_anisotropic_strain_zero_shift_kalpha2_and_texture_are_recovered():
    rutile = _crystal("TiO2_rutile")
    truth = _strained(rutile, [0.995, 0.995, 1.03])
    tt, y = _measured_like(truth, zero=0.03, kalpha2=True, texture=[0, 0, 1], r=0.85)
    phase = R.phase_from_crystal(rutile, name="rutile", d_min=0.8)
    assert phase.n_cell == 2
    res = R.refine(tt, y, phase, wavelength="CuKa", preferred_orientation=[0, 0, 1])
    assert res.converged, res.message
    cell = res.phases[0].cell
    assert cell[:3] == pytest.approx(lattice_parameters(truth.lattice)[:3], rel=5e-4)
    assert cell[3:] == pytest.approx([90, 90, 90], abs=1e-6)
    assert res.zero_shift == pytest.approx(0.03, abs=0.005)
    assert res.phases[0].march_dollase == pytest.approx(0.85, abs=0.05)
    assert 0.8 < res.gof < 1.3  # Rwp near Rexp: the model is the truth up to noise
    assert np.all(res.phases[0].cell_esd[:3] > 0) and np.all(res.phases[0].cell_esd[:3] < 1e-3)
    # Caglioti widths (started from the w0 + w1 tan fit): the same cell and fit quality
    cag = R.refine(tt, y, phase, wavelength="CuKa", preferred_orientation=[0, 0, 1], caglioti=True)
    assert cag.converged and len(cag.fwhm) == 3, cag.message
    assert cag.phases[0].cell[:3] == pytest.approx(lattice_parameters(truth.lattice)[:3], rel=5e-4)
    assert cag.rwp == pytest.approx(res.rwp, rel=0.02)
    # without K-alpha2 in the model the fit is clearly worse
    single = R.refine(tt, y, phase, wavelength="CuKa1", preferred_orientation=[0, 0, 1])
    assert single.rwp > 1.5 * res.rwp


def test_isotropic_strain_of_a_cubic_phase_single_line():
    si = _crystal("Si")
    truth = _strained(si, [1.02] * 3)
    tt, y = _measured_like(truth, zero=-0.02, kalpha2=False, seed=3)
    res = R.refine(tt, y, R.phase_from_crystal(si, name="Si", d_min=0.8), wavelength=CU_KA1)
    assert res.converged, res.message
    assert res.phases[0].cell[:3] == pytest.approx([5.431 * 1.02] * 3, rel=5e-4)  # Si.cif: a = 5.431
    assert res.zero_shift == pytest.approx(-0.02, abs=0.005)
    assert res.gof < 1.3


def test_two_phases_are_refined_together():
    rutile, si = _crystal("TiO2_rutile"), _crystal("Si")
    truth_a, truth_b = _strained(rutile, [1.005, 1.005, 0.99]), _strained(si, [1.003] * 3)
    tt, ya = _measured_like(truth_a, zero=0.02, kalpha2=False, seed=1, counts=10000)
    _, yb = _measured_like(truth_b, zero=0.02, kalpha2=False, seed=2, counts=10000)
    res = R.refine(tt, ya + yb, [R.phase_from_crystal(rutile, name="rutile", d_min=0.8),
                                 R.phase_from_crystal(si, name="Si", d_min=0.8)], wavelength=CU_KA1)
    assert res.converged, res.message
    assert res.phases[0].cell[:3] == pytest.approx(lattice_parameters(truth_a.lattice)[:3], rel=5e-4)
    assert res.phases[1].cell[:3] == pytest.approx(lattice_parameters(truth_b.lattice)[:3], rel=5e-4)
    assert res.zero_shift == pytest.approx(0.02, abs=0.005) and res.gof < 1.3
    assert sum(p.weight for p in res.phases) == pytest.approx(1.0)


def test_le_bail_fit_of_a_cell_without_atoms():
    truth = _strained(_crystal("TiO2_rutile"), [1.01, 1.01, 0.99])
    tt, y = _measured_like(truth, zero=0.0, kalpha2=False, seed=5)
    start = lattice_parameters(_crystal("TiO2_rutile").lattice)
    phase = R.phase_from_cell(start, 136, d_min=0.9)
    res = R.refine(tt, y, phase, wavelength=CU_KA1, two_theta_range=(20, 100))
    assert res.converged, res.message
    assert res.phases[0].cell[:3] == pytest.approx(lattice_parameters(truth.lattice)[:3], rel=5e-4)
    # 100 is extinguished in P4_2/mnm (h0l: h + l odd absent; 100 is h00 with h odd)
    assert not any((h == [1, 0, 0]).all() for h in phase.hkl)


# --------------------------------------------------------------------------------------------------
# bad input


def test_bad_input_gives_one_line_errors_or_a_not_converged_flag():
    si = _crystal("Si")
    tt, y = _measured_like(_strained(si, [1.0] * 3), zero=0.0, kalpha2=False, seed=7)
    phase = R.phase_from_crystal(si, name="Si", d_min=0.8)
    bad = y.copy()
    bad[10] = np.nan
    with pytest.raises(R.RefineError, match="finite"):
        R.refine(tt, bad, phase)
    with pytest.raises(R.RefineError, match="no reflection between"):
        R.refine(tt, y, phase, two_theta_range=(10, 25))  # Si's first line is at 28.4 degrees
    with pytest.raises(R.RefineError, match="no positive intensity"):
        R.refine(tt, np.zeros_like(y), phase)
    # the pattern's cell is 5 % larger than the bound allows: flagged, not silently accepted
    far = R.phase_from_crystal(_strained(si, [0.95] * 3), name="Si small", d_min=0.8)
    res = R.refine(tt, y, far, cell_bound=0.02, fwhm=(0.06, 0.03))
    assert not res.converged and ("at the bound" in res.message or "explain nothing" in res.message), res.message
    near = R.phase_from_crystal(_strained(si, [0.975] * 3), name="Si 2.5 % small", d_min=0.8)
    res = R.refine(tt, y, near, cell_bound=0.02, fwhm=(0.06, 0.03))
    assert not res.converged and "bound" in res.message, res.message
    res = R.refine(tt, y, phase, max_nfev=1)
    assert not res.converged and "not converged" in res.message
    with pytest.raises(Exception, match="cell: expected"):
        R.phase_from_cell([5.4, 5.4, -1, 90, 90, 90], 227, d_min=1.0)
    with pytest.raises(Exception, match="spacegroup"):
        R.phase_from_cell([5.4, 5.4, 5.4, 90, 90, 90], 231, d_min=1.0)


# --------------------------------------------------------------------------------------------------
# a measured pattern and the re-ranking of search-match


def test_measured_xred_pattern_refines_to_its_cif_cell(experimental_data):
    from synthxrd.io import read_pattern

    rows = {r["sample_id"]: r for r in csv.DictReader(open(experimental_data / "manifest.csv"))
            if r["variant"] == "raw"}
    cif = experimental_data / rows["xred_PbSO4"]["cif_path"]
    tt, y, _ = read_pattern(MEASURED / "PbSO4.csv")
    phase = R.phase_from_crystal(cif, name="PbSO4", d_min=1.0)
    res = R.refine(tt, y, phase, wavelength="CuKa", two_theta_range=(15, 70))
    assert res.converged, res.message
    start = lattice_parameters(to_crystal(cif).lattice)
    assert res.phases[0].cell[:3] == pytest.approx(start[:3], rel=0.01)
    assert res.rwp < 0.5 * res.rwp_background  # the phase explains the pattern


@pytest.fixture(scope="module")
def default_library():
    from synthxrd.match import ReferenceLibrary

    return ReferenceLibrary.load()


@pytest.mark.parametrize("name, formula, spacegroup", [("TiO2_rutile", "TiO2", 136), ("ZnO_wurtzite", "ZnO", 186)])
def test_anisotropically_strained_known_phase_is_first_after_refinement(default_library, name, formula, spacegroup):
    from synthxrd import simulate

    cr = _crystal(name)
    truth = _strained(cr, [1, 1, 1.04])
    grid = np.linspace(5, 90, 8501)
    y = simulate.pattern(truth, rng=np.random.default_rng(1), crystallite_size_nm=50)
    plain = default_library.search(grid, y, k=10)[0]
    assert formula not in [(m.formula) for m in plain[:1]]  # the isotropic search alone misses it
    best = default_library.search(grid, y, k=5, refine=True)[0]
    assert (best[0].formula, best[0].spacegroup) == (formula, spacegroup)
    assert best[0].rwp is not None and best[0].converged
    expected = lattice_parameters(truth.lattice)
    assert best[0].cell[:3] == pytest.approx(expected[:3], rel=2e-3)
    assert best[0].rwp < best[1].rwp


# --------------------------------------------------------------------------------------------------
# the command


def test_refine_command_le_bail_and_plot(tmp_path, capsys):
    from synthxrd.cli import main

    png = tmp_path / "fit.png"
    rc = main(["refine", str(MEASURED / "PbSO4.csv"), "--cell", "8.48 5.40 6.96 90 90 90", "--spacegroup", "62",
               "--wavelength", "CuKa", "--range", "15", "50", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Rwp" in out and "GoF" in out and "cell  a 8.4" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _read_back(path: Path):
    """The CIF read by gemmi (small structure) and by pymatgen (the lattice of its block)."""
    import gemmi
    from pymatgen.io.cif import CifParser

    small = gemmi.make_small_structure_from_block(gemmi.cif.read(str(path)).sole_block())
    parser = CifParser(str(path))
    lattice = parser.get_lattice(next(iter(parser._cif.data.values())))
    return small, lattice


def test_refine_command_writes_the_cif_phase_with_its_atoms_in_the_refined_cell(experimental_data, tmp_path, capsys):
    import json

    from pymatgen.core import Structure

    from synthxrd.cli import main

    rows = {r["sample_id"]: r for r in csv.DictReader(open(experimental_data / "manifest.csv"))
            if r["variant"] == "raw"}
    cif = experimental_data / rows["xred_PbSO4"]["cif_path"]
    args = ["refine", str(MEASURED / "PbSO4.csv"), "--cif", str(cif), "--wavelength", "CuKa", "--range", "15", "70",
            "--write-cif", str(tmp_path / "out"), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    written = tmp_path / "out" / "PbSO4.cif"
    assert result["cif"] == str(written)
    cell = np.array(result["phases"][0]["cell"])
    small, lattice = _read_back(written)
    assert [small.cell.a, small.cell.b, small.cell.c] == pytest.approx(cell[:3], rel=1e-6)
    assert lattice.abc == pytest.approx(cell[:3], rel=1e-6)
    assert small.spacegroup.number == 62
    structure = Structure.from_file(written)  # pymatgen expands the symmetry: the source's atoms, refined cell
    source = Structure.from_file(cif)
    assert structure.composition == source.composition
    assert structure.lattice.abc != pytest.approx(source.lattice.abc, rel=1e-4)  # the cell did move
    text = written.read_text()
    assert "Rwp" in text and "_pd_proc_ls_prof_wR_factor" in text
    # an existing file is kept unless --overwrite
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert written.read_text() == text
    assert main(args + ["--overwrite"]) == 0


def test_refine_command_writes_a_library_entry_cell_and_symmetry_without_atoms(tmp_path, capsys):
    from synthxrd.cli import main

    out = tmp_path / "cifs"
    assert main(["refine", str(MEASURED / "PbSO4.csv"), "--match", "amcsd-0018845", "--library", "amcsd",
                 "--wavelength", "CuKa", "--range", "15", "70", "--write-cif", str(out)]) == 0
    printed = capsys.readouterr().out
    written = out / "PbSO4.cif"
    assert f"refined phase in {written}" in printed
    small, lattice = _read_back(written)
    assert small.spacegroup.number == 62 and len(small.sites) == 0
    assert [small.cell.a, small.cell.b, small.cell.c] == pytest.approx([8.48, 5.40, 6.96], rel=0.01)
    assert lattice.abc == pytest.approx((small.cell.a, small.cell.b, small.cell.c), rel=1e-9)
    text = written.read_text()
    assert "No atomic positions" in text and "amcsd-0018845" in text


def test_refined_cif_refuses_a_crystal_the_phase_was_not_made_from(tmp_path, capsys):
    from synthxrd.cli import main

    cr = _crystal("TiO2_rutile")
    tt, y = _measured_like(_strained(cr, [1, 1, 1.01]), zero=0.0, kalpha2=False)
    phase = R.phase_from_crystal(cr, name="rutile", d_min=0.9)
    res = R.refine(tt, y, phase, wavelength=CU_KA1)
    assert "_atom_site_fract_x" in R.refined_cif(res, phase, crystal=cr)
    with pytest.raises(R.RefineError, match="not one of the crystal given"):
        R.refined_cif(res, phase, crystal=_crystal("NaCl"))
    # the command refuses a --write-cif that is a file, before any work
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["refine", str(MEASURED / "PbSO4.csv"), "--cell", "8.48 5.40 6.96 90 90 90", "--spacegroup", "62",
                 "--write-cif", str(blocker)]) == 2
    assert "--write-cif: " in capsys.readouterr().err and blocker.read_text() == "x"


def test_refine_command_usage_errors(capsys):
    from synthxrd.cli import main

    assert main(["refine", str(MEASURED / "PbSO4.csv"), "--cell", "8.48 5.40 6.96 90 90 90"]) == 2
    assert "--cell needs --spacegroup" in capsys.readouterr().err
    assert main(["refine", str(MEASURED / "PbSO4.csv"), "--cell", "8.48 5.40", "--spacegroup", "62"]) == 2
    assert "--cell: expected six numbers" in capsys.readouterr().err


def test_profile_kernel_matches_its_numpy_twin():
    from synthxrd._refine_kernels import profile_block, profile_block_numpy

    rng = np.random.default_rng(2)
    tt = np.sort(rng.uniform(10, 80, 3000))
    centre = rng.uniform(5, 85, 40)
    fwhm = rng.uniform(0.03, 0.4, 40)
    amp = rng.uniform(0, 2, 40)
    col = rng.integers(0, 3, 40)
    got = profile_block(tt, centre, fwhm, amp, col, 0.3, R.WINDOW_FWHM, 3)
    assert got == pytest.approx(profile_block_numpy(tt, centre, fwhm, amp, col, 0.3, R.WINDOW_FWHM, 3), abs=1e-12)
    # and the kernel's peak is the area-normalised pseudo-Voigt of the module
    fine = np.linspace(20, 40, 20001)
    one = profile_block(fine, np.array([30.0]), np.array([0.2]), np.array([1.0]), np.array([0]), 0.3, 1000.0, 1)[0]
    assert one == pytest.approx(R.pseudo_voigt(fine - 30.0, 0.2, 0.3), rel=1e-12)


@pytest.mark.parametrize("widths", [(0.08, 0.05), (0.004, -0.002, 0.006)])
@pytest.mark.parametrize("lines", [((CU_KA1, 1.0), (CU_KA2, 0.5)), ((1.0, 1.0),)])
def test_phase_column_kernel_matches_its_numpy_twin(widths, lines):
    from synthxrd._refine_kernels import phase_column, phase_column_numpy

    rng = np.random.default_rng(3)
    tt = np.linspace(5, 120, 2000)
    q = 1 / rng.uniform(0.6, 9, 80) ** 2  # some beyond 2theta = 180 at 1.54 Angstrom
    f2 = rng.uniform(0, 1, 80)
    lam, ratio = np.array([v for v, _ in lines]), np.array([r for _, r in lines])
    args = (tt, q, f2, lam, ratio, 0.04, np.array(widths), 0.4, R.WINDOW_FWHM)
    expected = phase_column_numpy(*args)
    assert expected.max() > 0
    assert phase_column(*args) == pytest.approx(expected, rel=1e-12, abs=1e-12 * expected.max())


def test_bench_refine_compares_search_with_and_without_refinement(shared_data, tmp_path):
    import json
    import subprocess
    import sys

    # a child process: the benchmark pins itself to one core, which must not stay with the test session
    patterns = shared_data / "experimental" / "rruff_dev" / "rruff_dev300.npz"
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "synthxrd", "bench", "refine", "--patterns", str(patterns),
                          "--max-patterns", "3", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "search + refinement" in run.stdout and "one fit (rutile" in run.stdout

    result = json.loads(out.read_text())
    assert result["n_patterns"] == 3 and 0 <= result["refined"]["top1"] <= 1
    assert result["one_fit"]["synthxrd_cell"] == pytest.approx(result["one_fit"]["truth_cell"], rel=5e-4)


def test_hamilton_test_and_cell_penalty_of_the_figure_of_merit():
    from types import SimpleNamespace as NS

    from synthxrd.errors import ConfigError
    from synthxrd.match.rerank import RerankSettings, _hamilton_first, figure_of_merit

    def cand(rwp, k, n=40):
        return (rwp, f"k{k}", NS(rwp=rwp, phases=[NS(hkl=np.zeros((n, 3)))]), NS(n_cell=k))

    low, near, far = cand(0.100, 3), cand(0.102, 2), cand(0.200, 2)
    # b = 1, n - m = 37: critical ratio sqrt(1 + F(1, 37; 0.05) / 37) = 1.054
    assert _hamilton_first([low, near], 0.05)[0] is near
    assert _hamilton_first([low, far], 0.05)[0] is low
    assert _hamilton_first([low, near], 0.0)[0] is low  # off by default
    assert _hamilton_first([near, low], 0.05)[0] is near  # never towards lower symmetry
    result = NS(rwp=0.1, phases=[NS(hkl=np.zeros((10, 3)), cell=np.array([5.1, 5.0, 5.0, 90, 90, 90]),
                                    cell_start=np.array([5.0, 5.0, 5.0, 90, 90, 90]))])
    phase = NS(n_cell=1)
    assert figure_of_merit(result, phase, RerankSettings()) == pytest.approx(0.1)
    assert figure_of_merit(result, phase, RerankSettings(cell_penalty=5)) == pytest.approx(0.1 * (1 + 5 * 0.02))
    with pytest.raises(ConfigError, match="hamilton_alpha"):
        RerankSettings(hamilton_alpha=1.0)
    with pytest.raises(ConfigError, match="score_weight"):
        RerankSettings(score_weight=-1.0)


@pytest.mark.parametrize("name, formula, spacegroup", [
    ("NaCl", "NaCl", 225), ("Al2O3_corundum", "Al2O3", 167), ("ZnO_wurtzite", "ZnO", 186),
    ("TiO2_rutile", "TiO2", 136), ("WO3_monoclinic", "WO3", 14), ("Si", "Si", 227)])
def test_reported_hkl_index_the_reported_cell(default_library, name, formula, spacegroup):
    """A library entry's hkl belong to its CIF's cell as read (often primitive): what a user reads,
    the hkl of the report and the JSON, must be the indices of the conventional cell reported next
    to them, written with non-negative indices where the metric allows."""
    tt, y = _measured_like(_crystal(name), zero=0.0, kalpha2=False)
    rows = [i for i in range(len(default_library))
            if default_library.formulas[i] == formula and default_library.spacegroups[i] == spacegroup]
    res = R.refine(tt, y, [R.phase_from_library(default_library, rows[0])], wavelength=CU_KA1, kalpha2=False,
                   max_nfev=30)
    p = res.phases[0]
    shown = p.indices(p.hkl)
    q_cell = np.einsum("mi,ij,mj->m", shown, reciprocal_metric(lattice_from_parameters(*p.cell)), shown)
    q_fit = np.einsum("mi,ij,mj->m", p.hkl, p.metric, p.hkl)
    np.testing.assert_allclose(q_cell, q_fit, rtol=1e-6)
    if spacegroup >= 75 and not 143 <= spacegroup <= 194:  # orthogonal axes: every sign may change
        assert (shown >= 0).all()
    if spacegroup in (225, 227):  # F-centred: h, k, l all even or all odd in the conventional cell
        assert (np.ptp(shown % 2, axis=1) == 0).all()
    if spacegroup == 167:  # R-centred, obverse hexagonal setting: -h + k + l = 3n
        assert ((-shown[:, 0] + shown[:, 1] + shown[:, 2]) % 3 == 0).all()
    first = {"NaCl": [[1, 1, 1], [2, 0, 0], [2, 2, 0]], "Al2O3_corundum": [[0, 1, 2], [1, 0, 4], [1, 1, 0]],
             "ZnO_wurtzite": [[1, 0, 0], [0, 0, 2], [1, 0, 1]], "TiO2_rutile": [[1, 1, 0], [1, 0, 1], [2, 0, 0]]}
    lines, two_theta, _ = R._distinct_lines(shown, p.two_theta, p.intensity)  # each line once
    if name in first:  # the indices of the textbooks and the powder diffraction file
        assert lines[:len(first[name])].tolist() == first[name]
    if spacegroup == 14:  # monoclinic: only the b index changes sign on its own
        assert (shown[:, 1] >= 0).all()
    reflections = res.to_dict()["phases"][0]["reflections"]
    assert [r["hkl"] for r in reflections] == lines.tolist()  # as the report shows them
    assert sum(r["intensity"] for r in reflections) == pytest.approx(float(np.sum(p.intensity)))
    report = R.report(res, reflections=len(p.hkl)).splitlines()
    header = next(i for i, row in enumerate(report) if row.split()[:3] == ["h", "k", "l"])
    table = [[int(v) for v in row.split()[:3]] + [float(row.split()[3])] for row in report[header + 1:]]
    assert [row[:3] for row in table] == lines.tolist()  # every line once, in the reported setting
    assert [row[3] for row in table] == pytest.approx(two_theta, abs=1e-3)
    cell_line = next(row for row in report if row.startswith("  cell"))
    assert "(0)" not in cell_line  # an angle that symmetry fixes has no esd (not one of rounding noise)


def test_standard_indices_move_an_index_only_by_exact_symmetry_of_the_metric():
    from synthxrd.simulate.physics import reciprocal_metric

    ortho = reciprocal_metric(lattice_from_parameters(5.0, 5.0005, 7.0, 90, 90, 90))  # pseudo-tetragonal
    assert R.standard_indices([[-2, -1, 0], [0, -1, 1]], ortho).tolist() == [[2, 1, 0], [0, 1, 1]]
    tetra = reciprocal_metric(lattice_from_parameters(5.0, 5.0, 7.0, 90, 90, 90))
    assert R.standard_indices([[1, 2, 0]], tetra).tolist() == [[2, 1, 0]]  # a 4-fold image at the same d
    mono = reciprocal_metric(lattice_from_parameters(5.0, 6.0, 7.0, 90, 100, 90))
    # h0l and -h0l differ in d: 1 0 -1 (the Friedel mate of -1 0 1) stays apart from 1 0 1
    assert R.standard_indices([[-1, 0, 1], [1, 0, 1], [-1, -1, -1]], mono).tolist() == [[1, 0, -1], [1, 0, 1], [1, 1, 1]]
    assert R.standard_indices([[-1, 0, -1]], None).tolist() == [[1, 0, 1]]  # no metric: Friedel's law only
    hexa = reciprocal_metric(lattice_from_parameters(4.76, 4.76, 13.0, 90, 90, 120))
    assert R.standard_indices([[1, 0, -4], [2, -1, 0]], hexa, 167).tolist() == [[1, 0, 4], [1, 1, 0]]
    assert R.standard_indices(np.zeros((0, 3)), hexa).shape == (0, 3)
