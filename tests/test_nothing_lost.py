"""Issue 25: nothing a user has is lost, and nothing is claimed on nothing (no peaks, bad numbers, full disks)."""

from __future__ import annotations

from pathlib import Path

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
