"""Shared fixtures: where the project's shared data live, and the small CIFs of ``tests/data``.

The shared data (``../shared/data`` next to the repository, or ``$SYNTHXRD_SHARED_DATA``) are big and
read-only, so they are not part of the repository. Tests that need them are skipped where the folder
is missing, except under CI (environment variable ``CI`` set), where a missing folder is a failure:
CI must not silently skip the acceptance tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"


def shared_data_root() -> Path:
    """``$SYNTHXRD_SHARED_DATA``, or ``<repo>/../shared/data`` (:func:`synthxrd.files.shared_data_dir`)."""
    from synthxrd.files import shared_data_dir

    return shared_data_dir(REPO_ROOT)


def running_in_ci() -> bool:
    """``$CI`` is set (GitHub Actions, GitLab, ... set ``CI=true``); "", "0" and "false" count as unset."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; otherwise skip the test, or fail it when ``$CI`` is set."""
    if path.exists():
        return path
    message = (f"{what} not found at {path} (set SYNTHXRD_SHARED_DATA to the folder that holds "
               f"experimental/ and mp_experimental/)")
    if running_in_ci():
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


#: The packages whose versions head the test report (CI states what it ran; constraints.txt pins them).
REPORTED_PACKAGES = ("numpy", "scipy", "numba", "torch", "pymatgen", "spglib", "gemmi", "h5py", "ray")


def pytest_report_header(config) -> str:
    """One line of the versions the tests run with, under pytest's own header."""
    from importlib.metadata import PackageNotFoundError, version

    def found(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    return "synthxrd dependencies: " + ", ".join(f"{name} {found(name)}" for name in REPORTED_PACKAGES)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared data (``experimental/``, ``mp_experimental/``); skip, or fail under CI."""
    return require_path(shared_data_root(), "shared data folder")


@pytest.fixture(scope="session")
def experimental_data(shared_data: Path) -> Path:
    """``<shared>/experimental`` with its ``manifest.csv``; skip, or fail under CI."""
    return require_path(shared_data / "experimental" / "manifest.csv", "experimental manifest").parent


@pytest.fixture(scope="session")
def mp_experimental_data(shared_data: Path) -> Path:
    """``<shared>/mp_experimental`` with ``index.csv`` and ``structures.tar.xz``; skip, or fail under CI."""
    root = shared_data / "mp_experimental"
    require_path(root / "index.csv", "mp_experimental index")
    require_path(root / "structures.tar.xz", "mp_experimental archive")
    return root


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The small hand-written fixture files of ``tests/data``."""
    return TEST_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A 3-step park_small training run, shared by the predict and evaluate tests of a session."""
    pytest.importorskip("torch")
    out = tmp_path_factory.getbasetemp() / "tiny_run"
    if not (out / "best.pt").is_file():
        from synthxrd.train import TrainConfig, train

        train(TrainConfig(out=str(out), model="park_small", batch_size=8, max_steps=3, workers=0,
                          val_sets=("random",), n_val_random=16, val_every=3, checkpoint_every=3), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_fused(tiny_run, tmp_path_factory) -> Path:
    """``tiny_run`` exported with a fusion rule for the default library (the rule's start values,
    bound by ``synthxrd export --library default --fusion FILE``): a model that fuses."""
    out = tmp_path_factory.getbasetemp() / "tiny_fused.pt"
    if not out.is_file():
        from synthxrd.cli import main
        from synthxrd.match.fusion import FusionRule

        rule = FusionRule(metadata={"fitted_on": "nothing: the start values, for tests"}).save(
            tmp_path_factory.getbasetemp() / "tiny_rule.json")
        assert main(["export", str(tiny_run), str(out), "--library", "default", "--fusion", str(rule)]) == 0
    return out
