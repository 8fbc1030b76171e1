"""Search-match: the reference library, the search and the fusion with the network."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd import simulate
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.match import Match, ReferenceLibrary, SearchSettings
from synthxrd.match._kernels import render_rows, render_rows_numpy
from synthxrd.match.fusion import FusionRule, evidence_scores, match_features
from synthxrd.structure import Crystal, read_cif, to_crystal

DATA = Path(__file__).resolve().parent / "data"
MINI = DATA / "mini_collection"
EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))
CU, MO = 1.5406, 0.7093


@pytest.fixture(scope="module")
def cif_folder(tmp_path_factory) -> Path:
    """The mini collection (with its broken CIF) and the shipped example CIFs in one folder."""
    folder = tmp_path_factory.mktemp("cifs")
    for f in [*MINI.glob("*.cif"), *EXAMPLES.glob("*.cif")]:
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def full_library(cif_folder) -> ReferenceLibrary:
    """Every reflection with d >= 0.9 Å: nothing trimmed."""
    return ReferenceLibrary.build(cif_folder, workers=1, progress=False, min_intensity=0.0, max_peaks=None)


@pytest.fixture(scope="module")
def library(cif_folder) -> ReferenceLibrary:
    return ReferenceLibrary.build(cif_folder, workers=1, progress=False)


# --------------------------------------------------------------------------------------------------
# the library


def test_build_reports_the_broken_cif_and_keeps_the_rest(library, cif_folder):
    n_cifs = len(list(cif_folder.glob("*.cif")))
    assert len(library) == n_cifs - 1
    assert [f[0] for f in library.metadata["failures"]] == ["broken"]
    assert "malformed CIF" in library.metadata["failures"][0][1]
    nacl = library.entry("nacl")
    assert (nacl.formula, nacl.spacegroup) == ("NaCl", 225)
    assert nacl.lattice[:3] == pytest.approx([5.64] * 3, abs=0.05)
    assert library.entry("tio2_rutile").spacegroup == 136 and library.entry("mg_hcp").spacegroup == 194
    meta = library.metadata
    assert meta["symprec"] == 0.1 and meta["d_min"] == 0.9 and meta["format_version"] == 1 and meta["package_version"]


@pytest.mark.parametrize(("wavelength", "window"), [(CU, (5.0, 110.0)), (MO, (5.0, 45.0))])
def test_library_peaks_equal_simulate_peaks(full_library, cif_folder, wavelength, window):
    """The wavelength-independent form gives the simulator's peaks at any wavelength (d >= d_min)."""
    for ident in full_library.ids:
        tt_ref, i_ref = simulate.peaks(cif_folder / f"{ident}.cif", wavelength, window)
        tt, intensity = full_library.peaks(str(ident), wavelength=wavelength, two_theta_range=window)
        keep = intensity >= 1e-5  # the simulator drops peaks below 1e-5 of the strongest
        assert len(tt[keep]) == len(tt_ref), ident
        np.testing.assert_allclose(tt[keep], tt_ref, atol=1e-5, err_msg=ident)
        np.testing.assert_allclose(intensity[keep], i_ref, rtol=1e-3, atol=1e-6, err_msg=ident)


def test_hkl_is_a_reflection_at_its_d(full_library, cif_folder):
    for ident in ("tio2_rutile", "mg_hcp", "cuo2_tetragonal"):
        e = full_library.entry(ident)
        lattice = to_crystal(read_cif(cif_folder / f"{ident}.cif")).lattice
        g = np.linalg.norm(e.hkl @ np.linalg.inv(lattice).T, axis=1)
        np.testing.assert_allclose(1 / g, e.d, rtol=1e-6)


def test_trimming(full_library, library):
    trimmed = full_library.trimmed(min_intensity=library.metadata["min_intensity"], max_peaks=64)
    assert list(trimmed.ids) == list(library.ids)
    np.testing.assert_allclose(trimmed.d, library.d, rtol=1e-6)
    np.testing.assert_allclose(trimmed.f2, library.f2, rtol=1e-3)
    few = full_library.trimmed(max_peaks=3, d_min=1.2)
    assert np.all(np.diff(few.offsets) <= 3) and few.d.min() >= 1.2
    with pytest.raises(ConfigError, match="no looser"):
        library.trimmed(min_intensity=0.0)


def test_save_load_round_trip_and_refusal(library, tmp_path):
    path = library.save(tmp_path / "lib.npz")
    back = ReferenceLibrary.load(path)
    assert list(back.ids) == list(library.ids) and list(back.formulas) == list(library.formulas)
    np.testing.assert_array_equal(back.d, library.d)
    np.testing.assert_allclose(back.f2, library.f2, rtol=5e-4)
    assert back.metadata["source"] == library.metadata["source"]
    with pytest.raises(ConfigError, match="already exists"):
        library.save(path)
    with np.load(path, allow_pickle=False) as npz:  # safe format: no object arrays
        assert all(npz[k].dtype != object for k in npz.files)


def test_corrupt_and_foreign_library_files(library, tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a zip at all")
    with pytest.raises(DataError, match=r"garbage\.npz: cannot read the reference library"):
        ReferenceLibrary.load(garbage)
    good = library.save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated\.npz: cannot read the reference library"):
        ReferenceLibrary.load(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(DataError, match=r"foreign\.npz: not a synthxrd reference library \(missing metadata"):
        ReferenceLibrary.load(foreign)
    with pytest.raises(DataError, match="no such library file"):
        ReferenceLibrary.load(tmp_path / "missing.npz")
    with np.load(good) as npz:
        arrays = dict(npz)
    arrays["metadata"] = np.array(json.dumps({"format_version": 99}))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(DataError, match="format version 99"):
        ReferenceLibrary.load(tmp_path / "future.npz")
    arrays["metadata"] = np.array(json.dumps({"format_version": 1}))
    arrays["offsets"] = arrays["offsets"][:-1]
    np.savez(tmp_path / "inconsistent.npz", **arrays)
    with pytest.raises(DataError, match="inconsistent library arrays"):
        ReferenceLibrary.load(tmp_path / "inconsistent.npz")


def test_build_errors(tmp_path):
    (tmp_path / "only_broken.cif").write_text("data_x\n_cell_length_a 5\n")
    with pytest.raises(DataError, match="no structure could be used for a library"):
        ReferenceLibrary.build(tmp_path, workers=1, progress=False)
    with pytest.raises(ConfigError, match="d_min"):
        ReferenceLibrary.build(MINI, d_min=0.0, progress=False)
    with pytest.raises(ConfigError, match="max_peaks"):
        ReferenceLibrary.build(MINI, max_peaks=0, progress=False)


# --------------------------------------------------------------------------------------------------
# the search


def _measured_like(crystal: Crystal, rng: np.random.Generator, tt: np.ndarray, *, strain=(1.02, 1.025, 1.015),
                   zero_shift: float = 0.04) -> np.ndarray:
    """A pattern as a laboratory measures it: strained cell, zero shift, K-alpha2, broad peaks,
    curved background and counting noise."""
    strained = Crystal(crystal.lattice * np.asarray(strain)[:, None], crystal.frac_coords, crystal.numbers,
                       crystal.occupancies)
    y = np.zeros_like(tt)
    for lam, ratio in ((1.54056, 1.0), (1.54439, 0.5)):
        pos, inten = simulate.peaks(strained, lam, (tt[0] - 1, tt[-1] + 1))
        for p, i in zip(pos + zero_shift, inten):
            y += ratio * i * np.exp(-0.5 * ((tt - p) / 0.07) ** 2)
    y = 1000 * y / y.max() + 80 + 300 * np.exp(-tt / 15)
    return rng.poisson(y).astype(float)


@pytest.mark.parametrize("ident", ["nacl", "tio2_rutile", "Al2O3_corundum", "srtio3", "ZnO_wurtzite",
                                   "WO3_monoclinic"])
def test_a_perturbed_pattern_finds_its_structure_first(library, cif_folder, ident):
    tt = np.arange(10.0, 80.0, 0.02)
    y = _measured_like(to_crystal(read_cif(cif_folder / f"{ident}.cif")), np.random.default_rng(1), tt)
    matches = library.search(tt, y, k=3)[0]
    me = library.entry(ident)
    twins = {str(i) for i in library.ids if (library.entry(str(i)).formula, library.entry(str(i)).spacegroup)
             == (me.formula, me.spacegroup)}  # nacl.cif and NaCl.cif are the same crystal
    assert matches[0].id in twins, [(m.id, m.score) for m in matches]
    assert matches[0].score > 0.6 and matches[0].scale == pytest.approx(1.02, abs=0.012)
    assert all(a.score >= b.score for a, b in zip(matches, matches[1:]))


def test_search_batch_equals_one_by_one_and_other_wavelengths(library, cif_folder):
    tt = np.arange(8.0, 85.0, 0.02)
    rng = np.random.default_rng(2)
    ys = np.stack([_measured_like(to_crystal(read_cif(cif_folder / f"{i}.cif")), rng, tt) for i in ("nacl", "cscl")])
    batch = library.search(tt, ys, k=5)
    single = [library.search(tt, y, k=5)[0] for y in ys]
    assert [[m.id for m in ms] for ms in batch] == [[m.id for m in ms] for ms in single]
    # the same d-spacings measured with Mo K-alpha1 (peaks 2.2 times narrower in 2theta: a lower score)
    tt_mo = np.degrees(2 * np.arcsin(np.sin(np.radians(tt) / 2) * MO / 1.54056))
    mo = library.search(tt_mo, ys[0], k=2, wavelength="MoKa1")[0]
    assert {m.id for m in mo} == {"nacl", "NaCl"} and mo[0].scale == pytest.approx(batch[0][0].scale, abs=2e-3)


def test_chemistry_filter(library):
    tt = np.arange(10.0, 80.0, 0.02)
    y = _measured_like(to_crystal(read_cif(MINI / "nacl.cif")), np.random.default_rng(3), tt)
    with_o = library.search(tt, y, k=20, elements="O")[0]
    assert with_o and all("O" in m.formula for m in with_o) and "nacl" not in [m.id for m in with_o]
    only = library.search(tt, y, k=20, elements=["Na", "Cl", "Cs"], only_elements=True)[0]
    assert {m.id for m in only} == {"nacl", "cscl", "NaCl", "CsCl"} & set(library.ids.tolist())
    assert library.search(tt, y, k=5, elements="Na,Cl")[0][0].id in ("nacl", "NaCl")
    assert library.search(tt, y, k=5, elements="U")[0] == []
    with pytest.raises(ConfigError, match="unknown element 'Xx'"):
        library.search(tt, y, elements="Fe,Xx")
    with pytest.raises(ConfigError, match="only_elements needs elements"):
        library.search(tt, y, only_elements=True)


def test_search_rejects_bad_patterns(library):
    tt = np.arange(10.0, 80.0, 0.02)
    y = np.ones_like(tt)
    with pytest.raises(DataError, match="empty"):
        library.search(np.zeros(0), np.zeros(0))
    with pytest.raises(DataError, match="NaN"):
        library.search(tt, np.where(tt > 50, np.nan, 1.0))
    with pytest.raises(DataError, match="holds no d-spacing of the library"):
        library.search(np.linspace(0.5, 2.0, 100), np.ones(100))  # d = 44-177 Å at Cu
    with pytest.raises(DataError, match="strictly increasing"):
        library.search(tt[::-1], y)
    with pytest.raises(DataError, match=r"\(0, 180\)"):
        library.search(np.linspace(100, 190, 50), np.ones(50))
    with pytest.raises(DataError, match="no positive intensity"):
        library.search(tt, np.zeros_like(tt))
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        library.search(tt, y, k=0)
    with pytest.raises(ConfigError, match="power"):
        SearchSettings(power=0)


def test_render_kernel_matches_numpy():
    rng = np.random.default_rng(0)
    offsets = np.array([0, 3, 3, 8])
    pos, height, sigma = rng.uniform(0, 1, 8), rng.uniform(0.1, 1, 8), rng.uniform(0.01, 0.05, 8)
    fast = render_rows(offsets, pos, height, sigma, -0.1, 0.004, 300)
    np.testing.assert_allclose(fast, render_rows_numpy(offsets, pos, height, sigma, -0.1, 0.004, 300), atol=1e-4)
    assert fast.shape == (3, 300) and not fast[1].any()


# --------------------------------------------------------------------------------------------------
# the fusion


def _matches(scores_groups):
    return [Match(f"id{i}", "X", g, s) for i, (s, g) in enumerate(scores_groups)]


def test_fusion_probabilities_sum_to_one_and_follow_the_evidence():
    rule = FusionRule()
    network = np.full(230, 1 / 230)
    strong = _matches([(0.95, 62), (0.70, 14), (0.65, 62)])
    weak = _matches([(0.40, 62), (0.39, 14), (0.38, 2)])
    for ms in (strong, weak, []):
        p = rule.fuse(network, ms)
        assert p.shape == (230,) and p.sum() == pytest.approx(1.0) and (p >= 0).all()
    assert rule.fuse(network, strong).argmax() + 1 == 62 and rule.fuse(network, strong)[61] > 0.8
    assert rule.confidence(strong) > 0.9 > 0.1 > rule.confidence(weak)
    np.testing.assert_allclose(rule.fuse(network, []), network)  # no match: the network's answer stands
    assert match_features(strong) == pytest.approx((0.95, 0.25))
    assert rule.fuse(None, strong).sum() == pytest.approx(1.0)


def test_fusion_fit_and_files(tmp_path):
    """Fitted on patterns where high scores are right and low ones are not, the rule trusts high scores."""
    rng = np.random.default_rng(0)
    matches, labels, network = [], [], []
    for i in range(300):
        right = i % 2 == 0
        truth = int(rng.integers(1, 231))
        other = truth % 230 + 1
        s = rng.uniform(0.8, 0.95) if right else rng.uniform(0.5, 0.7)
        third = other % 230 + 1  # a low score's matches miss the truth (else a flat p_match fits best)
        matches.append(_matches([(s, truth if right else other), (s - 0.2, other if right else third)]))
        labels.append(truth)
        network.append(np.full(230, 1 / 230))
    rule = FusionRule.fit(np.array(network), matches, labels, metadata={"what": "test"})
    assert rule.confidence(_matches([(0.9, 1), (0.7, 2)])) > 0.9
    assert rule.confidence(_matches([(0.6, 1), (0.4, 2)])) < 0.1
    assert rule.metadata["n_patterns"] == 300 and rule.metadata["what"] == "test"
    back = FusionRule.load(rule.save(tmp_path / "rule.json"))
    assert back == rule and back.metadata["mean_nll"] == rule.metadata["mean_nll"]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a fusion rule"):
        FusionRule.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="temperature > 0"):
        FusionRule(temperature=0)


def test_the_known_part_is_fitted_on_its_rows_only():
    """known_rows: patterns left out of the fit of ``known`` (the fit's isotypes) do not move it, while the
    mixture still weighs them."""
    rng = np.random.default_rng(3)
    matches, labels, known = [], [], []
    for i in range(300):
        kind = ("known", "held out", "isotype")[i % 3]
        truth = int(rng.integers(1, 231))
        s = rng.uniform(0.8, 0.95) if kind == "known" else rng.uniform(0.3, 0.6)
        matches.append(_matches([(s, truth if kind != "held out" else truth % 230 + 1), (s - 0.1, 7)]))
        labels.append(truth)
        known.append(kind != "held out")
    network = np.full((300, 230), 1 / 230)
    rows = np.arange(300) % 3 != 2
    rule = FusionRule.fit(network, matches, labels, known=known, known_rows=rows)
    alone = FusionRule.fit(network[rows], [m for m, r in zip(matches, rows) if r], np.array(labels)[rows],
                           known=np.array(known)[rows])
    assert rule.known == pytest.approx(alone.known) and rule.unknown_below == alone.unknown_below > 0
    assert rule.metadata["n_patterns"] == 300 and rule.bias != pytest.approx(alone.bias)
    everything = FusionRule.fit(network, matches, labels, known=known)  # the isotypes blur "known"
    assert everything.known != pytest.approx(alone.known)


def test_known_reads_the_best_fit_in_a_refined_rule():
    """known_features: (e_1, margin), and with the fit ln of the smallest Rwp of the refined matches (NO_FIT_RWP
    when none was refined); a refined rule fitted where held-out structures fit badly gets k_3 < 0."""
    import math

    from synthxrd.match.fusion import NO_FIT_RWP, known_features

    ms = [replace(m, rwp=r, fom=r) for m, r in zip(_matches([(0.9, 62), (0.8, 14)]), (0.2, 0.1))]
    assert known_features(ms, 0.0, True) == pytest.approx((0.9, 0.1, math.log(0.1)))
    assert known_features(_matches([(0.9, 62)]), 0.0, True)[2] == math.log(NO_FIT_RWP)
    rng = np.random.default_rng(5)
    matches, labels, known = [], [], []
    for i in range(400):
        held = i % 2 == 1
        s = rng.uniform(0.5, 0.8)  # the scores alone do not tell the two apart; the fit does
        rwp = rng.uniform(0.3, 0.6) if held else rng.uniform(0.05, 0.2)
        matches.append([replace(m, rwp=rwp, fom=rwp) for m in _matches([(s, 5), (s - 0.05, 7)])])
        labels.append(5)
        known.append(not held)
    rule = FusionRule.fit(np.full((400, 230), 1 / 230), matches, labels, known=known)
    assert rule.refined and len(rule.known) == 4 and rule.known[3] < 0
    assert rule.unknown_below > 0 and rule.no_known_phase(matches[1]) and not rule.no_known_phase(matches[0])
    assert FusionRule.from_dict(rule.to_dict()) == rule


def test_shipped_library_and_rule():
    lib = ReferenceLibrary.load("mp")
    assert len(lib) == 46627 and lib.metadata["d_min"] == 0.9 and lib.metadata["n_failures"] == 0
    resource = files("synthxrd") / "resources" / "library"
    assert (resource / "mp_experimental.npz").stat().st_size <= 25e6
    assert "CC-BY 4.0" in (resource / "LICENSE-MP.txt").read_text()
    from synthxrd.models.checkpoint import load_checkpoint

    rule = FusionRule.from_dict(load_checkpoint(files("synthxrd") / "resources" / "models" / "default.pt")["fusion"])
    assert rule.metadata["n_patterns"] >= 1000 and "fit_report" in rule.metadata  # the shipped model's rule
    # a strained, noisy NaCl pattern against all 46,627 structures: rock salt first
    tt = np.arange(10.0, 90.0, 0.02)
    y = _measured_like(to_crystal(read_cif(EXAMPLES / "NaCl.cif")), np.random.default_rng(4), tt)
    best = lib.search(tt, y, k=5, elements="Na,Cl")[0][0]
    assert (best.formula, best.spacegroup) == ("NaCl", 225)
    top = lib.search(tt, y, k=10)[0]
    assert top[0].spacegroup == 225


# --------------------------------------------------------------------------------------------------
# the command line


def test_cli_library_build_info_search(cif_folder, tmp_path, capsys):
    out = tmp_path / "lib.npz"
    assert main(["library", "build", str(cif_folder), "--out", str(out), "-j", "1", "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "1 failures" in text and "failed: broken: malformed CIF" in text and out.is_file()
    assert main(["library", "build", str(cif_folder), "--out", str(out), "-j", "1", "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["library", "info", str(out)]) == 0
    assert f"{len(ReferenceLibrary.load(out))} structures" in capsys.readouterr().out
    tt = np.arange(10.0, 80.0, 0.02)
    y = _measured_like(to_crystal(read_cif(MINI / "tio2_rutile.cif")), np.random.default_rng(5), tt)
    pattern = tmp_path / "rutile.xy"
    np.savetxt(pattern, np.column_stack([tt, y]))
    assert main(["library", "search", str(pattern), "--library", str(out), "-k", "2"]) == 0
    text = capsys.readouterr().out
    assert "states no wavelength; assumed Cu K-alpha1" in text
    best = text.splitlines()[3]
    assert "rutile" in best.lower() and " 136 P4_2/mnm" in best
    assert main(["library", "search", str(pattern), str(tmp_path / "missing.xy"), "--library", str(out)]) == 1
    assert "missing.xy: no such file" in capsys.readouterr().out


def test_match_loads_without_torch_ray_matplotlib_or_training_code():
    import subprocess
    import sys

    code = ("import sys, synthxrd.match, synthxrd.match.fusion; "
            "print(sorted(m for m in ('torch', 'ray', 'matplotlib', 'synthxrd.train', 'synthxrd.data', "
            "'synthxrd.generate', 'synthxrd.validation') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_saved_reflections_are_byte_shuffled_without_loss(tmp_path):
    """d and f2 are stored as byte planes (differenced for d): bit for bit the same after a round trip,
    for any float32 (NaN, infinities, negative zero, subnormals), and the shipped file stays small."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from synthxrd.match.library import _pack_float32, _unpack_float32

    @settings(max_examples=60, deadline=None)
    @given(values=arrays(np.float32, st.integers(0, 200), elements=st.floats(width=32, allow_nan=True)),
           delta=st.booleans())
    def round_trip(values, delta):
        back = _unpack_float32(_pack_float32(values, delta=delta), delta=delta)
        assert back.dtype == np.float32 and np.array_equal(back.view(np.uint32), values.view(np.uint32))

    round_trip()
    lib = ReferenceLibrary.load("amcsd")
    part = lib.select(np.arange(300))
    back = ReferenceLibrary.load(part.save(tmp_path / "part.npz"))
    assert back.fingerprint == part.fingerprint and np.array_equal(back.d, part.d)
    assert np.array_equal(back.mass_factors, part.mass_factors)
    with np.load(tmp_path / "part.npz") as npz:
        assert {"d_packed", "f2_packed"} <= set(npz.files) and "d" not in npz.files
    shipped = files("synthxrd") / "resources" / "library"
    assert max((shipped / name).stat().st_size for name in ("mp_experimental.npz", "amcsd.npz")) < 20e6


def _refined(rows):
    """Matches with (score, group, fom): fom None where not refined (rwp = fom)."""
    return [Match(f"id{i}", "X", g, s, rwp=f, fom=f) for i, (s, g, f) in enumerate(rows)]


def test_evidence_scores_add_the_fit_to_the_search_score():
    plain = _matches([(0.9, 62), (0.8, 14)])
    np.testing.assert_allclose(evidence_scores(plain, 0.1), [0.9, 0.8])  # nothing refined: the search's scores
    ms = _refined([(0.9, 62, 0.40), (0.85, 14, 0.20), (0.0, 12, 0.30), (0.95, 2, None), (0.5, 3, None)])
    e = evidence_scores(ms, 0.1)
    # s_j - w_fit ln(fom_j / fom_min); the isotype (no search score) takes the refined ones' best, 0.9
    np.testing.assert_allclose(e, [0.9 - 0.1 * np.log(2.0), 0.85, 0.9 - 0.1 * np.log(1.5), 0.95, 0.5])
    np.testing.assert_allclose(evidence_scores(ms, 0.0), [0.9, 0.85, 0.0, 0.95, 0.5])  # w_fit 0: the scores
    # best 0.95 (group 2, not refined); the next group is the isotype's 12 at 0.9 - 0.1 ln 1.5
    assert match_features(ms, 0.1) == pytest.approx((0.95, 0.05 + 0.1 * np.log(1.5)))


def test_fusion_fit_on_refined_matches_learns_to_trust_the_fit(tmp_path):
    """Where the refinement's figure of merit finds the truth and the search's score does not, the fitted
    rule weighs the fit (w_fit > 0), answers by it, and keeps that through its file."""
    rng = np.random.default_rng(1)
    matches, labels = [], []
    for _ in range(400):
        truth = int(rng.integers(1, 231))
        other = truth % 230 + 1
        s = rng.uniform(0.7, 0.9)
        good, bad = rng.uniform(0.15, 0.25), rng.uniform(0.3, 0.5)
        # the search puts the wrong group first half the time; the fit always prefers the right one
        first, second = ((s, other, bad), (s - 0.01, truth, good)) if rng.random() < 0.5 else \
            ((s, truth, good), (s - 0.01, other, bad))
        matches.append(_refined([first, second]))
        labels.append(truth)
    network = np.full((400, 230), 1 / 230)
    rule = FusionRule.fit(network, matches, labels)
    assert rule.refined and rule.w_fit > 0.01
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    assert (fused.argmax(axis=1) + 1 == np.array(labels)).mean() > 0.95
    plain = FusionRule.fit(network, [_matches([(m.score, m.spacegroup) for m in ms]) for ms in matches], labels)
    assert not plain.refined and plain.w_fit == 0.0
    assert rule.metadata["mean_nll"] < plain.metadata["mean_nll"] - 0.1
    back = FusionRule.load(rule.save(tmp_path / "rule.json"))
    assert back == rule and back.refined
    with pytest.raises(DataError, match="w_fit"):
        FusionRule(w_fit=-1.0)


def test_evidence_prefers_the_higher_symmetry_in_a_near_tie():
    """e_j += w_sym ln |P_j|: P-1 (|P| 2) first by 0.001, P2_1/m (|P| 4) passes it at w_sym 0.003."""
    ms = _matches([(0.800, 2), (0.799, 11), (0.70, 221)])
    np.testing.assert_allclose(evidence_scores(ms, 0.0, 0.003),
                               [0.800 + 0.003 * np.log(2), 0.799 + 0.003 * np.log(4), 0.70 + 0.003 * np.log(48)])
    assert FusionRule(w_sym=0.003).match_probabilities(ms).argmax() + 1 == 11
    assert FusionRule(w_sym=0.0).match_probabilities(ms).argmax() + 1 == 2


def test_fusion_fit_learns_the_preference_for_the_higher_symmetry(tmp_path):
    """Where near-tied candidates are a group and its subgroup and the truth is mostly the group of higher
    symmetry, the fitted rule weighs the symmetry (w_sym > 0), keeps it through its file, and answers
    better than the rule without it; a rule file written before w_sym existed reads as w_sym 0."""
    rng = np.random.default_rng(2)
    pairs = [(11, 2), (62, 19), (139, 87), (191, 183), (221, 195)]  # (higher, lower) point-group order
    matches, labels = [], []
    for _ in range(400):
        high, low = pairs[rng.integers(len(pairs))]
        s = rng.uniform(0.7, 0.9)
        first, second = (high, low) if rng.random() < 0.5 else (low, high)
        matches.append(_matches([(s, first), (s - rng.uniform(0, 0.004), second)]))
        labels.append(high if rng.random() < 0.85 else low)
    network = np.full((400, 230), 1 / 230)
    rule = FusionRule.fit(network, matches, labels)
    assert rule.w_sym > 0.001
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    without = replace(rule, w_sym=0.0)
    plain = np.array([without.fuse(p, m) for p, m in zip(network, matches)])
    hits = lambda p: (p.argmax(axis=1) + 1 == np.array(labels)).mean()  # noqa: E731
    assert hits(fused) > 0.8 > hits(plain) + 0.2
    assert FusionRule.load(rule.save(tmp_path / "rule.json")).w_sym == rule.w_sym
    old = {k: v for k, v in rule.to_dict().items() if k != "w_sym"}
    assert FusionRule.from_dict(old).w_sym == 0.0
