"""Generate synthetic crystals from space-group statistics (and optionally their patterns).

Writes into OUT (a directory):
  crystals.h5    HDF5 dataset: lattices, frac_coords, numbers, occupancies, offsets, spacegroups
                 (+ patterns (N, 8501) float32 and two_theta with --patterns); see synthxrd.dataset
  cif/*.cif      with --cif: one CIF per crystal, named NNNNNN_sgXXX.cif
  run.json       config, seed, statistics version, package version, symmetry-check report

Examples:
  synthxrd generate --n 1000 --out synth --patterns
  synthxrd generate --n 20 --out synth225 --spacegroups 225 --cif --check-symmetry
"""

from __future__ import annotations

import argparse
from pathlib import Path

from synthxrd.cli import options

HELP = "generate synthetic crystals (HDF5 dataset, CIFs, patterns) from space-group statistics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from synthxrd.stats.statistics import REPRESENTED_MIN_COUNT

    parser.add_argument("--n", type=int, required=True, help="number of crystals")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--spacegroups", type=int, nargs="+", metavar="SG",
                        help="draw only from these space groups (prior restricted to them; default: the "
                             "represented groups of the statistics)")
    parser.add_argument("--cif", action="store_true", help="also write one CIF per crystal")
    parser.add_argument("--patterns", action="store_true", help="also simulate the patterns (5-90 deg, 8501 points)")
    parser.add_argument("--statistics", type=Path, help="statistics file (default: shipped statistics)")
    parser.add_argument("--seed", type=options.seed, default=0, help="random seed (default 0)")
    parser.add_argument("--uniform", action="store_true", help="uniform prior over the groups instead of counts")
    parser.add_argument("--min-count", type=int, default=REPRESENTED_MIN_COUNT,
                        help=f"classes: groups with >= this many structures (default {REPRESENTED_MIN_COUNT})")
    parser.add_argument("--check-symmetry", action="store_true",
                        help="reject crystals whose spglib group (symprec 1e-8, 5 deg) differs from the intended one")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from synthxrd import __version__
    from synthxrd.dataset import Dataset, save_dataset
    from synthxrd.errors import ConfigError
    from synthxrd.files import check_outputs, write_json
    from synthxrd.generate import Generator, GeneratorConfig
    from synthxrd.stats import Statistics
    from synthxrd.structure import CrystalBatch

    if args.n < 1:
        raise ConfigError(f"--n must be >= 1, got {args.n}")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    check_outputs([out / "crystals.h5", out / "run.json", out / "cif"], inputs=[args.statistics],
                  overwrite=args.overwrite)
    statistics = Statistics.load(args.statistics)
    config = GeneratorConfig(min_count=args.min_count, prior="uniform" if args.uniform else "statistics",
                             check_symmetry=args.check_symmetry)
    generator = Generator(statistics, config)
    rng = np.random.default_rng(args.seed)
    chunks, patterns = [], []
    with tqdm(total=args.n, desc="generate", unit="crystal") as bar:
        while bar.n < args.n:
            chunk = generator.sample_batch(min(256, args.n - bar.n), rng, args.spacegroups)
            chunks.append(chunk)
            if args.patterns:
                from synthxrd import simulate

                patterns.append(simulate.patterns(chunk, rng=rng))
            bar.update(len(chunk))
    batch = CrystalBatch.concatenate(chunks)
    out.mkdir(parents=True, exist_ok=True)
    metadata = {
        "command": "synthxrd generate", "synthxrd_version": __version__, "seed": args.seed, "n": args.n,
        "spacegroups": args.spacegroups, "generator_config": vars(config),
        "statistics": {"path": str(args.statistics or "shipped"), "version": statistics.version,
                       "source": statistics.source, "n_structures": statistics.n_structures},
        "symmetry_check": {str(k): v for k, v in generator.symmetry_report().items()},
    }
    grid = None
    if args.patterns:
        from synthxrd.simulate import Grid

        grid = Grid().values()
    save_dataset(out / "crystals.h5", Dataset(batch, np.concatenate(patterns) if patterns else None, grid, metadata))
    if args.cif:
        _write_cifs(out / "cif", batch)
    write_json(out / "run.json", metadata)
    groups, counts = np.unique(batch.spacegroups, return_counts=True)
    top = ", ".join(f"{g}: {c}" for g, c in sorted(zip(groups, counts), key=lambda t: -t[1])[:5])
    print(f"{len(batch)} crystals in {len(groups)} space groups (most frequent {top}); wrote {out}")
    return 0


def _write_cifs(folder: Path, batch) -> None:
    from synthxrd.structure import write_cif

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(batch)):
        write_cif(folder / f"{i:06d}_sg{int(batch.spacegroups[i]):03d}.cif", batch[i])
