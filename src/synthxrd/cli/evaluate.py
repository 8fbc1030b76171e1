"""Evaluate the predictor on labelled patterns: network alone, search-match alone and fused, next to
the frequency-prior baseline.

Input (one of):
  --manifest CSV [--variant V]   measured pattern files listed in a CSV with columns pattern_path
                                 (relative to the CSV's folder), spacegroup and optionally wavelength_A,
                                 sample_id, variant (the layout of experimental/manifest.csv)
  --validation-dir DIR --set S   a cached validation set (synthxrd validation build): match, all, ...
  --dataset FILE.h5              any synthxrd dataset file with patterns and space-group labels
  --patterns FILE.npz            labelled patterns on one 2theta axis: two_theta (M,), patterns (N, M),
                                 spacegroup (N,) (the layout of experimental/rruff_dev), at --wavelength
                                 (default Cu K-alpha1)

By default the predictor fuses the network with search-match against the library shipped with
synthxrd, and the report scores the fused answer ("fused"), the network alone ("network") and the
search alone ("search") side by side. --no-library evaluates the network alone; --library FILE uses
another library; --hold-out-test leaves the test part of the split (--split, default the shipped one)
out of the library, so that validation sets of unseen prototypes stay unseen.

Metrics, on all patterns and on those whose true group is one of the model's classes ("known"):
top-1 and top-5 space group, crystal system (largest summed probability), extinction group (largest
summed probability over groups with the same systematic absences) and the expected calibration error
of the top-1 confidence (15 bins). The baseline always predicts the prior of the training statistics
over the model's classes. Patterns of other groups are counted separately.

--out DIR receives evaluation.json (metrics, baseline, per-space-group report, confusion matrices,
reliability bins, per-pattern top-5, failures), confusion_crystal_system.png, confusion_spacegroups.png
and reliability.png; existing files are not replaced without --overwrite (checked before any work).

A pattern file that cannot be read is reported in one line on stderr and left out of the metrics.
Exit status: 0 done, 1 some pattern file failed, 2 bad options, model or existing outputs.

Examples:
  synthxrd evaluate --patterns ../shared/data/experimental/rruff_dev/rruff_dev300.npz --out eval/rruff
  synthxrd evaluate --validation-dir validation --set match --hold-out-test --out eval/match
  synthxrd evaluate --model runs/park --manifest data/experimental/manifest.csv --variant raw --out eval/raw
  synthxrd evaluate --model runs/park/best.pt --validation-dir cache/validation --set match --out eval/match
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from synthxrd.cli import options
from synthxrd.cli.options import LIBRARY_HELP, wavelength_option
from synthxrd.errors import ConfigError

__all__ = ["HELP", "add_arguments", "run", "format_table"]

HELP = "evaluate a trained network on labelled patterns (accuracies, prior baseline, confusion, calibration)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, metavar="PATH",
                        help="checkpoint file or training run folder (default: the model shipped with synthxrd)")
    parser.add_argument("--manifest", metavar="CSV", help="manifest of measured pattern files with space groups")
    parser.add_argument("--variant", help="only manifest rows of this variant (e.g. raw)")
    parser.add_argument("--wavelength", metavar="LAMBDA",
                        help="wavelength for manifest rows without wavelength_A whose file states none")
    parser.add_argument("--validation-dir", metavar="DIR", help="cached validation sets (synthxrd validation build)")
    parser.add_argument("--set", dest="set_name", metavar="NAME", help="validation set name (match, all, ...)")
    parser.add_argument("--dataset", metavar="FILE", help="synthxrd dataset file (.h5) with patterns and labels")
    parser.add_argument("--patterns", metavar="FILE", help="labelled patterns (.npz: two_theta, patterns, spacegroup)")
    parser.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
    parser.add_argument("--no-library", action="store_true", help="the network alone, no search-match")
    options.add_fusion_arguments(parser)
    parser.add_argument("--hold-out-test", action="store_true",
                        help="leave the structures of the split's test part out of the library")
    parser.add_argument("--split", metavar="FILE", help="with --hold-out-test: split CSV (default: the shipped split)")
    parser.add_argument("--max-patterns", type=int, default=0, metavar="N",
                        help="validation set / dataset: evaluate a fixed random subsample of N patterns (default all)")
    parser.add_argument("--seed", type=options.seed, default=0, help="seed of the subsample (default 0)")
    parser.add_argument("--statistics", metavar="PATH",
                        help="statistics of the baseline prior (default: those the model was trained with)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _fmt(value) -> str:
    return "   -  " if value is None else f"{value:6.3f}"


def format_table(summary: dict) -> str:
    """The compact metrics table, on all patterns and on the known classes: the model (the fused answer
    where a library was used, then the network and the search alone) and the prior baseline. "ECE if
    calibrated" is the mean ECE perfectly calibrated probabilities with the same confidences would show
    on as many patterns (:func:`synthxrd.evaluate.calibrated_ece`)."""
    rows = [("top-1 space group", "top1"), ("top-5 space group", "top5"), ("crystal system", "crystal_system"),
            ("extinction group", "extinction_group"), ("ECE (15 bins)", "ece"), ("ECE if calibrated", "ece_floor"),
            ("mean p(true group)", "mean_p_true")]
    a, k = summary["all"], summary["known"]
    fused = "network" in a
    columns = [("model", "fused" if fused else "model")] + (
        [("network", "network"), ("search", "search")] if fused else []) + [("baseline", "prior")]
    width = 8 * len(columns)
    all_label = f"all (n={a['model']['n']})"
    known_label = f"known classes (n={k['model']['n']})"
    head = "".join(f"{name:>8s}" for _, name in columns)
    lines = [f"{'':20s}{all_label:^{width}s}    {known_label:^{width}s}", f"{'metric':20s}{head}    {head}"]

    def cell(m: dict, key: str) -> str:
        value = m.get(key)
        return _fmt(value["mean"] if isinstance(value, dict) else value)

    for label, key in rows:
        cells = "".join(f"  {cell(a[c], key)}" for c, _ in columns)
        known_cells = "".join(f"  {cell(k[c], key)}" for c, _ in columns)
        lines.append(f"{label:20s}{cells}    {known_cells}")
    return "\n".join(lines)


def format_coverage(rows: list[dict]) -> str:
    """Accuracy against coverage (abstention below each confidence threshold)."""
    lines = ["top probability >=   coverage    top-1    top-5"]
    for r in rows:
        lines.append(f"{r['threshold']:>19.2f}   {_fmt(r['coverage'])}   {_fmt(r['top1'])}   {_fmt(r['top5'])}")
    return "\n".join(lines)


def format_match_reliability(r: dict | None) -> str:
    """The reliability of the fusion's "p that the best match is right" (c), per bin of c."""
    if r is None:
        return ""
    floor = r.get("ece_floor")
    lines = [f"p that the best match is right (fusion c): mean {_fmt(r['mean_confidence'])}, it is right "
             f"{_fmt(r['accuracy'])}; ECE {_fmt(r['ece'])}"
             + (f" (if calibrated: {floor['mean']:.3f}, 95 % of draws <= {floor['q95']:.3f})" if floor else ""),
             "         c in   patterns   mean c   right"]
    for b in r["bins"]:
        lines.append(f"  {'[' if b['lower'] == 0 else '('}{b['lower']:.1f}, {b['upper']:.1f}]   {b['count']:>8d}   "
                     f"{_fmt(b['confidence'])}   {_fmt(b['accuracy'])}")
    return "\n".join(lines)


def format_unknown(r: dict | None) -> str:
    """How the patterns flagged "no known phase" fare against the others."""
    if r is None:
        return ""
    return (f"no known phase (fusion): {r['n']} patterns ({_fmt(r['share'])}); best match right in "
            f"{_fmt(r['best_right_said'])} of them, {_fmt(r['best_right_other'])} of the others; fused top-1 "
            f"{_fmt(r['fused_right_said'])} and {_fmt(r['fused_right_other'])}")


def _library(args: argparse.Namespace):
    """The reference library of the run: shipped or --library, without the split's test part if asked."""
    from synthxrd.match import ReferenceLibrary

    library = ReferenceLibrary.load(args.library)
    if not args.hold_out_test:
        return library
    from synthxrd.split import load_split

    return library.without_part(load_split(args.split), "test")


def run(args: argparse.Namespace) -> int:
    sources = [name for name, given in (("--manifest", args.manifest), ("--validation-dir", args.validation_dir),
                                         ("--dataset", args.dataset), ("--patterns", args.patterns)) if given]
    if len(sources) != 1:
        raise ConfigError("give exactly one input: --manifest CSV, --validation-dir DIR --set NAME, --dataset FILE "
                          "or --patterns FILE" + (f" (got {' and '.join(sources)})" if sources else ""))
    if args.no_library and (args.library or args.hold_out_test):
        raise ConfigError("--no-library excludes --library and --hold-out-test")
    if args.split and not args.hold_out_test:
        raise ConfigError("--split only applies to --hold-out-test")
    if args.validation_dir and not args.set_name:
        raise ConfigError("--validation-dir needs --set NAME (e.g. match)")
    if args.set_name and not args.validation_dir:
        raise ConfigError("--set needs --validation-dir DIR")
    if args.variant and not args.manifest:
        raise ConfigError("--variant only applies to --manifest")
    if args.max_patterns < 0:
        raise ConfigError(f"--max-patterns: expected an integer >= 0, got {args.max_patterns}")
    wavelength = wavelength_option(args.wavelength)
    from synthxrd.evaluate import OUTPUT_FILES
    from synthxrd.files import check_outputs

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    check_outputs([out / name for name in OUTPUT_FILES], overwrite=args.overwrite,
                  inputs=[args.model, args.manifest, args.dataset, args.patterns])

    from tqdm import tqdm

    from synthxrd.evaluate import (
        evaluate_dataset,
        evaluate_manifest,
        evaluate_patterns,
        evaluate_validation_set,
        write_report,
    )
    from synthxrd.predict import Predictor

    library = None if args.no_library else _library(args)
    predictor = Predictor.load(args.model, device=args.device, library=library, **options.fusion_options(args))
    if args.manifest:
        ev = evaluate_manifest(predictor, args.manifest, variant=args.variant, wavelength=wavelength,
                               statistics=args.statistics, progress=True,
                               on_failure=lambda message: tqdm.write(message, file=sys.stderr))
    elif args.patterns:
        ev = evaluate_patterns(predictor, args.patterns, wavelength=wavelength, statistics=args.statistics)
    elif args.validation_dir:
        ev = evaluate_validation_set(predictor, args.validation_dir, args.set_name, max_patterns=args.max_patterns,
                                     seed=args.seed, statistics=args.statistics)
    else:
        ev = evaluate_dataset(predictor, args.dataset, max_patterns=args.max_patterns, seed=args.seed,
                              statistics=args.statistics)
    write_report(ev, out, overwrite=args.overwrite)
    s = ev.summary()
    meta = predictor.metadata
    name = (meta.get("model_config") or {}).get("name", "model")
    print(f"{ev.description}: {s['n_patterns']} patterns, {s['n_known']} of the model's classes, "
          f"{s['n_unknown']} of other groups" + (f" {s['unknown_spacegroups']}" if s["n_unknown"] else "")
          + f", {s['n_failed']} failed")
    print(f"model: {meta.get('checkpoint', predictor.source)} ({name}, step {meta.get('step')}, "
          f"{len(predictor.classes)} classes); prior: space-group frequencies of the statistics "
          f"({ev.config['statistics']})")
    if library is not None:
        held = library.metadata.get("held_out")
        print(f"library: {library.label}, {len(library)} structures"
              + (f" ({held['n_removed']} of the split's test part held out)" if held else ""))
    print(format_table(s))
    print(format_coverage(ev.coverage()))
    kept = ev.coverage([predictor.threshold])[0]
    print(f"predict's UNCERTAIN threshold {predictor.threshold:.2f}"
          f"{' (the fusion rule, chosen on its calibration patterns)' if ev.evidence else ''}: "
          f"answers {_fmt(kept['coverage'])} of the patterns, top-1 {_fmt(kept['top1'])} of them")
    if ev.evidence:
        print(format_match_reliability(ev.match_reliability()))
        print(format_unknown(ev.unknown_report()))
    print(f"outputs in {out}: {', '.join(OUTPUT_FILES)}")
    return 1 if ev.failures else 0
