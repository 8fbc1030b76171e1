"""The CIF reader behind :func:`synthxrd.structure.parse_cif` (use that): gemmi's CIF parser, then the
sites of the cell as pymatgen's ``CifParser`` builds them (see the :mod:`synthxrd.structure` docstring).
Also the conventions of sites shared by the readers and the symmetry analyses: :data:`Species`,
:func:`site_kind`, the tolerances, and lattice rows <-> cell parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from synthxrd.errors import StructureError

__all__ = ["Species", "SITE_TOLERANCE", "OCCUPANCY_DIGITS", "site_kind", "lattice_parameters",
           "lattice_from_parameters", "read_cif_text"]

Species = tuple[tuple[int, float], ...]
"""The species of one site: ``((Z, occupancy), ...)``, one pair per element."""

#: Two positions closer than this in every fractional coordinate (modulo 1) are one site: pymatgen's
#: ``CifParser`` site tolerance, so that images of an atom on a special position written with five
#: digits (0.33333 vs 0.33334) are one atom.
SITE_TOLERANCE = 1e-4
#: Occupancies are rounded to this many decimals: they decide which sites have the same species (the
#: same spglib type), and CIFs give three or four digits.
OCCUPANCY_DIGITS = 4
#: Occupancies of one site may add up to at most 1 + this (rounded values such as 3 x 0.3334).
OCCUPANCY_EXCESS = 1e-3


def site_kind(species: Species) -> Species:
    """The species of a site in canonical form: sorted by Z, occupancies rounded to :data:`OCCUPANCY_DIGITS`."""
    return tuple(sorted((int(z), round(float(o), OCCUPANCY_DIGITS)) for z, o in species))


def lattice_parameters(matrix: np.ndarray) -> np.ndarray:
    """(6,) float64 ``a, b, c`` (Å), ``alpha, beta, gamma`` (degrees) of a lattice with rows a, b, c."""
    matrix = np.asarray(matrix, np.float64)
    lengths = np.linalg.norm(matrix, axis=1)
    a, b, c = matrix

    def angle(u, v, nu, nv):
        return math.degrees(math.acos(max(-1.0, min(1.0, float(u @ v) / (nu * nv)))))

    return np.array([*lengths, angle(b, c, lengths[1], lengths[2]), angle(a, c, lengths[0], lengths[2]),
                     angle(a, b, lengths[0], lengths[1])])


def lattice_from_parameters(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """(3, 3) lattice rows a, b, c from cell parameters (Å, degrees): a along x, b in the xy plane.

    Raises
    ------
    StructureError
        If the parameters describe no cell (a length <= 0, or angles that do not close).
    """
    for name, length in (("a", a), ("b", b), ("c", c)):
        if not (math.isfinite(length) and length > 0):
            raise StructureError(f"impossible cell: length {name} = {length:g} Å (must be > 0)")
    for name, angle in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not (math.isfinite(angle) and 0 < angle < 180):
            raise StructureError(f"impossible cell: angle {name} = {angle:g} degrees (must lie between 0 and 180)")
    ca, cb, cg = (math.cos(math.radians(t)) for t in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    cy = (ca - cb * cg) / sg
    cz2 = 1.0 - cb * cb - cy * cy
    if cz2 <= 0:  # each angle must be less than the sum of the other two, and all three less than 360
        raise StructureError(f"impossible cell: the angles {alpha:g}, {beta:g}, {gamma:g} degrees do not close "
                             "(each must be less than the sum of the other two, the three less than 360)")
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cb, c * cy, c * math.sqrt(cz2)]])


#: A coordinate within this relative distance of 1/3 or 2/3 is that fraction, in a CIF with symmetry
#: operations (pymatgen's ``frac_tolerance``): 0.3333 and 0.6667 are written for 1/3 and 2/3.
_THIRDS_TOLERANCE = 1e-4
_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c",
              "_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")


def read_cif_text(text: str, z_of: Callable[[str], int]) -> tuple[np.ndarray, np.ndarray, tuple[Species, ...]]:
    """``(lattice, positions, species)`` of the (first) structure of a CIF given as text: the body of
    :func:`synthxrd.structure.parse_cif` (see there and the :mod:`synthxrd.structure` docstring).

    ``z_of(symbol)`` is the atomic number of an element symbol, raising :class:`StructureError` for one
    that is not accepted (called once per new symbol: gemmi's reading of type symbols is cached).
    """
    import gemmi

    try:
        doc = gemmi.cif.read_string(text)
    except (ValueError, RuntimeError) as exc:
        raise StructureError(f"malformed CIF ({_first_line(exc)})") from None
    block = next((b for b in doc if len(b.find_values("_atom_site_fract_x"))), None)
    if block is None:
        if any(b.find_value("_cell_length_a") is not None for b in doc):
            raise StructureError("the structure has no atoms (no _atom_site_fract_x)")
        raise StructureError("malformed CIF (no data block with a cell and atom sites)")
    cell = [block.find_value(tag) for tag in _CELL_TAGS]
    if None in cell:
        raise StructureError(f"malformed CIF (no {', '.join(t for t, v in zip(_CELL_TAGS, cell) if v is None)})")
    try:
        lattice = lattice_from_parameters(*_numbers(cell))
        sites = _atom_site_columns(block)
        missing = [f"_atom_site_fract_{axis}" for axis in "xyz" if "fract_" + axis not in sites]
        if missing:
            raise StructureError(f"malformed CIF (no {', '.join(missing)})")
        columns = [_numbers(sites["fract_" + axis]) for axis in "xyz"]
        if len({len(c) for c in columns}) > 1:
            raise StructureError("malformed CIF (the atom-site columns have different lengths)")
        occupancies = _numbers(sites["occupancy"], default=1.0) if "occupancy" in sites else [1.0] * len(columns[0])
        numbers, small = _atomic_numbers(sites, block, z_of)
        operations = _symmetry_operations(block, small)
    except StructureError:
        raise
    except (ValueError, RuntimeError) as exc:
        raise StructureError(f"malformed CIF ({_first_line(exc)})") from None
    if not math.isfinite(sum(occupancies) + sum(map(sum, columns))):
        raise StructureError("malformed CIF (a coordinate or occupancy is not a number)")
    if min(occupancies) <= 0:
        raise StructureError(f"malformed CIF (occupancy {min(occupancies):g} <= 0)")
    if max(occupancies) > 1.0 + OCCUPANCY_EXCESS:
        raise StructureError(f"malformed CIF (occupancy {max(occupancies):g} > 1)")
    return _expand(lattice, columns, numbers, occupancies, operations)


def _atom_site_columns(block) -> dict[str, list[str]]:
    """The ``_atom_site_*`` values as written, one list per tag (without the prefix, lower case)."""
    item = block.find_loop_item("_atom_site_fract_x")
    loop = None if item is None else item.loop
    if loop is None:  # one atom written as key-value pairs
        table = block.find("_atom_site_", ["fract_x", "fract_y", "fract_z", "?occupancy", "?type_symbol", "?label"])
        names = ("fract_x", "fract_y", "fract_z", "occupancy", "type_symbol", "label")
        return {name: list(table.column(k)) for k, name in enumerate(names) if table.has_column(k)}
    values, width = loop.values, loop.width()  # one call: all values of the loop
    return {tag[len("_atom_site_"):].lower(): values[k::width] for k, tag in enumerate(loop.tags)
            if tag.lower().startswith("_atom_site_")}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _numbers(values, default: float = math.nan) -> list[float]:
    """Floats of CIF values; standard uncertainties dropped, ``?`` and ``.`` are ``default``."""
    import gemmi

    try:
        return list(map(float, values))
    except ValueError:  # "0.1234(5)", "?", quoted numbers: gemmi's number reader
        return [default if v in ("?", ".") else gemmi.cif.as_number(v) for v in values]


#: type symbol (or label) as written -> atomic number, as gemmi reads it ("O2-" -> 8): filled per
#: file the first time a symbol is seen, so that most files need no per-site gemmi objects.
_ELEMENTS: dict[tuple[bool, str], int] = {}


def _atomic_numbers(sites: dict[str, list[str]], block, z_of: Callable[[str], int]) -> tuple[list[int], Any]:
    """Atomic numbers of the atom-site rows (gemmi's element of the type symbol, else of the label),
    and gemmi's SmallStructure of the block when it had to be built (else None)."""
    import gemmi

    if "label" not in sites:  # required by the CIF dictionary, and gemmi reads the rows by it
        raise ValueError("atom sites without _atom_site_label")
    by_type = "type_symbol" in sites
    tokens = sites["type_symbol" if by_type else "label"]
    small = None
    if any((by_type, t) not in _ELEMENTS for t in tokens):
        small = gemmi.make_small_structure_from_block(block)
        if len(small.sites) != len(tokens):
            raise ValueError(f"{len(tokens)} atom-site rows, {len(small.sites)} read")
        if len(_ELEMENTS) > 10_000:
            _ELEMENTS.clear()
        for token, site in zip(tokens, small.sites):  # 'X': an unknown symbol or a dummy species, shown as written
            _ELEMENTS[by_type, token] = z_of(gemmi.cif.as_string(token) if site.element.atomic_number == 0
                                             else site.element.name)
    return [_ELEMENTS[by_type, t] for t in tokens], small


_IDENTITY = ("x,y,z", "+x,+y,+z")
#: The species of a fully occupied site of element Z, by Z.
_ORDERED: tuple[Species, ...] = tuple(((z, 1.0),) for z in range(128))
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")  # the older tag is the common one


def _symmetry_operations(block, small) -> np.ndarray | None:
    """(n, 4, 4) Seitz matrices of the CIF's operations: its explicit ones, else those of its space
    group (Hall, H-M or number, as gemmi finds it); None for the identity alone (P1)."""
    import gemmi

    for tag in _SYMOP_TAGS:
        ops = [gemmi.cif.as_string(v) for v in block.find_values(tag)]
        if ops:
            if all(op.replace(" ", "").lower() in _IDENTITY for op in ops):
                return None
            return np.array([gemmi.Op(op).float_seitz() for op in ops], np.float64)
    small = small or gemmi.make_small_structure_from_block(block)
    if small.spacegroup is not None:
        seitz = np.array([op.float_seitz() for op in small.spacegroup.operations()], np.float64)
        return None if len(seitz) == 1 else seitz
    named = small.spacegroup_hm or small.spacegroup_hall or (
        block.find_value("_symmetry_Int_Tables_number") or block.find_value("_space_group_IT_number"))
    if named and gemmi.cif.as_string(named).strip(" ?.") not in ("", "P 1", "P1", "1"):
        raise ValueError(f"unknown space group {named.strip()!r} and no symmetry operations")
    return None


def _expand(lattice, columns, numbers, occupancies, operations) -> tuple[np.ndarray, np.ndarray, tuple[Species, ...]]:
    """Apply every operation to every atom, wrap into [0, 1) and merge images closer than SITE_TOLERANCE.

    ``columns``: the x, y and z lists of the atoms; ``operations``: (n, 4, 4) Seitz matrices or None (P1).
    """
    if operations is None:
        n_ops = 1
    else:
        pos = np.array(columns, np.float64).T
        for third in (1 / 3, 2 / 3):  # 0.3333 means 1/3: else its images miss each other (as pymatgen)
            pos[np.abs(pos / third - 1.0) <= _THIRDS_TOLERANCE] = third
        columns = (np.einsum("kij,aj->iak", operations[:, :3, :3], pos)
                   + operations[:, :3, 3].T[:, None, :]).reshape(3, -1).tolist()
        n_ops = len(operations)
    xs, ys, zs = ([v % 1.0 for v in c] for c in columns)  # into [0, 1]; 1.0 only by round-off of -1e-17
    owner = _first_close(xs, ys, zs)
    if owner is None and n_ops == 1:  # no two atoms on one site: the common case
        if occupancies.count(1.0) == len(occupancies):
            species = tuple(map(_ORDERED.__getitem__, numbers))
        else:
            species = tuple(((z, round(o, OCCUPANCY_DIGITS)),) for z, o in zip(numbers, occupancies))
        return lattice, np.array([xs, ys, zs], np.float64).T.copy(), species
    owner = owner or list(range(len(xs)))
    firsts = [i for i, o in enumerate(owner) if o == i]
    site_of = {f: k for k, f in enumerate(firsts)}
    members: list[dict[int, int]] = [{} for _ in firsts]  # per site: CIF row -> its first image
    for image, o in enumerate(owner):
        members[site_of[o]].setdefault(image // n_ops, image)
    species = []
    for rows in members:
        amounts: dict[int, float] = {}
        for a in rows:
            amounts[numbers[a]] = amounts.get(numbers[a], 0.0) + occupancies[a]
        if sum(amounts.values()) > 1.0 + OCCUPANCY_EXCESS:
            raise StructureError(f"malformed CIF (the occupancies of the atoms on one site sum to "
                                 f"{sum(amounts.values()):g} > 1)")
        species.append(site_kind(tuple(amounts.items())))
    positions = np.array([[xs[f] for f in firsts], [ys[f] for f in firsts], [zs[f] for f in firsts]], np.float64)
    return lattice, positions.T.copy(), tuple(species)


def _first_close(xs: list[float], ys: list[float], zs: list[float]) -> list[int] | None:
    """For each point (coordinates in [0, 1]): the index of the first point (in order) within
    SITE_TOLERANCE of it in every coordinate, modulo 1, itself if none comes before; chains are followed
    to their first point. None when no two points are that close.

    Candidate pairs come from a sweep along x in sorted order (points closer than the tolerance in x,
    across the wrap too): O(n log n) for the usual structure, whose atoms share few x values.
    """
    tol = SITE_TOLERANCE
    n = len(xs)
    order = sorted(range(n), key=xs.__getitem__)
    xo = [xs[i] for i in order]
    for k in range(n):  # the points near 0 once more after those near 1
        if xo[k] >= tol:
            break
        xo.append(xo[k] + 1.0)
        order.append(order[k])
    owner = None
    end = len(xo)
    for k in range(n):
        x, i = xo[k], order[k]
        j = k + 1
        while j < end and xo[j] - x < tol:
            m = order[j]
            j += 1
            d = ys[i] - ys[m]
            if m == i or abs(d - round(d)) >= tol:
                continue
            d = zs[i] - zs[m]
            if abs(d - round(d)) >= tol:
                continue
            owner = owner or list(range(n))
            lo, hi = (i, m) if i < m else (m, i)
            if lo < owner[hi]:
                owner[hi] = lo
    if owner is None:
        return None
    for i in range(n):  # follow chains (c close to b close to a) to the first point; owner[i] <= i
        owner[i] = owner[owner[i]]
    return owner
