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
