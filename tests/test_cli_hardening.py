"""Bad input and bad paths give one line naming the option or path, with exit status 2; never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthxrd.cli import main

MEASURED = Path(__file__).resolve().parents[1] / "src" / "synthxrd" / "resources" / "measured" / "Al2O3.csv"


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"synthxrd {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", [
    ["generate", "--n", "2", "--out", "g"],
    ["split", "stats.npz", "--out", "s.csv"],
    ["evaluate", "--patterns", "x.npz", "--out", "e"],
    ["train", "--out", "t"],
    ["simulate", "--examples", "--out", "s"],
    ["quickstart", "--out", "q"],
    ["validation", "build", "--out", "v"],
])
def test_a_negative_seed_is_a_usage_error(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main([*command, "--seed", "-1"])
    assert stop.value.code == 2
    assert "--seed: expected an integer >= 0, got '-1'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_wavelength_bounds_are_the_ones_the_message_states(tmp_path, capsys):
    from synthxrd.simulate import resolve_wavelength

    assert resolve_wavelength(0.01) == 0.01 and resolve_wavelength(100) == 100.0
    assert main(["simulate", "--examples", "--wavelength", "100.5", "--out", str(tmp_path / "s")]) == 2
    assert "(0.01 to 100 Angstrom)" in _one_line_error(capsys, "simulate")


def test_an_output_path_through_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    assert main(["simulate", "--examples", "--out", str(blocker / "sub")]) == 2
    assert f"{blocker / 'sub'}: Not a directory" in _one_line_error(capsys, "simulate")
    assert blocker.read_text() == "mine"


def test_json_file_that_is_a_folder_is_one_line(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    args = ["predict", str(MEASURED), "--no-library", "--json-file", str(folder)]
    assert main(args) == 2
    assert "already exists" in _one_line_error(capsys, "predict")
    assert main([*args, "--overwrite"]) == 2
    assert f"{folder}: Is a directory" in _one_line_error(capsys, "predict")
    assert folder.is_dir() and not list(tmp_path.glob(".*.tmp"))


def test_a_model_with_non_finite_weights_is_refused(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from synthxrd.predict import SHIPPED_MODEL
    from importlib.resources import files

    payload = torch.load(files("synthxrd.resources").joinpath(SHIPPED_MODEL), weights_only=True)
    key = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][key] = torch.full_like(payload["model"][key], float("nan"))
    broken = tmp_path / "diverged.pt"
    torch.save(payload, broken)
    assert main(["predict", str(MEASURED), "--no-library", "--model", str(broken)]) == 2
    assert "weights are not finite" in _one_line_error(capsys, "predict")


def test_pattern_files_that_are_not_regular_or_too_big_are_refused(tmp_path):
    import os

    from synthxrd.errors import DataError
    from synthxrd.io import read_pattern

    fifo = tmp_path / "pipe.xy"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_pattern(fifo)  # would block forever if opened
    with pytest.raises(DataError, match="not a regular file"):
        read_pattern("/dev/zero")  # would never end
    big = tmp_path / "big.xy"
    big.write_text("\n".join(f"{5 + 0.01 * i:.2f} {i % 7 + 1}" for i in range(2000)))
    with pytest.raises(DataError, match="read_pattern\\(max_bytes=...\\) raises it"):
        read_pattern(big, max_bytes=1000)
    tt, y, _ = read_pattern(big)
    assert len(tt) == 2000


def test_mostly_negative_intensities_are_reported(tmp_path):
    from synthxrd.io import PatternWarning, read_pattern

    path = tmp_path / "subtracted.xy"
    path.write_text("\n".join(f"{5 + 0.01 * i:.2f} {(-1.0 if i % 10 else 5.0):g}" for i in range(500)))
    with pytest.warns(PatternWarning, match="450 of 500 intensities are below zero"):
        _, _, meta = read_pattern(path)
    assert meta["n_negative"] == 450


@pytest.mark.parametrize("lengths", [(1e6, 1e6, 1e6), (1e6, 4.0, 4.0)])
def test_huge_cells_are_refused_before_any_work(lengths, tmp_path, capsys):
    from synthxrd.errors import StructureError
    from synthxrd.simulate import pattern, peaks
    from synthxrd.structure import Crystal

    a, b, c = lengths
    crystal = Crystal(lattice=[[a, 0, 0], [0, b, 0], [0, 0, c]], frac_coords=[[0, 0, 0]], numbers=[11],
                      occupancies=[1.0])
    for simulate in (peaks, pattern):  # refused up front (before, this ran for minutes or for ever)
        with pytest.raises(StructureError, match="reflections in the window, more than 5,000,000"):
            simulate(crystal)


def test_a_truncated_statistics_file_is_one_line(tmp_path, capsys):
    from importlib.resources import files

    from synthxrd.errors import DataError
    from synthxrd.stats import DEFAULT_RESOURCE, Statistics

    data = files("synthxrd").joinpath("resources", *DEFAULT_RESOURCE).read_bytes()
    truncated = tmp_path / "stats.npz"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="not a statistics .npz file"):
        Statistics.load(truncated)
    for command in (["generate", "--statistics", str(truncated), "--n", "2", "--out", str(tmp_path / "g")],
                    ["split", str(truncated), "--out", str(tmp_path / "s.csv")]):
        assert main(command) == 2
        assert "not a statistics .npz file" in _one_line_error(capsys, command[0])


class Payload:  # an object that torch would have to unpickle to load
    pass


def test_empty_and_unsafe_checkpoints_are_one_line_everywhere(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": Payload()}, unsafe)
    for path, message in ((empty, "the checkpoint is empty (0 bytes)"), (unsafe, "not a safe checkpoint")):
        for command in (["predict", str(MEASURED), "--no-library", "--model", str(path)],
                        ["evaluate", "--model", str(path), "--patterns", "x.npz", "--out", str(tmp_path / "e")],
                        ["export", str(path), str(tmp_path / "out.pt")]):
            assert main(command) == 2
            line = _one_line_error(capsys, command[0])
            assert message in line and "weights_only" not in line


@pytest.mark.parametrize("setting, message", [("lr_step_size=0", "invalid lr_step_size = 0"),
                                              ("n_val_random=-1", "invalid n_val_random = -1"),
                                              ("seed=-1", "invalid seed = -1")])
def test_bad_train_settings_name_themselves(setting, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "t"), "--set", setting]) == 2
    assert message in _one_line_error(capsys, "train")
    assert not (tmp_path / "t").exists()


def test_no_command_writes_over_its_own_input(tmp_path, capsys):
    import shutil

    pattern = tmp_path / "Al2O3.csv"
    shutil.copy(MEASURED, pattern)
    before = pattern.read_bytes()
    assert main(["predict", str(pattern), "--no-library", "--json-file", str(pattern), "--overwrite"]) == 2
    assert "is also an input of this command" in _one_line_error(capsys, "predict")
    cif = tmp_path / "NaCl.cif"
    cif.write_text((Path(__file__).parent / "data" / "mini_collection" / "nacl.cif").read_text())
    assert main(["simulate", str(cif), "--out", str(tmp_path), "--overwrite"]) == 0  # writes next to it, not over it
    assert pattern.read_bytes() == before
