"""Powder CIF (pdCIF, ``.cif``): measured or processed powder patterns in the CIF format, read with gemmi.

Reference: B. H. Toby, "CIF applications. XV. pdCIF: the powder diffraction CIF dictionary",
J. Appl. Cryst. 36 (2003) 1290-1294 (dictionary ``cif_pd.dic``, https://www.iucr.org/resources/cif/dictionaries/cif_pd).

The first data block with a powder profile is read. Intensities, in this order of preference:
``_pd_meas_counts_total``, ``_pd_meas_intensity_total``, ``_pd_proc_intensity_total``,
``_pd_meas_intensity_net``, ``_pd_proc_intensity_net`` (standard uncertainties in parentheses are
dropped). 2theta: a column ``_pd_meas_2theta_scan``, ``_pd_meas_angle_2theta``,
``_pd_proc_2theta_corrected`` or ``_pd_proc_2theta_scan``, else ``_pd_meas_2theta_range_min``/
``_inc`` (for ``_pd_meas`` intensities) or ``_pd_proc_2theta_range_min``/``_inc`` (for ``_pd_proc``
ones). The wavelength is ``_diffrn_radiation_wavelength`` (the first, where a loop lists K-alpha1
and K-alpha2) or ``_pd_proc_wavelength``; ``_diffrn_radiation_probe``/``_type`` ``neutron`` and a
``_diffrn_source`` naming a synchrotron set ``metadata["radiation"]``. Time-of-flight profiles
(``_pd_meas_time_of_flight``) are refused, and so is a CIF without a powder profile (a crystal
structure: simulate it with ``synthxrd simulate`` instead).
"""

from __future__ import annotations

import math
import re

import numpy as np

from synthxrd.errors import DataError
from synthxrd.io._common import Source, record_tube
from synthxrd.io.wavelength import anode_lines, anodes

__all__ = ["is_cif", "read_pdcif"]

_INTENSITY_TAGS = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total",
                   "_pd_meas_intensity_net", "_pd_proc_intensity_net")
_TWO_THETA_TAGS = ("_pd_meas_2theta_scan", "_pd_meas_angle_2theta", "_pd_proc_2theta_corrected",
                   "_pd_proc_2theta_scan")
_DATA_BLOCK = re.compile(r"^\s*data_\S", re.M)


def is_cif(source: Source) -> bool:
    """Text with a ``data_`` block header and ``_tag`` lines within the first 64 KiB."""
    head = source.data[:65536]
    return bool(re.search(rb"(?m)^\s*data_\S", head)) and bool(re.search(rb"(?m)^\s*_[A-Za-z]", head))


def read_pdcif(source: Source, meta: dict):
    """2theta and intensity of the first powder profile of a CIF (see module docstring); no line numbers."""
    import gemmi

    path = source.path
    try:
        doc = gemmi.cif.read_string(source.text)
    except (RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: powder CIF: cannot parse the CIF ({str(exc).splitlines()[0][:120]})") from None
    block, tag = None, None
    for b in doc:
        tag = next((t for t in _INTENSITY_TAGS if b.find_values(t)), None)
        if tag is not None:
            block = b
            break
    if block is None:
        if any(b.find_values("_pd_meas_time_of_flight") for b in doc):
            raise DataError(f"{path}: powder CIF: a time-of-flight profile (_pd_meas_time_of_flight); only "
                            f"constant-wavelength 2theta profiles are read")
        structure = any(b.find_value("_cell_length_a") for b in doc)
        what = "a crystal structure (cell and atoms), not a measured pattern; simulate it with `synthxrd " \
               "simulate`" if structure else "no powder profile (_pd_meas_intensity_total, _pd_proc_intensity_total)"
        raise DataError(f"{path}: CIF: {what}")
    meta["cif_block"] = block.name
    meta["intensity_tag"] = tag
    y = _column(block, tag, path)
    x = _two_theta(block, tag, y.size, path, meta)
    _radiation(block, path, meta)
    keep = np.isfinite(y)
    if not keep.all():
        meta["warnings"].append(f"{path}: {int((~keep).sum())} points without an intensity ('?' or '.') dropped")
        x, y = x[keep], y[keep]
    return x, y, None


def _column(block, tag: str, path: str) -> np.ndarray:
    """A loop column as float64, esd in parentheses dropped, '?' and '.' as NaN."""
    import gemmi

    values = block.find_values(tag)
    return np.array([gemmi.cif.as_number(v) for v in values], dtype=np.float64)


def _number(block, tag: str) -> float | None:
    """A single value as a number (esd dropped), or None."""
    import gemmi

    v = block.find_value(tag)
    if v is None:
        return None
    x = gemmi.cif.as_number(v)
    return x if math.isfinite(x) else None


def _two_theta(block, tag: str, n: int, path: str, meta: dict) -> np.ndarray:
    """2theta of the n points: a column, else ``range_min + i range_inc`` of the matching (meas or proc) range."""
    for t in _TWO_THETA_TAGS:
        if block.find_values(t):
            x = _column(block, t, path)
            if x.size != n:
                raise DataError(f"{path}: powder CIF: {x.size} values of {t} for {n} of {tag}")
            meta["two_theta_tag"] = t
            return x
    kind = "proc" if tag.startswith("_pd_proc") else "meas"
    for k in (kind, "meas" if kind == "proc" else "proc"):
        start, inc = _number(block, f"_pd_{k}_2theta_range_min"), _number(block, f"_pd_{k}_2theta_range_inc")
        if start is not None and inc:
            meta["two_theta_tag"] = f"_pd_{k}_2theta_range_min/_inc"
            return start + inc * np.arange(n)
    if block.find_values("_pd_meas_time_of_flight"):
        raise DataError(f"{path}: powder CIF: a time-of-flight profile (_pd_meas_time_of_flight); only "
                        f"constant-wavelength 2theta profiles are read")
    raise DataError(f"{path}: powder CIF: no 2theta for {tag} (neither a 2theta column nor "
                    f"_pd_meas_2theta_range_min/_inc)")


def _radiation(block, path: str, meta: dict) -> None:
    """Wavelength, anode and radiation of a pdCIF block into ``meta``."""
    probe = " ".join(str(block.find_value(t) or "") for t in ("_diffrn_radiation_probe", "_diffrn_radiation_type"))
    source = " ".join(str(block.find_value(t) or "") for t in ("_diffrn_source", "_diffrn_source_type",
                                                                  "_diffrn_radiation_source"))
    if "neutron" in probe.lower():
        meta["radiation"], meta["radiation_evidence"] = "neutron", f"_diffrn_radiation_probe {probe.split()[0]!r}"
    elif "synchrotron" in source.lower():
        meta["radiation"], meta["radiation_evidence"] = "synchrotron", f"_diffrn_source {source.strip()!r}"
    anode = next((a for a in anodes() if re.search(rf"\b{a}\b", probe + " " + source)), None)
    if meta.get("radiation") is None and ("x-ray" in probe.lower() or anode):
        meta["radiation"] = "x-ray"
    listed = block.find_values("_diffrn_radiation_wavelength")
    waves = [float(w) for w in (_column(block, "_diffrn_radiation_wavelength", path) if listed else [])
             if math.isfinite(w)]
    if not waves and _number(block, "_pd_proc_wavelength") is not None:
        waves = [_number(block, "_pd_proc_wavelength")]
    if len(waves) > 1:  # a loop of K-alpha1 and K-alpha2
        record_tube(meta, waves[0], waves[1], None, None, "_diffrn_radiation_wavelength")
    elif waves and 0.01 < waves[0] < 100:
        meta["wavelength"], meta["wavelength_source"] = waves[0], "_diffrn_radiation_wavelength"
    elif anode and anode_lines(anode):
        record_tube(meta, *anode_lines(anode), f"{anode} named in _diffrn_radiation (from the wavelength table)")
