"""STOE WinXPOW binary raw data (``.raw``, first bytes ``RAW_1.06Powdat``).

The format is not published by STOE; the layout is the one read by the Chemotion converter
(``converter_app/readers/stoe_raw.py``, ComPlat/chemotion-converter-app, after R. Dockhorn's
notebook), checked here on the files it was found in. Little endian, 512-byte blocks:

- ``0x0000`` the magic ``RAW_1.06Powdat``; ``0x0010`` the date (text); ``0x0020`` NUL-separated
  strings (sample id, title);
- ``0x0142`` K-alpha1 and K-alpha2 (float32, Angstrom);
- ``0x01DA`` length of the intensity block and ``0x01DC`` length of the file, both in blocks
  (uint16): the intensities start at D = (file blocks - intensity blocks) x 512;
- ``D - 0x1DE`` the point count (uint16); ``D - 0x1D4`` start 2theta, start theta, end 2theta,
  end theta, step 2theta, step theta (6 float32, degrees); ``D - 0x188`` minimum and maximum
  intensity (2 uint32);
- ``D`` the counts (uint32 per point).

A range is accepted only when its point count agrees with start, end and step and its counts with
the stated minimum and maximum; where the block counters do not lead to such a range every block
boundary is tried. One range per file is read.
"""

from __future__ import annotations

import struct

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, record_tube
from synthxrd.io.wavelength import anode_lines, anodes

__all__ = ["is_stoe_raw", "read_stoe_raw"]

_MAGIC = b"RAW_1.06Powdat"
_BLOCK = 0x200
_WAVELENGTHS = 0x0142
_DATA_BLOCKS, _FILE_BLOCKS = 0x01DA, 0x01DC
_REL_POINTS, _REL_SCAN, _REL_MINMAX = -0x1DE, -0x1D4, -0x188


def is_stoe_raw(source: Source) -> bool:
    """Starts with ``RAW_`` (STOE's ``RAW_1.06Powdat``; Bruker's RAW has no underscore)."""
    return source.data[:4] == b"RAW_"


def read_stoe_raw(source: Source, meta: dict):
    """2theta and counts of a STOE ``RAW_1.06Powdat`` file (see module docstring); no line numbers."""
    data, path = source.data, source.path
    if data[:len(_MAGIC)] != _MAGIC:
        version = data[:16].split(b"\0")[0].decode("latin-1").strip()
        raise DataError(f"{path}: STOE raw version {version!r} is not supported (only RAW_1.06Powdat); export the "
                        f"scan from WinXPOW as .xy")
    if len(data) < 2 * _BLOCK:
        raise DataError(f"{path}: STOE raw file truncated ({len(data)} bytes)")
    meta["title"] = " ".join(s.decode("latin-1").strip() for s in data[0x20:0x130].split(b"\0") if s.strip()) or None
    offset = _range_offset(data)
    if offset is None:
        raise DataError(f"{path}: STOE raw: no consistent scan range (point count, start, end and step) found")
    n = struct.unpack_from("<H", data, offset + _REL_POINTS)[0]
    start, _t0, end, _t1, step, _ts = struct.unpack_from("<6f", data, offset + _REL_SCAN)
    y = np.frombuffer(data, dtype="<u4", count=n, offset=offset).astype(np.float64)
    x = np.linspace(start, end, n)
    meta["step_stated"] = float(step)
    alpha1, alpha2 = struct.unpack_from("<2f", data, _WAVELENGTHS)
    alpha1, alpha2 = round(float(alpha1), 6), round(float(alpha2), 6)  # float32: 7 significant digits
    anode = next((a for a in anodes() if abs(anode_lines(a)[0] - alpha1) < 2e-3), None)
    meta["anode"] = anode
    meta["radiation"] = "x-ray" if anode else None
    ratio = anode_lines(anode)[2] if anode else None
    average = (alpha1 + ratio * alpha2) / (1 + ratio) if ratio is not None and alpha2 > 0 else None
    record_tube(meta, alpha1, alpha2 if alpha2 > 0 else None, ratio, average, "STOE raw header")
    return x, y, None


def _range_offset(data: bytes) -> int | None:
    """Start of the counts: from the block counters, else the first block boundary where a consistent range starts."""
    data_blocks, file_blocks = struct.unpack_from("<2H", data, _DATA_BLOCKS)
    candidates = [(file_blocks - data_blocks) * _BLOCK] if 0 < data_blocks < file_blocks else []
    candidates += range(_BLOCK, len(data), _BLOCK)
    for offset in candidates:
        if _consistent(data, offset):
            return offset
    return None


def _consistent(data: bytes, offset: int) -> bool:
    """Whether a range whose counts start at ``offset`` agrees with itself (count, axis, min/max)."""
    if offset < _BLOCK or offset >= len(data):
        return False
    n = struct.unpack_from("<H", data, offset + _REL_POINTS)[0]
    if n < 2 or offset + 4 * n > len(data):
        return False
    start, _t0, end, _t1, step, _ts = struct.unpack_from("<6f", data, offset + _REL_SCAN)
    if not (np.isfinite([start, end, step]).all() and step > 0 and end > start):
        return False
    if abs(round((end - start) / step) + 1 - n) > 1:
        return False
    low, high = struct.unpack_from("<2I", data, offset + _REL_MINMAX)
    counts = np.frombuffer(data, dtype="<u4", count=n, offset=offset)
    return not high or (int(counts.min()) == low and int(counts.max()) == high)
