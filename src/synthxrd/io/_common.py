"""What the readers share: limits, the warning and error classes, the file being read, wavelengths.

Nothing here knows a format; the readers (one module per format family) use these helpers, and
:mod:`synthxrd.io.formats` puts the readers into one table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from synthxrd.errors import DataError

#: Fewer points than this are no pattern (a peak list, a truncated file).
MIN_POINTS = 10
#: Degrees 2theta. A whole axis below this looks like d-spacings (Angstrom) or Q (1/Angstrom): with
#: Cu K-alpha, 2theta < 15 degrees holds no more than d > 5.9 Angstrom, while d and Q values of a
#: powder pattern are typically 0.5-10.
LOW_ANGLE_LIMIT = 15.0
#: A run of at least this many identical, non-zero intensities at either end of a pattern is padding
#: (e.g. XRED's resampled RRUFF90/Experiment10 files repeat the first measured value down to 10
#: degrees); counting statistics make such runs impossible in measured data. load_for_model trims it.
PADDING_MIN_RUN = 20
#: A step larger than this many median steps is a gap in the measurement (e.g. between two ranges);
#: grid points inside a gap are not covered.
GAP_FACTOR = 10.0
#: Relative difference above which a wavelength given as argument is reported as contradicting the
#: file's (1 % separates anodes, and is larger than K-alpha1 vs the K-alpha average: 0.08 % for Cu).
WAVELENGTH_MISMATCH = 0.01
#: Bigger pattern files are refused unless read_pattern(max_bytes=...) allows them (the largest real
#: scans, XRDML with many frames, are a few MB; a bigger file is a mistake, e.g. an image or a disk dump).
MAX_PATTERN_BYTES = 256 * 2**20
#: A pattern with more than this share of intensities below zero gets a warning: the model sees them as 0.
NEGATIVE_WARNING_SHARE = 0.05
#: Bigger XML members of a .brml zip are refused (a zip bomb, or no powder scan).
MAX_XML_BYTES = 512 * 2**20
#: The start of the text that formats are recognised by (the first characters after leading blanks).
HEAD_CHARS = 4096

#: Line starts that mark a comment line in text formats.
COMMENT_PREFIXES = ("#", "!", ";", "%", "//")


class PatternWarning(UserWarning):
    """A pattern was read, but something about it is doubtful (also listed in ``metadata["warnings"]``)."""


class UnknownFormat(DataError):
    """The content is none of the supported formats.

    Raised by a reader or while recognising the format; :func:`synthxrd.io.read_pattern` turns it
    into a :class:`DataError` ``"{path}: {detail}; supported: {list}{advice}"``, the list generated
    from :data:`synthxrd.io.FORMATS`.
    """

    def __init__(self, path: str, detail: str, advice: str = ""):
        super().__init__(f"{path}: {detail}")
        self.path, self.detail, self.advice = path, detail, advice


@dataclass(frozen=True)
class Source:
    """One pattern file as bytes, with its text decoded on first use.

    Attributes
    ----------
    path : the path as given (used in messages).
    data : the whole file.
    """

    path: str
    data: bytes

    @property
    def ext(self) -> str:
        """The lower-case extension with its dot (``".xy"``), or ``""``."""
        return Path(self.path).suffix.lower()

    @cached_property
    def text(self) -> str:
        """The file decoded (:func:`decode`); raises :class:`UnknownFormat` for a binary file."""
        return decode(self.data, self.path, self.ext)

    @cached_property
    def lines(self) -> list[str]:
        """``text.splitlines()``."""
        return self.text.splitlines()

    @cached_property
    def head(self) -> str:
        """The first :data:`HEAD_CHARS` characters of the text after leading blanks."""
        return self.text.lstrip()[:HEAD_CHARS]


def open_zip(data: bytes, path: str, kind: str = ""):
    """An open :class:`zipfile.ZipFile` of ``data`` (a .brml, a .rasx); a broken archive is a
    :class:`DataError` naming the file and its kind (``"Rigaku RASX: "``)."""
    import io
    import zipfile
    import zlib

    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{path}: {kind}broken zip archive ({exc})") from None


def zip_member(archive, name: str, path: str, kind: str = "") -> bytes:
    """The bytes of member ``name`` of an open :class:`zipfile.ZipFile` (a .brml, a .rasx), at most
    :data:`MAX_XML_BYTES`; a damaged member (bad CRC or header, offsets out of the file, an unknown
    compression) is a :class:`DataError` naming the file, its kind (``"Rigaku RASX: "``) and the member."""
    import zipfile
    import zlib

    if archive.getinfo(name).file_size > MAX_XML_BYTES:
        raise DataError(f"{path}: {kind}{name} is larger than {MAX_XML_BYTES // 2**20} MiB")
    try:
        return archive.read(name)
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{path}: {kind}broken zip archive, cannot read {name} ({exc})") from None


def text_start(data: bytes, size: int = 65536) -> bytes:
    """The first ``size`` bytes without a UTF-8 byte-order mark and leading blanks (for recognising text formats)."""
    return data[:size].removeprefix(b"\xef\xbb\xbf").lstrip()


def decode(data: bytes, path: str, ext: str) -> str:
    """Text of a file: UTF-16 with a byte-order mark, else UTF-8 (BOM optional), else Latin-1.

    NUL bytes are dropped where they only pad text (a title field padded with NULs, as some
    converters write it: every other byte of the file is text or a blank). Raises
    :class:`UnknownFormat` when the first 8 KiB hold a NUL byte otherwise (a binary file that no
    binary reader recognised).
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\0" in data[:8192]:
        if not is_nul_padded_text(data):
            raise UnknownFormat(path, f"binary file of an unsupported format{f' ({ext})' if ext else ''}",
                                "; export the scan as .xy")
        data = data.replace(b"\0", b"")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


#: Bytes that text holds besides NUL padding: tab, LF, FF, CR and everything from the blank up.
_TEXT_BYTES = bytes([9, 10, 12, 13]) + bytes(range(32, 256))


def is_nul_padded_text(data: bytes) -> bool:
    """Whether ``data`` is text once its NUL bytes are dropped: no other control byte, and a line break.

    >>> is_nul_padded_text(b"PD-01-02" + bytes(40) + b"\\r\\n 20.000 0\\r\\n"), is_nul_padded_text(b"RAW1\\0\\x01\\x02")
    (True, False)
    """
    stripped = data.replace(b"\0", b"")
    return b"\n" in stripped and not stripped.translate(None, _TEXT_BYTES)


_NUMBER_SPLIT = re.compile(r"[,\s]+")
#: Field separators that allow a decimal comma inside a field.
FIELD_SPLIT = re.compile(r"[;\t]")


def numbers(s: str) -> list[float]:
    """The numbers of one data line; ValueError if any field is not a number.

    Separators are blanks and commas; with ``;`` or a tab as separator a field holding one comma and
    no point is a decimal comma (``10,02;123,5`` is 10.02 and 123.5).

    >>> numbers("10.0, 12"), numbers("10,02;123,5")
    ([10.0, 12.0], [10.02, 123.5])
    """
    if ";" in s or "\t" in s:
        tokens = []
        for part in FIELD_SPLIT.split(s):
            part = part.strip()
            if part.count(",") == 1 and "." not in part and " " not in part:
                part = part.replace(",", ".")  # decimal comma, possible only with ; or tab separators
            tokens.extend(t for t in _NUMBER_SPLIT.split(part) if t)
    else:
        tokens = [t for t in _NUMBER_SPLIT.split(s) if t]
    return [float(t) for t in tokens]


def record_tube(meta: dict, alpha1, alpha2, ratio, average, source: str) -> None:
    """Record tube wavelengths in ``meta``; ``meta["wavelength"]`` becomes K-alpha1.

    The simulator models K-alpha1 only (docs/architecture.md), and the K-alpha2 component of a measured peak is
    its shoulder on the high-angle side, not a shift of the peak; so a file that states K-alpha1 and
    K-alpha2 gives K-alpha1, else the K-alpha average. Values outside 0.01-100 Angstrom are dropped.
    """
    def ok(v):
        return v is not None and math.isfinite(v) and 0.01 < v < 100
    meta["kalpha1"] = float(alpha1) if ok(alpha1) else None
    meta["kalpha2"] = float(alpha2) if ok(alpha2) else None
    meta["kalpha2_ratio"] = float(ratio) if ratio is not None and math.isfinite(ratio) and ratio >= 0 else None
    meta["kalpha_average"] = float(average) if ok(average) else None
    if meta["kalpha1"] is not None or meta["kalpha_average"] is not None:
        if meta.get("radiation") is None:
            meta["radiation"] = "x-ray"  # a tube's lines: a laboratory X-ray source
    if meta["kalpha1"] is not None:
        meta["wavelength"], meta["wavelength_source"] = meta["kalpha1"], f"{source}: K-alpha1"
    elif meta["kalpha_average"] is not None:
        meta["wavelength"], meta["wavelength_source"] = meta["kalpha_average"], f"{source}: K-alpha average"
