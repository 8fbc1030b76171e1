"""Fit a phase you name to a measured powder pattern (whole-pattern refinement).

  synthxrd refine PATTERN --cif FILE              # intensities from the structure (Rietveld-style)
  synthxrd refine PATTERN --match ID [--library L] # a reference-library entry (its |F|^2 m)
  synthxrd refine PATTERN --cell "a b c al be ga" --spacegroup N   # Le Bail: intensities free

The cell moves within the bounds its crystal system allows (--bound, default 8 % in d), with a zero
shift, a pseudo-Voigt profile of FWHM w0 + w1 tan(theta), a Chebyshev background and, for a K-alpha
wavelength (e.g. --wavelength CuKa), the K-alpha2 line. The report gives Rwp, Rexp, GoF and the
refined parameters with their esds (from the Jacobian); --plot writes the observed, calculated and
difference curves with tick marks; --write-cif DIR writes the phase with its refined cell as a CIF.
See docs/refine.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthxrd.cli.options import LIBRARY_HELP
from synthxrd.errors import ConfigError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH

__all__ = ["HELP", "add_arguments", "run", "cif_target"]

HELP = "fit a phase (CIF, library entry or cell) to a measured pattern: refined cell, Rwp, GoF"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="measured pattern file")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--cif", metavar="FILE", help="a CIF: intensities from its structure")
    src.add_argument("--match", metavar="ID", help="a reference-library entry by id (see `synthxrd library search`)")
    src.add_argument("--cell", metavar="'a b c al be ga'",
                     help="a cell (Å, degrees) for a Le Bail fit; needs --spacegroup")
    parser.add_argument("--spacegroup", type=int, metavar="N", help="ITA number of --cell (its systematic absences)")
    parser.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
    parser.add_argument("--wavelength", metavar="LAMBDA",
                        help="Å or a line name; CuKa (K-alpha average) adds K-alpha2 "
                             "(default: the file's, else CuKa1)")
    parser.add_argument("--bound", type=float, default=0.08, metavar="F",
                        help="largest relative change of d the cell may make (default 0.08)")
    parser.add_argument("--background", type=int, default=6, metavar="N", help="Chebyshev terms (default 6)")
    parser.add_argument("--texture", action="store_true",
                        help="refine March-Dollase preferred orientation (best of three low-index axes)")
    parser.add_argument("--le-bail", action="store_true", help="intensities free (Le Bail) also for --cif/--match")
    parser.add_argument("--caglioti", action="store_true",
                        help="Caglioti widths U, V, W instead of w0 + w1 tan(theta)")
    parser.add_argument("--reflections", type=int, default=10, metavar="N",
                        help="list the N strongest reflections (default 10; 0: none)")
    parser.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"), help="fit only LO-HI degrees 2theta")
    parser.add_argument("--plot", metavar="PNG", help="write the observed/calculated/difference figure here")
    parser.add_argument("--write-cif", metavar="DIR",
                        help="write DIR/STEM.cif (STEM: the pattern's): the phase with its refined cell (with --cif "
                             "its atoms; a library entry or --cell: cell and space group, no atoms)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot or --write-cif file")


def _cell(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--cell: expected six numbers 'a b c alpha beta gamma', got {text!r}") from None
    if len(values) != 6:
        raise ConfigError(f"--cell: expected six numbers 'a b c alpha beta gamma', got {len(values)}")
    return values


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from synthxrd import refine as R
    from synthxrd.cli.options import wavelength_option
    from synthxrd.files import atomic_write, check_outputs
    from synthxrd.io import read_pattern

    if args.cell is not None and args.spacegroup is None:
        raise ConfigError("--cell needs --spacegroup")
    if args.spacegroup is not None and args.cell is None:
        raise ConfigError("--spacegroup goes with --cell")
    if not 0 < args.bound <= 0.3:
        raise ConfigError(f"--bound: expected a fraction in (0, 0.3], got {args.bound}")
    if not 0 <= args.background <= 20:
        raise ConfigError(f"--background: expected 0-20 terms, got {args.background}")
    outputs = ([Path(args.plot)] if args.plot else []) + ([cif_target(args.write_cif, args.pattern)]
                                                          if args.write_cif else [])
    if args.write_cif and Path(args.write_cif).exists() and not Path(args.write_cif).is_dir():
        raise ConfigError(f"--write-cif: {args.write_cif} exists and is not a directory")
    check_outputs(outputs, inputs=[args.pattern, args.cif], overwrite=args.overwrite)
    wavelength = args.wavelength if args.wavelength is None else (
        args.wavelength if not _is_number(args.wavelength) else wavelength_option(args.wavelength))
    tt, y, meta = read_pattern(args.pattern)
    if wavelength is None:
        wavelength = meta.get("wavelength") or DEFAULT_WAVELENGTH
    tt, y = np.asarray(tt, np.float64), np.asarray(y, np.float64)
    lam1 = R.kalpha_lines(wavelength)[0][0]
    d_min = max(0.3, lam1 / (2 * np.sin(np.radians(min(float(tt[-1]), 179.0)) / 2)) * 0.98)
    source = args.cif or args.match or f"cell {args.cell}, space group {args.spacegroup}"
    if args.cif:
        phase = R.phase_from_crystal(args.cif, name=Path(args.cif).stem, d_min=d_min)
    elif args.match:
        from synthxrd.match import ReferenceLibrary

        library = ReferenceLibrary.load(args.library)
        try:
            phase = R.phase_from_library(library, args.match)
        except KeyError as exc:
            raise ConfigError(f"--match: {exc.args[0]}") from None
        reference = library.entry(args.match).reference
        source = f"{args.match} ({reference})" if reference else args.match
    else:
        phase = R.phase_from_cell(_cell(args.cell), args.spacegroup, d_min=max(d_min, 0.5))
    result = R.refine(tt, y, phase, wavelength=wavelength, background=args.background, cell_bound=args.bound,
                      preferred_orientation=bool(args.texture), free_intensities=args.le_bail,
                      caglioti=args.caglioti,
                      two_theta_range=tuple(args.range) if args.range else None)
    if args.plot:
        from synthxrd.plot import plot_refinement

        atomic_write(Path(args.plot), lambda tmp: plot_refinement(tmp, result, title=Path(args.pattern).name))
    cif_path = None
    if args.write_cif:
        from synthxrd.files import write_text

        text = R.refined_cif(result, phase, crystal=args.cif, source=source, pattern=Path(args.pattern).name)
        Path(args.write_cif).mkdir(parents=True, exist_ok=True)
        cif_path = write_text(cif_target(args.write_cif, args.pattern), text)
    if args.json:
        print(json.dumps({"command": "refine", "pattern": args.pattern, **result.to_dict(),
                          "cif": None if cif_path is None else str(cif_path)}, indent=1))
    else:
        print(f"{args.pattern}")
        print(R.report(result, reflections=max(args.reflections, 0)))
        if args.plot:
            print(f"plot in {args.plot}")
        if cif_path is not None:
            print(f"refined phase in {cif_path}")
    if not result.converged:
        print(f"synthxrd refine: {result.message}", file=sys.stderr)
        return 1
    return 0


def cif_target(folder: str | Path, pattern: str | Path) -> Path:
    """Where ``--write-cif FOLDER`` writes the refined phase of ``pattern``: FOLDER/STEM.cif."""
    return Path(folder) / f"{Path(pattern).stem or Path(pattern).name}.cif"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
