"""Experimental realism for synthetic patterns: what a laboratory Bragg-Brentano scan adds to the
kinematic peak list.

:func:`render` turns the unmerged reflections of a batch of crystals
(:func:`synthxrd.simulate.reflections`) into "measured" patterns on the model grid, every effect
drawn at random per pattern from the ranges of an :class:`AugmentConfig`; :func:`augmented_patterns`
computes the reflections (over a widened 2theta window) and renders them. Each component can be
switched off; with all of them off the result is the Gaussian-Scherrer pattern of
:func:`synthxrd.simulate.patterns`. The stages, in order (angles in degrees 2theta, wavelengths in
Angstrom; references at the end):

1. **Per-reflection factors**: Debye-Waller ``exp(-2 B s^2)``, s = sin(theta)/lambda, one
   isotropic B per pattern [DW] (it depends on 2theta only, so it is applied per merged peak); and
   March-Dollase texture ``P(alpha) = (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2)`` [MD], alpha the
   angle between the reflection's reciprocal vector g = (h k l) B* (B* rows a*, b*, c* =
   inv(lattice).T) and a preferred axis, a random primitive reciprocal-lattice direction of the
   crystal with indices in [-1, 1] (``texture_max_index``): the normal of a lattice plane, i.e. of
   a platy habit's face (r < 1: plates lying flat; r > 1: axis in the sample plane, as needles).
   Texture is applied before reflections at equal 2theta are merged: every symmetry equivalent is
   a separate reflection of the input, so the sum over a family is Dollase's.
2. **Impurity phase**: the (DW-attenuated, untextured) peaks of the next crystal of the batch
   (i + 1 mod N), scaled so that its strongest merged peak is ``fraction`` times the main phase's
   strongest merged peak (integrated intensities of the peaks on the model grid; ~ peak heights,
   the profile being shared). Both phases share the instrument and sample parameters.
3. **K-alpha doublet** [KA]: each peak also at the Bragg angle of lambda2 for the same d,
   sin(theta2) = sin(theta1) lambda2/lambda1, with ``ratio`` times its integrated intensity (the
   small change of the Lorentz-polarisation factor between theta1 and theta2 is ignored). The
   lines are those of the anode (``wavelengths()`` names ``<Anode>Ka1``/``<Anode>Ka2``) whose
   K-alpha1 is the model wavelength (``anode = "auto"``; a wavelength of no anode gets one line).
4. **Peak shifts** [KA74, CCC04] (of both lines):
   observed 2theta = 2theta + z - (180/pi) 2 s cos(theta)/R, z the zero-point error, s the
   sample displacement along the surface normal (s > 0: surface below the goniometer axis, peaks
   move to lower angles; s < 0, an over-filled holder: higher angles), R the goniometer radius.
5. **Profile** [TCH, CPR, SCH, SW]: each line an area-normalised pseudo-Voigt
   ``eta L(H) + (1 - eta) G(H)`` with the Thompson-Cox-Hastings H and eta of the Voigt of
   H_G^2 = U tan^2(theta) + V tan(theta) + W + (1 - xi)^2 (H_size^2 + H_strain^2) and
   H_L = X tan(theta) + Y / cos(theta) + xi (H_size + H_strain), where U, V, W is Caglioti's
   instrument function, X, Y the instrument's Lorentzian part (emission-line width), H_size =
   K lambda / (tau cos theta) the Scherrer size broadening (K = 0.9), H_strain = 4 eps tan(theta)
   the microstrain broadening (radians converted to degrees) and xi the Lorentzian fraction of the
   sample broadening (FullProf's convention). The Gaussian part is evaluated within +-7 sigma
   (2.3e-11 of its height left out), the Lorentzian within +-w FWHM, w = ``window_fwhm`` (30) for
   strong lines and less for weak ones: w is where the line's Lorentzian falls below
   :data:`TAIL_TOL` (1e-6) of the pattern's strongest line height, clipped to
   [:data:`MIN_WINDOW_FWHM`, ``window_fwhm``]. The Lorentzian's amplitude is divided by the
   fraction of its area inside the window, (2/pi) arctan(2 w) (0.989 for w = 30, 0.937 for 5), so
   each line keeps its integrated intensity exactly: the truncated tails are moved into the window
   (for w = 30 they are < 2.8e-4 of the line's height). Against evaluation of every line within
   +-30 FWHM the adaptive windows changed the normalised profiles of 64 generated crystals by
   <= 3e-4 of the maximum, 3x faster. Lines are sampled at the measurement grid's points.
6. **Measurement grid** (crop/step): a random measured window [start, end] inside the model grid
   and a random step; the profile is sampled on that grid, background and noise are added there,
   and the scan is resampled onto the model grid by the rule of :func:`synthxrd.io.resample`
   (box average where the scan is finer, linear interpolation where it is coarser, 0 outside).
7. **Background**, relative to the strongest point of the peak profile: a Bernstein polynomial
   in 2theta over the model grid with non-negative random weights (so smooth and >= 0; its
   maximum is ``level``), a few random broad Gaussians (smooth, Gaussian-process-like variations)
   and, optionally, an amorphous hump (broad Gaussian; its centre range is given in 2theta for
   Cu K-alpha1 and moved to the same d-spacing for other wavelengths).
8. **Noise** [KA74]: Poisson counting statistics, the peak maximum scaled to ``peak_counts``
   counts (log-uniform), ``y = Poisson(C y) / C``; then additive Gaussian noise; values clipped at 0.

10. **Detection limit** (off in ``"default"``, on in the ``"measured"`` preset): with probability
   ``detection_probability`` a pattern gets a limit t (log-uniform in ``detection_limit``) and
   every line weaker than t times its strongest line is not drawn (:func:`detection_cut`). The
   noise of stage 8 hides weak lines only where counts are few; measured patterns lose them also
   to background subtraction and smoothing, and a network trained on patterns that keep lines
   down to 1e-6 of the strongest learns to read them
   (docs/realism.md#detection-limit-the-measured-preset).

Not modelled: axial-divergence asymmetry, specimen transparency and absorption, K-beta and
fluorescence lines, anisotropic broadening, detector dead time.

The result is divided by its maximum (float32, in [0, 1]). The row of a crystal without any
reflection inside the model grid is all 0, as in ``simulate.patterns(..., allow_empty=True)``, so
that callers can detect and redraw it.

Default ranges (typical laboratory Bragg-Brentano data, Cu K-alpha, 150-300 mm goniometers; "log":
drawn log-uniformly). The
ranges marked [R] were set so that every statistic of ``synthxrd realism`` (noise, background,
peak width, visible peaks, 2theta range and step; :mod:`synthxrd.realism`) of the measured RRUFF
and XRED patterns lies inside the distribution of augmented patterns (their 5-95 % range inside
its 1-99 % range); measurements before and after, and why each range moved, in docs/realism.md:

=======================  ==========================  =============================================
component                default                     rationale / reference
=======================  ==========================  =============================================
crystallite size tau     2-400 nm [R]             Scherrer range of the base simulator (20-100
                                                     nm, Schopmans et al. 2023) extended down to
                                                     nanocrystals (XRED ZnS, graphite: isolated
                                                     peaks 0.7-1.0 deg wide) and up to the
                                                     instrument-limited regime
Caglioti U, V, W         0-0.004, -0.01-0,           instrument FWHM 0.007-0.07 deg over 5-90 deg
                         5e-5-0.0015 deg^2 [R]       [CPR, CCC04]; narrower than before so that
                         (V >= -sqrt(UW))            fine scans reach RRUFF's widths (median 0.071,
                                                     5 % below 0.043 deg, not growing with 2theta)
Lorentzian X, Y          0-0.04, 0-0.01 deg [R]      Cu Ka1 natural width 2.3 eV -> X ~ 0.03 deg
                                                     [HOL]; Y narrower for RRUFF's narrowest peaks
microstrain eps          0-3e-4 [R]                  0-0.03 % apparent strain [SW]; RRUFF's widths
                                                     do not grow with tan(theta)
Lorentzian fraction xi   0-1                         size broadening is mostly Lorentzian [TCH]
K-alpha2                 p = 0.8, ratio 0.48-0.52    Ka2/Ka1 ~ 0.5 [HOL]; p < 1: Ka1-monochromated
zero shift z             -0.05-0.05 deg              goniometer alignment error
displacement s, R        -0.15-0.15 mm, 150-300 mm   packing/height errors [KA74]; common lab
                                                     goniometer radii (e.g. 217.5, 240 mm)
March-Dollase r          p = 0.5, 0.6-1.4            moderate texture of back-loaded mounts [MD]
Debye-Waller B           0-2 A^2                     room-temperature inorganics [PENG]
background level         0-0.35 [R]                  of the strongest peak; degree 4, <= 3 bumps
                                                     of FWHM 3-20 deg; from 0 (RRUFF is background-
                                                     subtracted) to raw XRED scans (up to 0.2-0.5)
amorphous hump           p = 0.2, 18-32 deg, FWHM    glass/holder/amorphous fraction (silica:
                         5-15 deg, height 0.02-0.5   d ~ 4 A, 2theta ~ 22 deg); raw XRED: low-angle
                         [R]                         background up to 0.4 (Ti: 1.3) of the peak
peak counts              10-1e7 (log-uniform) [R]    noisy to slow/strong scans: noise sigma from
                                                     3e-4 (XRED Al2O3, C) to 0.04-0.1 (RRUFF) of
                                                     the strongest peak
Gaussian noise sigma     0-0.003 of the peak [R]     noise left after a background subtraction
impurity                 p = 0.3, 0-5 % of main
measured window, step    start 5-35, end 60-90 deg   common scan ranges/steps; p = 0.8 of a crop,
                         step 0.005-0.15, log [R]    else the full model range; XRED scans start at
                                                     10-30 deg, with steps 0.0066-0.12 deg
detection limit          off; "measured": p = 0.8,   lines below 0.2-10 % of the strongest vanish
                         2e-3-0.1 (log)              (RRUFF: 3 noise sigma = 0.3-11 % of the
                                                     strongest point, 5-95 %; median 1.9 %)
=======================  ==========================  =============================================

References
----------
[CPR] G. Caglioti, A. Paoletti, F. P. Ricci, Nucl. Instrum. 3 (1958) 223-228.
[TCH] P. Thompson, D. E. Cox, J. B. Hastings, J. Appl. Cryst. 20 (1987) 79-83.
[SCH] P. Scherrer, Nachr. Ges. Wiss. Goettingen (1918) 98; J. I. Langford, A. J. C. Wilson,
      J. Appl. Cryst. 11 (1978) 102-113.
[SW]  A. R. Stokes, A. J. C. Wilson, Proc. Phys. Soc. 56 (1944) 174-181.
[MD]  A. March, Z. Kristallogr. 81 (1932) 285-297; W. A. Dollase, J. Appl. Cryst. 19 (1986) 267-272.
[DW]  B. T. M. Willis, A. W. Pryor, Thermal Vibrations in Crystallography, Cambridge 1975;
      International Tables for Crystallography Vol. C (2006) 6.1.1.3.
[PENG] L.-M. Peng, G. Ren, S. L. Dudarev, M. J. Whelan, Acta Cryst. A52 (1996) 456-470.
[HOL] G. Hoelzer, M. Fritsch, M. Deutsch, J. Haertwig, E. Foerster, Phys. Rev. A 56 (1997) 4554.
[KA]  J. A. Bearden, Rev. Mod. Phys. 39 (1967) 78-124 (wavelengths).
[KA74] H. P. Klug, L. E. Alexander, X-Ray Diffraction Procedures, 2nd ed., Wiley 1974, ch. 5-6.
[CCC04] R. W. Cheary, A. A. Coelho, J. P. Cline, J. Res. NIST 109 (2004) 1-25.

Configs
-------
``augment_config("default")`` is :class:`AugmentConfig` (), ``"none"`` is None (no augmentation),
anything else a TOML file of :class:`AugmentConfig` fields (top level, or in an ``[augment]``
table); unknown keys and bad values raise :class:`~synthxrd.errors.ConfigError` naming the file
and key. A range is ``[low, high]`` (equal values fix it)::

    texture = false
    size_nm = [50.0, 50.0]
    noise_peak_counts = [1000.0, 10000.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthxrd.config import from_dict, load_toml
from synthxrd.errors import ConfigError, StructureError
from synthxrd.simulate import _profiles
from synthxrd.simulate.common import DEFAULT_WAVELENGTH, SCHERRER_K, WINDOW_SIGMAS, Grid, resolve_wavelength, wavelengths
from synthxrd.simulate.physics import FWHM_TO_SIGMA, scherrer_fwhm
from synthxrd.simulate.pattern import ReflectionBatch, patterns, reflections
from synthxrd.structure import CrystalBatch

__all__ = [
    "AugmentConfig",
    "AugmentParameters",
    "LineList",
    "augment_config",
    "ideal_config",
    "draw_parameters",
    "line_list",
    "detection_cut",
    "PRESETS",
    "render",
    "render_with",
    "augmented_patterns",
    "reflection_window",
    "march_dollase",
    "debye_waller_factor",
    "displacement_shift",
    "kalpha2_two_theta",
    "line_fwhm_eta",
    "pseudo_voigt",
    "add_counting_noise",
]

#: Reflections within this many degrees 2theta (sorted neighbours) are one line: symmetry
#: equivalents differ by ~1e-13 degrees; merging is exact for the profile.
MERGE_TOL_DEG = 1e-6
#: Merged peaks below this fraction of the strongest are not rendered (invisible under any noise).
REL_DROP = 1e-6
#: A line's Lorentzian is evaluated out to where it falls below this fraction of the pattern's
#: strongest line height, within [MIN_WINDOW_FWHM, window_fwhm] FWHM (its area is kept exactly).
TAIL_TOL = 1e-6
MIN_WINDOW_FWHM = 5.0
#: :func:`augmented_patterns` computes reflections up to this far (degrees) beyond the grid for
#: Lorentzian tails (besides shifts and the K-alpha2 offset); farther tails are left out.
TAIL_MARGIN_CAP_DEG = 10.0
#: Anode tolerance: an anode's K-alpha1 within this many Angstrom of the wavelength is "that anode".
ANODE_TOL = 2e-3
#: 2theta ranges of the amorphous hump are given for this wavelength (Cu K-alpha1).
_HUMP_REFERENCE_WAVELENGTH = 1.54056

Range = tuple[float, float]

#: Named augmentation configs (``--augment NAME``): field overrides of :class:`AugmentConfig`.
#: "measured" adds the detection limit (stage 10), which hides the weak reflections that measured
#: patterns never show (docs/realism.md#detection-limit-the-measured-preset).
#: "calibration" leaves out cropping (stage 9) and background (stage 6): with them the search finds
#: the space group of a strained library structure first in 0.42 of simulated patterns, without
#: cropping 0.69, without background 0.72 (240 patterns, other stages within +-0.05), and on the
#: measured rruff_dev minerals 0.72: the fusion is fitted on patterns where the search is as good as
#: on measured data (docs/search_match.md, "A calibration set like measured data").
PRESETS: dict[str, dict[str, Any]] = {"default": {}, "measured": {"detection": True},
                                      "calibration": {"crop": False, "background": False, "amorphous": False}}


@dataclass(frozen=True)
class AugmentConfig:
    """Which effects :func:`render` applies and the ranges their per-pattern parameters come from.

    Every ``*_probability`` is the chance per pattern that the component is present, every range
    ``(low, high)`` is sampled uniformly per pattern (``noise_peak_counts`` and ``crop_step``
    log-uniformly, so that typical scans are as fine as typical measurements). See the
    module docstring for the formulas, defaults and references; the defaults marked [R] there were
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
    limit on; ``"calibration"`` -> without cropping and background (:data:`PRESETS`); ``"none"`` (or None) -> None (no augmentation); an
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
        raise ConfigError("augment: expected 'default', 'measured', 'calibration', 'none' or a TOML path, "
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


# ------------------------------------------------------------------------------------------------
# Parameters drawn per pattern


@dataclass(frozen=True)
class AugmentParameters:
    """The random parameters of N patterns (arrays of length N unless noted); disabled components
    hold their neutral value. Built by :func:`draw_parameters`; edit with ``dataclasses.replace``.

    Attributes
    ----------
    size_nm, strain_epsilon, caglioti_u/v/w (deg^2), lorentz_x/y (deg), lorentz_fraction (xi):
        profile; kalpha2_ratio (0 = one line); zero_shift_deg; displacement_mm; radius_mm;
        texture_r (1 = none) and texture_direction (N, 3) reciprocal-lattice indices;
        debye_waller_b (A^2); impurity_index (-1 = none), impurity_fraction;
        background_weights (N, degree + 1), bump_center/fwhm/height (N, bumps) degrees and relative
        heights, hump_center/fwhm/height; peak_counts (0 = no Poisson noise), noise_sigma;
        measured_start, measured_step (degrees), measured_points (int, number of scan points);
        lambda_ratio: lambda2/lambda1 (scalar); window_fwhm: Lorentzian window (scalar);
        detection_limit (None or 0: every line drawn).
    """

    size_nm: np.ndarray
    strain_epsilon: np.ndarray
    caglioti_u: np.ndarray
    caglioti_v: np.ndarray
    caglioti_w: np.ndarray
    lorentz_x: np.ndarray
    lorentz_y: np.ndarray
    lorentz_fraction: np.ndarray
    kalpha2_ratio: np.ndarray
    zero_shift_deg: np.ndarray
    displacement_mm: np.ndarray
    radius_mm: np.ndarray
    texture_r: np.ndarray
    texture_direction: np.ndarray
    debye_waller_b: np.ndarray
    impurity_index: np.ndarray
    impurity_fraction: np.ndarray
    background_weights: np.ndarray
    bump_center: np.ndarray
    bump_fwhm: np.ndarray
    bump_height: np.ndarray
    hump_center: np.ndarray
    hump_fwhm: np.ndarray
    hump_height: np.ndarray
    peak_counts: np.ndarray
    noise_sigma: np.ndarray
    measured_start: np.ndarray
    measured_step: np.ndarray
    measured_points: np.ndarray
    lambda_ratio: float = 1.0
    window_fwhm: float = 30.0
    detection_limit: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.size_nm)


def _directions(max_index: int) -> np.ndarray:
    """Primitive reciprocal-lattice directions with |indices| <= max_index, one of each +-pair."""
    r = np.arange(-max_index, max_index + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    first = np.array([next((v for v in row if v != 0), 0) for row in hkl])
    gcd = np.gcd.reduce(np.abs(hkl), axis=1)
    return hkl[(first > 0) & (gcd == 1)].astype(np.float64)


def draw_parameters(
    config: AugmentConfig,
    n: int,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> AugmentParameters:
    """Draw the parameters of ``n`` patterns from ``config`` (vectorised; a fixed sequence of draws,
    so switching a component off does not change the others' parameters for the same seed)."""
    if not isinstance(config, AugmentConfig):
        raise ConfigError(f"augment: expected an AugmentConfig, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"augment: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    lam = resolve_wavelength(wavelength)
    c = config

    def uni(rng_range: Range, on: bool = True, neutral: float = 0.0) -> np.ndarray:
        values = rng.uniform(rng_range[0], rng_range[1], n)
        return values if on else np.full(n, neutral)

    def log_uni(rng_range: Range, on: bool = True, neutral: float = 0.0) -> np.ndarray:
        values = np.exp(rng.uniform(math.log(rng_range[0]), math.log(rng_range[1]), n))
        return values if on else np.full(n, neutral)

    def chance(p: float, on: bool) -> np.ndarray:
        hit = rng.random(n) < p
        return hit & on

    # 1. profile
    size = uni(c.size_nm)
    u = uni(c.caglioti_u, c.instrument)
    v = uni(c.caglioti_v, c.instrument)
    w = uni(c.caglioti_w, c.instrument)
    v = np.maximum(v, -np.sqrt(u * w))  # H_inst^2 >= 3/4 W > 0 for every angle
    x = uni(c.lorentz_x, c.instrument)
    y = uni(c.lorentz_y, c.instrument)
    eps = uni(c.strain_epsilon, c.strain)
    xi = uni(c.lorentz_fraction, c.lorentzian)
    # 2. doublet
    ratio = _doublet_ratio(c.anode, lam) if c.kalpha2 else None
    k2 = np.where(chance(c.kalpha2_probability, ratio is not None), uni(c.kalpha2_ratio), 0.0)
    # 3. shifts
    zero = uni(c.zero_shift_deg, c.zero_shift)
    disp = uni(c.displacement_mm, c.displacement)
    radius = uni(c.goniometer_radius_mm, True)
    # 4. texture
    textured = chance(c.texture_probability, c.texture)
    tex_r = np.where(textured, uni(c.texture_r), 1.0)
    candidates = _directions(c.texture_max_index)
    tex_dir = candidates[rng.integers(0, len(candidates), n)]
    # 5. Debye-Waller
    dw_b = uni(c.debye_waller_b, c.debye_waller)
    # 8. impurity
    has_imp = chance(c.impurity_probability, c.impurity and n > 1)
    imp_frac = np.where(has_imp, uni(c.impurity_fraction), 0.0)
    imp_index = np.where(has_imp, (np.arange(n) + 1) % max(n, 1), -1).astype(np.int64)
    # 6. background
    level = uni(c.background_level, c.background)
    weights = rng.random((n, c.background_degree + 1))
    weights = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-12) * level[:, None]
    n_bumps = rng.integers(0, c.background_bumps + 1, n)
    bump_center = rng.uniform(grid.start, grid.stop, (n, c.background_bumps))
    bump_fwhm = rng.uniform(*c.background_bump_fwhm, (n, c.background_bumps))
    bump_height = rng.random((n, c.background_bumps)) * level[:, None]
    bump_height[np.arange(c.background_bumps)[None, :] >= n_bumps[:, None]] = 0.0
    hump = chance(c.amorphous_probability, c.background and c.amorphous)
    hump_center = _hump_two_theta(uni(c.amorphous_center), lam)
    hump_fwhm = uni(c.amorphous_fwhm)
    hump_height = np.where(hump, uni(c.amorphous_height), 0.0)
    # 7. noise
    log_counts = rng.uniform(math.log(c.noise_peak_counts[0]), math.log(c.noise_peak_counts[1]), n)
    counts = np.exp(log_counts) if c.noise else np.zeros(n)
    sigma = uni(c.noise_gaussian_sigma, c.noise)
    # 9. measurement
    cropped = chance(c.crop_probability, c.crop)
    start = np.where(cropped, np.maximum(uni(c.crop_start), grid.start), grid.start)
    stop = np.where(cropped, np.minimum(uni(c.crop_end), grid.stop), grid.stop)
    step = log_uni(c.crop_step, c.crop, grid.step)
    too_short = stop - start < 10.0 * step
    start = np.where(too_short, grid.start, start)
    stop = np.where(too_short, grid.stop, stop)
    points = np.ceil((stop - start) / step - 1e-9).astype(np.int64) + 1  # the scan reaches stop
    if not c.crop:
        start, step, points = np.full(n, grid.start), np.full(n, grid.step), np.full(n, grid.n, np.int64)
    # 10. detection limit: drawn last and only when on, so that the draws of configs without it
    # (parameters and the noise drawn after them) stay those of earlier versions
    detect = np.where(chance(c.detection_probability, True), log_uni(c.detection_limit), 0.0) if c.detection else None
    return AugmentParameters(
        size_nm=size, strain_epsilon=eps, caglioti_u=u, caglioti_v=v, caglioti_w=w, lorentz_x=x, lorentz_y=y,
        lorentz_fraction=xi, kalpha2_ratio=k2, zero_shift_deg=zero, displacement_mm=disp, radius_mm=radius,
        texture_r=tex_r, texture_direction=tex_dir, debye_waller_b=dw_b, impurity_index=imp_index,
        impurity_fraction=imp_frac, background_weights=weights, bump_center=bump_center, bump_fwhm=bump_fwhm,
        bump_height=bump_height, hump_center=hump_center, hump_fwhm=hump_fwhm, hump_height=hump_height,
        peak_counts=counts, noise_sigma=sigma, measured_start=start, measured_step=step, measured_points=points,
        lambda_ratio=1.0 if ratio is None else ratio, window_fwhm=float(c.window_fwhm), detection_limit=detect,
    )


def _hump_two_theta(two_theta_cu: np.ndarray, wavelength: float) -> np.ndarray:
    """2theta at ``wavelength`` of the d-spacing that diffracts at ``two_theta_cu`` for Cu K-alpha1."""
    s = np.sin(np.radians(two_theta_cu / 2.0)) * wavelength / _HUMP_REFERENCE_WAVELENGTH
    return np.degrees(2.0 * np.arcsin(np.clip(s, 0.0, 1.0)))


# ------------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class LineList:
    """Rendered lines of N patterns, packed: pattern i owns rows offsets[i]:offsets[i + 1].

    center (degrees, shifted), intensity (integrated, not normalised), fwhm (degrees), eta.
    """

    center: np.ndarray
    intensity: np.ndarray
    fwhm: np.ndarray
    eta: np.ndarray
    offsets: np.ndarray


def _check_inputs(crystals: CrystalBatch, refl: ReflectionBatch, params: AugmentParameters | None = None) -> None:
    if not isinstance(crystals, CrystalBatch):
        raise StructureError(f"augment: expected a CrystalBatch, got {type(crystals).__name__}")
    if not isinstance(refl, ReflectionBatch):
        raise StructureError(f"augment: expected a ReflectionBatch, got {type(refl).__name__}")
    if len(refl) != len(crystals) or (params is not None and len(params) != len(crystals)):
        raise StructureError(f"augment: {len(crystals)} crystals but {len(refl)} reflection lists"
                             + ("" if params is None else f" and {len(params)} parameter sets"))


def line_list(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    params: AugmentParameters,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> LineList:
    """The lines (stages 1-5 of the module docstring) that :func:`render_with` draws.

    The impurity scale and the :data:`REL_DROP` cut refer to the strongest merged peak on ``grid``.
    """
    _check_inputs(crystals, refl, params)
    lam = resolve_wavelength(wavelength)
    p = params
    n = len(crystals)
    recip = np.ascontiguousarray(np.linalg.inv(crystals.lattices).transpose(0, 2, 1)) if n else np.zeros((0, 3, 3))
    rows = np.diff(refl.offsets)
    imp_rows = np.where(p.impurity_index >= 0, rows[np.clip(p.impurity_index, 0, None)], 0) if n else rows
    capacity = int(2 * (rows.sum() + imp_rows.sum()))
    f64 = (lambda a: np.ascontiguousarray(a, np.float64))
    offsets, center, inten, fwhm, eta = _profiles.build_lines(
        f64(refl.two_theta), f64(refl.intensity), np.ascontiguousarray(refl.hkl, np.int64),
        np.ascontiguousarray(refl.offsets, np.int64), recip, f64(p.texture_direction), f64(p.texture_r),
        f64(p.debye_waller_b), np.ascontiguousarray(p.impurity_index, np.int64), f64(p.impurity_fraction),
        lam, float(p.lambda_ratio), f64(p.kalpha2_ratio), f64(p.zero_shift_deg),
        f64(p.displacement_mm / p.radius_mm), 10.0 * f64(p.size_nm), f64(p.strain_epsilon), f64(p.caglioti_u),
        f64(p.caglioti_v), f64(p.caglioti_w), f64(p.lorentz_x), f64(p.lorentz_y), f64(p.lorentz_fraction),
        SCHERRER_K, MERGE_TOL_DEG, REL_DROP, float(grid.start), float(grid.stop), capacity,
    )
    if p.detection_limit is not None:
        inten = detection_cut(center, inten, offsets, p.detection_limit, grid)
    return LineList(center, inten, fwhm, eta, offsets)


def detection_cut(center: np.ndarray, intensity: np.ndarray, offsets: np.ndarray, limit: np.ndarray,
                  grid: Grid = Grid()) -> np.ndarray:
    """Line intensities with every line of pattern i below ``limit[i]`` x its strongest line on
    ``grid`` set to 0 (stage 10, the detection limit).

    A measured pattern shows a reflection only where it rises above the noise and the background
    left by its subtraction: three noise sigmas of the RRUFF scans are 0.3-11 % of the strongest
    point (5-95 %, median 1.9 %; docs/realism.md#detection-limit-the-measured-preset), while a
    simulation keeps lines down to 1e-6 of the strongest. Each line (K-alpha2 and impurity lines
    included) is cut on its own integrated intensity, as each is detected on its own; ``limit`` 0
    keeps every line.
    """
    out = np.array(intensity, np.float64)
    on_grid = (center >= grid.start) & (center <= grid.stop)
    for i, lim in enumerate(np.asarray(limit, np.float64)):
        a, b = offsets[i], offsets[i + 1]
        if lim <= 0 or not on_grid[a:b].any():
            continue
        seg = out[a:b]
        seg[seg < lim * seg[on_grid[a:b]].max()] = 0.0
    return out


def add_counting_noise(values: np.ndarray, counts: np.ndarray, sigma: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """``Poisson(counts * values) / counts + sigma * N(0, 1)`` per point (counts <= 0: no Poisson).

    ``values``, ``counts`` and ``sigma`` broadcast together (e.g. a flat scan and per-point values);
    negative values count as 0 counts.
    """
    values = np.asarray(values, np.float64)
    counts = np.broadcast_to(np.asarray(counts, np.float64), values.shape)
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), values.shape)
    poisson = counts > 0
    if poisson.all():
        out = rng.poisson(np.maximum(values, 0.0) * counts) / counts
    else:
        out = values.copy()
        if poisson.any():
            c = counts[poisson]
            out[poisson] = rng.poisson(np.maximum(values[poisson], 0.0) * c) / c
    gauss = sigma > 0
    if gauss.all():
        out += sigma * rng.standard_normal(out.shape)
    elif gauss.any():
        out[gauss] += sigma[gauss] * rng.standard_normal(int(gauss.sum()))
    return out


def render_with(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    params: AugmentParameters,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Render N patterns with given parameters (``rng`` only for the noise); see :func:`render`."""
    lines = line_list(crystals, refl, params, grid=grid, wavelength=wavelength)
    n = len(crystals)
    out = np.zeros((n, grid.n), np.float32)
    if n == 0:
        return out
    p = params
    starts = np.ascontiguousarray(p.measured_start, np.float64)
    steps = np.ascontiguousarray(p.measured_step, np.float64)
    points = np.ascontiguousarray(p.measured_points, np.int64)
    point_offsets = np.zeros(n + 1, np.int64)
    point_offsets[1:] = np.cumsum(points)
    flat = np.zeros(int(point_offsets[-1]))
    peak = _profiles.render_lines(lines.center, lines.intensity, lines.fwhm, lines.eta, lines.offsets, starts,
                                  steps, point_offsets, float(p.window_fwhm), TAIL_TOL, MIN_WINDOW_FWHM, flat)
    f64 = (lambda a: np.ascontiguousarray(a, np.float64))
    _profiles.add_background(
        flat, starts, steps, point_offsets, peak, grid.start, grid.stop, f64(p.background_weights),
        f64(p.bump_center), f64(p.bump_fwhm), f64(p.bump_height), f64(p.hump_center), f64(p.hump_fwhm),
        f64(p.hump_height),
    )
    if np.any(p.peak_counts > 0) or np.any(p.noise_sigma > 0):
        flat = add_counting_noise(flat, np.repeat(p.peak_counts, points), np.repeat(p.noise_sigma, points), rng)
    same_grid = (np.all(points == grid.n) and np.all(starts == grid.start) and np.all(steps == grid.step))
    if same_grid:
        values = flat.reshape(n, grid.n)
    else:
        values = np.zeros((n, grid.n))
        _profiles.resample_uniform(flat, starts, steps, point_offsets, grid.start, grid.step, values)
    tt = refl.two_theta
    inside = np.concatenate(([0], np.cumsum((tt >= grid.start) & (tt <= grid.stop))))
    values[inside[refl.offsets[1:]] == inside[refl.offsets[:-1]]] = 0.0  # no reflection on the grid
    np.maximum(values, 0.0, out=values)
    top = values.max(axis=1, keepdims=True)
    np.divide(values, top, out=values, where=top > 0)
    out[:] = values
    return out


def render(
    crystals: CrystalBatch,
    refl: ReflectionBatch,
    config: AugmentConfig,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Augmented patterns of a batch: (N, grid.n) float32, each row in [0, 1] with maximum 1.

    Parameters
    ----------
    crystals : the batch (its lattices orient the texture).
    refl : :func:`synthxrd.simulate.reflections` of ``crystals`` at ``wavelength``, over a window
        that covers the grid plus shifts, the K-alpha2 offset and profile tails
        (:func:`reflection_window`).
    config : which effects, and the ranges of their random parameters.
    rng : the only source of randomness (parameters by :func:`draw_parameters`, then noise).
    grid : the model grid.
    wavelength : of the reflections (Angstrom or a line name); K-alpha1 of the anode.
    """
    _check_inputs(crystals, refl)
    params = draw_parameters(config, len(crystals), rng, grid=grid, wavelength=wavelength)
    return render_with(crystals, refl, params, rng, grid=grid, wavelength=wavelength)


def ideal_config(config: AugmentConfig) -> AugmentConfig:
    """``config`` with every experimental effect off: Gaussian Scherrer peaks of crystallites of
    :data:`synthxrd.simulate.DEFAULT_SIZE_RANGE_NM` on the full grid, like :func:`synthxrd.simulate.patterns`
    (the "clean" share of a training stream, ``clean_fraction``), rendered from the same reflections.
    """
    from synthxrd.simulate.common import DEFAULT_SIZE_RANGE_NM

    switches = {f.name: False for f in fields(AugmentConfig) if f.type in ("bool", bool)}
    return replace(config, size_nm=DEFAULT_SIZE_RANGE_NM, **switches)


def reflection_window(config: AugmentConfig, grid: Grid = Grid(), wavelength: float | str = DEFAULT_WAVELENGTH
                      ) -> tuple[float, float]:
    """2theta window (degrees) of the reflections that :func:`render` needs for ``config`` on ``grid``.

    The grid widened by the largest peak shift, the K-alpha2 offset at the low end, and
    min(window_fwhm x largest FWHM, :data:`TAIL_MARGIN_CAP_DEG`) for the Lorentzian tails (the
    FWHM bound of the config's extreme values at the top of the range), or 7 sigma if no line
    can have a Lorentzian part.
    """
    lam = resolve_wavelength(wavelength)
    c = config
    shift = max(abs(v) for v in c.zero_shift_deg) if c.zero_shift else 0.0
    if c.displacement:
        shift += math.degrees(2.0 * max(abs(v) for v in c.displacement_mm) / c.goniometer_radius_mm[0])
    ratio = _doublet_ratio(c.anode, lam) if c.kalpha2 else None
    sep = 0.0
    if ratio is not None:
        s = math.sin(math.radians(grid.start / 2.0))
        sep = math.degrees(2.0 * math.asin(min(s * ratio, 1.0))) - grid.start
    theta = math.radians(min(grid.stop + TAIL_MARGIN_CAP_DEG, 178.0) / 2.0)
    t, cos = math.tan(theta), math.cos(theta)
    h_sample = scherrer_fwhm(lam * (ratio or 1.0), c.size_nm[0], cos)
    h_sample += math.degrees(4.0 * c.strain_epsilon[1] * t) if c.strain else 0.0
    h_inst = 0.0
    if c.instrument:
        h_inst = math.sqrt(c.caglioti_u[1] * t * t + abs(min(c.caglioti_v[0], 0.0)) * t + max(c.caglioti_v[1], 0.0) * t
                           + c.caglioti_w[1]) + c.lorentz_x[1] * t + c.lorentz_y[1] / cos
    lorentzian = (c.lorentzian and c.lorentz_fraction[1] > 0.0) or (
        c.instrument and (c.lorentz_x[1] > 0.0 or c.lorentz_y[1] > 0.0))
    if lorentzian:  # TCH: H <= H_G + H_L
        tail = min(c.window_fwhm * (h_inst + 2.0 * h_sample), TAIL_MARGIN_CAP_DEG)
    else:  # Gaussian lines end at 7 sigma = 2.97 FWHM
        tail = min(WINDOW_SIGMAS * FWHM_TO_SIGMA * (h_inst + h_sample), TAIL_MARGIN_CAP_DEG)
    return max(grid.start - shift - sep - tail, 0.0), min(grid.stop + shift + tail, 180.0)


def augmented_patterns(
    crystals: CrystalBatch,
    config: AugmentConfig | None,
    rng: np.random.Generator,
    *,
    grid: Grid = Grid(),
    wavelength: float | str = DEFAULT_WAVELENGTH,
) -> np.ndarray:
    """Reflections over :func:`reflection_window`, then :func:`render`; (N, grid.n) float32.

    ``config=None`` gives the plain Gaussian-Scherrer patterns of :func:`synthxrd.simulate.patterns`.
    """
    if config is None:
        return patterns(crystals, rng=rng, grid=grid, wavelength=wavelength)
    refl = reflections(crystals, wavelength=wavelength, two_theta_range=reflection_window(config, grid, wavelength))
    return render(crystals, refl, config, rng, grid=grid, wavelength=wavelength)


# ------------------------------------------------------------------------------------------------
# Reference formulas (numpy; documentation and test oracles of the kernels)


def march_dollase(cos_alpha: np.ndarray, r: float | np.ndarray) -> np.ndarray:
    """March-Dollase factor P = (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2) (Dollase 1986, eq. 9).

    Normalised: the mean of P over all directions (uniform on the sphere) is 1 for every r > 0.
    """
    c2 = np.clip(np.asarray(cos_alpha, np.float64) ** 2, 0.0, 1.0)
    r = np.asarray(r, np.float64)
    return (r * r * c2 + (1.0 - c2) / r) ** -1.5


def debye_waller_factor(two_theta: np.ndarray, b: float, wavelength: float = DEFAULT_WAVELENGTH) -> np.ndarray:
    """Intensity factor exp(-2 B s^2), s = sin(theta)/lambda (B in Angstrom^2)."""
    s = np.sin(np.radians(np.asarray(two_theta, np.float64) / 2.0)) / wavelength
    return np.exp(-2.0 * b * s * s)


def displacement_shift(two_theta: np.ndarray, displacement_mm: float, radius_mm: float) -> np.ndarray:
    """Peak shift (degrees 2theta) of a sample displaced by s: -(180/pi) 2 s cos(theta) / R.

    s > 0: sample surface below the goniometer axis (peaks move to lower angles).
    """
    return -np.degrees(2.0 * displacement_mm * np.cos(np.radians(np.asarray(two_theta, np.float64) / 2.0)) / radius_mm)


def kalpha2_two_theta(two_theta: np.ndarray, lambda1: float, lambda2: float) -> np.ndarray:
    """2theta of the same d-spacing for lambda2: sin(theta2) = sin(theta1) lambda2/lambda1 (Bragg)."""
    s = np.sin(np.radians(np.asarray(two_theta, np.float64) / 2.0)) * lambda2 / lambda1
    return np.degrees(2.0 * np.arcsin(s))


def line_fwhm_eta(two_theta, wavelength: float = DEFAULT_WAVELENGTH, *, size_nm: float, strain: float = 0.0,
                  u: float = 0.0, v: float = 0.0, w: float = 0.0, x: float = 0.0, y: float = 0.0,
                  xi: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(FWHM in degrees, eta) of the Thompson-Cox-Hastings pseudo-Voigt at ``two_theta`` (degrees).

    H_G^2 = U tan^2 + V tan + W + (1 - xi)^2 (H_size^2 + H_strain^2), H_L = X tan + Y/cos + xi (H_size +
    H_strain); H_size = (180/pi) 0.9 lambda/(tau cos theta), H_strain = (180/pi) 4 eps tan theta;
    H^5 = H_G^5 + 2.69269 H_G^4 H_L + 2.42843 H_G^3 H_L^2 + 4.47163 H_G^2 H_L^3 + 0.07842 H_G H_L^4 + H_L^5,
    eta = 1.36603 q - 0.47719 q^2 + 0.11116 q^3 with q = H_L/H (TCH 1987, eqs. 3-4).
    """
    theta = np.radians(np.asarray(two_theta, np.float64) / 2.0)
    t, c = np.tan(theta), np.cos(theta)
    h_size = scherrer_fwhm(wavelength, size_nm, c)
    h_strain = np.degrees(4.0 * strain * t)
    hg = np.sqrt(np.maximum(u * t * t + v * t + w + (1.0 - xi) ** 2 * (h_size**2 + h_strain**2), 0.0))
    hl = x * t + y / c + xi * (h_size + h_strain)
    h = (hg**5 + 2.69269 * hg**4 * hl + 2.42843 * hg**3 * hl**2 + 4.47163 * hg**2 * hl**3
         + 0.07842 * hg * hl**4 + hl**5) ** 0.2
    q = hl / h
    return h, np.clip(1.36603 * q - 0.47719 * q * q + 0.11116 * q**3, 0.0, 1.0)


def pseudo_voigt(x: np.ndarray, center: float, fwhm: float, eta: float) -> np.ndarray:
    """Area-1 pseudo-Voigt eta L + (1 - eta) G of FWHM ``fwhm``, untruncated.

    G = (2/H) sqrt(ln2/pi) exp(-4 ln2 (x - c)^2 / H^2), L = (2/(pi H)) / (1 + 4 (x - c)^2 / H^2).
    """
    d = (np.asarray(x, np.float64) - center) / fwhm
    g = 2.0 / fwhm * math.sqrt(math.log(2.0) / math.pi) * np.exp(-4.0 * math.log(2.0) * d * d)
    lor = 2.0 / (math.pi * fwhm) / (1.0 + 4.0 * d * d)
    return eta * lor + (1.0 - eta) * g
