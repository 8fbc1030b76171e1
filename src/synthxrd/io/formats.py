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
from synthxrd.io.pdcif import is_cif, read_pdcif
from synthxrd.io.rigaku import (
    is_rasx,
    is_rigaku_asc,
    is_rigaku_ras,
    is_rigaku_raw,
    read_rasx,
    read_rigaku_asc,
    read_rigaku_ras,
)
from synthxrd.io.stoe import is_stoe_raw, read_stoe_raw
from synthxrd.io.uxd import is_uxd, read_uxd
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


#: First bytes of detector-image and 2D-data formats: TIFF, CBF, HDF5/NeXus, Bruker frames, ESRF EDF, NumPy.
_IMAGE_MAGICS = (b"II*\0", b"MM\0*", b"###CBF", b"\x89HDF\r\n\x1a\n", b"FORMAT :", b"{\nHeaderID", b"\x93NUMPY")


def _is_image(source: Source) -> bool:
    """The first bytes of a TIFF, CBF, HDF5 (NeXus), Bruker frame (``.gfrm``), EDF or ``.npy`` file."""
    return source.data.startswith(_IMAGE_MAGICS) or (source.data[:1] == b"{" and b"EDF_" in source.data[:2048])


def _is_text(source: Source) -> bool:
    """Any text: the last resort (reading ``source.text`` raises :class:`UnknownFormat` for a binary file)."""
    return isinstance(source.text, str)


FORMATS: tuple[Format, ...] = (
    Format(name="rigaku_rasx", title="Rigaku RASX", extensions=(".rasx",),
           detect=is_rasx, signature="a zip archive holding `Data0/Profile0.txt`", read=read_rasx,
           wavelength="K-alpha1 of `<XrayGenerator>` (`WavelengthKalpha1`, else the `TargetName` anode's)",
           description="SmartLab Studio II zip archive: `Data0/Profile0.txt` (2theta, counts, attenuator factor) and "
                       "`MesurementConditions0.xml` (scan axis, tube); 2theta scans only, detector images refused"),
    Format(name="brml", title="Bruker BRML", extensions=(".brml",),
           detect=is_zip, signature="the zip signature `PK\\x03\\x04`", read=read_brml,
           wavelength="K-alpha1 of the tube (`WaveLengthAlpha1`)",
           description="DIFFRAC.SUITE zip archive: the first `RawData*.xml`, absorber factors applied (other zip "
                       "files, e.g. `.xlsx`, are refused)"),
    Format(name="bruker_raw", title="Bruker RAW", extensions=(".raw",),
           detect=is_bruker_raw, signature="the magic `RAW `, `RAW2`, `RAW1.01` or `RAW4.00`", read=read_bruker_raw,
           wavelength="K-alpha1 of the file header (RAW4.00: the tube record; else the anode's)",
           description="DIFFRAC-AT/plus/SUITE binary, versions 1 to 4, the first range (RAW4.00: coupled 2theta "
                       "scans only)"),
    Format(name="stoe_raw", title="STOE raw", extensions=(".raw",),
           detect=is_stoe_raw, signature="the magic `RAW_` (`RAW_1.06Powdat`)", read=read_stoe_raw,
           wavelength="K-alpha1 of the file header",
           description="WinXPOW binary, one range (its point count, axis and counts checked against each other)"),
    Format(name="rigaku_raw", title="Rigaku RINT binary", extensions=(".raw",),
           detect=is_rigaku_raw, signature="the first bytes `FI\\0\\0`", read=None, wavelength="",
           description="an undocumented binary format; export the scan from the Rigaku software as .ras, .asc or .xy"),
    Format(name="image", title="image / 2D data", extensions=(".tif", ".cbf", ".h5", ".nxs", ".gfrm", ".edf", ".npy"),
           detect=_is_image, signature="TIFF, CBF, HDF5, Bruker frame, EDF or NumPy magic bytes", read=None,
           wavelength="", description="a detector image or 2D data set, not a 1D pattern; integrate it to a 2theta "
                                      "pattern (pyFAI, GSAS-II, DIFFRAC.EVA) and export .xy"),
    Format(name="xrdml", title="PANalytical XRDML", extensions=(".xrdml",),
           detect=is_xml, signature="XML, a first character `<`", read=read_xrdml,
           wavelength="K-alpha1 of `<usedWavelength>` (K-beta if intended)",
           description="root `<xrdMeasurements>`, schema 1.x and 2.x; the first `<scan>`, `<intensities>` or "
                       "attenuation-corrected `<counts>` (pole figures are refused)"),
    Format(name="gsas", title="GSAS", extensions=(".gsa", ".gsas", ".fxye"),
           detect=is_gsas, signature="a `BANK` line in the first 200 lines", read=read_gsas,
           wavelength="a header line naming one, if any (GSAS keeps it in the instrument file)",
           description="constant-wavelength `STD`, `ESD` and `FXYE` data, the first bank (ALT records and "
                       "time-of-flight banks are refused)"),
    Format(name="rigaku_ras", title="Rigaku RAS", extensions=(".ras",),
           detect=is_rigaku_ras, signature="`*RAS_` header keys", read=read_rigaku_ras,
           wavelength="`*HW_XG_WAVE_LENGTH_ALPHA1` (else `*HW_XG_TARGET_NAME`'s K-alpha1)",
           description="SmartLab/PDXL text: the first `*RAS_INT` block (2theta, counts times the attenuator factor); "
                       "rocking curves and other non-2theta axes are refused"),
    Format(name="rigaku_asc", title="Rigaku ASC", extensions=(".asc", ".txt"),
           detect=is_rigaku_asc, signature="`*KEY = value` lines with `*START` and `*COUNT`", read=read_rigaku_asc,
           wavelength="`*WAVE_LENGTH1` (else `*TARGET`'s K-alpha1)",
           description="RINT/PDXL/MiniFlex text export: counts only, several per line, 2theta from `*START` and "
                       "`*STEP`; the first group"),
    Format(name="uxd", title="Bruker UXD", extensions=(".uxd",),
           detect=is_uxd, signature="`_KEY=value` lines with `_FILEVERSION` or `_WL1` and a data key",
           read=read_uxd, wavelength="`_WL1` (else `_ANODE`'s K-alpha1)",
           description="DIFFRAC-plus text export: the first range, `_2THETACOUNTS`/`_2THETACPS` columns or "
                       "`_COUNTS`/`_CPS` counts with `_START` and `_STEPSIZE`"),
    Format(name="pdcif", title="powder CIF", extensions=(".cif",),
           detect=is_cif, signature="a `data_` block with `_tag` lines", read=read_pdcif,
           wavelength="`_diffrn_radiation_wavelength` (neutron data marked from `_diffrn_radiation_probe`)",
           description="the first data block with `_pd_meas_counts_total`, `_pd_meas_intensity_total` or "
                       "`_pd_proc_intensity_total`, against a 2theta column or `_pd_*_2theta_range_min`/`_inc` "
                       "(structure CIFs and time-of-flight profiles are refused)"),
    Format(name="rruff", title="RRUFF", extensions=(".txt",),
           detect=is_rruff, signature="a line starting with `##`", read=read_rruff,
           wavelength="`##WAVELENGTH=`",
           description="text columns with `##KEY=value` header lines (in `metadata[\"fields\"]`), data up to "
                       "`##END=`"),
    Format(name="columns", title="text columns", extensions=(".xy", ".xye", ".dat", ".txt", ".csv", ".asc"),
           detect=_is_text, signature="any other text: UTF-8, UTF-16 with BOM or Latin-1 (NUL padding dropped)",
           read=read_columns,
           wavelength="a header or comment line (`# Wavelength: 1.5406`, `Cu Ka1`, a title's `1.909A`), if any",
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
