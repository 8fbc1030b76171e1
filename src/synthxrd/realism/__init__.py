"""How measured powder patterns look, and whether augmented synthetic patterns look the same.

Per-pattern statistics (:func:`measure`, one :class:`PatternStats` per pattern), each a small pure
function of a pattern sampled on a uniform 2theta axis (``two_theta`` in degrees, ascending;
``intensity`` in any units, only ratios are reported). b is the background (a lower envelope,
below), m = b + 1.28 sigma the mean level the noise scatters around, and H the height of the
strongest point above it, ``H = max(y) - m(2theta_max)``.

=====================  ==========================================================================
statistic              definition
=====================  ==========================================================================
start, stop            first and last 2theta of the covered range: the points from the first to
                       the last non-zero intensity (:func:`covered_slice`), degrees
step                   median spacing of the scan points, degrees (:func:`scan_step`)
noise                  sigma / H, sigma = 1.4826 MAD(r) / sqrt(2/3) of the high-pass residual
                       r_i = y_i - (y_(i-1) + y_i + y_(i+1)) / 3 (:func:`noise_sigma`)
background_level       median of the background b over the covered range / H
background_low, _high  mean of b over the first and the last third of the range / H
background_curvature   (mean of b over the middle third - (low + high) / 2) / H: > 0 a hump
n_peaks                visible peaks: local maxima higher than m + t and more prominent than t,
                       t = max(k sigma, 1e-3 H), k = :data:`VISIBLE_K` = 5 (:func:`visible_peaks`)
fwhm_median            median FWHM (degrees) of the :data:`FWHM_MAX_PEAKS` strongest isolated peaks
                       higher than m + :data:`FWHM_MIN_SNR` sigma, at half height above m; their
                       (2theta, FWHM) pairs are kept in ``peak_two_theta``/``peak_fwhm``
                       (:func:`peak_fwhm`)
=====================  ==========================================================================

The background b (:func:`background_curve`) is a lower envelope: the :data:`BACKGROUND_QUANTILE`
(10 %) quantile of the intensities in blocks of about :data:`BACKGROUND_BLOCK_DEG` (2 degrees),
interpolated linearly between the block centres. It ignores the peaks as long as they cover less
than 90 % of a block, and it lies :data:`ENVELOPE_Z` = 1.28 sigma below the mean background where
the noise is Gaussian; the background statistics report b (the same for every source, so the
comparison is fair; patterns whose background was subtracted and clipped at 0, like RRUFF's, give
b ~ 0), peaks are measured from m = b + 1.28 sigma (else noise 3.7 sigma above the mean, one
point in 10^4, would count as peaks).

The noise residual is the pattern minus its 3-point moving average: for white noise of standard
deviation sigma, var(r) = (2/3) sigma^2, and smooth signal (background, peaks much wider than a
step) leaves ~ nothing; the MAD ignores the few points where sharp peaks do leak in. With
Poisson noise sigma is that of the typical (background) point, the noise floor.

Sources (:func:`load_npz_patterns`, :func:`load_manifest_patterns`, :func:`synthetic_patterns`)
are measured where the network would see them: at the model wavelength (Cu K-alpha1), within the
model grid's window (5-90 degrees; a measured scan reaching 160 degrees is cut at 90), negative
intensities clipped to 0 (as :func:`synthxrd.io.load_for_model` and the renderer do), constant
padding at the ends trimmed; but on their own scan points, so that the noise of a coarse scan is
not hidden by the interpolation onto the model grid. A synthetic pattern of
:func:`synthxrd.augment.augmented_patterns` is simulated on its own scan (start, step drawn per
pattern, stage 6 of :mod:`synthxrd.augment`) and then resampled onto the model grid;
:func:`scan_view` takes the model-grid value nearest to each scan point (exact where a scan point
is a grid point; for steps between 1 and 2 grid steps the neighbouring scan point leaks in with a
weight <= 1/2, lowering the measured noise by up to 30 %; scans finer than the grid are measured
on the grid, where the box average has lowered their noise by sqrt(grid step / step)).

:func:`compare` summarises each statistic per source (median, 1/5/95/99 % quantiles) and checks
that the 5-95 % range of every measured source lies inside the 1-99 % range of the synthetic one;
:func:`format_report` prints it and :func:`plot_report` draws it (``synthxrd realism``).

References
----------
Median absolute deviation as a robust scale (1.4826 = 1/Phi^-1(3/4)): P. J. Rousseeuw, C. Croux,
J. Am. Stat. Assoc. 88 (1993) 1273-1283. Noise from a second difference: F. Stoehr et al., "DER_SNR",
ASP Conf. Ser. 394 (2008) 505. Limit of detection 3-5 sigma: IUPAC Compendium ("Gold Book"),
"detection limit".
"""

from __future__ import annotations

from synthxrd.realism.measurement import (BACKGROUND_BLOCK_DEG, BACKGROUND_QUANTILE, ENVELOPE_Z, FWHM_MAX_PEAKS,
                                          FWHM_MIN_SNR, INTENSITY_RESOLUTION, MAD_TO_SIGMA, MIN_POINTS, STATISTICS,
                                          VISIBLE_K, VISIBLE_MIN_FRACTION, PatternStats, Statistic, background_curve,
                                          background_shape, check_pattern, covered_slice, measure, noise_sigma,
                                          peak_fwhm, scan_step, visible_peaks)
from synthxrd.realism.report import Report, Summary, compare, format_report, plot_report, report_payload
from synthxrd.realism.scans import XRED_VARIANTS, Scan, load_manifest_patterns, load_npz_patterns, measure_scans
from synthxrd.realism.synthetic import (SyntheticPatterns, measure_synthetic, render_synthetic, scan_view,
                                        synthetic_patterns)

__all__ = [
    "MIN_POINTS",
    "MAD_TO_SIGMA",
    "BACKGROUND_BLOCK_DEG",
    "BACKGROUND_QUANTILE",
    "ENVELOPE_Z",
    "VISIBLE_K",
    "VISIBLE_MIN_FRACTION",
    "FWHM_MIN_SNR",
    "FWHM_MAX_PEAKS",
    "INTENSITY_RESOLUTION",
    "Statistic",
    "STATISTICS",
    "XRED_VARIANTS",
    "PatternStats",
    "SyntheticPatterns",
    "Summary",
    "Report",
    "check_pattern",
    "covered_slice",
    "scan_step",
    "noise_sigma",
    "background_curve",
    "background_shape",
    "visible_peaks",
    "peak_fwhm",
    "measure",
    "Scan",
    "measure_scans",
    "scan_view",
    "load_npz_patterns",
    "load_manifest_patterns",
    "render_synthetic",
    "synthetic_patterns",
    "measure_synthetic",
    "compare",
    "format_report",
    "plot_report",
    "report_payload",
]
