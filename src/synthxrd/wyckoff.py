"""Wyckoff tables of the 230 space groups and symmetry orbits (pure numpy).

The tables ship as ``resources/wyckoff.json.gz``, built once by ``scripts/build_wyckoff_tables.py``
from spglib's symmetry database and pyxtal's Wyckoff data.

Setting: for every ITA number, spglib's default setting (the smallest Hall number of the space
group type): unique axis b and cell choice 1 for monoclinic groups, origin choice 1 for the 24
groups with two origins, hexagonal axes for rhombohedral groups. Wyckoff letters, multiplicities and
site-symmetry symbols are those spglib reports in ``get_symmetry_dataset`` (``'A'`` stands for ITA's
letter alpha).

Notes
-----
Wyckoff position ``w`` is described by an affine map ``x -> P x + p``: applied to any point (e.g.
uniform in [0, 1)^3) it gives a point on ``w`` with ``dof = rank(P)`` free parameters (``P = 0`` for
fixed positions). The orbit of that point under the general-position operations (centring
translations included) has exactly ``w.multiplicity`` distinct points modulo lattice translations.

References
----------
.. [1] International Tables for Crystallography, Vol. A: Space-group symmetry, 6th ed.,
   M. I. Aroyo (ed.), IUCr/Wiley (2016), doi:10.1107/97809553602060000114.
.. [2] A. Togo, K. Shinohara, I. Tanaka, "Spglib: a software library for crystal symmetry search",
   Sci. Technol. Adv. Mater. Meth. 4, 2384822 (2024), doi:10.1080/27660400.2024.2384822.

Examples
--------
>>> sg = space_group(227)
>>> sg.symbol, len(sg.rotations), sg.wyckoff_positions[-1].letter
('Fd-3m', 192, 'a')
>>> len(orbit(sg, project(sg.position("a"), [0.3, 0.6, 0.9])))
8
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from numbers import Integral
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synthxrd.errors import ConfigError, DataError

__all__ = [
    "WyckoffPosition",
    "SpaceGroupInfo",
    "space_group",
    "project",
    "orbit",
    "crystal_system",
    "hermann_mauguin",
    "N_SPACEGROUPS",
]

#: The number of space-group types (ITA numbers 1..230): the one definition of this fact (the
#: network's output columns, label checks, fusion; :mod:`synthxrd.predict` re-exports it).
N_SPACEGROUPS = 230

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]

TABLE_RESOURCE = "wyckoff.json.gz"
FORMAT_VERSION = 1  # the only table layout this module reads
# Coordinates within this of 1 after wrapping are round-off of 0 (e.g. 1/3 + 2/3 in floats).
_WRAP_EPS = 1e-10


@dataclass(frozen=True)
class WyckoffPosition:
    """One Wyckoff position of a space group.

    Attributes
    ----------
    letter : str
        Wyckoff letter ``'a'``..``'z'``, ``'A'`` (ITA's alpha).
    multiplicity : int
        Number of points of the position in the conventional cell (centring included).
    site_symmetry : str
        Oriented site-symmetry symbol as in ITA (e.g. ``'.-3m'``), equal to spglib's.
    dof : int
        Free coordinate parameters, 0..3 (``rank(P)``).
    P : numpy.ndarray
        (3, 3) float, read-only: linear part of the map onto the position.
    p : numpy.ndarray
        (3,) float in [0, 1), read-only: the representative point of the position is ``P x + p``.
    """

    letter: str
    multiplicity: int
    site_symmetry: str
    dof: int
    P: FloatArray = field(compare=False, repr=False)
    p: FloatArray = field(compare=False, repr=False)


@dataclass(frozen=True)
class SpaceGroupInfo:
    """A space group in spglib's default setting with its Wyckoff positions.

    Attributes
    ----------
    number : int
        ITA number, 1..230.
    hall_number : int
        spglib Hall number of the setting (1..530).
    symbol : str
        Short Hermann–Mauguin symbol as spglib writes it (e.g. ``'P2_1/c'``).
    crystal_system : str
        One of triclinic, monoclinic, orthorhombic, tetragonal, trigonal, hexagonal, cubic.
    centring : str
        Lattice centring letter: P, A, C, I, F or R (R: hexagonal axes, obverse setting).
    rotations : numpy.ndarray
        (n, 3, 3) int, read-only: rotation parts of the general-position operations acting on
        fractional column vectors; ``n`` = multiplicity of the general position.
    translations : numpy.ndarray
        (n, 3) float in [0, 1), read-only: translation parts, centring translations included.
    wyckoff_positions : tuple of WyckoffPosition
        In ITA order: index 0 is the general position, then letters descending to ``'a'`` last;
        multiplicities are non-increasing along the tuple.
    """

    number: int
    hall_number: int
    symbol: str
    crystal_system: str
    centring: str
    rotations: IntArray = field(compare=False, repr=False)
    translations: FloatArray = field(compare=False, repr=False)
    wyckoff_positions: tuple[WyckoffPosition, ...] = field(compare=False, repr=False)

    def position(self, letter: str) -> WyckoffPosition:
        """The Wyckoff position with this letter; ``ConfigError`` if the group has none."""
        for wp in self.wyckoff_positions:
            if wp.letter == letter:
                return wp
        letters = "".join(wp.letter for wp in reversed(self.wyckoff_positions))
        raise ConfigError(
            f"space group {self.number} ({self.symbol}) has no Wyckoff position {letter!r}; "
            f"letters: {letters}"
        )


def _frozen(values: object, dtype: type) -> np.ndarray:
    """Read-only numpy array, so cached tables cannot be changed by callers."""
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@lru_cache(maxsize=1)
def _table() -> dict:
    """The decoded resource file (cached)."""
    resource = files("synthxrd") / "resources" / TABLE_RESOURCE
    try:
        table = json.loads(gzip.decompress(resource.read_bytes()))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read Wyckoff table {resource}: {exc}") from exc
    if table.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"Wyckoff table {resource}: format_version {table.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}; rebuild it with scripts/build_wyckoff_tables.py"
        )
    return table


def _check_number(number: object) -> int:
    """``number`` as int if it is an integer 1..230, else ``ConfigError``."""
    if isinstance(number, Integral) and not isinstance(number, bool) and 1 <= number <= N_SPACEGROUPS:
        return int(number)
    raise ConfigError(f"space group number must be an integer 1..230, got {number!r}")


def _wyckoff_from_json(entry: dict) -> WyckoffPosition:
    return WyckoffPosition(
        letter=entry["letter"],
        multiplicity=entry["multiplicity"],
        site_symmetry=entry["site_symmetry"],
        dof=entry["dof"],
        P=_frozen(entry["P"], np.float64),
        p=_frozen(entry["p"], np.float64),
    )


@lru_cache(maxsize=None)
def _space_group(number: int) -> SpaceGroupInfo:
    entry = _table()["space_groups"][number - 1]
    if entry["number"] != number:
        raise DataError(f"Wyckoff table: entry {number - 1} holds space group {entry['number']}")
    return SpaceGroupInfo(
        number=number,
        hall_number=entry["hall_number"],
        symbol=entry["symbol"],
        crystal_system=entry["crystal_system"],
        centring=entry["centring"],
        rotations=_frozen(entry["rotations"], np.int64),
        translations=_frozen(entry["translations"], np.float64),
        wyckoff_positions=tuple(_wyckoff_from_json(w) for w in entry["wyckoff_positions"]),
    )


def space_group(number: int) -> SpaceGroupInfo:
    """Space group ``number`` (ITA, 1..230) in spglib's default setting.

    Raises
    ------
    ConfigError
        If ``number`` is not an integer in 1..230.
    """
    return _space_group(_check_number(number))


def crystal_system(number: int) -> str:
    """Crystal system of space group ``number``: triclinic, ..., trigonal, hexagonal, cubic."""
    return space_group(number).crystal_system


def hermann_mauguin(number: int) -> str:
    """Short Hermann–Mauguin symbol of space group ``number`` (spglib spelling, e.g. 'P2_1/c')."""
    return space_group(number).symbol


def _wrap(x: FloatArray) -> FloatArray:
    """Fractional coordinates into [0, 1), round-off just below 1 mapped to 0."""
    x = np.mod(x, 1.0)
    return np.where(x >= 1.0 - _WRAP_EPS, 0.0, x)


def project(wp: WyckoffPosition, point: ArrayLike) -> FloatArray:
    """Map fractional point(s) onto Wyckoff position ``wp``.

    Parameters
    ----------
    wp : WyckoffPosition
    point : array_like
        (3,) or (n, 3) fractional coordinates, e.g. uniform in [0, 1).

    Returns
    -------
    numpy.ndarray
        Same shape, ``P x + p`` wrapped into [0, 1): a representative point of ``wp`` (for a fixed
        position the same point whatever ``x``).
    """
    x = np.asarray(point, dtype=np.float64)
    return _wrap(x @ wp.P.T + wp.p)


def orbit(sg: SpaceGroupInfo, point: ArrayLike, tol: float = 1e-6) -> FloatArray:
    """Distinct images of ``point`` under all operations of ``sg``, modulo lattice translations.

    Parameters
    ----------
    sg : SpaceGroupInfo
    point : array_like
        (3,) fractional coordinates.
    tol : float
        Two images are the same point if every fractional coordinate differs by less than ``tol``
        modulo 1 (periodic max-norm).

    Returns
    -------
    numpy.ndarray
        (m, 3) float coordinates in [0, 1), in operation order, first occurrence kept;
        ``m`` equals the multiplicity of the Wyckoff position the point lies on.
    """
    x = np.asarray(point, dtype=np.float64)
    if x.shape != (3,):
        raise ConfigError(f"orbit: point must have shape (3,), got {x.shape}")
    images = _wrap(sg.rotations @ x + sg.translations)
    diff = images[:, None, :] - images[None, :, :]
    same = np.abs(diff - np.round(diff)).max(axis=-1) < tol
    duplicate = np.tril(same, k=-1).any(axis=1)  # equal to an earlier image
    return images[~duplicate]
