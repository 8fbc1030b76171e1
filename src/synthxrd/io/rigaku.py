"""Rigaku diffractometer files: RAS and RASX (SmartLab Studio, PDXL), ASC (RINT, MiniFlex); RINT binary refused.

``rigaku_ras``
    Text written by SmartLab Studio and PDXL (layout as read by xrayutilities' ``io/rigaku_ras.py``
    and GSAS-II's ``G2pwd_rigaku.py``): ``*RAS_DATA_START``, then per scan a header
    ``*RAS_HEADER_START`` ... ``*RAS_HEADER_END`` of ``*KEY "value"`` lines and the points
    ``*RAS_INT_START`` ... ``*RAS_INT_END``, one per line: angle, intensity, attenuator factor.
    The intensity is multiplied by the attenuator factor where that is not 1 (as XRDML's
    ``beamAttenuationFactors``). The first scan is read (``metadata["n_scans"]``); its axis
    (``*MEAS_SCAN_AXIS_X``) must move 2theta (``2-Theta/Omega``, ``TwoThetaTheta``, ``2Theta``):
    a rocking curve (``Omega``) or a ``Phi`` scan is refused. Wavelengths: ``*HW_XG_WAVE_LENGTH_ALPHA1``,
    ``ALPHA2``, ``*HW_XG_TARGET_NAME`` (:mod:`synthxrd.io.wavelength`).
``rigaku_rasx``
    The zip archive SmartLab Studio II writes: ``Data0/Profile0.txt`` (tab-separated angle,
    intensity, attenuator factor; a UTF-8 byte-order mark) and ``Data0/MesurementConditions0.xml``
    (Rigaku's spelling) with ``<ScanInformation>`` (``AxisName``, ``Start``, ``Step``,
    ``IntensityUnit``) and ``<XrayGenerator>`` (``TargetName``, ``WavelengthKalpha1``,
    ``WavelengthKalpha2``, ``WaveType``). Only ``Data0`` is read (``metadata["n_scans"]`` counts
    the ``Data*/Profile*.txt``); an archive of detector images (``Image*.img``, a 2D measurement)
    is refused.
``rigaku_asc``
    The ASCII export of RINT, PDXL and MiniFlex software: ``*KEY = value`` header lines, then per
    group ``*BEGIN``, ``*START``, ``*STOP``, ``*STEP``, ``*COUNT`` and the counts, comma-separated,
    several per line, up to ``*END``. 2theta is ``*START + i *STEP``; the first group is read
    (``*GROUP_COUNT``). Wavelengths: ``*WAVE_LENGTH1``/``2``, ``*TARGET``, ``*XRAY_CHAR``.
``rigaku_raw``
    Binary ``.raw`` of RINT/SmartLab/MiniFlex (first bytes ``FI``): undocumented, refused with the
    exports that are read (``.ras``, ``.asc``, ``.rasx``).
"""

from __future__ import annotations

import re

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, numbers, open_zip, record_tube, text_start, zip_member
from synthxrd.io._xml import first, float_of, local, parse_xml
from synthxrd.io.wavelength import anode_lines, apply_header, scan_header

__all__ = ["is_rigaku_asc", "is_rigaku_ras", "is_rigaku_raw", "is_rasx", "read_rasx", "read_rigaku_asc",
           "read_rigaku_ras", "two_theta_axis"]

#: Member of a RASX archive that holds the scan conditions (Rigaku writes "Mesurement").
_RASX_CONDITIONS = re.compile(r"^Data(\d+)/Me(?:a)?surementConditions(\d+)\.xml$", re.I)
_RASX_PROFILE = re.compile(r"^Data(\d+)/Profile(\d+)\.txt$", re.I)


def two_theta_axis(axis: str | None) -> bool:
    """Whether a scan axis name moves 2theta (``2-Theta/Omega``, ``TwoThetaTheta``, ``Theta/2-Theta``, ``2Theta``).

    >>> [two_theta_axis(a) for a in ("2-Theta/Omega", "TwoThetaOmega", "Omega", "Phi", None)]
    [True, True, False, False, True]
    """
    if axis is None:
        return True  # not stated: the scan is taken as the usual coupled 2theta scan
    name = re.sub(r"[^a-z0-9]", "", axis.lower()).replace("2", "two")
    return "twotheta" in name


def is_rigaku_ras(source: Source) -> bool:
    """The text starts with a ``*RAS_`` key (``*RAS_DATA_START``; a byte-order mark and blanks ignored)."""
    return text_start(source.data, 4096).startswith(b"*RAS_")


def is_rigaku_asc(source: Source) -> bool:
    """Text with ``*KEY = value`` lines, among them ``*START`` and ``*COUNT``, before the data."""
    head = text_start(source.data)
    return head[:1] == b"*" and b"*START" in head and b"*COUNT" in head


def is_rasx(source: Source) -> bool:
    """A zip archive whose directory names ``Data0/Profile0.txt`` or ``MesurementConditions`` (nothing inflated)."""
    return source.data[:4] == b"PK\x03\x04" and (b"Data0/Profile0.txt" in source.data
                                                  or b"MesurementConditions" in source.data)


def is_rigaku_raw(source: Source) -> bool:
    """The first bytes ``FI\\0\\0`` of Rigaku's binary ``.raw``."""
    return source.data[:4] == b"FI\x00\x00"


def read_rigaku_ras(source: Source, meta: dict):
    """2theta and intensity of the first scan of a RAS file (see module docstring), with line numbers."""
    path, lines = source.path, source.lines
    scans = [i for i, line in enumerate(lines) if line.strip().upper() == "*RAS_INT_START"]
    if not scans:
        raise DataError(f"{path}: Rigaku RAS: no *RAS_INT_START block (no data points)")
    meta["n_scans"] = len(scans)
    if len(scans) > 1:
        meta["warnings"].append(f"{path}: {len(scans)} scans; only the first is read")
    start = max((i for i, line in enumerate(lines[:scans[0]]) if line.strip().upper() == "*RAS_HEADER_START"),
                default=0)
    header = lines[start:scans[0]]
    fields = _ras_fields(header)
    meta["header"] = True
    meta["header_lines"] = [s.strip() for s in header[:20]]
    meta["scan_axis"] = fields.get("MEAS_SCAN_AXIS_X")
    if not two_theta_axis(meta["scan_axis"]):
        raise DataError(f"{path}: Rigaku RAS: the scan axis is {meta['scan_axis']!r}, not 2theta (a rocking curve "
                        f"or another axis scan); only 2theta scans are patterns")
    meta["intensity_unit"] = fields.get("MEAS_SCAN_UNIT_Y")
    apply_header(scan_header(header, start + 1), meta)
    rows, lines_of = [], []
    for i in range(scans[0] + 1, len(lines)):
        s = lines[i].strip()
        if not s:
            continue
        if s.startswith("*"):
            break
        try:
            rows.append(numbers(s)[:3])
        except ValueError:
            raise DataError(f"{path}: line {i + 1}: cannot read {s[:60]!r} as RAS data (angle intensity "
                            f"attenuator)") from None
        lines_of.append(i + 1)
    x, y = _with_attenuation(rows, path, meta)
    return x, y, np.array(lines_of)


def _ras_fields(header: list[str]) -> dict[str, str]:
    """``*KEY "value"`` lines as a dict (keys without the star, values without quotes)."""
    fields = {}
    for line in header:
        m = re.match(r'^\*(\S+)\s+"?(.*?)"?\s*$', line.strip())
        if m:
            fields[m.group(1).upper()] = m.group(2)
    return fields


def _with_attenuation(rows: list[list[float]], path: str, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """Angle and intensity (times the attenuator factor of a third column, where not 1) of RAS/RASX rows."""
    if not rows:
        raise DataError(f"{path}: Rigaku: the scan holds no data points")
    width = min(len(r) for r in rows)
    if width < 2:
        raise DataError(f"{path}: Rigaku: a data line holds {width} value(s); angle and intensity are needed")
    table = np.array([r[:width] for r in rows], dtype=np.float64)
    x, y = table[:, 0], table[:, 1]
    if width >= 3 and not np.all(table[:, 2] == 1):
        y = y * table[:, 2]
        meta["attenuation_applied"] = True
    return x, y


def read_rasx(source: Source, meta: dict):
    """2theta and intensity of ``Data0`` of a RASX archive (see module docstring); no line numbers."""
    path = source.path
    with open_zip(source.data, path, "Rigaku RASX: ") as archive:
        names = archive.namelist()
        profiles = [n for n in names if _RASX_PROFILE.match(n)]
        meta["n_scans"] = len(profiles)
        if not profiles or "Data0/Profile0.txt" not in names:
            images = [n for n in names if n.lower().endswith((".img", ".tif", ".tiff"))]
            what = f"image / 2D data ({len(images)} detector images)" if images else "no Data0/Profile0.txt"
            raise DataError(f"{path}: Rigaku RASX: {what}; export a 1D 2theta profile (.ras or .xy) from "
                            f"SmartLab Studio")
        if len(profiles) > 1:
            meta["warnings"].append(f"{path}: {len(profiles)} profiles (scans); only Data0/Profile0.txt is read")

        def read(name: str) -> bytes:
            return zip_member(archive, name, path, "Rigaku RASX: ")

        conditions = next((n for n in names if _RASX_CONDITIONS.match(n) and n.startswith("Data0/")), None)
        profile = read("Data0/Profile0.txt").decode("utf-8-sig", "replace")
        root = parse_xml(read(conditions), path, conditions) if conditions else None
    if root is not None:
        _rasx_conditions(root, path, meta)
    rows = []
    for k, line in enumerate(profile.splitlines(), 1):
        if line.strip():
            try:
                rows.append(numbers(line)[:3])
            except ValueError:
                raise DataError(f"{path}: Rigaku RASX: Data0/Profile0.txt line {k}: cannot read {line.strip()[:60]!r} "
                                f"as numbers") from None
    return (*_with_attenuation(rows, path, meta), None)


def _rasx_conditions(root, path: str, meta: dict) -> None:
    """Scan axis, intensity unit and tube of ``MesurementConditions0.xml`` into ``meta``."""
    scan = first(root, "ScanInformation")
    if scan is not None:
        axis = first(scan, "AxisName")
        meta["scan_axis"] = axis.text.strip() if axis is not None and axis.text else None
        unit = first(scan, "IntensityUnit")
        meta["intensity_unit"] = unit.text.strip() if unit is not None and unit.text else None
        if not two_theta_axis(meta["scan_axis"]):
            raise DataError(f"{path}: Rigaku RASX: the scan axis is {meta['scan_axis']!r}, not 2theta (a rocking "
                            f"curve or another axis scan); only 2theta scans are patterns")
    tube = first(root, "XrayGenerator")
    if tube is None:
        return
    target = first(tube, "TargetName")
    anode = target.text.strip() if target is not None and target.text else None
    alpha1 = float_of(first(tube, "WavelengthKalpha1"), path, "WavelengthKalpha1")
    alpha2 = float_of(first(tube, "WavelengthKalpha2"), path, "WavelengthKalpha2")
    lines = anode_lines(anode) if anode else None
    meta["anode"] = anode
    meta["radiation"] = "x-ray"
    ratio = lines[2] if lines else None
    if alpha1 is None and lines is not None:
        record_tube(meta, *lines, f"rasx tube {anode} (from the wavelength table)")
    else:
        average = (alpha1 + ratio * alpha2) / (1 + ratio) if None not in (alpha1, alpha2, ratio) else None
        record_tube(meta, alpha1, alpha2, ratio, average, "rasx tube")
    wave = first(tube, "WaveType")
    meta["wave_type"] = wave.text.strip() if wave is not None and wave.text else None
    if meta["wave_type"] and "b" in meta["wave_type"].lower():
        kb = float_of(first(tube, "WavelengthKbeta"), path, "WavelengthKbeta")
        if kb:
            meta["wavelength"], meta["wavelength_source"] = kb, "rasx tube: K-beta (WaveType)"
    for e in root.iter():
        if local(e.tag) == "Type" and (e.text or "").strip().upper().startswith("RSM"):
            raise DataError(f"{path}: Rigaku RASX: a reciprocal space map, not a powder 2theta scan")


def read_rigaku_asc(source: Source, meta: dict):
    """2theta and counts of the first group of a Rigaku ASC file (see module docstring), with line numbers."""
    path, lines = source.path, source.lines
    keys: dict[str, tuple[int, str]] = {}
    begin = None
    for i, line in enumerate(lines):
        s = line.strip()
        m = re.match(r"^\*([A-Z0-9_]+)\s*(?:=\s*(.*))?$", s, re.I)
        if not m:
            if keys.get("COUNT") is not None and s:
                begin = i
                break
            continue
        key = m.group(1).upper()
        if key == "BEGIN" and "COUNT" in keys:
            break  # a second group starts before any counts: malformed
        if key == "END" and "COUNT" in keys:
            break
        keys.setdefault(key, (i + 1, (m.group(2) or "").strip()))
        if key == "GROUP" and "COUNT" in keys:
            break
    if begin is None:
        raise DataError(f"{path}: Rigaku ASC: no counts after *COUNT")
    header = lines[:begin]
    meta["header"] = True
    meta["header_lines"] = [s.strip() for s in header[:20]]
    apply_header(scan_header(header), meta)
    start, step, count = (_asc_number(keys, k, path) for k in ("START", "STEP", "COUNT"))
    axis = keys.get("SCAN_AXIS", keys.get("SCAN_MODE", (0, None)))[1]
    meta["scan_axis"] = axis
    if not two_theta_axis(axis):
        raise DataError(f"{path}: Rigaku ASC: the scan axis is {axis!r}, not 2theta; only 2theta scans are patterns")
    groups = keys.get("GROUP_COUNT")
    if groups and groups[1].strip() not in ("", "1"):
        meta["warnings"].append(f"{path}: {groups[1].strip()} groups; only the first is read")
    y, lines_of = [], []
    for i in range(begin, len(lines)):
        s = lines[i].strip()
        if not s:
            continue
        if s.startswith("*"):
            break
        try:
            values = numbers(s)
        except ValueError:
            raise DataError(f"{path}: line {i + 1}: cannot read {s[:60]!r} as Rigaku ASC counts") from None
        y.extend(values)
        lines_of.extend([i + 1] * len(values))
    if len(y) != count:
        raise DataError(f"{path}: Rigaku ASC: *COUNT (line {keys['COUNT'][0]}) declares {count:g} points, "
                        f"the data hold {len(y)}")
    return start + step * np.arange(len(y)), np.array(y, dtype=np.float64), np.array(lines_of)


def _asc_number(keys: dict, key: str, path: str) -> float:
    """The number of header key ``*key`` of an ASC file; DataError naming the line when absent or no number."""
    if key not in keys:
        raise DataError(f"{path}: Rigaku ASC: no *{key} line before the counts")
    ln, value = keys[key]
    try:
        return float(value.split(",")[0])
    except ValueError:
        raise DataError(f"{path}: line {ln}: Rigaku ASC *{key} is {value[:40]!r}, not a number") from None
