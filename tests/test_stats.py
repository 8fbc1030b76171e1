"""Tests of synthxrd.stats on a hand-checkable mini collection (tests/data/mini_collection).

The mini collection (expected values worked out by hand from the CIFs):

=================  ====  ===============================  ======  ===================
file               SG    asymmetric unit (Wyckoff)        atoms   conventional a (Å)
=================  ====  ===============================  ======  ===================
nacl               225   Na 4a, Cl 4b                     8       5.64
cu_primitive       225   Cu 4a (1-atom primitive cell)    4       2.556191·√2 = 3.615
cuau_disordered    225   Cu0.5Au0.5 4a (not P1: pymatgen) 4       3.85
cscl               221   Cs 1a, Cl 1b                     2       4.12
srtio3             221   Sr 1a, Ti 1b, O 3c               5       3.905
si_primitive       227   Si 8b (spglib's origin)          8       3.83959·√2 = 5.43
tio2_rutile        136   Ti 2a, O 4f                      6       4.594, c 2.959
cuo2_tetragonal    123   Cu 1a, O 1b, O 1c                3       3.0, c 5.0
mg_hcp             194   Mg 2c                            2       3.209, c 5.211
broken             —     malformed: a failure             —       —
=================  ====  ===============================  ======  ===================
"""

from __future__ import annotations

import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest

import synthxrd
from synthxrd import stats
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.stats import Statistics

MINI = Path(__file__).parent / "data" / "mini_collection"

SPACEGROUPS = {"cscl": 221, "cu_primitive": 225, "cuau_disordered": 225, "cuo2_tetragonal": 123, "mg_hcp": 194,
               "nacl": 225, "si_primitive": 227, "srtio3": 221, "tio2_rutile": 136}
# (Wyckoff letter, multiplicity, Z, occupancy) of every site row, in orbit order
SITES = {
    "cscl": [("a", 1, 55, 1.0), ("b", 1, 17, 1.0)],
    "cu_primitive": [("a", 4, 29, 1.0)],
    "cuau_disordered": [("a", 4, 29, 0.5), ("a", 4, 79, 0.5)],
    "cuo2_tetragonal": [("a", 1, 29, 1.0), ("b", 1, 8, 1.0), ("c", 1, 8, 1.0)],
    "mg_hcp": [("c", 2, 12, 1.0)],
    "nacl": [("a", 4, 11, 1.0), ("b", 4, 17, 1.0)],
    "si_primitive": [("b", 8, 14, 1.0)],
    "srtio3": [("a", 1, 38, 1.0), ("b", 1, 22, 1.0), ("c", 3, 8, 1.0)],
    "tio2_rutile": [("a", 2, 22, 1.0), ("f", 4, 8, 1.0)],
}
N_ATOMS = {"cscl": 2, "cu_primitive": 4, "cuau_disordered": 4, "cuo2_tetragonal": 3, "mg_hcp": 2, "nacl": 8,
           "si_primitive": 8, "srtio3": 5, "tio2_rutile": 6}
CUBIC_A = {"cscl": 4.12, "cu_primitive": 2.556191 * math.sqrt(2), "cuau_disordered": 3.85, "nacl": 5.64,
           "si_primitive": 3.839590 * math.sqrt(2), "srtio3": 3.905}


@pytest.fixture(scope="module")
def mini() -> Statistics:
    return stats.compute(MINI, workers=1, progress=False)


def by_id(st: Statistics) -> dict[str, int]:
    return {i: k for k, i in enumerate(st.ids.tolist())}


# ---- per-structure records ----------------------------------------------------------------------


def test_space_group_of_each_structure(mini):
    assert dict(zip(mini.ids.tolist(), mini.spacegroups.tolist())) == SPACEGROUPS


def test_sites_wyckoff_elements_occupancies(mini):
    for i, name in enumerate(mini.ids.tolist()):
        a, b = mini.site_offsets[i], mini.site_offsets[i + 1]
        rows = list(zip(mini.site_wyckoff[a:b].tolist(), mini.site_multiplicity[a:b].tolist(),
                        mini.site_z[a:b].tolist(), mini.site_occupancy[a:b].tolist()))
        assert rows == SITES[name], name
    idx = by_id(mini)
    assert mini.n_sites[idx["cuau_disordered"]] == 1  # one site, two species
    assert mini.n_sites[idx["srtio3"]] == 3


def test_conventional_cell(mini):
    idx = by_id(mini)
    assert {i: int(mini.n_atoms[k]) for i, k in idx.items()} == N_ATOMS
    for name, a in CUBIC_A.items():
        np.testing.assert_allclose(mini.lattices[idx[name]], [a, a, a, 90, 90, 90], atol=1e-4)
        np.testing.assert_allclose(mini.volumes[idx[name]], a**3, rtol=1e-5)
    np.testing.assert_allclose(mini.lattices[idx["mg_hcp"]], [3.209, 3.209, 5.211, 90, 90, 120], atol=1e-4)
    np.testing.assert_allclose(mini.volumes[idx["mg_hcp"]], math.sqrt(3) / 2 * 3.209**2 * 5.211, rtol=1e-5)


def test_atomic_radii_are_mean_of_covalent_and_vdw():
    from ase.data import covalent_radii
    from pymatgen.core import Element

    r = stats.atomic_radii()
    assert r.shape == (99,) and np.isnan(r[0]) and np.all(np.isfinite(r[1:]))
    for z in (1, 8, 17, 55, 92):
        assert r[z] == pytest.approx((covalent_radii[z] + float(Element.from_Z(z).van_der_waals_radius)) / 2)
    # the values behind the hand computation below (Cordero covalent, CRC van der Waals)
    assert r[55] == pytest.approx((2.44 + 3.43) / 2)
    assert r[17] == pytest.approx((1.02 + 1.75) / 2)


def test_atomic_volume_and_denseness_by_hand(mini):
    idx = by_id(mini)
    sphere = lambda r: 4 / 3 * math.pi * r**3  # noqa: E731
    v_cscl = sphere((2.44 + 3.43) / 2) + sphere((1.02 + 1.75) / 2)  # Cs + Cl, one of each
    assert mini.v_atoms[idx["cscl"]] == pytest.approx(v_cscl, rel=1e-12)
    assert v_cscl == pytest.approx(117.0327, abs=1e-3)
    assert mini.denseness[idx["cscl"]] == pytest.approx(4.12**3 / v_cscl, rel=1e-6)
    r = mini.radii
    assert mini.v_atoms[idx["nacl"]] == pytest.approx(4 * sphere(r[11]) + 4 * sphere(r[17]))
    # partial occupancy: 4 sites, each half Cu and half Au
    assert mini.v_atoms[idx["cuau_disordered"]] == pytest.approx(4 * (0.5 * sphere(r[29]) + 0.5 * sphere(r[79])))


def test_malformed_cif_is_a_failure_not_fatal(mini):
    assert len(mini) == 9
    assert [f["id"] for f in mini.failures] == ["broken"]
    assert mini.failures[0]["reason"]
    assert mini.metadata["n_failures"] == 1


def test_fast_p1_reader_agrees_with_pymatgen():
    import warnings

    from pymatgen.io.cif import CifParser

    for path in sorted(MINI.glob("*.cif")):
        if path.stem == "broken":
            continue
        text = path.read_text()
        fast = stats.analyze_cif(text, id=path.stem)  # synthxrd.structure.parse_cif (gemmi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = CifParser.from_str(text).parse_structures(primitive=False)[0]
        slow = stats.analyze(reference, id=path.stem)  # pymatgen's CifParser, the reference
        assert (fast.spacegroup, fast.n_atoms) == (slow.spacegroup, slow.n_atoms)
        np.testing.assert_allclose(fast.lattice, slow.lattice, atol=1e-6)
        assert fast.v_atoms == pytest.approx(slow.v_atoms)
        for name in ("site_orbit", "site_wyckoff", "site_multiplicity", "site_z", "site_occupancy"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


def test_trailing_bond_loop_is_stripped():
    text = (MINI / "nacl.cif").read_text()
    assert "_geom_bond" in text
    from synthxrd.stats.collection import _strip_trailing_bond_loop

    stripped = _strip_trailing_bond_loop(text)
    assert "_geom_bond" not in stripped and "_atom_site_fract_x" in stripped
    assert stats.analyze_cif(text).spacegroup == stats.analyze_cif(stripped).spacegroup == 225


# ---- sources ------------------------------------------------------------------------------------


def assert_same_records(a: Statistics, b: Statistics) -> None:
    for name in stats.RECORD_ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.failures == b.failures


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_tar_and_folder_give_identical_records(mini, tmp_path, suffix, mode):
    archive = tmp_path / f"mini{suffix}"
    with tarfile.open(archive, mode) as tf:
        for path in sorted(MINI.glob("*.cif"), reverse=True):  # another order than the folder's
            tf.add(path, arcname=f"mini_collection/{path.name}")
    from_tar = stats.compute(archive, workers=1, progress=False)
    assert_same_records(mini, from_tar)
    assert from_tar.source == str(archive)


def test_parallel_workers_give_identical_records(mini):
    assert_same_records(mini, stats.compute(MINI, workers=2, progress=False))


def test_ids_filter_and_bad_sources(tmp_path):
    st = stats.compute(MINI, workers=1, progress=False, ids=["nacl", "mg_hcp", "not_there"])
    assert st.ids.tolist() == ["mg_hcp", "nacl"]
    single = stats.compute(MINI / "nacl.cif", workers=1, progress=False)
    assert single.ids.tolist() == ["nacl"] and single.spacegroups.tolist() == [225]
    with pytest.raises(DataError, match="no such file"):
        stats.compute(tmp_path / "missing", workers=1, progress=False)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="not a folder of CIFs"):
        stats.compute(tmp_path / "x.txt", workers=1, progress=False)
    with pytest.raises(ConfigError, match="symprec"):
        stats.compute(MINI, symprec=-1, workers=1, progress=False)


# ---- derived tables, counted by hand ---------------------------------------------------------------


def assert_dist(result, values, probs):
    got_values, got_probs = result
    np.testing.assert_array_equal(got_values, values)
    np.testing.assert_allclose(got_probs, probs, rtol=1e-12)


def test_spacegroup_counts_represented_prior(mini):
    counts = mini.spacegroup_counts()
    assert counts.shape == (231,) and counts[0] == 0 and counts.sum() == 9
    assert {sg: int(counts[sg]) for sg in np.flatnonzero(counts)} == {123: 1, 136: 1, 194: 1, 221: 2, 225: 3, 227: 1}
    assert mini.represented(min_count=2).tolist() == [221, 225]
    assert mini.represented(min_count=1).tolist() == [123, 136, 194, 221, 225, 227]
    assert mini.represented().tolist() == []  # nothing with >= 50 structures
    np.testing.assert_allclose(mini.spacegroup_prior([221, 225]), [2 / 5, 3 / 5])
    np.testing.assert_allclose(mini.spacegroup_prior([225, 1, 194]), [3 / 4, 0, 1 / 4])
    with pytest.raises(DataError, match="no structures"):
        mini.spacegroup_prior()
    with pytest.raises(ConfigError, match="1..230"):
        mini.spacegroup_prior([231])


def test_tables_of_225(mini):
    # nacl (Na 4a, Cl 4b), cu_primitive (Cu 4a), cuau_disordered (Cu+Au on 4a)
    assert_dist(mini.n_elements(225), [1, 2], [1 / 3, 2 / 3])
    assert_dist(mini.elements(225), [11, 17, 29, 79], [1 / 5, 1 / 5, 2 / 5, 1 / 5])
    assert_dist(mini.repetitions(225), [1], [1.0])
    letters, probs = mini.wyckoff(225)
    from synthxrd.wyckoff import space_group

    assert letters.tolist() == [w.letter for w in space_group(225).wyckoff_positions]
    assert letters[-1] == "a"
    assert dict(zip(letters.tolist(), probs.tolist())) == {**dict.fromkeys(letters.tolist(), 0.0), "a": 0.75, "b": 0.25}
    values, counts = mini.asymmetric_sites(225)
    assert values.tolist() == [1, 2] and counts.tolist() == [2, 1]


def test_tables_of_221_and_123(mini):
    # 221: cscl (Cs 1a, Cl 1b), srtio3 (Sr 1a, Ti 1b, O 3c)
    assert_dist(mini.n_elements(221), [2, 3], [0.5, 0.5])
    assert_dist(mini.elements(221), [8, 17, 22, 38, 55], [0.2] * 5)
    assert_dist(mini.repetitions(221), [1], [1.0])
    letters, counts = mini.wyckoff_counts(221)
    assert {k: v for k, v in zip(letters.tolist(), counts.tolist()) if v} == {"a": 2, "b": 2, "c": 1}
    # 123: cuo2_tetragonal, Cu on one site, O on two
    assert_dist(mini.n_elements(123), [2], [1.0])
    assert_dist(mini.repetitions(123), [1, 2], [0.5, 0.5])
    assert mini.asymmetric_sites(123)[1].tolist() == [1]
    assert mini.asymmetric_sites(123)[0].tolist() == [3]


def test_pooled_fallbacks(mini):
    with pytest.raises(DataError, match="no structures in space group 229"):
        mini.n_elements(229)
    # 229 has no structures: auto pools the cubic ones (nacl 2, cscl 2, cu 1, si 1, srtio3 3, cuau 2)
    assert_dist(mini.n_elements(229, pooled="auto"), [1, 2, 3], [2 / 6, 3 / 6, 1 / 6])
    assert_dist(mini.n_elements(229, pooled="crystal_system"), [1, 2, 3], [2 / 6, 3 / 6, 1 / 6])
    # auto with enough structures: the group itself
    assert_dist(mini.n_elements(225, pooled="auto"), [1, 2], [1 / 3, 2 / 3])
    # auto with min_count above the group's count: its crystal system
    assert_dist(mini.n_elements(225, pooled="auto", min_count=4), [1, 2, 3], [2 / 6, 3 / 6, 1 / 6])
    # all nine structures: 1 element x3, 2 elements x5, 3 elements x1
    assert_dist(mini.n_elements(None, pooled="all"), [1, 2, 3], [3 / 9, 5 / 9, 1 / 9])
    assert_dist(mini.repetitions(None, pooled="all"), [1, 2], [15 / 16, 1 / 16])
    # no monoclinic structures at all: auto falls back to everything
    assert_dist(mini.n_elements(14, pooled="auto"), [1, 2, 3], [3 / 9, 5 / 9, 1 / 9])
    with pytest.raises(DataError, match="monoclinic"):
        mini.n_elements(14, pooled="crystal_system")
    # Wyckoff letters cannot be pooled; a group without structures gets uniform probabilities
    with pytest.raises(DataError, match="229"):
        mini.wyckoff(229)
    letters, probs = mini.wyckoff(229, pooled="auto")
    np.testing.assert_allclose(probs, 1 / len(letters))
    with pytest.raises(ConfigError, match="cannot be pooled"):
        mini.wyckoff(225, pooled="all")
    with pytest.raises(ConfigError, match="pooled must be one of"):
        mini.n_elements(225, pooled="everything")


def test_lattice_and_density_samples(mini):
    cubic = mini.lattice_samples("cubic")
    assert cubic.shape == (6, 6)
    np.testing.assert_allclose(cubic, np.tile([1, 1, 1, 90, 90, 90], (6, 1)), atol=1e-6)
    hexa = mini.lattice_samples("hexagonal")
    v = math.sqrt(3) / 2 * 3.209**2 * 5.211
    np.testing.assert_allclose(hexa, [[3.209 / v ** (1 / 3), 3.209 / v ** (1 / 3), 5.211 / v ** (1 / 3), 90, 90, 120]],
                               rtol=1e-5)
    assert mini.lattice_samples("triclinic").shape == (0, 6)
    assert mini.lattice_samples("all").shape == (9, 6)
    with pytest.raises(ConfigError, match="crystal system must be one of"):
        mini.lattice_samples("rhombohedral")
    dens = mini.density_samples()
    assert dens.shape == (9, 2)
    np.testing.assert_allclose(dens[:, 0], mini.v_atoms)
    np.testing.assert_allclose(dens[:, 1], mini.volumes / mini.v_atoms)


def test_tables_are_cached_and_read_only(mini):
    first = mini.elements(225)
    assert mini.elements(225) is first
    with pytest.raises(ValueError):
        first[1][0] = 1.0
    with pytest.raises(ValueError):
        mini.site_z[0] = 3


def test_crystal_system_ranges_match_wyckoff_tables():
    from synthxrd.wyckoff import crystal_system

    for sg in range(1, 231):
        assert stats.crystal_system_of(sg) == crystal_system(sg)


# ---- files -------------------------------------------------------------------------------------


def test_save_load_round_trip_without_pickles(mini, tmp_path):
    path = mini.save(tmp_path / "sub" / "mini.npz")
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["metadata"]))
        assert set(stats.RECORD_ARRAYS) <= set(npz.files)
    for key in ("format_version", "source", "symprec", "package_version", "created", "n_structures", "failures"):
        assert key in meta
    assert meta["format_version"] == stats.FORMAT_VERSION
    assert meta["package_version"] == synthxrd.__version__
    loaded = Statistics.load(path)
    assert_same_records(mini, loaded)
    assert loaded.version == stats.FORMAT_VERSION
    assert loaded.symprec == 0.1
    assert loaded.source == str(MINI)
    assert loaded.package_version == synthxrd.__version__
    assert loaded.n_structures == 9
    assert_dist(loaded.elements(225), [11, 17, 29, 79], [0.2, 0.2, 0.4, 0.2])
    assert not list(path.parent.glob(".*tmp"))  # the temporary file is gone


def test_load_rejects_bad_files(mini, tmp_path):
    with pytest.raises(DataError, match="no such statistics file"):
        Statistics.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a statistics"):
        Statistics.load(tmp_path / "junk.npz")
    arrays = {k: getattr(mini, k) for k in stats.RECORD_ARRAYS}
    np.savez(tmp_path / "old.npz", **arrays, metadata=np.array(json.dumps({**mini.metadata, "format_version": 0})))
    with pytest.raises(DataError, match="format_version 0"):
        Statistics.load(tmp_path / "old.npz")
    np.savez(tmp_path / "pickled.npz", metadata=np.array([{"a": 1}], dtype=object), **arrays)
    with pytest.raises(DataError, match="not a statistics"):
        Statistics.load(tmp_path / "pickled.npz")


def test_subset_and_restrict(mini, tmp_path):
    sub = mini.subset(["nacl", "srtio3"])
    assert sub.ids.tolist() == ["nacl", "srtio3"] and sub.n_structures == 2
    assert sub.site_offsets.tolist() == [0, 2, 5]
    assert sub.site_z.tolist() == [11, 17, 38, 22, 8]
    from synthxrd.split import make_split

    split = make_split(mini.ids, mini.ids, test_fraction=0.5, seed=1)  # every structure its own group
    restricted = mini.restrict(split, "statistics")
    assert set(restricted.ids.tolist()) == set(split.ids_of("statistics").tolist())
    assert restricted.metadata["split"]["part"] == "statistics"
    assert restricted.metadata["split"]["sha256"] == split.sha256
    with pytest.raises(ConfigError, match="part"):
        mini.restrict(split, "train")


def test_shipped_default_statistics():
    st = Statistics.load()
    assert st.version == stats.FORMAT_VERSION
    assert len(st.represented()) >= 50
    assert st.n_structures > 30000
    assert "mp_experimental" in st.source and st.symprec == 0.1
    assert st.metadata["split"]["part"] == "statistics"
    from synthxrd.split import load_split

    split = load_split()
    assert set(st.ids.tolist()) == set(split.ids_of("statistics").tolist())
    # counted before the calibration part was carved out of the test part: the same statistics part
    assert st.metadata["split"]["sha256"] == split.metadata["before_calibration_sha256"]
    # every represented group has usable tables
    for sg in st.represented()[:5]:
        assert st.n_elements(int(sg))[1].sum() == pytest.approx(1)
        assert st.wyckoff(int(sg))[1].sum() == pytest.approx(1)
    assert st.lattice_samples("cubic").shape[1] == 6


# ---- CLI ---------------------------------------------------------------------------------------


def test_cli_stats_folder(tmp_path, capsys):
    out = tmp_path / "mini.npz"
    assert main(["stats", str(MINI), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "9 structures, 1 failures" in text and "failed: broken" in text
    st = Statistics.load(out)
    assert dict(zip(st.ids.tolist(), st.spacegroups.tolist())) == SPACEGROUPS


def test_cli_stats_restricted_to_split_part(tmp_path):
    full = tmp_path / "all.npz"
    split = tmp_path / "split.csv"
    assert main(["stats", str(MINI), "--out", str(full), "--workers", "1", "--no-progress"]) == 1
    assert main(["split", str(full), "--out", str(split), "--test-fraction", "0.5", "--seed", "3"]) == 0
    restricted = tmp_path / "stats_part.npz"
    assert main(["stats", str(full), "--split", str(split), "--part", "statistics", "--out", str(restricted)]) == 0
    reanalysed = tmp_path / "stats_part2.npz"
    assert main(["stats", str(MINI), "--split", str(split), "--part", "statistics", "--out", str(reanalysed),
                 "--workers", "1", "--no-progress"]) == 0  # the broken CIF is not in the split
    a, b = Statistics.load(restricted), Statistics.load(reanalysed)
    for name in stats.RECORD_ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    from synthxrd.split import read_split

    assert set(a.ids.tolist()) == set(read_split(split).ids_of("statistics").tolist())


def test_cli_stats_and_split_never_replace_outputs_or_inputs(tmp_path, capsys):
    full = tmp_path / "all.npz"
    assert main(["stats", str(MINI), "--out", str(full), "--workers", "1", "--no-progress"]) == 1
    before = full.read_bytes()
    assert main(["stats", str(MINI), "--out", str(full), "--workers", "1", "--no-progress"]) == 2
    assert f"{full} already exists; nothing was written. Use --overwrite" in capsys.readouterr().err
    # its own input, even with --overwrite: the statistics are never turned into a split
    assert main(["split", str(full), "--out", str(full), "--overwrite"]) == 2
    assert f"{full} is also an input of this command; nothing was written" in capsys.readouterr().err
    split = tmp_path / "split.csv"
    assert main(["split", str(full), "--out", str(split)]) == 0
    assert main(["split", str(full), "--out", str(split)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["split", str(full), "--out", str(split), "--seed", "1", "--overwrite"]) == 0
    assert main(["stats", str(full), "--split", str(split), "--out", str(split), "--overwrite"]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert full.read_bytes() == before
    assert main(["stats", str(MINI), "--out", str(full), "--workers", "1", "--no-progress", "--overwrite"]) == 1


def test_cli_stats_errors(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz"), "--workers", "1"]) == 2
    assert "synthxrd stats: error:" in capsys.readouterr().err
    assert main(["stats", str(MINI), "--out", str(tmp_path / "x.npz"), "--part", "test"]) == 2
    assert "--part needs --split" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["stats", str(tmp_path / "empty"), "--out", str(tmp_path / "x.npz"), "--workers", "1",
                 "--no-progress"]) == 2
    assert "no CIF files found" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_mini_collection_is_small():
    assert sum(p.stat().st_size for p in MINI.iterdir()) < 20_000


def test_cli_stats_with_no_readable_cif_writes_nothing(tmp_path, capsys):
    (tmp_path / "cifs").mkdir()
    (tmp_path / "cifs" / "a.cif").write_text("data_a\n_cell_length_a 4\n")
    out = tmp_path / "stats.npz"
    assert main(["stats", str(tmp_path / "cifs"), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
    assert "none of the 1 CIFs could be analysed; nothing was written (first: a:" in capsys.readouterr().err
    assert not out.exists()
    assert main(["split", str(tmp_path / "cifs"), "--out", str(tmp_path / "s.csv"), "--workers", "1",
                 "--no-progress"]) == 2
    assert not (tmp_path / "s.csv").exists()
