"""Check that every measured pattern synthxrd knows of is found to have peaks (:func:`synthxrd.io.has_peaks`).

The 17 patterns shipped in ``synthxrd/resources/measured``, the development sets of the shared data
(``experimental/manifest.csv``: XRED and RRUFF90, raw and background-removed; ``rruff_dev``) are each
put through the predictor's path (:func:`synthxrd.io.load_for_model`, then
:func:`synthxrd.io.peak_significance` over the covered grid) and, for ``library search``, through
:func:`synthxrd.io.pattern_peak_significance` on the file's own axis. Prints the weakest patterns::

    python scripts/peak_check.py [EXPERIMENTAL_DIR]     # default: experimental/ of the shared data

Exit status 1 when a pattern is found to have no peaks.
"""

from __future__ import annotations

import sys
import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np

from synthxrd.io import (MIN_PEAK_SIGNIFICANCE, integer_like, load_for_model, pattern_peak_significance,
                         peak_significance, read_manifest, read_pattern)


def main(base: Path) -> int:
    shipped = Path(str(files("synthxrd").joinpath("resources", "measured")))
    paths = sorted(shipped.glob("*.csv"))
    if (base / "manifest.csv").is_file():
        paths += [entry.path for entry in read_manifest(base / "manifest.csv", labelled=False)]
    results = []
    for path in (p for p in paths if p.name != "manifest.csv"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values, info = load_for_model(path)
            tt, y, _ = read_pattern(path)
        grid = float(peak_significance(values[info["coverage_mask"]], 0.01, counts=info["counts"])[0])
        results.append((min(grid, pattern_peak_significance(tt, y)), str(path)))
    dev = base / "rruff_dev" / "rruff_dev300.npz"
    if dev.is_file():
        data = np.load(dev)
        step = float(np.median(np.diff(data["two_theta"])))
        for i, row in enumerate(data["patterns"]):
            results.append((float(peak_significance(row, step, counts=integer_like(row))[0]), f"{dev}[{i}]"))
    results.sort()
    for significance, name in results[:5]:
        print(f"{significance:8.1f}  {name}")
    missing = [name for significance, name in results if significance < MIN_PEAK_SIGNIFICANCE]
    print(f"{len(results)} patterns, weakest {results[0][0]:.1f} noise sigmas; {len(missing)} without peaks "
          f"(threshold {MIN_PEAK_SIGNIFICANCE:g})")
    return 1 if missing else 0


if __name__ == "__main__":
    from synthxrd.files import shared_data_dir

    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1
                  else shared_data_dir(Path(__file__).resolve().parents[1]) / "experimental"))
