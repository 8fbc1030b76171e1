"""Do augmented synthetic patterns look measured? Noise, background, peak widths, peak counts and
2theta range of measured patterns next to those of synthetic ones.

  synthxrd realism [--rruff NPZ] [--xred-manifest CSV] [--augment default|none|FILE]
                   [--n-synthetic 300] [--seed 0] [--plot out.png] [--json out.json] [--overwrite]

Measured sources (read only; never training data):
  --rruff          an NPZ of two_theta (n,) and patterns (N, n), by default
                   ../shared/data/experimental/rruff_dev/rruff_dev300.npz
  --xred-manifest  a manifest CSV (pattern_path relative to it, optional variant and wavelength_A),
                   by default ../shared/data/experimental/manifest.csv, rows of --variants
                   (raw and background_removed)
  ("../shared/data" is $SYNTHXRD_SHARED_DATA when set.) A default that does not exist is an error
  naming the option to give; "none" leaves a source out (one measured source is needed).

Synthetic source: --n-synthetic crystals of the generator (shipped statistics, or --statistics),
rendered with the augmentation --augment (as `synthxrd train` does with the same config), seed --seed.

For every statistic the table gives, per source, the median and the 5-95 % range, the synthetic
1-99 % range, and whether each measured 5-95 % range lies inside it (the formulas, and how each
source is put on the same footing, are in the docstring of synthxrd.realism). --plot writes one
panel per statistic (box plots per source; FWHM against 2theta as a scatter), --json every number
and every pattern's statistics. Existing outputs are replaced only with --overwrite. Exit status
0 (also when some range is outside; read the table), 2 on a usage or data error.

Example:
  synthxrd realism --plot realism.png --json realism.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

HELP = "measured vs augmented synthetic patterns: noise, background, peak widths, peak count, 2theta range"

#: Paths of the default measured sources below the shared data folder.
RRUFF_DEFAULT = Path("experimental/rruff_dev/rruff_dev300.npz")
MANIFEST_DEFAULT = Path("experimental/manifest.csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.realism import XRED_VARIANTS

    src = parser.add_argument_group("measured patterns")
    src.add_argument("--rruff", metavar="NPZ", default=None,
                     help=f"NPZ of two_theta and patterns (default: <shared data>/{RRUFF_DEFAULT}; 'none': leave out)")
    src.add_argument("--xred-manifest", metavar="CSV", default=None,
                     help=f"manifest CSV of pattern files (default: <shared data>/{MANIFEST_DEFAULT}; "
                          "'none': leave out)")
    src.add_argument("--variants", nargs="+", default=list(XRED_VARIANTS), metavar="VARIANT",
                     help=f"manifest rows of these variants (default: {' '.join(XRED_VARIANTS)})")
    syn = parser.add_argument_group("synthetic patterns")
    syn.add_argument("--augment", default="default", metavar="SPEC",
                     help="augmentation: 'default', 'none' (ideal Gaussian-Scherrer patterns) or a TOML file "
                          "(default: default)")
    syn.add_argument("--n-synthetic", type=int, default=300, metavar="N", help="synthetic patterns (default 300)")
    syn.add_argument("--seed", type=options.seed, default=0, help="seed of the synthetic crystals and patterns (default 0)")
    syn.add_argument("--statistics", metavar="FILE", default=None,
                     help="statistics .npz of the generator (default: the shipped statistics)")
    out = parser.add_argument_group("output")
    out.add_argument("--plot", metavar="PNG", default=None, help="write the side-by-side figure (PNG)")
    out.add_argument("--json", metavar="FILE", default=None, help="write every number as JSON")
    out.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _source(value: str | None, default: Path, option: str, what: str) -> Path | None:
    """The path of a measured source: given, 'none' (None), or the shared default if it exists."""
    from synthxrd.errors import ConfigError
    from synthxrd.files import shared_data_dir

    if value is not None:
        return None if value.strip().lower() == "none" else Path(value)
    path = shared_data_dir() / default
    if not path.is_file():
        raise ConfigError(f"no {what} at the default {path}; give {option} PATH (or {option} none to leave "
                          "it out; SYNTHXRD_SHARED_DATA sets the shared data folder)")
    return path


def run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from synthxrd import __version__, realism
    from synthxrd.augment import augment_config
    from synthxrd.config import to_dict
    from synthxrd.errors import ConfigError
    from synthxrd.files import check_outputs, write_json

    if args.n_synthetic < 1:
        raise ConfigError(f"--n-synthetic must be >= 1, got {args.n_synthetic}")
    rruff = _source(args.rruff, RRUFF_DEFAULT, "--rruff", "RRUFF patterns")
    manifest = _source(args.xred_manifest, MANIFEST_DEFAULT, "--xred-manifest", "pattern manifest")
    if rruff is None and manifest is None:
        raise ConfigError("--rruff none and --xred-manifest none leave no measured patterns to compare with")
    augment_file = None if args.augment.strip().lower() in ("default", "none", "off", "false") else args.augment
    outputs = [p for p in (args.plot, args.json) if p is not None]
    if args.plot is not None and args.json is not None and Path(args.plot).resolve() == Path(args.json).resolve():
        raise ConfigError(f"--plot and --json are the same file {args.plot}")
    check_outputs(outputs, inputs=[rruff, manifest, augment_file, args.statistics], overwrite=args.overwrite)
    config = augment_config(args.augment)

    start = time.perf_counter()
    scans: dict[str, list] = {}
    if rruff is not None:
        scans["rruff"] = realism.load_npz_patterns(rruff)
    if manifest is not None:
        for variant, rows in realism.load_manifest_patterns(manifest, variants=args.variants).items():
            scans[f"xred {variant}"] = rows
    stats = {name: realism.measure_scans(rows) for name, rows in scans.items()}
    names = {name: [s.name for s in rows] for name, rows in scans.items()}
    t_measured = time.perf_counter() - start
    synthetic = realism.synthetic_patterns(args.n_synthetic, config, np.random.default_rng(args.seed),
                                           statistics=args.statistics)
    stats["synthetic"] = realism.measure_synthetic(synthetic)
    names["synthetic"] = [f"synthetic[{i}]" for i in range(len(stats["synthetic"]))]
    elapsed = time.perf_counter() - start
    report = realism.compare(stats)

    counts = ", ".join(f"{name} {len(rows)}" for name, rows in stats.items())
    print(f"patterns: {counts}; synthetic: augment {args.augment}, seed {args.seed}"
          + (f", {synthetic.replaced} crystals redrawn" if synthetic.replaced else "")
          + f"; {elapsed:.1f} s (measured sources {t_measured:.1f} s)")
    print(realism.format_report(report))
    title = f"measured vs synthetic (augment {args.augment}, {len(stats['synthetic'])} patterns, seed {args.seed})"
    if args.plot is not None:
        realism.plot_report(args.plot, report, stats, title=title)
        print(f"wrote {args.plot}")
    if args.json is not None:
        payload = {
            "synthxrd_version": __version__,
            "sources": {"rruff": None if rruff is None else str(rruff),
                        "xred_manifest": None if manifest is None else str(manifest),
                        "variants": list(args.variants)},
            "generation": {"augment": args.augment, "augment_config": None if config is None else to_dict(config),
                          "n": args.n_synthetic, "seed": args.seed, "statistics": args.statistics,
                          "replaced": synthetic.replaced},
            "seconds": round(elapsed, 2),
            **realism.report_payload(report, stats, names),
        }
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return 0
