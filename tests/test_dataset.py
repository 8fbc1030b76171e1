"""Tests of synthxrd.dataset: HDF5 round trip, clear errors, atomic writes."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import synthxrd.dataset as dataset_module
from synthxrd.dataset import FORMAT_VERSION, Dataset, load_dataset, save_dataset
from synthxrd.errors import DataError
from synthxrd.structure import CrystalBatch

FIELDS = ("lattices", "frac_coords", "numbers", "occupancies", "offsets")


def make_batch(n: int = 5, labels: bool = True, seed: int = 0) -> CrystalBatch:
    """A small hand-made batch: cubic cells with 1..n atoms, a partial occupancy in the last one."""
    rng = np.random.default_rng(seed)
    sizes = np.arange(1, n + 1)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    m = int(offsets[-1])
    lattices = np.array([np.eye(3) * (3.0 + i) for i in range(n)])
    occupancies = np.ones(m)
    occupancies[-1] = 0.5
    return CrystalBatch(lattices, rng.random((m, 3)), rng.integers(1, 95, m), occupancies, offsets,
                        spacegroups=rng.integers(1, 231, n) if labels else None)


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in FIELDS:
        x, y = getattr(a.crystals, name), getattr(b.crystals, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    if a.crystals.spacegroups is None:
        assert b.crystals.spacegroups is None
    else:
        assert np.array_equal(a.crystals.spacegroups, b.crystals.spacegroups)
    if a.patterns is None:
        assert b.patterns is None and b.two_theta is None
    else:
        assert b.patterns.dtype == np.float32 and np.array_equal(a.patterns, b.patterns)
        assert np.array_equal(a.two_theta, b.two_theta)
    assert a.metadata == b.metadata


def test_round_trip_without_patterns(tmp_path):
    original = Dataset(make_batch(), metadata={"seed": 3, "statistics": {"version": 1}, "note": "é"})
    path = save_dataset(tmp_path / "d.h5", original)
    assert path == tmp_path / "d.h5"
    loaded = load_dataset(path)
    assert_same(original, loaded)
    assert len(loaded.crystals) == 5
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format"] == "synthxrd-dataset"
        assert int(h5.attrs["format_version"]) == FORMAT_VERSION
        assert json.loads(h5.attrs["metadata"])["seed"] == 3
        assert "patterns" not in h5


def test_round_trip_with_patterns(tmp_path):
    batch = make_batch(7)
    patterns = np.random.default_rng(1).random((7, 101)).astype(np.float32)
    original = Dataset(batch, patterns, np.linspace(5, 90, 101), {"n": 7})
    loaded = load_dataset(save_dataset(tmp_path / "p.h5", original))
    assert_same(original, loaded)
    assert loaded.patterns.shape == (7, 101)


def test_round_trip_without_labels_and_float64_patterns(tmp_path):
    batch = make_batch(3, labels=False)
    patterns = np.random.default_rng(2).random((3, 11))  # float64 in, float32 stored
    loaded = load_dataset(save_dataset(tmp_path / "u.h5", Dataset(batch, patterns, np.arange(11.0))))
    assert loaded.crystals.spacegroups is None
    assert loaded.patterns.dtype == np.float32
    np.testing.assert_allclose(loaded.patterns, patterns, rtol=1e-7)
    assert loaded.metadata == {}


def test_round_trip_of_generated_crystals(tmp_path):
    from synthxrd.generate import Generator
    from synthxrd.stats import Statistics

    batch = Generator(Statistics.load()).sample_batch(20, np.random.default_rng(5))
    loaded = load_dataset(save_dataset(tmp_path / "g.h5", Dataset(batch, metadata={"seed": 5})))
    assert_same(Dataset(batch, metadata={"seed": 5}), loaded)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.h5"
    with pytest.raises(DataError, match="absent.h5"):
        load_dataset(path)
    with pytest.raises(DataError, match="no such"):
        load_dataset(tmp_path)  # a directory is not a dataset file either


def test_not_a_dataset(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("x", data=np.arange(3))
    with pytest.raises(DataError, match=r"other\.h5.*not a synthxrd dataset"):
        load_dataset(other)
    text = tmp_path / "text.h5"
    text.write_text("this is not HDF5\n")
    with pytest.raises(DataError, match=r"text\.h5"):
        load_dataset(text)


def test_incomplete_or_newer_dataset(tmp_path):
    path = save_dataset(tmp_path / "d.h5", Dataset(make_batch()))
    with h5py.File(path, "a") as h5:
        del h5["offsets"]
    with pytest.raises(DataError, match=r"d\.h5.*offsets"):
        load_dataset(path)
    newer = save_dataset(tmp_path / "n.h5", Dataset(make_batch()))
    with h5py.File(newer, "a") as h5:
        h5.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(DataError, match=r"n\.h5.*newer"):
        load_dataset(newer)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    first = Dataset(make_batch(4), metadata={"version": 1})
    save_dataset(path, first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]
    before = path.read_bytes()

    # a failure after the arrays are written (while the attributes are set) leaves the old file
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dataset_module.json, "dumps", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_dataset(path, Dataset(make_batch(6), metadata={"version": 2}))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]
    assert_same(first, load_dataset(path))

    # success replaces it
    second = Dataset(make_batch(6, seed=9), np.zeros((6, 5), np.float32), np.arange(5.0), {"version": 2})
    save_dataset(path, second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]
    assert_same(second, load_dataset(path))
