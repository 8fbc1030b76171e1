"""Score ``identify_phases`` on measured mixtures of stated composition (issue 26).

Reads every pattern in FOLDER whose file name states its phases, runs
``synthxrd.mixture.identify_phases(..., phases="auto")`` against the shipped library, with and without
the chemistry filter (the stated phases' elements, ``only_elements=True``), and compares the phases
found with the stated ones. Fetches nothing: point it at ``tests/data/mixtures_measured`` (dara's
precursor mixtures, 8-min scans, shipped) or at a checkout of the sources named in that folder's
``SOURCE.md`` (dara's 2-min scans, XRD-AutoAnalyzer's ``Example/Spectra``).

The stated phases come from the folder's ``mixtures.csv`` (:func:`read_manifest`) where it lists the
file, else from the file name (the sources' conventions):

* dara: ``Formula1_0p3022-Formula2_0p5014[-Formula3_0p2004]--8min.xrdml``: weighed masses (g),
  normalised to weight fractions; ``LaOH3`` and ``La(OH)3`` both mean La(OH)3.
* dara before 2025-07 (commit b9609c6^): ``Formula1_Formula2_Formula3[_Formula4].12-min.xrdml``
  (or ``.2-min``): "an equal weight combination" (the dataset's README), so equal weight fractions;
  ``Bi2O3-alpha``, ``Bi2O3-beta`` mean Bi2O3, ``NaAlO2-1.5H2O`` NaAlO2.1.5H2O.
* XRD-AutoAnalyzer: ``Formula1+Formula2[+Formula3].xy``: phases only, no fractions.

Scoring: a stated phase is found if a found phase has its reduced formula (``strict``), or if one of
the found phase's look-alikes (``Mixture.phases[].alternatives``: duplicates and isostructural entries
the pattern cannot tell apart) has it, or the found phase has the same elements with atomic fractions
within 0.02 (Ni31.84O32 for NiO) (``grouped``). ``max_phases`` is 4 (the sources' mixtures have up to
four precursors). ``sg_ok`` says whether the found entry has the
usual ambient polymorph's space group (``EXPECTED_SG``; TiO2: anatase or rutile, not stated by the
source). Weight-fraction error: |found - stated| in points for each matched phase with a weight
fraction, the found fractions as ``identify_phases`` gives them (over the found phases).

    python scripts/score_measured_mixtures.py tests/data/mixtures_measured [--wavelength CuKa] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

PATTERN_SUFFIXES = {".xrdml", ".xy", ".xye", ".raw", ".txt", ".dat", ".csv", ".brml", ".rasx", ".ras"}
ALIASES = {"LaOH3": "La(OH)3", "Bi2O3-alpha": "Bi2O3", "Bi2O3-beta": "Bi2O3", "NaAlO2-1.5H2O": "NaAlO3.5H3"}
# space groups of the usual ambient polymorphs of the sources' precursors (for the ``sg_ok`` column)
EXPECTED_SG = {"In2O3": {206}, "La(HO)3": {176}, "TiO2": {136, 141}, "MnCO3": {167}, "Li2CO3": {15},
               "ZrO2": {14}, "NiO": {225}, "Bi2O3": {14, 114}, "ZnO": {186}, "V2O5": {59}, "Mn2O3": {206},
               "MnO": {225}, "MnO2": {136}, "LiF": {225}, "Li2MnO3": {12}, "LiMnO2": {59}, "Cr2O3": {167},
               "Fe3O4": {227}, "HfO2": {14}, "Y2O3": {206}, "Li2TiO3": {15}, "LiCoO2": {166}, "K2SO4": {62},
               "CuO": {15}, "Ga2O3": {12}, "GeO2": {152, 154}, "SnO2": {136}, "CaCO3": {167},
               "Li3PO4": {31, 62}, "NaHCO3": {14}}


def stated_phases(path: Path) -> list[tuple[str, float | None]] | None:
    """[(formula, weight fraction or None)] from a file name, or None if it states no phases."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    equal = bool(re.search(r"\.\d+-min$", stem))
    stem = re.sub(r"\.\d+-min$", "", stem).split("--")[0]
    parts = stem.split("_") if equal else stem.split("+") if "+" in stem else stem.split("-")
    out = []
    for part in parts:
        m = re.fullmatch(r"(.+?)(?:_(\d+)p(\d+))?", part) if not equal else re.fullmatch(r"(.+)()()", part)
        formula = ALIASES.get(m.group(1), m.group(1))
        value = float(f"{m.group(2)}.{m.group(3)}") if m.group(2) else (1.0 if equal else None)
        out.append((formula, value))
    try:
        from pymatgen.core import Composition
        [Composition(f) for f, _ in out]
    except Exception:  # noqa: BLE001 - not a composition-named file
        return None
    if all(v is not None for _, v in out):
        total = sum(v for _, v in out)
        out = [(f, v / total) for f, v in out]
    else:
        out = [(f, None) for f, _ in out]
    return out


def _near(a: str, b: str, tol: float = 0.02) -> bool:
    """Same elements, atomic fractions within ``tol`` (Ni31.84O32 for NiO, a non-stoichiometric entry)."""
    from pymatgen.core import Composition

    try:
        ca, cb = Composition(a).fractional_composition, Composition(b).fractional_composition
    except Exception:  # noqa: BLE001
        return False
    return set(ca) == set(cb) and all(abs(ca[e] - cb[e]) <= tol for e in ca)


def read_manifest(folder: Path) -> dict[str, list[dict]]:
    """``mixtures.csv`` of a folder (columns file, phase, weight_percent, formula, accept), or {}.

    ``formula``: a representative formula (its elements feed the chemistry filter); ``accept``: what
    counts as the phase, ``|``-separated formulas (same reduced formula) and mineral names (the
    library's ``minerals``), e.g. ``Al2Si2H4O9|kaolinite|dickite|nacrite``."""
    import csv

    path = folder / "mixtures.csv"
    if not path.is_file():
        return {}
    out: dict[str, list[dict]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            w = row.get("weight_percent") or ""
            out.setdefault(row["file"], []).append({
                "name": row["phase"], "formula": row["formula"], "fraction": float(w) / 100 if w else None,
                "accept": [a.strip() for a in row["accept"].split("|") if a.strip()]})
    return out


def _stated_entries(path: Path, manifest: dict) -> list[dict] | None:
    if path.name in manifest:
        return manifest[path.name]
    stated = stated_phases(path)
    if stated is None:
        return None
    return [{"name": f, "formula": f, "fraction": w, "accept": [f]} for f, w in stated]


def _is_formula(text: str) -> bool:
    from pymatgen.core import Composition

    if not text[:1].isupper():
        return False
    try:
        Composition(text)
    except Exception:  # noqa: BLE001
        return False
    return True


def _accepts(accept: list[str], formulas: set[str], minerals: set[str], grouped: bool) -> bool:
    from pymatgen.core import Composition

    for a in accept:
        if _is_formula(a):
            reduced = Composition(a).reduced_formula
            if reduced in formulas or grouped and any(_near(reduced, f) for f in formulas):
                return True
        elif a.lower() in minerals:
            return True
    return False


def score_pattern(path: Path, library, *, wavelength, chemistry: bool, max_phases: int = 4,
                  manifest: dict | None = None) -> dict:
    from pymatgen.core import Composition

    from synthxrd.io import read_pattern
    from synthxrd.mixture import identify_phases

    stated = _stated_entries(path, manifest or {})
    two_theta, intensities, meta = read_pattern(path)
    elements = None
    if chemistry:
        elements = sorted({str(e) for s in stated for e in Composition(s["formula"]).elements})
    t0 = time.perf_counter()
    mix = identify_phases(two_theta, intensities, library, phases="auto", wavelength=wavelength,
                          elements=elements, only_elements=chemistry, max_phases=max_phases)
    seconds = time.perf_counter() - t0
    index = {str(i): k for k, i in enumerate(library.ids)}
    minerals = library.minerals if library.minerals is not None else np.array([""] * len(library.ids))
    rows = []
    for p in mix.phases:
        alt_rows = [index[a] for a in p.alternatives if a in index]
        rows.append({"id": p.id, "formula": p.formula, "spacegroup": int(p.spacegroup),
                     "mineral": str(minerals[p.index]),
                     "weight_fraction": p.weight_fraction, "intensity_share": p.intensity_share,
                     "alternative_formulas": sorted({str(library.formulas[k]) for k in alt_rows}),
                     "alternative_minerals": sorted({str(minerals[k]) for k in alt_rows} - {""})})
    result = {"file": path.name, "chemistry": chemistry,
              "stated": [[s["name"], s["fraction"]] for s in stated],
              "found": rows, "rwp": mix.rwp, "seconds": seconds}
    for name in ("strict", "grouped"):
        grouped = name == "grouped"
        matched = {}  # stated index -> found index
        for j, r in enumerate(rows):
            formulas = {r["formula"]} | (set(r["alternative_formulas"]) if grouped else set())
            mins = {r["mineral"].lower()} | ({m.lower() for m in r["alternative_minerals"]} if grouped else set())
            for t, st in enumerate(stated):
                if t not in matched and _accepts(st["accept"], formulas, mins - {""}, grouped):
                    matched[t] = j
                    break
        result[name] = {str(t): j for t, j in matched.items()}
    matched = {int(t): j for t, j in result["grouped"].items()}
    reduced = [Composition(s["formula"]).reduced_formula for s in stated]
    result["n_stated"], result["n_found"], result["n_correct"] = len(stated), len(rows), len(matched)
    result["n_correct_strict"] = len(result["strict"])
    result["sg_ok"] = sum(rows[j]["formula"] == reduced[t] and rows[j]["spacegroup"] in EXPECTED_SG.get(reduced[t], ())
                          for t, j in matched.items())
    result["n_sg_known"] = sum(f in EXPECTED_SG for f in reduced)
    result["exact"] = len(matched) == len(stated) == len(rows)
    weights = [s["fraction"] for s in stated]
    main = int(np.argmax(weights)) if None not in weights and max(weights) > min(weights) + 1e-3 else None
    result["main_found"] = None if main is None else main in matched
    result["wf_errors"] = [abs(rows[j]["weight_fraction"] - stated[t]["fraction"]) for t, j in matched.items()
                           if stated[t]["fraction"] is not None and rows[j]["weight_fraction"] is not None]
    return result


def summary(results: list[dict]) -> dict:
    tp = sum(r["n_correct"] for r in results)
    found = sum(r["n_found"] for r in results)
    true = sum(r["n_stated"] for r in results)
    errors = [e for r in results for e in r["wf_errors"]]
    exact_errors = [e for r in results if r["exact"] for e in r["wf_errors"]]
    mains = [r["main_found"] for r in results if r["main_found"] is not None]
    return {"n": len(results), "exact": float(np.mean([r["exact"] for r in results])),
            "precision": tp / found if found else 0.0, "recall": tp / true if true else 0.0,
            "recall_strict": sum(r["n_correct_strict"] for r in results) / true if true else 0.0,
            "sg_ok": sum(r["sg_ok"] for r in results) / max(1, sum(r["n_sg_known"] for r in results)),
            "main_found": float(np.mean(mains)) if mains else None,
            "wf_mae_points": 100 * float(np.mean(errors)) if errors else None, "n_wf": len(errors),
            "wf_mae_exact_points": 100 * float(np.mean(exact_errors)) if exact_errors else None,
            "seconds_median": float(np.median([r["seconds"] for r in results]))}


def _fmt(r: dict) -> str:
    found = ", ".join(f"{p['formula']}{' (' + p['mineral'] + ')' if p.get('mineral') else ''} {p['spacegroup']}"
                      + (f" {100 * p['weight_fraction']:.0f}%" if p["weight_fraction"] is not None else "")
                      for p in r["found"])
    stated = ", ".join(f + (f" {100 * w:.0f}%" if w is not None else "") for f, w in r["stated"])
    return (f"{r['file']}\n    stated: {stated}\n    found:  {found}  "
            f"(Rwp {r['rwp']:.3f}, {r['n_correct']}/{r['n_stated']})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--wavelength", default="CuKa", help="line name or Angstrom (default CuKa: K-alpha1/2)")
    ap.add_argument("--max-phases", type=int, default=4, help="identify_phases' max_phases (default 4)")
    ap.add_argument("--glob", default="*", help="only files matching this (default all)")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    from synthxrd.match import ReferenceLibrary

    try:
        wavelength = float(args.wavelength)
    except ValueError:
        wavelength = args.wavelength
    library = ReferenceLibrary.load()
    manifest = read_manifest(args.folder)
    files = sorted(p for p in args.folder.glob(args.glob)
                   if p.suffix.lower() in PATTERN_SUFFIXES and _stated_entries(p, manifest) is not None)
    if not files:
        print(f"no composition-named patterns in {args.folder}", file=sys.stderr)
        return 1
    out = {}
    for chemistry in (True, False):
        results = []
        for path in files:
            r = score_pattern(path, library, wavelength=wavelength, chemistry=chemistry,
                             max_phases=args.max_phases, manifest=manifest)
            results.append(r)
            if not args.quiet:
                print(_fmt(r), flush=True)
        s = summary(results)
        key = "chemistry" if chemistry else "no_chemistry"
        out[key] = {"summary": s, "results": results}
        wf = "-" if s["wf_mae_points"] is None else f"{s['wf_mae_points']:.1f} ({s['n_wf']} phases)"
        wfx = "-" if s["wf_mae_exact_points"] is None else f"{s['wf_mae_exact_points']:.1f}"
        print(f"{key}: n {s['n']}  exact set {s['exact']:.2f}  precision {s['precision']:.2f}  "
              f"recall {s['recall']:.2f} (strict {s['recall_strict']:.2f}, "
              f"usual polymorph {s['sg_ok']:.2f} of those known)  "
              f"main phase found {s['main_found'] if s['main_found'] is None else round(s['main_found'], 2)}  "
              f"wf MAE {wf}, on exact sets {wfx}  median {s['seconds_median']:.1f} s/pattern", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
