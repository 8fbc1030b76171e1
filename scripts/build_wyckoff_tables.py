"""Build ``src/synthxrd/resources/wyckoff.json.gz``: Wyckoff tables of the 230 space groups.

Setting: for every ITA number the default setting of spglib, i.e. the smallest Hall number of the
space group type (unique axis b / cell choice 1 for monoclinic groups, origin choice 1 for the 24
groups with two origins, hexagonal axes for rhombohedral groups).

Sources:

- general-position operations (centring translations included):
  ``spglib.get_symmetry_from_database(hall_number)``;
- Wyckoff positions (letter, multiplicity, site symmetry, representative coordinate triplet):
  ``pyxtal.symmetry.Group(hall_number, use_hall=True)``, i.e. pyxtal's data transformed to the same
  Hall setting. (``Group(number)`` alone would give origin choice 2 for the 24 two-origin groups; an
  origin shift that maps its general position onto spglib's is not unique and can permute Wyckoff
  letters, e.g. 4e/4f of Pnnn.)

Checks: pyxtal's general position equals spglib's operations (modulo lattice translations), and the
orbit of a random point projected onto each Wyckoff position holds exactly ``multiplicity`` distinct
points modulo lattice translations (centring included). That the letters agree with spglib's Wyckoff
assignment is checked in ``tests/test_wyckoff.py``.

Usage::

    python scripts/build_wyckoff_tables.py [--out PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pyxtal
import spglib
from pyxtal.symmetry import Group

FORMAT_VERSION = 1
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "synthxrd" / "resources" / "wyckoff.json.gz"

# Every translation part in ITA (centring included) is a
# multiple of 1/24, so operations are compared exactly on that grid.
GRID = 24
# Points closer than this (fractional units, periodic) are the same point.
TOL = 1e-6

CRYSTAL_SYSTEMS = (  # (last ITA number of the system, name)
    (2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
    (167, "trigonal"), (194, "hexagonal"), (230, "cubic"),
)


def default_hall_number(number: int) -> int:
    """Smallest Hall number of ITA space group ``number`` (spglib's default setting)."""
    return next(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == number)


def crystal_system(number: int) -> str:
    """Crystal system of ITA space group ``number``."""
    return next(name for last, name in CRYSTAL_SYSTEMS if number <= last)


def op_keys(rotations: np.ndarray, translations: np.ndarray) -> set[tuple[int, ...]]:
    """Hashable keys of operations, translations reduced modulo 1 on the 1/GRID grid."""
    t = translations * GRID
    if np.abs(t - np.round(t)).max() > 1e-6:
        raise ValueError("translation not a multiple of 1/24")
    t = np.mod(np.round(t).astype(int), GRID)
    return {tuple(r.ravel()) + tuple(v) for r, v in zip(rotations, t)}


def orbit_size(rotations: np.ndarray, translations: np.ndarray, point: np.ndarray) -> int:
    """Number of distinct images of ``point`` modulo lattice translations."""
    images = np.mod(rotations @ point + translations, 1.0)
    diff = images[:, None, :] - images[None, :, :]
    dist = np.abs(diff - np.round(diff)).max(axis=-1)
    first = np.argmax(dist < TOL, axis=1)  # index of the first image equal to each image
    return int(np.sum(first == np.arange(len(images))))


def frac(x: float) -> float:
    """Snap a float to the 1/GRID grid when it lies on it (removes round-off of 1/3 etc.)."""
    y = round(x * GRID) / GRID
    return y if abs(x - y) < 1e-9 else x


def build_group(number: int, rng: np.random.Generator) -> dict:
    """Table entry of one space group, checked against spglib."""
    hall = default_hall_number(number)
    sgt = spglib.get_spacegroup_type(hall)
    sym = spglib.get_symmetry_from_database(hall)
    rotations = np.asarray(sym["rotations"], dtype=int)
    translations = np.mod(np.asarray(sym["translations"], dtype=float), 1.0)

    group = Group(hall, use_hall=True)
    general = group.Wyckoff_positions[0]
    py_rot = np.array([op.rotation_matrix for op in general.ops]).round().astype(int)
    py_trans = np.array([op.translation_vector for op in general.ops])
    if group.number != number or op_keys(py_rot, py_trans) != op_keys(rotations, translations):
        raise ValueError(f"SG {number}: pyxtal's general position is not spglib's (Hall {hall})")

    positions = []
    for wp in group.Wyckoff_positions:  # ITA order: general position first, then down to 'a'
        op = wp.ops[0]
        P = np.asarray(op.rotation_matrix, dtype=float)
        p = np.mod(np.asarray(op.translation_vector, dtype=float), 1.0)
        n = orbit_size(rotations, translations, P @ rng.random(3) + p)
        if n != wp.multiplicity:
            raise ValueError(f"SG {number} {wp.letter}: {n} points, multiplicity {wp.multiplicity}")
        wp.get_site_symmetry()
        positions.append({
            "letter": wp.letter,
            "multiplicity": int(wp.multiplicity),
            "site_symmetry": wp.site_symm,
            "dof": int(np.linalg.matrix_rank(P)),
            "P": P.round().astype(int).tolist() if np.allclose(P, P.round()) else P.tolist(),
            "p": [frac(float(v)) for v in p],
        })
    if positions[0]["multiplicity"] != len(rotations):
        raise ValueError(f"SG {number}: general multiplicity != {len(rotations)} operations")
    return {
        "number": number,
        "hall_number": hall,
        "hall_symbol": sgt.hall_symbol,
        "choice": sgt.choice,
        "symbol": sgt.international_short,
        "crystal_system": crystal_system(number),
        "centring": sgt.international_short[0],
        "rotations": rotations.tolist(),
        "translations": [[frac(float(v)) for v in t] for t in translations],
        "wyckoff_positions": positions,
    }


def build(seed: int = 0) -> dict:
    """The whole table (JSON-serialisable)."""
    rng = np.random.default_rng(seed)
    return {
        "format_version": FORMAT_VERSION,
        "spglib_version": spglib.__version__,
        "pyxtal_version": pyxtal.__version__,
        "setting": "spglib default Hall number per ITA number (origin choice 1, hexagonal axes "
                   "for R groups, unique axis b)",
        "wyckoff_order": "ITA order: general position first, then decreasing letter down to 'a'; "
                         "letter 'A' is ITA's alpha",
        "space_groups": [build_group(n, rng) for n in range(1, 231)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output gzip JSON file")
    args = parser.parse_args()
    table = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(args.out, "wb", mtime=0) as fh:  # mtime=0: reproducible bytes
        fh.write(json.dumps(table, separators=(",", ":")).encode())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
