"""How many classes: the evidence for ``min_count``, the structure count that makes a space group a class.

For each threshold ``min_count`` (default 50 30 20 10 5) this measures, on the shipped statistics and
split (docs/training.md, "How many classes"):

1. **Coverage.** Number of classes (groups with >= min_count structures in the statistics part), and the
   share of the statistics-part structures, of the test-part structures (all, and the ``match`` set:
   those the generator can make), of the rruff_dev minerals and of the XRED patterns whose space group
   is a class: the ceiling of any top-1 accuracy the network can reach there.
2. **Generator on the groups each threshold adds** (``min_count`` <= count < the next higher threshold):
   per-attempt generation success (a crystal under the volume and site limits) and spglib
   (symprec 0.1, the labelling tolerance of the validation sets) recovering the intended group, next to
   the same on the groups of the current 82 classes.
3. **How the per-group tables degrade with few structures.** Groups with many structures are subsampled
   to n structures (``--subsample``) and the generator's own per-group tables of the subsample
   (``Statistics.subset(...).wyckoff/elements/n_elements/repetitions``) are compared with those of the
   whole group (total-variation distance, mean over groups and draws). Lattice and density tables are
   pooled per crystal system / over all structures and do not depend on the group's count.
4. **The shipped model per class** (``--validation-dir`` with a ``match`` set built for every group,
   ``synthxrd validation build --classes $(seq 1 230) --sets match``): top-1/top-5 recall of each of its
   classes on ``match``, binned by the class's count in the statistics, next to the frequency prior
   (its recall, and the mean of p_model(true) / prior(true)).

Never trains; rruff_dev and XRED only give the labels counted in 1. Writes ``--out`` (JSON) and prints
the Markdown tables::

    synthxrd validation build --out val_all --source ../shared/data/mp_experimental/structures.tar.xz \\
        --classes $(seq 1 230) --sets match -j 1
    python scripts/class_threshold.py --validation-dir val_all --out class_threshold.json \\
        --probs-cache match_probs.npz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ROOT / "src" / "synthxrd" / "resources" / "statistics" / "default_split.csv.gz"
#: spglib tolerance of the labels of the validation sets (synthxrd validation build).
LABEL_SYMPREC = 0.1
#: Bins of the structure count of a class, for the per-class accuracy of the shipped model.
COUNT_BINS = (50, 75, 100, 150, 250, 500, 1000, 10**9)


def split_spacegroups(path: Path) -> dict[str, np.ndarray]:
    """Space group of every structure of each part of the split, read off the prototype proxy
    (``<SG>|<formula>|<letters>``; a structure-type name has no SG and is skipped)."""
    parts: dict[str, list[int]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            head = row["prototype"].split("|", 1)[0]
            if head.isdigit():
                parts.setdefault(row["part"], []).append(int(head))
    return {k: np.asarray(v, np.int64) for k, v in parts.items()}


def measured_labels(experimental: Path) -> dict[str, np.ndarray]:
    """Space-group labels of the measured development sets: the 300 rruff_dev minerals and the raw
    XRED patterns of experimental/manifest.csv."""
    with np.load(experimental / "rruff_dev" / "rruff_dev300.npz", allow_pickle=False) as data:
        rruff = np.asarray(data["spacegroup"], np.int64)
    with open(experimental / "manifest.csv", newline="", encoding="utf-8") as fh:
        xred = [int(r["spacegroup"]) for r in csv.DictReader(fh) if r["variant"] == "raw"]
    return {"rruff_dev": rruff, "xred": np.asarray(xred, np.int64)}


def coverage(counts: np.ndarray, thresholds, sets: dict[str, np.ndarray]) -> list[dict]:
    """Per threshold: classes and the share of each label set whose group is a class."""
    rows = []
    for t in thresholds:
        classes = np.flatnonzero(counts >= t)
        row = {"min_count": int(t), "classes": int(len(classes))}
        for name, labels in sets.items():
            inside = np.isin(labels, classes)
            row[name] = {"n": int(len(labels)), "in_classes": int(inside.sum()),
                         "share": float(inside.mean()) if len(labels) else float("nan")}
        rows.append(row)
    return rows


def generation_quality(statistics, groups, *, per_group: int, max_attempts: int, seed: int) -> dict[int, dict]:
    """Per group: generation attempts and successes (``max_attempts`` per group at most, one attempt
    per draw: ``GeneratorConfig(max_attempts=1)``) and spglib (symprec 0.1) on the accepted crystals."""
    import spglib

    from synthxrd.generate import GenerationError, Generator, GeneratorConfig

    gen = Generator(statistics, GeneratorConfig(min_count=1, max_attempts=1))
    rng = np.random.default_rng(seed)
    out = {}
    for g in groups:
        attempts = ok = same = spglib_failed = 0
        while ok < per_group and attempts < max_attempts:
            attempts += 1
            try:
                batch = gen.sample_batch(1, rng, int(g))
            except GenerationError:
                continue
            ok += 1
            c = batch[0]
            data = spglib.get_symmetry_dataset((c.lattice, c.frac_coords, c.numbers), symprec=LABEL_SYMPREC)
            if data is None:
                spglib_failed += 1
            elif int(data.number) == int(g):
                same += 1
        out[int(g)] = {"attempts": attempts, "accepted": ok, "spglib_same": same, "spglib_failed": spglib_failed}
    return out


def _tv(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Total-variation distance of two (values, probabilities) tables."""
    values = np.union1d(a[0], b[0])
    pa = np.zeros(len(values))
    pb = np.zeros(len(values))
    pa[np.searchsorted(values, a[0])] = a[1]
    pb[np.searchsorted(values, b[0])] = b[1]
    return 0.5 * float(np.abs(pa - pb).sum())


TABLES = ("wyckoff", "elements", "n_elements", "repetitions")


def table_degradation(statistics, *, sizes, min_group: int, draws: int, seed: int) -> dict:
    """Mean total-variation distance between the per-group tables of ``n`` random structures of a
    group and those of all its structures, over the groups with >= ``min_group`` structures."""
    counts = statistics.spacegroup_counts()
    groups = np.flatnonzero(counts >= min_group)
    rng = np.random.default_rng(seed)
    full = {g: {k: getattr(statistics, k)(int(g)) for k in TABLES} for g in groups}
    result = {"groups": [int(g) for g in groups], "sizes": {}}
    for n in sizes:
        dist = {k: [] for k in TABLES}
        for g in groups:
            members = np.flatnonzero(statistics.spacegroups == g)
            for _ in range(draws):
                keep = np.zeros(len(statistics.ids), bool)
                keep[rng.choice(members, n, replace=False)] = True
                sub = statistics.subset(keep)
                for k in TABLES:
                    dist[k].append(_tv(getattr(sub, k)(int(g)), full[g][k]))
        result["sizes"][str(n)] = {k: float(np.mean(v)) for k, v in dist.items()}
    # the alternative for a group with few structures (GeneratorConfig.pool_below): its crystal system's
    # tables (Wyckoff letters cannot be pooled: the uniform table over the group's positions instead)
    pooled = {k: [] for k in TABLES}
    for g in groups:
        for k in TABLES:
            if k == "wyckoff":
                letters, _ = full[g][k]
                table = (letters, np.full(len(letters), 1.0 / len(letters)))
            else:
                table = getattr(statistics, k)(int(g), pooled="crystal_system")
            pooled[k].append(_tv(table, full[g][k]))
    result["sizes"]["crystal system (wyckoff: uniform)"] = {k: float(np.mean(v)) for k, v in pooled.items()}
    return result


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, classes: np.ndarray, prior: np.ndarray,
                       counts: np.ndarray) -> list[dict]:
    """Per class of the model: its count, test crystals, top-1/top-5 recall, mean p(true) / prior(true),
    and the prior's recall (the prior ranks the classes by frequency)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :5] + 1  # ITA numbers, best first
    prior_rank = np.argsort(-prior, kind="stable")[:5] + 1
    rows = []
    for c in classes:
        mine = labels == c
        if not mine.any():
            rows.append({"sg": int(c), "count": int(counts[c]), "n": 0})
            continue
        top = order[mine]
        rows.append({"sg": int(c), "count": int(counts[c]), "n": int(mine.sum()),
                     "top1": float((top[:, 0] == c).mean()), "top5": float((top == c).any(axis=1).mean()),
                     "lift": float(np.mean(probs[mine, c - 1]) / prior[c - 1]),
                     "prior_top1": float(prior_rank[0] == c), "prior_top5": float(c in prior_rank)})
    return rows


def bin_classes(rows: list[dict], bins=COUNT_BINS) -> list[dict]:
    """The per-class rows binned by count: classes, crystals, micro and macro recall, mean lift."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = [r for r in rows if lo <= r["count"] < hi and r["n"]]
        if not sel:
            continue
        n = np.array([r["n"] for r in sel], float)
        get = lambda k: np.array([r[k] for r in sel], float)  # noqa: E731
        out.append({"count": f"{lo}-{hi - 1}" if hi < 10**9 else f">= {lo}", "classes": len(sel),
                    "crystals": int(n.sum()),
                    "top1": float((get("top1") * n).sum() / n.sum()), "top5": float((get("top5") * n).sum() / n.sum()),
                    "top1_per_class": float(get("top1").mean()), "top5_per_class": float(get("top5").mean()),
                    "zero_top1_classes": int((get("top1") == 0).sum()),
                    "lift": float(np.median(get("lift"))),
                    "prior_top1": float((get("prior_top1") * n).sum() / n.sum()),
                    "prior_top5": float((get("prior_top5") * n).sum() / n.sum())})
    return out


def model_probabilities(validation_dir: str, cache: Path | None):
    """(probabilities (N, 230), labels, classes, prior (230,)) of the shipped model, network alone, on
    ``match`` (cached in ``cache``)."""
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as d:
            return d["probabilities"], d["labels"], d["classes"], d["baseline"]
    import torch

    from synthxrd.evaluate import evaluate_validation_set
    from synthxrd.predict import Predictor

    torch.set_num_threads(1)
    ev = evaluate_validation_set(Predictor.load(None, device="cpu", library=None), validation_dir, "match")
    if cache is not None:
        np.savez_compressed(cache, probabilities=ev.probabilities.astype(np.float32), labels=ev.labels,
                            classes=ev.classes, baseline=ev.baseline)
    return ev.probabilities, ev.labels, ev.classes, ev.baseline


def score_checkpoints(checkpoints, validation_dir: str, counts: np.ndarray, min_count: int, *,
                      old_count: int = 50, n_old: int = 1200, seed: int = 0) -> dict:
    """Network-alone top-1/top-5 of each checkpoint (a probe with more classes) on a fixed part of
    ``match``: ``n_old`` random crystals of the groups with >= ``old_count`` structures and every crystal
    of the groups with ``min_count`` <= count < ``old_count`` (the new classes, also split at 20), next
    to the frequency prior over the classes at ``min_count``. "all" re-weights old and new to their
    shares in ``match``. A checkpoint trained with the uniform prior is also scored with its
    probabilities multiplied by the statistics prior and renormalised ("prior-corrected", the label-shift
    correction of Saerens et al., Neural Comput. 14 (2002) 21)."""
    import torch

    from synthxrd.dataset import load_validation_sets
    from synthxrd.predict import Predictor

    torch.set_num_threads(1)
    ds = load_validation_sets(validation_dir, ["match"])["match"]
    y_all = np.asarray(ds.crystals.spacegroups, np.int64)
    old = np.flatnonzero(counts >= old_count)
    new = np.flatnonzero((counts >= min_count) & (counts < old_count))
    rng = np.random.default_rng(seed)
    rows_old = np.flatnonzero(np.isin(y_all, old))
    rows_old = np.sort(rng.choice(rows_old, min(n_old, len(rows_old)), replace=False))
    rows = np.concatenate([rows_old, np.flatnonzero(np.isin(y_all, new))])
    x, y = np.asarray(ds.patterns)[rows], y_all[rows]
    weight = {"old": int(np.isin(y_all, old).sum()), "new": int(np.isin(y_all, new).sum())}
    classes = np.flatnonzero(counts >= min_count)
    prior = np.zeros(230)
    prior[classes - 1] = counts[classes] / counts[classes].sum()
    masks = {"old": np.isin(y, old), "new": np.isin(y, new), "new 20-49": np.isin(y, new) & (counts[y] >= 20),
             f"new {min_count}-19": np.isin(y, new) & (counts[y] < 20)}

    def scores(p: np.ndarray) -> dict:
        top = np.argsort(-p, 1, kind="stable")[:, :5] + 1
        out = {k: {"n": int(m.sum()), "top1": float((top[m, 0] == y[m]).mean()),
                   "top5": float((top[m] == y[m, None]).any(1).mean())} for k, m in masks.items() if m.any()}
        out["all"] = {k: (out["old"][k] * weight["old"] + out["new"][k] * weight["new"]) / sum(weight.values())
                      for k in ("top1", "top5")}
        return out

    result = {"min_count": int(min_count), "match_crystals": weight, "prior": scores(np.broadcast_to(prior, (len(y), 230)))}
    for path in checkpoints:
        predictor = Predictor.load(path, device="cpu", library=None)
        p = np.asarray(predictor.predict(ds.two_theta, x), np.float64)
        entry = {"network": scores(p)}
        config = dict(predictor.metadata.get("config") or {}) if hasattr(predictor, "metadata") else {}
        if config.get("prior") == "uniform":
            q = p * prior
            entry["prior-corrected"] = scores(q / np.maximum(q.sum(1, keepdims=True), 1e-300))
        result[str(path)] = entry
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def markdown(result: dict) -> str:
    lines = ["| min_count | classes | statistics part | calibration part | test part | `match` | rruff_dev | XRED |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["coverage"]:
        cells = [f"{_pct(r[k]['share'])} ({r[k]['in_classes']}/{r[k]['n']})"
                 for k in ("statistics", "calibration", "test", "match", "rruff_dev", "xred") if k in r]
        lines.append(f"| {r['min_count']} | {r['classes']} | " + " | ".join(cells) + " |")
    gen = result.get("generation")
    if gen:
        lines += ["", "| groups (count in statistics) | groups | attempts | accepted per attempt | "
                      "spglib (0.1) = label | spglib fails | groups with < 50 % accepted |", "|---|---|---|---|---|---|---|"]
        for label, rows in gen["bands"].items():
            a = sum(r["attempts"] for r in rows.values())
            ok = sum(r["accepted"] for r in rows.values())
            same = sum(r["spglib_same"] for r in rows.values())
            failed = sum(r["spglib_failed"] for r in rows.values())
            poor = sum(1 for r in rows.values() if r["accepted"] < 0.5 * r["attempts"])
            lines.append(f"| {label} | {len(rows)} | {a} | {_pct(ok / max(a, 1))} | {_pct(same / max(ok, 1))} | "
                         f"{failed} | {poor} |")
    deg = result.get("degradation")
    if deg:
        lines += ["", f"| structures n | " + " | ".join(f"TV {k}" for k in TABLES) + " |",
                  "|---|" + "---|" * len(TABLES)]
        for n, d in deg["sizes"].items():
            lines.append(f"| {n} | " + " | ".join(f"{d[k]:.3f}" for k in TABLES) + " |")
    bins = result.get("model_bins")
    if bins:
        lines += ["", "| count | classes | `match` crystals | top-1 | top-5 | top-1 per class | classes never right "
                      "| median p/prior | prior top-1 | prior top-5 |", "|---|---|---|---|---|---|---|---|---|---|"]
        for b in bins:
            lines.append(f"| {b['count']} | {b['classes']} | {b['crystals']} | {_pct(b['top1'])} | {_pct(b['top5'])} | "
                         f"{_pct(b['top1_per_class'])} | {b['zero_top1_classes']} | {b['lift']:.2f} | "
                         f"{_pct(b['prior_top1'])} | {_pct(b['prior_top5'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from synthxrd.dataset import load_validation_sets
    from synthxrd.files import shared_data_dir
    from synthxrd.stats import Statistics

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[50, 30, 20, 10, 5])
    parser.add_argument("--validation-dir", help="cache with a match set of every group (see above); "
                                                 "without it, no match share and no per-class accuracy")
    parser.add_argument("--experimental", type=Path, default=shared_data_dir(ROOT) / "experimental")
    parser.add_argument("--per-group", type=int, default=20, help="accepted crystals per group (generation)")
    parser.add_argument("--max-attempts", type=int, default=200, help="attempts per group at most")
    parser.add_argument("--subsample", type=int, nargs="+", default=[5, 10, 20, 30, 50, 100])
    parser.add_argument("--min-group", type=int, default=400, help="groups subsampled for the table degradation")
    parser.add_argument("--draws", type=int, default=10, help="subsamples per group and size")
    parser.add_argument("--probs-cache", type=Path, help="cache of the model's probabilities on match (.npz)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["generation", "degradation", "model"])
    parser.add_argument("--checkpoints", nargs="+", default=[], metavar="CKPT",
                        help="score these checkpoints (probes with the classes of --probe-min-count) on match")
    parser.add_argument("--probe-min-count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="results (JSON)")
    args = parser.parse_args(argv)

    t0 = time.time()
    st = Statistics.load()
    counts = st.spacegroup_counts()
    thresholds = sorted(set(args.thresholds), reverse=True)
    parts = split_spacegroups(SPLIT)
    sets = {"statistics": st.spacegroups, "calibration": parts["calibration"], "test": parts["test"]}
    match = None
    if args.validation_dir:
        match = np.asarray(load_validation_sets(args.validation_dir, ["match"])["match"].crystals.spacegroups, np.int64)
        sets["match"] = match
    sets.update(measured_labels(args.experimental))
    result: dict = {"statistics": {"sha256": st.sha256, "n_structures": st.n_structures},
                    "coverage": coverage(counts, thresholds, sets)}

    if "generation" not in args.skip:
        edges = thresholds + [0]
        bands = {}
        bands[f">= {thresholds[0]} (current classes)"] = np.flatnonzero(counts >= thresholds[0])
        for hi, lo in zip(edges[:-2], edges[1:-1]):
            bands[f"{lo}-{hi - 1}"] = np.flatnonzero((counts >= lo) & (counts < hi))
        result["generation"] = {"per_group": args.per_group, "max_attempts": args.max_attempts,
                                "bands": {label: generation_quality(st, groups, per_group=args.per_group,
                                                                    max_attempts=args.max_attempts, seed=args.seed)
                                          for label, groups in bands.items()}}
        print(f"generation done ({time.time() - t0:.0f} s)", file=sys.stderr)

    if "degradation" not in args.skip:
        result["degradation"] = table_degradation(st, sizes=args.subsample, min_group=args.min_group,
                                                  draws=args.draws, seed=args.seed)
        print(f"degradation done ({time.time() - t0:.0f} s)", file=sys.stderr)

    if "model" not in args.skip and args.validation_dir:
        probs, labels, classes, prior = model_probabilities(args.validation_dir, args.probs_cache)
        rows = per_class_accuracy(np.asarray(probs, np.float64), np.asarray(labels), np.asarray(classes),
                                  np.asarray(prior, np.float64), counts)
        result["model_classes"] = rows
        result["model_bins"] = bin_classes(rows)
        known = np.isin(labels, classes)
        result["model_overall"] = {"n": int(len(labels)), "known": int(known.sum()),
                                   "top1_known": float((np.argmax(probs[known], 1) + 1 == labels[known]).mean()),
                                   "prior_top1_known": float((np.argmax(prior) + 1 == labels[known]).mean())}
    if args.checkpoints and args.validation_dir:
        result["probe"] = score_checkpoints(args.checkpoints, args.validation_dir, counts, args.probe_min_count,
                                            seed=args.seed)
        print(json.dumps(result["probe"], indent=1), file=sys.stderr)
    result["wall_s"] = round(time.time() - t0, 1)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
