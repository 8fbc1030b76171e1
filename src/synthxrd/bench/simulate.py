"""``synthxrd bench simulate``: pymatgen's ``XRDCalculator.get_pattern`` against synthxrd's
``peaks``, ``pattern`` and batched ``patterns``, in the same run, on one core.

Cases: NaCl, Si, SrTiO3, Y3Al5O12 garnet (160 atoms), a random 80-atom P2_1/c cell, a random
496-atom Pbca cell, and a workload of random crystals (4-60 atoms in the conventional cell, random
space group and Wyckoff positions from :mod:`synthxrd.wyckoff`, fixed seed).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from synthxrd.bench.common import Row, format_table, machine_info, median_ms, pin_single_core, rows_to_dicts

__all__ = ["named_structures", "random_structures", "run_benchmark"]

_ELEMENTS = ("O", "Si", "Al", "Fe", "Na", "Ca", "Mg", "K", "Ti", "Ba", "Cu", "Zn", "S", "Cl", "N", "Li", "Mn", "P", "La", "Pb")


def _random_cell(system: str, volume: float, rng: np.random.Generator):
    """Lattice parameters of the given crystal system with the given volume (Angstrom^3)."""
    from pymatgen.core import Lattice

    ratios = rng.uniform(0.7, 1.4, 3)
    alpha = beta = gamma = 90.0
    if system == "triclinic":
        alpha, beta, gamma = rng.uniform(75, 105, 3)
    elif system == "monoclinic":
        beta = rng.uniform(92, 118)
    elif system == "tetragonal":
        ratios[1] = ratios[0]
    elif system in ("trigonal", "hexagonal"):
        ratios[1] = ratios[0]
        gamma = 120.0
    elif system == "cubic":
        ratios[:] = 1.0
    unit = Lattice.from_parameters(*ratios, alpha, beta, gamma)
    scale = (volume / unit.volume) ** (1 / 3)
    return Lattice.from_parameters(*(ratios * scale), alpha, beta, gamma)


def random_structures(n: int, rng: np.random.Generator, n_atoms: tuple[int, int] = (4, 60)):
    """``n`` random pymatgen structures with n_atoms[0]..n_atoms[1] atoms in the conventional cell.

    Space group uniform over 1-230, Wyckoff positions drawn at random (fixed positions at most once),
    volume 12-25 Angstrom^3 per atom. A stand-in workload for the simulator benchmark only.
    """
    from pymatgen.core import Structure

    from synthxrd import wyckoff

    out = []
    while len(out) < n:
        sg = wyckoff.space_group(int(rng.integers(1, 231)))
        target = int(rng.integers(n_atoms[0], n_atoms[1] + 1))
        species, coords, used = [], [], set()
        for _ in range(50):
            if len(coords) >= target:
                break
            wp = sg.wyckoff_positions[int(rng.integers(len(sg.wyckoff_positions)))]
            if (wp.dof == 0 and wp.letter in used) or len(coords) + wp.multiplicity > n_atoms[1]:
                continue
            used.add(wp.letter)
            orbit = wyckoff.orbit(sg, wyckoff.project(wp, rng.random(3)))
            element = str(rng.choice(_ELEMENTS))
            species += [element] * len(orbit)
            coords += list(orbit)
        if not n_atoms[0] <= len(coords) <= n_atoms[1]:
            continue
        lattice = _random_cell(sg.crystal_system, len(coords) * rng.uniform(12, 25), rng)
        out.append(Structure(lattice, species, coords))
    return out


def named_structures(rng: np.random.Generator) -> dict:
    """The named cases of the benchmark as pymatgen structures."""
    from pymatgen.core import Lattice, Structure

    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    cases = {
        "NaCl": Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "Si": Structure(Lattice.cubic(5.431), ["Si"] * 8, np.vstack([fcc, fcc + 0.25])),
        "SrTiO3": Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
        "Y3Al5O12 garnet": Structure.from_spacegroup(
            "Ia-3d", Lattice.cubic(12.0), ["Y", "Al", "Al", "O"],
            [[0.125, 0, 0.25], [0, 0, 0], [0.375, 0, 0.25], [-0.0314, 0.0512, 0.1496]]),
    }
    mono = Lattice.monoclinic(10.2, 11.3, 12.5, 105.0)
    cases["P2_1/c random"] = Structure.from_spacegroup(
        "P2_1/c", mono, list(rng.choice(_ELEMENTS, 20)), rng.random((20, 3)))
    ortho = Lattice.orthorhombic(15.0, 16.0, 17.0)
    cases["Pbca random"] = Structure.from_spacegroup(
        "Pbca", ortho, list(rng.choice(_ELEMENTS, 62)), rng.random((62, 3)))
    return cases


def run_benchmark(*, n_random: int = 200, seed: int = 0, batch_copies: int = 20, progress: bool = True) -> dict:
    """Time pymatgen and synthxrd on the named cases and the random workload; return the results."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from tqdm import tqdm

    from synthxrd import simulate
    from synthxrd.structure import CrystalBatch, to_crystal

    pinning = pin_single_core()
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(seed)
    calc = XRDCalculator(simulate.DEFAULT_WAVELENGTH)
    named = named_structures(rng)
    randoms = random_structures(n_random, rng)

    def reference(s):
        return calc.get_pattern(s, two_theta_range=simulate.DEFAULT_TWO_THETA_RANGE)

    sizes_rng = np.random.default_rng(seed + 1)
    t0 = time.perf_counter()
    simulate.pattern(named["NaCl"], rng=sizes_rng)  # compile (or load the cache) outside timing
    compile_s = time.perf_counter() - t0

    rows = []
    for name, s in tqdm(named.items(), desc="named cases", disable=not progress):
        row = Row(name, f"{len(s)} at", median_ms(lambda: reference(s), repeats=3, min_time=0.5))
        row.ms["peaks"] = median_ms(lambda: simulate.peaks(s))
        row.ms["pattern"] = median_ms(lambda: simulate.pattern(s, rng=sizes_rng))
        batch = CrystalBatch.from_crystals([s] * batch_copies)
        row.ms["batched"] = median_ms(lambda: simulate.patterns(batch, rng=sizes_rng), repeats=3) / batch_copies
        rows.append(row)

    ref_ms, peaks_ms, pattern_ms = [], [], []
    for s in tqdm(randoms, desc="random crystals", disable=not progress):
        ref_ms.append(median_ms(lambda: reference(s), repeats=3, min_time=0.0))
        peaks_ms.append(median_ms(lambda: simulate.peaks(s), repeats=3, min_time=0.0))
        pattern_ms.append(median_ms(lambda: simulate.pattern(s, rng=sizes_rng), repeats=3, min_time=0.0))
    batch = CrystalBatch.from_crystals([to_crystal(s) for s in randoms])
    batched_ms = median_ms(lambda: simulate.patterns(batch, rng=sizes_rng), repeats=3) / len(randoms)
    n_at = [len(s) for s in randoms]
    workload = Row(f"random x{len(randoms)} (median)", f"{int(np.median(n_at))} at", float(np.median(ref_ms)))
    workload.ms = {"peaks": float(np.median(peaks_ms)), "pattern": float(np.median(pattern_ms))}
    # a batch has no per-crystal times: compare totals (= means) over the same crystals
    totals = Row(f"random x{len(randoms)} (mean)", f"{np.mean(n_at):.0f} at", float(np.mean(ref_ms)))
    totals.ms = {"peaks": float(np.mean(peaks_ms)), "pattern": float(np.mean(pattern_ms)), "batched": batched_ms}
    ratio_pattern = np.array(ref_ms) / np.array(pattern_ms)
    small = np.array(n_at) <= 60
    return {
        "benchmark": "simulate",
        "reference": "pymatgen XRDCalculator.get_pattern",
        "seed": seed,
        "pinning": pinning,
        "machine": machine_info(),
        "compile_or_cache_load_s": compile_s,
        "named": rows_to_dicts(rows),
        "random": rows_to_dicts([workload, totals]),
        "random_details": {
            "n": len(randoms),
            "atoms_min_median_max": [int(min(n_at)), int(np.median(n_at)), int(max(n_at))],
            "pattern_ms_p99": float(np.percentile(pattern_ms, 99)),
            "pattern_ms_median_le60_atoms": float(np.median(np.array(pattern_ms)[small])),
            "pattern_ratio_per_structure_median": float(np.median(ratio_pattern)),
            "pattern_ratio_per_structure_min": float(np.min(ratio_pattern)),
            "batched_ms_per_pattern": batched_ms,
            "batched_ratio_total_time": float(np.sum(ref_ms)) / (batched_ms * len(randoms)),
        },
        "table": format_table(rows + [workload, totals], "pymatgen"),
    }


def summary_lines(result: dict) -> list[str]:
    """Human-readable lines for the CLI."""
    d = result["random_details"]
    return [
        result["table"],
        "",
        f"random workload: {d['n']} crystals, atoms min/median/max {d['atoms_min_median_max']}, "
        f"pattern p99 {d['pattern_ms_p99']:.3f} ms, median ratio per crystal {d['pattern_ratio_per_structure_median']:.1f}x "
        f"(min {d['pattern_ratio_per_structure_min']:.1f}x)",
        f"numba compile/cache load before timing: {result['compile_or_cache_load_s']:.2f} s; pinned: {result['pinning']}",
        "pymatgen ms = XRDCalculator.get_pattern (peaks only); x = pymatgen ms / synthxrd ms; "
        "'batched' = patterns() time per pattern (a batch has no per-crystal times, so the random "
        "workload compares it in the (mean) row: total pymatgen time / total batched time).",
    ]
