"""Option parsing shared by several subcommands."""

from __future__ import annotations

import argparse

from synthxrd.errors import ConfigError

__all__ = ["LIBRARY_HELP", "wavelength_option", "seed", "element_options", "print_failures", "match_columns"]


#: Help of every ``--library`` option (:meth:`synthxrd.match.ReferenceLibrary.load` reads all of these).
LIBRARY_HELP = ("reference library: a file, a shipped one (mp, amcsd, default = mp+amcsd) or several joined "
                "by + (default: default)")


def add_fusion_arguments(parser) -> None:
    """``--fusion FILE`` and ``--force-fusion``: another fusion rule than the model's own."""
    parser.add_argument("--fusion", metavar="FILE",
                        help="fusion rule JSON to use instead of the one stored in the model (synthxrd export "
                             "--library fits it); refused unless it was fitted with this network and library")
    parser.add_argument("--force-fusion", action="store_true",
                        help="use the fusion rule even if it was fitted with another network or library")


def fusion_options(args) -> dict:
    """Predictor.load keywords of :func:`add_fusion_arguments`; ConfigError with --no-library."""
    from synthxrd.errors import ConfigError

    if getattr(args, "no_library", False) and (args.fusion or args.force_fusion):
        raise ConfigError("--no-library excludes --fusion and --force-fusion (no search, nothing to fuse)")
    return {"fusion": args.fusion, "allow_foreign_fusion": args.force_fusion}


def wavelength_option(value: str | None) -> float | None:
    """``--wavelength`` (a line name such as CuKa1, or Angstrom) in Angstrom; None when not given."""
    if value is None:
        return None
    from synthxrd.simulate.common import resolve_wavelength

    try:
        return resolve_wavelength(value)
    except ConfigError as exc:
        raise ConfigError(f"--wavelength: {exc}") from None


def seed(value: str) -> int:
    """argparse type of every ``--seed``: an integer >= 0 (what ``numpy.random.default_rng`` takes)."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value!r}")
    return number


def json_object(value: str) -> dict:
    """A JSON object given on the command line (``--ray-resources '{"data_node": 1}'``)."""
    import json

    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {value!r} ({exc})") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {value!r} (e.g. '{{\"data_node\": 1}}')")
    return parsed


def element_options(elements: str | None, only_elements: bool) -> None:
    """Check ``--elements`` (every symbol known, at least one) and ``--only-elements`` (needs ``--elements``)
    before any file is read, so that a bad option is a usage error, not a failure of each pattern file."""
    if only_elements and elements is None:
        raise ConfigError("--only-elements needs --elements")
    if elements is not None:
        from synthxrd.match.search import parse_elements

        try:
            parse_elements(elements)
        except ConfigError as exc:
            raise ConfigError(f"--{exc}") from None


def print_failures(failures, show: int, where: str) -> None:
    """The first ``show`` failures (``(id, reason)`` pairs or ``{"id", "reason"}`` dicts), then how many
    more there are and ``where`` they are kept."""
    for f in failures[: max(0, show)]:
        ident, reason = (f["id"], f["reason"]) if isinstance(f, dict) else f
        print(f"  failed: {ident}: {reason}")
    if len(failures) > show > 0:
        print(f"  ... {len(failures) - show} more in {where}")


def match_columns(matches, formula_width: int = 18) -> tuple[int, list[str]]:
    """Width of the formula column of a table of matches (at least ``formula_width``, two spaces more
    than the longest formula, so that a long formula such as a mixed-site mineral's keeps the columns
    aligned) and each match's score as printed: seven characters, a dash for a match the search did
    not score (an isotype the refinement added, :func:`synthxrd.match.rerank.refine_candidates`)."""
    width = max([formula_width] + [len(m.formula) + 2 for m in matches])
    return width, [f"{m.score:>7.3f}" if m.score > 0 else f"{'-':>7}" for m in matches]
