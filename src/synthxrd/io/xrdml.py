"""PANalytical XRDML (``.xrdml``): XML, schema 1.x and 2.x, read with :mod:`xml.etree`.

Reference: Malvern Panalytical's XRDML schema (``XRDMeasurement.xsd``, namespace
``http://www.xrdml.com/XRDMeasurement/<version>``); elements are matched without their namespace.

The 2theta axis comes from ``<positions axis="2Theta">`` (``startPosition``/``endPosition``,
evenly spaced over the points, or ``listPositions``). ``<intensities>`` are taken as stored (already
corrected for the beam attenuator); raw ``<counts>`` are multiplied by ``beamAttenuationFactors`` or
``commonBeamAttenuationFactor``. Per-point ``countingTimes`` that vary are divided out (counts/s).
The wavelength is ``kAlpha1`` of ``<usedWavelength>`` (``kBeta`` when ``intended="K-Beta"``).
Only the first ``<scan>`` is read (``metadata["n_scans"]`` says how many there are); a scan in
which 2theta stays fixed is refused, and so is a pole figure (``measurementType="Area
measurement"`` stepping or scanning Phi, Psi or Chi); other area measurements (reciprocal space
maps, series) give their first scan with a warning.
"""

from __future__ import annotations

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, UnknownFormat, record_tube
from synthxrd.io._xml import children, first, float_of, floats, local, parse_xml

__all__ = ["is_xml", "read_xrdml"]

#: Axes that a pole figure (texture) measurement scans or steps; such XRDML files are refused.
_TEXTURE_AXES = {"Phi", "Psi", "Chi"}


def is_xml(source: Source) -> bool:
    """The text starts with ``<`` (leading blanks ignored): XML, which must then be XRDML."""
    return source.head.startswith("<")


def read_xrdml(source: Source, meta: dict):
    """2theta and intensity of the first scan of an XRDML file (see module docstring); no line numbers."""
    path = source.path
    root = parse_xml(source.data, path, "the file")
    if local(root.tag) != "xrdMeasurements":
        raise UnknownFormat(path, f"XML with root <{local(root.tag)}>, not a PANalytical XRDML file "
                                  f"(<xrdMeasurements>)")
    if "}" in root.tag:
        meta["xrdml_namespace"] = root.tag[1:].split("}")[0]
    measurement = first(root, "xrdMeasurement")
    kind = measurement.get("measurementType", "") if measurement is not None else ""
    step_axis = measurement.get("measurementStepAxis", "") if measurement is not None else ""
    scan_axes = {s.get("scanAxis", "") for s in root.iter() if local(s.tag) == "scan"}
    if kind.lower().startswith("area") and ({step_axis} | scan_axes) & _TEXTURE_AXES:
        raise DataError(f"{path}: pole figure: XRDML area measurement over {step_axis or '?'} and "
                        f"{'/'.join(sorted(scan_axes))}, not a powder 2theta scan; measure or export a 2theta scan")
    if kind.lower().startswith("area"):
        meta["warnings"].append(f"{path}: an area measurement (a reciprocal space map or a series, step axis "
                                f"{step_axis or '?'}); only the first scan is read")
    scans = [s for s in root.iter() if local(s.tag) == "scan"]
    if not scans:
        raise DataError(f"{path}: the XRDML file holds no <scan>")
    meta["n_scans"] = len(scans)
    if len(scans) > 1:
        meta["warnings"].append(f"{path}: {len(scans)} scans; only the first is read")
    used = first(root, "usedWavelength")
    if used is not None:
        _read_wavelengths(used, path, meta)
    scan = scans[0]
    meta["scan_axis"] = scan.get("scanAxis")
    points = first(scan, "dataPoints")
    if points is None:
        raise DataError(f"{path}: the first <scan> has no <dataPoints>")
    y = _intensities(points, path, meta)
    x = _two_theta(points, y.size, path, meta)
    return x, _per_second(points, y, path, meta), None


def _read_wavelengths(used, path: str, meta: dict) -> None:
    """``<usedWavelength>``: K-alpha1/2, K-beta and their ratio, in Angstrom (``unit="nm"`` converted)."""
    k1 = float_of(first(used, "kAlpha1"), path, "kAlpha1")
    k2 = float_of(first(used, "kAlpha2"), path, "kAlpha2")
    kb = float_of(first(used, "kBeta"), path, "kBeta")
    ratio = float_of(first(used, "ratioKAlpha2KAlpha1"), path, "ratioKAlpha2KAlpha1")
    unit = (first(used, "kAlpha1").get("unit", "Angstrom") if first(used, "kAlpha1") is not None else "Angstrom")
    factor = 10.0 if unit.lower() in ("nm", "nanometer", "nanometre") else 1.0
    k1, k2, kb = (None if v is None else v * factor for v in (k1, k2, kb))
    average = (k1 + ratio * k2) / (1 + ratio) if None not in (k1, k2, ratio) else None
    intended = used.get("intended", "")
    meta["intended_wavelength"] = intended or None
    meta["kbeta"] = kb
    record_tube(meta, k1, k2, ratio, average, "xrdml")
    if "beta" in intended.lower() and kb is not None:
        meta["wavelength"], meta["wavelength_source"] = kb, "xrdml: K-beta (intended)"


def _intensities(points, path: str, meta: dict) -> np.ndarray:
    """``<intensities>`` as stored, else ``<counts>`` times the beam attenuation factors."""
    values_elem = first(points, "intensities")
    raw_counts = values_elem is None
    if raw_counts:
        values_elem = first(points, "counts")
    if values_elem is None:
        raise DataError(f"{path}: the first scan has neither <intensities> nor <counts>")
    y = floats(values_elem, path, local(values_elem.tag))
    meta["intensity_element"] = local(values_elem.tag)
    if raw_counts:
        factors = first(points, "beamAttenuationFactors")
        common = float_of(first(points, "commonBeamAttenuationFactor"), path, "commonBeamAttenuationFactor")
        if factors is not None:
            f = floats(factors, path, "beamAttenuationFactors")
            if f.size != y.size:
                raise DataError(f"{path}: {f.size} beamAttenuationFactors for {y.size} counts")
            y = y * f
            meta["attenuation_applied"] = True
        elif common is not None and common != 1:
            y = y * common
            meta["attenuation_applied"] = True
    return y


def _two_theta(points, n: int, path: str, meta: dict) -> np.ndarray:
    """The n angles of ``<positions axis="2Theta">``: ``listPositions`` or start to end, evenly spaced."""
    tt_elem = None
    for positions in children(points, "positions"):
        if positions.get("axis", "").replace(" ", "").lower() == "2theta":
            tt_elem = positions
            break
    if tt_elem is None:
        raise DataError(f"{path}: the first scan has no <positions axis=\"2Theta\">")
    listed = first(tt_elem, "listPositions")
    if listed is not None:
        x = floats(listed, path, "listPositions")
        if x.size != n:
            raise DataError(f"{path}: {x.size} listPositions for {n} intensities")
        return x
    start = float_of(first(tt_elem, "startPosition"), path, "startPosition")
    end = float_of(first(tt_elem, "endPosition"), path, "endPosition")
    if start is None or end is None:
        common_pos = float_of(first(tt_elem, "commonPosition"), path, "commonPosition")
        if common_pos is not None:
            raise DataError(f"{path}: 2Theta stays at {common_pos:g} degrees in this scan "
                            f"(scan axis {meta['scan_axis']}); it is no 2theta scan")
        raise DataError(f"{path}: 2Theta positions give neither startPosition/endPosition nor listPositions")
    return np.linspace(start, end, n)


def _per_second(points, y: np.ndarray, path: str, meta: dict) -> np.ndarray:
    """y divided by per-point ``countingTimes`` where they vary; the counting time into ``meta``."""
    times = first(points, "countingTimes")
    common_time = float_of(first(points, "commonCountingTime"), path, "commonCountingTime")
    if times is None:
        meta["counting_time"] = common_time
        return y
    t = floats(times, path, "countingTimes")
    if t.size == y.size and np.all(t > 0) and not np.allclose(t, t[0]):
        y = y / t
        meta["intensity_unit"] = "counts/s"
    meta["counting_time"] = float(np.median(t)) if t.size else None
    return y
