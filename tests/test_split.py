"""Tests of synthxrd.split: prototype labels, seeded group split, files, the shipped split, the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from synthxrd import stats
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.split import (
    PARTS,
    Split,
    anonymized_formula,
    load_split,
    make_split,
    prototype_labels,
    read_split,
    read_structure_types,
    split_statistics,
    with_calibration,
)

MINI = Path(__file__).parent / "data" / "mini_collection"

# "<SG>|<anonymized formula>|<sorted Wyckoff letters>", worked out from the CIFs (see test_stats.py)
PROTOTYPES = {
    "cscl": "221|AB|ab",
    "cu_primitive": "225|A|a",
    "cuau_disordered": "225|AB|a",  # Cu0.5Au0.5 on one site: amounts 2 and 2
    "cuo2_tetragonal": "123|AB2|abc",
    "mg_hcp": "194|A|c",
    "nacl": "225|AB|ab",
    "si_primitive": "227|A|b",
    "srtio3": "221|ABC3|abc",
    "tio2_rutile": "136|AB2|af",
}


@pytest.fixture(scope="module")
def mini() -> stats.Statistics:
    return stats.compute(MINI, workers=1, progress=False)


@pytest.mark.parametrize("formula", ["NaCl", "CaTiO3", "Al2O3", "Fe3O4", "K2PtCl6", "Li2Fe2O4", "Cu0.3Au0.7", "H2O"])
def test_anonymized_formula_matches_pymatgen(formula):
    from pymatgen.core import Composition

    comp = Composition(formula)
    assert anonymized_formula(comp.values()) == comp.anonymized_formula


def test_prototype_labels_of_mini_collection(mini):
    assert dict(zip(mini.ids.tolist(), prototype_labels(mini).tolist())) == PROTOTYPES


def synthetic(n_groups: int = 100, seed: int = 5):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_groups)
    protos = np.repeat([f"g{k:03d}" for k in range(n_groups)], sizes)
    ids = np.array([f"id{k:05d}" for k in range(len(protos))])
    perm = rng.permutation(len(ids))
    return ids[perm], protos[perm]


def test_split_is_deterministic_and_order_independent():
    ids, protos = synthetic()
    a = make_split(ids, protos, seed=0)
    b = make_split(ids[::-1], protos[::-1], seed=0)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.parts, b.parts)
    assert a.sha256 == b.sha256
    c = make_split(ids, protos, seed=1)
    assert not np.array_equal(a.parts, c.parts)


@pytest.mark.parametrize("fraction, n_held", [(0.3, 30), (0.5, 50), (0.0, 0), (1.0, 100)])
def test_fraction_of_groups_and_no_group_crosses(fraction, n_held):
    ids, protos = synthetic()
    split = make_split(ids, protos, test_fraction=fraction, seed=0)
    counts = split.counts()
    assert counts["calibration"]["groups"] == round(0.5 * n_held)  # half the held-out groups
    assert counts["test"]["groups"] == n_held - round(0.5 * n_held)
    assert counts["statistics"]["groups"] == 100 - n_held
    assert sum(c["structures"] for c in counts.values()) == len(ids)
    assert_no_prototype_crosses(split)
    two = make_split(ids, protos, test_fraction=fraction, calibration_fraction=0.0, seed=0)
    assert two.counts()["calibration"] == {"structures": 0, "groups": 0} and len(two.ids_of("calibration")) == 0
    # the calibration part is carved out of the test part: the statistics part of a seed stays
    np.testing.assert_array_equal(split.ids_of("statistics"), two.ids_of("statistics"))
    assert set(split.ids_of("calibration")) | set(split.ids_of("test")) == set(two.ids_of("test"))
    assert with_calibration(two, 0.5, seed=0).sha256 == split.sha256


def assert_no_prototype_crosses(split: Split) -> None:
    groups = [set(split.prototypes[split.parts == part].tolist()) for part in PARTS]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_two_part_splits_still_read(tmp_path):
    (tmp_path / "old.csv").write_text("id,prototype,part\na,p,statistics\nb,q,test\nc,q,test\n")
    old = read_split(tmp_path / "old.csv")
    assert old.ids_of("test").tolist() == ["b", "c"] and old.ids_of("calibration").tolist() == []
    new = with_calibration(old, 1.0, seed=3)
    assert new.ids_of("calibration").tolist() == ["b", "c"] and new.ids_of("statistics").tolist() == ["a"]
    assert new.metadata["before_calibration_sha256"] == old.sha256 and new.metadata["calibration_seed"] == 3
    with pytest.raises(ConfigError, match="already has a calibration part"):
        with_calibration(new, 0.5)
    with pytest.raises(ConfigError, match="calibration fraction must be a number in"):
        with_calibration(old, 1.5)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="test fraction"):
        make_split(["a"], ["p"], test_fraction=1.5)
    with pytest.raises(ConfigError, match="1 ids but 2 prototypes"):
        make_split(["a"], ["p", "q"])
    split = make_split(["a"], ["p"])
    with pytest.raises(ConfigError, match="split part must be one of"):
        split.ids_of("train")


@pytest.mark.parametrize("name", ["split.csv", "split.csv.gz"])
def test_write_read_round_trip(tmp_path, name):
    ids, protos = synthetic(20)
    split = make_split(ids, protos, seed=4, metadata={"source": "synthetic"})
    path = split.write(tmp_path / name)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    lines = raw.decode().splitlines()
    assert lines[0] == "id,prototype,part" and len(lines) == len(ids) + 1
    back = read_split(path)
    for field in ("ids", "prototypes", "parts"):
        np.testing.assert_array_equal(getattr(back, field), getattr(split, field))
    meta = json.loads((tmp_path / f"{name}.json").read_text())
    assert meta["seed"] == 4 and meta["test_fraction"] == 0.3 and meta["sha256"] == split.sha256
    assert back.metadata["source"] == "synthetic"
    first = path.read_bytes()
    split.write(path)
    assert path.read_bytes() == first  # same split, same bytes (gzip mtime 0)


def test_read_split_errors(tmp_path):
    with pytest.raises(DataError, match="no such split file"):
        read_split(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("name,group\na,b\n")
    with pytest.raises(DataError, match="header must be id,prototype,part"):
        read_split(tmp_path / "bad.csv")
    (tmp_path / "parts.csv").write_text("id,prototype,part\na,p,train\n")
    with pytest.raises(DataError, match="unknown parts"):
        read_split(tmp_path / "parts.csv")


def test_structure_type_csv_overrides_proxy(mini, tmp_path):
    csv_path = tmp_path / "types.csv"
    csv_path.write_text("id,structure_type\nnacl,NaCl\ncu_primitive,Cu\ncuau_disordered,Cu\nmg_hcp,\n")
    types = read_structure_types(csv_path)
    assert types == {"nacl": "NaCl", "cu_primitive": "Cu", "cuau_disordered": "Cu"}
    labels = dict(zip(mini.ids.tolist(), prototype_labels(mini, types).tolist()))
    assert labels == {**PROTOTYPES, "nacl": "NaCl", "cu_primitive": "Cu", "cuau_disordered": "Cu"}
    for seed in range(10):
        parts = split_statistics(mini, structure_types=types, seed=seed, test_fraction=0.5).as_dict()
        assert parts["cu_primitive"] == parts["cuau_disordered"]  # one structure type, one part
    # ICSD-style column names are found too
    other = tmp_path / "icsd.csv"
    other.write_text("CollectionCode,StructureType,Extra\nnacl,NaCl#cF8#225,1\n")
    assert read_structure_types(other) == {"nacl": "NaCl#cF8#225"}
    for header in ("StructureType,CollectionCode", "structure type,icsd_collection_code", "Prototype,whatever"):
        other.write_text(f"{header}\nNaCl#cF8#225,nacl\n")
        assert read_structure_types(other) == {"nacl": "NaCl#cF8#225"}, header


def test_cli_split_from_stats_file_and_from_cifs(tmp_path, capsys):
    full = tmp_path / "all.npz"
    assert main(["stats", str(MINI), "--out", str(full), "--workers", "1", "--no-progress"]) == 1
    a, b = tmp_path / "a.csv", tmp_path / "b.csv.gz"
    assert main(["split", str(full), "--out", str(a), "--seed", "7"]) == 0
    assert main(["split", str(MINI), "--out", str(b), "--seed", "7", "--workers", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 CIFs could not be analysed" in out and "prototype groups" in out
    sa, sb = read_split(a), read_split(b)
    assert sa.sha256 == sb.sha256
    assert dict(zip(sa.ids.tolist(), sa.prototypes.tolist())) == PROTOTYPES
    # 9 prototype groups (all different), round(0.3 * 9) = 3 of them held out: 2 calibration, 1 test
    counts = sa.counts()
    assert (counts["calibration"]["groups"], counts["test"]["groups"], counts["statistics"]["groups"]) == (2, 1, 6)
    assert "calibration: " in out
    assert main(["split", str(full), "--out", str(tmp_path / "c.csv"), "--seed", "7",
                 "--calibration-fraction", "0"]) == 0
    assert read_split(tmp_path / "c.csv").counts()["test"]["groups"] == 3
    assert_no_prototype_crosses(sa)


def test_cli_split_structure_types(tmp_path, capsys):
    types = tmp_path / "types.csv"
    types.write_text("id,structure_type\nnacl,NaCl\ncscl,CsCl\n")
    out = tmp_path / "split.csv"
    assert main(["split", str(MINI), "--out", str(out), "--structure-types", str(types), "--workers", "1",
                 "--no-progress"]) == 1
    assert "2 of 9 structures named" in capsys.readouterr().out
    split = read_split(out)
    labels = dict(zip(split.ids.tolist(), split.prototypes.tolist()))
    assert labels["nacl"] == "NaCl" and labels["cscl"] == "CsCl" and labels["mg_hcp"] == PROTOTYPES["mg_hcp"]


def test_shipped_split():
    split = load_split()
    assert len(split) == 46627
    assert set(np.unique(split.parts).tolist()) == set(PARTS)
    assert_no_prototype_crosses(split)
    counts = split.counts()
    n_groups = sum(c["groups"] for c in counts.values())
    held = counts["test"]["groups"] + counts["calibration"]["groups"]
    assert abs(held - round(0.3 * n_groups)) <= 1 and counts["calibration"]["groups"] == round(0.5 * held)
    assert split.metadata["seed"] == 0 and split.metadata["test_fraction"] == 0.3
    assert split.metadata["calibration_fraction"] == 0.5 and split.metadata["calibration_seed"] == 0
    assert len(split.metadata["before_calibration_sha256"]) == 64
    assert split.metadata["sha256"] == split.sha256
    assert all(i.startswith("mp-") for i in split.ids[:100].tolist())
