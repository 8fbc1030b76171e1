"""Build the real crystal set shipped in ``src/synthxrd/resources/real/real_crystals.npz``.

Run from the repository root (needs pymatgen and spglib; about 20 min with one worker)::

    python scripts/build_real_set.py ../shared/data/mp_experimental/structures.tar.xz \\
        PATH/TO/larixite/amcsd_cif1.db

The first argument is the Materials Project collection the shipped split was made from, the second
the AMCSD SQLite file of the ``larixite`` wheel (``pip download larixite``; :mod:`synthxrd.amcsd`),
or ``none`` for MP alone. The shipped split and statistics choose the crystals
(:func:`synthxrd.real.build_shipped_set`); the file records both sources' SHA-256, the split and
statistics hashes, the counts and the checks of the rebuilt crystals (``synthxrd real info shipped``).
The result is deterministic in its arrays (crystals sorted by source, then id); only ``created`` and the
timings in its metadata change from one build to the next.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthxrd.real import build_shipped_set
from synthxrd.stats import REPRESENTED_MIN_COUNT

OUT = Path(__file__).resolve().parents[1] / "src" / "synthxrd" / "resources" / "real" / "real_crystals.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collection", help="mp_experimental/structures.tar.xz (the shipped split's collection)")
    parser.add_argument("amcsd", help="AMCSD SQLite file (larixite/amcsd_cif1.db), or 'none'")
    parser.add_argument("--out", type=Path, default=OUT, help="output file (default: the package resource)")
    parser.add_argument("--workers", "-j", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--verify-patterns", type=int, default=500,
                        help="crystals whose patterns are compared with those of the crystals as read (default 500)")
    parser.add_argument("--min-count", type=int, default=None,
                        help="classes: the groups with at least this many structures in the statistics "
                             f"(default {REPRESENTED_MIN_COUNT})")
    args = parser.parse_args()
    info = build_shipped_set(args.collection, None if args.amcsd == "none" else args.amcsd, args.out,
                             workers=args.workers, overwrite=True, verify_patterns=args.verify_patterns,
                             min_count=args.min_count)
    print(json.dumps({k: info[k] for k in ("counts", "verification", "build_time_s")}, indent=1))
    print(f"wrote {args.out} ({info['bytes'] / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
