"""Fuzzing the readers: random bytes and mutated real files give a result or one of the package's own
errors (:class:`~synthxrd.errors.SynthXRDError`, one line naming the file), never another exception."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthxrd.errors import SynthXRDError

DATA = Path(__file__).parent / "data"
PATTERNS = sorted((DATA / "patterns").iterdir())
CIFS = sorted((DATA / "mini_collection").glob("*.cif")) + sorted((DATA).glob("*.cif"))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, originals):
    """A real file with a few random edits: truncation, overwritten, inserted or deleted bytes, or a
    repeated slice."""
    data = bytearray(draw(st.sampled_from(originals)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "delete", "repeat"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at + len(chunk)] = chunk
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from(
                [b"nan", b"-inf", b"1e999", b"\x00", b"\n\n", b";", b",", b"-1", b"0", b"'", b"_cell_length_a 0"]))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            end = min(len(data), at + draw(st.integers(1, 256)))
            data[at:at] = data[at:end]
    return bytes(data)


def _outcome(read, data: bytes, suffix: str):
    """read(path) of a file holding ``data``: its result, or the SynthXRDError it raised."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return read(path)
            except SynthXRDError as exc:
                message = str(exc)
                assert message and "\n" not in message.strip(), message
                return exc


def _read_pattern(path):
    from synthxrd.io import read_pattern

    tt, y, meta = read_pattern(path)
    assert np.all(np.isfinite(tt)) and np.all(np.isfinite(y)) and np.all(np.diff(tt) > 0)
    return tt, y, meta


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".xy", ".csv", ".xrdml", ".raw", ".brml", ".gsa", ".txt"]))
def test_pattern_reader_on_random_bytes(data, suffix):
    _outcome(_read_pattern, data, suffix)


@FUZZ
@given(data=mutated(PATTERNS), index=st.integers(0, len(PATTERNS) - 1))
def test_pattern_reader_on_mutated_real_files(data, index):
    _outcome(_read_pattern, data, PATTERNS[index].suffix)


def _read_cif_and_simulate(path):
    from synthxrd.simulate import peaks
    from synthxrd.structure import read_cif

    crystal = read_cif(path)
    tt, intensity = peaks(crystal)
    assert np.all(np.isfinite(tt)) and np.all(np.isfinite(intensity))
    return tt, intensity


@FUZZ
@given(data=mutated(CIFS))
def test_cif_path_on_mutated_real_files(data):
    _outcome(_read_cif_and_simulate, data, ".cif")


@FUZZ
@given(data=st.binary(max_size=1024))
def test_cif_path_on_random_bytes(data):
    _outcome(_read_cif_and_simulate, data, ".cif")


def test_the_mutations_reach_both_outcomes():
    """The fuzz tests mean something only if the mutated files are sometimes still read."""
    rng = np.random.default_rng(0)
    read = 0
    for path in PATTERNS:
        data = bytearray(path.read_bytes())
        cut = int(rng.integers(len(data) // 2, len(data)))
        outcome = _outcome(_read_pattern, bytes(data[:cut]), path.suffix)
        read += not isinstance(outcome, SynthXRDError)
    assert 0 < read
    assert isinstance(_outcome(_read_pattern, b"\x89PNG\r\n\x1a\n" + bytes(100), ".xy"), SynthXRDError)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
