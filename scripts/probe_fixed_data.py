"""What teaches a network in its first minutes: short trainings on a fixed, pre-rendered set (docs/training.md).

Rendering is taken out of the loop so that only the training choice differs: ``make`` renders N
patterns of the training stream once (0.01° grid, √-scaled as the stream gives them) with a given
augmentation; ``train`` trains a fresh network for a fixed wall time on them (optionally a share
``--mix`` from a second, e.g. ideal, set) and scores it on a fixed subsample of a validation set.
Each ``train`` prints one JSON line. Measured on 2 cores:

  python scripts/probe_fixed_data.py make --n 30000 --augment default --out explore/aug.npz
  python scripts/probe_fixed_data.py make --n 30000 --augment none --out explore/ideal.npz
  python scripts/probe_fixed_data.py train --data explore/aug.npz --mix 0.5 \
      --mix-data explore/ideal.npz --lr 1e-3 --seconds 150 --validation-dir validation
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import Pool

import numpy as np


def _batch(args):
    maker, index = args
    b = maker(index)
    return b.inputs.astype(np.float16), b.labels


def make(a: argparse.Namespace) -> None:
    from synthxrd.data import BatchMaker
    from synthxrd.train import TrainConfig, _stream_config

    cfg = TrainConfig(augment=a.augment, grid_step=0.01, renders=a.renders, seed=a.seed)
    maker = BatchMaker(_stream_config(cfg))
    start = time.time()
    with Pool(a.workers) as pool:
        parts = pool.map(_batch, [(maker, i) for i in range(-(-a.n // cfg.batch_size))])
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    np.savez(a.out, x=x, y=y, classes=maker.classes)
    print(json.dumps({"out": a.out, "shape": list(x.shape), "seconds": round(time.time() - start, 1)}))


def train(a: argparse.Namespace) -> None:
    import torch

    from synthxrd.models import build
    from synthxrd.models.checkpoint import InputSpec
    from synthxrd.train import group_tables, marginal_loss
    from synthxrd.validation import load_validation_sets

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = dict(np.load(a.data))
    classes = d["classes"]
    if a.mix:
        other, n = np.load(a.mix_data), int(a.mix * len(d["y"]))
        d["x"], d["y"] = np.concatenate([other["x"][:n], d["x"][n:]]), np.concatenate([other["y"][:n], d["y"][n:]])
    spec = InputSpec(step=a.step)
    x = torch.from_numpy(spec.apply(d["x"].astype(np.float32) ** 2))  # the stream's inputs are sqrt-scaled
    y = torch.from_numpy(d["y"])
    ds = load_validation_sets(a.validation_dir, [a.set])[a.set]
    index = {int(g): i for i, g in enumerate(classes)}
    labels = np.array([index.get(int(g), -1) for g in ds.crystals.spacegroups])
    rows = np.random.default_rng(0).choice(np.flatnonzero(labels >= 0), a.n_val, replace=False)
    vx, vy = torch.from_numpy(spec.apply(ds.patterns[rows])), torch.from_numpy(labels[rows])
    options = json.loads(a.model_kwargs)
    model = build(a.model, len(classes), input_length=spec.n, **options)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    groups = torch.as_tensor(group_tables(classes)) if a.aux else None
    start, step, order = time.time(), 0, torch.randperm(len(x))
    while time.time() - start < a.seconds:
        i = (step * a.batch_size) % (len(x) - a.batch_size)
        if i < a.batch_size:
            order = torch.randperm(len(x))
        b = order[i:i + a.batch_size]
        logits = model(x[b])
        loss = torch.nn.functional.cross_entropy(logits, y[b])
        if groups is not None:
            loss = loss + a.aux * marginal_loss(logits, y[b], groups)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    elapsed = time.time() - start
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(vx[k:k + 500]) for k in range(0, len(vx), 500)])
    top5 = logits.topk(5, 1).indices
    print(json.dumps({"args": vars(a), "steps": step, "patterns_per_s": round(step * a.batch_size / elapsed),
                      a.set: {"top1": float((top5[:, 0] == vy).float().mean()),
                              "top5": float((top5 == vy[:, None]).any(1).float().mean())}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--n", type=int, default=30000)
    m.add_argument("--augment", default="default")
    m.add_argument("--renders", type=int, default=4)
    m.add_argument("--seed", type=int, default=7)
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--mix", type=float, default=0.0, help="share of the set taken from --mix-data")
    t.add_argument("--mix-data")
    t.add_argument("--model", default="park_big")
    t.add_argument("--model-kwargs", default="{}", help='JSON, e.g. {"input_step": 0.04}')
    t.add_argument("--step", type=float, default=0.04, help="model grid step (degrees)")
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--aux", type=float, default=0.0, help="weight of synthxrd.train.marginal_loss")
    t.add_argument("--batch-size", type=int, default=145)
    t.add_argument("--seconds", type=float, default=150.0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--validation-dir", required=True)
    t.add_argument("--set", default="match")
    t.add_argument("--n-val", type=int, default=2000)
    a = ap.parse_args()
    make(a) if a.command == "make" else train(a)


if __name__ == "__main__":
    main()
