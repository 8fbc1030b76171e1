"""The one reader of manifest CSVs (:func:`synthxrd.io.read_manifest`): labelled rows for evaluation,
any row for realism and the scripts; errors name the file, the line and the value."""

import pytest

from synthxrd.errors import ConfigError, DataError
from synthxrd.io import read_manifest

HEADER = "sample_id,variant,pattern_path,spacegroup,wavelength_A\n"


def write(tmp_path, text, name="manifest.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rows_resolve_paths_and_keep_labels_and_wavelengths(tmp_path):
    path = write(tmp_path, HEADER + "a,raw,a.xy,225,1.5406\nb,bg,sub/b.xy,62,\nc,raw,c.xy,,\n")
    with pytest.warns(UserWarning, match="1 row\\(s\\) without a space group skipped \\(lines 4\\)"):
        labelled = read_manifest(path)
    assert [(e.sample_id, e.path, e.spacegroup, e.wavelength, e.variant, e.line) for e in labelled] == [
        ("a", tmp_path / "a.xy", 225, 1.5406, "raw", 2), ("b", tmp_path / "sub" / "b.xy", 62, None, "bg", 3)]
    assert [e.sample_id for e in read_manifest(path, variant="bg")] == ["b"]
    anything = read_manifest(path, labelled=False)
    assert [e.spacegroup for e in anything] == [225, 62, None]
    only_paths = write(tmp_path, "pattern_path\nx.xy\n", "paths.csv")
    assert [e.sample_id for e in read_manifest(only_paths, labelled=False)] == ["x.xy"]


@pytest.mark.parametrize("text, error, message", [
    ("pattern_path\nx.xy\n", DataError, "no column 'spacegroup' \\(a manifest needs pattern_path and spacegroup"),
    (HEADER + "a,raw,a.xy,231,\n", DataError, "line 2: spacegroup '231' is not an ITA number 1..230"),
    (HEADER + "a,raw,a.xy,12,Cu\n", DataError, "line 2: wavelength_A 'Cu' is not a number"),
    (HEADER + "a,raw,,12,\n", DataError, "line 2: empty pattern_path"),
    (HEADER + "a,raw,a.xy,,\n", DataError, "no row with a space group to evaluate"),
])
@pytest.mark.filterwarnings("ignore:.*without a space group skipped")
def test_errors_name_the_line_and_value(tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        read_manifest(write(tmp_path, text))


def test_variant_errors_and_missing_file(tmp_path):
    path = write(tmp_path, HEADER + "a,raw,a.xy,12,\n")
    with pytest.raises(ConfigError, match="--variant bg: no row of .* has that variant; variants: raw"):
        read_manifest(path, variant="bg")
    with pytest.raises(ConfigError, match="has no 'variant' column"):
        read_manifest(write(tmp_path, "pattern_path,spacegroup\na.xy,12\n", "plain.csv"), variant="raw")
    with pytest.raises(DataError, match="no such manifest file"):
        read_manifest(tmp_path / "missing.csv")
