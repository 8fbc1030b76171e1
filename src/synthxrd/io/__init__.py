"""Measured powder patterns: read files, convert the wavelength, resample onto the model grid.

:func:`read_pattern` reads one measured pattern and checks it; :func:`convert_wavelength` moves its
2theta axis to another wavelength by Bragg's law; :func:`resample` puts it onto the model's 2theta grid;
:func:`load_for_model` does all three and normalises, giving the array a trained network expects.

Formats are recognised from the content, not the extension (``metadata["format"]`` says which).
They are the records of :data:`FORMATS` (:mod:`synthxrd.io.formats`), the one list from which the
dispatch, the "supported: ..." part of error messages (:func:`supported_formats`) and the list in the
README (:func:`formats_markdown`) are made. Each reader module's docstring is the reference of its
format:

- :mod:`synthxrd.io.columns`: text columns (``.xy``, ``.csv``, ...) and RRUFF files;
- :mod:`synthxrd.io.xrdml`: PANalytical XRDML;
- :mod:`synthxrd.io.bruker`: Bruker RAW (versions 1 to 4) and BRML;
- :mod:`synthxrd.io.uxd`: Bruker UXD text;
- :mod:`synthxrd.io.rigaku`: Rigaku RAS, RASX and ASC (the binary RINT ``.raw`` is refused);
- :mod:`synthxrd.io.stoe`: STOE WinXPOW ``RAW_1.06Powdat``;
- :mod:`synthxrd.io.pdcif`: powder CIF (pdCIF);
- :mod:`synthxrd.io.gsas`: GSAS constant-wavelength data (STD, ESD, FXYE).

Text headers are read for the wavelength and the radiation by one parser,
:mod:`synthxrd.io.wavelength`.

:mod:`synthxrd.io.read` lists the checks made on every pattern and how the wavelength is chosen;
:mod:`synthxrd.io.prepare` holds the conversion, resampling and :func:`load_for_model`;
:mod:`synthxrd.io.manifest` reads manifests of pattern files (:func:`read_manifest`). This package
imports neither numba nor torch: grid and wavelengths come from :mod:`synthxrd.simulate.common`.

>>> format_names()[:6]                             # metadata["format"] values, in the order tried
('rigaku_rasx', 'brml', 'bruker_raw', 'stoe_raw', 'xrdml', 'gsas')
>>> format_names()[6:]
('rigaku_ras', 'rigaku_asc', 'uxd', 'pdcif', 'rruff', 'columns')
>>> [f.name for f in FORMATS if not f.supported]   # recognised, then refused with a clear error
['rigaku_raw', 'image']
"""

from __future__ import annotations

from synthxrd.io._common import (
    GAP_FACTOR,
    LOW_ANGLE_LIMIT,
    MAX_PATTERN_BYTES,
    MAX_XML_BYTES,
    MIN_POINTS,
    NEGATIVE_WARNING_SHARE,
    PADDING_MIN_RUN,
    WAVELENGTH_MISMATCH,
    PatternWarning,
)
from synthxrd.io.formats import FORMATS, Format, format_names, formats_markdown, supported_formats
from synthxrd.io.manifest import ManifestEntry, read_manifest
from synthxrd.io.prepare import (
    MIN_PEAK_SIGNIFICANCE,
    clean_patterns,
    convert_wavelength,
    has_peaks,
    integer_like,
    load_for_model,
    no_peaks_error,
    pattern_peak_significance,
    peak_significance,
    resample,
)
from synthxrd.io.read import read_pattern

__all__ = [
    "MIN_POINTS",
    "LOW_ANGLE_LIMIT",
    "PADDING_MIN_RUN",
    "GAP_FACTOR",
    "WAVELENGTH_MISMATCH",
    "MAX_XML_BYTES",
    "MAX_PATTERN_BYTES",
    "NEGATIVE_WARNING_SHARE",
    "PatternWarning",
    "read_pattern",
    "clean_patterns",
    "has_peaks",
    "integer_like",
    "no_peaks_error",
    "pattern_peak_significance",
    "peak_significance",
    "MIN_PEAK_SIGNIFICANCE",
    "convert_wavelength",
    "resample",
    "load_for_model",
    "Format",
    "FORMATS",
    "format_names",
    "formats_markdown",
    "supported_formats",
    "ManifestEntry",
    "read_manifest",
]
