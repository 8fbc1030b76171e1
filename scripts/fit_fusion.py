"""Fit the fusion rule of network and search-match (synthxrd.match.fusion) on simulated patterns.

Patterns: realistic augmented patterns (augmentation "default": peak shapes, K-alpha2, shifts,
texture, background, noise, impurities, cropping) of
  * structures of the library (the statistics part of the split), with their lattice strained
    (isotropic scale U(0.97, 1.03) and +-1 % per axis: DFT cells, thermal expansion, solid solutions),
  * held-out prototypes (the test part of the split), left out of the library for this fit,
so that the rule learns both "the library knows it" and "nobody knows it". The rule's parameters
maximise the likelihood of the true space group (FusionRule.fit). rruff_dev is not used.

  python scripts/fit_fusion.py --source ../shared/data/mp_experimental/structures.tar.xz amcsd_cif1.db \
      --out src/synthxrd/resources/library/fusion.json

(``amcsd_cif1.db``: the AMCSD database of the ``larixite`` wheel, the source of the shipped mineral
library; the default library is both.) The held-out prototypes leave the library with every entry of
their structure type, of either source (``ReferenceLibrary.without_part``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def strained(crystal, rng: np.random.Generator):
    from synthxrd.structure import Crystal

    factors = rng.uniform(0.97, 1.03) * rng.uniform(0.99, 1.01, 3)
    return Crystal(crystal.lattice * factors[:, None], crystal.frac_coords, crystal.numbers, crystal.occupancies)


def read_crystals(sources: list[str], ids: list[str]):
    from synthxrd import stats
    from synthxrd.structure import Crystal

    out = {}
    texts = (pair for source in sources for pair in stats.iter_cif_texts(source, ids=ids))
    for ident, text in texts:
        lattice, positions, species = stats.parse_cif(text)
        counts = [len(s) for s in species]
        out[ident] = Crystal(np.asarray(lattice, float), np.repeat(np.asarray(positions, float), counts, axis=0),
                             np.array([z for s in species for z, _ in s]),
                             np.array([o for s in species for _, o in s], float))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, nargs="+",
                    help="the structures of the library (folders, tar archives or AMCSD databases)")
    ap.add_argument("--library", default=None, help="library (default: the default library, MP + AMCSD)")
    ap.add_argument("--model", default=None, help="network checkpoint (default: shipped)")
    ap.add_argument("--split", default=None, help="split CSV (default: shipped)")
    ap.add_argument("--n-library", type=int, default=600)
    ap.add_argument("--n-held-out", type=int, default=600)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--augment", default="default", help="augmentation preset of the patterns (default: default)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--save-data", metavar="NPZ", help="also save the fit data (network, match scores and groups)")
    args = ap.parse_args(argv)

    from synthxrd import __version__
    from synthxrd.augment import augment_config, augmented_patterns
    from synthxrd.evaluate import metrics
    from synthxrd.files import check_new
    from synthxrd.match import ReferenceLibrary
    from synthxrd.match.fusion import FusionRule
    from synthxrd.predict import Predictor
    from synthxrd.simulate.common import Grid
    from synthxrd.split import load_split
    from synthxrd.structure import CrystalBatch

    check_new([args.out], overwrite=args.overwrite)
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    library = ReferenceLibrary.load(args.library)
    split = load_split(args.split)
    fit_library = library.without_part(split, "test")
    in_test = np.isin(library.ids, split.ids_of("test"))  # held out: test-part structures (of the split's source)
    known = rng.choice(fit_library.ids, args.n_library, replace=False).tolist()
    unknown = rng.choice(library.ids[in_test], args.n_held_out, replace=False).tolist()
    crystals = read_crystals(args.source, known + unknown)
    ids = [i for i in known + unknown if i in crystals]
    batch = CrystalBatch.from_crystals([strained(crystals[i], rng) for i in ids])
    labels = np.array([library.spacegroups[library.index(i)] for i in ids], np.int64)
    grid = Grid()
    patterns = np.concatenate([augmented_patterns(CrystalBatch.from_crystals([batch[j] for j in range(a, min(a + 64, len(ids)))]),
                                                  augment_config(args.augment), rng, grid=grid)
                               for a in range(0, len(ids), 64)])
    predictor = Predictor.load(args.model, library=None, device="cpu")
    network = predictor.predict_grid(patterns)
    matches = fit_library.search(grid.values(), patterns, k=50)
    if args.save_data:
        np.savez_compressed(args.save_data, network=network, labels=labels, known=np.isin(ids, known),
                            scores=np.array([[m.score for m in ms] + [0.0] * (50 - len(ms)) for ms in matches]),
                            spacegroups=np.array([[m.spacegroup for m in ms] + [0] * (50 - len(ms)) for ms in matches]))
    rule = FusionRule.fit(network, matches, labels, metadata={
        "fitted_on": f"simulated patterns, augmentation {args.augment!r}", "n_library": len(known),
        "n_held_out": len(unknown), "strain": "isotropic U(0.97, 1.03) x per-axis U(0.99, 1.01)",
        "library": library.label, "model": predictor.source, "seed": args.seed, "package_version": __version__,
        "split": split.path or "shipped"})
    fused = np.array([rule.fuse(p, m) for p, m in zip(network, matches)])
    search_only = np.array([rule.match_probabilities(m) for m in matches])
    is_known = np.array([i in set(known) for i in ids])
    report = {}
    for part, sel in (("library structures", is_known), ("held-out prototypes", ~is_known)):
        report[part] = {name: {k: round(v, 4) for k, v in metrics(p[sel], labels[sel]).items() if isinstance(v, float)}
                        for name, p in (("network", network), ("search", search_only), ("fused", fused))}
    rule = FusionRule(rule.temperature, rule.bias, rule.w_score, rule.w_margin,
                      metadata=dict(rule.metadata, fit_report=report, wall_time_s=round(time.perf_counter() - start, 1)))
    rule.save(args.out)
    print(json.dumps(rule.to_dict(), indent=1))


if __name__ == "__main__":
    main()
