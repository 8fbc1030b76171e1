"""The AMCSD reader, composed libraries (merge, duplicates, provenance) and the default library."""

from __future__ import annotations

import json
import sqlite3
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd import simulate
from synthxrd.amcsd import AMCSD_CITATION, is_amcsd, iter_amcsd, site_element
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.match import ReferenceLibrary
from synthxrd.match.library import cif_provenance, duplicate_groups
from synthxrd.structure import parse_cif

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = DATA / "amcsd" / "amcsd_sample.db"
MINI = DATA / "mini_collection"


@pytest.fixture(scope="module")
def amcsd() -> ReferenceLibrary:
    return ReferenceLibrary.build(SAMPLE, workers=1, progress=False)


def _pattern(crystal_or_text, tt, *, scale=1.0):
    """A broadened pattern of a structure (CIF text or Crystal) with its cell scaled by ``scale``."""
    from synthxrd.structure import Crystal

    crystal = parse_cif(crystal_or_text).to_crystal() if isinstance(crystal_or_text, str) else crystal_or_text
    crystal = Crystal(crystal.lattice * scale, crystal.frac_coords, crystal.numbers, crystal.occupancies)
    pos, inten = simulate.peaks(crystal, 1.5406, (float(tt[0]), float(tt[-1])))
    return sum(i * np.exp(-0.5 * ((tt - p) / 0.06) ** 2) for p, i in zip(pos, inten)) + 0.01


# --------------------------------------------------------------------------------------------------
# the reader


def test_an_amcsd_database_is_told_by_its_content(tmp_path):
    assert is_amcsd(SAMPLE)
    assert not is_amcsd(MINI / "nacl.cif") and not is_amcsd(tmp_path) and not is_amcsd(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE cif (id integer)")
    assert not is_amcsd(other)
    with pytest.raises(DataError, match="other.db: not an AMCSD SQLite database"):
        list(iter_amcsd(other))


@pytest.mark.parametrize("label, elements, expected", [
    ("Ob1", ["Si", "O", "Na"], "O"),       # a letter after the element
    ("CA", ["C", "Ca", "O"], "Ca"),         # the longest symbol that the letters start with, any case
    ("S1", ["Si", "S", "O"], "S"),
    ("Si2", ["Si", "S", "O"], "Si"),
    ("Wat", ["W", "O", "H"], "O"),          # water oxygen, even beside tungsten
    ("OW3", ["Na", "O", "H"], "O"),
    ("D1", ["Ca", "S", "O", "H"], "H"),     # deuterium
    ("CaX", ["Ca", "Al", "Si", "O", "H"], "Ca"),
    ("Fe", ["Mg", "Si", "O"], "Fe"),        # an element the formula omits: the label's own
    ("M1", ["Mg", "Si", "O"], None),         # a mixed site: cannot be told
    ("", ["O"], None),
])
def test_site_elements_come_from_the_formula(label, elements, expected):
    assert site_element(label, elements) == expected


def test_every_row_becomes_a_cif_with_its_provenance_or_a_reason():
    texts = dict(iter_amcsd(SAMPLE))
    assert len(texts) == 19 and all(k.startswith("amcsd-") and len(k) == 13 for k in texts)
    galena = texts["amcsd-0000003"]
    sites = parse_cif(galena)
    assert sorted(sites.to_crystal().numbers.tolist()) == [16] * 4 + [82] * 4
    np.testing.assert_allclose(sites.lattice, np.diag([5.93] * 3), atol=1e-9)
    assert cif_provenance(galena) == ("Galena", "AMCSD 0000003; American Mineralogist 10, 281 (1925)")
    # water oxygen 'Watd' and deuterium: elements of the formula
    gypsum = parse_cif(texts["amcsd-0001807"]).to_crystal()
    assert sorted(set(gypsum.numbers.tolist())) == [1, 8, 16, 20]
    assert 8 in parse_cif(texts["amcsd-0000130"]).to_crystal().numbers.tolist()
    # a decimal comma (14130, indium) and a trailing comma (19001) in the cell
    assert parse_cif(texts["amcsd-0014130"]).lattice[0, 0] == pytest.approx(3.2518)
    assert parse_cif(texts["amcsd-0019001"]).lattice[0, 0] == pytest.approx(6.4235)
    # only these rows
    assert [k for k, _ in iter_amcsd(SAMPLE, ids=["amcsd-0000641", "amcsd-9999999"])] == ["amcsd-0000641"]


def test_amcsd_cifs_read_as_pymatgen_reads_them():
    """The written CIF texts are CIFs: pymatgen's parser finds the same composition and cell."""
    from pymatgen.io.cif import CifParser

    from synthxrd.structure import reduced_formula

    for ident, text in iter_amcsd(SAMPLE, ids=["amcsd-0000003", "amcsd-0000098", "amcsd-0000789",
                                              "amcsd-0000945", "amcsd-0010735"]):
        ours = parse_cif(text).to_crystal()
        theirs = CifParser.from_str(text).parse_structures(primitive=False)[0]
        assert reduced_formula(ours) == theirs.composition.reduced_formula, ident
        assert len(ours.numbers) == len(theirs), ident
        assert abs(np.linalg.det(ours.lattice)) == pytest.approx(theirs.volume, rel=1e-6), ident


def test_a_library_of_the_database_keeps_minerals_references_and_failures(amcsd):
    assert len(amcsd) == 17 and amcsd.metadata["citation"] == AMCSD_CITATION
    failures = dict(amcsd.metadata["failures"])
    assert set(failures) == {"amcsd-0000071", "amcsd-0000121"}
    assert "occupancies of the atoms on one site sum to 2" in failures["amcsd-0000071"]
    quartz = amcsd.entry("amcsd-0000789")
    assert (quartz.formula, quartz.spacegroup, quartz.mineral) == ("SiO2", 154, "Quartz")
    assert quartz.reference.startswith("AMCSD 0000789; American Mineralogist 65")
    assert amcsd.prototypes[amcsd.index("amcsd-0000641")] == "225|AB|ab"
    # its peaks are the simulation of the structure as read
    text = dict(iter_amcsd(SAMPLE, ids=["amcsd-0000098"]))["amcsd-0000098"]
    pos, inten = simulate.peaks(parse_cif(text).to_crystal(), 1.5406, (10, 80))
    lib_pos, lib_inten = amcsd.peaks("amcsd-0000098", two_theta_range=(10, 80))
    strong = inten > 0.02
    np.testing.assert_allclose(lib_pos[lib_inten > 0.02], pos[strong], atol=1e-6)


def test_an_unreadable_row_is_a_failure_with_its_reason(tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(SAMPLE.read_bytes())
    with sqlite3.connect(broken) as con:
        con.execute("UPDATE cif SET a = 'n/a' WHERE id = 3")
        con.execute("UPDATE cif SET atoms_sites = '[\"M1\", \"S\"]' WHERE id = 4")
    lib = ReferenceLibrary.build(broken, workers=2, progress=False)
    failures = dict(lib.metadata["failures"])
    assert "AMCSD row 3: cell" in failures["amcsd-0000003"]
    assert "site label 'M1' names no element of the formula 'Pb Se'" in failures["amcsd-0000004"]
    assert len(lib) == 15


# --------------------------------------------------------------------------------------------------
# libraries that compose


def test_merge_keeps_ids_unique_and_marks_duplicates(amcsd, tmp_path):
    mini = ReferenceLibrary.build(MINI, workers=1, progress=False)
    both = ReferenceLibrary.merge(mini, amcsd)
    assert len(both) == len(mini) + len(amcsd) and len(set(both.ids.tolist())) == len(both)
    assert both.d_min == amcsd.d_min and both.metadata["merged"][1]["citation"] == AMCSD_CITATION
    # NaCl of the mini collection (a = 5.64) and halite (5.453, 3.3 % off) are not one phase at 3 %;
    # at 4 % they are
    nacl, halite = both.index("nacl"), both.index("amcsd-0000641")
    assert both.groups[halite] == halite
    loose = ReferenceLibrary.merge(mini, amcsd, length_tolerance=0.04)
    assert loose.groups[halite] == nacl and loose.metadata["duplicates"]["n_duplicates"] >= 1
    # one id in both: the second is renamed after its library
    again = ReferenceLibrary.merge(amcsd, amcsd)
    assert again.ids[len(amcsd)].endswith(":amcsd-0000003") and len(set(again.ids.tolist())) == len(again)
    assert np.all(again.groups[len(amcsd):] == np.arange(len(amcsd)))  # every entry a duplicate of its twin
    # round trip of the optional arrays
    path = loose.save(tmp_path / "merged.npz")
    back = ReferenceLibrary.load(path)
    for name in ("minerals", "references", "prototypes", "groups"):
        np.testing.assert_array_equal(getattr(back, name), getattr(loose, name))
    # a selection keeps the phases
    sub = loose.select(np.arange(len(loose)) != nacl)
    assert sub.groups[sub.index("amcsd-0000641")] == sub.index("amcsd-0000641")
    with pytest.raises(ConfigError, match="different d_min"):
        ReferenceLibrary.merge(mini, amcsd.trimmed(d_min=1.0))


def test_duplicate_groups_by_hand():
    formulas = np.array(["A", "A", "A", "B", "A"])
    groups = np.array([1, 1, 1, 1, 2])
    lattices = np.array([[5, 5, 5, 90, 90, 90], [5.1, 5, 5, 90, 90, 90], [5.3, 5, 5, 90, 90, 90],
                         [5, 5, 5, 90, 90, 90], [5, 5, 5, 90, 90, 90]], float)
    assert duplicate_groups(formulas, groups, lattices).tolist() == [0, 0, 2, 3, 4]
    lattices[1, 4] = 93  # an angle 3 degrees off
    assert duplicate_groups(formulas, groups, lattices).tolist() == [0, 1, 2, 3, 4]


def test_a_search_lists_each_phase_once_with_its_mineral(amcsd):
    doubled = ReferenceLibrary.merge(amcsd, amcsd)
    tt = np.arange(10.0, 80.0, 0.02)
    text = dict(iter_amcsd(SAMPLE, ids=["amcsd-0000098"]))["amcsd-0000098"]
    y = _pattern(text, tt, scale=1.01)
    matches = doubled.search(tt, y, k=5)[0]
    assert matches[0].formula == "CaCO3" and matches[0].mineral == "Calcite" and matches[0].duplicates == 1
    assert len({m.formula for m in matches}) == len(matches)  # no phase twice
    alone = amcsd.search(tt, y, k=5)[0]
    assert [m.formula for m in matches] == [m.formula for m in alone]


def test_without_part_leaves_out_every_entry_of_a_test_prototype(amcsd):
    from synthxrd.split import Split

    split = Split(ids=np.array(["mp-x", "mp-y"]), prototypes=np.array(["225|AB|ab", "154|AB2|ac"]),
                  parts=np.array(["test", "statistics"]))
    held = amcsd.without_part(split, "test")
    gone = set(amcsd.ids.tolist()) - set(held.ids.tolist())
    assert gone == {"amcsd-0000003", "amcsd-0000004", "amcsd-0000641"}  # galena, clausthalite, halite: rock salt
    assert held.metadata["held_out"]["n_removed_by_prototype"] == 3


# --------------------------------------------------------------------------------------------------
# the shipped libraries


def test_the_default_library_is_mp_and_amcsd_searched_as_one():
    resource = files("synthxrd") / "resources" / "library"
    assert (resource / "amcsd.npz").stat().st_size <= 5e6
    assert "Downs" in (resource / "LICENSE-AMCSD.txt").read_text()
    mp, minerals = ReferenceLibrary.load("mp"), ReferenceLibrary.load("amcsd")
    assert len(mp) == 46627 and len(minerals) >= 0.99 * 9275
    assert minerals.metadata["citation"] == AMCSD_CITATION and (minerals.prototypes != "").all()
    default = ReferenceLibrary.load()
    assert len(default) == len(mp) + len(minerals) and len(set(default.ids.tolist())) == len(default)
    assert ReferenceLibrary.load("mp+amcsd").ids.tolist() == default.ids.tolist()
    # quartz: its MP entry and AMCSD entries are one phase, named by the mineral
    tt = np.arange(10.0, 80.0, 0.02)
    row = minerals.index(str(minerals.ids[minerals.minerals == "Quartz"][0]))
    pos, inten = minerals.peaks(row, two_theta_range=(10, 80))
    y = sum(i * np.exp(-0.5 * ((tt - p) / 0.06) ** 2) for p, i in zip(pos, inten)) + 0.01
    best = default.search(tt, y, k=5, elements="Si,O", only_elements=True)[0][0]
    assert (best.formula, best.spacegroup, best.mineral) == ("SiO2", 154, "Quartz")
    with pytest.raises(DataError, match="shipped libraries: default, amcsd, mp"):
        ReferenceLibrary.load("nosuch")


def test_cli_library_build_merge_info_search(amcsd, tmp_path, capsys):
    out = tmp_path / "amcsd.npz"
    assert main(["library", "build", str(SAMPLE), "--out", str(out), "-j", "1", "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "17 structures" in text and "failed: amcsd-0000071: malformed CIF" in text
    mini = tmp_path / "mini.npz"
    assert main(["library", "build", str(MINI), "--out", str(mini), "-j", "1", "--no-progress"]) == 1
    merged = tmp_path / "merged.npz"
    assert main(["library", "merge", str(mini), str(out), "--out", str(merged)]) == 0
    assert "structures from 2 libraries" in capsys.readouterr().out
    assert main(["library", "merge", str(mini), "--out", str(tmp_path / "one.npz")]) == 2
    assert main(["library", "info", str(merged)]) == 0
    text = capsys.readouterr().out
    assert f"cite: {AMCSD_CITATION}" in text and "entries name their mineral" in text
    tt = np.arange(10.0, 80.0, 0.02)
    text = dict(iter_amcsd(SAMPLE, ids=["amcsd-0000143"]))["amcsd-0000143"]
    pattern = tmp_path / "hematite.xy"
    np.savetxt(pattern, np.column_stack([tt, _pattern(text, tt, scale=1.005)]))
    assert main(["library", "search", str(pattern), "--library", f"{mini}+{out}", "-k", "2"]) == 0
    best = capsys.readouterr().out.splitlines()[3]
    assert "amcsd-0000143" in best and best.rstrip().endswith("Hematite")
    summary = json.loads(json.dumps(ReferenceLibrary.load(merged).metadata["merged"]))
    assert [s["n_structures"] for s in summary] == [len(ReferenceLibrary.load(mini)), 17]


# --------------------------------------------------------------------------------------------------
# large collections: files of several structures, resumable builds


def test_a_file_of_several_structures_gives_each(tmp_path):
    from synthxrd.stats import iter_cif_texts

    dump = "data_global\n_journal_name_full 'Nowhere'\n" + "".join(
        (MINI / f"{name}.cif").read_text().replace("data_", f"data_{name}_", 1) for name in ("nacl", "cscl"))
    (tmp_path / "export.cif").write_text(dump)
    (tmp_path / "si.cif").write_text((MINI / "si_primitive.cif").read_text())
    ids = [i for i, _ in iter_cif_texts(tmp_path)]
    assert len(ids) == 3 and ids[2] == "si" and all(i.startswith("export:") for i in ids[:2])
    lib = ReferenceLibrary.build(tmp_path, workers=1, progress=False)
    assert sorted(lib.formulas.tolist()) == ["CsCl", "NaCl", "Si"]
    assert [i for i, _ in iter_cif_texts(tmp_path, ids=[ids[1]])] == [ids[1]]
    assert [i for i, _ in iter_cif_texts(tmp_path, skip=ids[:2])] == ["si"]


def test_a_build_continues_from_its_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "lib.npz.partial"
    first = ["nacl", "cscl", "si_primitive"]
    part = ReferenceLibrary.build(MINI, workers=1, progress=False, ids=first, checkpoint=checkpoint,
                                  checkpoint_every_s=0.0)
    assert checkpoint.is_file() and sorted(ReferenceLibrary.load(checkpoint).ids.tolist()) == sorted(part.ids.tolist())
    resumed = ReferenceLibrary.build(MINI, workers=2, progress=False, checkpoint=checkpoint)
    fresh = ReferenceLibrary.build(MINI, workers=1, progress=False)
    assert resumed.metadata["resumed_with"] == 3 and resumed.ids.tolist() == fresh.ids.tolist()
    np.testing.assert_allclose(resumed.d, fresh.d, rtol=1e-6)
    np.testing.assert_allclose(resumed.f2, fresh.f2, rtol=1e-3)
    assert resumed.metadata["failures"] == fresh.metadata["failures"]
    with pytest.raises(DataError, match="a checkpoint of another build"):
        ReferenceLibrary.build(MINI, workers=1, progress=False, checkpoint=checkpoint, d_min=1.0)
    # the command continues from OUT.partial and removes it when done
    out = tmp_path / "lib.npz"
    capsys.readouterr()
    assert main(["library", "build", str(MINI), "--out", str(out), "-j", "1", "--no-progress"]) == 1
    assert f"resuming from {checkpoint} (3 structures done)" in capsys.readouterr().out
    assert out.is_file() and not checkpoint.exists()


@pytest.mark.parametrize("text, expected", [
    ("data_1000041\n_cod_database_code 1000041\n_chemical_name_mineral 'Calcite'\n"
     "_journal_name_full 'American Mineralogist'\n_journal_volume 46\n_journal_page_first 1283\n_journal_year 1961\n",
     ("Calcite", "COD 1000041; American Mineralogist 46, 1283 (1961)")),
    ("data_67593-ICSD\n_database_code_ICSD 67593\n_chemical_name_mineral Quartz\n"
     "_journal_name_abbrev 'Z. Kristallogr.'\n",
     ("Quartz", "ICSD 67593; Z. Kristallogr.")),
    ("data_mp-1\n_chemical_formula_sum 'Cs1'\n", ("", "")),
    ("data_x\n_chemical_name_mineral ?\n_journal_year 2001\n", ("", "")),
])
def test_provenance_of_cod_icsd_and_plain_cifs(text, expected):
    assert cif_provenance(text) == expected
