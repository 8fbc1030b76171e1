"""Build the small physics tables shipped in ``src/synthxrd/resources``.

Run once from the repository root (needs pymatgen)::

    python scripts/build_resources.py

* ``scattering_factors.json``: the four-Gaussian fits of the X-ray atomic scattering factor
  used by pymatgen's ``XRDCalculator`` (``atomic_scattering_params.json``, MIT licence,
  pymatgen development team), keyed by element symbol, with the atomic number Z added.
  f(s) = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2), s = sin(theta)/lambda in 1/Angstrom.
* ``wavelengths.json``: characteristic X-ray lines in Angstrom (same values as pymatgen's
  ``WAVELENGTHS``; Kalpha is the weighted Kalpha1/Kalpha2 mean).
"""

from __future__ import annotations

import json
from pathlib import Path

from pymatgen.analysis.diffraction import xrd
from pymatgen.core import Element

OUT = Path(__file__).resolve().parents[1] / "src" / "synthxrd" / "resources"


def main() -> None:
    params_path = Path(xrd.__file__).with_name("atomic_scattering_params.json")
    params = json.loads(params_path.read_text())
    table = {
        sym: {"Z": Element(sym).Z, "a": [c[0] for c in coeffs], "b": [c[1] for c in coeffs]}
        for sym, coeffs in sorted(params.items(), key=lambda kv: (Element(kv[0]).Z, kv[0] != "H"))
    }
    doc = {
        "source": "pymatgen analysis/diffraction/atomic_scattering_params.json (MIT licence)",
        "formula": "f(s) = Z - 41.78214 * s^2 * sum_i a_i exp(-b_i s^2), s = sin(theta)/lambda [1/A]",
        "elements": table,
    }
    (OUT / "scattering_factors.json").write_text(json.dumps(doc, indent=1) + "\n")
    waves = {"source": "pymatgen analysis/diffraction/xrd.py WAVELENGTHS", "unit": "Angstrom",
             "lines": dict(xrd.WAVELENGTHS)}
    (OUT / "wavelengths.json").write_text(json.dumps(waves, indent=1) + "\n")
    print(f"wrote {len(table)} elements and {len(xrd.WAVELENGTHS)} wavelengths to {OUT}")


if __name__ == "__main__":
    main()
