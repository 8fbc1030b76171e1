"""Where the shared data folder is: one resolver (:func:`synthxrd.files.shared_data_dir`) for the CLI,
the scripts and the tests."""

from pathlib import Path

from synthxrd.files import SHARED_DATA_ENV, shared_data_dir


def test_shared_data_dir_is_the_environment_variable_or_beside_the_start(tmp_path, monkeypatch):
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    assert shared_data_dir(tmp_path / "repo") == tmp_path / "shared" / "data"
    monkeypatch.chdir(tmp_path)
    assert shared_data_dir() == Path.cwd().parent / "shared" / "data"
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "elsewhere"))
    assert shared_data_dir() == shared_data_dir(tmp_path / "repo") == tmp_path / "elsewhere"
    monkeypatch.setenv(SHARED_DATA_ENV, "")  # set but empty: unset
    assert shared_data_dir(tmp_path / "repo") == tmp_path / "shared" / "data"
