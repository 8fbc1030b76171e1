"""Augmentation configs: :class:`AugmentConfig`, its presets (:data:`PRESETS`) and TOML files.

The ranges of every random parameter of :mod:`synthxrd.augment` (formulas, defaults and references
in its docstring), the K-alpha doublet of the anode (``anode``), and :func:`ideal_config`, the
config with every experimental effect off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from synthxrd.config import from_dict, load_toml
from synthxrd.errors import ConfigError
from synthxrd.simulate.common import wavelengths

__all__ = ["ANODE_TOL", "PRESETS", "AugmentConfig", "Range", "augment_config", "ideal_config"]

#: Anode tolerance: an anode's K-alpha1 within this many Angstrom of the wavelength is "that anode".
ANODE_TOL = 2e-3

Range = tuple[float, float]

#: Named augmentation configs (``--augment NAME``): field overrides of :class:`AugmentConfig`.
#: "measured" adds the detection limit (stage 10), which hides the weak reflections that measured
#: patterns never show (docs/realism.md#detection-limit-the-measured-preset).
#: "calibration" leaves out cropping (stage 9), the fusion fit's preset: without it the search finds
#: the space group of a strained library structure first in 0.74 of simulated patterns (1,000; best
#: score median 0.76), as on the measured rruff_dev minerals (0.72, median 0.72); without background
#: as well 0.94, far easier. (With cropping it was 0.42 only while the fit searched the whole grid;
#: searched on the scan's window, as the fit now does for a preset that crops, ``default`` gives 0.75:
#: docs/search_match.md, "Thin films in the fit".)
#: "thin_film" is what the fusion must not be fooled by (issue 29): strong preferred orientation in
#: every pattern (March-Dollase r 0.3-0.6 along a low-index direction) and a short scan (a window
#: starting at 10-35 and ending at 40-65 degrees), so that few lines are left.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {}, "measured": {"detection": True}, "calibration": {"crop": False},
    "thin_film": {"texture_probability": 1.0, "texture_r": (0.3, 0.6), "crop_probability": 1.0,
                  "crop_start": (10.0, 35.0), "crop_end": (40.0, 65.0)}}


@dataclass(frozen=True)
class AugmentConfig:
    """Which effects :func:`render` applies and the ranges their per-pattern parameters come from.

    Every ``*_probability`` is the chance per pattern that the component is present, every range
    ``(low, high)`` is sampled uniformly per pattern (``noise_peak_counts`` and ``crop_step``
    log-uniformly, so that typical scans are as fine as typical measurements). See the
    docstring of :mod:`synthxrd.augment` for the formulas, defaults and references; the defaults marked [R] there were
    fitted to measured patterns with ``synthxrd realism`` (docs/realism.md).
    """

    # 1. profile
    size_nm: Range = (2.0, 400.0)
    instrument: bool = True
    caglioti_u: Range = (0.0, 0.004)
    caglioti_v: Range = (-0.01, 0.0)
    caglioti_w: Range = (5e-5, 0.0015)
    lorentz_x: Range = (0.0, 0.04)
    lorentz_y: Range = (0.0, 0.01)
    strain: bool = True
    strain_epsilon: Range = (0.0, 3e-4)
    lorentzian: bool = True
    lorentz_fraction: Range = (0.0, 1.0)
    window_fwhm: float = 30.0
    # 2. K-alpha doublet
    kalpha2: bool = True
    kalpha2_probability: float = 0.8
    kalpha2_ratio: Range = (0.48, 0.52)
    anode: str = "auto"
    # 3. shifts
    zero_shift: bool = True
    zero_shift_deg: Range = (-0.05, 0.05)
    displacement: bool = True
    displacement_mm: Range = (-0.15, 0.15)
    goniometer_radius_mm: Range = (150.0, 300.0)
    # 4. preferred orientation
    texture: bool = True
    texture_probability: float = 0.5
    texture_r: Range = (0.6, 1.4)
    texture_max_index: int = 1
    # 5. Debye-Waller
    debye_waller: bool = True
    debye_waller_b: Range = (0.0, 2.0)
    # 6. background
    background: bool = True
    background_level: Range = (0.0, 0.35)
    background_degree: int = 4
    background_bumps: int = 3
    background_bump_fwhm: Range = (3.0, 20.0)
    amorphous: bool = True
    amorphous_probability: float = 0.2
    amorphous_center: Range = (18.0, 32.0)
    amorphous_fwhm: Range = (5.0, 15.0)
    amorphous_height: Range = (0.02, 0.5)
    # 7. noise
    noise: bool = True
    noise_peak_counts: Range = (10.0, 1e7)
    noise_gaussian_sigma: Range = (0.0, 0.003)
    # 8. impurity phase
    impurity: bool = True
    impurity_probability: float = 0.3
    impurity_fraction: Range = (0.0, 0.05)
    # 9. measurement window and step
    crop: bool = True
    crop_probability: float = 0.8
    crop_start: Range = (5.0, 35.0)
    crop_end: Range = (60.0, 90.0)
    crop_step: Range = (0.005, 0.15)
    # 10. detection limit (off in "default", on in "measured")
    detection: bool = False
    detection_probability: float = 0.8
    detection_limit: Range = (2e-3, 0.1)

    def __post_init__(self) -> None:
        # (field, lowest allowed, highest allowed) of each range
        limits = {
            "size_nm": (0.5, 1e5), "caglioti_u": (0.0, 10.0), "caglioti_v": (-10.0, 10.0),
            "caglioti_w": (0.0, 10.0), "lorentz_x": (0.0, 10.0), "lorentz_y": (0.0, 10.0),
            "strain_epsilon": (0.0, 0.1), "lorentz_fraction": (0.0, 1.0), "kalpha2_ratio": (0.0, 2.0),
            "zero_shift_deg": (-5.0, 5.0), "displacement_mm": (-10.0, 10.0),
            "goniometer_radius_mm": (10.0, 10000.0), "texture_r": (0.05, 20.0), "debye_waller_b": (0.0, 50.0),
            "background_level": (0.0, 100.0), "background_bump_fwhm": (0.1, 360.0),
            "amorphous_center": (0.5, 179.0), "amorphous_fwhm": (0.1, 360.0), "amorphous_height": (0.0, 100.0),
            "noise_peak_counts": (1.0, 1e12), "noise_gaussian_sigma": (0.0, 10.0), "impurity_fraction": (0.0, 10.0),
            "crop_start": (0.0, 180.0), "crop_end": (0.0, 180.0), "crop_step": (1e-4, 10.0),
            "detection_limit": (1e-6, 1.0),
        }
        for name, (lo_ok, hi_ok) in limits.items():
            value = getattr(self, name)
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"augment: {name} must be a range [low, high], got {value!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo_ok <= lo <= hi <= hi_ok):
                raise ConfigError(f"augment: {name} must satisfy {lo_ok} <= low <= high <= {hi_ok}, got [{lo}, {hi}]")
            object.__setattr__(self, name, (lo, hi))
        for name in ("kalpha2_probability", "texture_probability", "amorphous_probability",
                     "impurity_probability", "crop_probability", "detection_probability"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment: {name} must be a probability in [0, 1], got {p!r}")
        for name in ("instrument", "strain", "lorentzian", "kalpha2", "zero_shift", "displacement", "texture",
                     "debye_waller", "background", "amorphous", "noise", "impurity", "crop", "detection"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"augment: {name} must be true or false, got {getattr(self, name)!r}")
        for name, lo_ok, hi_ok in (("texture_max_index", 1, 6), ("background_degree", 0, 12),
                                   ("background_bumps", 0, 20)):
            k = getattr(self, name)
            if isinstance(k, bool) or not isinstance(k, int) or not lo_ok <= k <= hi_ok:
                raise ConfigError(f"augment: {name} must be an integer in [{lo_ok}, {hi_ok}], got {k!r}")
        w = self.window_fwhm
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 3.0 <= w <= 1000.0:
            raise ConfigError(f"augment: window_fwhm must be a number of FWHM in [3, 1000], got {w!r}")
        if not isinstance(self.anode, str) or (self.anode.strip().lower() != "auto" and
                                               _anode_lines(self.anode) is None):
            names = sorted({k[:-3] for k in wavelengths() if k.endswith("Ka1")})
            raise ConfigError(f"augment: anode must be 'auto' or one of {', '.join(names)}, got {self.anode!r}")
        if self.crop_start[1] >= self.crop_end[0] and self.crop:
            raise ConfigError(f"augment: crop_start {list(self.crop_start)} must lie below crop_end "
                              f"{list(self.crop_end)}")


def _anode_lines(anode: str) -> tuple[float, float] | None:
    table = {k.lower(): v for k, v in wavelengths().items()}
    key = anode.strip().lower()
    if f"{key}ka1" in table and f"{key}ka2" in table:
        return table[f"{key}ka1"], table[f"{key}ka2"]
    return None


def _doublet_ratio(anode: str, wavelength: float) -> float | None:
    """lambda2/lambda1 of the anode for ``wavelength`` (None: no doublet for this wavelength)."""
    if anode.strip().lower() == "auto":
        for name, lam1 in wavelengths().items():
            if name.endswith("Ka1") and abs(lam1 - wavelength) <= ANODE_TOL:
                lines = _anode_lines(name[:-3])
                return None if lines is None else lines[1] / lines[0]
        return None
    lam1, lam2 = _anode_lines(anode)
    if abs(lam1 - wavelength) > ANODE_TOL:
        raise ConfigError(f"augment: anode {anode!r} has K-alpha1 = {lam1} A, but the patterns are simulated at "
                          f"{wavelength} A; use anode = \"auto\" or the matching wavelength")
    return lam2 / lam1


def augment_config(spec: str | Path | AugmentConfig | None) -> AugmentConfig | None:
    """The augmentation config named by ``spec``.

    ``"default"`` -> :class:`AugmentConfig` (); ``"measured"`` -> the defaults with the detection
    limit on; ``"calibration"`` -> without cropping; ``"thin_film"`` -> strong texture and a short scan
    (:data:`PRESETS`); ``"none"`` (or None) -> None (no augmentation); an
    :class:`AugmentConfig` is returned as is; anything else is the path of a TOML file whose keys
    (top level, or in an ``[augment]`` table) override the defaults.

    Raises
    ------
    ConfigError
        Missing file, invalid TOML, unknown key or invalid value (naming the file and key).
    """
    if spec is None or isinstance(spec, AugmentConfig):
        return spec
    if isinstance(spec, str) and spec.strip().lower() in ("none", "off", "false"):
        return None
    if isinstance(spec, str) and spec.strip().lower() in PRESETS:
        return AugmentConfig(**PRESETS[spec.strip().lower()])
    if not isinstance(spec, (str, Path)):
        raise ConfigError(f"augment: expected {', '.join(map(repr, PRESETS))}, 'none' or a TOML path, "
                          f"got {spec!r:.80}")
    values: dict[str, Any] = load_toml(spec)
    if set(values) == {"augment"} and isinstance(values["augment"], dict):
        values = values["augment"]
    try:
        return from_dict(AugmentConfig, values, where=str(spec))
    except ConfigError as exc:
        message = str(exc)
        if message.startswith("augment:"):
            message = f"{spec}:" + message[len("augment:"):]
        raise ConfigError(message) from None



def ideal_config(config: AugmentConfig) -> AugmentConfig:
    """``config`` with every experimental effect off: Gaussian Scherrer peaks of crystallites of
    :data:`synthxrd.simulate.DEFAULT_SIZE_RANGE_NM` on the full grid, like :func:`synthxrd.simulate.patterns`
    (the "clean" share of a training stream, ``clean_fraction``), rendered from the same reflections.
    """
    from synthxrd.simulate.common import DEFAULT_SIZE_RANGE_NM

    switches = {f.name: False for f in fields(AugmentConfig) if f.type in ("bool", bool)}
    return replace(config, size_nm=DEFAULT_SIZE_RANGE_NM, **switches)

