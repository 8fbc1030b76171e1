"""Benchmarks against the reference implementations, measured in the same run on one core.

  synthxrd bench simulate [--json FILE]   pymatgen XRDCalculator vs synthxrd peaks/pattern/batched
  synthxrd bench generate [--json FILE]   pyxtal random_crystal vs Generator.sample/sample_batch,
                                          and generate -> simulate patterns/s
  synthxrd bench train [--json FILE]      the default training step and its variants side by side
                                          (threads, bf16 autocast, torch.compile, batch, grid): patterns/s
                                          and ratios; --end-to-end on the data stream; --stream: trainer
                                          steps/s, stream patterns/s, data-wait fraction of park_big/resnet10
  synthxrd bench match [--json FILE]      search-match ms/pattern and accuracy vs the naive baseline
                                          (labelled patterns; default rruff_dev of the shared data)
  synthxrd bench refine [--json FILE]     search-match alone vs with refinement (re-ranking): ms/pattern
                                          and accuracy; one fit vs lmfit where installed
  synthxrd bench mixtures [--json FILE]   multi-phase identification of simulated 2- and 3-phase
                                          mixtures of library structures (and single phases): exact
                                          set, precision/recall/F1, weight-fraction MAE, extra phases
"""

from __future__ import annotations

import argparse

from synthxrd.cli import options
from synthxrd.cli.options import LIBRARY_HELP

HELP = "benchmark synthxrd against reference implementations (ratios, one core)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    p = sub.add_parser("simulate", help="simulator vs pymatgen XRDCalculator")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--n-random", type=int, default=200, help="random crystals in the workload (default 200)")
    p.add_argument("--seed", type=options.seed, default=0, help="seed of the workload (default 0)")
    p = sub.add_parser("generate", help="generator vs pyxtal, and end-to-end patterns/s")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--n", type=int, default=300, help="crystals compared with pyxtal (default 300)")
    p.add_argument("--seed", type=options.seed, default=0, help="seed of the workload (default 0)")
    p.add_argument("--statistics", help="statistics file (default: shipped statistics)")
    p = sub.add_parser("train", help="the default training step and its variants, side by side (patterns/s, ratios)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per variant and round (default 2; with --stream per measurement, default 10)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds; medians are reported (default 5)")
    p.add_argument("--variants", metavar="NAMES",
                   help="comma-separated variants (default all: " + ", ".join(_step_variants()) + ")")
    p.add_argument("--model", help="network (default: synthxrd train's, park_big)")
    p.add_argument("--batch-size", type=int, help="patterns per step (default: synthxrd train's, 145)")
    p.add_argument("--grid-step", type=float, metavar="DEG", help="input grid step (default: synthxrd train's, 0.04)")
    p.add_argument("--end-to-end", action="store_true",
                   help="also train on the data stream (workers running), alternating windows of every core's "
                        "threads and 1 thread")
    p.add_argument("--stream", action="store_true",
                   help="instead: trainer steps/s, stream patterns/s and data wait of park_big and resnet10")
    for name, help_ in (("match", "search-match vs the naive nearest-neighbour baseline"),
                        ("refine", "search-match alone vs with refinement; one fit vs lmfit")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
        p.add_argument("--patterns", metavar="NPZ", default=None,
                       help="labelled patterns: two_theta, patterns, spacegroup (default: "
                            "../shared/data/experimental/rruff_dev/rruff_dev300.npz)")
        p.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
        p.add_argument("--max-patterns", type=int, default=0, help="only the first N patterns (default all)")
        if name == "match":
            p.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    p = sub.add_parser("mixtures", help="multi-phase identification on simulated mixtures")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--library", metavar="LIBRARY", help=LIBRARY_HELP)
    p.add_argument("--structures", metavar="CIFS",
                   help="folder or tar archive of the library's MP CIFs (default: "
                        "../shared/data/mp_experimental/structures.tar.xz)")
    p.add_argument("--two", type=int, default=20, metavar="N", help="two-phase mixtures (default 20)")
    p.add_argument("--three", type=int, default=10, metavar="N", help="three-phase mixtures (default 10)")
    p.add_argument("--single", type=int, default=20, metavar="N", help="single-phase patterns (default 20)")
    p.add_argument("--measured", type=int, default=0, metavar="N",
                   help="also the first N measured single-phase patterns of --patterns (default 0)")
    p.add_argument("--patterns", metavar="NPZ", default=None,
                   help="measured single-phase patterns for --measured (default: rruff_dev300 of the shared data)")
    p.add_argument("--chemistry", action="store_true",
                   help="search with the drawn phases' elements as the chemistry filter (--only-elements)")
    p.add_argument("--seed", type=options.seed, default=0, help="seed of the workload (default 0)")


def _step_variants() -> list[str]:
    from synthxrd.bench.train import STEP_VARIANTS

    return list(STEP_VARIANTS)


def run(args: argparse.Namespace) -> int:
    from synthxrd.files import write_json

    if args.what == "simulate":
        from synthxrd.bench.simulate import run_benchmark, summary_lines

        result = run_benchmark(n_random=args.n_random, seed=args.seed)
    elif args.what == "generate":
        from synthxrd.bench.generate import run_benchmark, summary_lines
        from synthxrd.stats import Statistics

        result = run_benchmark(n=args.n, seed=args.seed, statistics=Statistics.load(args.statistics))
    elif args.what == "match":
        from synthxrd.bench.match import default_patterns, run_bench, summary_lines

        result = run_bench(library_path=args.library, patterns_path=args.patterns or default_patterns(),
                           max_patterns=args.max_patterns, naive=not args.no_naive)
    elif args.what == "refine":
        from synthxrd.bench.match import default_patterns
        from synthxrd.bench.refine import run_bench, summary_lines

        result = run_bench(library_path=args.library, patterns_path=args.patterns or default_patterns(),
                           max_patterns=args.max_patterns)
    elif args.what == "mixtures":
        from synthxrd.bench.mixtures import run_bench, summary_lines

        result = run_bench(library_path=args.library, structures=args.structures, n_two=args.two,
                           n_three=args.three, n_single=args.single, seed=args.seed, chemistry=args.chemistry)
        if args.measured:
            from synthxrd.bench.mixtures import run_measured

            result["measured"] = run_measured(library_path=args.library, patterns_path=args.patterns,
                                              max_patterns=args.measured)
    elif args.stream:
        from synthxrd.bench.train import run_benchmark, summary_lines

        result = run_benchmark(steps=args.steps or 10)
    else:
        from synthxrd.bench.train import STEP_VARIANTS, compare_end_to_end, compare_step
        from synthxrd.bench.train import compare_lines as summary_lines
        from synthxrd.train import TrainConfig

        variants = STEP_VARIANTS
        if args.variants:
            names = [n.strip() for n in args.variants.split(",") if n.strip()]
            unknown = [n for n in names if n not in STEP_VARIANTS]
            if unknown:
                raise SystemExit(f"synthxrd bench train: unknown variant(s) {unknown}; "
                                 f"valid: {', '.join(STEP_VARIANTS)}")
            variants = {n: STEP_VARIANTS[n] for n in ["default", *names]}
        changes = {k: v for k, v in (("model", args.model), ("batch_size", args.batch_size),
                                     ("grid_step", args.grid_step)) if v is not None}
        config = TrainConfig(**changes)
        result = compare_step(config, variants=variants, repeats=args.repeats, steps=args.steps or 2)
        if args.end_to_end:
            result["end_to_end"] = compare_end_to_end(config)
    print("\n".join(summary_lines(result)))
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
