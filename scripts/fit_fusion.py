"""Fit the fusion rule of a network and the library to a JSON file (synthxrd.match.fusion_fit.fit_fusion).

``synthxrd export CHECKPOINT OUT --library default --source CIFS...`` does the same and stores the rule
in the exported model, where Predictor.load finds it; this script writes it to a file, for study
(``--save-data``) or for ``synthxrd predict/evaluate --fusion FILE``. rruff_dev is not used.

  python scripts/fit_fusion.py --source ../shared/data/mp_experimental/structures.tar.xz amcsd_cif1.db \
      --out fusion.json

(``amcsd_cif1.db``: the AMCSD database of the ``larixite`` wheel, the source of the shipped mineral
library; the default library is both.)
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> None:
    from synthxrd.match.fusion_fit import DEFAULT_SEED

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, nargs="+",
                    help="the structures of the library (folders, tar archives or AMCSD databases)")
    ap.add_argument("--library", default=None, help="library (default: the default library, MP + AMCSD)")
    ap.add_argument("--model", default=None, help="network checkpoint (default: shipped)")
    ap.add_argument("--split", default=None, help="split CSV (default: shipped)")
    ap.add_argument("--part", default=None, help="held-out part (default: calibration, else test)")
    ap.add_argument("--n-library", type=int, default=1000)
    ap.add_argument("--n-held-out", type=int, default=1000)
    ap.add_argument("--n-thin-film", type=int, default=300,
                    help="thin-film-like patterns (strong texture, a short scan; default 300)")
    ap.add_argument("--n-cropped", type=int, default=0,
                    help="patterns with the full default augmentation, cropped scans searched on their windows "
                         "(default 0)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--augment", default="calibration",
                    help="augmentation preset of the patterns (default: calibration)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--save-data", metavar="NPZ", help="also save the fit data (network, match scores and groups)")
    args = ap.parse_args(argv)

    from synthxrd.files import check_new
    from synthxrd.match import ReferenceLibrary
    from synthxrd.match.fusion_fit import fit_fusion
    from synthxrd.predict import Predictor

    check_new([args.out], overwrite=args.overwrite)
    rule = fit_fusion(Predictor.load(args.model, library=None, device="cpu"), ReferenceLibrary.load(args.library),
                      args.source, split=args.split, part=args.part, n_library=args.n_library,
                      n_held_out=args.n_held_out, n_thin_film=args.n_thin_film, n_cropped=args.n_cropped,
                      seed=args.seed, augment=args.augment, save_data=args.save_data)
    rule.save(args.out)
    print(json.dumps(rule.to_dict(), indent=1))


if __name__ == "__main__":
    main()
