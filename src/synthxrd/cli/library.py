"""Reference libraries of known structures for search-match.

  synthxrd library build SOURCE --out lib.npz [--workers N] [--d-min 0.9] [--min-intensity 0.005] [--max-peaks 64]
  synthxrd library merge LIBRARY LIBRARY... --out lib.npz
  synthxrd library info [LIBRARY]
  synthxrd library search PATTERN... [--library lib.npz] [--elements Fe,O] [-k 10]

SOURCE is a folder of CIFs (searched recursively: a COD tree or an ICSD export as downloaded), a tar
archive of CIFs, one CIF, or an AMCSD SQLite database (larixite's amcsd_cif1.db, detected by content),
read as by `synthxrd stats`. Per structure the library keeps id (file stem, or amcsd-NNNNNNN),
reduced formula, elements, spglib space group, lattice parameters, mineral name and reference where
the CIF gives them, and its reflections (d, |F|^2 multiplicity, hkl), so that its pattern at any
wavelength follows exactly. A CIF that cannot be read is reported and skipped; the exit code is then
1. `merge` makes one library of several: ids kept unique, the same phase in several entries marked
so that a search lists it once. A LIBRARY is a file or a shipped library: mp (46,627 experimentally
observed Materials Project structures, CC-BY 4.0), amcsd (the minerals of the American Mineralogist
Crystal Structure Database) or default (both, searched as one), which `info` and `search` use
without --library.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from synthxrd.cli.options import LIBRARY_HELP, match_columns, print_failures
from synthxrd.errors import ConfigError

HELP = "build, inspect and search reference libraries of known structures (search-match)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.match.library import DEFAULT_D_MIN, DEFAULT_MAX_PEAKS, DEFAULT_MIN_INTENSITY

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build a library from a folder or tar archive of CIFs",
                       description="Build a reference library from CIFs (see `synthxrd library --help`).")
    b.add_argument("source", metavar="SOURCE", help="folder of CIFs, tar archive of CIFs, or a CIF")
    b.add_argument("--out", "-o", required=True, metavar="FILE", help="output library (.npz)")
    b.add_argument("--workers", "-j", type=int, default=None, help="worker processes (default: available cores)")
    b.add_argument("--symprec", type=float, default=0.1, help="spglib distance tolerance in Å (default 0.1)")
    b.add_argument("--d-min", type=float, default=DEFAULT_D_MIN,
                   help=f"smallest d-spacing kept, Å (default {DEFAULT_D_MIN}: Cu K-alpha to 117 degrees)")
    b.add_argument("--min-intensity", type=float, default=DEFAULT_MIN_INTENSITY,
                   help=f"drop reflections below this fraction of the strongest at Cu K-alpha1 "
                        f"(default {DEFAULT_MIN_INTENSITY})")
    b.add_argument("--max-peaks", type=int, default=DEFAULT_MAX_PEAKS,
                   help=f"keep at most this many strongest reflections per structure (default {DEFAULT_MAX_PEAKS}; "
                        "0: all)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    b.add_argument("--checkpoint-every", type=float, default=60.0, metavar="S",
                   help="save what is done to OUT.partial every S seconds (default 60); a build stopped "
                        "for any reason continues from there when run again with the same options")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--show-failures", type=int, default=10, metavar="N", help="print the first N failures (default 10)")

    m = sub.add_parser("merge", help="one library of several (searched with one ranking)",
                       description="Merge reference libraries: ids kept unique (prefixed with their library's "
                                   "name where taken), duplicates (same formula, space group and cell within "
                                   "tolerance) kept and marked.")
    m.add_argument("libraries", nargs="+", metavar="LIBRARY", help="library files or shipped names (mp, amcsd)")
    m.add_argument("--out", "-o", required=True, metavar="FILE", help="output library (.npz)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    i = sub.add_parser("info", help="summary of a library", description="Summary of a reference library.")
    i.add_argument("library", nargs="?", default=None, metavar="LIBRARY", help=LIBRARY_HELP)

    s = sub.add_parser("search", help="best-matching structures of measured patterns",
                       description="Search-match measured patterns against a library (no network).")
    s.add_argument("patterns", nargs="+", metavar="PATTERN", help="measured pattern files")
    s.add_argument("--library", default=None, metavar="LIBRARY", help=LIBRARY_HELP)
    s.add_argument("--wavelength", default=None,
                   help="Å or a line name, for files that state none (default: Cu K-alpha1, with a note)")
    s.add_argument("--elements", default=None, metavar="EL,EL", help="only structures containing all of these")
    s.add_argument("--only-elements", action="store_true",
                   help="with --elements: only structures made of these elements alone")
    s.add_argument("-k", type=int, default=10, help="matches per pattern (default 10)")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "merge": _merge, "info": _info, "search": _search}[args.action](args)


def _build(args: argparse.Namespace) -> int:
    from synthxrd.files import check_outputs
    from synthxrd.match import ReferenceLibrary
    from synthxrd.stats import default_workers

    import math

    if not (math.isfinite(args.checkpoint_every) and args.checkpoint_every > 0):
        raise ConfigError(f"--checkpoint-every must be a positive number of seconds, got {args.checkpoint_every}")
    check_outputs([args.out], inputs=[args.source], overwrite=args.overwrite)
    workers = default_workers() if args.workers is None else args.workers
    checkpoint = Path(str(args.out) + ".partial")
    if checkpoint.is_file():
        print(f"resuming from {checkpoint} ({len(ReferenceLibrary.load(checkpoint))} structures done)")
    print(f"building a reference library from {args.source} with {workers} worker(s)")
    start = time.perf_counter()
    library = ReferenceLibrary.build(args.source, symprec=args.symprec, d_min=args.d_min,
                                     min_intensity=args.min_intensity, max_peaks=args.max_peaks or None,
                                     workers=workers, progress=not args.no_progress, checkpoint=checkpoint,
                                     checkpoint_every_s=args.checkpoint_every)
    out = library.save(args.out, overwrite=args.overwrite)
    checkpoint.unlink(missing_ok=True)
    failures = library.metadata["failures"]
    print(f"{len(library)} structures, {len(library.d)} reflections, {len(failures)} failures; "
          f"{time.perf_counter() - start:.1f} s")
    print_failures(failures, args.show_failures, f"the metadata of {out}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 1 if failures else 0


def _merge(args: argparse.Namespace) -> int:
    from synthxrd.files import check_outputs
    from synthxrd.match import ReferenceLibrary

    if len(args.libraries) < 2:
        raise ConfigError("library merge needs at least two libraries")
    check_outputs([args.out], inputs=[p for p in args.libraries if Path(p).exists()], overwrite=args.overwrite)
    library = ReferenceLibrary.merge(*(ReferenceLibrary.load(p) for p in args.libraries))
    out = library.save(args.out, overwrite=args.overwrite)
    dup = library.metadata["duplicates"]
    print(f"{len(library)} structures from {len(args.libraries)} libraries, {dup['n_duplicates']} marked as "
          f"duplicates of another entry; wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from synthxrd.match import ReferenceLibrary

    library = ReferenceLibrary.load(args.library)
    m = library.metadata
    counts = np.bincount(library.spacegroups.astype(np.int64), minlength=231)
    top = np.argsort(-counts, kind="stable")[:10]
    print(f"{library.label}: {len(library)} structures in {int((counts > 0).sum())} space groups, "
          f"{len(library.d)} reflections (d >= {library.d_min} Å, >= {m.get('min_intensity')} of the strongest, "
          f"at most {m.get('max_peaks')} per structure)")
    for part in m.get("merged") or [m]:
        print(f"{'  part: ' if 'merged' in m else ''}{part.get('source')}: {part.get('n_structures')} structures, "
              f"symprec {m.get('symprec')}, built {part.get('created')} with synthxrd {part.get('package_version')}"
              + ("" if "merged" in m else f", {m.get('n_failures', 0)} failures"))
    print("most frequent space groups: " + ", ".join(f"{g} ({counts[g]})" for g in top if counts[g]))
    n_minerals = len(set(library.minerals.tolist()) - {""})
    if n_minerals:
        print(f"{int((library.minerals != '').sum())} entries name their mineral ({n_minerals} minerals)")
    if "duplicates" in m:
        dup = m["duplicates"]
        print(f"{dup.get('n_duplicates', 0)} entries are duplicates of another (same formula and space group, "
              f"cell within {dup['length_tolerance']:.0%} and {dup['angle_tolerance']:g} degrees)")
    for citation in sorted(({m.get("citation")} | {p.get("citation") for p in m.get("merged", [])}) - {None}):
        print(f"cite: {citation}")
    return 0


def _search(args: argparse.Namespace) -> int:
    import warnings

    from synthxrd.cli.options import element_options, wavelength_option
    from synthxrd.errors import ConfigError
    from synthxrd.io import MIN_PEAK_SIGNIFICANCE, no_peaks_error, pattern_peak_significance
    from synthxrd.io.prepare import read_measured
    from synthxrd.match import ReferenceLibrary
    from synthxrd.predict import failure_message
    from synthxrd.wyckoff import hermann_mauguin

    if args.k < 1:
        raise ConfigError(f"-k: expected an integer >= 1, got {args.k}")
    element_options(args.elements, args.only_elements)
    wavelength = wavelength_option(args.wavelength)
    library = ReferenceLibrary.load(args.library)
    failed = 0
    for path in args.patterns:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                measured = read_measured(path, wavelength=wavelength, action="search")  # as predict reads it
            tt, y, lam = measured.two_theta, measured.intensity, measured.wavelength
            significance = pattern_peak_significance(tt, y)
            if significance < MIN_PEAK_SIGNIFICANCE:  # a background alone: any match would be made up
                raise no_peaks_error(str(path), significance)
            for note in measured.notes:
                print(f"note: {note}")
            matches = library.search(tt, y, k=args.k, wavelength=lam, elements=args.elements,
                                     only_elements=args.only_elements)[0]
        except Exception as exc:  # one line per file, the others go on
            print(f"synthxrd library: error: {failure_message(str(path), exc)}")
            failed += 1
            continue
        print(f"{path}: {len(matches)} matches (λ = {lam:g} Å)")
        width, scores = match_columns(matches)
        print(f"  {'id':<15}{'formula':<{width}}{'space group':<18}{'score':>7}{'scale':>8}  mineral")
        for m, score in zip(matches, scores):
            print(f"  {m.id:<15}{m.formula:<{width}}{m.spacegroup:>4} {hermann_mauguin(m.spacegroup):<13}"
                  f"{score}{m.scale:>8.4f}  {m.mineral}".rstrip())
    return 1 if failed else 0
