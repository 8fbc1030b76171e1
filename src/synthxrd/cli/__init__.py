"""The ``synthxrd`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``
(the exit code). A :class:`~synthxrd.errors.SynthXRDError` escaping ``run`` is printed as one line
``synthxrd <command>: error: <message>`` with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from synthxrd import __version__
from synthxrd.errors import SynthXRDError

__all__ = ["main", "COMMANDS"]

#: (name, module) of each subcommand, in the order of ``synthxrd --help``.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("quickstart", "synthxrd.cli.quickstart"),
    ("simulate", "synthxrd.cli.simulate"),
    ("stats", "synthxrd.cli.stats"),
    ("split", "synthxrd.cli.split"),
    ("generate", "synthxrd.cli.generate"),
    ("validation", "synthxrd.cli.validation"),
    ("realism", "synthxrd.cli.realism"),
    ("real", "synthxrd.cli.real"),
    ("library", "synthxrd.cli.library"),
    ("train", "synthxrd.cli.train"),
    ("export", "synthxrd.cli.export"),
    ("predict", "synthxrd.cli.predict"),
    ("refine", "synthxrd.cli.refine"),
    ("mixture", "synthxrd.cli.mixture"),
    ("peaks", "synthxrd.cli.peaks"),
    ("evaluate", "synthxrd.cli.evaluate"),
    ("bench", "synthxrd.cli.bench"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthxrd",
        description="Space groups from powder X-ray diffraction: simulate, generate, train, predict.",
    )
    parser.add_argument("--version", action="version", version=f"synthxrd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``synthxrd`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except SynthXRDError as exc:
        print(f"synthxrd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"synthxrd {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except OSError as exc:  # a path that cannot be used (a file in the way, no permission, disk full)
        if exc.filename is None:
            raise
        print(f"synthxrd {args.command}: error: {exc.filename2 or exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
