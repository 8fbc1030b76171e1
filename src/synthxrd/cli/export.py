"""Write the inference part of a training run (weights + classes + config, no optimizer state) to one file.

The result is what `synthxrd predict --model FILE` and `Predictor.load(FILE)` read; with --dtype
float16 (default) it is half the size of the float32 weights. The shipped model
(synthxrd/resources/models/default.pt) was made this way.

Examples:
  synthxrd export runs/park/best.pt park.pt
  synthxrd export runs/park park.pt --dtype float32     # a run folder: its best.pt, else checkpoint.pt
  synthxrd export runs/park/snapshots/step_00020000.pt avg.pt \
      --average runs/park/snapshots/step_00021000.pt runs/park/snapshots/step_00022000.pt
                                                        # mean weights of three snapshots (uncalibrated)
  synthxrd export runs/park/checkpoint.pt park.pt --calibrate validation
                                                        # fit the softmax temperature of the exported weights
                                                        # on 2,000 patterns of validation/calibration.h5

  synthxrd export runs/park park.pt --library default \
      --source ../shared/data/mp_experimental/structures.tar.xz amcsd_cif1.db
                                                        # and fit its fusion rule with the default library
                                                        # (1,200 simulated patterns, a few minutes on 2 cores)

A checkpoint calibrated by the trainer (best.pt) keeps its temperature; an average or the last
checkpoint has none until --calibrate fits one (temperature scaling, as the trainer does at the end),
on the calibration set by default (the split's calibration part; `match` is the test part, reported only).

With --library the exported model also holds its fusion rule with that library (synthxrd.match.fusion):
fitted on simulated patterns of the library's structures (--source: their CIFs) and of the split's
calibration part held out of the library (synthxrd.match.fusion_fit), after --calibrate, and bound to
the exported weights and the library. `Predictor.load` and `synthxrd predict` use it and refuse a
library it was not fitted against. --fusion FILE stores a rule fitted elsewhere instead (bound to
this network and library as it is: say so in the rule's metadata). Without --library the model has
no rule and predicts with a library only given one (--fusion FILE --force-fusion).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

HELP = "export a trained model for prediction (weights and metadata, float16 by default)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="checkpoint file or run folder of synthxrd train")
    parser.add_argument("out", type=Path, help="output file (.pt)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="weight precision")
    parser.add_argument("--average", nargs="+", type=Path, default=[], metavar="CHECKPOINT",
                        help="average the weights of these checkpoints (same network) with CHECKPOINT's")
    parser.add_argument("--calibrate", metavar="DIR",
                        help="fit the softmax temperature of the exported weights on a validation cache "
                             "(synthxrd validation build)")
    parser.add_argument("--calibrate-set", default="calibration", metavar="NAME",
                        help="validation set (default calibration: the split's calibration part)")
    parser.add_argument("--calibrate-max", type=int, default=2000, metavar="N",
                        help="a fixed subsample of N patterns of the set (0: all; default 2000)")
    fusion = parser.add_argument_group("fusion with a reference library")
    fusion.add_argument("--library", metavar="LIBRARY",
                        help="fit the model's fusion rule with this library (default = mp+amcsd, a file, ...)")
    fusion.add_argument("--fit-fusion", action=argparse.BooleanOptionalAction, default=None,
                        help="fit the fusion rule (default: on when --library is given, unless --fusion FILE)")
    fusion.add_argument("--source", nargs="+", type=Path, default=[], metavar="CIFS",
                        help="the library's structures for the fit (CIF folders, tar archives, AMCSD databases)")
    fusion.add_argument("--fusion", type=Path, metavar="FILE",
                        help="store this fusion rule JSON (scripts/fit_fusion.py) instead of fitting one")
    fusion.add_argument("--fusion-split", metavar="CSV", help="prototype split of the fit (default: the shipped one)")
    fusion.add_argument("--fusion-patterns", type=int, default=1000, metavar="N",
                        help="simulated patterns of known and of held-out structures each (default 1000)")
    fusion.add_argument("--fusion-isotypes", type=int, default=300, metavar="N",
                        help="simulated patterns of structures whose own phase is left out of the library while "
                             "isotypes stay (default 300; fewer where the library has fewer)")
    fusion.add_argument("--fusion-thin-films", type=int, default=300, metavar="N",
                        help="simulated thin-film-like patterns (strong texture, a short scan), half of library "
                             "structures and half held out (default 300)")
    fusion.add_argument("--fusion-cropped", type=int, default=0, metavar="N",
                        help="simulated patterns with the full default augmentation (cropped scans, each searched "
                             "on its window), half of library structures and half held out (default 0: measured, "
                             "no gain; docs/search_match.md)")
    fusion.add_argument("--fusion-augment", default="calibration", metavar="PRESET",
                        help="augmentation preset (or TOML) of the fit patterns (default: calibration, "
                             "i.e. without cropping)")
    fusion.add_argument("--fusion-form", choices=("mixture", "stacking"), default="mixture",
                        help="form of the rule (synthxrd.match.fusion; default: mixture)")
    fusion.add_argument("--fusion-refine", action=argparse.BooleanOptionalAction, default=True,
                        help="fit on the search's best candidates refined and re-ranked, as the predictor then "
                             "does (default: on; --no-fusion-refine fits the search's scores alone, faster)")
    fusion.add_argument("--fusion-seed", type=int, default=None, metavar="SEED",
                        help="seed of the fit (default: synthxrd.match.fusion_fit.DEFAULT_SEED)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _fusion_plan(args: argparse.Namespace) -> str | None:
    """"fit", "file" or None; ConfigError for inconsistent fusion options."""
    from synthxrd.errors import ConfigError

    if args.library is None:
        if args.fit_fusion or args.fusion or args.source:
            raise ConfigError("--fit-fusion, --fusion and --source need --library (the library the rule is for)")
        return None
    if args.fusion is not None:
        if args.fit_fusion:
            raise ConfigError("--fusion FILE stores a rule; it excludes --fit-fusion")
        return "file"
    if args.fit_fusion is False:
        return None
    if not args.source:
        raise ConfigError("fitting the fusion rule (--library) needs the library's structures: --source CIFS... "
                          "(or --no-fit-fusion, or --fusion FILE)")
    if args.fusion_patterns < 1:
        raise ConfigError(f"--fusion-patterns: expected an integer >= 1, got {args.fusion_patterns}")
    return "fit"


def run(args: argparse.Namespace) -> int:
    from synthxrd.files import check_outputs
    from synthxrd.predict import resolve_checkpoint, run_folder
    from synthxrd.models.checkpoint import export_model

    given = [args.checkpoint, *args.average]  # and the runs they come from: their checkpoints are kept
    plan = _fusion_plan(args)
    if args.calibrate:  # before anything is written
        check_calibration_set(args.calibrate, args.calibrate_set)
    check_outputs([args.out], inputs=[*given, *(run_folder(p) for p in given)], overwrite=args.overwrite)
    source = resolve_checkpoint(args.checkpoint)
    sources = [source, *(resolve_checkpoint(p) for p in args.average)]
    meta = export_model(sources if args.average else source, args.out, dtype=args.dtype)
    try:  # a model that misses what was asked for (temperature, fusion rule) is not left behind
        if args.calibrate:
            meta["calibration"] = calibrate(args.out, args.calibrate, args.calibrate_set, args.calibrate_max)
        if plan is not None:
            meta["fusion"] = add_fusion(args.out, args, plan)
    except BaseException:
        args.out.unlink(missing_ok=True)
        raise
    size = args.out.stat().st_size / 1e6
    origin = f"the mean of {len(sources)} checkpoints" if args.average else str(source)
    print(f"exported {meta['model_config'].get('name', 'model')} (step {meta.get('step', '?')}, "
          f"{len(meta['classes'])} classes, {args.dtype}) from {origin} to {args.out} ({size:.1f} MB)")
    if args.calibrate:
        c = meta["calibration"]
        print(f"calibrated on {c['n']} patterns of {c['fitted_on']}: temperature {c['temperature']:.3f}, "
              f"ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f}")
    if plan is not None:
        f = meta["fusion"]
        how = (f"fitted on {f['metadata'].get('n_patterns')} simulated patterns "
               f"({f['metadata'].get('wall_time_s')} s)" if plan == "fit" else f"from {args.fusion}")
        print(f"fusion rule with library {f['metadata']['library_label']} {how}: T {f['temperature']:.4g}, "
              f"bias {f['bias']:.3f}, w_score {f['w_score']:.3f}, w_margin {f['w_margin']:.3f}, "
              f"w_fit {f.get('w_fit', 0.0):.3f}, w_sym {f.get('w_sym', 0.0):.4f}")
    return 0


def add_fusion(path: Path, args: argparse.Namespace, plan: str) -> dict:
    """Fit (or read) the fusion rule of the exported model at ``path`` with ``args.library``, bind it
    to the model's weights and the library, and store it in the file (atomically)."""
    from synthxrd.match import ReferenceLibrary
    from synthxrd.match.fusion import FusionRule
    from synthxrd.predict import Predictor

    library = ReferenceLibrary.load(args.library)
    predictor = Predictor.load(path, library=None, device="cpu")
    if plan == "file":
        rule = FusionRule.load(args.fusion)
        if rule.network is not None:  # a bound rule must be this network's and library's
            rule.check(predictor.metadata["weights_sha256"], library, network_temperature=predictor.temperature,
                       rule_label=f"fusion rule {args.fusion}", model_label=str(path))
        rule = replace(rule, metadata=dict(rule.metadata, bound_by=f"synthxrd export --fusion {args.fusion.name}"))
        rule = rule.bind(predictor.metadata["weights_sha256"], library.fingerprint, library.label,
                         network_temperature=predictor.temperature)
    else:
        from synthxrd.match.fusion_fit import DEFAULT_SEED, fit_fusion

        rule = fit_fusion(predictor, library, args.source, split=args.fusion_split, n_library=args.fusion_patterns,
                          n_held_out=args.fusion_patterns, n_isotype=args.fusion_isotypes,
                          n_thin_film=args.fusion_thin_films, n_cropped=args.fusion_cropped,
                          augment=args.fusion_augment, form=args.fusion_form, refine=args.fusion_refine,
                          seed=DEFAULT_SEED if args.fusion_seed is None else args.fusion_seed)
    return store_fusion(path, rule)


def store_fusion(path: Path, rule) -> dict:
    """Write ``rule`` into the checkpoint at ``path`` as its ``fusion`` entry (atomically); returns the entry."""
    from synthxrd.models.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(path)
    payload["fusion"] = rule.to_dict()
    save_checkpoint(path, payload)
    return payload["fusion"]


def check_calibration_set(validation_dir: str, set_name: str) -> None:
    """Raise a one-line :class:`ConfigError` if the cache in ``validation_dir`` has no set ``set_name``."""
    from synthxrd.dataset import Manifest, rebuild_hint
    from synthxrd.errors import ConfigError

    manifest = Manifest.load(validation_dir)
    if set_name not in manifest.sets:
        raise ConfigError(f"--calibrate {validation_dir}: no validation set {set_name!r} (built: "
                          f"{', '.join(manifest.sets) or 'none'}); build it with "
                          f"{rebuild_hint(validation_dir, set_name)}")


def calibrate(path: Path, validation_dir: str, set_name: str, max_patterns: int) -> dict:
    """Fit the temperature of the exported model at ``path`` and store it in the file (atomically)."""
    from synthxrd.evaluate import calibrate_on_validation_set
    from synthxrd.models.checkpoint import load_checkpoint, save_checkpoint
    from synthxrd.predict import Predictor

    predictor = Predictor.load(path, library=None, device="cpu")
    info = calibrate_on_validation_set(predictor, validation_dir, set_name, max_patterns=max_patterns)
    payload = load_checkpoint(path)
    payload["calibration"] = {**info, "file": path.name}
    save_checkpoint(path, payload)
    return payload["calibration"]
