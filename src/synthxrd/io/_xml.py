"""XML helpers of the XML-based readers (XRDML, BRML): namespace-free lookups that name the file on error.

Elements are matched by local name (``{namespace}tag`` -> ``tag``), so XRDML schema 1.x and 2.x and
BRML read alike. XML is parsed with :mod:`xml.etree.ElementTree`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from synthxrd.errors import DataError


def local(tag: str) -> str:
    """The tag without its namespace: ``local("{http://x}scan") == "scan"``."""
    return tag.rsplit("}", 1)[-1]


def children(elem, name: str) -> list:
    """The direct children of ``elem`` with local name ``name``."""
    return [c for c in elem if local(c.tag) == name]


def first(elem, name: str):
    """The first element with local name ``name`` in ``elem`` or below (``elem`` itself included), or None."""
    for e in elem.iter():
        if local(e.tag) == name:
            return e
    return None


def floats(elem, path: str, what: str) -> np.ndarray:
    """The blank-separated numbers of ``elem``'s text as float64; :class:`DataError` naming ``<what>`` otherwise."""
    try:
        return np.array((elem.text or "").split(), dtype=np.float64)
    except ValueError:
        raise DataError(f"{path}: <{what}> holds values that are not numbers") from None


def float_of(elem, path: str, what: str) -> float | None:
    """The number that ``elem`` holds, None for a missing or empty element; :class:`DataError` if no number."""
    if elem is None or not (elem.text or "").strip():
        return None
    try:
        return float(elem.text)
    except ValueError:
        raise DataError(f"{path}: <{what}> is {elem.text.strip()[:40]!r}, not a number") from None


def parse_xml(data: bytes | str, path: str, what: str):
    """The root element of ``data``; :class:`DataError` ``"{path}: {what} is not well-formed XML"`` otherwise."""
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{path}: {what} is not well-formed XML ({exc})") from None
    except (LookupError, ValueError) as exc:  # an unknown encoding in the XML declaration, or a bad one
        raise DataError(f"{path}: {what} cannot be decoded ({exc})") from None
