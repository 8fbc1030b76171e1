"""The model contract: input spec, binning, checkpoint save/load/export, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthxrd.errors import ConfigError, DataError  # noqa: E402
from synthxrd.models import build  # noqa: E402
from synthxrd.models.calibration import fit_temperature, nll, softmax  # noqa: E402
from synthxrd.models.checkpoint import (  # noqa: E402
    InputSpec,
    bin_patterns,
    bin_weights,
    checkpoint_input,
    checkpoint_temperature,
    export_model,
    load_model,
    save_checkpoint,
)
from synthxrd.simulate import Grid  # noqa: E402


def test_input_spec_grids():
    assert InputSpec().n == 8501 and InputSpec(step=0.02).n == 4251 and InputSpec(step=0.04).n == 2126
    assert np.allclose(InputSpec(step=0.04).grid.values()[:3], [5.0, 5.04, 5.08])
    for bad in (dict(step=0.015), dict(step=0.03), dict(start=4.0), dict(transform="log"), dict(wavelength=0.0)):
        with pytest.raises(ConfigError):
            InputSpec(**bad)
    assert InputSpec.from_dict(None) == InputSpec()
    assert InputSpec.from_dict(InputSpec(step=0.04).to_dict()) == InputSpec(step=0.04)
    assert InputSpec.from_dict(InputSpec(clean=True).to_dict()).clean
    legacy = {k: v for k, v in InputSpec(step=0.04).to_dict().items() if k != "clean"}  # exports before `clean`
    assert InputSpec.from_dict(legacy) == InputSpec(step=0.04)
    with pytest.raises(ConfigError, match="clean"):
        InputSpec(clean="yes")


def test_clean_input_takes_background_and_noise_away_as_search_match_does():
    from synthxrd.io import clean_patterns
    from synthxrd.match.search import SearchSettings, prepare

    x = Grid().values()
    rng = np.random.default_rng(3)
    peaks = np.exp(-0.5 * ((x - 30.0) / 0.05) ** 2) + 0.5 * np.exp(-0.5 * ((x - 47.0) / 0.05) ** 2)
    measured = peaks + 0.3 + 0.002 * x + 0.01 * rng.standard_normal(x.size)  # sloped background, noise
    spec = InputSpec(step=0.04, clean=True)
    got = spec.apply(measured[None])[0]
    # the inputs of the cleaned pattern: search-match's cleaning, then the usual binning and sqrt
    np.testing.assert_allclose(got, InputSpec(step=0.04).apply(clean_patterns(measured[None], 0.01))[0], atol=1e-6)
    np.testing.assert_allclose(clean_patterns(measured[None], 0.01), prepare(x, measured[None], SearchSettings()))
    grid = spec.grid.values()
    away = np.abs(grid - 30.0) > 1.0
    away &= np.abs(grid - 47.0) > 1.0
    assert got[away].max() < 0.1 < 0.4 < InputSpec(step=0.04).apply(measured[None])[0][away].min()  # baseline gone
    assert (got[away] == 0).mean() > 0.8  # most of the noise below the floor
    assert got[np.argmin(np.abs(grid - 30.0))] == pytest.approx(1.0, abs=0.05)
    assert got[np.argmin(np.abs(grid - 47.0))] == pytest.approx(np.sqrt(0.5), abs=0.05)  # heights kept
    assert not spec.apply(np.zeros((1, x.size))).any()
    with pytest.raises(ConfigError, match="CPU"):
        spec.apply_torch(torch.as_tensor(measured[None]))


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5])
def test_bin_weights_are_the_cell_average_of_the_linear_interpolant(factor):
    w = bin_weights(factor)
    assert w.sum() == pytest.approx(1.0) and np.allclose(w, w[::-1])
    # numeric check: average of the hat-function interpolant over the cell [-k/2, k/2]
    x = np.linspace(-factor / 2, factor / 2, 200001)
    j = np.arange(len(w)) - len(w) // 2
    numeric = [np.trapezoid(np.clip(1 - np.abs(x - jj), 0, None), x) / factor for jj in j]
    np.testing.assert_allclose(w, numeric, atol=1e-8)


def test_binning_keeps_linear_signals_and_matches_resample():
    from synthxrd.io import resample

    fine = Grid().values()
    line = 3.0 + 0.01 * fine
    np.testing.assert_allclose(bin_patterns(line[None], 4)[0, 1:-1], line[::4][1:-1], rtol=1e-12)
    rng = np.random.default_rng(0)
    y = np.abs(rng.normal(size=fine.size)).cumsum() % 7.0
    spec = InputSpec(step=0.04)
    ref, covered = resample(fine, y, spec.grid)  # the measured-data path straight onto the coarse grid
    np.testing.assert_allclose(bin_patterns(y[None], 4)[0, 1:-1], ref[1:-1], rtol=1e-9, atol=1e-12)


def test_apply_numpy_and_torch_agree():
    rng = np.random.default_rng(1)
    x = rng.random((3, 8501)) - 0.1
    x[2] = -1.0  # no positive intensity: stays 0
    for spec in (InputSpec(), InputSpec(step=0.04), InputSpec(step=0.02, transform="linear")):
        a = spec.apply(x)
        b = spec.apply_torch(torch.as_tensor(x)).numpy()
        assert a.shape == (3, spec.n) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert a[:2].max(axis=1) == pytest.approx([1.0, 1.0]) and not a[2].any()
    with pytest.raises(DataError, match="8501 points"):
        InputSpec().apply(np.ones((2, 100)))


def _checkpoint(path, spec=None, **extra):
    model = build("park_small", 5, input_length=(spec or InputSpec()).n)
    payload = {"model": model.state_dict(), "model_config": model.config, "classes": [1, 2, 14, 62, 225],
               "step": 7, **extra}
    if spec is not None:
        payload["input"] = spec.to_dict()
    save_checkpoint(path, payload)
    return model


def test_legacy_checkpoint_loads_with_the_legacy_contract(tmp_path):
    _checkpoint(tmp_path / "old.pt")
    model, classes, meta = load_model(tmp_path / "old.pt")
    assert checkpoint_input(meta) == InputSpec() and checkpoint_temperature(meta) == 1.0
    assert classes.tolist() == [1, 2, 14, 62, 225]


def test_checkpoint_states_grid_and_calibration_through_export(tmp_path):
    spec = InputSpec(step=0.04)
    _checkpoint(tmp_path / "new.pt", spec, calibration={"temperature": 1.7, "fitted_on": "match"})
    meta = export_model(tmp_path / "new.pt", tmp_path / "export.pt")
    assert meta["input"]["step"] == 0.04
    model, classes, meta = load_model(tmp_path / "export.pt")
    assert checkpoint_input(meta) == spec and checkpoint_temperature(meta) == 1.7
    assert model(torch.zeros(2, spec.n)).shape == (2, 5)


def test_mismatched_or_foreign_checkpoints_are_clear_errors(tmp_path):
    model = build("park_small", 5, input_length=InputSpec().n)
    save_checkpoint(tmp_path / "bad.pt", {"model": model.state_dict(), "model_config": model.config,
                                          "classes": [1, 2, 3, 4, 5], "input": InputSpec(step=0.04).to_dict()})
    with pytest.raises(DataError, match="input points"):
        load_model(tmp_path / "bad.pt")
    save_checkpoint(tmp_path / "foreign.pt", {"weights": torch.zeros(3)})
    with pytest.raises(DataError, match="not a synthxrd checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="temperature"):
        checkpoint_temperature({"calibration": {"temperature": -1.0}})


def test_predictor_reads_the_contract(tmp_path):
    from synthxrd.predict import Predictor

    spec = InputSpec(step=0.04)
    _checkpoint(tmp_path / "c.pt", spec, calibration={"temperature": 2.0})
    p = Predictor.load(tmp_path / "c.pt", library=None, device="cpu")
    assert p.spec == spec and p.temperature == 2.0 and p.grid.n == 8501
    tt = np.linspace(10, 80, 3000)
    probs = p.predict(tt, np.exp(-0.5 * ((tt - 30) / 0.1) ** 2))
    assert probs.shape == (1, 230) and probs.sum() == pytest.approx(1.0)
    # the temperature flattens: the same logits at T = 1 are sharper
    sharp = Predictor(p.model, p.classes, spec=spec, temperature=1.0, device="cpu").predict(
        tt, np.exp(-0.5 * ((tt - 30) / 0.1) ** 2))
    assert sharp.max() >= probs.max()


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 20))
    for t0 in (0.5, 2.5):
        p = softmax(logits, t0)
        labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)
        t = fit_temperature(logits, labels)
        assert t == pytest.approx(t0, rel=0.1)
        assert nll(logits, labels, t) <= nll(logits, labels, 1.0)
    with pytest.raises(DataError):
        fit_temperature(logits[:, :3], np.full(len(logits), 5))
