"""``synthxrd simulate``: outputs, run.json, error handling, no-clobber, help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from synthxrd import __version__
from synthxrd.cli import main
from synthxrd.simulate import peak_list
from synthxrd.structure import read_cif

EXAMPLES = files("synthxrd.resources").joinpath("examples")
EXAMPLE_STEMS = sorted(p.name[:-4] for p in EXAMPLES.iterdir() if p.name.endswith(".cif"))
MALFORMED_CIF = "data_bad\n_cell_length_a 5.0\nloop_\n_atom_site_label\n_atom_site_fract_x\nNa1 0.0 0.1\n"


def example_path(stem: str) -> Path:
    return Path(str(EXAMPLES.joinpath(f"{stem}.cif")))


@pytest.fixture(scope="module")
def examples_run(tmp_path_factory):
    """One ``--examples --plot`` run shared by the tests that only read its outputs."""
    out = tmp_path_factory.mktemp("examples")
    rc = main(["simulate", "--examples", "--plot", "--out", str(out)])
    return rc, out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # spglib OLD_ERROR_HANDLING notice
def test_examples_cover_several_crystal_systems():
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    assert 6 <= len(EXAMPLE_STEMS) <= 8
    systems = {SpacegroupAnalyzer(read_cif(example_path(s)), symprec=0.01).get_crystal_system() for s in EXAMPLE_STEMS}
    assert {"cubic", "tetragonal", "hexagonal", "trigonal", "monoclinic"} <= systems
    for stem in EXAMPLE_STEMS:
        text = example_path(stem).read_text()
        assert text.startswith("# synthxrd example structure"), stem  # source/parameters comment
        assert len(text) < 8000, stem


def test_examples_run_writes_all_outputs(examples_run):
    rc, out = examples_run
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    expected = {"run.json"} | {f"{s}{suffix}" for s in EXAMPLE_STEMS
                               for suffix in ("_pattern.csv", "_peaks.csv", ".png")}
    assert names == expected  # and no temporary files left behind


def test_run_json_records_config_and_status(examples_run):
    _, out = examples_run
    record = json.loads((out / "run.json").read_text())
    assert record["synthxrd_version"] == __version__
    cfg = record["config"]
    assert cfg["wavelength_angstrom"] == pytest.approx(1.5406)
    assert cfg["two_theta_range"] == [5.0, 90.0]
    assert cfg["grid"]["n"] == 8501
    assert cfg["crystallite_size_nm"] == 50.0
    assert cfg["examples"] is True and cfg["plot"] is True and "seed" in cfg
    assert record["summary"] == {"simulated": len(EXAMPLE_STEMS), "failed": 0}
    by_name = {Path(f["input"]).stem: f for f in record["files"]}
    assert set(by_name) == set(EXAMPLE_STEMS)
    assert all(f["status"] == "ok" for f in record["files"])
    assert by_name["NaCl"]["spacegroup_number"] == 225
    assert by_name["WO3_monoclinic"]["spacegroup_number"] == 14
    assert by_name["Al2O3_corundum"]["formula"] == "Al2O3"


def test_pattern_csv(examples_run):
    _, out = examples_run
    path = out / "NaCl_pattern.csv"
    assert path.read_text().splitlines()[0] == "two_theta,intensity"
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    assert data.shape == (8501, 2)
    np.testing.assert_allclose(data[:, 0], np.linspace(5, 90, 8501), atol=1e-6)
    assert data[:, 1].max() == pytest.approx(1.0, abs=1e-6)
    assert data[:, 1].min() >= 0.0
    assert 31.5 < data[data[:, 1].argmax(), 0] < 31.9  # NaCl (200)


@pytest.mark.parametrize("stem", ["NaCl", "TiO2_rutile", "WO3_monoclinic"])
def test_peaks_csv_equals_peak_list(examples_run, stem):
    _, out = examples_run
    path = out / f"{stem}_peaks.csv"
    assert path.read_text().splitlines()[0] == "two_theta,d,intensity,h,k,l"
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    ref = peak_list(read_cif(example_path(stem)))
    assert len(data) == len(ref.two_theta)
    first = data[0]
    assert first[0] == pytest.approx(ref.two_theta[0], rel=1e-9)
    assert first[1] == pytest.approx(ref.d[0], rel=1e-9)
    assert first[2] == pytest.approx(ref.intensity[0], rel=1e-9)
    assert first[3:].astype(int).tolist() == ref.hkl[0].tolist()
    np.testing.assert_allclose(data[:, 0], ref.two_theta, rtol=1e-9)
    np.testing.assert_allclose(data[:, 2], ref.intensity, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(data[:, 3:].astype(int), ref.hkl)


def test_plots_are_nonempty_pngs(examples_run):
    _, out = examples_run
    for stem in EXAMPLE_STEMS:
        data = (out / f"{stem}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, stem


def test_malformed_cif_is_one_line_and_others_go_on(tmp_path, capsys):
    src = tmp_path / "cifs"
    (src / "sub").mkdir(parents=True)
    shutil.copy(example_path("NaCl"), src / "sub" / "good.cif")
    (src / "bad.cif").write_text(MALFORMED_CIF)
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["simulate", str(src), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1
    err_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err_lines) == 1, captured.err
    assert str(src / "bad.cif") in err_lines[0] and "malformed CIF" in err_lines[0]
    assert "1 simulated, 1 failed" in captured.out
    assert (out / "good_pattern.csv").is_file() and (out / "good_peaks.csv").is_file()
    assert not (out / "bad_pattern.csv").exists()
    record = json.loads((out / "run.json").read_text())
    status = {Path(f["input"]).name: f for f in record["files"]}
    assert status["good.cif"]["status"] == "ok"
    assert status["bad.cif"]["status"] == "failed" and "malformed CIF" in status["bad.cif"]["error"]


def test_missing_file_and_unexpected_error_are_one_line_each(tmp_path, capsys, monkeypatch):
    import synthxrd.simulate

    good = tmp_path / "NaCl.cif"
    shutil.copy(example_path("NaCl"), good)

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(synthxrd.simulate, "peak_list", boom)
    capsys.readouterr()
    rc = main(["simulate", str(good), str(tmp_path / "missing.cif"), "--out", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 1
    assert err == [f"{good}: unexpected error: RuntimeError: boom second line",
                   f"{tmp_path / 'missing.cif'}: no such file or directory"]


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "NaCl_peaks.csv"
    mine.write_text("my precious data\n")
    good = tmp_path / "NaCl.cif"
    shutil.copy(example_path("NaCl"), good)
    capsys.readouterr()
    rc = main(["simulate", str(good), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "NaCl_peaks.csv" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert mine.read_text() == "my precious data\n"
    assert sorted(p.name for p in out.iterdir()) == ["NaCl_peaks.csv"]  # nothing else written either

    assert main(["simulate", str(good), "--out", str(out), "--overwrite"]) == 0
    assert mine.read_text().startswith("two_theta,d,intensity,h,k,l")
    # a second run without --overwrite is refused because of run.json and the CSVs
    assert main(["simulate", str(good), "--out", str(out)]) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--wavelength", "CuKz"], "--wavelength: unknown name 'CuKz'"),
        (["--wavelength", "-1"], "--wavelength"),
        (["--range", "90", "5"], "--range: need 0 < MIN < MAX < 180"),
        (["--range", "0", "90"], "--range"),
        (["--crystallite-size", "huge"], "--crystallite-size"),
    ],
)
def test_bad_options_exit_2(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["simulate", "--examples", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("synthxrd simulate: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_non_numeric_range_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--examples", "--out", str(tmp_path), "--range", "a", "90"])
    assert exc.value.code == 2
    assert "--range" in capsys.readouterr().err


def test_no_input_is_an_error(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "out")]) == 2
    assert "no input" in capsys.readouterr().err


def test_random_sizes_are_reproducible_with_seed(tmp_path):
    good = tmp_path / "CsCl.cif"
    shutil.copy(example_path("CsCl"), good)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["simulate", str(good), "--out", str(out), "--crystallite-size", "random", "--seed", "7",
                     "--wavelength", "CuKa1", "--range", "10", "80"]) == 0
        record = json.loads((out / "run.json").read_text())
        assert record["config"]["seed"] == 7
        assert record["config"]["wavelength_angstrom"] == pytest.approx(1.54056)
        runs.append((record["files"][0]["crystallite_size_nm"], (out / "CsCl_pattern.csv").read_text()))
    assert runs[0] == runs[1]
    assert 20.0 <= runs[0][0] <= 100.0
    data = np.loadtxt(tmp_path / "a" / "CsCl_pattern.csv", delimiter=",", skiprows=1)
    assert data.shape == (7001, 2) and data[0, 0] == pytest.approx(10.0) and data[-1, 0] == pytest.approx(80.0)


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--out", "--wavelength", "--range", "--plot", "--examples", "--crystallite-size", "--seed",
                   "--overwrite", "run.json", "50 nm"):
        assert option in out


def test_console_script_help():
    exe = Path(sys.executable).with_name("synthxrd")
    if exe.is_file() and os.access(exe, os.X_OK):
        cmd = [str(exe)]
    elif shutil.which("synthxrd"):
        cmd = [shutil.which("synthxrd")]
    else:  # pragma: no cover - not installed as a script
        cmd = [sys.executable, "-m", "synthxrd"]
    result = subprocess.run([*cmd, "simulate", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: synthxrd simulate" in result.stdout and "--examples" in result.stdout
