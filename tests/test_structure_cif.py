"""synthxrd.structure.parse_cif (gemmi) against pymatgen's CifParser, the reference, and its errors."""

from __future__ import annotations

import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd.errors import StructureError
from synthxrd.structure import Sites, crystal_sites, parse_cif, read_cif, reduced_formula, site_rows

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(str(files("synthxrd") / "resources" / "examples"))
CIFS = sorted(EXAMPLES.glob("*.cif")) + sorted((DATA / "mini_collection").glob("[!b]*.cif")) + [
    DATA / "partial_occupancy.cif", DATA / "partial_occupancy_hexagonal.cif"]


def pymatgen_structure(text: str):
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CifParser.from_str(text).parse_structures(primitive=False)[0]


@pytest.mark.parametrize("path", CIFS, ids=lambda p: p.stem)
def test_sites_agree_with_pymatgen(path):
    text = path.read_text()
    sites = parse_cif(text)
    ref = pymatgen_structure(text)
    assert len(sites.positions) == len(ref)
    assert abs(np.linalg.det(sites.lattice)) == pytest.approx(ref.volume, rel=1e-9)
    assert reduced_formula(sites.to_crystal()) == ref.composition.reduced_formula
    # the same set of positions (modulo 1) with the same species
    ours = {(tuple(np.round(p % 1.0, 4) % 1.0), s) for p, s in zip(sites.positions, sites.species)}
    theirs = {(tuple(np.round(site.frac_coords % 1.0, 4) % 1.0),
               tuple(sorted((sp.Z, round(o, 4)) for sp, o in site.species.items()))) for site in ref}
    assert ours == theirs


def test_disordered_site_and_row_round_trip():
    sites = parse_cif((DATA / "partial_occupancy_hexagonal.cif").read_text())
    assert sites.species[0] == ((26, 0.7), (27, 0.2))  # Fe and Co share 2a
    frac, numbers, occ = site_rows(sites.positions, sites.species)
    assert len(numbers) == sum(len(s) for s in sites.species)
    again = crystal_sites(sites.to_crystal())
    assert isinstance(again, Sites) and again.species == sites.species
    np.testing.assert_array_equal(again.positions, sites.positions)


def test_atoms_on_one_position_are_one_site():
    text = """data_x
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a 4
_cell_length_b 4
_cell_length_c 4
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Cu1 Cu 0.0 0.0 0.0 0.5
Au1 Au 0.99999 0.0 0.0 0.5
O1 O2- 0.5(1) 0.5 0.5 ?
"""
    sites = parse_cif(text)
    assert sites.species == (((29, 0.5), (79, 0.5)), ((8, 1.0),))
    np.testing.assert_allclose(sites.positions, [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.mark.parametrize("text, message", [
    ("data_x\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
     "_cell_angle_gamma 90\nloop_\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
     "_atom_site_fract_z\nNa 0 0 0\n", "without _atom_site_label"),
    ("data_x\nloop_\n_atom_site_label\n_atom_site_fract_x\nNa 0.0 0.5\n", "malformed CIF"),
    ("data_x\n_cell_length_a 4\nloop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n"
     "_atom_site_fract_z\nNa 0 0 0\n", r"malformed CIF \(no _cell_length_b"),
    ("", "malformed CIF"),
])
def test_errors(text, message):
    with pytest.raises(StructureError, match=message):
        parse_cif(text)


def test_read_cif_names_the_file(tmp_path):
    with pytest.raises(StructureError, match=r"unknown_element\.cif: element 'Es' has no X-ray"):
        read_cif(DATA / "unknown_element.cif")
    with pytest.raises(StructureError, match="no such file"):
        read_cif(tmp_path / "missing.cif")
    structure = read_cif(EXAMPLES / "NaCl.cif")
    assert structure.composition.reduced_formula == "NaCl" and len(structure) == 8


NACL = """data_nacl
_cell_length_a {a}
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha {alpha}
_cell_angle_beta {beta}
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0 0 0 {occ}
Cl1 Cl 0.5 0.5 0.5 1
"""


@pytest.mark.parametrize("changes, message", [
    ({"occ": "0"}, r"occupancy 0 <= 0"),  # was dropped: NaCl simulated as Cl only
    ({"occ": "-0.5"}, r"occupancy -0.5 <= 0"),
    ({"occ": "nan"}, r"not a number"),
    ({"occ": "1.5"}, r"occupancy 1.5 > 1"),
    ({"a": "0"}, r"length a = 0 Å \(must be > 0\)"),
    ({"a": "-5.64"}, r"length a = -5.64 Å"),
    ({"alpha": "200"}, r"angle alpha = 200 degrees \(must lie between 0 and 180\)"),
    ({"alpha": "170", "beta": "170"}, r"the angles 170, 170, 90 degrees do not close"),
])
def test_what_is_wrong_with_a_cif_is_said(changes, message):
    fields = {"a": "5.64", "alpha": "90", "beta": "90", "occ": "1", **changes}
    with pytest.raises(StructureError, match=message):
        parse_cif(NACL.format(**fields))
    assert len(parse_cif(NACL.format(a="5.64", alpha="90", beta="90", occ="1")).species) == 8


def test_site_occupancies_may_not_sum_above_one():
    text = NACL.format(a="5.64", alpha="90", beta="90", occ="1").replace(
        "Cl1 Cl 0.5 0.5 0.5 1", "Cl1 Cl 0.5 0.5 0.5 0.7\nBr1 Br 0.5 0.5 0.5 0.7")
    with pytest.raises(StructureError, match=r"sum to 1.4 > 1"):
        parse_cif(text)
