"""The table of pattern file formats: one :class:`Format` record per format, in detection order.

:data:`FORMATS` is the only list of formats. From it come the dispatch of
:func:`synthxrd.io.read_pattern` (:func:`detect_format`: the first record whose ``detect`` accepts
the file), the list in "supported: ..." error messages (:func:`supported_formats`) and the list in
the README (:func:`formats_markdown`; ``tests/test_io_formats.py`` checks that the README holds it).
To add a format: write ``read_x(source, meta)`` and ``is_x(source)`` in a module of this package,
add a record here, and rerun ``python tests/test_io_formats.py`` to update the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from synthxrd.io._common import Source, UnknownFormat
from synthxrd.io.bruker import is_bruker_raw, is_zip, read_brml, read_bruker_raw
from synthxrd.io.columns import is_rruff, read_columns, read_rruff
from synthxrd.io.gsas import is_gsas, read_gsas
from synthxrd.io.xrdml import is_xml, read_xrdml

__all__ = ["Format", "FORMATS", "Reader", "detect_format", "format_names", "formats_markdown", "supported_formats"]

#: ``read(source, meta) -> (two_theta, intensity, line_numbers or None)``; fills format-specific keys of
#: ``meta`` (header lines, wavelength, warnings) and raises :class:`~synthxrd.errors.DataError`.
Reader = Callable[[Source, dict], "tuple[np.ndarray, np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Format:
    """One file format that :func:`synthxrd.io.read_pattern` recognises.

    Attributes
    ----------
    name : the value of ``metadata["format"]`` (``"xrdml"``).
    title : what the format is called (``"PANalytical XRDML"``).
    extensions : usual file extensions, lower case with the dot; for documentation and messages
        only, since formats are recognised from the content.
    detect : ``detect(source) -> bool``, whether the file's content is this format; records are
        tried in the order of :data:`FORMATS` and the first that accepts the file reads it.
    signature : how ``detect`` recognises the format, in words (for the documentation).
    read : the reader, or None for a format that is recognised only to be refused with a clear
        :class:`~synthxrd.errors.DataError`.
    wavelength : where the wavelength comes from, in words ("" for a refused format).
    description : one line: what is read, what is refused; for a refused format, what to do instead.
    """

    name: str
    title: str
    extensions: tuple[str, ...]
    detect: Callable[[Source], bool]
    signature: str
    read: Reader | None
    wavelength: str
    description: str

    @property
    def supported(self) -> bool:
        """Whether the format is read (False: recognised and refused)."""
        return self.read is not None


def _is_rigaku_ras(source: Source) -> bool:
    """``*RAS_`` near the start of the text (Rigaku RAS header keys)."""
    return "*RAS_" in source.head


def _is_text(source: Source) -> bool:
    """Any text: the last resort (reading ``source.text`` raises :class:`UnknownFormat` for a binary file)."""
    return isinstance(source.text, str)


FORMATS: tuple[Format, ...] = (
    Format(name="brml", title="Bruker BRML", extensions=(".brml",),
           detect=is_zip, signature="the zip signature `PK\\x03\\x04`", read=read_brml,
           wavelength="K-alpha1 of the tube (`WaveLengthAlpha1`)",
           description="DIFFRAC.SUITE zip archive: the first `RawData*.xml` (other zip files, e.g. `.xlsx`, "
                       "are refused)"),
    Format(name="bruker_raw", title="Bruker RAW1.01", extensions=(".raw",),
           detect=is_bruker_raw, signature="the magic `RAW1`, `RAW2`, `RAW4` or `RAW `", read=read_bruker_raw,
           wavelength="K-alpha1 of the file header",
           description="DIFFRAC-plus binary, the first range (RAW v1, RAW2 and RAW4.00 are refused)"),
    Format(name="xrdml", title="PANalytical XRDML", extensions=(".xrdml",),
           detect=is_xml, signature="XML, a first character `<`", read=read_xrdml,
           wavelength="K-alpha1 of `<usedWavelength>` (K-beta if intended)",
           description="root `<xrdMeasurements>`, schema 1.x and 2.x; the first `<scan>`, `<intensities>` or "
                       "attenuation-corrected `<counts>`"),
    Format(name="gsas", title="GSAS", extensions=(".gsa", ".gsas", ".fxye"),
           detect=is_gsas, signature="a `BANK` line in the first 200 lines", read=read_gsas,
           wavelength="a header line naming one, if any (GSAS keeps it in the instrument file)",
           description="constant-wavelength `STD`, `ESD` and `FXYE` data, the first bank (ALT records and "
                       "time-of-flight banks are refused)"),
    Format(name="rigaku_ras", title="Rigaku RAS", extensions=(".ras",),
           detect=_is_rigaku_ras, signature="`*RAS_` header keys", read=None,
           wavelength="", description="export the scan as .xy"),
    Format(name="rruff", title="RRUFF", extensions=(".txt",),
           detect=is_rruff, signature="a line starting with `##`", read=read_rruff,
           wavelength="`##WAVELENGTH=`",
           description="text columns with `##KEY=value` header lines (in `metadata[\"fields\"]`), data up to "
                       "`##END=`"),
    Format(name="columns", title="text columns", extensions=(".xy", ".xye", ".dat", ".txt", ".csv", ".asc"),
           detect=_is_text, signature="any other text: UTF-8, UTF-16 with BOM or Latin-1", read=read_columns,
           wavelength="a header or comment line (`# Wavelength: 1.5406`, `Cu Ka1`), if any",
           description="2theta and intensity in the first two columns, any separator (decimal comma with `;` "
                       "or tab), header and comment lines"),
)


def format_names() -> tuple[str, ...]:
    """The names of the formats that are read (values of ``metadata["format"]``), in detection order."""
    return tuple(f.name for f in FORMATS if f.supported)


def detect_format(source: Source) -> Format:
    """The first record of :data:`FORMATS` whose ``detect`` accepts ``source``.

    Raises
    ------
    UnknownFormat
        A binary file that no binary format recognises (raised while decoding its text).
    """
    for fmt in FORMATS:
        if fmt.detect(source):
            return fmt
    raise UnknownFormat(source.path, "no supported format recognised")  # unreachable: text columns take any text


def supported_formats() -> str:
    """The formats that are read, for error messages: ``"Bruker BRML (.brml), ..."``."""
    return ", ".join(f"{f.title} ({', '.join(f.extensions)})" for f in FORMATS if f.supported)


def formats_markdown() -> str:
    """The formats as a Markdown list (read ones, then refused ones), as the README shows it.

    Each read format gives its ``metadata["format"]`` name, title, usual extensions, how it is
    recognised, what is read and where the wavelength comes from.
    """
    lines = []
    for f in FORMATS:
        if f.supported:
            extensions = ", ".join(f"`{e}`" for e in f.extensions)
            lines.append(f"- `{f.name}`: {f.title} ({extensions}; recognised by {f.signature}). "
                         f"{f.description[0].upper()}{f.description[1:]}. Wavelength: {f.wavelength}.")
    refused = [f"{f.title} ({', '.join(f'`{e}`' for e in f.extensions)}, recognised by {f.signature}; "
               f"{f.description})"
               for f in FORMATS if not f.supported]
    lines.append(f"- Refused with a clear error: {', '.join(refused)}, and any other binary file.")
    return "\n".join(lines) + "\n"
