"""Peak tables of measured patterns (synthxrd.peaks, synthxrd peaks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthxrd.cli import main
from synthxrd.errors import DataError
from synthxrd.peaks import find_peaks, read_peaks

MEASURED = Path(__file__).parents[1] / "src" / "synthxrd" / "resources" / "measured"


@pytest.fixture(scope="module")
def nacl():
    """NaCl simulated at 50 nm on the 5-90 degree grid: sticks, and a counted pattern with a sloping background."""
    pytest.importorskip("pymatgen")
    from pymatgen.core import Lattice, Structure

    from synthxrd.simulate.common import Grid
    from synthxrd.simulate.pattern import pattern, peaks

    s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    sticks = peaks(s)
    x = Grid().values()
    y = pattern(s, crystallite_size_nm=50.0).astype(np.float64)
    counts = np.random.default_rng(0).poisson(2000 * y + 100 + 50 * np.exp(-(x - 5) / 20)).astype(np.float64)
    return sticks, x, counts


def test_simulated_pattern_every_strong_peak_at_its_position(nacl):
    (tt, intensity), x, counts = nacl
    table = find_peaks(x, counts, wavelength=1.5406)
    strong = tt[intensity >= 0.05]
    nearest = np.abs(table.two_theta[:, None] - strong[None, :]).min(axis=0)
    assert nearest.max() < 0.02, nearest  # grid step 0.01 degrees
    # nothing but reflections: every listed peak lies on a stick (weak ones included)
    assert np.abs(table.two_theta[:, None] - tt[None, :]).min(axis=1).max() < 0.02
    top = table.two_theta[np.argmax(table.height)]
    assert top == pytest.approx(31.704, abs=0.02)  # NaCl 200
    np.testing.assert_allclose(table.d, 1.5406 / (2 * np.sin(np.radians(table.two_theta / 2))))
    # FWHM of a 50 nm Scherrer Gaussian: 0.9 lambda / (tau cos theta)
    expected = np.degrees(0.9 * 1.5406 / (500.0 * np.cos(np.radians(table.two_theta / 2))))
    np.testing.assert_allclose(table.fwhm, expected, rtol=0.15)
    assert table.relative.max() == 100.0


def test_noise_alone_has_no_peaks():
    x = np.arange(10.0, 80.0, 0.02)
    y = np.random.default_rng(1).poisson(200.0, x.size).astype(np.float64)
    assert len(find_peaks(x, y)) == 0


def test_shipped_measured_pattern():
    table = read_peaks(MEASURED / "Al2O3.csv", wavelength="CuKa1")
    assert table.wavelength == pytest.approx(1.5406, abs=1e-3)
    # corundum's strongest reflections (PDF 46-1212): 012, 104, 110, 113, 116
    for tt in (25.58, 35.15, 37.78, 43.36, 57.50):
        assert np.abs(table.two_theta - tt).min() < 0.05, tt
    assert table.two_theta[np.argmax(table.height)] == pytest.approx(35.15, abs=0.05)
    assert np.all(np.diff(table.two_theta) > 0)
    assert table.fwhm.min() > 0.05  # K-alpha2 shoulders too (0.02 degree steps): widths at half height


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(DataError, match="NaN or infinite"):
        find_peaks(np.arange(10.0), np.r_[np.ones(9), np.nan])
    with pytest.raises(DataError, match="at least 5"):
        find_peaks([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(DataError, match="must increase"):
        find_peaks([1.0, 2.0, 2.0, 3.0, 4.0], [1.0] * 5)
    with pytest.raises(DataError, match="min_prominence"):
        find_peaks(np.arange(10.0), np.ones(10), min_prominence=0)
    empty = tmp_path / "empty.xy"
    empty.write_text("")
    nan = tmp_path / "nan.xy"
    x = np.arange(10.0, 20.0, 0.02)
    y = np.full(x.size, 100.0)
    y[100] = np.nan
    np.savetxt(nan, np.c_[x, y])
    for path, what in ((empty, "empty"), (nan, "non-finite")):
        assert main(["peaks", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and what in err, err


def test_cli_text_and_json(tmp_path, capsys):
    assert main(["peaks", str(MEASURED / "Al2O3.csv"), "--wavelength", "CuKa1"]) == 0
    out = capsys.readouterr().out
    assert "2theta" in out and "FWHM" in out and "35.15" in out
    assert main(["peaks", str(MEASURED / "CdS.csv"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_peaks"] == len(data["peaks"]) > 3 and data["peaks"][0]["d"] is None  # no wavelength given
    path = tmp_path / "p.json"
    assert main(["peaks", str(MEASURED / "CdS.csv"), "--wavelength", "1.5406", "--json", str(path),
                 "--min-prominence", "20"]) == 0
    fewer = json.loads(path.read_text())
    assert 0 < fewer["n_peaks"] < data["n_peaks"] and fewer["peaks"][0]["d"] > 0
