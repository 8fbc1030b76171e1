"""Bruker diffractometer files: DIFFRAC-AT/plus ``.raw`` (versions 1 to 4) and DIFFRAC.SUITE ``.brml``.

``bruker_raw``
    Binary, little endian; the version is the magic of the first bytes. Only the first range is read
    (``metadata["n_ranges"]``).

    - ``RAW1.01`` (DIFFRAC-plus, "version 3"), as documented in *DIFFRAC plus XCH V.5.0 Release
      2002, User's Manual, Appendix A* (layout as read by xylib): 712-byte file header (range count
      at byte 12, anode at 608, float64 K-alpha average/alpha1/alpha2/beta/ratio at
      616/624/632/640/648), then per range a 304-byte header (point count at +4, 2theta start at
      +16, step at +176, time per step at +192, used lambda at +240, supplementary-header length at
      +256), the supplementary headers and float32 counts.
    - ``RAW4.00`` (DIFFRAC.SUITE, "version 4"; layout as read by GSAS-II's ``G2pwd_BrukerRAW.py``
      and the FAIRmat ``fairmat-readers-xrd``): a 61-byte preamble, then records of uint32 type and
      uint32 length. Type 10 is a ``KEY``/value text, type 30 the tube (float64 K-alpha average,
      alpha1, alpha2, beta, ratio at +72 to +104, the anode at +116). Type 0 or 160 starts a range:
      the scan type at +32 (24 characters), float64 start and step at +72 and +80, uint32 point
      count at +88, float32 time per step at +92, float64 used wavelength at +112, uint32 record
      size at +136 and length of the range's own records at +140 (drive records, type 50, name at
      +12); the points follow at +160 + that length, one record each, whose first float32 is the
      intensity. Scan types other than coupled 2theta scans (``Locked Coupled``, ``Unlocked
      Coupled``, ``Detector Scan``, ``2Theta``) are refused.
    - ``RAW2`` (DIFFRAC-AT version 2; *DIFFRAC-AT Raw Data File Format*, Appendix B, layout as read
      by xylib): range count (uint16) at 4, anode at 188 (2 characters), float32 K-alpha1, alpha2
      and ratio at 190/194/198; ranges from byte 256, each a header (uint16 length at +0, uint16
      point count at +2, float32 step at +12 and start at +16) and float32 counts.
    - ``RAW `` (DIFFRAC-AT version 1, same source): per range uint32 point count at 4, float32
      step at 12, start at 24, K-alpha1 and alpha2 at 72/76, and float32 counts from byte 156.
``brml``
    Bruker ``.brml`` (a zip archive): the first ``RawData*.xml``; 2theta from the ``TwoTheta`` scan
    axis (``Start``/``Increment``) or from the ``<Datum>`` column that the ``RawDataView`` of
    ``TwoTheta`` names, intensity from the last ``<Datum>`` column, multiplied by the absorber
    factor of column 2 where that is not 1 (as XRDML's attenuation factors); tube wavelengths from
    ``WaveLengthAlpha1/Alpha2/Ratio/Average``. Steps marked -9999 (not measured) are dropped. A zip
    archive without ``RawData*.xml`` (e.g. a spreadsheet, ``.xlsx``) is no supported format.
"""

from __future__ import annotations

import re
import struct

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, UnknownFormat, open_zip, record_tube, zip_member
from synthxrd.io._xml import first, float_of, local, parse_xml
from synthxrd.io.wavelength import anode_lines

__all__ = ["is_bruker_raw", "is_zip", "read_brml", "read_bruker_raw"]

_RAW_FILE_HEADER = 712
_RAW_RANGE_HEADER = 304
#: First four bytes of the Bruker RAW versions (RAW v1, RAW2, RAW1.01, RAW4.00).
_RAW_MAGICS = (b"RAW1", b"RAW ", b"RAW2", b"RAW4")
#: Datum value of a step that was not measured.
_NOT_MEASURED = -9999


def is_bruker_raw(source: Source) -> bool:
    """Starts with ``RAW1``, ``RAW2``, ``RAW4`` or ``RAW `` and has a NUL byte in the first KiB."""
    return source.data[:4] in _RAW_MAGICS and b"\0" in source.data[:1024]


def is_zip(source: Source) -> bool:
    """Starts with the zip signature ``PK\\x03\\x04``."""
    return source.data[:4] == b"PK\x03\x04"


def read_bruker_raw(source: Source, meta: dict):
    """2theta and counts of the first range of a Bruker RAW file, versions 1 to 4 (see module docstring)."""
    data, path = source.data, source.path
    magic = data[:7] if data[:4] in (b"RAW1", b"RAW4") else data[:4]
    meta["raw_version"] = magic.split(b"\0")[0].decode("ascii", "replace").strip() or "?"
    if data[:7] == b"RAW4.00":
        return _read_raw4(data, path, meta)
    if data[:4] == b"RAW2":
        return _read_raw2(data, path, meta)
    if data[:4] == b"RAW ":
        return _read_raw1(data, path, meta)
    if data[:7] != b"RAW1.01":
        raise DataError(f"{path}: Bruker RAW version {meta['raw_version']!r} is not supported (RAW, RAW2, RAW1.01 "
                        f"and RAW4.00 are); export the scan as .xy")
    if len(data) < _RAW_FILE_HEADER:
        raise DataError(f"{path}: Bruker RAW1.01 file truncated ({len(data)} bytes, the header alone has "
                        f"{_RAW_FILE_HEADER})")
    status, n_ranges = struct.unpack_from("<II", data, 8)
    meta["file_status"] = {1: "done", 2: "active", 3: "aborted", 4: "interrupted"}.get(status, str(status))
    meta["anode"] = data[608:612].split(b"\0")[0].decode("ascii", "replace").strip() or None
    average, alpha1, alpha2, _beta, ratio = struct.unpack_from("<5d", data, 616)
    meta["n_ranges"] = int(n_ranges)
    if n_ranges < 1:
        raise DataError(f"{path}: the Bruker RAW1.01 file holds no data range")
    if n_ranges > 1:
        meta["warnings"].append(f"{path}: {n_ranges} ranges; only the first is read")
    pos = _RAW_FILE_HEADER
    if len(data) < pos + _RAW_RANGE_HEADER:
        raise DataError(f"{path}: Bruker RAW1.01 file truncated in the header of range 1")
    header_len, steps = struct.unpack_from("<II", data, pos)
    if header_len != _RAW_RANGE_HEADER:
        raise DataError(f"{path}: range 1 has a header of {header_len} bytes, RAW1.01 has {_RAW_RANGE_HEADER}")
    (start_2theta,) = struct.unpack_from("<d", data, pos + 16)
    (step,) = struct.unpack_from("<d", data, pos + 176)
    (time_per_step,) = struct.unpack_from("<f", data, pos + 192)
    (used_lambda,) = struct.unpack_from("<d", data, pos + 240)
    (supplementary,) = struct.unpack_from("<I", data, pos + 256)
    begin = pos + header_len + supplementary
    if len(data) < begin + 4 * steps:
        raise DataError(f"{path}: range 1 declares {steps} points but the file ends after "
                        f"{max(0, (len(data) - begin) // 4)}")
    y = np.frombuffer(data, dtype="<f4", count=steps, offset=begin).astype(np.float64)
    x = start_2theta + step * np.arange(steps, dtype=np.float64)
    record_tube(meta, alpha1, alpha2, ratio, average, "RAW1.01 header")
    lines = anode_lines(meta["anode"]) if meta["anode"] else None
    if meta["wavelength"] is None and not 0.01 < used_lambda < 100 and lines is not None:
        record_tube(meta, *lines, f"RAW1.01 header: anode {meta['anode']} (from the wavelength table)")
    meta["radiation"] = "x-ray"
    if meta["wavelength"] is None and 0.01 < used_lambda < 100:
        meta["wavelength"], meta["wavelength_source"] = float(used_lambda), "RAW1.01 range 1: used lambda"
    meta["counting_time"] = float(time_per_step)
    if status in (2, 3, 4):
        meta["warnings"].append(f"{path}: the measurement was {meta['file_status']}, not completed")
    return x, y, None


#: RAW4.00 scan types that scan 2theta (others: rocking curves, Phi scans, ... are refused).
_RAW4_TWO_THETA_SCANS = ("locked coupled", "unlocked coupled", "detector scan", "2theta", "coupled two theta/theta",
                         "twotheta")


def _read_raw4(data: bytes, path: str, meta: dict):
    """The first range of a RAW4.00 file (module docstring); tube from the type-30 record."""
    pos, tube, ranges, first = 61, None, 0, None
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        if kind in (0, 160):  # a range: its header, its own records, the points
            if pos + 160 > len(data):
                raise DataError(f"{path}: Bruker RAW4.00 file truncated in the header of range {ranges + 1}")
            (n,) = struct.unpack_from("<I", data, pos + 88)
            record, extra = struct.unpack_from("<II", data, pos + 136)
            end = pos + 160 + extra + n * record
            if record < 4 or end > len(data):
                if first is None:
                    raise DataError(f"{path}: range 1 declares {n} points of {record} bytes but the file ends after "
                                    f"{max(0, (len(data) - pos - 160 - extra) // max(record, 1))}")
                break
            first = pos if first is None else first
            ranges += 1
            pos = end
            continue
        if length < 8:
            raise DataError(f"{path}: Bruker RAW4.00: the record at byte {pos} declares {length} bytes")
        if kind == 30 and pos + 120 <= len(data):
            tube = struct.unpack_from("<5d", data, pos + 72), data[pos + 116:pos + 120].split(b"\0")[0]
        elif kind == 10 and pos + 36 <= len(data):
            key = data[pos + 12:pos + 36].split(b"\0")[0].decode("latin-1").strip()
            meta.setdefault("raw_fields", {})[key] = data[pos + 36:pos + length].split(b"\0")[0].decode(
                "latin-1").strip()
        pos += length
    if first is None:
        raise DataError(f"{path}: the Bruker RAW4.00 file holds no data range")
    meta["n_ranges"] = ranges
    if ranges > 1:
        meta["warnings"].append(f"{path}: {ranges} ranges; only the first is read")
    at = first
    scan_type = data[at + 32:at + 56].split(b"\0")[0].decode("latin-1").strip()
    meta["scan_type"] = scan_type
    if scan_type.lower() not in _RAW4_TWO_THETA_SCANS:
        raise DataError(f"{path}: Bruker RAW4.00 range 1 is a {scan_type!r} scan, not a 2theta scan (only Locked "
                        f"Coupled, Unlocked Coupled and Detector Scan are patterns)")
    start, step = struct.unpack_from("<2d", data, at + 72)
    n, time_per_step = struct.unpack_from("<If", data, at + 88)
    (used_lambda,) = struct.unpack_from("<d", data, at + 112)
    record, extra = struct.unpack_from("<II", data, at + 136)
    begin = at + 160 + extra
    y = np.ndarray((n,), dtype="<f4", buffer=data, offset=begin, strides=(record,)).astype(np.float64)
    x = start + step * np.arange(n, dtype=np.float64)
    if tube is not None:
        (average, alpha1, alpha2, _beta, ratio), anode = tube
        average, alpha1, alpha2 = (round(v, 6) for v in (average, alpha1, alpha2))  # float32 values stored as float64
        meta["anode"] = anode.decode("latin-1").strip() or None
        record_tube(meta, alpha1, alpha2 if ratio > 0 else None, ratio if ratio > 0 else None,
                    average if ratio > 0 else None, "RAW4.00 tube")
    if meta["wavelength"] is None and 0.01 < used_lambda < 100:
        meta["wavelength"], meta["wavelength_source"] = float(used_lambda), "RAW4.00 range 1: used wavelength"
    meta["radiation"] = "x-ray"
    meta["counting_time"] = float(time_per_step)
    return x, y, None


def _read_raw2(data: bytes, path: str, meta: dict):
    """The first range of a RAW2 (DIFFRAC-AT version 2) file (module docstring)."""
    if len(data) < 256 + 48:
        raise DataError(f"{path}: Bruker RAW2 file truncated ({len(data)} bytes, the header alone has 304)")
    (n_ranges,) = struct.unpack_from("<H", data, 4)
    meta["n_ranges"] = int(n_ranges)
    if n_ranges < 1:
        raise DataError(f"{path}: the Bruker RAW2 file holds no data range")
    if n_ranges > 1:
        meta["warnings"].append(f"{path}: {n_ranges} ranges; only the first is read")
    meta["anode"] = data[188:190].split(b"\0")[0].decode("latin-1").strip() or None
    alpha1, alpha2, ratio = struct.unpack_from("<3f", data, 190)
    header_len, n = struct.unpack_from("<HH", data, 256)
    (time_per_step,) = struct.unpack_from("<f", data, 256 + 8)
    step, start = struct.unpack_from("<2f", data, 256 + 12)
    begin = 256 + header_len
    if header_len <= 48 or len(data) < begin + 4 * n:
        raise DataError(f"{path}: range 1 declares {n} points but the file ends after "
                        f"{max(0, (len(data) - begin) // 4)}")
    y = np.frombuffer(data, dtype="<f4", count=n, offset=begin).astype(np.float64)
    x = float(start) + float(step) * np.arange(n, dtype=np.float64)
    _raw_tube(meta, alpha1, alpha2, ratio, "RAW2 header")
    meta["counting_time"] = float(time_per_step)
    return x, y, None


def _read_raw1(data: bytes, path: str, meta: dict):
    """The first range of a ``RAW `` (DIFFRAC-AT version 1) file (module docstring)."""
    if len(data) < 156:
        raise DataError(f"{path}: Bruker RAW v1 file truncated ({len(data)} bytes, the header alone has 156)")
    (n,) = struct.unpack_from("<I", data, 4)
    time_per_step, step = struct.unpack_from("<2f", data, 8)
    (start,) = struct.unpack_from("<f", data, 24)
    alpha1, alpha2 = struct.unpack_from("<2f", data, 72)
    (following,) = struct.unpack_from("<I", data, 152)
    meta["n_ranges"] = 1 + (following > 0)
    if following > 0:
        meta["warnings"].append(f"{path}: more than one range; only the first is read")
    if len(data) < 156 + 4 * n:
        raise DataError(f"{path}: range 1 declares {n} points but the file ends after {(len(data) - 156) // 4}")
    y = np.frombuffer(data, dtype="<f4", count=n, offset=156).astype(np.float64)
    x = float(start) + float(step) * np.arange(n, dtype=np.float64)
    _raw_tube(meta, alpha1, alpha2, None, "RAW v1 header")
    meta["counting_time"] = float(time_per_step)
    return x, y, None


def _raw_tube(meta: dict, alpha1: float, alpha2: float, ratio: float | None, source: str) -> None:
    """Tube of a RAW v1/v2 header (float32, rounded to 6 decimals); the anode's table lines where none is stated."""
    alpha1, alpha2 = round(float(alpha1), 6), round(float(alpha2), 6)
    ratio = float(ratio) if ratio is not None and 0 < ratio < 1.5 else None
    average = (alpha1 + ratio * alpha2) / (1 + ratio) if ratio is not None and alpha2 > 0 else None
    record_tube(meta, alpha1, alpha2 if alpha2 > 0 else None, ratio, average, source)
    lines = anode_lines(meta["anode"]) if meta.get("anode") else None
    if meta["wavelength"] is None and lines is not None:
        record_tube(meta, *lines, f"{source}: anode {meta['anode']} (from the wavelength table)")
    meta["radiation"] = "x-ray"


def read_brml(source: Source, meta: dict):
    """2theta and intensity of the first ``RawData*.xml`` of a ``.brml`` archive; no line numbers."""
    path = source.path
    root, raw_name, tube_root = _brml_members(source, meta)
    routes = [r for r in root.iter() if local(r.tag) == "DataRoute" and first(r, "Datum") is not None]
    if not routes:
        raise DataError(f"{path}: {raw_name} holds no <Datum> measurement points")
    route = routes[0]
    start, increment = _scan_axis(route, path)
    tt_column = _two_theta_column(route)
    table = _datum_table(route, path)
    width = table.shape[1]
    y = table[:, -1]
    x = _brml_two_theta(table, tt_column, start, increment, path)
    if width >= 5 and not np.allclose(table[:, 1], 1.0):
        y = y * table[:, 1]  # the absorber factor: counts x factor, as XRDML's beamAttenuationFactors
        meta["attenuation_applied"] = True
    measured = y != _NOT_MEASURED
    if not measured.all():
        meta["warnings"].append(f"{path}: {int((~measured).sum())} steps marked -9999 (not measured) dropped")
        x, y = x[measured], y[measured]
    if tube_root is not None:
        record_tube(meta, _tube_value(tube_root, "WaveLengthAlpha1"), _tube_value(tube_root, "WaveLengthAlpha2"),
                    _tube_value(tube_root, "WaveLengthRatio"), _tube_value(tube_root, "WaveLengthAverage"),
                    "brml tube")
    return x, y, None


def _natural_key(name: str) -> list:
    """Sort key that orders ``RawData2`` before ``RawData10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _brml_members(source: Source, meta: dict):
    """The parsed first ``RawData*.xml``, its name, and the XML that holds the tube wavelengths (or None)."""
    path = source.path
    with open_zip(source.data, path) as archive:
        raw = sorted((n for n in archive.namelist() if re.search(r"(^|/)RawData\d*\.xml$", n)), key=_natural_key)
        if not raw:
            if source.ext in (".xlsx", ".xlsm", ".ods"):
                raise UnknownFormat(path, "zip archive without RawData*.xml (a spreadsheet, .xlsx)",
                                    "; save the sheet's 2theta and intensity columns as .csv")
            shown = ", ".join(archive.namelist()[:5]) + (", ..." if len(archive.namelist()) > 5 else "")
            raise UnknownFormat(path, f"zip archive holding neither a Bruker .brml (RawData*.xml) nor a Rigaku .rasx "
                                      f"(Data0/Profile0.txt): {shown}")
        meta["n_ranges"] = len(raw)
        if len(raw) > 1:
            meta["warnings"].append(f"{path}: {len(raw)} RawData files (ranges); only {raw[0]} is read")

        def read(name: str) -> bytes:
            return zip_member(archive, name, path)

        root = parse_xml(read(raw[0]), path, raw[0])
        if first(root, "WaveLengthAlpha1") is not None:
            return root, raw[0], root
        for name in archive.namelist():
            if name.lower().endswith(".xml") and name != raw[0] and "measurementcontainer" in name.lower():
                candidate = parse_xml(read(name), path, name)
                if first(candidate, "WaveLengthAlpha1") is not None:
                    return root, raw[0], candidate
    return root, raw[0], None


def _datum_table(route, path: str) -> np.ndarray:
    """The comma-separated ``<Datum>`` rows of a data route as an (N, width) float64 table."""
    rows = []
    for datum in route.iter():
        if local(datum.tag) == "Datum":
            try:
                rows.append([float(v) for v in (datum.text or "").split(",") if v.strip()])
            except ValueError:
                raise DataError(f"{path}: <Datum> {(datum.text or '')[:60]!r} is not comma-separated numbers") from None
    width = min(len(r) for r in rows)
    if width < 1 or any(len(r) != len(rows[0]) for r in rows):
        raise DataError(f"{path}: the <Datum> rows have different numbers of values")
    return np.array(rows, dtype=np.float64)


def _scan_axis(route, path: str) -> tuple[float | None, float | None]:
    """Start and Increment of the TwoTheta ``ScanAxisInfo`` of a data route (None where absent)."""
    for axis in route.iter():
        if local(axis.tag) == "ScanAxisInfo" and "twotheta" in (
                axis.get("AxisId", "") + axis.get("AxisName", "")).lower().replace("2", "two"):
            return (float_of(first(axis, "Start"), path, "Start"),
                    float_of(first(axis, "Increment"), path, "Increment"))
    return None, None


def _two_theta_column(route) -> int | None:
    """The ``<Datum>`` column that the ``RawDataView`` of TwoTheta names (its ``Start``), or None."""
    for view in route.iter():
        if local(view.tag) == "RawDataView" and view.get("Start") is not None and any(
                "twotheta" in v.lower() for k, v in view.attrib.items() if k != "Start"):
            try:
                return int(view.get("Start"))
            except ValueError:
                return None
    return None


def _brml_two_theta(table: np.ndarray, tt_column: int | None, start: float | None, increment: float | None,
                    path: str) -> np.ndarray:
    """2theta per row: the TwoTheta column of ``<Datum>`` (checked against Start/Increment), else the axis."""
    n, width = table.shape
    if tt_column is None and width >= 5:
        tt_column = 2  # time, absorber factor, 2theta, theta, counts
    if tt_column is not None and tt_column < width - 1:
        x = table[:, tt_column]
        if start is not None and increment:
            expected = start + increment * np.arange(n)
            if not np.allclose(x, expected, atol=abs(increment) / 2):
                x = expected
        return x
    if start is not None and increment:
        return start + increment * np.arange(n)
    raise DataError(f"{path}: no TwoTheta scan axis (Start/Increment) and no 2theta column in <Datum>")


def _tube_value(tube_root, name: str) -> float | None:
    """The ``Value`` attribute of element ``name`` as a number, or None."""
    e = first(tube_root, name)
    try:
        return float(e.get("Value")) if e is not None and e.get("Value") is not None else None
    except ValueError:
        return None
