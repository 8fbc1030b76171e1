"""``synthxrd bench refine``: search-match alone and with refinement (re-ranking), same run, one core.

Both rank the space groups of labelled patterns (first appearance in the hit list, as
``synthxrd bench match``): the search's best 50, and the same list with its best candidates refined
and re-ranked (``search(..., refine=True)``; the refined matches first, then the rest of the 50). The
search alone is timed in batches (as a user would search many patterns), the refinement one pattern at
a time. With lmfit installed, one fit of a simulated pattern is also timed against lmfit's
``least_squares`` on the same model (the reference optimiser layer; docs/refine.md).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

__all__ = ["run_bench", "summary_lines"]


def run_bench(*, library_path=None, patterns_path=None, max_patterns: int = 0, settings=None) -> dict[str, Any]:
    """Time and score the search with and without refinement on labelled patterns, one pinned core.

    ``patterns_path``: an ``.npz`` with ``two_theta`` (M,), ``patterns`` (N, M) and ``spacegroup`` (N,)
    at Cu K-alpha1 (rruff_dev's layout). ``settings``: :class:`synthxrd.match.rerank.RerankSettings`.
    """
    from synthxrd.bench.common import machine_info, pin_single_core
    from synthxrd.bench.match import labelled_patterns, ranking_metrics, spacegroup_ranking
    from synthxrd.match import ReferenceLibrary
    from synthxrd.match.rerank import RerankSettings

    settings = settings or RerankSettings()
    pinned = pin_single_core()
    tt, x, labels = labelled_patterns(patterns_path, max_patterns)
    library = ReferenceLibrary.load(library_path)
    library.search(tt, x[:1], k=1, refine=settings)  # renders the library and its structure types (cached)
    t0 = time.perf_counter()
    alone = library.search(tt, x, k=50)
    search_s = time.perf_counter() - t0
    refined, times, cpu, converged = [], [], [], []
    for row in x:
        t0, c0 = time.perf_counter(), time.process_time()
        ms = library.search(tt, row, k=50, refine=settings)[0]
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        refined.append(ms)
        converged += [m.converged for m in ms if m.rwp is not None]
    result: dict[str, Any] = {
        "machine": machine_info(), "pinned": pinned, "patterns": str(patterns_path), "n_patterns": len(x),
        "library": library.label, "n_structures": len(library), "settings": settings.__dict__,
        "search_ms_per_pattern": 1e3 * search_s / len(x),
        "refine_ms_per_pattern_median": 1e3 * float(np.median(times)),
        "refine_ms_per_pattern_mean": 1e3 * float(np.mean(times)),
        # the process's CPU time: on a machine shared with other jobs the wall time also counts the waits
        "refine_cpu_ms_per_pattern_median": 1e3 * float(np.median(cpu)),
        "converged_fraction": float(np.mean(converged)) if converged else None,
        "search": ranking_metrics([spacegroup_ranking(m.spacegroup for m in ms) for ms in alone], labels),
        "refined": ranking_metrics([spacegroup_ranking(m.spacegroup for m in ms) for ms in refined], labels),
        "first_hit": {
            "search": ranking_metrics([[m.spacegroup for m in ms] for ms in alone], labels),
            "refined": ranking_metrics([[m.spacegroup for m in ms] for ms in refined], labels)},
    }
    result["one_fit"] = _one_fit()
    return result


def _one_fit() -> dict[str, Any]:
    """One refinement of a simulated rutile pattern (c x 1.03, zero shift, K-alpha2, Poisson noise),
    and the same model fitted by lmfit where it is installed."""
    from importlib.resources import files

    from synthxrd import refine as R
    from synthxrd.io.wavelength import anode_lines
    from synthxrd.match.library import structure_reflections
    from synthxrd.simulate.physics import lorentz_polarization
    from synthxrd.structure import Crystal, to_crystal

    rutile = to_crystal(str(files("synthxrd") / "resources" / "examples" / "TiO2_rutile.cif"))
    truth = Crystal(rutile.lattice @ np.diag([0.995, 0.995, 1.03]), rutile.frac_coords, rutile.numbers,
                    rutile.occupancies)
    d, f2, _ = structure_reflections(truth, d_min=0.8, min_intensity=1e-4, max_peaks=None)
    tt = np.arange(10.0, 110.0, 0.02)
    y = np.zeros_like(tt)
    ka1, ka2, ratio2, _ = anode_lines("Cu")  # the wavelength table: 1.54056, 1.54439, 0.5
    for lam, ratio in ((ka1, 1.0), (ka2, ratio2)):
        s = lam / (2 * d)
        ok = s < 1
        centre = np.degrees(2 * np.arcsin(s[ok])) + 0.03
        theta = np.radians(centre) / 2
        for c, h, i in zip(centre, 0.06 + 0.03 * np.tan(theta), ratio * f2[ok] * lorentz_polarization(theta)):
            y += i * R.pseudo_voigt(tt - c, h, 0.4)
    y = np.random.default_rng(0).poisson(y / y.max() * 20000 + 200).astype(float)
    phase = R.phase_from_crystal(rutile, name="rutile", d_min=0.8)
    R.refine(tt, y, phase, wavelength="CuKa")  # compile and warm
    t0 = time.perf_counter()
    res = R.refine(tt, y, phase, wavelength="CuKa", prescan=True)
    out: dict[str, Any] = {"synthxrd_ms": 1e3 * (time.perf_counter() - t0),
                           "synthxrd_cell": res.phases[0].cell[:3].tolist(), "synthxrd_rwp": res.rwp,
                           "truth_cell": np.sqrt(np.sum(truth.lattice ** 2, axis=1)).tolist()}
    try:
        import lmfit
    except ImportError:
        out["lmfit"] = "not installed"
        return out
    w = 1.0 / (R._noise_scale(y, 1e-3 * y.max()) * (np.maximum(y, 0) + 1e-3 * y.max()))
    bg = R._chebyshev(2 * (tt - tt[0]) / (tt[-1] - tt[0]) - 1, 6)
    lines = R.kalpha_lines("CuKa")
    start = R._prescan(tt, y, w, lines, [phase], bg, [False], (0.1, 0.02), 0.5, R.DEFAULT_CELL_BOUND)[0]
    layout = {"zero": slice(0, 1), "fwhm": slice(1, 3), "eta": slice(3, 4), "cell0": slice(4, 4 + phase.n_cell)}
    setup = R._Setup(tt, y, np.sqrt(w), lines, start, bg, [False], [None], layout)
    params = lmfit.Parameters()
    for name, value, lo, hi in (("zero", 0, -0.5, 0.5), ("w0", 0.1, 0.005, 1.5), ("w1", 0.02, 0, 1.5),
                                 ("eta", 0.5, 0, 1)):
        params.add(name, value, min=lo, max=hi)
    for j in range(phase.n_cell):
        params.add(f"p{j}", 0.0, min=-0.2, max=0.2)
    names = ["zero", "w0", "w1", "eta", *(f"p{j}" for j in range(phase.n_cell))]
    t0 = time.perf_counter()
    fit = lmfit.minimize(lambda p: R._residual(setup, np.array([p[n].value for n in names])), params,
                         method="least_squares")
    out["lmfit_ms"] = 1e3 * (time.perf_counter() - t0)
    p = np.array([fit.params[n].value for n in names])
    out["lmfit_cell"] = start[0].cell(p[4:])[:3].tolist()
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The benchmark as a short table."""
    lines = [f"refinement on {result['n_patterns']} labelled patterns ({result['patterns']}) against "
             f"{result['n_structures']} structures ({result['library']}), one pinned core",
             f"{'method':<26}{'ms/pattern':>12}{'top-1':>8}{'top-5':>8}{'crystal system':>16}"]
    for name, ms, m in (("search (batches)", result["search_ms_per_pattern"], result["search"]),
                        ("search + refinement", result["refine_ms_per_pattern_median"], result["refined"])):
        lines.append(f"{name:<26}{ms:>12.1f}{m['top1']:>8.3f}{m['top5']:>8.3f}{m['crystal_system']:>16.3f}")
    cpu = result.get("refine_cpu_ms_per_pattern_median")
    lines.append("(top-5 over distinct space groups; search + refinement one pattern at a time, median wall time"
                 + (f", CPU time {cpu:.1f} ms" if cpu is not None else "")
                 + f"; {100 * (result['converged_fraction'] or 0):.0f} % of the fits converged)")
    one = result["one_fit"]
    line = f"one fit (rutile, 5000 points): synthxrd.refine {one['synthxrd_ms']:.0f} ms (with its pre-scan)"
    if "lmfit_ms" in one:
        diff = max(abs(a / b - 1) for a, b in zip(one["lmfit_cell"], one["synthxrd_cell"]))
        line += f"; lmfit least_squares {one['lmfit_ms']:.0f} ms on the same model, cells agree to {diff:.1e}"
    else:
        line += "; lmfit not installed"
    lines.append(line)
    return lines
