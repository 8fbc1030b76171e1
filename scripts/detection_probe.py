"""How much a network leans on weak reflections: its top-1 on simulated patterns of measured minerals
as the lines below a detection limit are taken away.

The RRUFF minerals of rruff_dev have no structure files, so each is stood in for by its best
search-match hit in the shipped library, where that hit has the mineral's space group (about 60 %
of them; ``--source`` holds the hits' CIFs). Each stand-in is simulated (``simulate.peaks``,
Gaussian lines of FWHM 0.1 degrees on the 5-90 degree grid) with every line below t x the
strongest removed and noise of sigma t / 3 added (t is three noise sigmas, as a measured scan's
limit is), t in ``--limits``, and classified by the network alone. The network's top-1
on the measured patterns of the same minerals is printed beside it.

A network that reads the symmetry from the lines a measurement shows keeps its accuracy as t
grows to a few per cent (three noise sigmas of the RRUFF scans are 0.3-11 % of their strongest
point); one that reads lines at 1e-4 of the strongest, which no measurement shows, falls to the
frequency prior (docs/model_card.md, docs/realism.md#detection-limit-the-measured-preset)::

    python scripts/detection_probe.py --model src/synthxrd/resources/models/default.pt \
        --source ../shared/data/mp_experimental/structures.tar.xz --out probe.json

rruff_dev only chooses and measures here: nothing is fitted to it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FWHM_DEG = 0.1


def gaussian_pattern(two_theta: np.ndarray, intensity: np.ndarray, grid: np.ndarray, limit: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Sum of Gaussians of FWHM :data:`FWHM_DEG` (height = intensity) at the lines with intensity
    >= limit x the strongest, plus Gaussian noise of sigma limit / 3 (the limit is 3 noise sigmas),
    clipped at 0 as a background-subtracted scan."""
    keep = intensity >= limit * intensity.max()
    sigma = FWHM_DEG / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    y = (intensity[keep] * np.exp(-0.5 * ((grid[:, None] - two_theta[keep]) / sigma) ** 2)).sum(axis=1)
    y /= y.max()
    return np.maximum(y + limit / 3.0 * rng.standard_normal(y.shape), 0.0)


def stand_in_peaks(ids: list[str], source: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``simulate.peaks`` (Cu K-alpha1, 5-90 degrees) of the structures ``ids`` of ``source``."""
    from synthxrd.simulate import peaks
    from synthxrd.stats.collection import iter_cif_texts

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ident, text in iter_cif_texts(source, ids=ids):
            path = Path(tmp) / f"{ident}.cif"
            path.write_text(text)
            out[ident] = peaks(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint or export (default: the shipped model)")
    parser.add_argument("--source", type=Path, required=True, help="the CIFs of the library (folder or tar)")
    parser.add_argument("--rruff", type=Path, default=None,
                        help="rruff_dev NPZ (default: experimental/rruff_dev/rruff_dev300.npz of the shared data)")
    parser.add_argument("--limits", type=float, nargs="+", default=[0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1])
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.rruff is None:
        from synthxrd.files import shared_data_dir

        args.rruff = shared_data_dir(ROOT) / "experimental" / "rruff_dev" / "rruff_dev300.npz"

    from synthxrd.files import write_json
    from synthxrd.predict import Predictor

    data = np.load(args.rruff)
    labels = data["spacegroup"]
    from synthxrd.match.fusion import FusionRule

    # only the matches are used: any fusion rule will do (a training run's checkpoint has none)
    searcher = Predictor.load(args.model, device="cpu", fusion=FusionRule(), allow_foreign_fusion=True)
    found = searcher.identify(data["two_theta"].astype(np.float64), data["patterns"].astype(np.float64), k=1)
    hits = [m[0] for m in found["matches"]]
    usable = np.array([h.spacegroup == y for h, y in zip(hits, labels)])
    rows = np.flatnonzero(usable)
    lines = stand_in_peaks(sorted({hits[i].id for i in rows}), args.source)
    rows = np.array([i for i in rows if hits[i].id in lines])
    measured = found["network"].argmax(axis=1)[rows] + 1 == labels[rows]
    report = {"model": str(args.model or "shipped"), "minerals": int(len(rows)), "of": int(len(labels)),
              "measured_top1": float(measured.mean()), "simulated_top1": {}}
    print(f"{len(rows)} of {len(labels)} minerals have a library hit of their space group; network top-1 on "
          f"their measured patterns {measured.mean():.3f}")
    grid = searcher.grid.values()
    for limit in args.limits:
        rng = np.random.default_rng(0)
        x = np.stack([gaussian_pattern(*lines[hits[i].id], grid, limit, rng) for i in rows])
        top1 = float((searcher.predict_grid(x).argmax(axis=1) + 1 == labels[rows]).mean())
        report["simulated_top1"][f"{limit:g}"] = top1
        print(f"lines >= {limit:g} x the strongest: top-1 {top1:.3f}")
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
