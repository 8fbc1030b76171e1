"""Tests of synthxrd.validation: filters, labels, patterns, manifest, caching, leak checks, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from synthxrd import simulate, stats
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.split import Split, load_split
from synthxrd.structure import CrystalBatch
from synthxrd.validation import (
    DEFAULT_SETS,
    GAP_SETS,
    MANIFEST,
    SET_NAMES,
    Manifest,
    build_validation_sets,
    ensure_validation_sets,
    load_validation_sets,
    read_cif_sites,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")

MINI = Path(__file__).parent / "data" / "mini_collection"
STATISTICS_PART = ["cu_primitive", "cuo2_tetragonal", "mg_hcp", "srtio3"]
CLASSES = [1, 123, 194, 221, 225, 227]
# test-part structures and what the sets must hold
EXPECTED_ALL = ["big_volume", "cscl", "cuau_disordered", "many_sites", "nacl", "nacl_distorted", "p1_small",
                "si_primitive"]
EXPECTED_MATCH = ["cscl", "cuau_disordered", "nacl", "nacl_distorted", "p1_small", "si_primitive"]
EXPECTED_PURE = ["cscl", "nacl", "nacl_distorted", "p1_small", "si_primitive"]
# calibration-part structures (copies under other ids) and what the calibration set must hold (match's filters)
CALIBRATION_PART = {"cal_cscl": "cscl.cif", "cal_nacl": "nacl.cif", "cal_rutile": "tio2_rutile.cif"}
EXPECTED_CALIBRATION = ["cal_cscl", "cal_nacl"]  # rutile (136) is not a class; cal_big: V 8000 > 7000
N_RANDOM = 12


def p1_cif(name: str, cell: tuple[float, float, float], atoms: list[tuple[str, tuple[float, float, float]]]) -> str:
    lines = [f"data_{name}", "_symmetry_space_group_name_H-M   'P 1'",
             *(f"_cell_length_{x}   {v:.6f}" for x, v in zip("abc", cell)),
             "_cell_angle_alpha   90", "_cell_angle_beta   90", "_cell_angle_gamma   90",
             "loop_", " _symmetry_equiv_pos_as_xyz", "  'x, y, z'", "loop_", " _atom_site_type_symbol",
             " _atom_site_label", " _atom_site_fract_x", " _atom_site_fract_y", " _atom_site_fract_z",
             " _atom_site_occupancy"]
    lines += [f"  {el}  {el}{k}  {p[0]:.6f}  {p[1]:.6f}  {p[2]:.6f}  1" for k, (el, p) in enumerate(atoms)]
    return "\n".join(lines) + "\n"


def random_atoms(rng, n: int, elements=("O", "Mg", "Si")):
    return [(elements[k % len(elements)], tuple(rng.random(3))) for k in range(n)]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Mini collection + P1 structures testing the filters, a split CSV, an index.csv, statistics."""
    root = tmp_path_factory.mktemp("validation")
    src = root / "cifs"
    shutil.copytree(MINI, src)
    rng = np.random.default_rng(3)
    (src / "big_volume.cif").write_text(p1_cif("big", (20.0, 20.0, 20.0), random_atoms(rng, 4)))  # V 8000 > 7000
    (src / "many_sites.cif").write_text(p1_cif("many", (15.0, 15.0, 15.0), random_atoms(rng, 101)))  # 101 sites
    (src / "p1_small.cif").write_text(p1_cif("small", (6.0, 6.5, 7.0), random_atoms(rng, 3)))
    a = 5.64
    nacl = [("Na", (x, y, z)) for x, y, z in [(0, 0, 0), (0, .5, .5), (.5, 0, .5), (.5, .5, 0)]]
    nacl += [("Cl", (x, y, z)) for x, y, z in [(.5, .5, .5), (.5, 0, 0), (0, .5, 0), (0, 0, .5)]]
    nacl[0] = ("Na", (0.03 / a, 0.0, 0.0))  # 0.03 A off: Fm-3m at symprec 0.1, lower at 1e-3
    (src / "nacl_distorted.cif").write_text(p1_cif("nacl_distorted", (a, a, a), nacl))
    for name, original in CALIBRATION_PART.items():
        shutil.copy(MINI / original, src / f"{name}.cif")
    (src / "cal_big.cif").write_text(p1_cif("cal_big", (20.0, 20.0, 20.0), random_atoms(rng, 4)))
    ids = sorted(p.stem for p in src.glob("*.cif"))
    split = root / "split.csv"
    split.write_text("id,prototype,part\n" + "".join(
        f"{i},proto_{i},{part_of(i)}\n" for i in ids))
    # index.csv next to the CIFs: one deliberately wrong label (nacl: 221 instead of 225)
    (src / "index.csv").write_text("mp_id,spacegroup\ncscl,221\nnacl,221\nsi_primitive,227\n")
    statistics = stats.compute(src, workers=1, progress=False, ids=STATISTICS_PART)
    stats_file = statistics.save(root / "stats.npz")
    return {"root": root, "source": src, "split": split, "statistics": stats_file, "ids": ids}


def part_of(identifier: str) -> str:
    """The split part of a structure of the test collection."""
    return ("statistics" if identifier in STATISTICS_PART else
            "calibration" if identifier.startswith("cal_") else "test")


def kwargs(c, **over):
    kw = dict(source=c["source"], split=c["split"], statistics=c["statistics"], classes=CLASSES, n_random=N_RANDOM,
              seed=0, workers=1, progress=False)
    kw.update(over)
    return kw


@pytest.fixture(scope="module")
def built(collection):
    out = collection["root"] / "cache"
    manifest = build_validation_sets(out, **kwargs(collection, workers=2))
    return out, manifest, load_validation_sets(out)


def test_sets_and_filters(built, collection):
    out, manifest, sets = built
    assert set(sets) == set(DEFAULT_SETS) and set(SET_NAMES) == set(DEFAULT_SETS) | set(GAP_SETS)
    assert sets["all"].ids.tolist() == EXPECTED_ALL
    assert sets["match"].ids.tolist() == EXPECTED_MATCH
    assert sets["match_pure"].ids.tolist() == EXPECTED_PURE
    assert sets["calibration"].ids.tolist() == EXPECTED_CALIBRATION
    for name in ("all", "match", "match_pure", "calibration"):
        s = sets[name]
        assert set(s.crystals.spacegroups.tolist()) <= set(CLASSES)
        assert len(s.crystals) == len(s.ids) == len(s.patterns) == manifest.sets[name]["count"]
    match = sets["match"].extra
    assert np.all(match["n_sites"] <= 100) and np.all(match["conventional_volume"] <= 7000.0)
    a = sets["all"]
    extra = dict(zip(a.ids.tolist(), zip(a.extra["n_sites"], a.extra["conventional_volume"])))
    assert extra["many_sites"][0] == 101 and extra["big_volume"][1] == pytest.approx(8000.0)
    pure = sets["match_pure"]
    assert np.all(pure.crystals.occupancies == 1.0) and np.all(pure.extra["ordered"])
    k = sets["match"].ids.tolist().index("cuau_disordered")
    assert not sets["match"].extra["ordered"][k]
    # tio2_rutile (136) is not a class, broken.cif cannot be read
    assert "tio2_rutile" not in sets["all"].ids and "broken" not in sets["all"].ids
    assert [f["id"] for f in manifest["test_part"]["failures"]] == ["broken"]


def test_never_statistics_part(built, collection):
    _, manifest, sets = built
    for name in ("all", "match", "match_pure", "calibration"):
        assert not set(sets[name].ids.tolist()) & set(STATISTICS_PART)
    assert manifest["statistics"]["n_test_ids_in_statistics"] == 0
    assert manifest["statistics"]["n_calibration_ids_in_statistics"] == 0


def test_calibration_set_of_the_calibration_part_only(built, collection):
    """calibration: calibration-part ids only, with match's filters; disjoint from every test-part set."""
    _, manifest, sets = built
    cal = sets["calibration"]
    assert {part_of(i) for i in cal.ids.tolist()} == {"calibration"}
    for name in ("all", "match", "match_pure"):
        assert {part_of(i) for i in sets[name].ids.tolist()} == {"test"}
        assert not set(sets[name].ids.tolist()) & set(cal.ids.tolist())
    assert np.all(cal.extra["n_sites"] <= 100) and np.all(cal.extra["conventional_volume"] <= 7000.0)
    assert set(cal.crystals.spacegroups.tolist()) <= set(CLASSES)
    assert cal.metadata["set"] == "calibration"
    assert "calibration-part" in manifest.sets["calibration"]["description"]
    cp = manifest["calibration_part"]
    assert cp["n_in_split"] == len(CALIBRATION_PART) + 1 and cp["n_failed"] == 0 and cp["n_label_in_classes"] == 3
    assert manifest["test_part"]["n_in_split"] == len(EXPECTED_ALL) + 2  # + broken, tio2_rutile


def test_calibration_set_alone_reads_only_the_calibration_part(collection, tmp_path):
    m = build_validation_sets(tmp_path, **kwargs(collection, sets=("calibration",)))
    assert list(m.sets) == ["calibration"] and m["test_part"]["n_found"] is None
    assert load_validation_sets(tmp_path)["calibration"].ids.tolist() == EXPECTED_CALIBRATION


def test_calibration_set_of_a_split_without_calibration_part_is_empty(collection, tmp_path):
    old = tmp_path / "split.csv"
    parts = {i: "test" if part_of(i) == "calibration" else part_of(i) for i in collection["ids"]}
    old.write_text("id,prototype,part\n" + "".join(f"{i},proto_{i},{p}\n" for i, p in parts.items()))
    with pytest.warns(UserWarning, match="no calibration part"):
        m = build_validation_sets(tmp_path / "out", **kwargs(collection, split=old, sets=("calibration",)))
    assert m.sets["calibration"]["count"] == 0


def test_shipped_split_test_part_disjoint_from_shipped_statistics():
    split = load_split()
    test = split.ids_of("test")
    assert len(test) > 0 and not np.intersect1d(test, split.ids_of("statistics")).size
    assert not np.intersect1d(test, stats.Statistics.load().ids).size


def test_labels_recomputed(built, collection):
    _, manifest, sets = built
    s = sets["all"]
    strict_labels = s.extra["spacegroups_strict"].tolist()
    for i, label, strict in zip(s.ids.tolist(), s.crystals.spacegroups.tolist(), strict_labels):
        text = (collection["source"] / f"{i}.cif").read_text()
        assert label == stats.analyze_cif(text, symprec=0.1).spacegroup
        assert strict == stats.analyze_cif(text, symprec=1e-3).spacegroup
    labels = dict(zip(s.ids.tolist(), s.crystals.spacegroups.tolist()))
    strict = dict(zip(s.ids.tolist(), s.extra["spacegroups_strict"].tolist()))
    assert labels["nacl_distorted"] == 225 and strict["nacl_distorted"] != 225
    assert labels["big_volume"] == 1 and labels["cuau_disordered"] == 225
    mism = manifest.sets["all"]["mismatch"]
    assert mism["strict"]["n"] == len(EXPECTED_ALL) and mism["strict"]["n_mismatch"] >= 1
    assert mism["index"]["n"] == 3 and mism["index"]["n_mismatch"] == 1  # nacl listed as 221
    assert mism["split_prototype"]["n"] == 0  # prototypes here are names, no space group to compare
    assert manifest["mismatch"]["strict"]["n"] == len(EXPECTED_ALL) + 1  # + tio2_rutile (not a class)


def test_patterns_reproducible(built):
    _, _, sets = built
    for name in DEFAULT_SETS:
        s = sets[name]
        assert s.patterns.shape == (len(s.ids), 8501) and s.patterns.dtype == np.float32
        np.testing.assert_allclose(s.patterns.max(axis=1), 1.0, rtol=1e-5)
        assert s.two_theta[0] == pytest.approx(5.0) and s.two_theta[-1] == pytest.approx(90.0)
        sizes = s.extra["crystallite_size_nm"]
        assert np.all((sizes >= 20) & (sizes <= 100))
        again = simulate.patterns(CrystalBatch(s.crystals.lattices, s.crystals.frac_coords, s.crystals.numbers,
                                               s.crystals.occupancies, s.crystals.offsets), crystallite_size_nm=sizes)
        np.testing.assert_allclose(again, s.patterns, atol=1e-6)
    # a crystal has the same size (and pattern) in every set: sizes depend on (seed, id) only
    a, m = sets["all"], sets["match"]
    for k, i in enumerate(m.ids.tolist()):
        j = a.ids.tolist().index(i)
        assert m.extra["crystallite_size_nm"][k] == a.extra["crystallite_size_nm"][j]
        np.testing.assert_array_equal(m.patterns[k], a.patterns[j])


def test_crystals_as_read(built, collection):
    _, _, sets = built
    s = sets["all"]
    k = s.ids.tolist().index("many_sites")
    lattice, positions, _ = read_cif_sites((collection["source"] / "many_sites.cif").read_text())
    c = s.crystals[k]
    np.testing.assert_allclose(c.lattice, lattice)
    np.testing.assert_allclose(c.frac_coords, positions)  # original cell, file order
    k = s.ids.tolist().index("cuau_disordered")
    assert sorted(s.crystals[k].occupancies.tolist()) == [0.5] * 8  # 4 sites x (Cu, Au)


def test_random_set(built):
    _, manifest, sets = built
    r = sets["random"]
    assert len(r.ids) == N_RANDOM and r.ids[0] == "random-000000"
    assert set(r.crystals.spacegroups.tolist()) <= {123, 194, 221, 225}  # classes with structures
    assert np.all(r.crystals.occupancies == 1.0)
    assert manifest.sets["random"]["mismatch"]["intended_vs_spglib"]["n"] == N_RANDOM


def test_manifest(built, collection):
    out, manifest, _ = built
    data = json.loads((out / MANIFEST).read_text())
    assert data == manifest.data
    from synthxrd import __version__
    from synthxrd.split import read_split

    assert data["synthxrd_version"] == __version__
    assert data["classes"] == CLASSES and data["seed"] == 0 and data["n_random"] == N_RANDOM
    assert data["split"]["sha256"] == read_split(collection["split"]).sha256
    assert data["split"]["path"] == str(collection["split"].resolve())
    assert data["source"]["path"] == str(collection["source"].resolve())
    assert data["source"]["index"] == str(collection["source"].resolve() / "index.csv")
    st = stats.Statistics.load(collection["statistics"])
    assert data["statistics"]["format_version"] == st.version and len(data["statistics"]["sha256"]) == 64
    assert data["filters"]["max_sites"] == 100 and data["filters"]["max_volume"] == 7000.0
    assert data["filters"]["symprec"] == 0.1 and data["filters"]["strict_symprec"] == 1e-3
    assert data["build_time_s"]["total"] > 0 and data["workers"] == 2
    for name in DEFAULT_SETS:
        info = data["sets"][name]
        path = out / info["file"]
        assert path.is_file() and path.stat().st_size == info["bytes"] and len(info["sha256"]) == 64
        assert sum(info["class_counts"].values()) == info["count"]
    n_calibration = len(CALIBRATION_PART) + 1  # + cal_big
    assert data["test_part"]["n_in_split"] == len(collection["ids"]) - len(STATISTICS_PART) - n_calibration
    assert data["test_part"]["n_failed"] == 1
    loaded = load_validation_sets(out, ["match"], verify=True)
    assert list(loaded) == ["match"] and loaded["match"].metadata["set"] == "match"
    with pytest.raises(ConfigError, match="no validation set"):
        load_validation_sets(out, ["nope"])


def test_cache_reuse_and_rebuild(built, collection, tmp_path):
    out = tmp_path / "cache"
    first = ensure_validation_sets(out, **kwargs(collection))
    assert not first.reused
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = ensure_validation_sets(out, **kwargs(collection))
    assert again.reused and again.data == Manifest.load(out).data
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # a subset of the sets is served by the same cache
    assert ensure_validation_sets(out, **kwargs(collection, sets=("match",))).reused
    # built with 1 worker = built with 2 workers (fixture): same crystals, sizes and patterns
    mine, theirs = load_validation_sets(out), built[2]
    for name in DEFAULT_SETS:
        np.testing.assert_array_equal(mine[name].patterns, theirs[name].patterns)
        np.testing.assert_array_equal(mine[name].crystals.frac_coords, theirs[name].crystals.frac_coords)
    changed = ensure_validation_sets(out, **kwargs(collection, seed=1))
    assert not changed.reused and changed.seed == 1 and "seed" in changed["rebuild_reason"]
    other = load_validation_sets(out, ["random"])["random"]
    assert not np.array_equal(other.crystals.lattices, theirs["random"].crystals.lattices)
    assert not ensure_validation_sets(out, **kwargs(collection, seed=1, classes=[221, 225])).reused
    # a damaged file is noticed
    (out / "match.h5").write_bytes(b"x")
    rebuilt = ensure_validation_sets(out, **kwargs(collection, seed=1, classes=[221, 225]))
    assert not rebuilt.reused and "match.h5" in rebuilt["rebuild_reason"]
    assert load_validation_sets(out)["all"].ids.tolist() == ["cscl", "cuau_disordered", "nacl", "nacl_distorted"]


def test_only_some_sets(collection, tmp_path):
    m = build_validation_sets(tmp_path, **kwargs(collection, sets=("match_pure",)))
    assert list(m.sets) == ["match_pure"] and sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "match_pure.h5"]
    assert load_validation_sets(tmp_path)["match_pure"].ids.tolist() == EXPECTED_PURE


def test_statistics_with_test_structures_refused(collection, tmp_path):
    everything = stats.compute(collection["source"], workers=1, progress=False)
    with pytest.raises(ConfigError, match="test part"):
        build_validation_sets(tmp_path, **kwargs(collection, statistics=everything, sets=("match",)))
    with_calibration = stats.compute(collection["source"], workers=1, progress=False,
                                     ids=[*STATISTICS_PART, "cal_nacl"])
    with pytest.raises(ConfigError, match="calibration part"):  # whatever the sets asked for
        build_validation_sets(tmp_path, **kwargs(collection, statistics=with_calibration, sets=("match",)))


def test_split_with_id_in_both_parts_refused(collection, tmp_path):
    bad = tmp_path / "split.csv"
    bad.write_text("id,prototype,part\nnacl,a,test\nnacl,a,statistics\ncscl,b,test\n")
    with pytest.raises(DataError, match="both parts"):
        build_validation_sets(tmp_path / "out", **kwargs(collection, split=bad, sets=("match",)))


def test_bad_options(collection, tmp_path):
    with pytest.raises(ConfigError, match="sets"):
        build_validation_sets(tmp_path, **kwargs(collection, sets=("train",)))
    with pytest.raises(ConfigError, match="classes"):
        build_validation_sets(tmp_path, **kwargs(collection, classes=[0, 500]))
    with pytest.raises(ConfigError, match="source"):
        build_validation_sets(tmp_path, **kwargs(collection, source=None))
    with pytest.raises(DataError, match="no such"):
        build_validation_sets(tmp_path, **kwargs(collection, source=tmp_path / "missing.tar.xz"))
    with pytest.raises(DataError, match="no validation manifest"):
        load_validation_sets(tmp_path / "empty")


def test_split_object_and_default_classes(collection, tmp_path):
    from synthxrd.split import read_split

    split = read_split(collection["split"])
    sub = Split(split.ids, split.prototypes, split.parts, {}, None)
    m = build_validation_sets(tmp_path, **kwargs(collection, split=sub, classes=None, min_count=1,
                                                 sets=("all",)))
    assert m.classes == [123, 194, 221, 225]  # the groups of the statistics part
    assert m["split"]["path"] == "<Split object>" and m["min_count"] == 1
    assert load_validation_sets(tmp_path)["all"].ids.tolist() == ["cscl", "cuau_disordered", "nacl", "nacl_distorted"]


def test_cli(collection, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["validation", "build", "--out", str(out), "--source", str(collection["source"]), "--split",
            str(collection["split"]), "--statistics", str(collection["statistics"]), "--classes",
            *map(str, CLASSES), "--n-random", "5", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "match" in text and f"{len(EXPECTED_MATCH)} crystals" in text and "strict" in text
    assert Manifest.load(out).counts() == {"random": 5, "calibration": len(EXPECTED_CALIBRATION),
                                           "match": len(EXPECTED_MATCH), "all": len(EXPECTED_ALL),
                                           "match_pure": len(EXPECTED_PURE)}
    assert "calibration part: 4 ids" in text
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert main([*argv[:-1], "--seed", "3", "--no-progress"]) == 0
    assert "rebuilt (seed changed)" in capsys.readouterr().out
    assert main(["validation", "info", str(out)]) == 0
    assert "match_pure" in capsys.readouterr().out
    assert main(["validation", "build", "--out", str(tmp_path / "x"), "--source", str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_help_mentions_shared_collection(capsys):
    with pytest.raises(SystemExit):
        main(["validation", "build", "--help"])
    assert "mp_experimental/structures.tar.xz" in capsys.readouterr().out


def test_real_collection_subset(mp_experimental_data, tmp_path):
    """A few test-part structures of the shipped split, read from the real archive; labels agree with index.csv."""
    split = load_split()
    test = split.parts == "test"
    keep = np.flatnonzero(test)[::400]
    keep = np.concatenate([keep, np.flatnonzero(~test)[:5]])
    sub = Split(split.ids[keep], split.prototypes[keep], split.parts[keep], {}, None)
    m = build_validation_sets(tmp_path, source=mp_experimental_data / "structures.tar.xz", split=sub,
                              sets=("match", "all"), workers=1, progress=False)
    assert m["test_part"]["n_found"] == int(test[keep].sum()) and m["test_part"]["n_failed"] == 0
    assert m["mismatch"]["index"]["n"] == int(test[keep].sum()) and m["mismatch"]["index"]["n_mismatch"] == 0
    assert m["mismatch"]["split_prototype"]["n_mismatch"] == 0
    assert len(m.classes) == len(stats.Statistics.load().represented(stats.REPRESENTED_MIN_COUNT))
    assert 0 < m.sets["match"]["count"] <= m.sets["all"]["count"]


@pytest.fixture(scope="module")
def built_gap(collection):
    out = collection["root"] / "cache_gap"
    manifest = build_validation_sets(out, **kwargs(collection, sets=SET_NAMES))
    return out, manifest, load_validation_sets(out)


def test_gap_sets_leave_the_other_sets_unchanged(built, built_gap):
    """Building the gap sets too does not change the content of the default sets."""
    theirs, mine = built[2], built_gap[2]
    assert set(mine) == set(SET_NAMES)
    for name in DEFAULT_SETS:
        np.testing.assert_array_equal(mine[name].ids, theirs[name].ids)
        np.testing.assert_array_equal(mine[name].patterns, theirs[name].patterns)
        for field in ("lattices", "frac_coords", "numbers", "occupancies", "spacegroups"):
            np.testing.assert_array_equal(getattr(mine[name].crystals, field), getattr(theirs[name].crystals, field))
        assert mine[name].extra.keys() == theirs[name].extra.keys()
        for k in mine[name].extra:
            np.testing.assert_array_equal(mine[name].extra[k], theirs[name].extra[k])


def test_gap_sets(built_gap):
    from synthxrd import gap, wyckoff

    out, manifest, sets = built_gap
    match = sets["match"]
    size = dict(zip(match.ids.tolist(), match.extra["crystallite_size_nm"].tolist()))
    label = dict(zip(match.ids.tolist(), match.crystals.spacegroups.tolist()))
    for name in GAP_SETS:
        s, info = sets[name], manifest.sets[name]
        # every match crystal randomized (no failure here), labelled with its original group
        assert s.ids.tolist() == EXPECTED_MATCH and info["count"] == len(EXPECTED_MATCH)
        assert info["failures"] == {"n": 0, "n_match": len(EXPECTED_MATCH), "by_reason": {}, "failures": []}
        assert s.crystals.spacegroups.tolist() == [label[i] for i in s.ids.tolist()]
        assert s.extra["crystallite_size_nm"].tolist() == [size[i] for i in s.ids.tolist()]
        assert s.patterns.shape == (len(s.ids), 8501) and s.patterns.dtype == np.float32
        np.testing.assert_allclose(s.patterns.max(axis=1), 1.0, rtol=1e-5)
        assert s.metadata["set"] == name and s.metadata["from_set"] == "match"
        mism = info["mismatch"]["intended_vs_spglib"]
        assert mism["symprec"] == 0.1 and mism["n"] == len(EXPECTED_MATCH)
        assert mism["n_mismatch"] == int(np.count_nonzero(s.extra["spacegroups_found"] != s.crystals.spacegroups))
        assert mism["n_mismatch"] <= 1
        for i in range(len(s)):
            c = s.crystals[i]
            # spglib finds the label or a supergroup: the label's operations leave the crystal invariant
            pos, species = gap.crystal_sites(c)
            types = gap.site_types(species)
            sg = wyckoff.space_group(int(s.crystals.spacegroups[i]))
            for rot, trans in zip(sg.rotations, sg.translations):
                d = (pos @ rot.T + trans)[:, None] - pos[None]
                assert ((np.abs(d - np.round(d)).max(-1) < 1e-6) & (types[:, None] == types[None])).any(1).all()
        np.testing.assert_allclose(s.extra["cell_volume"], np.abs(np.linalg.det(s.crystals.lattices)))
    coords, lattice = sets["match_random_coords"], sets["match_random_lattice"]
    # random coordinates keep the (conventional) cell, random lattices draw a new volume
    np.testing.assert_allclose(coords.extra["cell_volume"], coords.extra["conventional_volume"], rtol=1e-6)
    assert not np.allclose(lattice.extra["cell_volume"], lattice.extra["conventional_volume"], rtol=1e-3)
    k = EXPECTED_MATCH.index("p1_small")  # P1: every coordinate is free
    assert not np.allclose(np.sort(coords.crystals[k].frac_coords, 0), np.sort(match.crystals[k].frac_coords, 0))
    k = EXPECTED_MATCH.index("cuau_disordered")  # partial occupancies kept
    assert sorted(set(lattice.crystals[k].occupancies.tolist())) == sorted(set(match.crystals[k].occupancies.tolist()))


def test_gap_sets_reproducible_and_cli(built_gap, collection, tmp_path, capsys):
    out = tmp_path / "cli_gap"
    argv = ["validation", "build", "--out", str(out), "--source", str(collection["source"]), "--split",
            str(collection["split"]), "--statistics", str(collection["statistics"]), "--classes",
            *map(str, CLASSES), "--workers", "2", "--no-progress", "--sets", *GAP_SETS]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "match_random_coords" in text and "match_random_lattice" in text and "!= intended" in text
    assert sorted(Manifest.load(out).sets) == sorted(GAP_SETS)
    mine, theirs = load_validation_sets(out), built_gap[2]
    for name in GAP_SETS:  # with 2 workers and without the other sets: the same crystals and patterns
        np.testing.assert_array_equal(mine[name].ids, theirs[name].ids)
        np.testing.assert_array_equal(mine[name].crystals.frac_coords, theirs[name].crystals.frac_coords)
        np.testing.assert_array_equal(mine[name].crystals.lattices, theirs[name].crystals.lattices)
        np.testing.assert_array_equal(mine[name].patterns, theirs[name].patterns)
    # the gap sets are opt-in: a default request is not served by this cache
    assert not (out / "match.h5").exists()
    with pytest.raises(SystemExit):
        main(["validation", "build", "--out", str(out), "--source", str(collection["source"]), "--sets", "nope"])


def test_trainer_reads_gap_sets(built_gap):
    """train._validation_sets loads the gap sets by name, unchanged."""
    from synthxrd.models.checkpoint import InputSpec
    from synthxrd.train import TrainConfig, _validation_sets

    out, manifest, sets = built_gap
    config = TrainConfig(validation_dir=str(out), val_sets=tuple(GAP_SETS))
    got = _validation_sets(config, np.array(CLASSES))
    assert sorted(got) == sorted(GAP_SETS)
    spec = InputSpec(step=config.grid_step)
    for name, (x, y) in got.items():
        assert x.shape == (manifest.sets[name]["count"], spec.n) and x.dtype == np.float32
        np.testing.assert_allclose(x, spec.apply(sets[name].patterns), atol=1e-6)
        np.testing.assert_array_equal(np.array(CLASSES)[y], sets[name].crystals.spacegroups)


def test_trainer_selects_and_calibrates_on_calibration_not_match(built, tmp_path):
    """best.pt is selected and its temperature fitted on calibration; match is evaluated and reported only."""
    pytest.importorskip("torch")
    from synthxrd.train import TrainConfig, load_checkpoint, train

    out, _, _ = built
    config = TrainConfig(out=str(tmp_path / "run"), model="park_small", batch_size=8, workers=0, log_every=1,
                         max_steps=2, val_every=2, n_val_random=16, checkpoint_every=2, seed=5,
                         validation_dir=str(out), val_sets=("random", "calibration", "match"))
    summary = train(config, progress=False)
    assert set(summary["validation"]) == {"random", "calibration", "match"}
    assert summary["best"]["set"] == "calibration"
    assert summary["calibration"]["fitted_on"] == "calibration"
    assert summary["calibration"]["n"] == len(EXPECTED_CALIBRATION)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["calibration"]["fitted_on"] == "calibration"
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["best"]["set"] == "calibration"


def test_trainer_without_calibration_set_falls_back_to_random(collection, tmp_path):
    """A cache built before the calibration set existed: one warning naming the command, then random."""
    from synthxrd.train import TrainConfig, _validation_sets
    from synthxrd.train_session import selection_set

    old = tmp_path / "old"
    build_validation_sets(old, **kwargs(collection, sets=("match",)))
    config = TrainConfig(validation_dir=str(old), n_val_random=4)
    assert config.val_sets == ("random", "calibration", "match")
    with pytest.warns(UserWarning, match="no calibration set") as caught:
        got = _validation_sets(config, np.array(CLASSES))
    assert len([w for w in caught if "calibration" in str(w.message)]) == 1
    assert "synthxrd validation build" in str(caught[0].message)
    assert set(got) == {"random", "match"} and selection_set(got) == "random"
    assert selection_set(["match"]) is None and selection_set(["match", "calibration", "random"]) == "calibration"
