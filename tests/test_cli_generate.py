"""Tests of ``synthxrd generate`` (crystals.h5, CIFs, patterns, run.json; refusing to overwrite)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import spglib

from synthxrd.cli import main
from synthxrd.dataset import load_dataset
from synthxrd.structure import read_cif

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:spglib")


def snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run40(tmp_path_factory):
    """One run: 40 crystals with patterns and CIFs, seed 1."""
    out = tmp_path_factory.mktemp("generate") / "out"
    code = main(["generate", "--n", "40", "--out", str(out), "--patterns", "--cif", "--seed", "1"])
    return code, out


def test_outputs(run40, capsys):
    code, out = run40
    assert code == 0
    data = load_dataset(out / "crystals.h5")
    assert len(data.crystals) == 40
    assert data.patterns.shape == (40, 8501) and data.patterns.dtype == np.float32
    assert np.all(np.isfinite(data.patterns))
    np.testing.assert_allclose(data.patterns.max(axis=1), 1.0, rtol=1e-5)
    assert data.two_theta.shape == (8501,)
    assert data.two_theta[0] == pytest.approx(5.0) and data.two_theta[-1] == pytest.approx(90.0)
    assert data.crystals.spacegroups.shape == (40,)
    assert data.metadata["seed"] == 1

    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 1 and run["n"] == 40
    assert run["statistics"]["version"] is not None
    assert run["statistics"]["path"] == "shipped"
    assert run["synthxrd_version"]
    assert run["generator_config"]["check_symmetry"] is False
    assert run == data.metadata


def test_cifs_match_the_labels(run40):
    _, out = run40
    data = load_dataset(out / "crystals.h5")
    cifs = sorted((out / "cif").glob("*.cif"))
    assert len(cifs) == 40
    matches = 0
    for i, path in enumerate(cifs):
        label = int(data.crystals.spacegroups[i])
        assert path.name == f"{i:06d}_sg{label:03d}.cif"
        structure = read_cif(path)
        assert len(structure) == data.crystals.offsets[i + 1] - data.crystals.offsets[i]
        cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = spglib.get_symmetry_dataset(cell, symprec=1e-3)
        matches += found is not None and found.number == label
    print(f"\nCLI CIFs: {matches}/40 have the labelled space group (spglib, symprec 1e-3)")
    assert matches >= 36


def test_refuses_to_overwrite(run40, capsys):
    _, out = run40
    before = snapshot(out)
    code = main(["generate", "--n", "5", "--out", str(out), "--seed", "2"])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert snapshot(out) == before


def test_overwrite_and_spacegroups(tmp_path):
    out = tmp_path / "o"
    assert main(["generate", "--n", "6", "--out", str(out), "--spacegroups", "225", "--seed", "3"]) == 0
    data = load_dataset(out / "crystals.h5")
    assert data.crystals.spacegroups.tolist() == [225] * 6
    assert data.patterns is None and not (out / "cif").exists()
    assert main(["generate", "--n", "4", "--out", str(out), "--spacegroups", "221", "225", "--seed", "3",
                 "--overwrite"]) == 0
    data = load_dataset(out / "crystals.h5")
    assert len(data.crystals) == 4 and set(data.crystals.spacegroups.tolist()) <= {221, 225}
    assert json.loads((out / "run.json").read_text())["spacegroups"] == [221, 225]


def test_same_seed_same_crystals(tmp_path):
    for name in ("a", "b"):
        assert main(["generate", "--n", "8", "--out", str(tmp_path / name), "--seed", "11"]) == 0
    a, b = load_dataset(tmp_path / "a" / "crystals.h5"), load_dataset(tmp_path / "b" / "crystals.h5")
    assert np.array_equal(a.crystals.lattices, b.crystals.lattices)
    assert np.array_equal(a.crystals.frac_coords, b.crystals.frac_coords)


def test_check_symmetry_reported(tmp_path):
    out = tmp_path / "c"
    assert main(["generate", "--n", "6", "--out", str(out), "--spacegroups", "89", "--check-symmetry",
                 "--seed", "4"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["generator_config"]["check_symmetry"] is True
    report = run["symmetry_check"]["89"]
    assert report["accepted"] == 6 and 0 <= report["rate"] < 1


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n must be >= 1"),
    (["--n", "3", "--spacegroups", "231"], "231"),
    (["--n", "3", "--statistics", "missing.npz"], "missing.npz"),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "bad"
    assert main(["generate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("synthxrd generate: error:") and message in err
    assert not (out / "crystals.h5").exists()


def test_out_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["generate", "--n", "2", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_write_cif_round_trip_partial_occupancy_noble_gas(tmp_path):
    """write_cif keeps lattice, sites and occupancies; argon (no electronegativity) writes without warnings."""
    from synthxrd.structure import Crystal, to_crystal, write_cif

    crystal = Crystal(np.diag([5.0, 6.0, 7.0]), np.array([[0.0, 0.0, 0.0], [0.5, 0.25, 0.125]]),
                      np.array([18, 11]), np.array([1.0, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = write_cif(tmp_path / "c.cif", crystal)
    back = to_crystal(read_cif(path))
    assert np.allclose(back.lattice, crystal.lattice, atol=1e-6)
    assert np.allclose(back.frac_coords, crystal.frac_coords, atol=1e-6)
    assert back.numbers.tolist() == [18, 11] and np.allclose(back.occupancies, [1.0, 0.5])
