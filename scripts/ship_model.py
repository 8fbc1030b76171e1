"""Ship a trained run as the package's pretrained model, with its model card data.

    python scripts/ship_model.py RUN_DIR --validation-dir VAL --eval-out eval/shipped \
        [--checkpoint checkpoint.pt] [--average snapshots/step_A.pt ...] [--overwrite]

1. ``synthxrd export`` of the run's checkpoint (or the mean of several, ``--average``), float16, to
   ``src/synthxrd/resources/models/default.pt``, calibrated on ``calibration`` of VAL
   (``--calibrate``; the split's calibration part, never the test part ``match``);
2. ``synthxrd evaluate`` of that file, next to the frequency prior:
   * network alone (``--no-library``) on the full ``match`` set (real crystals of unseen structure
     types), the labelled XRED patterns of the manifest and the 300 RRUFF minerals of rruff_dev;
   * fused with the shipped library on rruff_dev and XRED, and on a fixed 2,000-pattern subsample of
     ``match`` with the test part of the split held out of the library (``--hold-out-test``);
   The export fits the model's fusion rule with the default library (``--fusion-source CIFS...``:
   the library's structures; simulated patterns only) or binds a rule file to it (``--fusion FILE``),
   and stores it in the model (``synthxrd export --library default``);
3. ``src/synthxrd/resources/models/default.json``: the model card's data (run, training time and
   hardware from the TensorBoard events, the learning curve of ``RUN_DIR/curve.json`` when
   ``scripts/learning_curve.py`` made one (:func:`synthxrd.modelcard.update_curve`), every metric next to the prior, and what the curve from
   ``--project-from RUN`` on projects for the network-alone targets, in patterns seen and hours);
4. ``docs/model_card_training.png``: the training curves; ``docs/model_card_curve.png``: the learning
   curve of the campaign (patterns seen against accuracy on match, rruff_dev and XRED).

A run started from the shipped weights (``synthxrd train --init-weights .../default.pt``), or from
a checkpoint of a run that did (``--init-weights runs/run3/checkpoint.pt``, followed back run by run),
continues the shipped model's campaign: its runs, hours and learning curves are added to the card's.

rruff_dev and XRED choose and measure; they are never trained on. The logic is
:func:`synthxrd.modelcard.ship`; this script only parses the options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "src" / "synthxrd" / "resources" / "models"


def main(argv: list[str] | None = None) -> int:
    from synthxrd.errors import SynthXRDError
    from synthxrd.files import shared_data_dir
    from synthxrd.modelcard import ship

    data = shared_data_dir(ROOT) / "experimental"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--checkpoint", default="best.pt", help="file inside the run folder")
    parser.add_argument("--average", nargs="+", default=[], metavar="FILE",
                        help="files inside the run folder averaged with --checkpoint")
    parser.add_argument("--validation-dir", required=True)
    parser.add_argument("--manifest", type=Path, default=data / "manifest.csv")
    parser.add_argument("--rruff", type=Path, default=data / "rruff_dev" / "rruff_dev300.npz")
    fusion = parser.add_mutually_exclusive_group()
    fusion.add_argument("--fusion-source", nargs="+", metavar="CIFS",
                        help="fit the fusion rule of the new network on the default library's structures "
                             "(MP tar archive and AMCSD database)")
    fusion.add_argument("--fusion", metavar="FILE", help="bind this fusion rule file to the new network instead")
    parser.add_argument("--eval-out", type=Path, required=True)
    parser.add_argument("--project-from", metavar="RUN",
                        help="the learning curve from this run of the campaign on gives the projection for the "
                             "targets (default: the shipped run)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--card-only", action="store_true",
                        help="only write the card (default.json and the figures) from the model already shipped and "
                             "the evaluations already in --eval-out")
    args = parser.parse_args(argv)
    try:
        card = ship(args.run, models_dir=MODELS, docs_dir=ROOT / "docs", validation_dir=args.validation_dir,
                    manifest=args.manifest, rruff=args.rruff, eval_out=args.eval_out, checkpoint=args.checkpoint,
                    average=args.average, fusion_source=args.fusion_source, fusion=args.fusion,
                    project_from=args.project_from, overwrite=args.overwrite, card_only=args.card_only,
                    log=lambda m: print(m, flush=True))
    except SynthXRDError as exc:
        print(f"ship_model: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in card.items() if k not in ("config", "learning_curve")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
