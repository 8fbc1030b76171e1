"""Identify every phase of a measured powder pattern, with refined cells and weight fractions.

  synthxrd mixture PATTERN [--phases auto|N] [--library L] [--structures CIFS] [--json] [--plot PNG]

Searches the reference library, refines the best candidates, searches what the fit leaves unexplained
for the next phase, refines all found phases jointly and keeps a new phase only while it lowers the
misfit significantly (``--phases auto``: relative Rwp drop, F-test and a minimum fraction;
:class:`synthxrd.mixture.MixtureSettings`), or exactly N phases (``--phases N``). Look-alikes
(duplicates in the library, isostructural entries that fit as well) are listed as alternatives.

Weight fractions (Hill & Howard) need each phase's cell mass and the normalisation of its reference
intensities: the shipped libraries and those built by this version (``synthxrd library build``)
store them; for a library built before, ``--structures`` names a folder or tar archive with the
library entries' CIFs (``<id>.cif``) they are computed from; without either the phases' intensity
shares are given instead. See :mod:`synthxrd.mixture`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthxrd.cli.options import LIBRARY_HELP
from synthxrd.errors import ConfigError
from synthxrd.simulate.common import DEFAULT_WAVELENGTH

__all__ = ["HELP", "add_arguments", "run", "format_mixture", "phases_option"]

HELP = "identify every phase of a pattern (mixtures): refined cells and weight fractions"


def phases_option(value: str) -> str | int:
    """``--phases``: ``auto`` or a number of phases 1-10."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of phases 1-10, got {value!r}") from None
    if not 1 <= n <= 10:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of phases 1-10, got {value!r}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="measured pattern file")
    parser.add_argument("--phases", type=phases_option, default="auto", metavar="auto|N",
                        help="'auto' (default: add phases while the fit improves significantly) or exactly N")
    parser.add_argument("--max-phases", type=int, default=3, metavar="N", help="at most N phases with auto (default 3)")
    parser.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
    parser.add_argument("--structures", metavar="CIFS",
                        help="folder or tar archive of the library entries' CIFs (<id>.cif): weight fractions")
    parser.add_argument("--wavelength", metavar="LAMBDA",
                        help="Å or a line name; CuKa (K-alpha average) adds K-alpha2 (default: the file's, else CuKa1)")
    parser.add_argument("--elements", metavar="LIST", help="only structures containing all these elements ('Ti,O')")
    parser.add_argument("--only-elements", action="store_true", help="only structures made of --elements alone")
    parser.add_argument("--plot", metavar="PNG", help="write observed/calculated/difference with each phase's "
                                                      "contribution and tick marks here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from synthxrd.cli.options import element_options, wavelength_option
    from synthxrd.files import atomic_write, check_outputs
    from synthxrd.io import read_pattern
    from synthxrd.match import ReferenceLibrary
    from synthxrd.mixture import identify_phases, library_mass_factors

    element_options(args.elements, args.only_elements)
    if not 1 <= args.max_phases <= 10:
        raise ConfigError(f"--max-phases: expected 1-10, got {args.max_phases}")
    if args.structures and not Path(args.structures).exists():
        raise ConfigError(f"--structures: {args.structures} does not exist")
    if args.plot:
        check_outputs([Path(args.plot)], inputs=[args.pattern], overwrite=args.overwrite)
    wavelength = args.wavelength
    if wavelength is not None:
        try:
            float(wavelength)
            wavelength = wavelength_option(wavelength)
        except ValueError:
            pass
    tt, y, meta = read_pattern(args.pattern)
    if wavelength is None:
        wavelength = meta.get("wavelength") or DEFAULT_WAVELENGTH
    library = ReferenceLibrary.load(args.library)
    cache: dict[str, float | None] = {}

    def factor(key: str):
        if args.structures is None:
            return None
        if key not in cache:
            cache[key] = library_mass_factors(library, [key], args.structures).get(key)
        return cache[key]

    mix = identify_phases(np.asarray(tt, float), np.asarray(y, float), library, wavelength=wavelength,
                          phases=args.phases, max_phases=args.max_phases, elements=args.elements,
                          only_elements=args.only_elements, mass_factors=factor)
    if args.plot:
        from synthxrd.plot import plot_mixture

        by_id = {p.id: p for p in mix.phases}
        labels = []
        for rp in mix.refinement.phases:
            p = by_id.get(rp.name)
            share = "" if p is None else (f" {100 * p.weight_fraction:.1f} wt%" if p.weight_fraction is not None
                                          else f" {100 * p.intensity_share:.1f} % of intensity")
            labels.append(f"{rp.name} {rp.formula} (SG {rp.spacegroup}){share}")
        atomic_write(Path(args.plot), lambda tmp: plot_mixture(tmp, mix.refinement, labels=labels,
                                                               title=Path(args.pattern).name))
    if args.json:
        print(json.dumps({"command": "mixture", "pattern": args.pattern, **mix.to_dict()}, indent=1, default=float))
        return 0
    print(args.pattern)
    print("\n".join(format_mixture(mix)))
    if args.plot:
        print(f"plot in {args.plot}")
    return 0


def format_mixture(mix) -> list[str]:
    """Text lines of a :class:`synthxrd.mixture.Mixture`: the joint fit, each phase with its amount,
    refined cell and look-alikes."""
    lines = [f"{len(mix.phases)} phase(s), joint Rwp {100 * mix.rwp:.2f} % (background alone "
             f"{100 * mix.rwp_background:.2f} %); unexplained intensity {100 * mix.unexplained:.1f} %"]
    width = max([12] + [len(p.formula) for p in mix.phases])  # long formulas keep the columns aligned
    for p in mix.phases:
        amount = (f"{100 * p.weight_fraction:5.1f}({100 * (p.weight_fraction_esd or 0):.1f}) wt%"
                  if p.weight_fraction is not None else f"{100 * p.intensity_share:5.1f} % of intensity")
        cell = "" if p.cell is None else "  a b c " + " ".join(f"{v:.4f}" for v in p.cell[:3]) + \
            "  al be ga " + " ".join(f"{v:.2f}" for v in p.cell[3:])
        lines.append(f"  {p.id:<16} {p.formula:<{width}} SG {p.spacegroup:<4} {amount}{cell}")
        if p.alternatives:
            more = f" (+{len(p.alternatives) - 5} more)" if len(p.alternatives) > 5 else ""
            lines.append(f"    alternatives: {', '.join(p.alternatives[:5])}{more}")
    if mix.phases and mix.phases[0].weight_fraction is None:
        lines.append("  (no weight fractions: the library stores no mass factors; give --structures with its "
                     "entries' CIFs (synthxrd mixture) or rebuild it with `synthxrd library build`)")
    return lines

