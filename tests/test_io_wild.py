"""synthxrd.io on files that instruments and their software wrote, from public repositories.

``tests/data/wild/`` holds small files whose licences allow redistribution (SOURCES.md gives
repository, path, commit and licence of each); the table below says what each must give: format,
number of points, first and last 2theta, median step, wavelength, radiation and first counts.
``tests/data/wild_optional/`` holds the optional corpus that ``scripts/fetch_wild_corpus.py``
downloads (larger files, and files without such a licence); those tests are skipped when it is absent.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from synthxrd.errors import DataError
from synthxrd.io import PatternWarning, read_pattern

DATA = Path(__file__).resolve().parent / "data"
WILD = DATA / "wild"
OPTIONAL = DATA / "wild_optional"

#: file, format, points, first and last 2theta, median step, wavelength (A), radiation, first three counts
WILD_FILES = [
    ("1517474.cif", "pdcif", 3296, 1.5, 166.25, 0.05, 2.0785, "neutron", (5540, 4570, 4140)),
    ("BT86.raw", "bruker_raw", 2374, 3.0, 40.0003, 0.0155922, 1.5406, "x-ray", (187, 183, 178)),
    ("BT86_.UXD", "uxd", 2374, 3.0, 40.0, 0.016, 1.5406, "x-ray", (187, 183, 178)),
    ("Cu3Au-1.raw", "bruker_raw", 3901, 22.0, 100.0, 0.02, 1.5406, "x-ray", (48, 24, 38)),
    ("Omega-2Theta_scan_high_temperature.rasx", "rigaku_rasx", 1042, 44.0, 48.9968, 0.0048, 1.540593, "x-ray",
     (2.16424, 0.97064, 2.91876)),
    ("PBSO4.CWN", "gsas", 2919, 10.0, 155.9, 0.05, 1.909, "neutron", (220, 214, 219)),
    ("PBSO4.XRA", "gsas", 6001, 10.0, 160.0, 0.025, 1.54056, "x-ray", (179, 147, 165)),
    ("Sample_Repeated_Measurement.rasx", "rigaku_rasx", 121, 127.4, 128.0, 0.005, 1.540593, "x-ray", (704, 699, 717)),
    ("TwoTheta_scan_powder.rasx", "rigaku_rasx", 2726, 10.0, 119.0, 0.04, 1.540593, "x-ray",
     (170.554, 170.542, 150.786)),
    ("TwoTheta_scan_scrambled.raw", "bruker_raw", 7134, 10.0, 85.0413, 0.0105203, 1.5406, "x-ray",
     (283.769, -164.534, -164.534)),
    ("XRD-918-16_10.xrdml", "xrdml", 5027, 4.00657, 69.9994, 0.0131303, 1.540598, "x-ray", (1305, 1310, 1345)),
    ("empyrean.xrdml", "xrdml", 196, 30.05, 41.75, 0.06, 1.540598, "x-ray", (8, 11, 6)),
    ("format1.raw", "bruker_raw", 101, 10.0, 20.0, 0.1, 1.5406, "x-ray", (10, 1, 3)),
    ("test_area.xrdml", "xrdml", 75, 73.04, 78.96, 0.08, 1.540598, "x-ray", (13, 14, 10)),
    ("test_scan.xrdml", "xrdml", 750, 15.01, 29.99, 0.02, 1.540598, "x-ray", (9, 6, 6)),
    ("inas_layer_radial_002_004.ras", "rigaku_ras", 1501, 26.5, 32.5, 0.004, 1.540593, "x-ray",
     (51.4986, 45.4986, 40.5014)),
]


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PatternWarning)
        return read_pattern(path)


def test_every_stored_file_has_a_row_and_a_source():
    stored = {p.name for p in WILD.iterdir() if p.suffix not in (".md", ".json")}
    assert stored == {row[0] for row in WILD_FILES}
    sources = (WILD / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"| `{name}` |" in sources for name in stored)
    assert sum(p.stat().st_size for p in WILD.iterdir()) < 3 * 2**20


@pytest.mark.parametrize("name,fmt,n,first,last,step,wavelength,radiation,counts", WILD_FILES,
                         ids=[row[0] for row in WILD_FILES])
def test_wild_file(name, fmt, n, first, last, step, wavelength, radiation, counts):
    two_theta, intensity, meta = _read(WILD / name)
    assert meta["format"] == fmt and meta["n_points"] == n
    assert meta["two_theta_range"] == pytest.approx((first, last), abs=1e-4)
    assert meta["step"] == pytest.approx(step, rel=1e-4)
    assert meta["wavelength"] == (None if wavelength is None else pytest.approx(wavelength, abs=1e-9))
    assert meta["radiation"] == radiation
    assert intensity[:3].tolist() == pytest.approx(counts, rel=1e-5)


def _optional():
    manifest = json.loads((WILD / "optional_corpus.json").read_text(encoding="utf-8"))
    return [pytest.param(e, id=e["name"]) for e in manifest["files"]]


@pytest.mark.parametrize("entry", _optional())
def test_optional_wild_file(entry):
    path = OPTIONAL / entry["name"]
    if not path.exists():
        pytest.skip("optional corpus absent: python scripts/fetch_wild_corpus.py")
    expect = entry["expect"]
    if "error" in expect:
        with pytest.raises(DataError) as info:
            _read(path)
        assert expect["error"] in str(info.value)
        return
    two_theta, intensity, meta = _read(path)
    assert meta["format"] == expect["format"] and meta["n_points"] == expect["n_points"]
    assert meta["two_theta_range"] == pytest.approx((expect["first"], expect["last"]), abs=1e-4)
    assert meta["wavelength"] == (None if expect["wavelength"] is None else pytest.approx(expect["wavelength"]))
    assert intensity[:3].tolist() == pytest.approx(expect["counts"], rel=1e-5)
