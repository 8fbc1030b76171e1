"""Multi-phase identification (synthxrd.mixture): real searches and fits of simulated mixtures, no mocks."""

from __future__ import annotations

from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd.bench.mixtures import simulate_mixture
from synthxrd.match import ReferenceLibrary
from synthxrd.mixture import (
    MixtureError,
    MixtureSettings,
    cell_mass,
    identify_phases,
    library_mass_factors,
    mass_factor,
    weight_fractions,
)
from synthxrd.structure import to_crystal

EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))


@pytest.fixture(scope="module")
def library() -> ReferenceLibrary:
    return ReferenceLibrary.build(EXAMPLES, workers=1, progress=False)


@pytest.fixture(scope="module")
def factors(library) -> dict[str, float]:
    return library_mass_factors(library, library.ids, EXAMPLES)


def _crystal(name: str):
    return to_crystal(str(EXAMPLES / f"{name}.cif"))


def test_cell_mass_and_mass_factor_of_nacl():
    nacl = _crystal("NaCl")
    assert cell_mass(nacl) == pytest.approx(4 * (22.98977 + 35.453), rel=1e-4)  # Z = 4 NaCl per cell
    # the two normalisations differ by the strongest line's LP factor only
    q_lib, q_cry = mass_factor(nacl), mass_factor(nacl, normalisation="crystal")
    assert q_lib > 0 and q_cry > 0 and q_lib != pytest.approx(q_cry)


def test_weight_fractions_hill_howard():
    w, esd = weight_fractions([2.0, 1.0], [0.0, 0.0], [1.0, 2.0])  # S Q equal: 50/50
    assert w == pytest.approx([0.5, 0.5]) and esd == pytest.approx([0.0, 0.0])
    w, esd = weight_fractions([3.0, 1.0], [0.1, 0.1], [1.0, 1.0])
    assert w == pytest.approx([0.75, 0.25]) and esd[0] == pytest.approx(esd[1]) and esd[0] > 0
    with pytest.raises(Exception, match="mass factors must be positive"):
        weight_fractions([1.0], [0.1], [0.0])


def test_two_phase_mixture_70_30(library, factors):
    rng = np.random.default_rng(1)
    tt, y = simulate_mixture([_crystal("TiO2_rutile"), _crystal("Al2O3_corundum")], [0.7, 0.3], rng=rng, zero=0.02)
    mix = identify_phases(tt, y, library, wavelength="CuKa", mass_factors=factors)
    assert [p.id for p in mix.phases] == ["TiO2_rutile", "Al2O3_corundum"]
    w = [p.weight_fraction for p in mix.phases]
    assert w == pytest.approx([0.7, 0.3], abs=0.05)
    assert all(p.weight_fraction_esd is not None and p.weight_fraction_esd < 0.05 for p in mix.phases)
    assert mix.phases[0].cell[:3] == pytest.approx([4.5937, 4.5937, 2.9587], rel=2e-3)
    assert mix.rwp < 0.1 and mix.steps[-1]["kept"] is False  # a third phase was tried and refused
    assert mix.to_dict()["phases"][1]["formula"] == "Al2O3"


def test_single_phase_stays_single(library, factors):
    rng = np.random.default_rng(2)
    tt, y = simulate_mixture([_crystal("ZnO_wurtzite")], [1.0], rng=rng, zero=-0.03)
    mix = identify_phases(tt, y, library, wavelength="CuKa", mass_factors=factors)
    assert [p.id for p in mix.phases] == ["ZnO_wurtzite"]
    assert mix.phases[0].weight_fraction == pytest.approx(1.0)


def test_forced_number_and_no_factors(library):
    rng = np.random.default_rng(3)
    tt, y = simulate_mixture([_crystal("NaCl"), _crystal("Si")], [0.5, 0.5], rng=rng)
    mix = identify_phases(tt, y, library, wavelength="CuKa", phases=1)
    assert len(mix.phases) == 1 and mix.phases[0].weight_fraction == pytest.approx(1.0)
    unknown = replace(library, mass_factors=None)  # a library built before the factors were stored
    mix = identify_phases(tt, y, unknown, wavelength="CuKa", phases=2)
    assert len(mix.phases) == 2 and all(p.weight_fraction is None for p in mix.phases)  # shares only
    assert {p.id for p in mix.phases} == {"NaCl", "Si"}
    assert sum(p.intensity_share for p in mix.phases) == pytest.approx(1.0)


def test_library_stores_the_mass_factors(library, factors, tmp_path):
    stored = dict(zip(library.ids.tolist(), library.mass_factors.tolist()))
    assert stored == pytest.approx(factors, rel=1e-9)
    library.save(tmp_path / "lib.npz")
    again = ReferenceLibrary.load(tmp_path / "lib.npz")
    assert again.mass_factors == pytest.approx(library.mass_factors)
    # trimming renormalises f2 per entry; the factor follows, so S Q (a phase's mass) is unchanged
    # (f2 -> f2 / top makes the scale S -> S top, so Q -> Q / top = Q x the f2 ratio)
    trimmed = library.trimmed(d_min=2.0, min_intensity=0.05)
    for i in trimmed.ids.tolist():
        a, b = library.entry(i), trimmed.entry(i)
        ratio = b.f2[0] / a.f2[int(np.argmin(np.abs(a.d - b.d[0])))]
        assert trimmed.mass_factors[trimmed.index(i)] == pytest.approx(library.mass_factors[library.index(i)] * ratio,
                                                                        rel=2e-3)
    merged = ReferenceLibrary.merge(library, unknown := replace(library, mass_factors=None))
    assert np.isfinite(merged.mass_factors[:len(library)]).all() and np.isnan(merged.mass_factors[len(library):]).all()
    del unknown


def test_bad_input_gives_clear_errors(library):
    tt = np.linspace(10, 90, 500)
    with pytest.raises(MixtureError, match="one length"):
        identify_phases(tt, np.ones(10), library)
    with pytest.raises(MixtureError, match="flat"):
        identify_phases(tt, np.ones(500), library)
    with pytest.raises(MixtureError, match="finite"):
        identify_phases(tt, np.where(tt > 50, np.nan, 1.0), library)
    with pytest.raises(MixtureError, match="'auto' or an integer"):
        identify_phases(tt, np.arange(500.0), library, phases="two")
    with pytest.raises(Exception, match="min_rwp_drop"):
        MixtureSettings(min_rwp_drop=2.0)


def test_cli_mixture(library, tmp_path, capsys):
    from synthxrd.cli import main

    rng = np.random.default_rng(4)
    tt, y = simulate_mixture([_crystal("TiO2_rutile"), _crystal("Al2O3_corundum")], [0.6, 0.4], rng=rng)
    pattern = tmp_path / "mix.xy"
    np.savetxt(pattern, np.column_stack([tt, y]))
    lib = tmp_path / "examples.npz"
    library.save(lib)
    png = tmp_path / "mix.png"
    assert main(["mixture", str(pattern), "--library", str(lib), "--structures", str(EXAMPLES), "--wavelength",
                 "CuKa", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "TiO2_rutile" in out and "Al2O3_corundum" in out and "wt%" in out and png.stat().st_size > 0
    assert main(["mixture", str(pattern), "--library", str(lib), "--max-phases", "0"]) == 2
    assert "--max-phases" in capsys.readouterr().err


def test_predict_lists_the_phases_of_a_measured_pattern(capsys):
    """predict --phases: the shipped model and library; one phase for the packaged anglesite pattern, in JSON
    with its refined cell; --phases with the network alone is refused."""
    import json

    pytest.importorskip("torch")
    from synthxrd.cli import main

    pattern = str(files("synthxrd") / "resources" / "measured" / "PbSO4.csv")
    assert main(["predict", pattern, "--wavelength", "1.54184", "--no-refine", "--phases", "auto", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["results"][0]
    (phase,) = entry["phases"]
    assert phase["formula"] == "PbSO4" and phase["spacegroup"] == 62
    assert phase["cell"][:3] == pytest.approx([8.48, 5.40, 6.96], rel=0.01)
    assert main(["predict", pattern, "--no-library", "--phases", "1"]) == 2
    assert "--no-library excludes --library, --elements and --phases" in capsys.readouterr().err


def test_the_predictor_identifies_the_phases(library):
    pytest.importorskip("torch")
    from synthxrd.match.fusion import FusionRule
    from synthxrd.predict import Predictor

    shipped = Predictor.load(device="cpu", library=None)
    predictor = Predictor(shipped.model, shipped.classes, spec=shipped.spec, library=library, fusion=FusionRule())
    tt, y = simulate_mixture([_crystal("TiO2_rutile"), _crystal("Al2O3_corundum")], [0.7, 0.3],
                             rng=np.random.default_rng(5))
    out = predictor.identify(tt, y, wavelength="CuKa", phases="auto")
    assert sorted(p["id"] for p in out["phases"][0]) == ["Al2O3_corundum", "TiO2_rutile"]
    assert "phases" not in predictor.identify(tt, y, wavelength="CuKa")


def test_the_shipped_libraries_hold_every_mass_factor():
    """Weight fractions out of the box: Q for every entry of the default library, as mass_factor gives it."""
    lib = ReferenceLibrary.load()
    assert np.isfinite(lib.mass_factors).all() and (lib.mass_factors > 0).all()
    from synthxrd.match.library import mass_factor

    q = mass_factor(_crystal("TiO2_rutile"), d_min=0.9)  # the order of magnitude of the shipped TiO2 entries
    rows = np.flatnonzero((lib.formulas == "TiO2") & (lib.spacegroups == 136))
    assert len(rows) and np.median(lib.mass_factors[rows]) == pytest.approx(q, rel=0.2)


def test_screening_holds_the_found_phases_and_finds_the_same_mixture(library, factors):
    rng = np.random.default_rng(5)
    tt, y = simulate_mixture([_crystal("TiO2_rutile"), _crystal("ZnO_wurtzite")], [0.6, 0.4], rng=rng, zero=0.01)
    fast = identify_phases(tt, y, library, wavelength="CuKa", mass_factors=factors)
    full = identify_phases(tt, y, library, wavelength="CuKa", mass_factors=factors,
                           settings=MixtureSettings(screen=False))
    assert [p.id for p in fast.phases] == [p.id for p in full.phases] == ["TiO2_rutile", "ZnO_wurtzite"]
    assert [p.weight_fraction for p in fast.phases] == pytest.approx([p.weight_fraction for p in full.phases],
                                                                     abs=0.01)
    # steps after the first record the screened Rwp of the chosen candidate; its joint refit is no worse
    later = [s for s in fast.steps if s.get("step") != 1 and "rwp_screen" in s]
    assert later and all(s["rwp"] <= s["rwp_screen"] * 1.001 for s in later)
    assert all("rwp_screen" in s and s["rwp"] == pytest.approx(s["rwp_screen"]) for s in full.steps if "chosen" in s)


def test_a_held_phase_keeps_its_cell(library):
    from synthxrd.mixture import _held
    from synthxrd.refine import phase_from_library, refine, scaled

    rng = np.random.default_rng(6)
    tt, y = simulate_mixture([_crystal("TiO2_rutile")], [1.0], rng=rng)
    model = scaled(phase_from_library(library, "TiO2_rutile"), 1.004)  # 0.4 % off
    held, free = refine(tt, y, _held(model), wavelength="CuKa", prescan=False), refine(tt, y, model,
                                                                                      wavelength="CuKa", prescan=False)
    assert _held(model).n_cell == 0
    assert held.phases[0].cell[:3] == pytest.approx(model.cell(np.zeros(model.n_cell))[:3], rel=1e-9)
    assert free.phases[0].cell[0] == pytest.approx(4.5937, rel=2e-3) and free.rwp < held.rwp
    # a phase whose setting is unknown (isotropic strain only) held too: its cell is the library's
    from dataclasses import replace

    isotropic = replace(_held(model), g_star=None, basis=None, conventional=np.array([4.6, 4.6, 2.96, 90, 90, 90.]))
    np.testing.assert_allclose(isotropic.cell(np.zeros(0)), [4.6, 4.6, 2.96, 90, 90, 90])


def test_strain_of_a_scanned_metric_round_trips(library):
    from synthxrd.refine import phase_from_library, scaled

    model = phase_from_library(library, "TiO2_rutile")  # tetragonal: two strain components
    p = np.array([0.003, -0.002])[:model.n_cell]
    assert model.strain_for(model.metric(p)) == pytest.approx(p, abs=1e-12)
    # a cell moved isotropically (the pre-scan's) is a strain of the same phase
    s = scaled(model, 1.01)
    assert scaled(model, 1.01).cell(np.zeros(s.n_cell))[0] == pytest.approx(
        model.cell(model.strain_for(s.g_star))[0], rel=1e-9)


def test_a_second_phase_must_drop_rwp_when_screened(library, factors):
    rng = np.random.default_rng(1)
    tt, y = simulate_mixture([_crystal("TiO2_rutile"), _crystal("Al2O3_corundum")], [0.7, 0.3], rng=rng, zero=0.02)
    strict = identify_phases(tt, y, library, wavelength="CuKa", mass_factors=factors,
                             settings=MixtureSettings(min_rwp_drop=0.01, min_screen_drop=0.99))
    assert [p.id for p in strict.phases] == ["TiO2_rutile"]
    assert strict.steps[1]["why"].startswith("screened Rwp drop")
    with pytest.raises(Exception, match="min_screen_drop"):
        MixtureSettings(min_screen_drop=1.5)


def test_bench_summary_reports_cpu_time():
    from synthxrd.bench.mixtures import _summary, summary_lines

    rows = [{"n_true": 2, "n_found": 2, "n_correct": 2, "n_correct_strict": 2, "exact": True, "exact_strict": True,
             "wf_errors": [0.01, 0.01], "seconds": 3.0, "cpu_seconds": cpu} for cpu in (0.4, 0.6, 0.8)]
    summary = _summary(rows)
    assert summary["cpu_seconds_median"] == pytest.approx(0.6) and summary["seconds_median"] == pytest.approx(3.0)
    lines = summary_lines({"n_structures": 1, "library": "x", "seed": 1, "summary": {"2": summary}})
    assert lines[1].split()[-2:] == ["CPU", "s"] and lines[2].split()[-2:] == ["3.00", "0.60"]


MEASURED = Path(__file__).parent / "data" / "mixtures_measured"


def test_a_measured_two_phase_mixture_of_stated_weights():
    """dara's measured precursor mixture (AERIS, Cu K-alpha1/2, 8-min scan) of 40.1 wt% TiO2 and 59.9 wt%
    ZnO (tests/data/mixtures_measured/SOURCE.md), searched in the shipped library with the chemistry
    filter: both phases found, ZnO the main one, weight fractions within 10 points of the weighed ones."""
    from synthxrd.io import read_pattern

    tt, y, meta = read_pattern(MEASURED / "TiO2_0p4009-ZnO_0p6010--8min.xrdml")
    assert meta["kalpha2"] == pytest.approx(1.544426)
    mix = identify_phases(tt, y, ReferenceLibrary.load(), wavelength="CuKa", phases="auto",
                          elements=["Ti", "Zn", "O"], only_elements=True)
    formulas = [p.formula for p in mix.phases]
    assert formulas[0] == "ZnO" and mix.phases[0].spacegroup == 186  # wurtzite, the main phase
    assert sorted(formulas) == ["TiO2", "ZnO"]
    wf = {p.formula: p.weight_fraction for p in mix.phases}
    assert wf["ZnO"] == pytest.approx(0.601, abs=0.10) and wf["TiO2"] == pytest.approx(0.399, abs=0.10)
    assert mix.rwp < 0.15
