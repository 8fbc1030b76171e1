"""Sources of measured patterns: scans read from an NPZ file or from a manifest of pattern files."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthxrd.errors import ConfigError, DataError
from synthxrd.realism.measurement import MIN_POINTS, PatternStats, measure
from synthxrd.simulate.common import Grid

__all__ = ["XRED_VARIANTS", "Scan", "measure_scans", "load_npz_patterns", "load_manifest_patterns"]

#: Manifest variants of the XRED patterns measured by default (not the resampled copies).
XRED_VARIANTS = ("raw", "background_removed")


@dataclass(frozen=True)
class Scan:
    """One measured pattern as :func:`measure` takes it.

    Attributes
    ----------
    name : where it came from (file and row, or sample id and variant).
    two_theta : (n,) float64 degrees at the model wavelength, ascending.
    intensity : (n,) float64 >= 0.
    """

    name: str
    two_theta: np.ndarray = field(repr=False)
    intensity: np.ndarray = field(repr=False)


def _window(name: str, two_theta: np.ndarray, intensity: np.ndarray, grid: Grid) -> Scan:
    """The points inside the model grid's window, negative intensities clipped to 0."""
    inside = (two_theta >= grid.start - 1e-9) & (two_theta <= grid.stop + 1e-9)
    return Scan(name, two_theta[inside], np.maximum(intensity[inside], 0.0))


def measure_scans(scans: Iterable[Scan]) -> list[PatternStats]:
    """:func:`measure` of each scan (errors name the scan)."""
    return [measure(s.two_theta, s.intensity, where=s.name) for s in scans]


def load_npz_patterns(path: str | Path, *, grid: Grid = Grid(), rows: Sequence[int] | None = None) -> list[Scan]:
    """Measured patterns of an NPZ file with ``two_theta`` (n,) and ``patterns`` (N, n) (the layout of
    ``rruff_dev300.npz``: Cu K-alpha, already on a 0.01 degree grid), as scans named
    ``<file>[<row>]`` within the grid's window, negative values clipped to 0. ``rows`` selects
    patterns (default all).

    Raises
    ------
    DataError
        Missing or unreadable file, missing key, shapes that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("two_theta", "patterns") if k not in data.files]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r} (found: {', '.join(data.files) or 'nothing'}); "
                                "expected two_theta (n,) and patterns (N, n)")
            two_theta = np.asarray(data["two_theta"], np.float64)
            patterns = np.asarray(data["patterns"], np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it as NPZ ({exc})") from None
    if two_theta.ndim != 1 or patterns.ndim != 2 or patterns.shape[1] != two_theta.size:
        raise DataError(f"{path}: two_theta {two_theta.shape} and patterns {patterns.shape} do not fit "
                        "(expected (n,) and (N, n))")
    selected = range(len(patterns)) if rows is None else rows
    out = []
    for i in selected:
        if not 0 <= int(i) < len(patterns):
            raise ConfigError(f"{path}: row {i} out of range (0..{len(patterns) - 1})")
        out.append(_window(f"{path.name}[{int(i)}]", two_theta, patterns[int(i)], grid))
    return out


def load_manifest_patterns(path: str | Path, *, variants: Iterable[str] | None = XRED_VARIANTS, grid: Grid = Grid(),
                           wavelength: float | str | None = None) -> dict[str, list[Scan]]:
    """Measured patterns of a manifest CSV, grouped by variant, as scans named
    ``<sample_id> <variant>`` (or the pattern path).

    The CSV (the layout of ``experimental/manifest.csv``) needs a ``pattern_path`` column (relative
    to the CSV's folder, or absolute); an optional ``variant`` column selects the rows of
    ``variants`` (None: every row; rows without a variant form the group "all") and an optional
    ``wavelength_A`` column gives the wavelength where the file states none. Each file is read
    with :func:`synthxrd.io.read_pattern`; constant padding at the ends is trimmed, 2theta
    converted to the model wavelength ``wavelength`` (default Cu K-alpha1) from the file's, else
    the manifest's, else Cu K-alpha1, and restricted to the grid's window; negative intensities are
    clipped to 0.

    Raises
    ------
    DataError
        Missing or malformed manifest, a file that cannot be read (naming it and the manifest
        line), or no row of the variants.
    """
    import warnings

    from synthxrd.io import PatternWarning, convert_wavelength, read_manifest
    from synthxrd.io.prepare import read_measured
    from synthxrd.simulate.common import DEFAULT_WAVELENGTH, resolve_wavelength

    path = Path(path)
    lam_model = resolve_wavelength(DEFAULT_WAVELENGTH if wavelength is None else wavelength)
    wanted = None if variants is None else tuple(variants)
    out: dict[str, list[Scan]] = {}
    for entry in read_manifest(path, labelled=False):
        variant = (entry.variant or "").strip() or "all"
        if wanted is not None and variant not in wanted:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PatternWarning)
            try:  # the first step of predict's and library search's pipeline
                measured = read_measured(entry.path, wavelength=entry.wavelength, refuse_other_radiation=False)
            except DataError as exc:
                raise DataError(f"{path}: line {entry.line}: {exc}") from None
        x, y, lam, file = measured.two_theta, measured.intensity, measured.wavelength, entry.path
        if not math.isclose(lam, lam_model, rel_tol=1e-9):
            x, mask = convert_wavelength(x, lam, lam_model)
            y = y[mask]
        scan = _window(f"{entry.sample_id} {variant}", x, y, grid)
        if scan.two_theta.size < MIN_POINTS:
            raise DataError(f"{file}: fewer than {MIN_POINTS} points within the model window "
                            f"{grid.start}-{grid.stop} degrees 2theta")
        out.setdefault(variant, []).append(scan)
    if not out:
        raise DataError(f"{path}: no row of the variants {', '.join(wanted or ())}")
    return out

