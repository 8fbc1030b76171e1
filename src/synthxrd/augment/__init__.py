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

# stage modules: config (ranges, presets), parameters (per-pattern draws), lines (stages 1-5, 10),
# rendering (stages 5-8); the tolerances stay attributes of this package, as before the split
from synthxrd.augment.config import ANODE_TOL, PRESETS, AugmentConfig, augment_config, ideal_config  # noqa: F401
from synthxrd.augment.lines import MERGE_TOL_DEG, REL_DROP, LineList, detection_cut, line_list  # noqa: F401
from synthxrd.augment.parameters import AugmentParameters, draw_parameters
from synthxrd.augment.rendering import (MIN_WINDOW_FWHM, TAIL_MARGIN_CAP_DEG, TAIL_TOL,  # noqa: F401
                                        add_counting_noise, augmented_patterns, reflection_window, render,
                                        render_with)
# the reference formulas (numpy; documentation and test oracles of the kernels) live in simulate.physics
from synthxrd.simulate.physics import (debye_waller_factor, displacement_shift, line_fwhm_eta, march_dollase,
                                       pseudo_voigt)
from synthxrd.simulate.physics import same_d_two_theta as kalpha2_two_theta

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
