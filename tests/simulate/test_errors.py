"""Bad input gives one clear error: the right class, and a message naming the file or the field.

``StructureError`` for structures (files, elements, coordinates, lattices, batches) and
``ConfigError`` for options (2theta range, wavelength, crystallite size, grid); both are
``ValueError`` subclasses.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import DummySpecies, Lattice, Structure

from synthxrd import simulate
from synthxrd.errors import ConfigError, StructureError, SynthXRDError
from synthxrd.structure import Crystal, CrystalBatch, read_cif, to_crystal

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def crystal(**changes) -> Crystal:
    fields = {"lattice": np.eye(3) * 4.0, "frac_coords": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
              "numbers": np.array([11, 17], np.int64), "occupancies": np.ones(2)}
    fields.update(changes)
    return Crystal(**fields)


def test_error_classes():
    assert issubclass(StructureError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(StructureError, SynthXRDError) and issubclass(ConfigError, SynthXRDError)


# ----------------------------------------------------------------------------------------------
# files


@pytest.mark.parametrize("reader", [simulate.peaks, simulate.pattern, read_cif, to_crystal])
def test_malformed_cif(reader, test_data):
    path = test_data / "malformed.cif"
    with pytest.raises(StructureError, match=rf"{re.escape(str(path))}.*malformed CIF"):
        reader(path)


@pytest.mark.parametrize("as_str", [False, True])
def test_missing_file(as_str, tmp_path):
    path = tmp_path / "does_not_exist.cif"
    with pytest.raises(StructureError, match=rf"{re.escape(str(path))}: no such file"):
        simulate.peaks(str(path) if as_str else path)


def test_directory_is_not_a_cif(tmp_path):
    with pytest.raises(StructureError, match=re.escape(str(tmp_path))):
        simulate.peaks(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.cif"
    path.write_text("")
    with pytest.raises(StructureError, match=re.escape(str(path))):
        simulate.peaks(path)


def test_cif_without_atoms(test_data):
    path = test_data / "no_atoms.cif"
    with pytest.raises(StructureError, match=re.escape(str(path))):
        simulate.peaks(path)


def test_cif_with_dummy_species(test_data):
    path = test_data / "dummy_species.cif"
    with pytest.raises(StructureError, match=rf"{re.escape(str(path))}: element 'X' has no X-ray scattering"):
        simulate.peaks(path)


def test_cif_with_element_without_coefficients(test_data):
    path = test_data / "unknown_element.cif"
    with pytest.raises(StructureError, match=rf"{re.escape(str(path))}: element 'Es' has no X-ray scattering"):
        simulate.pattern(path, crystallite_size_nm=50)


# ----------------------------------------------------------------------------------------------
# structures in memory


def test_empty_structure():
    with pytest.raises(StructureError, match="Structure: the structure has no atoms"):
        simulate.peaks(Structure(Lattice.cubic(4.0), [], []))


def test_empty_ase_atoms():
    from ase import Atoms

    with pytest.raises(StructureError, match="no atoms"):
        simulate.peaks(Atoms(cell=np.eye(3) * 4.0, pbc=True))


@pytest.mark.parametrize("species", [DummySpecies("X"), "Es", "Cm0+"])
def test_unknown_element_in_structure(species):
    s = Structure(Lattice.cubic(4.0), ["Na", species], [[0, 0, 0], [0.5, 0.5, 0.5]])
    symbol = getattr(s[1].specie, "symbol", str(s[1].specie))
    if symbol == "Cm":
        assert simulate.peaks(s)[0].size > 0  # Cm (Z = 96) is covered; an oxidation state does not matter
        return
    with pytest.raises(StructureError, match=rf"Structure: element '{symbol}' has no X-ray scattering coefficients"):
        simulate.peaks(s)


def test_unknown_element_in_ase_atoms():
    from ase import Atoms

    atoms = Atoms("NaX", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * 4.0, pbc=True)
    with pytest.raises(StructureError, match="element 'X' has no X-ray scattering coefficients"):
        simulate.peaks(atoms)


@pytest.mark.parametrize("z", [0, 99, -3])
def test_atomic_number_without_coefficients(z):
    with pytest.raises(StructureError, match=rf"crystal: atomic number {z} has no X-ray scattering"):
        crystal(numbers=np.array([11, z], np.int64))


@pytest.mark.parametrize("where", ["coordinates", "lattice", "occupancies"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_values(where, bad):
    with pytest.raises(StructureError, match="must be finite"):
        if where == "coordinates":
            crystal(frac_coords=np.array([[0.0, bad, 0.0], [0.5, 0.5, 0.5]]))
        elif where == "lattice":
            crystal(lattice=np.array([[4.0, 0, 0], [0, bad, 0], [0, 0, 4.0]]))
        else:
            crystal(occupancies=np.array([1.0, bad]))


def test_nan_coordinates_in_structure():
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, np.nan, 0.5]])
    with pytest.raises(StructureError, match=r"Structure: .*fractional coordinates.*finite"):
        simulate.peaks(s)


@pytest.mark.parametrize("lattice", [
    np.zeros((3, 3)),
    np.array([[4.0, 0, 0], [8.0, 0, 0], [0, 0, 4.0]]),  # a parallel to b
    np.array([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]]),  # c in the ab plane
])
def test_singular_lattice(lattice):
    with pytest.raises(StructureError, match=r"crystal: lattice 0 is singular"):
        simulate.peaks(crystal(lattice=lattice))


def test_singular_lattice_in_structure():
    s = Structure(Lattice([[4.0, 0, 0], [8.0, 0, 0], [0, 0, 4.0]]), ["Na"], [[0, 0, 0]])
    with pytest.raises(StructureError, match=r"Structure: lattice 0 is singular"):
        simulate.peaks(s)


@pytest.mark.parametrize("occupancy", [0.0, -0.5, 1.5])
def test_bad_occupancy(occupancy):
    with pytest.raises(StructureError, match=r"crystal: occupancies must lie in \(0, 1\]"):
        crystal(occupancies=np.array([1.0, occupancy]))


def test_bad_shapes():
    with pytest.raises(StructureError, match="crystal: inconsistent shapes"):
        crystal(frac_coords=np.zeros((3, 3)))
    with pytest.raises(StructureError, match="crystal: inconsistent shapes"):
        crystal(lattice=np.eye(2))
    with pytest.raises(StructureError, match="numbers must hold integers"):
        crystal(numbers=np.array([11.0, 17.5]))


def test_not_a_structure():
    with pytest.raises(StructureError, match="cannot use an object of type int as a structure"):
        simulate.peaks(42)


# ----------------------------------------------------------------------------------------------
# options


@pytest.mark.parametrize("two_theta_range", [(90, 5), (-1, 90), (5, 200), (30, 30), (np.nan, 90)])
def test_bad_two_theta_range(nacl, two_theta_range):
    with pytest.raises(ConfigError, match=r"two_theta_range: need 0 <= min < max <= 180"):
        simulate.peaks(nacl, two_theta_range=two_theta_range)


@pytest.mark.parametrize("two_theta_range", [(5,), (5, 90, 100), ("a", "b"), None, 5])
def test_malformed_two_theta_range(nacl, two_theta_range):
    with pytest.raises(ConfigError, match=r"two_theta_range: expected \(min, max\)"):
        simulate.peak_list(nacl, two_theta_range=two_theta_range)


def test_bad_wavelength_name(nacl):
    with pytest.raises(ConfigError, match=r"wavelength: unknown name 'XyzKa'.*CuKa1"):
        simulate.peaks(nacl, wavelength="XyzKa")


@pytest.mark.parametrize("wavelength", [-1, 0, 0.0, np.nan, np.inf, 1e-4, 1e3, "-1.5"])
def test_bad_wavelength_value(nacl, wavelength):
    with pytest.raises(ConfigError, match=r"wavelength: .* not a usable X-ray wavelength"):
        simulate.peaks(nacl, wavelength=wavelength)


@pytest.mark.parametrize("call", ["pattern", "patterns", "resolve"])
def test_bad_wavelength_everywhere(nacl, call):
    with pytest.raises(ConfigError, match="wavelength"):
        if call == "pattern":
            simulate.pattern(nacl, crystallite_size_nm=30, wavelength=0)
        elif call == "patterns":
            simulate.patterns(CrystalBatch.from_crystals([nacl]), crystallite_size_nm=30, wavelength="XyzKa")
        else:
            simulate.resolve_wavelength(-1)


def test_wavelength_of_wrong_type(nacl):
    with pytest.raises(ConfigError, match="wavelength"):
        simulate.peaks(nacl, wavelength=None)


@pytest.mark.parametrize("size", [0, -5, np.nan, np.inf, 0.1, "big", [20.0, 30.0]])
def test_bad_crystallite_size(nacl, size):
    with pytest.raises(ConfigError, match="crystallite_size_nm"):
        simulate.pattern(nacl, crystallite_size_nm=size)


def test_bad_crystallite_sizes_in_batch(nacl):
    batch = CrystalBatch.from_crystals([nacl, nacl])
    with pytest.raises(ConfigError, match="crystallite_size_nm: expected a number or 2 numbers"):
        simulate.patterns(batch, crystallite_size_nm=[20.0, 30.0, 40.0])
    with pytest.raises(ConfigError, match="crystallite_size_nm"):
        simulate.patterns(batch, crystallite_size_nm=np.array([20.0, -1.0]))


@pytest.mark.parametrize("size", [0.0, -5.0, np.nan])
def test_smear_bad_crystallite_size(size):
    with pytest.raises(ConfigError, match="crystallite_size_nm"):
        simulate.smear(np.array([30.0]), np.array([1.0]), size)


def test_smear_mismatched_lengths():
    with pytest.raises((ConfigError, ValueError), match="intensity|two_theta"):
        simulate.smear(np.array([30.0, 40.0]), np.array([1.0]), 20.0)


@pytest.mark.parametrize("kwargs", [dict(start=90, stop=5), dict(start=0), dict(stop=180), dict(n=1), dict(n=10.5)])
def test_bad_grid(kwargs):
    with pytest.raises(ConfigError, match="grid: need 0 < start < stop < 180"):
        simulate.Grid(**kwargs)


def test_bad_debye_waller(nacl):
    with pytest.raises(ConfigError, match="debye_waller: B for Na must be a finite value >= 0"):
        simulate.peaks(nacl, debye_waller={"Na": -1.0})
    with pytest.raises(ValueError, match="debye_waller: element 'Xx'"):
        simulate.peaks(nacl, debye_waller={"Xx": 1.0})


# ----------------------------------------------------------------------------------------------
# batches


@pytest.fixture(scope="module")
def batch(nacl) -> CrystalBatch:
    return CrystalBatch.from_crystals([nacl, crystal()])


@pytest.mark.parametrize("offsets", [[0, 11, 10], [1, 8, 10], [0, 9, 8], [0, 8, 11], [-2, 8, 10]])
def test_batch_with_inconsistent_offsets(batch, offsets):
    assert batch.offsets[-1] == 10
    with pytest.raises(StructureError, match=r"batch: offsets must rise from 0 to 10"):
        CrystalBatch(batch.lattices, batch.frac_coords, batch.numbers, batch.occupancies, np.array(offsets))


def test_batch_offsets_of_wrong_length(batch):
    with pytest.raises(StructureError, match=r"batch: inconsistent shapes .*offsets \(4,\) \(expected \(3,\)\)"):
        CrystalBatch(batch.lattices, batch.frac_coords, batch.numbers, batch.occupancies, np.array([0, 3, 8, 10]))


def test_batch_offsets_not_integers(batch):
    with pytest.raises(StructureError, match="batch: offsets must hold integers"):
        CrystalBatch(batch.lattices, batch.frac_coords, batch.numbers, batch.occupancies, np.array([0.0, 8.0, 10.0]))


def test_patterns_needs_a_batch(nacl):
    with pytest.raises(StructureError, match="patterns: expected a CrystalBatch, got list"):
        simulate.patterns([nacl], crystallite_size_nm=30)


def test_patterns_crystal_without_reflections(nacl):
    tiny = Crystal(np.eye(3) * 0.5, np.zeros((1, 3)), np.array([1], np.int64), np.ones(1))
    batch = CrystalBatch.from_crystals([nacl, tiny])
    with pytest.raises(StructureError, match=r"patterns: crystal\(s\) \[1\] have no reflection between 5.0 and 90.0"):
        simulate.patterns(batch, crystallite_size_nm=30)
    with pytest.raises(StructureError, match="no reflection"):
        simulate.pattern(tiny, crystallite_size_nm=30)


def test_errors_print_as_one_line(test_data, nacl):
    """The CLI prints messages as one line; none of them spans several."""
    calls = [lambda: simulate.peaks(test_data / "malformed.cif"), lambda: simulate.peaks(test_data / "dummy_species.cif"),
             lambda: simulate.peaks(nacl, wavelength="XyzKa"), lambda: simulate.peaks(nacl, two_theta_range=(90, 5)),
             lambda: simulate.pattern(nacl, crystallite_size_nm=-1), lambda: simulate.peaks(Path("/nonexistent.cif"))]
    for call in calls:
        with pytest.raises(SynthXRDError) as info:
            call()
        assert "\n" not in str(info.value)
