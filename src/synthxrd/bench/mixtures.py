"""``synthxrd bench mixtures``: multi-phase identification on simulated mixtures of library structures.

Mixtures of 2 and 3 structures of the Materials Project library (their CIFs from the shared
``mp_experimental/structures.tar.xz``), each cell strained (random +-1 % per axis), weight fractions
drawn in 5-95 %, simulated with the physics of :mod:`synthxrd.mixture` (I ∝ w / (Z M V) |F|^2 m LP),
K-alpha1/K-alpha2 doublet, zero shift, pseudo-Voigt peaks, a slowly varying background and Poisson
noise; and single-phase patterns made the same way (the false-extra-phase rate). Each is identified
with :func:`synthxrd.mixture.identify_phases` (``phases="auto"``) against the shipped library and
scored as the field does: exact phase set, phase-level precision / recall / F1 (a found phase is right
when it is the drawn entry, a duplicate of it in the library or has its formula and space group: the
look-alikes grouped), and the weight-fraction MAE (percentage points) over the phases found correctly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["simulate_mixture", "run_bench", "summary_lines", "default_structures"]


def default_structures() -> Path:
    """The MP CIFs of the shared data, the source of the shipped ``mp`` library
    (``$SYNTHXRD_SHARED_DATA`` or ``../shared/data`` from here)."""
    import os

    root = Path(os.environ.get("SYNTHXRD_SHARED_DATA", Path.cwd().parent / "shared" / "data"))
    return root / "mp_experimental" / "structures.tar.xz"

CU_KA1, CU_KA2 = 1.54056, 1.54439


def simulate_mixture(crystals, fractions, *, rng: np.random.Generator, two_theta=(10.0, 90.0), step: float = 0.02,
                     kalpha2: bool = True, zero: float = 0.0, fwhm=(0.06, 0.03), eta: float = 0.4,
                     counts: float = 20000.0, background: float = 200.0) -> tuple[np.ndarray, np.ndarray]:
    """A powder pattern of a mixture: each crystal's reflections with intensity
    w_i / (Z_i M_i V_i) |F|^2 m LP (:mod:`synthxrd.mixture`), pseudo-Voigt peaks of FWHM
    w0 + w1 tan(theta), K-alpha2 at half the K-alpha1 intensity, a background
    ``background`` (1 + 0.25 cos(2theta / 30)) and Poisson noise; the strongest point at ``counts``."""
    from synthxrd.match.library import absolute_f2, cell_mass
    from synthxrd.refine import pseudo_voigt
    from synthxrd.simulate.physics import lorentz_polarization

    tt = np.arange(two_theta[0], two_theta[1] + step / 2, step)
    y = np.zeros_like(tt)
    lines = ((CU_KA1, 1.0), (CU_KA2, 0.5)) if kalpha2 else ((CU_KA1, 1.0),)
    for crystal, w in zip(crystals, fractions):
        d, f2 = absolute_f2(crystal, 0.8)
        k = w / (cell_mass(crystal) * abs(np.linalg.det(crystal.lattice)))
        for lam, ratio in lines:
            s = lam / (2 * d)
            ok = s < 1
            centre = np.degrees(2 * np.arcsin(s[ok])) + zero
            theta = np.radians(centre) / 2
            h = fwhm[0] + fwhm[1] * np.tan(theta)
            inten = ratio * k * f2[ok] * lorentz_polarization(theta)
            near = (centre > tt[0] - 2) & (centre < tt[-1] + 2)
            for c, hh, i in zip(centre[near], h[near], inten[near]):
                lo, hi = np.searchsorted(tt, [c - 15 * hh, c + 15 * hh])
                y[lo:hi] += i * pseudo_voigt(tt[lo:hi] - c, hh, eta)
    y = y / y.max() * counts + background * (1 + 0.25 * np.cos(tt / 30))
    return tt, rng.poisson(y).astype(float)


def _strained(crystal, rng):
    """The crystal with each cell length scaled by 1 + U(-1 %, 1 %), lengths equal to 0.1 % scaled alike
    (a cubic, tetragonal, hexagonal or rhombohedral cell keeps its symmetry, the angles are kept)."""
    from synthxrd.structure import Crystal

    lengths = np.linalg.norm(crystal.lattice, axis=1)
    f = 1 + rng.uniform(-0.01, 0.01, 3)
    for i in range(3):
        for j in range(i):
            if abs(lengths[i] / lengths[j] - 1) < 1e-3:
                f[i] = f[j]
                break
    return Crystal(np.diag(f) @ crystal.lattice, crystal.frac_coords, crystal.numbers, crystal.occupancies)


def _fractions(n: int, rng) -> np.ndarray:
    """n weight fractions, each in [0.05, 0.95], summing to 1."""
    while True:
        w = rng.dirichlet(np.ones(n))
        if np.all(w >= 0.05) and np.all(w <= 0.95):
            return w


def _elements(formula: str) -> list[str]:
    import re

    return re.findall(r"[A-Z][a-z]?", str(formula))


def _draw(library, n: int, rng, rows_ok) -> list[int]:
    """n library rows of distinct phases (and formulas) from ``rows_ok``."""
    rows = []
    while len(rows) < n:
        r = int(rng.choice(rows_ok))
        if all(library.groups[r] != library.groups[q] and library.formulas[r] != library.formulas[q] for q in rows):
            rows.append(r)
    return rows


def run_bench(*, library_path=None, structures=None, n_two: int = 20, n_three: int = 10, n_single: int = 20,
              seed: int = 0, max_atoms: int = 40, settings=None,
              progress: bool = True, chemistry: bool = False) -> dict[str, Any]:
    """Simulate, identify and score (module docstring). ``structures``: folder or tar archive of the
    library entries' CIFs (default the shared MP archive); entries with more than ``max_atoms`` sites in
    the cell are not drawn (simulation time)."""
    import tarfile

    from synthxrd.bench.common import machine_info
    from synthxrd.errors import DataError
    from synthxrd.match import ReferenceLibrary
    from synthxrd.mixture import identify_phases, library_mass_factors
    from synthxrd.structure import parse_cif

    structures = Path(structures or default_structures())
    if not structures.exists():
        raise DataError(f"bench mixtures: {structures} not found (the library entries' CIFs)")
    rng = np.random.default_rng(seed)
    library = ReferenceLibrary.load(library_path) if library_path else ReferenceLibrary.load()
    # candidates: MP entries (ids mp-...) with at most max_atoms atoms in the cell (the archive's index.csv)
    is_mp = np.char.startswith(library.ids.astype(str), "mp-")
    index = structures.parent / "index.csv"
    if index.is_file():
        import csv

        with open(index, newline="") as fh:
            small = {row["mp_id"] for row in csv.DictReader(fh) if int(row["n_atoms"]) <= max_atoms}
        is_mp &= np.isin(library.ids.astype(str), list(small))
    rows_ok = np.flatnonzero(is_mp)
    plan = [(2, n_two), (3, n_three), (1, n_single)]
    draws = [[(_draw(library, n, rng, rows_ok), _fractions(n, rng) if n > 1 else np.ones(1)) for _ in range(count)]
             for n, count in plan]
    wanted = {str(library.ids[r]) for kind in draws for rows, _ in kind for r in rows}
    texts = {}
    with tarfile.open(structures) as tar:
        for member in tar:
            stem = Path(member.name).stem
            if member.isfile() and stem in wanted:
                texts[stem] = tar.extractfile(member).read().decode(errors="replace")
    crystals = {}
    for key, text in texts.items():
        try:
            c = parse_cif(text).to_crystal()
        except Exception:  # noqa: BLE001 - an unreadable CIF is not drawn
            continue
        if len(c.numbers) <= max_atoms:
            crystals[key] = c
    results, found_all = [], []
    for (n, _), kind in zip(plan, draws):
        for rows, w in kind:
            ids = [str(library.ids[r]) for r in rows]
            if not all(i in crystals for i in ids):
                continue
            tt, y = simulate_mixture([_strained(crystals[i], rng) for i in ids], w, rng=rng,
                                     zero=float(rng.uniform(-0.05, 0.05)))
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                elements = None
                if chemistry:  # the elements of the drawn phases, as a user who knows the sample's would give
                    elements = sorted({e for i in ids for e in _elements(library.formulas[library.index(i)])})
                mix = identify_phases(tt, y, library, wavelength="CuKa", settings=settings, elements=elements,
                                      only_elements=chemistry)
                found, steps = mix.phases, mix.steps
            except DataError as exc:
                found, steps = [], []
                print(f"  {ids}: {exc}")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            # each step's chosen candidate: is it one of the drawn phases (look-alikes grouped)?
            for st in steps:
                if "chosen" in st:
                    r = library.index(st["chosen"])
                    st["true_phase"] = any(int(library.groups[r]) == int(library.groups[q])
                                           or (library.formulas[r] == library.formulas[q]
                                               and library.spacegroups[r] == library.spacegroups[q]) for q in rows)
            results.append((rows, w, found, seconds, cpu, steps))
            found_all += [p.index for p in found]
            if progress:
                print(f"  {len(results)}: drawn {ids} {np.round(w, 3).tolist()} -> found {[p.id for p in found]} "
                      f"({seconds:.1f} s, {cpu:.1f} s CPU)", flush=True)
    # Hill & Howard factors of the found entries: from their CIF, or that of an MP entry of their phase
    proxy = {}
    for r in set(found_all):
        members = [int(m) for m in np.flatnonzero(library.groups == library.groups[r])]
        mp = [m for m in [r, *members] if str(library.ids[m]).startswith("mp-")]
        if mp:
            proxy[str(library.ids[r])] = str(library.ids[mp[0]])
    factors = library_mass_factors(library, set(proxy.values()), structures)
    factor = lambda key: factors.get(proxy.get(key, ""))  # noqa: E731
    scored = [dict(_score(library, rows, w, found, seconds, factor), cpu_seconds=cpu, steps=steps)
              for rows, w, found, seconds, cpu, steps in results]
    return {"machine": machine_info(), "library": library.label, "n_structures": len(library),
            "structures": str(structures), "seed": seed, "chemistry": chemistry, "patterns": scored,
            "summary": {str(n): _summary([r for r in scored if r["n_true"] == n]) for n in (1, 2, 3)}}


def run_measured(*, library_path=None, patterns_path=None, max_patterns: int = 20, settings=None,
                 progress: bool = True) -> dict[str, Any]:
    """Single-phase measured patterns (rruff_dev's layout: two_theta, patterns, spacegroup at Cu K-alpha1):
    how often ``phases="auto"`` finds more than one phase, and the space-group top-1 of its main phase
    (largest intensity share) against the search's first match and the re-ranked search's."""
    from synthxrd.bench.match import default_patterns, labelled_patterns
    from synthxrd.errors import DataError
    from synthxrd.match import ReferenceLibrary
    from synthxrd.mixture import identify_phases

    patterns_path = patterns_path or default_patterns()
    tt, x, labels = labelled_patterns(patterns_path, max_patterns)
    library = ReferenceLibrary.load(library_path) if library_path else ReferenceLibrary.load()
    rows = []
    for k, (y, label) in enumerate(zip(x, labels)):
        first = library.search(tt, y, k=1)[0]
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            mix = identify_phases(tt, y, library, wavelength=1.5406, settings=settings)
            phases, steps = mix.phases, mix.steps
        except DataError as exc:
            phases, steps = [], []
            print(f"  pattern {k}: {exc}")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        main = max(phases, key=lambda p: p.intensity_share) if phases else None
        rows.append({"label": int(label), "search_sg": first[0].spacegroup if first else None,
                     "main_sg": main.spacegroup if main else None, "n_phases": len(phases),
                     "found": [p.id for p in phases], "seconds": seconds, "cpu_seconds": cpu, "steps": steps})
        if progress:
            print(f"  {k}: SG {int(label)}: search {rows[-1]['search_sg']}, mixture {rows[-1]['found']} "
                  f"({seconds:.1f} s)", flush=True)
    n = len(rows) or 1
    return {"patterns": str(patterns_path), "n": len(rows), "rows": rows,
            "extra_phase_rate": sum(r["n_phases"] > 1 for r in rows) / n,
            "search_top1": sum(r["search_sg"] == r["label"] for r in rows) / n,
            "main_phase_top1": sum(r["main_sg"] == r["label"] for r in rows) / n,
            "seconds_median": float(np.median([r["seconds"] for r in rows])) if rows else None,
            "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in rows])) if rows else None}


def _same_phase(library, found, r: int, lookalikes: bool) -> bool:
    """Whether a found phase is the drawn entry ``r``: its library phase (``groups``), its formula and
    space group, or one of its alternatives; with ``lookalikes`` also an isostructural entry (same space
    group and anonymous formula) whose cell lengths agree to 5 % (what the pattern cannot tell apart)."""
    from synthxrd.match.rerank import _types

    if int(library.groups[found.index]) == int(library.groups[r]) or str(library.ids[r]) in found.alternatives:
        return True
    if found.formula == str(library.formulas[r]) and found.spacegroup == int(library.spacegroups[r]):
        return True
    if not lookalikes:
        return False
    types = _types(library)
    a, b = np.sort(library.lattices[found.index, :3]), np.sort(library.lattices[r, :3])
    return bool(types[found.index] == types[r] and np.all(np.abs(a / b - 1) < 0.05))


def _score(library, rows, w, found, seconds, factor) -> dict[str, Any]:
    from synthxrd.mixture import weight_fractions

    out = {}
    for name, lookalikes in (("strict", False), ("grouped", True)):
        matched = {}
        for j, p in enumerate(found):
            for t, r in enumerate(rows):
                if t not in matched.values() and _same_phase(library, p, r, lookalikes):
                    matched[j] = t
                    break
        out[name] = matched
    matched = out["grouped"]
    # weight fractions of the found phases (Hill & Howard with the found entries' factors)
    errors = []
    if found and len(rows) > 1:
        q = [factor(p.id) for p in found]
        if all(v is not None for v in q):
            wf, _ = weight_fractions([p.scale for p in found], [p.scale_esd for p in found], q)
            errors = [abs(float(wf[j]) - float(w[t])) for j, t in matched.items()]
    return {"true": [str(library.ids[r]) for r in rows], "fractions": [round(float(v), 4) for v in w],
            "found": [p.id for p in found], "n_true": len(rows), "n_found": len(found), "n_correct": len(matched),
            "exact": len(matched) == len(rows) == len(found), "n_correct_strict": len(out["strict"]),
            "exact_strict": len(out["strict"]) == len(rows) == len(found), "wf_errors": errors, "seconds": seconds}


def _summary(rs: list[dict]) -> dict[str, Any]:
    if not rs:
        return {}
    tp = sum(r["n_correct"] for r in rs)
    found = sum(r["n_found"] for r in rs)
    true = sum(r["n_true"] for r in rs)
    p = tp / found if found else 0.0
    rec = tp / true if true else 0.0
    errors = [e for r in rs for e in r["wf_errors"]]
    exact_errors = [e for r in rs if r["exact_strict"] for e in r["wf_errors"]]
    tp_strict = sum(r["n_correct_strict"] for r in rs)
    return {"n": len(rs), "exact": float(np.mean([r["exact"] for r in rs])), "precision": p, "recall": rec,
            "exact_strict": float(np.mean([r["exact_strict"] for r in rs])),
            "precision_strict": tp_strict / found if found else 0.0, "recall_strict": tp_strict / true if true else 0.0,
            "f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
            "wf_mae_points": 100 * float(np.mean(errors)) if errors else None, "n_wf": len(errors),
            "wf_mae_points_exact_strict": 100 * float(np.mean(exact_errors)) if exact_errors else None,
            "n_wf_exact_strict": len(exact_errors),
            "extra_phase_rate": float(np.mean([r["n_found"] > r["n_true"] for r in rs])),
            "seconds_median": float(np.median([r["seconds"] for r in rs])),
            "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in rs]))}


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"multi-phase identification on simulated mixtures against {result['n_structures']} structures "
             f"({result['library']}), seed {result['seed']}"
             + (", chemistry filter: the drawn phases' elements" if result.get("chemistry") else ", no chemistry filter"),
             f"{'phases':<8}{'n':>4}{'exact set':>11}{'precision':>11}{'recall':>8}{'F1':>7}{'wf MAE':>9}"
             f"{'extra':>8}{'s/pattern':>11}{'CPU s':>7}"]
    for n, s in result["summary"].items():
        if not s:
            continue
        mae = "-" if s["wf_mae_points"] is None else f"{s['wf_mae_points']:.1f}"
        lines.append(f"{n:<8}{s['n']:>4}{s['exact']:>11.2f}{s['precision']:>11.2f}{s['recall']:>8.2f}"
                     f"{s['f1']:>7.2f}{mae:>9}{s['extra_phase_rate']:>8.2f}{s['seconds_median']:>11.2f}"
                     f"{s.get('cpu_seconds_median', float('nan')):>7.2f}")
    for n, s in result["summary"].items():
        if s:
            mae = s.get("wf_mae_points_exact_strict")
            lines.append(f"  strict ({n} phases: the drawn phase itself or same formula and space group): exact set "
                         f"{s['exact_strict']:.2f}, precision {s['precision_strict']:.2f}, recall {s['recall_strict']:.2f}"
                         + (f"; wf MAE {mae:.1f} points on the {s['n_wf_exact_strict']} phases of exactly right sets"
                            if mae is not None else ""))
    m = result.get("measured")
    if m:
        lines.append(f"measured single-phase patterns ({m['patterns']}, first {m['n']}): more than one phase found "
                     f"in {100 * m['extra_phase_rate']:.0f} %; space-group top-1 of the main phase "
                     f"{m['main_phase_top1']:.2f} (search's first match {m['search_top1']:.2f}); "
                     f"{m['seconds_median']:.2f} s/pattern ({m.get('cpu_seconds_median', float('nan')):.2f} s CPU)")
    lines.append("(look-alikes grouped: isostructural entries with cell lengths within 5 % count as the drawn phase; "
                 "wf MAE: percentage points over the correctly found phases; extra: share of patterns with "
                 "more phases found than drawn; s/pattern: median wall-clock, CPU s: median process CPU time)")
    return lines
