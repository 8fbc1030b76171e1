"""Throughput of the Ray data stream on a simulated cluster of 1, 2 and 3 data nodes (this machine).

Each run starts a ``ray.cluster_utils.Cluster``: a head node (the driver; 1 CPU, no ``data_node``)
and N data nodes of 1 CPU and the custom resource ``{"data_node": 1}``, the same layout as::

    ray start --head --port 6379 --num-cpus 1
    ray start --address HEAD:6379 --num-cpus 1 --resources '{"data_node": 1}'   # on each data node

It then makes ``synthxrd.data.make_stream(..., workers=N, ray_resources={"data_node": 1})`` (one
actor per data node; the script checks that they sit on distinct data nodes, none on the head),
discards the first ``2 N`` batches (actor start-up), and times the next ``--batches`` batches seen
by the driver. Reported per N: the stream's patterns/s at the driver, and each actor's own patterns per second
of wall time inside ``BatchMaker`` (``Batch.seconds``; falls when actors share a core) and per
CPU-second (``Batch.cpu_seconds``; what one actor on a core of its own makes). With ``--train-steps K`` it also trains ``--model`` for K steps on
the driver with the same stream and reports the trainer's patterns/s (``summary.json`` history).

Usage, from the repository root::

    python scripts/ray_cluster_throughput.py --nodes 1 2 3 --batches 30
    python scripts/ray_cluster_throughput.py --nodes 1 2 3 --batches 30 --train-steps 20

On a machine with fewer cores than data nodes + driver the nodes share cores and the figures do
not scale; see docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import ray
from ray.cluster_utils import Cluster

from synthxrd.data import StreamConfig, make_stream


def measure(n_nodes: int, args: argparse.Namespace) -> dict:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes = [cluster.add_node(num_cpus=1, resources={"data_node": 1}) for _ in range(n_nodes)]
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.wait_for_nodes()
    result: dict = {"nodes": n_nodes}
    try:
        config = StreamConfig(batch_size=args.batch_size, seed=args.seed, grid_step=args.grid_step)
        stream = make_stream(config, workers=n_nodes, ray_address="auto", ray_resources={"data_node": 1})
        try:
            placed = stream.nodes()
            data_ids = {node.node_id for node in nodes}
            if set(placed) != data_ids or ray.get_runtime_context().get_node_id() in placed:
                raise SystemExit(f"actors not one per data node: {placed} against {sorted(data_ids)}")
            for _ in range(2 * n_nodes):  # warm-up: actor start-up, first batches
                next(stream)
            start = time.perf_counter()
            batches = [next(stream) for _ in range(args.batches)]
            wall = time.perf_counter() - start
        finally:
            stream.close()
        patterns = sum(len(b.labels) for b in batches)
        result.update(batches_per_s=args.batches / wall, patterns_per_s=patterns / wall,
                      per_actor_wall=patterns / sum(b.seconds for b in batches),
                      per_actor_cpu=patterns / sum(b.cpu_seconds for b in batches))
        if args.train_steps:
            from synthxrd.train import TrainConfig, train

            with tempfile.TemporaryDirectory() as out:
                config = TrainConfig(out=os.path.join(out, "run"), model=args.model, batch_size=args.batch_size,
                                     max_steps=args.train_steps, workers=n_nodes, ray_address="auto",
                                     ray_resources={"data_node": 1}, val_sets=(), calibrate=False,
                                     grid_step=args.grid_step, log_every=max(1, args.train_steps // 2), threads=1,
                                     seed=args.seed)
                summary = train(config, progress=False)
            last = summary["history"][-1]  # the second half of the steps (the first holds start-up)
            result.update(train_patterns_per_s=last["patterns_per_s"], train_wait=last["data_wait_fraction"])
    finally:
        ray.shutdown()
        cluster.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--batches", type=int, default=30, help="timed batches per cluster size")
    parser.add_argument("--batch-size", type=int, default=145)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid-step", type=float, default=0.04, help="model grid step (train's default 0.04)")
    parser.add_argument("--train-steps", type=int, default=0, help="also train this many steps (0 = no)")
    parser.add_argument("--model", default="park_small")
    args = parser.parse_args()
    print(f"cores on this machine: {os.cpu_count()}; batch size {args.batch_size}; grid step {args.grid_step}; "
          f"{args.batches} timed batches")
    header = ("| data nodes | stream batches/s | stream patterns/s | per actor, patterns per wall s "
              "| per actor, patterns per CPU s |")
    rows = []
    for n in args.nodes:
        rows.append(measure(n, args))
        print(rows[-1], flush=True)
    if args.train_steps:
        header += f" train ({args.model}, 1 thread) patterns/s | data wait |"
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        cells = [r["nodes"], f"{r['batches_per_s']:.2f}", f"{r['patterns_per_s']:.0f}", f"{r['per_actor_wall']:.0f}",
                 f"{r['per_actor_cpu']:.0f}"]
        if "train_patterns_per_s" in r:
            cells += [f"{r['train_patterns_per_s']:.0f}", f"{r['train_wait']:.0%}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
