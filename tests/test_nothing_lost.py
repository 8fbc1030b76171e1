"""Issue 25: nothing a user has is lost, and nothing is claimed on nothing (no peaks, bad numbers, full disks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthxrd.cli import main

MEASURED = Path(__file__).resolve().parents[1] / "src" / "synthxrd" / "resources" / "measured" / "Al2O3.csv"
NACL = Path(__file__).parent / "data" / "mini_collection" / "nacl.cif"


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"synthxrd {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("window", [("nan", "90"), ("5", "nan"), ("5", "inf"), ("inf", "90")])
def test_a_range_that_is_not_finite_is_one_line(window, tmp_path, capsys):
    assert main(["simulate", "--examples", "--range", *window, "--out", str(tmp_path / "s")]) == 2
    assert "--range: need 0 < MIN < MAX < 180" in _one_line_error(capsys, "simulate")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command, message", [
    (["predict", "--elements=", "--no-library"], "--no-library excludes"),
    (["predict", "--elements="], "--elements: no element given"),
    (["predict", "--elements", "Xx"], "--elements: unknown element 'Xx'"),
    (["predict", "--only-elements"], "--only-elements needs --elements"),
    (["library", "search", "-k", "0"], "-k: expected an integer >= 1, got 0"),
    (["library", "search", "--elements="], "--elements: no element given"),
    (["library", "search", "--elements", "Xx"], "--elements: unknown element 'Xx'"),
    (["library", "search", "--only-elements"], "--only-elements needs --elements"),
])
def test_bad_search_options_are_usage_errors_before_any_file_is_read(command, message, tmp_path, capsys):
    missing = tmp_path / "not_read.xy"  # would fail on its own if it were read
    assert main([*command, str(missing)]) == 2
    line = _one_line_error(capsys, command[0])
    assert message in line and str(missing) not in line


def test_a_file_name_that_is_not_utf8_can_be_plotted(tmp_path, capsys):
    import os

    folder = os.fsencode(tmp_path)
    name = os.path.join(folder, b"sample\xff.csv")
    with open(name, "wb") as fh:
        fh.write(MEASURED.read_bytes())
    shown = os.fsdecode(name)
    assert main(["predict", shown, "--no-library", "--plot", str(tmp_path / "plots")]) == 0
    assert [p.suffix for p in (tmp_path / "plots").iterdir()] == [".png"]
    assert "sample\ufffd.csv" in capsys.readouterr().out


@pytest.mark.parametrize("settings, message", [
    (["lr_gamma=-1", "lr_step_size=1"], "invalid lr_gamma = -1.0"),
    (["lr_gamma=0"], "invalid lr_gamma = 0.0"),
    (["lr=nan"], "invalid lr = nan: must be a finite number"),
    (["max_hours=inf"], "invalid max_hours = inf: must be a finite number"),
    (["weight_decay=-inf"], "invalid weight_decay = -inf: must be a finite number"),
    (["workers=-2"], "invalid workers = -2"),
    (["min_count=0"], "invalid min_count = 0"),
])
def test_train_numbers_are_checked_for_range_and_finiteness_before_any_work(settings, message, tmp_path, capsys):
    args = [a for s in settings for a in ("--set", s)]
    assert main(["train", "--out", str(tmp_path / "t"), "--max-steps", "2", *args]) == 2
    assert message in _one_line_error(capsys, "train")
    assert not (tmp_path / "t").exists()


def test_torch_seed_takes_every_run_seed():
    pytest.importorskip("torch")
    from synthxrd.train import torch_seed

    assert torch_seed(5, 1) == 5001  # unchanged where it fitted before
    for seed in (2**63 - 1, 2**63, 2**64, 10**30):
        assert 0 <= torch_seed(seed, 3) < 2**63


def test_train_accepts_a_seed_of_2_to_the_63(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "t"
    seed = str(2**63)
    assert main(["train", "--out", str(out), "--seed", seed, "--max-steps", "1", "--batch-size", "2",
                 "--workers", "0", "--model", "park_small", "--no-progress", "--set", "val_sets=[]",
                 "--set", "calibrate=false"]) == 0
    assert f"seed = {seed}" in (out / "config.toml").read_text()


def test_resuming_a_finished_run_keeps_its_summary(tmp_path):
    pytest.importorskip("torch")
    import json

    from synthxrd.train import TrainConfig, train

    config = TrainConfig(out=str(tmp_path / "run"), model="park_small", batch_size=4, workers=0, max_steps=2,
                         val_every=2, n_val_random=8, val_sets=("random",), calibrate=False, seed=3)
    first = train(config, progress=False)
    assert first["validation"]["random"]
    again = train(config, resume=True, progress=False)  # nothing left to do
    kept = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert again["step"] == kept["step"] == 2
    assert kept["validation"] == json.loads(json.dumps(first["validation"])) and kept["history"]


@pytest.mark.parametrize("command", [["stats"], ["library", "build"], ["split"]])
def test_an_output_is_never_a_file_inside_an_input_folder(command, tmp_path, capsys):
    folder = tmp_path / "cifs"
    folder.mkdir()
    cif = folder / "NaCl.cif"
    cif.write_text(NACL.read_text())
    for out in (cif, folder / "sub" / ".." / "NaCl.cif"):
        assert main([*command, str(folder), "--out", str(out), "--overwrite"]) == 2
        assert f"{out} is a file inside {folder}, an input folder" in _one_line_error(capsys, command[0])
    assert cif.read_text() == NACL.read_text() and [p.name for p in folder.iterdir()] == ["NaCl.cif"]


def test_export_never_writes_over_the_files_of_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    kept = {name: f"{name} of the run".encode() for name in ("config.toml", "run.json", "best.pt", "checkpoint.pt",
                                                            "summary.json", "snapshots/step_00000010.pt")}
    for name, data in kept.items():
        (run / name).write_bytes(data)
    for source, out in ((run, run / "best.pt"), (run / "best.pt", run / "checkpoint.pt"),
                        (run / "snapshots" / "step_00000010.pt", run / "summary.json")):
        assert main(["export", str(source), str(out), "--overwrite"]) == 2
        line = _one_line_error(capsys, "export")
        assert f"{out} is " in line and "an input" in line, line
    assert {name: (run / name).read_bytes() for name in kept} == kept


HOLD_LOCK = "import sys, time; from synthxrd.files import lock_folder\nwith lock_folder(sys.argv[1]):\n" \
            "    print('locked', flush=True); time.sleep(120)"


def _holder(folder):
    """A process that owns ``folder`` (as a running `synthxrd train` does) until it is killed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_folder_is_owned_by_one_process_and_a_dead_owner_s_lock_is_taken_over(tmp_path):
    import os

    from synthxrd.errors import ConfigError
    from synthxrd.files import LOCK_FILE, lock_folder

    folder = tmp_path / "run"
    with lock_folder(folder) as path:
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(ConfigError, match=f"{folder} is in use by process {os.getpid()}"):
            with lock_folder(folder):
                pass
    assert not folder.exists()  # made for the lock and left empty: gone again
    holder = _holder(folder)
    try:
        with pytest.raises(ConfigError, match=f"in use by process {holder.pid}"):
            with lock_folder(folder):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (folder / LOCK_FILE).read_text().strip() == str(holder.pid)  # killed: its lock file stays, stale
    with lock_folder(folder) as path:
        assert path.read_text().strip() == str(os.getpid())
    assert list(folder.iterdir()) == []


def test_a_run_folder_in_use_refuses_train_resume_and_validation_build(tmp_path, capsys):
    pytest.importorskip("torch")
    from synthxrd.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(out=str(run), model="park_small", batch_size=2, workers=0, max_steps=1, val_sets=(),
                      calibrate=False), progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    cache = tmp_path / "validation"
    holders = [_holder(run), _holder(tmp_path / "new"), _holder(cache)]
    try:
        for command, pid in ((["train", "--resume", str(run)], holders[0].pid),
                             (["train", "--out", str(tmp_path / "new"), "--seed", "5"], holders[1].pid),
                             (["validation", "build", "--out", str(cache), "--source", str(NACL.parent),
                               "--n-random", "0", "--sets", "match"], holders[2].pid)):
            assert main(command) == 2
            assert f"is in use by process {pid}" in _one_line_error(capsys, command[0])
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".synthxrd.lock"} == before
    assert [p.name for p in (tmp_path / "new").iterdir()] == [".synthxrd.lock"]


def test_simulate_overwrite_leaves_exactly_what_run_json_lists(tmp_path):
    import json

    cifs = tmp_path / "cifs"
    cifs.mkdir()
    for name in ("nacl.cif", "cscl.cif"):
        (cifs / name).write_text((NACL.parent / name).read_text())
    out = tmp_path / "out"
    assert main(["simulate", str(cifs), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["simulate", str(cifs / "nacl.cif"), "--out", str(out), "--overwrite"]) == 0
    record = json.loads((out / "run.json").read_text())
    listed = {name for entry in record["files"] for name in entry["outputs"]}
    assert listed == {"nacl_pattern.csv", "nacl_peaks.csv"}
    assert {p.name for p in out.iterdir()} == listed | {"run.json", "notes.txt"}


def test_reflections_times_atoms_is_bounded_before_any_work():
    import time

    import numpy as np

    from synthxrd.errors import StructureError
    from synthxrd.simulate import pattern, peaks
    from synthxrd.simulate.common import check_reflection_count, extended_g_range
    from synthxrd.simulate import Grid
    from synthxrd.structure import Crystal

    n = 20_000
    crystal = Crystal(lattice=60.0 * np.eye(3), frac_coords=np.random.default_rng(0).random((n, 3)),
                      numbers=np.full(n, 8), occupancies=np.ones(n))
    for simulate in (peaks, pattern):
        start = time.perf_counter()
        with pytest.raises(StructureError, match=r"reflections in the window x 20,000 atoms = 1\.\d+e\+10 "
                                                 r"structure-factor terms, more than the limit of 2e\+09"):
            simulate(crystal)
        assert time.perf_counter() - start < 5.0
    # the largest generated crystals (7000 A^3 at 0.75 A^3 per atom) stay well inside the limit
    _, g_max = extended_g_range(Grid(), 1.5406, 20.0)
    check_reflection_count(np.cbrt(7000.0) * np.eye(3)[None], g_max, atoms=[int(7000 / 0.75)])


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT", "EROFS"])
def test_a_full_or_read_only_disk_is_one_error_naming_the_path_and_no_partial_file(code, tmp_path):
    import errno
    import os

    from synthxrd.errors import OutputError
    from synthxrd.files import atomic_write

    target = tmp_path / "out.bin"
    target.write_bytes(b"before")

    def half_then_full(tmp):
        tmp.write_bytes(b"half")
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    with pytest.raises(OutputError, match=f"{target}: cannot write it: {os.strerror(getattr(errno, code))}"):
        atomic_write(target, half_then_full)
    assert target.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_writer_that_does_not_say_why_fails_on_a_full_disk_is_an_output_error(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from synthxrd import files
    from synthxrd.errors import OutputError

    def torch_like(tmp):  # torch.save and HDF5 report a full disk without an errno
        tmp.write_bytes(b"half")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    with pytest.raises(RuntimeError, match="PytorchStreamWriter"):  # room on the disk: not a disk error
        files.atomic_write(tmp_path / "a.pt", torch_like)
    full = SimpleNamespace(f_flag=0, f_bavail=0, f_frsize=4096)
    monkeypatch.setattr(files.os, "statvfs", lambda folder: full)
    with pytest.raises(OutputError, match="a.pt: cannot write it: No space left on device"):
        files.atomic_write(tmp_path / "a.pt", torch_like)
    assert list(tmp_path.iterdir()) == []


def _disk_full_at_fsync(monkeypatch):
    import errno
    import os

    from synthxrd import files

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", fsync)


@pytest.mark.parametrize("command", [
    ["stats", str(NACL.parent), "--workers", "1", "--no-progress", "--out", "{out}/s.npz"],
    ["split", str(NACL.parent), "--workers", "1", "--no-progress", "--out", "{out}/s.csv"],
    ["library", "build", str(NACL.parent), "--workers", "1", "--no-progress", "--out", "{out}/l.npz"],
    ["simulate", str(NACL), "--out", "{out}"],
    ["generate", "--n", "2", "--seed", "1", "--out", "{out}"],
    ["predict", str(MEASURED), "--no-library", "--json-file", "{out}/p.json"],
    ["export", str(MEASURED.parents[1] / "models" / "default.pt"), "{out}/e.pt"],
    ["evaluate", "--manifest", str(MEASURED.parent / "manifest.csv"), "--no-library", "--out", "{out}"],
    ["validation", "build", "--source", str(NACL.parent), "--n-random", "0", "--sets", "match", "--workers", "1",
     "--no-progress", "--out", "{out}"],
])
def test_every_writer_stops_with_one_line_when_the_disk_is_full(command, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    _disk_full_at_fsync(monkeypatch)
    assert main([a.replace("{out}", str(out)) for a in command]) == 2
    err = capsys.readouterr().err  # generate's progress bar may come first
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"synthxrd {command[0]}: error: ") and "Traceback" not in err, err
    assert f"{out}" in line and "cannot write it: No space left on device; nothing was written" in line
    assert list(out.iterdir()) == []


def test_train_stops_its_workers_when_the_checkpoint_does_not_fit(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import errno
    import multiprocessing
    import os

    from synthxrd.errors import OutputError
    from synthxrd.files import LOCK_FILE
    from synthxrd.train import TrainConfig, train

    def save(payload, path):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    config = TrainConfig(out=str(run), model="park_small", batch_size=2, workers=1, max_steps=3, checkpoint_every=1,
                         val_sets=(), calibrate=False)
    with pytest.raises(OutputError, match="checkpoint.pt: cannot write it: No space left on device"):
        train(config, progress=False)
    assert multiprocessing.active_children() == []  # the data worker is stopped: nothing left to wait for
    assert not (run / "checkpoint.pt").exists() and not list(run.glob(".*.tmp")) and not (run / LOCK_FILE).exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (needs the right to mount: root; skipped otherwise), unmounted afterwards."""
    import shutil
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mount = shutil.which("mount")
    if mount is None or subprocess.run([mount, "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                                       capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def _fill(disk: Path, leave: int) -> None:
    import os

    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_a_real_full_disk_is_one_line_and_train_does_not_hang(small_disk, capsys):
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    _fill(small_disk, 0)
    assert main(["stats", str(NACL.parent), "--workers", "1", "--no-progress", "--out", str(small_disk / "s.npz")]) == 2
    assert "s.npz: cannot write it: No space left on device" in _one_line_error(capsys, "stats")
    (small_disk / "filler").unlink()
    _fill(small_disk, 600 * 1024)  # room for the run's config and logs, not for its checkpoint
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "synthxrd", "train", "--out", str(small_disk / "run"), "--max-steps",
                           "3", "--batch-size", "2", "--workers", "1", "--model", "park_small", "--no-progress",
                           "--set", "val_sets=[]", "--set", "checkpoint_every=1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"synthxrd train: error: {small_disk / 'run' / 'checkpoint.pt'}: cannot write it: No space left on device; "
        "nothing was written there (free some space, or choose another output path)"]
    assert not list((small_disk / "run").glob(".*")) and not (small_disk / "run" / "checkpoint.pt").exists()


# ---- a pattern with no peaks gets no space group ----------------------------------------------------

X = np.round(np.arange(5.0, 90.0001, 0.02), 2)
BACKGROUNDS = {
    "ramp": 1000.0 - 10.0 * X,
    "parabola": (X - 47.0) ** 2 + 10.0,
    "amorphous hump": 150.0 + 900.0 * np.exp(-0.5 * ((X - 24.0) / 5.0) ** 2),
    "exponential": 40.0 + 3000.0 * np.exp(-(X - 5.0) / 6.0),
}
EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "synthxrd" / "resources" / "examples"


def _lines(name: str = "NaCl.cif") -> np.ndarray:
    from synthxrd.simulate import Grid, pattern

    return pattern(EXAMPLES / name, grid=Grid(5.0, 90.0, X.size), crystallite_size_nm=50.0).astype(np.float64)


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_the_background_estimate_finds_peaks_only_where_there_are_some(background, noise):
    from synthxrd.io import MIN_PEAK_SIGNIFICANCE, has_peaks, peak_significance

    rng = np.random.default_rng(7)
    bare = BACKGROUNDS[background]
    with_lines = bare + 0.5 * bare.max() * _lines()
    rows = np.stack([bare, with_lines])
    if noise:
        rows = rng.poisson(rows).astype(np.float64)
    significance = peak_significance(rows, 0.02, counts=noise)
    assert significance[0] < MIN_PEAK_SIGNIFICANCE / 1.3, significance  # a margin, not a near miss
    assert significance[1] > 2 * MIN_PEAK_SIGNIFICANCE, significance
    assert has_peaks(rows, 0.02, counts=noise).tolist() == [False, True]


def test_predict_says_no_peaks_found_for_a_background_alone(tmp_path, capsys):
    rng = np.random.default_rng(1)
    files = []
    for name, y in (("parabola", BACKGROUNDS["parabola"]), ("noisy_parabola", rng.poisson(BACKGROUNDS["parabola"])),
                    ("ramp", BACKGROUNDS["ramp"])):
        files.append(tmp_path / f"{name}.xy")
        np.savetxt(files[-1], np.c_[X, y], fmt="%.4f")
    assert main(["predict", *map(str, files), str(MEASURED), "--json"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert [e.split(": ")[0] for e in errors] == list(map(str, files))
    assert all(": no peaks found: nothing rises 8 noise sigmas above the background" in e for e in errors)
    import json

    results = json.loads(captured.out)["results"]
    assert [r["ok"] for r in results] == [False, False, False, True]
    assert main(["library", "search", *map(str, files), str(MEASURED)]) == 1  # no matches made up either
    out = capsys.readouterr().out
    assert out.count(": no peaks found: nothing rises 8 noise sigmas") == 3 and f"{MEASURED}: 10 matches" in out


def test_identify_flags_a_background_and_gives_it_no_answer():
    from synthxrd.predict import Predictor

    predictor = Predictor.load(device="cpu")  # with the shipped library
    rows = np.stack([BACKGROUNDS["ramp"], BACKGROUNDS["ramp"] + 500.0 * _lines("Al2O3_corundum.cif")])
    out = predictor.identify(X, rows)
    assert out["has_peaks"].tolist() == [False, True]
    assert out["probabilities"][0].max() < predictor.threshold and out["matches"][0] == []
    assert out["confidence"][0] == 0.0 and out["matches"][1]
    alone = predictor.identify(X, rows[1])  # the pattern with peaks: the same answer as before
    np.testing.assert_allclose(out["probabilities"][1], alone["probabilities"][0], rtol=1e-4, atol=1e-7)


def _background(kind: str, p: list[float]) -> np.ndarray:
    """A smooth background on X from parameters in [0, 1): a polynomial of degree <= 3 (positive),
    an exponential decay, an amorphous hump (FWHM 12-35 degrees), or the three together."""
    t = (X - 47.5) / 42.5
    poly = 1.0 + p[0] * t + 0.8 * p[1] * t**2 - 0.3 * p[2] * t**3
    decay = np.exp(-(X - 5.0) / (4.0 + 30.0 * p[3]))
    hump = np.exp(-0.5 * ((X - 15.0 - 40.0 * p[4]) / (5.0 + 10.0 * p[5])) ** 2)
    shapes = {"polynomial": poly, "exponential": 0.05 + decay, "hump": 0.2 + hump,
              "mixed": 0.5 * poly + p[6] * decay + p[7] * hump}
    return shapes[kind] / shapes[kind].max()


@pytest.fixture(scope="module")
def network_alone():
    from synthxrd.predict import Predictor

    return Predictor.load(device="cpu", library=None)


def test_random_smooth_backgrounds_get_no_answer_and_lines_on_them_are_found(network_alone):
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st

    lines = {name: _lines(name) for name in ("NaCl.cif", "Si.cif", "TiO2_rutile.cif", "WO3_monoclinic.cif")}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(kind=st.sampled_from(["polynomial", "exponential", "hump", "mixed"]),
           p=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=8, max_size=8),
           counts=st.floats(20.0, 20000.0), noise=st.booleans(), cif=st.sampled_from(sorted(lines)),
           height=st.floats(0.5, 3.0), seed=st.integers(0, 2**32 - 1))
    def check(kind, p, counts, noise, cif, height, seed):
        # With counting noise the strongest line must stand out of it: at least 8 sigma of the
        # background's Poisson noise (height x counts >= 8 sqrt(counts)); weaker lines are noise-level
        # (2 sigma at 20 counts and height 0.5), which no detector can tell from a fluctuation.
        assume(not noise or height * math.sqrt(counts) >= 8.0)
        rng = np.random.default_rng(seed)
        bare = counts * _background(kind, p)
        rows = np.stack([bare, bare + height * counts * lines[cif]])
        if noise:
            rows = rng.poisson(rows).astype(np.float64)
        out = network_alone.identify(X, rows)
        assert out["has_peaks"].tolist() == [False, True], out["peak_significance"]
        assert out["probabilities"][0].max() < network_alone.threshold  # no confident answer on nothing

    check()
