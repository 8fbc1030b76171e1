"""synthxrd.realism: statistics recovered on patterns of known noise, widths and peaks; real files;
the comparison; ``synthxrd realism`` end to end; bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from synthxrd import realism
from synthxrd.augment import AugmentConfig, augmented_patterns
from synthxrd.cli import main
from synthxrd.errors import ConfigError, DataError
from synthxrd.simulate.common import Grid
from synthxrd.structure import CrystalBatch

GRID = Grid()  # 5-90 degrees, 0.01 steps
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gaussian_pattern(x, centres, heights, fwhm, *, background=0.0, sigma=0.0, seed=0):
    """Gaussian peaks (FWHM a number or a function of 2theta) on a flat background, plus white noise."""
    y = np.full_like(x, background, dtype=np.float64)
    for c, h in zip(centres, heights):
        w = fwhm(c) if callable(fwhm) else fwhm
        y += h * np.exp(-0.5 * ((x - c) / (w * FWHM_TO_SIGMA)) ** 2)
    if sigma:
        y += sigma * np.random.default_rng(seed).standard_normal(x.size)
    return y


def small_batch(n: int = 4) -> CrystalBatch:
    """Rock salt and simple cubic cells (alternating), different lattice constants."""
    fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    lattices, coords, numbers, offsets = [], [], [], [0]
    for i in range(n):
        if i % 2 == 0:
            lattices.append(np.eye(3) * (5.64 + 0.1 * i))
            coords.append(np.vstack([fcc, (fcc + [.5, 0, 0]) % 1.0]))
            numbers.append([11] * 4 + [17] * 4)
        else:
            lattices.append(np.eye(3) * (3.9 + 0.1 * i))
            coords.append(np.zeros((1, 3)))
            numbers.append([29])
        offsets.append(offsets[-1] + len(numbers[-1]))
    return CrystalBatch(np.array(lattices), np.vstack(coords), np.concatenate(numbers).astype(np.int64),
                        np.ones(offsets[-1]), np.array(offsets))


# ------------------------------------------------------------------------------------------------
# known values


def test_noise_sigma_of_white_noise_on_a_smooth_signal():
    x = GRID.values()
    rng = np.random.default_rng(3)
    smooth = 0.2 + 0.001 * x + 0.05 * np.sin(x / 7.0)
    y = smooth + 0.01 * rng.standard_normal(x.size)
    assert realism.noise_sigma(y) == pytest.approx(0.01, rel=0.05)
    rows = smooth + np.array([[0.002], [0.02]]) * rng.standard_normal((2, x.size))
    assert realism.noise_sigma(rows) == pytest.approx([0.002, 0.02], rel=0.05)  # vectorised over rows


def test_statistics_of_gaussian_peaks_with_known_width_noise_and_count():
    x = GRID.values()
    centres = np.arange(10.0, 81.0, 10.0)  # 8 well separated peaks
    heights = np.linspace(1.0, 0.3, 8)
    sigma, background = 0.003, 0.02
    y = gaussian_pattern(x, centres, heights, 0.1, background=background, sigma=sigma, seed=1)
    s = realism.measure(x, y)
    height = y.max() - background
    assert s.n_peaks == 8
    assert s.fwhm_median == pytest.approx(0.1, rel=0.10)
    assert len(s.peak_fwhm) == 8 and np.allclose(s.peak_fwhm, 0.1, rtol=0.10)
    assert np.allclose(np.sort(s.peak_two_theta), centres, atol=0.011)
    assert s.peak_two_theta[0] == pytest.approx(10.0, abs=0.011)  # strongest first
    assert s.noise == pytest.approx(sigma / height, rel=0.20)
    # the background is a lower envelope: the 10 % quantile of the noise around it
    assert background - 2 * sigma < s.background_level * height < background
    assert abs(s.background_curvature) < 0.5 * sigma / height
    assert s.start == pytest.approx(5.0) and s.stop == pytest.approx(90.0) and s.step == pytest.approx(0.01)


def test_fwhm_against_two_theta_is_recovered():
    x = GRID.values()
    centres = np.arange(12.0, 89.0, 8.0)
    width = (lambda t: 0.04 + 0.003 * t)  # 0.076 .. 0.30 degrees
    y = gaussian_pattern(x, centres, np.linspace(1.0, 0.5, centres.size), width, background=0.01, sigma=0.001)
    s = realism.measure(x, y)
    assert len(s.peak_fwhm) == realism.FWHM_MAX_PEAKS  # the strongest ten of eleven
    assert np.allclose(s.peak_fwhm, width(s.peak_two_theta), rtol=0.10)


def test_visible_peaks_need_five_sigma():
    x = GRID.values()
    sigma = 0.004
    # 1.0, 10 sigma and 6 sigma are visible, 3 sigma is not (VISIBLE_K = 5)
    heights = [1.0, 10 * sigma, 6 * sigma, 3 * sigma]
    y = gaussian_pattern(x, [20.0, 40.0, 60.0, 80.0], heights, 0.3, background=0.05, sigma=sigma, seed=2)
    assert realism.measure(x, y).n_peaks == 3
    clean = gaussian_pattern(x, [20.0, 40.0, 60.0, 80.0], [1.0, 0.5, 0.01, 0.0005], 0.1)
    assert realism.measure(x, clean).n_peaks == 3  # noise-free: peaks above 1e-3 of the strongest


def test_covered_range_and_step():
    x = np.arange(10.0, 80.0 + 1e-9, 0.02)
    y = gaussian_pattern(x, [30.0, 50.0], [1.0, 0.5], 0.2, background=0.05, sigma=0.002)
    y[(x < 15.0) | (x > 75.0)] = 0.0  # not measured there
    s = realism.measure(x, np.maximum(y, 0.0))
    assert s.start == pytest.approx(15.0, abs=0.021) and s.stop == pytest.approx(75.0, abs=0.021)
    assert s.step == pytest.approx(0.02)
    assert realism.measure(x, y, step=0.05).step == 0.05


def test_background_shape_of_a_sloped_background():
    x = GRID.values()
    slope = 0.2 - 0.002 * (x - 5.0)  # 0.2 at 5 degrees, 0.03 at 90
    y = gaussian_pattern(x, [25.0, 45.0, 65.0], [1.0, 0.6, 0.4], 0.1) + slope
    b = realism.background_curve(x, y)
    assert np.abs(b - slope).max() < 0.01
    s = realism.measure(x, y)
    height = y.max() - np.interp(25.0, x, slope)
    assert s.background_low * height == pytest.approx(slope[: x.size // 3].mean(), abs=0.005)
    assert s.background_high * height == pytest.approx(slope[-(x.size // 3):].mean(), abs=0.005)
    assert abs(s.background_curvature) < 0.005


def test_scan_view_recovers_the_scan_points():
    nodes = np.arange(10.0, 80.0 + 1e-9, 0.05)
    values = np.abs(np.sin(nodes)) + 0.1
    g = GRID.values()
    row = np.where((g >= nodes[0]) & (g <= nodes[-1]), np.interp(g, nodes, values), 0.0)
    x, y = realism.scan_view(row, GRID, 10.0, 0.05)
    assert np.allclose(x, nodes) and np.allclose(y, values)
    x_fine, _ = realism.scan_view(row, GRID, 10.0, 0.005)  # finer than the grid: the grid itself
    assert np.allclose(np.diff(x_fine), GRID.step)


def test_render_synthetic_is_augmented_patterns_and_is_measured():
    crystals = small_batch(4)
    cfg = AugmentConfig()
    syn = realism.render_synthetic(crystals, cfg, np.random.default_rng(5))
    assert np.array_equal(syn.patterns, augmented_patterns(crystals, cfg, np.random.default_rng(5)))
    assert syn.scan_step.shape == (4,)
    assert np.all((syn.scan_step >= cfg.crop_step[0]) & (syn.scan_step <= cfg.crop_step[1]))
    stats = realism.measure_synthetic(syn)
    assert len(stats) == 4
    for s, start, step in zip(stats, syn.scan_start, syn.scan_step):
        assert s.step == step and s.start >= start - GRID.step and s.stop <= GRID.stop
        assert 0 <= s.noise < 1 and s.n_peaks >= 1
    ideal = realism.render_synthetic(crystals, None, np.random.default_rng(5))
    assert np.all(ideal.scan_step == GRID.step) and realism.measure_synthetic(ideal)[0].noise < 1e-3


# ------------------------------------------------------------------------------------------------
# the comparison


def fake(noise: float, **changes) -> realism.PatternStats:
    base = dict(start=5.0, stop=90.0, step=0.01, noise=noise, background_level=0.01, background_low=0.01,
                background_high=0.01, background_curvature=0.0, n_peaks=20, fwhm_median=0.1,
                peak_two_theta=np.array([30.0]), peak_fwhm=np.array([0.1]))
    return realism.PatternStats(**{**base, **changes})


def test_compare_checks_measured_range_inside_synthetic_range():
    synthetic = [fake(v) for v in np.linspace(0.001, 0.1, 200)]
    stats = {"inside": [fake(v) for v in np.linspace(0.01, 0.05, 40)],
             "outside": [fake(v) for v in np.linspace(0.01, 0.3, 40)],
             "synthetic": synthetic}
    report = realism.compare(stats)
    assert report.inside[("noise", "inside")] is True
    assert report.inside[("noise", "outside")] is False
    assert report.inside[("step", "inside")] is True and not report.all_inside
    s = report.summary("noise", "synthetic")
    assert s.n == 200 and s.p1 < s.p5 < s.median < s.p95 < s.p99
    text = realism.format_report(report)
    assert "OUTSIDE" in text and "1-99 %" in text and "noise" in text
    # a measured background of exactly 0 is matched within INTENSITY_RESOLUTION
    zero = {"m": [fake(0.01, background_level=0.0) for _ in range(20)],
            "synthetic": [fake(0.01, background_level=v) for v in np.linspace(2e-4, 0.02, 100)]}
    assert realism.compare(zero).inside[("background_level", "m")] is True  # p1 = 4e-4
    zero["synthetic"] = [fake(0.01, background_level=v) for v in np.linspace(2e-3, 0.02, 100)]
    assert realism.compare(zero).inside[("background_level", "m")] is False
    payload = realism.report_payload(report, stats)
    json.dumps(payload, allow_nan=False)
    with pytest.raises(ConfigError, match="no source named"):
        realism.compare({"m": synthetic})


# ------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("intensity, message", [
    (np.zeros(500), "no positive intensity"),
    (np.r_[np.ones(499), np.nan], "NaN"),
    (np.ones(5), "at least 10"),
])
def test_bad_patterns_raise_data_errors(intensity, message):
    x = np.linspace(5.0, 90.0, intensity.size)
    with pytest.raises(DataError, match=message):
        realism.measure(x, intensity, where="my pattern")


def test_flat_and_malformed_patterns_raise():
    x = np.linspace(5.0, 90.0, 500)
    with pytest.raises(DataError, match="flat pattern"):
        realism.measure(x, np.ones(500))
    with pytest.raises(DataError, match="strictly increasing"):
        realism.measure(x[::-1], np.ones(500))
    with pytest.raises(DataError, match="equal length"):
        realism.measure(x, np.ones(499))


def test_loaders_name_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, two_theta=np.arange(10.0))
    with pytest.raises(DataError, match="no array 'patterns'"):
        realism.load_npz_patterns(bad)
    with pytest.raises(DataError, match="no such file"):
        realism.load_npz_patterns(tmp_path / "missing.npz")
    manifest = tmp_path / "m.csv"
    manifest.write_text("sample_id,pattern_path\nx,missing.xy\n")
    with pytest.raises(DataError, match="line 2"):
        realism.load_manifest_patterns(manifest, variants=None)


# ------------------------------------------------------------------------------------------------
# real files (shared data; skipped where missing, a failure under CI)


@pytest.fixture
def rruff_path(experimental_data):
    path = experimental_data / "rruff_dev" / "rruff_dev300.npz"
    assert path.is_file(), f"{path} missing from the shared data"
    return path


@pytest.fixture
def xred_manifest(experimental_data, tmp_path):
    """A one-row manifest of a raw XRED pattern (absolute path)."""
    path = experimental_data / "xred" / "monophase" / "UnderThreeElements" / "Al2O3" / "data.csv"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"sample_id,variant,pattern_path,wavelength_A\nxred_Al2O3,raw,{path},1.54184\n")
    return manifest


def plausible(s: realism.PatternStats) -> None:
    assert 0 < s.noise < 0.2 and 0 <= s.background_level < 1 and abs(s.background_curvature) < 1
    assert 0.01 < s.fwhm_median < 2 and np.all(np.isfinite(s.peak_fwhm)) and 1 <= s.n_peaks < 500
    assert 5.0 <= s.start < s.stop <= 90.0 and 0.001 < s.step < 0.2


def test_rruff_rows_give_plausible_statistics(rruff_path):
    scans = realism.load_npz_patterns(rruff_path, rows=[0, 1, 2])
    assert [s.name for s in scans] == [f"rruff_dev300.npz[{i}]" for i in range(3)]
    for s in realism.measure_scans(scans):
        plausible(s)
        assert s.step == pytest.approx(0.01, rel=1e-3) and s.start < 5.1 and s.stop > 89.9


def test_xred_file_gives_plausible_statistics(xred_manifest):
    scans = realism.load_manifest_patterns(xred_manifest)
    assert list(scans) == ["raw"] and scans["raw"][0].name == "xred_Al2O3 raw"
    scan = scans["raw"][0]
    assert scan.two_theta[-1] <= 90.0 and scan.intensity.min() >= 0  # cut to the model window
    s = realism.measure_scans(scans["raw"])[0]
    plausible(s)
    assert s.step == pytest.approx(0.0203, rel=0.02) and s.start == pytest.approx(10.0, abs=0.05)
    assert s.noise < 0.01 and s.fwhm_median < 0.2  # a clean laboratory scan of corundum
    with pytest.raises(DataError, match="no row of the variants background_removed"):
        realism.load_manifest_patterns(xred_manifest, variants=["background_removed"])


def test_cli_end_to_end(rruff_path, xred_manifest, tmp_path, capsys):
    plot, out = tmp_path / "realism.png", tmp_path / "realism.json"
    argv = ["realism", "--rruff", str(rruff_path), "--xred-manifest", str(xred_manifest), "--n-synthetic", "6",
            "--seed", "2", "--plot", str(plot), "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "rruff 300, xred raw 1, synthetic 6" in text and "fwhm_median" in text and "measured 5-95 %" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads(out.read_text())
    assert payload["generation"]["seed"] == 2 and payload["generation"]["augment_config"]["crop"] is True
    assert payload["synthetic"] == "synthetic"
    assert len(payload["patterns"]["synthetic"]) == 6 and payload["patterns"]["rruff"][0]["name"].endswith("[0]")
    assert {s["source"] for s in payload["summaries"]} == {"rruff", "xred raw", "synthetic"}
    # never over an existing file without --overwrite
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNTHXRD_SHARED_DATA", str(tmp_path))  # no shared data there
    assert main(["realism", "--n-synthetic", "2"]) == 2
    assert "give --rruff PATH" in capsys.readouterr().err
    assert main(["realism", "--rruff", "none", "--xred-manifest", "none"]) == 2
    assert "no measured patterns" in capsys.readouterr().err
    bad = tmp_path / "nan.npz"
    np.savez(bad, two_theta=np.linspace(5, 90, 100), patterns=np.full((1, 100), np.nan))
    assert main(["realism", "--rruff", str(bad), "--xred-manifest", "none", "--n-synthetic", "2"]) == 2
    assert "nan.npz[0]: NaN" in capsys.readouterr().err
