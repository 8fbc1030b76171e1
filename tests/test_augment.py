"""synthxrd.augment: each experimental effect against its formula, configs, determinism, plumbing."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from synthxrd import augment, io, simulate
from synthxrd.augment import AugmentConfig, augment_config, draw_parameters, line_list, render_with
from synthxrd.config import merge, to_toml
from synthxrd.errors import ConfigError
from synthxrd.simulate import _profiles
from synthxrd.simulate.pattern import Grid, ReflectionBatch
from synthxrd.structure import CrystalBatch

LAM = 1.5406
FINE = Grid(30.0, 50.0, 40001)  # 0.0005 degree steps

#: every component off, size fixed: the Gaussian-Scherrer profile of the base simulator
OFF = AugmentConfig(
    size_nm=(50.0, 50.0), instrument=False, strain=False, lorentzian=False, kalpha2=False, zero_shift=False,
    displacement=False, texture=False, debye_waller=False, background=False, noise=False, impurity=False,
    crop=False,
)


def cubic_batch(a: float = 4.0, n: int = 1) -> CrystalBatch:
    """n simple-cubic crystals of one Fe atom (lattice constant a)."""
    return CrystalBatch(np.repeat(np.eye(3)[None] * a, n, axis=0), np.zeros((n, 3)), np.full(n, 26),
                        np.ones(n), np.arange(n + 1))


def small_batch() -> CrystalBatch:
    """Rock salt, a simple cubic cell and a triclinic cell with three atoms."""
    fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    rocksalt = (np.eye(3) * 5.64, np.vstack([fcc, fcc + [.5, 0, 0]]) % 1.0, [11] * 4 + [17] * 4)
    tri = (np.array([[5.1, 0, 0], [0.8, 6.3, 0], [1.1, 0.9, 7.2]]),
           np.array([[0.1, 0.2, 0.3], [0.6, 0.15, 0.8], [0.35, 0.7, 0.45]]), [8, 14, 26])
    simple = (np.eye(3) * 3.9, np.zeros((1, 3)), [29])
    parts = [rocksalt, simple, tri]
    offsets = np.concatenate([[0], np.cumsum([len(p[2]) for p in parts])])
    return CrystalBatch(np.array([p[0] for p in parts], float), np.vstack([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]).astype(np.int64), np.ones(offsets[-1]), offsets)


def one_line(two_theta: float = 40.0, intensity: float = 1.0, hkl=(1, 0, 0)) -> ReflectionBatch:
    return ReflectionBatch(np.array([two_theta]), np.array([intensity]), np.array([hkl], np.int64),
                           np.array([0, 1], np.int64))


def params_for(config: AugmentConfig, n: int = 1, grid: Grid = FINE, wavelength=LAM, seed: int = 0, **changes):
    p = draw_parameters(config, n, np.random.default_rng(seed), grid=grid, wavelength=wavelength)
    return dataclasses.replace(p, **changes)


def draw_one(config: AugmentConfig, refl: ReflectionBatch | None = None, grid: Grid = FINE, wavelength=LAM, **changes):
    crystals = cubic_batch()
    refl = one_line() if refl is None else refl
    p = params_for(config, grid=grid, wavelength=wavelength, **changes)
    return render_with(crystals, refl, p, np.random.default_rng(1), grid=grid, wavelength=wavelength)[0].astype(float)


def centroid(x, y, lo, hi):
    m = (x >= lo) & (x <= hi)
    return float((x[m] * y[m]).sum() / y[m].sum())


def measured_fwhm(x, y):
    """FWHM of the single peak of y by linear interpolation of the half-maximum crossings."""
    k = int(np.argmax(y))
    half = y[k] / 2.0
    left = k - np.argmax(y[k::-1] < half)  # first point below half on each side
    right = k + np.argmax(y[k:] < half)
    xl = np.interp(half, [y[left], y[left + 1]], [x[left], x[left + 1]])
    xr = np.interp(half, [y[right], y[right - 1]], [x[right], x[right - 1]])
    return xr - xl


# ---------------------------------------------------------------------------------------------- configs


def test_config_names_and_files(tmp_path):
    assert augment_config("none") is None and augment_config(None) is None and augment_config("None") is None
    assert augment_config("default") == AugmentConfig()
    path = tmp_path / "aug.toml"
    path.write_text("texture = false\nsize_nm = [50, 60]\nnoise_peak_counts = [1000.0, 1000.0]\n")
    c = augment_config(path)
    assert c.texture is False and c.size_nm == (50.0, 60.0) and c.noise_peak_counts == (1000.0, 1000.0)
    assert c.background == AugmentConfig().background
    assert merge(AugmentConfig, file=path) == c  # the generic config layering reads the same file
    table = tmp_path / "table.toml"
    table.write_text("[augment]\ncrop = false\n")
    assert augment_config(str(table)).crop is False
    round_trip = tmp_path / "default.toml"
    round_trip.write_text(to_toml(AugmentConfig()))
    assert augment_config(round_trip) == AugmentConfig()


@pytest.mark.parametrize("text, match", [
    ("texure = true\n", r"bad\.toml: unknown key 'texure'"),
    ("size_nm = [60, 50]\n", r"bad\.toml: size_nm"),
    ("kalpha2_probability = 1.5\n", r"bad\.toml: kalpha2_probability"),
    ("noise = 1\n", r"noise"),
    ("anode = \"Xx\"\n", r"anode"),
    ("crop_step = 0.01\n", r"crop_step"),
])
def test_config_errors(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        augment_config(path)


def test_config_missing_file_and_anode_mismatch(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        augment_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="anode 'Co'"):
        draw_parameters(AugmentConfig(anode="Co"), 1, np.random.default_rng(0), wavelength=LAM)


# ---------------------------------------------------------------------------------------------- output


def test_shape_dtype_normalisation_and_determinism():
    batch = small_batch()
    cfg = AugmentConfig()
    a = augment.augmented_patterns(batch, cfg, np.random.default_rng(7))
    b = augment.augmented_patterns(batch, cfg, np.random.default_rng(7))
    c = augment.augmented_patterns(batch, cfg, np.random.default_rng(8))
    assert a.shape == (3, 8501) and a.dtype == np.float32
    assert np.allclose(a.max(axis=1), 1.0) and a.min() >= 0.0 and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert augment.augmented_patterns(batch, None, np.random.default_rng(7)).shape == (3, 8501)


def test_all_components_off_is_the_base_simulator():
    batch = small_batch()
    ours = augment.augmented_patterns(batch, OFF, np.random.default_rng(0))
    base = simulate.patterns(batch, crystallite_size_nm=50.0)
    assert np.abs(ours - base).max() < 1e-4


def test_crystal_without_reflections_on_the_grid_is_all_zero():
    crystals = cubic_batch(n=2)
    refl = ReflectionBatch(np.array([40.0, 95.0]), np.ones(2), np.array([[1, 0, 0], [1, 1, 0]]), np.array([0, 1, 2]))
    out = render_with(crystals, refl, params_for(AugmentConfig(), n=2, grid=Grid()), np.random.default_rng(0))
    assert out[0].max() == 1.0 and not out[1].any()


# ---------------------------------------------------------------------------------------------- shifts


def test_zero_shift_moves_the_peak_by_the_constant():
    x = FINE.values()
    y0 = draw_one(OFF)
    y = draw_one(dataclasses.replace(OFF, zero_shift=True, zero_shift_deg=(0.037, 0.037)))
    assert centroid(x, y0, 39, 41) == pytest.approx(40.0, abs=2e-5)
    assert centroid(x, y, 39, 41) == pytest.approx(40.037, abs=2e-5)


@pytest.mark.parametrize("s_mm", [0.12, -0.2])
def test_sample_displacement_shift_formula(s_mm):
    x = FINE.values()
    cfg = dataclasses.replace(OFF, displacement=True, displacement_mm=(s_mm, s_mm), goniometer_radius_mm=(200.0, 200.0))
    y = draw_one(cfg)
    expected = 40.0 - math.degrees(2.0 * s_mm * math.cos(math.radians(20.0)) / 200.0)
    assert centroid(x, y, 39, 41) == pytest.approx(expected, abs=2e-5)
    assert augment.displacement_shift(40.0, s_mm, 200.0) == pytest.approx(expected - 40.0)
    assert (expected < 40.0) == (s_mm > 0)  # sample below the axis: lower angles


# ---------------------------------------------------------------------------------------------- doublet


@pytest.mark.parametrize("anode, wavelength", [("auto", LAM), ("Cu", "CuKa1"), ("Co", "CoKa1")])
def test_kalpha2_position_and_ratio(anode, wavelength):
    lines = simulate.wavelengths()
    metal = "Co" if anode == "Co" else "Cu"
    lam1, lam2 = lines[f"{metal}Ka1"], lines[f"{metal}Ka2"]
    lam = simulate.resolve_wavelength(wavelength)
    grid = Grid(78.0, 82.0, 8001)
    cfg = dataclasses.replace(OFF, size_nm=(2000.0, 2000.0), kalpha2=True, kalpha2_probability=1.0,
                              kalpha2_ratio=(0.5, 0.5), anode=anode)
    y = draw_one(cfg, one_line(80.0), grid=grid, wavelength=wavelength)
    x = grid.values()
    expected = math.degrees(2.0 * math.asin(math.sin(math.radians(40.0)) * lam2 / lam1))
    assert expected - 80.0 > 0.15  # resolved doublet
    mid = 0.5 * (80.0 + expected)
    assert centroid(x, y, 79.5, mid) == pytest.approx(80.0, abs=1e-4)
    assert centroid(x, y, mid, 80.8) == pytest.approx(expected, abs=1e-4)
    area1, area2 = y[(x > 79.5) & (x < mid)].sum(), y[(x > mid) & (x < 80.8)].sum()
    assert area2 / area1 == pytest.approx(0.5, rel=1e-3)
    assert augment.kalpha2_two_theta(80.0, lam1, lam2) == pytest.approx(expected)
    assert lam == pytest.approx(lam1, abs=1e-3)


def test_no_doublet_for_a_wavelength_without_anode():
    cfg = dataclasses.replace(OFF, kalpha2=True, kalpha2_probability=1.0)
    p = params_for(cfg, wavelength=1.0)
    assert p.lambda_ratio == 1.0 and p.kalpha2_ratio[0] == 0.0
    assert len(line_list(cubic_batch(), one_line(), p, wavelength=1.0).center) == 1


# ---------------------------------------------------------------------------------------------- profile


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("window", [30.0, 5.0])
def test_pseudo_voigt_area_and_shape(eta, window):
    grid = Grid(20.0, 60.0, 400001)  # 1e-4 degrees
    x = grid.values()
    out = np.zeros(grid.n)
    h = 0.12
    _profiles.add_pseudo_voigt(out, grid.start, grid.step, 40.0, 2.5, h, eta, window)
    assert out.sum() * grid.step == pytest.approx(2.5, rel=1e-5)  # the truncated tail is kept in the window
    frac = 2.0 / math.pi * math.atan(2.0 * window)
    assert 1.0 - _profiles.lorentz_window_fraction(30.0) == pytest.approx(1.0 / (math.pi * 30.0), rel=1e-3)
    inside = np.abs(x - 40.0) < min(window * h, 7 * h / 2.3548) - 1e-9
    g = augment.pseudo_voigt(x[inside], 40.0, h, 0.0)
    lor = augment.pseudo_voigt(x[inside], 40.0, h, 1.0)
    assert np.allclose(out[inside], 2.5 * (eta * lor / frac + (1 - eta) * g), rtol=1e-9, atol=1e-12)
    assert not out[np.abs(x - 40.0) > window * h + 1e-9].any()


def test_rendered_area_over_height_matches_the_pseudo_voigt():
    cfg = dataclasses.replace(OFF, lorentzian=True, lorentz_fraction=(0.5, 0.5))
    y = draw_one(cfg)
    h, eta = augment.line_fwhm_eta(40.0, LAM, size_nm=50.0, xi=0.5)
    height = (eta * 2 / (math.pi * h) / _profiles.lorentz_window_fraction(30.0)
              + (1 - eta) * 2 / h * math.sqrt(math.log(2) / math.pi))
    assert y.sum() * FINE.step == pytest.approx(1.0 / height, rel=2e-3)  # area of a peak of height 1


def test_fwhm_gaussian_caglioti_scherrer_strain():
    u, v, w, eps = 0.012, -0.004, 0.003, 6e-4
    cfg = dataclasses.replace(OFF, instrument=True, caglioti_u=(u, u), caglioti_v=(v, v), caglioti_w=(w, w),
                              lorentz_x=(0.0, 0.0), lorentz_y=(0.0, 0.0), strain=True, strain_epsilon=(eps, eps))
    t, c = math.tan(math.radians(20.0)), math.cos(math.radians(20.0))
    size = math.degrees(0.9 * LAM / (500.0 * c))
    strain = math.degrees(4 * eps * t)
    expected = math.sqrt(u * t * t + v * t + w + size**2 + strain**2)
    y = draw_one(cfg)
    assert measured_fwhm(FINE.values(), y) == pytest.approx(expected, rel=1e-3)
    lines = line_list(cubic_batch(), one_line(), params_for(cfg))
    assert lines.eta[0] == 0.0 and lines.fwhm[0] == pytest.approx(expected, rel=1e-12)


def test_fwhm_lorentzian_scherrer_strain():
    x_, y_, eps = 0.02, 0.015, 4e-4
    cfg = dataclasses.replace(OFF, instrument=True, caglioti_u=(0.0, 0.0), caglioti_v=(0.0, 0.0), caglioti_w=(0.0, 0.0),
                              lorentz_x=(x_, x_), lorentz_y=(y_, y_), strain=True, strain_epsilon=(eps, eps),
                              lorentzian=True, lorentz_fraction=(1.0, 1.0))
    t, c = math.tan(math.radians(20.0)), math.cos(math.radians(20.0))
    expected = x_ * t + y_ / c + math.degrees(0.9 * LAM / (500.0 * c)) + math.degrees(4 * eps * t)
    y = draw_one(cfg)
    assert measured_fwhm(FINE.values(), y) == pytest.approx(expected, rel=1e-3)
    lines = line_list(cubic_batch(), one_line(), params_for(cfg))
    assert lines.eta[0] == pytest.approx(1.0, abs=1e-5) and lines.fwhm[0] == pytest.approx(expected, rel=1e-12)


def test_fwhm_thompson_cox_hastings_mixture():
    cfg = dataclasses.replace(OFF, instrument=True, caglioti_u=(0.01, 0.01), caglioti_v=(0.0, 0.0),
                              caglioti_w=(0.004, 0.004), lorentz_x=(0.01, 0.01), lorentz_y=(0.0, 0.0),
                              lorentzian=True, lorentz_fraction=(0.6, 0.6))
    h, eta = augment.line_fwhm_eta(40.0, LAM, size_nm=50.0, u=0.01, w=0.004, x=0.01, xi=0.6)
    assert 0.2 < eta < 0.9
    y = draw_one(cfg)
    assert measured_fwhm(FINE.values(), y) == pytest.approx(h, rel=1e-3)
    lines = line_list(cubic_batch(), one_line(), params_for(cfg))
    assert lines.fwhm[0] == pytest.approx(h, rel=1e-12) and lines.eta[0] == pytest.approx(eta, rel=1e-12)


# ---------------------------------------------------------------------------------------------- texture, DW


@pytest.mark.parametrize("r", [0.4, 0.7, 1.0, 1.3, 2.5])
def test_march_dollase_is_normalised_over_directions(r):
    c = (np.arange(200000) + 0.5) / 200000  # cos(alpha) uniform over the sphere (midpoint rule)
    assert augment.march_dollase(c, r).mean() == pytest.approx(1.0, rel=1e-6)
    v = np.random.default_rng(0).standard_normal((200000, 3))
    cos = v[:, 2] / np.linalg.norm(v, axis=1)
    assert augment.march_dollase(cos, r).mean() == pytest.approx(1.0, rel=0.02)


def test_texture_r_one_is_neutral_and_r_changes_families():
    crystals = cubic_batch(4.0)
    refl = simulate.reflections(crystals, two_theta_range=(10, 60))
    base = line_list(crystals, refl, params_for(OFF))
    textured = dataclasses.replace(OFF, texture=True, texture_probability=1.0, texture_r=(1.0, 1.0))
    same = line_list(crystals, refl, params_for(textured))
    assert np.array_equal(same.intensity, base.intensity)
    r = 0.7
    p = params_for(dataclasses.replace(textured, texture_r=(r, r)), texture_direction=np.array([[0.0, 0.0, 1.0]]))
    lines = line_list(crystals, refl, p)
    assert np.array_equal(lines.center, base.center)
    ratio = lines.intensity / base.intensity
    P = (lambda c2: (r * r * c2 + (1 - c2) / r) ** -1.5)
    # half-space members: {100}: 100, 010, 001; {110}: 110, 1-10 (alpha 90), 101, 10-1, 011, 01-1 (cos^2 1/2)
    assert ratio[0] == pytest.approx((P(1.0) + 2 * P(0.0)) / 3, rel=1e-12)
    assert ratio[1] == pytest.approx((2 * P(0.0) + 4 * P(0.5)) / 6, rel=1e-12)
    assert ratio[2] == pytest.approx(P(1.0 / 3.0), rel=1e-12)  # {111}: every member at cos^2 = 1/3
    assert abs(ratio[0] - 1) > 0.1


def test_debye_waller_ratio():
    crystals = cubic_batch(4.0)
    refl = simulate.reflections(crystals, two_theta_range=(10, 60))
    base = line_list(crystals, refl, params_for(OFF))
    b = 1.7
    lines = line_list(crystals, refl, params_for(dataclasses.replace(OFF, debye_waller=True, debye_waller_b=(b, b))))
    s2 = (np.sin(np.radians(base.center / 2)) / LAM) ** 2
    assert np.allclose(lines.intensity / base.intensity, np.exp(-2 * b * s2), rtol=1e-12)
    k1, k2 = 0, len(base.center) - 1
    two_peaks = (lines.intensity[k1] / lines.intensity[k2]) / (base.intensity[k1] / base.intensity[k2])
    assert two_peaks == pytest.approx(math.exp(-2 * b * (s2[k1] - s2[k2])), rel=1e-12)
    assert np.allclose(augment.debye_waller_factor(base.center, b), np.exp(-2 * b * s2))
    # in the rendered pattern: areas of the first and last peak
    grid = Grid(10.0, 60.0, 50001)
    x = grid.values()
    areas = []
    for cfg in (OFF, dataclasses.replace(OFF, debye_waller=True, debye_waller_b=(b, b))):
        y = render_with(crystals, refl, params_for(cfg, grid=grid), np.random.default_rng(0), grid=grid)[0]
        areas.append([y[np.abs(x - base.center[k]) < 0.5].sum() for k in (k1, k2)])
    (a1, a2), (b1, b2) = areas
    assert (b1 / b2) / (a1 / a2) == pytest.approx(math.exp(-2 * b * (s2[k1] - s2[k2])), rel=1e-6)


def test_impurity_strongest_line_is_the_fraction():
    crystals = CrystalBatch.concatenate([cubic_batch(4.0), cubic_batch(4.3)])
    refl = simulate.reflections(crystals, two_theta_range=(10, 60))
    cfg = dataclasses.replace(OFF, impurity=True, impurity_probability=1.0, impurity_fraction=(0.05, 0.05))
    lines = line_list(crystals, refl, params_for(cfg, n=2))
    base = line_list(crystals, refl, params_for(OFF, n=2))
    own = slice(base.offsets[0], base.offsets[1])
    n_own = base.offsets[1] - base.offsets[0]
    mine = lines.intensity[lines.offsets[0]:lines.offsets[1]]
    assert np.array_equal(mine[:n_own], base.intensity[own])
    assert mine[n_own:].max() == pytest.approx(0.05 * mine[:n_own].max(), rel=1e-12)
    impurity_centers = lines.center[lines.offsets[0] + n_own:lines.offsets[1]]
    assert np.allclose(impurity_centers, base.center[base.offsets[1]:base.offsets[2]])


# ---------------------------------------------------------------------------------------------- background, noise, crop


def flat_background_config(level: float, **changes) -> AugmentConfig:
    return dataclasses.replace(OFF, background=True, background_level=(level, level), background_degree=0,
                               background_bumps=0, amorphous=False, **changes)


def test_background_smooth_and_positive():
    grid = Grid()
    cfg = dataclasses.replace(OFF, background=True, background_bumps=3, amorphous=True, amorphous_probability=1.0)
    x = grid.values()
    for seed in range(5):
        y = draw_one(cfg, one_line(89.5), grid=grid, seed=seed)  # a peak at the end; background elsewhere
        bg = y[x < 85]
        assert bg.min() > 0.0
        assert np.abs(np.diff(bg, 2)).max() < 1e-4 * bg.max()
    p = params_for(cfg, grid=grid)
    assert p.hump_height[0] > 0 and 18 <= p.hump_center[0] <= 32


def test_poisson_noise_variance_equals_mean():
    rng = np.random.default_rng(0)
    values = np.full(200000, 0.25)
    y = augment.add_counting_noise(values, 400.0, 0.0, rng) * 400.0  # counts ~ Poisson(100)
    assert y.mean() == pytest.approx(100.0, rel=5e-3) and y.var() == pytest.approx(100.0, rel=0.02)
    assert np.allclose(y, np.round(y), rtol=0, atol=1e-9)  # integer counts
    g = augment.add_counting_noise(values, 0.0, 0.01, rng)
    assert g.std() == pytest.approx(0.01, rel=0.02) and g.mean() == pytest.approx(0.25, abs=1e-4)
    # through render: flat background at level L, peak counts C -> var/mean^2 = 1/(C L)
    level, counts = 0.05, 2000.0
    cfg = flat_background_config(level, noise=True, noise_peak_counts=(counts, counts),
                                 noise_gaussian_sigma=(0.0, 0.0))
    x = Grid().values()
    y = draw_one(cfg, one_line(89.5), grid=Grid())[x < 85]
    assert y.var() / y.mean() ** 2 == pytest.approx(1.0 / (counts * level), rel=0.1)


@pytest.mark.parametrize("step", [0.023, 0.004])
def test_crop_zero_outside_the_measured_window(step):
    grid = Grid()
    cfg = flat_background_config(0.05, crop=True, crop_probability=1.0, crop_start=(20.0, 20.0),
                                 crop_end=(60.0, 60.0), crop_step=(step, step))
    y = draw_one(cfg, one_line(40.0), grid=grid)
    x = grid.values()
    p = params_for(cfg, grid=grid)
    last = p.measured_start[0] + (p.measured_points[0] - 1) * step
    assert p.measured_start[0] == 20.0 and 60.0 <= last < 60.0 + step
    assert not y[(x < 20.0 - 1e-9) | (x > last + 1e-9)].any()
    assert (y[(x >= 20.0) & (x <= 60.0)] > 0).all()


@pytest.mark.parametrize("step", [0.0037, 0.01, 0.031])
def test_resample_kernel_equals_io_resample(step):
    grid = Grid()
    rng = np.random.default_rng(0)
    n = int((70.0 - 12.3) / step) + 1
    y = rng.random(n)
    out = np.zeros((1, grid.n))
    _profiles.resample_uniform(y, np.array([12.3]), np.array([step]), np.array([0, n]), grid.start, grid.step, out)
    ref, _ = io.resample(12.3 + step * np.arange(n), y, grid)
    assert np.allclose(out[0], ref, rtol=1e-9, atol=1e-12)


def test_empty_batch():
    empty = CrystalBatch.from_crystals([])
    refl = simulate.reflections(empty)
    out = augment.render(empty, refl, AugmentConfig(), np.random.default_rng(0))
    assert out.shape == (0, 8501) and out.dtype == np.float32


def test_reflection_window_covers_shifts_and_tails():
    cfg = AugmentConfig()
    lo, hi = augment.reflection_window(cfg)
    shift = 0.05 + math.degrees(2 * 0.15 / 150.0)
    assert lo == 0.0 and 90.0 + shift < hi <= 90.0 + shift + augment.TAIL_MARGIN_CAP_DEG + 1e-9
    lo_off, hi_off = augment.reflection_window(OFF)
    assert 4.0 < lo_off < 5.0 and 90.0 < hi_off < 91.0  # Gaussian-Scherrer lines of 50 nm end at 7 sigma


def test_ideal_config_is_the_base_simulator_from_the_same_reflections():
    """The clean share of a stream: every effect off, the base simulator's sizes and profile."""
    ideal = augment.ideal_config(AugmentConfig())
    assert ideal.size_nm == simulate.DEFAULT_SIZE_RANGE_NM
    switches = [f.name for f in dataclasses.fields(AugmentConfig) if f.type in ("bool", bool)]
    assert "crop" in switches and "noise" in switches and not any(getattr(ideal, s) for s in switches)
    batch = small_batch()
    fixed = dataclasses.replace(ideal, size_nm=(50.0, 50.0))
    refl = simulate.reflections(batch, two_theta_range=augment.reflection_window(AugmentConfig()))
    ours = augment.render(batch, refl, fixed, np.random.default_rng(0))
    assert np.abs(ours - simulate.patterns(batch, crystallite_size_nm=50.0)).max() < 1e-4


def test_detection_limit_drops_the_lines_below_its_share_of_the_strongest():
    center = np.array([20.0, 30.0, 40.0, 95.0, 25.0, 35.0])
    intensity = np.array([1.0, 0.04, 0.06, 5.0, 2.0, 0.01])
    offsets = np.array([0, 4, 6])
    cut = augment.detection_cut(center, intensity, offsets, np.array([0.05, 0.0]))
    # pattern 0: the strongest line on the grid is 1.0 (95 degrees lies off the 5-90 grid), 0.04 < 0.05
    assert cut.tolist() == [1.0, 0.0, 0.06, 5.0, 2.0, 0.01]
    assert intensity[1] == 0.04  # the input is left alone
    crystals = small_batch()
    refl = simulate.reflections(crystals, two_theta_range=(5, 90))
    cfg = dataclasses.replace(OFF, detection=True, detection_probability=1.0, detection_limit=(0.02, 0.02))
    base = line_list(crystals, refl, params_for(OFF, n=3, grid=Grid()), grid=Grid())
    lines = line_list(crystals, refl, params_for(cfg, n=3, grid=Grid()), grid=Grid())
    for i in range(3):
        a, b = base.offsets[i], base.offsets[i + 1]
        kept = base.intensity[a:b] >= 0.02 * base.intensity[a:b].max()
        assert np.array_equal(lines.intensity[a:b], np.where(kept, base.intensity[a:b], 0.0))
    assert (lines.intensity == 0).sum() > 0  # the triclinic cell has lines below 2 %


def test_measured_preset_is_the_default_with_a_detection_limit():
    measured = augment_config("measured")
    assert measured == dataclasses.replace(AugmentConfig(), detection=True)
    assert not AugmentConfig().detection and not augment.ideal_config(measured).detection
    p = draw_parameters(measured, 2000, np.random.default_rng(0))
    on = p.detection_limit > 0
    assert 0.75 < on.mean() < 0.85
    assert p.detection_limit[on].min() >= 2e-3 and p.detection_limit[on].max() <= 0.1
    # the draws of the other stages are those of "default"
    q = draw_parameters(AugmentConfig(), 2000, np.random.default_rng(0))
    assert q.detection_limit is None and np.array_equal(p.noise_sigma, q.noise_sigma)
    with pytest.raises(ConfigError, match="detection_limit"):
        AugmentConfig(detection_limit=(0.0, 0.1))


def test_thin_film_preset_textures_every_pattern_and_shortens_the_scan():
    films = augment_config("thin_film")
    p = draw_parameters(films, 2000, np.random.default_rng(0))
    assert (p.texture_r >= 0.3).all() and (p.texture_r <= 0.6).all()  # strong texture in every pattern
    end = p.measured_start + (p.measured_points - 1) * p.measured_step
    assert (p.measured_start >= 10.0).all() and (p.measured_start <= 35.0).all()
    assert (end <= 65.0 + p.measured_step).all() and (end - p.measured_start >= 5.0 - 1e-9).all()
    assert films == dataclasses.replace(AugmentConfig(), texture_probability=1.0, texture_r=(0.3, 0.6),
                                        crop_probability=1.0, crop_start=(10.0, 35.0), crop_end=(40.0, 65.0))
    # a rendered film is 0 outside its scan, which synthxrd.match.fusion_fit.scan_window recovers
    from synthxrd.match.fusion_fit import scan_window

    grid = Grid()
    y = augment.augmented_patterns(small_batch(), films, np.random.default_rng(1), grid=grid)
    x = grid.values()
    for row in y:
        lo, hi = scan_window(row)
        assert 10.0 <= x[lo] <= 35.0 and 40.0 - 0.2 <= x[hi - 1] <= 65.0 and not row[:lo].any() and not row[hi:].any()
    assert scan_window(np.zeros(7)) == (0, 7) and scan_window(np.array([0, 0, 1.0, 0, 2.0, 0])) == (2, 5)
