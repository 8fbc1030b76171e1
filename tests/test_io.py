"""synthxrd.io: reading measured patterns, wavelength conversion, resampling, load_for_model.

The fixture files in ``tests/data/patterns`` are written by the writers below (one small synthetic
pattern in every supported format; ``python tests/test_io.py`` rewrites them) and
``test_fixture_files_are_current`` checks that they still are what the writers produce. The writers
follow the published layouts (see the module docstring of synthxrd.io), so reading their output back
checks the readers against those layouts, not against themselves alone: offsets and record formats
are written here field by field.
"""

from __future__ import annotations

import csv
import doctest
import math
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from synthxrd import io as sio
from synthxrd.errors import ConfigError, DataError
from synthxrd.io import PatternWarning, convert_wavelength, load_for_model, read_pattern, resample
from synthxrd.simulate.pattern import Grid

PATTERNS = Path(__file__).resolve().parent / "data" / "patterns"


# --------------------------------------------------------------------------------------------------
# the fixture pattern and writers, one per format
# --------------------------------------------------------------------------------------------------

def fixture_pattern() -> tuple[np.ndarray, np.ndarray]:
    """41 points, 20-40 degrees in 0.5 steps, integer counts: two peaks (30, 35.5) on a background of 100."""
    tt = 20.0 + 0.5 * np.arange(41)
    y = np.round(100 + 900 * np.exp(-0.5 * ((tt - 30) / 0.7) ** 2) + 400 * np.exp(-0.5 * ((tt - 35.5) / 0.6) ** 2))
    return tt, y


def write_columns(path, tt, y, *, sep=" ", header=(), esd=False, decimal_comma=False, newline="\n",
                  encoding="utf-8", fmt=repr):
    lines = list(header)
    for t, v in zip(tt, y):
        cols = [fmt(float(t)), fmt(float(v))] + ([fmt(round(math.sqrt(abs(v)), 3))] if esd else [])
        if decimal_comma:
            cols = [c.replace(".", ",") for c in cols]
        lines.append(sep.join(cols))
    Path(path).write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def write_rruff(path, tt, y, *, wavelength="1.541838", name="Synthetic"):
    lines = [f"##NAMES={name}", "##RRUFFID=R000000", "##IDEAL CHEMISTRY=SiO2", "##LOCALITY=nowhere",
             f"##WAVELENGTH={wavelength}", "##DESCRIPTION=written by tests/test_io.py"]
    lines += [f"{t:8.2f}, {v:10.2f}" for t, v in zip(tt, y)]
    lines.append("##END=")
    Path(path).write_text("\n".join(lines) + "\n", newline="\n")
    return path


def write_xrdml(path, tt, y, *, kalpha1="1.5405980", kalpha2="1.5444260", ratio="0.5000", intended="K-Alpha 1",
                element="intensities", attenuation=None, counting_times=None, list_positions=False, scans=1,
                namespace="http://www.xrdml.com/XRDMeasurement/1.5"):
    """PANalytical XRDML as written by Data Collector (schema 1.5 layout, reduced to what is read)."""
    if list_positions:
        positions = f"<listPositions>{' '.join(repr(float(t)) for t in tt)}</listPositions>"
    else:
        positions = f"<startPosition>{float(tt[0])!r}</startPosition><endPosition>{float(tt[-1])!r}</endPosition>"
    extra = ""
    if attenuation is not None:
        extra += f"<beamAttenuationFactors>{' '.join(repr(float(a)) for a in attenuation)}</beamAttenuationFactors>\n"
    if counting_times is not None:
        extra += f"<countingTimes unit=\"seconds\">{' '.join(repr(float(c)) for c in counting_times)}</countingTimes>\n"
    else:
        extra += "<commonCountingTime unit=\"seconds\">1.00</commonCountingTime>\n"
    values = " ".join(repr(float(v)) if not float(v).is_integer() else str(int(v)) for v in y)
    scan = f"""    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <header><startTimeStamp>2026-01-01T00:00:00</startTimeStamp></header>
      <dataPoints>
        <positions axis="2Theta" unit="deg">{positions}</positions>
        <positions axis="Omega" unit="deg"><startPosition>{float(tt[0]) / 2!r}</startPosition><endPosition>{float(tt[-1]) / 2!r}</endPosition></positions>
        {extra}        <{element} unit="counts">{values}</{element}>
      </dataPoints>
    </scan>
"""
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="{namespace}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" status="Completed">
  <comment><entry>written by tests/test_io.py</entry></comment>
  <sample type="To be analyzed"><id>synthetic</id><name>synthetic</name></sample>
  <xrdMeasurement measurementType="Scan" status="Completed">
    <usedWavelength intended="{intended}">
      <kAlpha1 unit="Angstrom">{kalpha1}</kAlpha1>
      <kAlpha2 unit="Angstrom">{kalpha2}</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta>
      <ratioKAlpha2KAlpha1 unit="None">{ratio}</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <incidentBeamPath><xRayTube name="Cu LFF"><anodeMaterial>Cu</anodeMaterial></xRayTube></incidentBeamPath>
{scan * scans}  </xrdMeasurement>
</xrdMeasurements>
"""
    Path(path).write_text(text, encoding="utf-8", newline="\n")
    return path


def write_bruker_raw(path, start, step, y, *, alpha1=1.5406, alpha2=1.54439, ratio=0.5, average=1.54187,
                     magic=b"RAW1.01", ranges=1, supplementary=b"", declared=None, status=1):
    """Bruker RAW1.01 per DIFFRAC-plus XCH V.5.0 Appendix A: 712-byte file header, 304-byte range headers."""
    head = bytearray(712)
    head[0:len(magic)] = magic
    struct.pack_into("<II", head, 8, status, ranges)
    head[16:26] = b"01/01/26\0\0"                          # measure date
    head[26:36] = b"00:00:00\0\0"                          # measure time
    head[326:335] = b"synthetic"                           # sample id
    head[608:610] = b"Cu"                                  # anode
    struct.pack_into("<5d", head, 616, average, alpha1, alpha2, 1.39222, ratio)  # avg, a1, a2, beta, ratio
    out = bytes(head)
    for _ in range(ranges):
        rng = bytearray(304)
        struct.pack_into("<II", rng, 0, 304, len(y) if declared is None else declared)
        struct.pack_into("<dd", rng, 8, start / 2, start)  # theta start, 2theta start
        struct.pack_into("<d", rng, 176, step)             # step size
        struct.pack_into("<f", rng, 192, 1.0)              # time per step
        struct.pack_into("<d", rng, 240, alpha1)           # used lambda
        struct.pack_into("<I", rng, 256, len(supplementary))
        out += bytes(rng) + supplementary + np.asarray(y, dtype="<f4").tobytes()
    Path(path).write_bytes(out)
    return path


def _zip_member(name: str) -> zipfile.ZipInfo:
    """A stored (uncompressed) member with fixed date and system, so that the archive is byte-reproducible."""
    info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def write_brml(path, tt, y, *, alpha1="1.5406", tube_in_container=False, two_theta_column=True, views=True,
               raw_name="Experiment0/RawData0.xml"):
    """Bruker .brml: a zip with Experiment0/RawData0.xml (DataRoute, ScanAxisInfo, <Datum> rows)."""
    tube = (f'<Tube><WaveLengthAlpha1 Value="{alpha1}" Unit="Angstrom" /><WaveLengthAlpha2 Value="1.54439" '
            f'Unit="Angstrom" /><WaveLengthRatio Value="0.5" /><WaveLengthAverage Value="1.54184" '
            f'Unit="Angstrom" /><TubeMaterial Value="Cu" /></Tube>')
    fixed = ("" if tube_in_container else
             f"<FixedInformation><Instrument><PrimaryTracks><TrackInfoData><MountedOptics><InfoData>{tube}"
             f"</InfoData></MountedOptics></TrackInfoData></PrimaryTracks></Instrument></FixedInformation>")
    if two_theta_column:
        datums = [f"<Datum>1,1,{t:.4f},{t / 2:.4f},{v:g}</Datum>" for t, v in zip(tt, y)]
        view_list = ('<RawDataView xsi:type="RecordedTimeView" Start="0" Length="1" LogicName="MeasuredTime" />'
                     '<RawDataView xsi:type="FixedDataView" Start="1" Length="1" LogicName="AbsorptionFactor" />'
                     '<RawDataView xsi:type="ScanAxisView" Start="2" Length="1" AxisId="TwoTheta" />'
                     '<RawDataView xsi:type="ScanAxisView" Start="3" Length="1" AxisId="Theta" />'
                     '<RawDataView xsi:type="RecordingView" Start="4" Length="1" LogicName="Counter1D" />')
    else:
        datums = [f"<Datum>1,{v:g}</Datum>" for v in y]
        view_list = ""
    tt = [float(t) for t in tt]
    step = (tt[-1] - tt[0]) / (len(tt) - 1)
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<RawData xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <DataRoutes>
    <DataRoute RouteFlag="Final">
      <ScanInformation VisibleName="Coupled TwoTheta/Theta">
        <ScanAxes>
          <ScanAxisInfo AxisId="TwoTheta" AxisName="TwoTheta"><Start>{tt[0]}</Start><Stop>{tt[-1]}</Stop><Increment>{step}</Increment></ScanAxisInfo>
          <ScanAxisInfo AxisId="Theta" AxisName="Theta"><Start>{tt[0] / 2}</Start><Stop>{tt[-1] / 2}</Stop><Increment>{step / 2}</Increment></ScanAxisInfo>
        </ScanAxes>
      </ScanInformation>
      <DataViews>{view_list if views else ""}</DataViews>
      {"".join(datums)}
    </DataRoute>
  </DataRoutes>
  {fixed}
</RawData>
"""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(_zip_member(raw_name), xml)
        container = "<MeasurementContainer>"
        if tube_in_container:
            container += f"<HardwareLogicExt><Instrument>{tube}</Instrument></HardwareLogicExt>"
        archive.writestr(_zip_member("Experiment0/MeasurementContainer.xml"),
                         container + "</MeasurementContainer>")
    return path


def write_gsas(path, start, step, y, *, kind="STD", bintyp="CONST", declared=None):
    """GSAS powder data: title, BANK line (centidegrees), 80-character records."""
    n = len(y)
    lines = ["Synthetic pattern written by tests/test_io.py".ljust(80)]
    if kind == "STD":
        fields = [f"  {v:5.0f}." for v in y]                                # (I2,F6.0), counter number blank
        records = ["".join(fields[i:i + 10]).ljust(80) for i in range(0, n, 10)]
    elif kind == "ESD":
        fields = [f"{v:8.1f}{math.sqrt(abs(v)):8.2f}" for v in y]             # (F8.0,F8.0) pairs
        records = ["".join(fields[i:i + 5]).ljust(80) for i in range(0, n, 5)]
    else:  # FXYE or ALT: one point per line, 2theta in centidegrees
        records = [f"{100 * (start + i * step):15.6f}{v:15.4f}{math.sqrt(abs(v)):15.4f}".ljust(80)
                   for i, v in enumerate(y)]
    lines.append(f"BANK 1 {n if declared is None else declared} {len(records)} {bintyp} {100 * start:.4f} "
                 f"{100 * step:.4f} 0 0 {kind}".ljust(80))
    Path(path).write_text("\n".join(lines + records) + "\n", newline="\n")
    return path


#: name -> (writer call, format, wavelength, extra metadata expected)
FIXTURES = {
    "pattern.xy": ("columns", 1.5406, {"header": True, "n_columns": 2}),
    "pattern.xye": ("columns", None, {"header": True, "n_columns": 3}),
    "pattern.csv": ("columns", None, {"header": True, "header_lines": ["Angle,Intensity"]}),
    "pattern_semicolon.csv": ("columns", None, {"header": True}),
    "pattern.dat": ("columns", None, {"header": True}),
    "rruff_R000000.txt": ("rruff", 1.541838, {"header": True}),
    "pattern.xrdml": ("xrdml", 1.540598, {"kalpha2": 1.544426, "kalpha2_ratio": 0.5, "counting_time": 1.0,
                                          "n_scans": 1}),
    "pattern.raw": ("bruker_raw", 1.5406, {"kalpha2": 1.54439, "kalpha2_ratio": 0.5, "anode": "Cu", "n_ranges": 1,
                                           "file_status": "done"}),
    "pattern.brml": ("brml", 1.5406, {"kalpha2": 1.54439, "kalpha2_ratio": 0.5, "kalpha_average": 1.54184}),
    "pattern.gsa": ("gsas", None, {"gsas_type": "STD"}),
    "pattern.fxye": ("gsas", None, {"gsas_type": "FXYE"}),
}


def write_fixtures(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tt, y = fixture_pattern()
    write_columns(folder / "pattern.xy", tt, y, fmt=lambda v: f"{v:.2f}", header=[
        "# synthetic pattern written by tests/test_io.py", "# Wavelength: 1.5406 A (Cu Ka1)", "# 2theta intensity"])
    write_columns(folder / "pattern.xye", tt, y, sep="\t", esd=True, fmt=lambda v: f"{v:g}",
                  header=["! esd in the third column", "! 2theta\tintensity\tesd"])
    write_columns(folder / "pattern.csv", tt, y, sep=",", newline="\r\n", fmt=lambda v: f"{v:g}",
                  header=["Angle,Intensity"])
    write_columns(folder / "pattern_semicolon.csv", tt, y, sep=";", decimal_comma=True, fmt=lambda v: f"{v:.3f}",
                  header=["; exported with a decimal comma", "2Theta;Counts"])
    write_columns(folder / "pattern.dat", tt, y, sep="   ", fmt=lambda v: f"{v:10.4f}", header=[
        "Sample: synthetic", "Scan: 20-40 deg, step 0.5 deg", "41"])
    write_rruff(folder / "rruff_R000000.txt", tt, y)
    write_xrdml(folder / "pattern.xrdml", tt, y)
    write_bruker_raw(folder / "pattern.raw", 20.0, 0.5, y)
    write_brml(folder / "pattern.brml", tt, y)
    write_gsas(folder / "pattern.gsa", 20.0, 0.5, y, kind="STD")
    write_gsas(folder / "pattern.fxye", 20.0, 0.5, y, kind="FXYE")


def read_quiet(path, **kw):
    """read_pattern, failing on any PatternWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PatternWarning)
        return read_pattern(path, **kw)


# --------------------------------------------------------------------------------------------------
# fixtures: every format
# --------------------------------------------------------------------------------------------------

def test_fixture_files_are_current(tmp_path):
    write_fixtures(tmp_path)
    for name in FIXTURES:
        assert (PATTERNS / name).read_bytes() == (tmp_path / name).read_bytes(), \
            f"{name} differs from what write_fixtures makes; run python tests/test_io.py"


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_read_fixture(name):
    fmt, wavelength, extra = FIXTURES[name]
    tt, y = fixture_pattern()
    two_theta, intensity, meta = read_quiet(PATTERNS / name)
    np.testing.assert_allclose(two_theta, tt, rtol=0, atol=1e-9)
    np.testing.assert_allclose(intensity, y, rtol=0, atol=1e-9)
    assert two_theta.dtype == np.float64 and intensity.dtype == np.float64
    assert meta["format"] == fmt
    assert meta["source"] == str(PATTERNS / name)
    assert meta["n_points"] == 41 and meta["step"] == pytest.approx(0.5) and meta["step_uniform"]
    assert meta["two_theta_range"] == pytest.approx((20.0, 40.0))
    assert meta["reversed"] is False and meta["n_negative"] == 0 and meta["warnings"] == []
    assert meta["max_intensity"] == y.max() and meta["constant_edges"] == (0, 0)
    if wavelength is None:
        assert meta["wavelength"] is None and meta["wavelength_source"] is None
    else:
        assert meta["wavelength"] == pytest.approx(wavelength, abs=1e-9)
        assert meta["wavelength_source"]
    for key, value in extra.items():
        assert meta[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_fixture_metadata_details():
    _, _, xrdml = read_quiet(PATTERNS / "pattern.xrdml")
    assert xrdml["kalpha1"] == pytest.approx(1.540598)
    assert xrdml["kalpha_average"] == pytest.approx((1.540598 + 0.5 * 1.544426) / 1.5)
    assert xrdml["wavelength_source"] == "xrdml: K-alpha1" and xrdml["intended_wavelength"] == "K-Alpha 1"
    _, _, rruff = read_quiet(PATTERNS / "rruff_R000000.txt")
    assert rruff["fields"]["NAMES"] == "Synthetic" and rruff["fields"]["WAVELENGTH"] == "1.541838"
    _, _, xy = read_quiet(PATTERNS / "pattern.xy")
    assert xy["wavelength_source"].startswith("header line 2")
    _, _, dat = read_quiet(PATTERNS / "pattern.dat")
    assert dat["header_lines"] == ["Sample: synthetic", "Scan: 20-40 deg, step 0.5 deg", "41"]


@pytest.mark.filterwarnings("ignore:.*covers only 24 %:synthxrd.io.PatternWarning")
def test_same_pattern_in_every_format_gives_the_same_model_input():
    reference, _ = load_for_model(PATTERNS / "pattern.raw")
    for name in FIXTURES:
        values, info = load_for_model(PATTERNS / name, wavelength=1.5406)
        assert values.dtype == np.float32 and values.shape == (8501,) and values.max() == 1.0
        if math.isclose(info["wavelength"], 1.5406):
            assert not info["converted"] and info["coverage"] == 2001 / 8501  # 20-40 degrees of 5-90
            np.testing.assert_array_equal(values, reference)
        else:  # 1.540598 (xrdml K-alpha1), 1.541838 (RRUFF): shifted by < 0.04 degrees
            assert info["converted"] and info["coverage"] == pytest.approx(2001 / 8501, abs=5 / 8501)


# --------------------------------------------------------------------------------------------------
# round trips: values read equal values written
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def random_pattern():
    rng = np.random.default_rng(7)
    tt = np.sort(rng.uniform(5, 120, 300))
    return tt, rng.uniform(0, 5e4, 300)


@pytest.mark.parametrize("sep", [" ", "\t", ",", ", ", ";"])
def test_round_trip_columns(tmp_path, random_pattern, sep):
    tt, y = random_pattern
    path = write_columns(tmp_path / "p.xy", tt, y, sep=sep, header=["# round trip"])
    two_theta, intensity, _ = read_quiet(path)
    np.testing.assert_array_equal(two_theta, tt)
    np.testing.assert_array_equal(intensity, y)


def test_round_trip_decimal_comma_and_esd(tmp_path, random_pattern):
    tt, y = random_pattern
    path = write_columns(tmp_path / "p.csv", tt, y, sep=";", decimal_comma=True, esd=True)
    two_theta, intensity, meta = read_quiet(path)
    np.testing.assert_array_equal(two_theta, tt)
    np.testing.assert_array_equal(intensity, y)
    assert meta["n_columns"] == 3


def test_round_trip_xrdml_list_positions(tmp_path, random_pattern):
    tt, y = random_pattern
    path = write_xrdml(tmp_path / "p.xrdml", tt, y, list_positions=True,
                       namespace="http://www.xrdml.com/XRDMeasurement/2.1")
    two_theta, intensity, meta = read_quiet(path)
    np.testing.assert_array_equal(two_theta, tt)
    np.testing.assert_array_equal(intensity, y)
    assert meta["xrdml_namespace"].endswith("/2.1")


def test_round_trip_bruker_raw(tmp_path, random_pattern):
    _, y = random_pattern
    path = write_bruker_raw(tmp_path / "p.raw", 17.25, 0.0125, y, alpha1=0.7093, alpha2=0.71359, ratio=0.5,
                            supplementary=b"\x07" * 40)
    two_theta, intensity, meta = read_quiet(path)
    np.testing.assert_array_equal(intensity, y.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(two_theta, 17.25 + 0.0125 * np.arange(y.size), rtol=0, atol=1e-12)
    assert meta["wavelength"] == 0.7093 and meta["kalpha2"] == 0.71359


def test_round_trip_brml(tmp_path):
    tt = 10 + 0.02 * np.arange(500)
    y = np.arange(500, dtype=float) % 97 + 3
    two_theta, intensity, _ = read_quiet(write_brml(tmp_path / "p.brml", tt, y))
    np.testing.assert_allclose(two_theta, tt, atol=1e-9)
    np.testing.assert_array_equal(intensity, y)


@pytest.mark.parametrize("kind", ["STD", "ESD", "FXYE"])
def test_round_trip_gsas(tmp_path, kind):
    y = np.round(np.random.default_rng(3).uniform(0, 9e4, 123))
    two_theta, intensity, meta = read_quiet(write_gsas(tmp_path / "p.gsa", 15.0, 0.02, y, kind=kind))
    np.testing.assert_allclose(two_theta, 15.0 + 0.02 * np.arange(123), atol=1e-9)
    np.testing.assert_array_equal(intensity, y)
    assert meta["gsas_type"] == kind


def test_round_trip_rruff(tmp_path):
    tt = np.round(np.linspace(5, 90, 200), 2)
    y = np.round(np.linspace(0, 1000, 200) ** 1.3 % 500, 2)
    two_theta, intensity, meta = read_quiet(write_rruff(tmp_path / "R1.txt", tt, y, wavelength="0.71073"))
    np.testing.assert_array_equal(two_theta, tt)
    np.testing.assert_array_equal(intensity, y)
    assert meta["wavelength"] == 0.71073


# --------------------------------------------------------------------------------------------------
# format details
# --------------------------------------------------------------------------------------------------

def test_xrdml_raw_counts_get_attenuation_factors(tmp_path):
    tt, y = fixture_pattern()
    factors = np.where(y > 500, 10.0, 1.0)
    path = write_xrdml(tmp_path / "c.xrdml", tt, y / factors, element="counts", attenuation=factors)
    _, intensity, meta = read_quiet(path)
    np.testing.assert_allclose(intensity, y)
    assert meta["intensity_element"] == "counts" and meta["attenuation_applied"]
    # <intensities> are already corrected: the factors are not applied again
    path = write_xrdml(tmp_path / "i.xrdml", tt, y, attenuation=factors)
    np.testing.assert_array_equal(read_quiet(path)[1], y)


def test_xrdml_variable_counting_times_give_counts_per_second(tmp_path):
    tt, y = fixture_pattern()
    times = np.where(tt > 30, 2.0, 1.0)
    _, intensity, meta = read_quiet(write_xrdml(tmp_path / "t.xrdml", tt, y * times, counting_times=times))
    np.testing.assert_allclose(intensity, y)
    assert meta["intensity_unit"] == "counts/s"


def test_xrdml_several_scans_and_k_beta(tmp_path):
    tt, y = fixture_pattern()
    with pytest.warns(PatternWarning, match="2 scans; only the first"):
        _, _, meta = read_pattern(write_xrdml(tmp_path / "s.xrdml", tt, y, scans=2))
    assert meta["n_scans"] == 2
    _, _, meta = read_quiet(write_xrdml(tmp_path / "b.xrdml", tt, y, intended="K-Beta"))
    assert meta["wavelength"] == 1.39225 and meta["kalpha1"] == 1.540598


def test_xrdml_errors(tmp_path):
    tt, y = fixture_pattern()
    text = write_xrdml(tmp_path / "x.xrdml", tt, y).read_text()
    fixed = text.replace(f"<startPosition>{float(tt[0])!r}</startPosition><endPosition>{float(tt[-1])!r}</endPosition>",
                         "<commonPosition>30.0</commonPosition>", 1)
    (tmp_path / "fixed.xrdml").write_text(fixed)
    with pytest.raises(DataError, match=r"fixed\.xrdml: 2Theta stays at 30 degrees.*no 2theta scan"):
        read_pattern(tmp_path / "fixed.xrdml")
    (tmp_path / "broken.xrdml").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"broken\.xrdml: the file is not well-formed XML"):
        read_pattern(tmp_path / "broken.xrdml")
    (tmp_path / "other.xml").write_text("<?xml version='1.0'?><svg><g/></svg>")
    with pytest.raises(DataError, match=r"other\.xml: XML with root <svg>, not a PANalytical XRDML"):
        read_pattern(tmp_path / "other.xml")
    (tmp_path / "nan.xrdml").write_text(text.replace('<intensities unit="counts">100', '<intensities unit="counts">nan'))
    with pytest.raises(DataError, match=r"nan\.xrdml: point 1: non-finite value"):
        read_pattern(tmp_path / "nan.xrdml")


def test_bruker_raw_versions_and_damage(tmp_path):
    _, y = fixture_pattern()
    path = write_bruker_raw(tmp_path / "v.raw", 20.0, 0.5, y, magic=b"RAW1.02")
    with pytest.raises(DataError, match=r"v\.raw: Bruker RAW version 'RAW1\.02' is not supported.*export .*\.xy"):
        read_pattern(path)
    path = write_bruker_raw(tmp_path / "v4.raw", 20.0, 0.5, y, magic=b"RAW4.00")  # a RAW1.01 layout: no range
    with pytest.raises(DataError, match=r"v4\.raw: range 1 declares 0 points of 0 bytes"):
        read_pattern(path)
    path = write_bruker_raw(tmp_path / "short.raw", 20.0, 0.5, y, declared=100)
    with pytest.raises(DataError, match=r"short\.raw: range 1 declares 100 points but the file ends after 41"):
        read_pattern(path)
    (tmp_path / "cut.raw").write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"cut\.raw: Bruker RAW1\.01 file truncated"):
        read_pattern(tmp_path / "cut.raw")
    path = write_bruker_raw(tmp_path / "two.raw", 20.0, 0.5, y, ranges=2, status=3)
    with pytest.warns(PatternWarning) as record:
        two_theta, intensity, meta = read_pattern(path)
    assert {str(w.message).split(": ", 1)[1] for w in record} == {
        "2 ranges; only the first is read", "the measurement was aborted, not completed"}
    assert meta["n_ranges"] == 2 and intensity.size == 41


def test_brml_variants(tmp_path):
    tt, y = fixture_pattern()
    # no 2theta column, no data views, tube in MeasurementContainer.xml: 2theta from Start/Increment
    path = write_brml(tmp_path / "a.brml", tt, y, two_theta_column=False, tube_in_container=True)
    two_theta, intensity, meta = read_quiet(path)
    np.testing.assert_allclose(two_theta, tt)
    np.testing.assert_array_equal(intensity, y)
    assert meta["wavelength"] == 1.5406 and meta["wavelength_source"] == "brml tube: K-alpha1"
    # column found without views (the usual time,absorber,2theta,theta,counts layout)
    two_theta, _, _ = read_quiet(write_brml(tmp_path / "b.brml", tt, y, views=False))
    np.testing.assert_allclose(two_theta, tt)
    # unmeasured steps (-9999) are dropped with a warning
    y2 = y.copy()
    y2[-3:] = -9999
    with pytest.warns(PatternWarning, match="3 steps marked -9999"):
        two_theta, intensity, _ = read_pattern(write_brml(tmp_path / "c.brml", tt, y2))
    assert intensity.size == 38 and two_theta[-1] == 38.5


def test_zip_that_is_not_brml(tmp_path):
    with zipfile.ZipFile(tmp_path / "table.xlsx", "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(DataError, match=r"table\.xlsx: zip archive without RawData\*\.xml \(a spreadsheet"):
        read_pattern(tmp_path / "table.xlsx")


def test_gsas_refusals(tmp_path):
    _, y = fixture_pattern()
    with pytest.raises(DataError, match=r"tof\.gsa: line 2: GSAS bank binning 'RALF' \(time-of-flight\)"):
        read_pattern(write_gsas(tmp_path / "tof.gsa", 20.0, 0.5, y, bintyp="RALF"))
    with pytest.raises(DataError, match=r"alt\.gsa: line 2: the GSAS ALT record format is not supported"):
        read_pattern(write_gsas(tmp_path / "alt.gsa", 20.0, 0.5, y, kind="ALT"))
    with pytest.raises(DataError, match=r"few\.gsa: the BANK line declares 50 points, the data hold 41"):
        read_pattern(write_gsas(tmp_path / "few.gsa", 20.0, 0.5, y, declared=50))
    path = write_gsas(tmp_path / "bad.gsa", 20.0, 0.5, y, kind="ESD")
    lines = path.read_text().splitlines()
    lines[4] = "  123.0   11.09    abc" + lines[4][22:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.gsa: line 5: cannot read .* as GSAS ESD data"):
        read_pattern(path)


# --------------------------------------------------------------------------------------------------
# text formats: headers, encodings, errors with line numbers
# --------------------------------------------------------------------------------------------------

def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _rows(start=20.0, n=20, step=0.1, sep=" "):
    return [f"{start + i * step:.2f}{sep}{100 + i}" for i in range(n)]


def test_headers_comments_and_trailing_comments(tmp_path):
    text = "\n".join(["Instrument: D8", "; comment", "% comment", "// comment", "!comment", "",
                      "2theta  counts"] + _rows()[:5] + ["# a comment inside the data", ""]
                     + [r + "   # trailing note" for r in _rows()[5:]])
    two_theta, intensity, meta = read_quiet(_write(tmp_path, "h.txt", text))
    assert two_theta.size == 20 and intensity[0] == 100 and meta["header"]
    assert meta["header_lines"][0] == "Instrument: D8" and meta["header_lines"][-1] == "2theta  counts"


def test_encodings(tmp_path):
    text = "\n".join(["# Probe: Quarz, 2\u03b8 / \u00b0, \u03bb = 1.5406 \u00c5"] + _rows())
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "cp1252"):
        body = text if encoding != "cp1252" else text.replace("\u03b8", "theta").replace("\u03bb", "lambda")
        _, intensity, meta = read_quiet(_write(tmp_path, f"e-{encoding}.xy", body, encoding))
        assert intensity.size == 20 and meta["wavelength"] == 1.5406, encoding


def test_reversed_scan_is_flipped(tmp_path):
    rows = _rows()[::-1]
    two_theta, intensity, meta = read_quiet(_write(tmp_path, "r.xy", "\n".join(rows)))
    assert meta["reversed"] and two_theta[0] == 20.0 and intensity[0] == 100 and np.all(np.diff(two_theta) > 0)


def test_negative_intensities_are_kept_and_counted(tmp_path):
    rows = [f"{20 + i * 0.1:.2f} {v}" for i, v in enumerate([-5, -1, 0, 3] + [10] * 36)]
    _, intensity, meta = read_quiet(_write(tmp_path, "n.xy", "\n".join(rows)))  # 5 %: no warning
    assert intensity[0] == -5 and meta["n_negative"] == 2 and meta["min_intensity"] == -5
    with pytest.warns(PatternWarning, match="covers only 5 %"):
        values, info = load_for_model(tmp_path / "n.xy", wavelength="CuKa1")
    assert values.min() == 0 and info["n_clipped"] > 0


ERRORS = [
    # name, file text, message pattern
    ("empty.xy", "", r"empty\.xy: the file is empty"),
    ("blank.xy", "\n  \n\t\n", r"blank\.xy: the file is empty"),
    ("words.txt", "just some text\nand more\n", r"words\.txt: no numeric data found \(2 non-blank lines"),
    ("comments.xy", "# only\n# comments\n", r"comments\.xy: no numeric data found"),
    ("one.xy", "\n".join(str(10 + i) for i in range(20)), r"one\.xy: only one column of numbers"),
    ("short.xy", "\n".join(_rows(n=9)), r"short\.xy: only 9 data points; a pattern needs at least 10"),
    ("nan.xy", "\n".join(_rows()[:4] + ["20.40 nan"] + _rows()[5:]), r"nan\.xy: line 5: non-finite value"),
    ("inf.csv", "a,b\n" + "\n".join(_rows(sep=",")[:7] + ["20.70,inf"] + _rows(sep=",")[8:]),
     r"inf\.csv: line 9: non-finite value \(2theta 20\.7, intensity inf\)"),
    ("back.xy", "\n".join(_rows()[:10] + ["20.50 1"] + _rows()[11:]),
     r"back\.xy: line 11: 2theta goes back from 20\.9 \(line 10\) to 20\.5.*strictly increasing"),
    ("dup.xy", "#h\n" + "\n".join(_rows()[:6] + ["20.50 7"] + _rows()[6:]),
     r"dup\.xy: line 8: 2theta 20\.5 repeats the value of line 7"),
    ("big.xy", "\n".join(f"{100 + 10 * i} {i}" for i in range(20)),
     r"big\.xy: 2theta runs from 100 to 290; every value must lie in \(0, 180\) degrees; values of 180"),
    ("neg.xy", "\n".join(f"{-1 + 0.1 * i:.1f} {i}" for i in range(20)), r"neg\.xy: 2theta runs from -1 to 0\.9"),
    ("d.csv", "d,I\n" + "\n".join(f"{1 + 0.1 * i:.1f},{i}" for i in range(20)),
     r"d\.csv: line 1: the first column is titled 'd': d-spacings"),
    ("dsp.xy", "# d-spacing (A)  intensity\n" + "\n".join(f"{1 + 0.1 * i:.1f} {i}" for i in range(20)),
     r"dsp\.xy: line 1: the first column is titled 'd-spacing'"),
    ("q.dat", "Q (1/A)\tI\n" + "\n".join(f"{1 + 0.1 * i:.1f}\t{i}" for i in range(20)),
     r"q\.dat: line 1: the first column is titled 'Q \(1/A\)': Q, not 2theta"),
    ("dlist.xy", "\n".join(f"{5 - 0.2 * i:.1f} {i}" for i in range(20)),
     r"dlist\.xy: the first column decreases from 5 to 1\.2: these look like d-spacings"),
    ("text.xy", "\n".join(_rows()[:12] + ["end of scan"] + _rows()[12:]),
     r"text\.xy: line 13: cannot read 'end of scan' as numbers \(the data start at line 1\)"),
    ("cols.xy", "head\n" + "\n".join(_rows()[:8] + ["20.80 1 2"] + _rows()[9:]),
     r"cols\.xy: line 10: 3 columns where the data have 2 \(from line 2\)"),
    ("scan.ras", "*RAS_DATA_START\n*RAS_HEADER_START\n*RAS_INT_START\n10 1 1\n*RAS_INT_END\n",
     r"scan\.ras: only 1 data point; a pattern needs at least 10"),
    ("rock.ras", "*RAS_DATA_START\n*RAS_HEADER_START\n*MEAS_SCAN_AXIS_X \"Omega\"\n*RAS_HEADER_END\n*RAS_INT_START\n"
     "10 1 1\n*RAS_INT_END\n", r"rock\.ras: Rigaku RAS: the scan axis is 'Omega', not 2theta \(a rocking curve"),
]


@pytest.mark.parametrize("name,text,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_text_errors(tmp_path, name, text, message):
    with pytest.raises(DataError, match=message):
        read_pattern(_write(tmp_path, name, text))


def test_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"nothing\.xy: no such file"):
        read_pattern(tmp_path / "nothing.xy")
    with pytest.raises(DataError, match=r"is a directory"):
        read_pattern(tmp_path)
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100))
    with pytest.raises(DataError, match=r"image\.png: binary file of an unsupported format \(\.png\); supported:"):
        read_pattern(tmp_path / "image.png")


def test_low_angle_axis_warns(tmp_path):
    path = _write(tmp_path, "low.xy", "\n".join(f"{1 + 0.2 * i:.1f} {i}" for i in range(20)))
    with pytest.warns(PatternWarning, match=r"all 2theta values are below 15 degrees \(1-4\.8\); if the first column "
                                            r"holds d-spacings"):
        _, _, meta = read_pattern(path)
    assert len(meta["warnings"]) == 1


def test_single_number_and_start_step_header_lines(tmp_path):
    text = "\n".join(["1.5406", "41", "20.0 0.5 40.0"] + [f"{20 + 0.5 * i} {i}" for i in range(41)])
    two_theta, _, meta = read_quiet(_write(tmp_path, "s.dat", text))
    assert two_theta.size == 41 and meta["header_lines"] == ["1.5406", "41", "20.0 0.5 40.0"]


# --------------------------------------------------------------------------------------------------
# wavelength: file, argument, conversion
# --------------------------------------------------------------------------------------------------

def test_wavelength_argument_is_a_fallback(tmp_path):
    _, _, meta = read_quiet(PATTERNS / "pattern.csv", wavelength="MoKa1")
    assert meta["wavelength"] == 0.7093 and meta["wavelength_source"] == "argument"
    _, _, meta = read_quiet(PATTERNS / "pattern.xrdml", wavelength="CuKa")  # same anode: no warning
    assert meta["wavelength"] == 1.540598
    with pytest.warns(PatternWarning, match=r"states the wavelength 1\.540598 A .*argument 'MoKa1' is ignored"):
        _, _, meta = read_pattern(PATTERNS / "pattern.xrdml", wavelength="MoKa1")
    assert meta["wavelength"] == 1.540598
    with pytest.raises(ConfigError, match="unknown name 'Unobtainium'"):
        read_pattern(PATTERNS / "pattern.csv", wavelength="Unobtainium")


def _two_theta_of(d, lam):
    return 2 * np.degrees(np.arcsin(lam / (2 * np.asarray(d))))


def test_convert_wavelength_cu_to_mo_by_bragg():
    d = np.array([3.1355, 1.9201, 1.6375, 1.3577, 1.2459, 1.1086])  # Si (111) ... (422)
    cu, mo = _two_theta_of(d, 1.54056), _two_theta_of(d, 0.7093)
    converted, mask = convert_wavelength(cu, "CuKa1", "MoKa1")
    assert mask.all()
    np.testing.assert_allclose(converted, mo, atol=1e-10)
    assert converted[0] == pytest.approx(12.99, abs=0.005)
    back, mask = convert_wavelength(converted, 0.7093, 1.54056)
    np.testing.assert_allclose(back, cu, atol=1e-10)


def test_convert_wavelength_drops_points_without_equivalent():
    tt = np.linspace(5, 150, 300)
    converted, mask = convert_wavelength(tt, "CuKa1", "CrKa1")
    limit = 2 * np.degrees(np.arcsin(1.54056 / 2.2897))  # sin(theta') = 1
    assert np.array_equal(mask, tt < limit)
    assert converted.size == mask.sum() and np.all(np.diff(converted) > 0) and converted.max() < 180


# --------------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------------

def test_resample_coarser_is_linear_interpolation():
    grid = Grid(10, 20, 1001)
    x = np.linspace(8, 22, 141)   # step 0.1 > grid step 0.01
    values, covered = resample(x, 3 * x + 1, grid)
    assert covered.all()
    np.testing.assert_allclose(values, 3 * grid.values() + 1, rtol=1e-12)
    peak = np.exp(-0.5 * ((x - 15) / 0.3) ** 2)
    values, _ = resample(x, peak, grid)
    np.testing.assert_allclose(values, np.interp(grid.values(), x, peak))


def test_resample_finer_averages_each_cell():
    grid = Grid(10, 20, 1001)                    # step 0.01
    x = np.linspace(9, 21, 120001)               # step 1e-4
    # an oscillation with the grid's own period aliases to a constant under point sampling;
    # the cell average removes it
    y = 5 + np.sin(2 * np.pi * (x - 10) / grid.step + 0.7)
    values, covered = resample(x, y, grid)
    assert covered.all()
    np.testing.assert_allclose(values, 5, atol=2e-3)
    assert abs(np.interp(grid.values(), x, y) - 5).max() > 0.6  # what point sampling would give
    # a narrow peak keeps its area
    peak = np.exp(-0.5 * ((x - 15.003) / 0.004) ** 2)
    values, _ = resample(x, peak, grid)
    assert values.sum() * grid.step == pytest.approx(np.trapezoid(peak, x), rel=1e-6)


def test_resample_partial_range_and_gaps():
    grid = Grid()                                 # 5-90, 8501 points
    x = np.arange(30.0, 60.0 + 1e-9, 0.02)
    values, covered = resample(x, np.ones_like(x), grid)
    g = grid.values()
    assert np.array_equal(covered, (g >= 30 - 1e-9) & (g <= 60 + 1e-9))
    assert covered.mean() == pytest.approx(3001 / 8501)
    assert np.all(values[~covered] == 0) and np.allclose(values[covered], 1)
    x2 = np.concatenate([np.arange(30, 40, 0.02), np.arange(45, 60, 0.02)])  # a 5-degree gap
    _, covered2 = resample(x2, np.ones_like(x2), grid)
    assert not covered2[(g > 40.01) & (g < 44.99)].any() and covered2[(g > 45) & (g < 59.9)].all()
    _, none = resample(np.linspace(100, 120, 50), np.ones(50), grid)
    assert not none.any()


def test_resample_rejects_bad_input():
    with pytest.raises(DataError, match="strictly increasing"):
        resample([1.0, 1.0, 2.0], [1, 2, 3])
    with pytest.raises(DataError, match="equal length"):
        resample([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="NaN"):
        resample([1.0, 2.0, 3.0], [1, np.nan, 3])


# --------------------------------------------------------------------------------------------------
# load_for_model
# --------------------------------------------------------------------------------------------------

def test_load_for_model_assumes_cu_kalpha1_with_a_note():
    with pytest.warns(PatternWarning, match=r"pattern\.csv: the file states no wavelength; assumed Cu K-alpha1 "
                                            r"\(1\.5406 Å\)"):
        values, info = load_for_model(PATTERNS / "pattern.csv")
    assert info["wavelength"] == 1.5406 and info["wavelength_source"] == "assumed" and not info["converted"]
    assert sum("assumed Cu K-alpha1" in w for w in info["warnings"]) == 1
    explicit, _ = load_for_model(PATTERNS / "pattern.csv", wavelength=1.5406)
    np.testing.assert_array_equal(values, explicit)


def test_load_for_model_converts_mo_data_to_the_model_wavelength(tmp_path):
    d = np.array([3.1355, 1.9201, 1.6375])
    tt_mo = np.arange(5.0, 40.0, 0.005)
    y = sum(np.exp(-0.5 * ((tt_mo - p) / 0.02) ** 2) for p in _two_theta_of(d, 0.7093))
    path = write_columns(tmp_path / "mo.xy", tt_mo, y, header=["# wavelength 0.7093"])
    values, info = load_for_model(path)
    assert info["converted"] and info["wavelength"] == 0.7093 and info["model_wavelength"] == 1.5406
    g = Grid().values()
    found = [g[(g > p - 0.3) & (g < p + 0.3)][np.argmax(values[(g > p - 0.3) & (g < p + 0.3)])]
             for p in _two_theta_of(d, 1.5406)]
    np.testing.assert_allclose(found, _two_theta_of(d, 1.5406), atol=0.011)
    assert info["covered_range"][0] == pytest.approx(10.87, abs=0.02) and info["covered_range"][1] == 90.0


def test_load_for_model_drops_points_lost_at_a_shorter_model_wavelength(tmp_path):
    tt, y = np.arange(10.0, 150.0, 0.05), np.ones(2800)
    values, info = load_for_model(write_columns(tmp_path / "cu.xy", tt, y), wavelength="CuKa1",
                                  model_wavelength="CrKa1", grid=Grid(5, 170, 1000))
    assert info["n_dropped"] > 0 and info["covered_range"][1] < 180 and values.max() == 1


def test_load_for_model_padding_and_errors(tmp_path):
    tt = np.arange(5.0, 80.0, 0.05)
    y = np.where(tt < 20, 77.0, 100 + 50 * np.sin(tt))  # XRED-style padding below 20 degrees
    path = write_columns(tmp_path / "pad.xy", tt, y)
    _, info = load_for_model(path, wavelength=1.5406)
    assert info["trimmed_padding"] == ((tt < 20).sum(), 0) and info["covered_range"][0] >= 20
    with pytest.raises(DataError, match=r"far\.xy: the measured range .* does not overlap the model grid 5\.0-90\.0"):
        load_for_model(write_columns(tmp_path / "far.xy", np.arange(100, 120, 0.5), np.ones(40)), wavelength=1.5406)
    with pytest.raises(DataError, match=r"zero\.xy: no positive intensity within the model grid"):
        load_for_model(write_columns(tmp_path / "zero.xy", np.arange(10, 80, 0.5), np.zeros(140)),
                       wavelength=1.5406)
    with pytest.warns(PatternWarning, match=r"covers only 12 % of the model grid"):
        load_for_model(write_columns(tmp_path / "narrow.xy", np.arange(50, 60, 0.05), np.ones(200) + 1),
                       wavelength=1.5406)


# --------------------------------------------------------------------------------------------------
# the shared experimental patterns (XRED, RRUFF90)
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest(experimental_data):
    with open(experimental_data / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_real_patterns_match_the_manifest(experimental_data, manifest):
    kinds = {}
    for row in manifest:
        two_theta, intensity, meta = read_quiet(experimental_data / row["pattern_path"])
        assert meta["format"] == "columns" and meta["wavelength"] is None
        assert meta["n_points"] == int(row["n_points"]) == two_theta.size
        assert meta["two_theta_range"] == pytest.approx((float(row["two_theta_min"]), float(row["two_theta_max"])),
                                                       abs=1e-3)
        assert meta["step"] == pytest.approx(float(row["step"]), abs=1e-4)
        assert meta["header"] == (row["has_header"] == "1")
        assert np.isfinite(intensity).all() and intensity.max() > 0
        kinds[(row["group"], row["variant"])] = kinds.get((row["group"], row["variant"]), 0) + 1
    # every kind of file present: raw data.csv, background-removed .csv, AboveThreeElements, RRUFF90 both folders
    assert {k[0] for k in kinds} == {"UnderThreeElements", "AboveThreeElements", "RRUFF90/Experiment10",
                                     "RRUFF90/RRUFFdata90"}
    assert len(manifest) == 132


def test_real_patterns_without_a_wavelength_are_read_as_cu(experimental_data, manifest):
    with pytest.warns(PatternWarning, match="states no wavelength; assumed Cu K-alpha1"):
        _, info = load_for_model(experimental_data / manifest[0]["pattern_path"])
    assert info["wavelength"] == 1.5406


def test_load_for_model_on_every_real_pattern(experimental_data, manifest):
    grid = Grid()
    g = grid.values()
    coverages = {}
    for row in manifest:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PatternWarning)
            values, info = load_for_model(experimental_data / row["pattern_path"],
                                          wavelength=float(row["wavelength_A"]))
        assert values.shape == (8501,) and values.dtype == np.float32 and np.isfinite(values).all()
        assert values.max() == 1.0 and values.min() >= 0 and np.all(values[~info["coverage_mask"]] == 0)
        assert info["converted"] and info["n_dropped"] == 0 and info["wavelength_source"] == "argument"
        # coverage = grid points inside the measured range moved to 1.5406 A (padding trimmed)
        lo, hi = convert_wavelength(info["metadata"]["two_theta_range"], float(row["wavelength_A"]), 1.5406)[0]
        lead, trail = info["trimmed_padding"]
        if lead or trail:
            lo, hi = info["covered_range"]
        expected = np.mean((g >= lo - 1e-9) & (g <= hi + 1e-9))
        assert info["coverage"] == pytest.approx(expected, abs=2 / 8501), row["pattern_path"]
        coverages[row["pattern_path"]] = info["coverage"]
    assert len(coverages) == len(manifest) == 132
    assert min(coverages.values()) > 0.4
    # the three Experiment10 patterns measured from 20 degrees, padded by XRED down to 10 (SOURCE.md)
    for name in ("Mn2O3", "Sn", "Zr"):
        assert coverages[f"xred/monophase/RRUFF90/Experiment10/{name}.csv"] == pytest.approx(60 / 85, abs=0.003)


def test_doctests():
    result = doctest.testmod(sio, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


if __name__ == "__main__":
    write_fixtures(PATTERNS)
    print(f"wrote {len(FIXTURES)} fixture files to {PATTERNS}", file=sys.stderr)
