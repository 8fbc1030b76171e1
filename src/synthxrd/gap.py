"""Real crystals with randomized coordinates or lattices: the "gap" analysis of the reference method.

Schopmans, Reiser & Friederich (Digital Discovery 2 (2023) 1414, arXiv 2303.11699) ask why a network
trained on synthetic crystals is more accurate on synthetic crystals than on ICSD crystals of unseen
structure types. They re-draw one part of each real crystal the way the generator draws it and watch
the accuracy move between the two:

- **random coordinates** (:func:`randomize_coordinates`): lattice, space group and the occupation of
  the Wyckoff positions (letter, element and occupancy of every asymmetric-unit site) are kept; the
  free coordinates of every position are redrawn uniformly, as :class:`synthxrd.generate.Generator`
  places atoms (a point uniform in [0, 1)^3 projected onto the position, :func:`synthxrd.wyckoff.project`,
  expanded to its orbit, :func:`synthxrd.wyckoff.orbit`);
- **random lattice** (:func:`randomize_lattice`): the fractional coordinates are kept; the lattice is
  redrawn as the generator draws it for that space group: V = f V_atoms with the denseness factor
  f ~ p(f | V_atoms) of the statistics (redrawn until the generator's volume limits hold), then the
  lattice parameters from the generator's KDE of the crystal system, scaled to V
  (:func:`synthxrd.generate.lattice_matrix`); the crystal-system constraints hold exactly.

Both work on the crystal as spglib sees it at the tolerance of the statistics (symprec 0.1,
:data:`synthxrd.stats.DEFAULT_SYMPREC`): the conventional standard cell (``std_lattice``,
``std_positions``, idealised), the setting of :mod:`synthxrd.wyckoff` and of the generator's lattice
parameters, with the Wyckoff letter of every orbit (:func:`wyckoff_crystal`). A partially occupied site
is one site whose species are the tuple ``((Z, occupancy), ...)`` (as :mod:`synthxrd.stats` and
:mod:`synthxrd.validation` read it); it keeps that tuple. No distance checks, as in the generator.

Differences from the reference code (``ml4pxrd_tools/generation/structure_generation.py``, ``randomize``):
the Wyckoff positions come from spglib instead of pyxtal's ``from_seed``; the random-lattice volume is
drawn from the generator's volume model (the reference keeps the crystal's volume: ``keep_volume=True``).

References
----------
.. [1] H. Schopmans, P. Reiser, P. Friederich, "Neural networks trained on synthetically generated
   crystals can extract structural information from ICSD powder X-ray diffractograms",
   Digital Discovery 2, 1414 (2023), doi:10.1039/D3DD00071K.

Examples
--------
>>> import numpy as np
>>> from importlib.resources import files
>>> zno = files("synthxrd") / "resources" / "examples" / "ZnO_wurtzite.cif"
>>> w = wyckoff_crystal(str(zno))
>>> w.spacegroup, w.letters, w.multiplicities.tolist()
(186, ('b', 'b'), [2, 2])
>>> new = randomize_coordinates(w, 186, np.random.default_rng(0))
>>> len(new.numbers), bool(np.allclose(new.lattice, w.lattice))
(4, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from synthxrd import wyckoff
from synthxrd.errors import StructureError
from synthxrd.stats import DEFAULT_SYMPREC, spglib_dataset
from synthxrd.structure import Crystal, Sites, Species, site_kind, site_types
from synthxrd.structure import crystal_sites as structure_sites
from synthxrd.symmetry import crystal_system

if TYPE_CHECKING:
    from synthxrd.generate import Generator
    from synthxrd.structure import StructureLike

__all__ = [
    "WyckoffCrystal",
    "crystal_sites",
    "site_types",
    "wyckoff_crystal",
    "randomize_coordinates",
    "randomize_lattice",
    "MAX_ORBIT_DRAWS",
]

#: Redraws of one site's point when its orbit has fewer points than the multiplicity (a point on a
#: special position of higher symmetry: probability zero for a uniform draw, so this never binds).
MAX_ORBIT_DRAWS = 100


@dataclass(frozen=True)
class WyckoffCrystal:
    """A crystal in spglib's conventional standard cell, atoms grouped by Wyckoff position.

    Attributes
    ----------
    spacegroup : int
        ITA number found by spglib.
    lattice : numpy.ndarray
        (3, 3) float64, rows a, b, c in Å: ``std_lattice`` (idealised: the crystal-system constraints hold).
    frac_coords : numpy.ndarray
        (n, 3) float64 ``std_positions`` (idealised), one row per site of the conventional cell, sorted by
        asymmetric-unit site.
    site : numpy.ndarray
        (n,) int64, index 0..n_sites-1 of the asymmetric-unit site (orbit) of each row.
    letters : tuple of str
        Wyckoff letter of each asymmetric-unit site, in the setting of :mod:`synthxrd.wyckoff`.
    species : tuple
        ``((Z, occupancy), ...)`` of each asymmetric-unit site.

    Asymmetric-unit sites are ordered as in :mod:`synthxrd.stats`: Wyckoff letter ('a' first), then species.
    """

    spacegroup: int
    lattice: np.ndarray
    frac_coords: np.ndarray
    site: np.ndarray
    letters: tuple[str, ...]
    species: tuple[Species, ...]

    @property
    def n_sites(self) -> int:
        """Number of asymmetric-unit sites."""
        return len(self.letters)

    @property
    def multiplicities(self) -> np.ndarray:
        """(n_sites,) int64: atoms of each asymmetric-unit site in the conventional cell."""
        return np.bincount(self.site, minlength=self.n_sites).astype(np.int64)

    @property
    def crystal_system(self) -> str:
        return crystal_system(self.spacegroup)

    def to_crystal(self) -> Crystal:
        """The conventional cell as a :class:`~synthxrd.structure.Crystal` (one row per site and species)."""
        return Sites(self.lattice, self.frac_coords, tuple(self.species[s] for s in self.site.tolist())).to_crystal()


def crystal_sites(crystal: StructureLike) -> tuple[np.ndarray, list[Species]]:
    """Positions (s, 3) and species ``((Z, occupancy), ...)`` of a crystal's sites:
    :func:`synthxrd.structure.crystal_sites` without the lattice."""
    sites = structure_sites(crystal)
    return sites.positions, list(sites.species)


def wyckoff_crystal(crystal: StructureLike, *, symprec: float = DEFAULT_SYMPREC,
                    angle_tolerance: float = -1.0) -> WyckoffCrystal:
    """The Wyckoff positions of a crystal, from spglib's dataset of the crystal as given.

    Sites are the crystal's scatterer rows grouped by position (:func:`crystal_sites`), typed by their
    ``((Z, occupancy), ...)`` tuple (:func:`site_types`), so that the analysis equals that of
    :func:`synthxrd.stats.analyze_sites` on the sites the CIF reader returns.

    Parameters
    ----------
    crystal : anything :func:`synthxrd.structure.to_crystal` accepts.
    symprec, angle_tolerance : spglib tolerances (Å, degrees; -1: spglib's default angle handling).

    Raises
    ------
    StructureError
        If spglib fails, or an orbit's number of atoms in the conventional cell differs from the
        multiplicity of its Wyckoff position.
    """
    lattice, positions, species = structure_sites(crystal)
    types = site_types(species)
    kinds = {}
    for t, s in zip(types.tolist(), species):
        kinds.setdefault(t, site_kind(s))
    ds = spglib_dataset(lattice, positions, types, symprec, angle_tolerance)
    # conventional-cell atom -> input atom representing it -> its orbit (as synthxrd.stats maps them)
    mapping = np.asarray(ds.mapping_to_primitive)
    first_input = np.full(mapping.max() + 1, -1, np.int64)
    first_input[mapping[::-1]] = np.arange(len(mapping))[::-1]
    std_rep = first_input[np.asarray(ds.std_mapping_to_primitive)]
    std_types = np.asarray(ds.std_types)
    if np.any(std_rep < 0) or np.any(std_types != types[std_rep]):
        raise StructureError("spglib: conventional cell does not map onto the input atoms")
    orbit_of_std = np.asarray(ds.crystallographic_orbits)[std_rep]
    reps, inverse, counts = np.unique(orbit_of_std, return_inverse=True, return_counts=True)
    sg = wyckoff.space_group(int(ds.number))
    rank = {wp.letter: k for k, wp in enumerate(reversed(sg.wyckoff_positions))}
    letters_of = [ds.wyckoffs[int(r)] for r in reps]
    order = sorted(range(len(reps)), key=lambda j: (rank.get(letters_of[j], len(rank)), kinds[int(types[reps[j]])]))
    site_of_rep = np.empty(len(reps), np.int64)
    site_of_rep[order] = np.arange(len(reps))
    site = site_of_rep[inverse.reshape(-1)]
    for j in order:
        expected = sg.position(letters_of[j]).multiplicity
        if counts[j] != expected:
            raise StructureError(f"spglib: {counts[j]} atoms on Wyckoff position {letters_of[j]} of space group "
                                 f"{sg.number}, whose multiplicity is {expected}")
    atoms = np.argsort(site, kind="stable")
    return WyckoffCrystal(int(ds.number), np.asarray(ds.std_lattice, np.float64),
                          np.asarray(ds.std_positions, np.float64)[atoms], site[atoms],
                          tuple(letters_of[j] for j in order), tuple(kinds[int(types[reps[j]])] for j in order))


def _analysed(crystal, spacegroup: int, symprec: float) -> WyckoffCrystal:
    number = wyckoff.space_group(spacegroup).number  # ConfigError for anything but 1..230
    w = crystal if isinstance(crystal, WyckoffCrystal) else wyckoff_crystal(crystal, symprec=symprec)
    if w.spacegroup != number:
        raise StructureError(f"spglib: space group {w.spacegroup} at symprec {symprec:g}, not the given {number}")
    return w


def randomize_coordinates(crystal: StructureLike | WyckoffCrystal, spacegroup: int, rng: np.random.Generator, *,
                          symprec: float = DEFAULT_SYMPREC) -> Crystal:
    """The crystal with the free coordinates of every Wyckoff position redrawn uniformly.

    Per asymmetric-unit site: ``x ~ U[0, 1)^3``, projected onto the site's Wyckoff position
    (``P x + p``, :func:`synthxrd.wyckoff.project`) and expanded to its orbit
    (:func:`synthxrd.wyckoff.orbit`), as the generator places atoms. Fixed (0-DOF) positions keep
    their point. Lattice (spglib's idealised conventional cell), letters, elements and occupancies
    are kept.

    Parameters
    ----------
    crystal : a structure (:func:`synthxrd.structure.to_crystal`), analysed with :func:`wyckoff_crystal`
        at ``symprec``, or an already analysed :class:`WyckoffCrystal`.
    spacegroup : ITA number the crystal has at ``symprec`` (its label).
    rng : the only source of randomness.
    symprec : spglib tolerance (Å) of the analysis.

    Returns
    -------
    Crystal
        Conventional cell, one row per (site, species); sites in the order of ``WyckoffCrystal``.

    Raises
    ------
    StructureError
        If spglib finds another group than ``spacegroup`` or the Wyckoff analysis fails.
    """
    w = _analysed(crystal, spacegroup, symprec)
    sg = wyckoff.space_group(w.spacegroup)
    positions, species = [], []
    for letter, sp in zip(w.letters, w.species):
        wp = sg.position(letter)
        for _ in range(MAX_ORBIT_DRAWS):
            points = wyckoff.orbit(sg, wyckoff.project(wp, rng.random(3)))
            if len(points) == wp.multiplicity:
                break
        else:
            raise StructureError(f"orbit: no point of Wyckoff position {wp.multiplicity}{letter} of space group "
                                 f"{sg.number} with {wp.multiplicity} images in {MAX_ORBIT_DRAWS} draws")
        positions.append(points)
        species.extend([sp] * len(points))
    return Sites(w.lattice, np.concatenate(positions), tuple(species)).to_crystal()


def _cell_volume(generator: Generator, v_atoms: float, n_atoms: int, rng: np.random.Generator) -> float:
    """V = f V_atoms with f ~ p(f | V_atoms), redrawn until the generator's volume limits hold."""
    cfg = generator.config
    for _ in range(cfg.max_attempts):
        volume = generator.draw_volume(v_atoms, rng)
        if cfg.min_volume_per_atom * n_atoms <= volume <= cfg.max_volume:
            return volume
    raise StructureError(f"volume: no denseness factor gives {cfg.min_volume_per_atom:g} A^3/atom <= V <= "
                         f"{cfg.max_volume:g} A^3 in {cfg.max_attempts} draws (V_atoms {v_atoms:.1f} A^3, "
                         f"{n_atoms} atoms)")


def randomize_lattice(crystal: StructureLike | WyckoffCrystal, spacegroup: int, rng: np.random.Generator, *,
                      generator: Generator | None = None, symprec: float = DEFAULT_SYMPREC,
                      keep_volume: bool = False) -> Crystal:
    """The crystal with its lattice redrawn as the generator draws lattices of its space group.

    ``V_atoms = sum over the conventional cell of occ (4/3) pi r^3`` (the radii of the generator's
    statistics; occupancy-weighted as the statistics' ``v_atoms``); the cell volume ``V = f V_atoms``
    with ``f ~ p(f | V_atoms)``, the generator's conditional KDE, redrawn until
    ``min_volume_per_atom * n <= V <= max_volume`` (the generator rejects such crystals); then the
    parameters from the generator's lattice KDE of the crystal system, scaled to ``V``
    (:func:`synthxrd.generate.lattice_matrix`). The fractional coordinates (spglib's idealised
    standard positions) and the species are kept.

    Parameters
    ----------
    crystal : a structure (:func:`synthxrd.structure.to_crystal`) or an analysed :class:`WyckoffCrystal`.
    spacegroup : ITA number the crystal has at ``symprec`` (its label).
    rng : the only source of randomness.
    generator : the :class:`~synthxrd.generate.Generator` whose volume and lattice models are used
        (default: one on the shipped statistics).
    symprec : spglib tolerance (Å) of the analysis.
    keep_volume : keep the crystal's cell volume instead of drawing it (the reference code's choice).

    Returns
    -------
    Crystal
        Conventional cell with the new lattice, one row per (site, species).

    Raises
    ------
    StructureError
        If spglib finds another group than ``spacegroup``, an element has no radius, or no drawn
        volume is within the generator's limits.
    """
    from synthxrd.generate import Generator, lattice_matrix
    from synthxrd.stats import atomic_volumes

    w = _analysed(crystal, spacegroup, symprec)
    gen = Generator() if generator is None else generator
    n_atoms = len(w.frac_coords)
    if keep_volume:
        volume = float(abs(np.linalg.det(w.lattice)))
    else:
        sphere = atomic_volumes(gen.statistics.radii)
        mult = w.multiplicities
        v_atoms = 0.0
        for m, sp in zip(mult.tolist(), w.species):
            for z, occ in sp:
                v = sphere[z] if 0 < z < len(sphere) else math.nan
                if not math.isfinite(v):
                    raise StructureError(f"volume: element Z={z} has no atomic radius in the statistics")
                v_atoms += m * occ * v
        volume = _cell_volume(gen, v_atoms, n_atoms, rng)
    params = gen.draw_lattice_parameters(w.crystal_system, rng)
    return Sites(lattice_matrix(params, volume), w.frac_coords,
                 tuple(w.species[s] for s in w.site.tolist())).to_crystal()
