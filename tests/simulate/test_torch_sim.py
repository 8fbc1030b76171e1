"""The torch simulator (``synthxrd.simulate.torch_sim``) against the numba path ``simulate.patterns``.

* agreement within 1e-5 of each pattern's maximum (both normalised to 1), float64 and float32, on
  50 generated crystals (shipped statistics) and hand-built ones (NaCl, a triclinic cell with
  partially occupied shared sites, a ~200-atom cell), with one crystallite size per crystal;
* another grid and wavelength (tails of peaks just outside the grid), scalar and tensor sizes;
* shapes, dtypes, devices (CUDA only where available), empty crystals and batches;
* the lower-level path: padded reflections, half-space vs full sphere;
* the module runs with numpy + torch only (subprocess with ``sys.modules["numba"] = None``);
* a CPU throughput line (run with ``-s`` to see it).

torch runs single-threaded here (the fixture restores the setting): on a busy 2-core machine its
thread pool only adds contention, and the numba reference is single-threaded too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthxrd import simulate  # noqa: E402
from synthxrd.generate import Generator  # noqa: E402
from synthxrd.simulate import torch_sim  # noqa: E402
from synthxrd.structure import Crystal, CrystalBatch, scattering_table  # noqa: E402

TOL = 1e-5  # of each pattern's maximum
DTYPES = {"float64": torch.float64, "float32": torch.float32}
SRC = Path(torch_sim.__file__).resolve().parents[2]  # .../src


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cell(a, b, c, alpha=90.0, beta=90.0, gamma=90.0) -> np.ndarray:
    """Lattice matrix (rows a, b, c) from parameters, a along x, b in the xy plane."""
    al, be, ga = np.radians([alpha, beta, gamma])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array([[a, 0, 0], [b * np.cos(ga), b * np.sin(ga), 0], [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]])


def nacl() -> Crystal:
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    frac = np.concatenate([fcc, (fcc + [0.5, 0, 0]) % 1.0])
    return Crystal(cell(5.64, 5.64, 5.64), frac, np.array([11] * 4 + [17] * 4), np.ones(8))


def triclinic_partial() -> Crystal:
    rng = np.random.default_rng(7)
    frac = rng.uniform(0, 1, (7, 3))
    frac[1] = frac[0]  # Fe/Mn share a site
    frac[3] = frac[2]  # O/F share a site
    z = np.array([26, 25, 8, 9, 38, 1, 92])
    occ = np.array([0.6, 0.4, 0.75, 0.25, 0.5, 1.0, 0.33])
    return Crystal(cell(5.3, 6.9, 7.7, 81.0, 96.5, 112.0), frac, z, occ)


def large_cell() -> Crystal:
    rng = np.random.default_rng(11)
    n = 200
    return Crystal(cell(13.1, 14.7, 17.9, 90.0, 103.0, 90.0), rng.uniform(0, 1, (n, 3)),
                   rng.choice([1, 6, 7, 8, 14, 26, 56, 82], n), np.ones(n))


def hand_built() -> CrystalBatch:
    return CrystalBatch.from_crystals([nacl(), triclinic_partial(), large_cell()])


@pytest.fixture(scope="module")
def test_batch() -> CrystalBatch:
    generated = Generator().sample_batch(50, np.random.default_rng(0))
    return CrystalBatch.concatenate([CrystalBatch.from_crystals([generated[i] for i in range(len(generated))]),
                                     hand_built()])


@pytest.fixture(scope="module")
def sizes(test_batch) -> np.ndarray:
    return np.random.default_rng(1).uniform(20.0, 100.0, len(test_batch))


@pytest.fixture(scope="module")
def reference(test_batch, sizes) -> np.ndarray:
    return simulate.patterns(test_batch, crystallite_size_nm=sizes)


ACCURACY: dict[str, float] = {}


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_agrees_with_numba_path(test_batch, sizes, reference, dtype):
    out = torch_sim.patterns_torch(test_batch, crystallite_size_nm=sizes, dtype=DTYPES[dtype])
    assert out.shape == reference.shape and out.dtype == DTYPES[dtype] and out.device.type == "cpu"
    out = out.numpy()
    assert np.allclose(out.max(axis=1), 1.0)
    diff = np.abs(out - reference).max(axis=1)
    ACCURACY[dtype] = float(diff.max())
    print(f"\ntorch_sim {dtype}: max |torch - numba| over {len(diff)} patterns = {diff.max():.2e} of the maximum "
          f"(median {np.median(diff):.2e})")
    assert diff.max() < TOL, f"patterns {np.flatnonzero(diff >= TOL).tolist()} differ by up to {diff.max():.2e}"


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_other_grid_wavelength_and_tails(test_batch, dtype):
    """Mo K-alpha1 by name on 20-60 degrees: many peaks lie just outside the grid (tails count)."""
    batch = CrystalBatch.from_crystals([test_batch[i] for i in range(0, len(test_batch), 4)])
    grid = simulate.Grid(20.0, 60.0, 4001)
    ref = simulate.patterns(batch, crystallite_size_nm=25.0, grid=grid, wavelength="MoKa1")
    out = torch_sim.patterns_torch(batch, crystallite_size_nm=25.0, grid=grid, wavelength="MoKa1",
                                   dtype=DTYPES[dtype]).numpy()
    assert out.shape == (len(batch), 4001)
    assert np.abs(out - ref).max() < TOL
    # a bare (start, stop, n) tuple and the wavelength in Angstrom give the same
    again = torch_sim.patterns_torch(batch, crystallite_size_nm=25.0, grid=(20.0, 60.0, 4001),
                                     wavelength=simulate.resolve_wavelength("MoKa1"), dtype=DTYPES[dtype]).numpy()
    assert np.array_equal(out, again)


def test_sizes_scalar_array_tensor(test_batch):
    batch = CrystalBatch.from_crystals([test_batch[i] for i in range(5)])
    per = np.array([20.0, 35.0, 50.0, 75.0, 100.0])
    a = torch_sim.patterns_torch(batch, crystallite_size_nm=per, dtype=torch.float64)
    b = torch_sim.patterns_torch(batch, crystallite_size_nm=torch.tensor(per), dtype=torch.float64)
    assert torch.equal(a, b)
    one = torch_sim.patterns_torch(batch, crystallite_size_nm=40.0, dtype=torch.float64)
    assert np.abs(one.numpy() - simulate.patterns(batch, crystallite_size_nm=40.0)).max() < TOL
    # each row depends on its own size only (wider peaks for smaller crystallites)
    for i in range(5):
        row = torch_sim.patterns_torch(CrystalBatch.from_crystals([batch[i]]), crystallite_size_nm=per[i],
                                       dtype=torch.float64)
        # the extended |g| window depends on the batch's smallest size, so allow the 1e-5 drop rule
        assert torch.abs(row[0] - a[i]).max() < TOL
    with pytest.raises(ValueError):
        torch_sim.patterns_torch(batch, crystallite_size_nm=per[:3])
    with pytest.raises(ValueError):
        torch_sim.patterns_torch(batch, crystallite_size_nm=0.1)
    with pytest.raises(ValueError):
        torch_sim.patterns_torch(batch, crystallite_size_nm=None)


def test_inputs_and_chunking(test_batch, sizes, reference):
    """Tuple/dict of arrays and PaddedCrystals give the same; tiny chunks give the same."""
    arrays = (test_batch.lattices, test_batch.frac_coords, test_batch.numbers, test_batch.occupancies,
              test_batch.offsets)
    base = torch_sim.patterns_torch(test_batch, crystallite_size_nm=sizes, dtype=torch.float64)
    assert torch.equal(base, torch_sim.patterns_torch(arrays, crystallite_size_nm=sizes, dtype=torch.float64))
    names = ("lattices", "frac_coords", "numbers", "occupancies", "offsets")
    as_dict = dict(zip(names, arrays))
    assert torch.equal(base, torch_sim.patterns_torch(as_dict, crystallite_size_nm=sizes, dtype=torch.float64))
    padded = torch_sim.PaddedCrystals.from_batch(test_batch)
    assert torch.equal(base, torch_sim.patterns_torch(padded, crystallite_size_nm=sizes, dtype=torch.float64))
    small = torch_sim.patterns_torch(test_batch, crystallite_size_nm=sizes, dtype=torch.float64, max_reflections=3000)
    assert torch.abs(small - base).max() < 1e-12


def test_padded_reflections_half_space_or_full_sphere():
    batch = hand_built()
    crystals = torch_sim.PaddedCrystals.from_batch(batch)
    g_min, g_max = torch_sim.extended_g_range(None, 1.5406, 30.0)
    hkl, valid = torch_sim.enumerate_reflections(crystals.lattices, g_min, g_max)
    assert hkl.shape[0] == 3 and hkl.shape[2] == 3 and valid.shape == hkl.shape[:2]
    half = torch_sim.patterns_from_reflections(hkl, valid, crystals, 30.0, dtype=torch.float64)
    full = torch_sim.patterns_from_reflections(torch.cat([hkl, -hkl], 1), torch.cat([valid, valid], 1), crystals,
                                               30.0, dtype=torch.float64)
    ref = simulate.patterns(batch, crystallite_size_nm=30.0)
    assert np.abs(half.numpy() - ref).max() < TOL
    assert torch.abs(full - half).max() < 1e-12
    # the enumerated set equals the numba kernel's (same half-space, same window)
    from synthxrd.simulate import _kernels
    _, a, b = scattering_table()
    for i in range(len(batch)):
        c = batch[i]
        ref_hkl, _, _ = _kernels.reflections(c.lattice, c.frac_coords, c.numbers, c.occupancies, a, b,
                                             np.zeros(len(a)), 1.5406, g_min, g_max)
        got = hkl[i][valid[i]].numpy()
        assert sorted(map(tuple, got)) == sorted(map(tuple, ref_hkl))


def test_empty_rows_and_batches():
    tiny = Crystal(np.eye(3) * 0.9, np.zeros((1, 3)), np.array([29]), np.ones(1))  # first reflection beyond 90 deg
    batch = CrystalBatch.from_crystals([nacl(), tiny])
    with pytest.raises(ValueError, match="no reflection"):
        torch_sim.patterns_torch(batch, crystallite_size_nm=50.0)
    out = torch_sim.patterns_torch(batch, crystallite_size_nm=50.0, allow_empty=True)
    assert out.shape == (2, 8501) and float(out[0].max()) == 1.0 and float(out[1].abs().max()) == 0.0
    empty = CrystalBatch.from_crystals([])
    assert torch_sim.patterns_torch(empty, crystallite_size_nm=50.0).shape == (0, 8501)


def test_shares_the_numba_path_settings():
    from synthxrd.simulate import common

    assert torch_sim.DEFAULT_GRID == (simulate.Grid().start, simulate.Grid().stop, simulate.Grid().n)
    for size in (20.0, 57.0):
        assert torch_sim.extended_g_range((5.0, 90.0, 8501), 1.5406, size) == \
            common.extended_g_range(simulate.Grid(), 1.5406, size)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_cuda(test_batch, sizes, reference, dtype):
    out = torch_sim.patterns_torch(test_batch, crystallite_size_nm=torch.tensor(sizes), device="cuda",
                                   dtype=DTYPES[dtype])
    assert out.device.type == "cuda" and out.dtype == DTYPES[dtype]
    assert np.abs(out.cpu().numpy() - reference).max() < TOL


_NO_NUMBA = """
import sys
sys.modules["numba"] = None  # any 'import numba' now raises ImportError
{setup}
import numpy as np, torch
from synthxrd.simulate import torch_sim
lattices = np.eye(3)[None] * 5.64
fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
frac = np.concatenate([fcc, (fcc + [0.5, 0, 0]) % 1.0])
out = torch_sim.patterns_torch((lattices, frac, np.array([11] * 4 + [17] * 4), np.ones(8), np.array([0, 8])),
                               crystallite_size_nm=50.0, dtype=torch.float64)
loaded = [m for m in ("numba", "synthxrd.simulate._kernels", "synthxrd.simulate.pattern",
                      "pymatgen", "spglib", "ray") if sys.modules.get(m) is not None]
np.save({path!r}, out.numpy())
print("LOADED", loaded)
"""

# Bypass the package __init__ (which imports the numba path) to check torch_sim itself.
_STUB_PACKAGE = """
import types, synthxrd
pkg = types.ModuleType("synthxrd.simulate")
pkg.__path__ = [{path!r}]
sys.modules["synthxrd.simulate"] = pkg
"""


def _run_without_numba(setup: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "nacl.npy"
    code = _NO_NUMBA.format(setup=setup, path=str(out))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120), out


def test_module_runs_without_numba(tmp_path):
    """torch_sim needs numpy + torch only (package __init__ bypassed)."""
    setup = _STUB_PACKAGE.format(path=str(SRC / "synthxrd" / "simulate"))
    proc, out = _run_without_numba(setup, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout, proc.stdout
    ref = simulate.patterns(CrystalBatch.from_crystals([nacl()]), crystallite_size_nm=50.0)
    assert np.abs(np.load(out) - ref).max() < TOL


def test_import_without_numba(tmp_path):
    """``import synthxrd.simulate.torch_sim`` where numba is missing (the GPU machine)."""
    proc, out = _run_without_numba("", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "'numba'" not in proc.stdout


def test_cpu_throughput(record_property):
    """Patterns/s for a batch of 256 generated crystals on this CPU (one thread), vs the numba path."""
    batch = Generator().sample_batch(256, np.random.default_rng(5))
    sizes = np.random.default_rng(6).uniform(20.0, 100.0, len(batch))
    simulate.patterns(CrystalBatch.from_crystals([batch[0]]), crystallite_size_nm=50.0)  # compiled already; warm caches
    rates = {}
    t = time.perf_counter()
    simulate.patterns(batch, crystallite_size_nm=sizes)
    rates["numba"] = len(batch) / (time.perf_counter() - t)
    for name, dtype in DTYPES.items():
        torch_sim.patterns_torch(CrystalBatch.from_crystals([batch[0]]), crystallite_size_nm=50.0, dtype=dtype)
        t = time.perf_counter()
        torch_sim.patterns_torch(batch, crystallite_size_nm=sizes, dtype=dtype)
        rates[f"torch {name}"] = len(batch) / (time.perf_counter() - t)
    line = ", ".join(f"{k} {v:.0f}/s" for k, v in rates.items())
    print(f"\nCPU throughput, batch 256, 1 thread: {line}")
    record_property("cpu_patterns_per_s", json.dumps({k: round(v, 1) for k, v in rates.items()}))
    assert all(math.isfinite(v) and v > 0 for v in rates.values())
