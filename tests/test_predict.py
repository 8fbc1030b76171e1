"""Predictor on a tiny checkpoint, its helpers, and the `synthxrd predict` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthxrd.cli import main  # noqa: E402
from synthxrd.errors import ConfigError, DataError  # noqa: E402
from synthxrd.match import ReferenceLibrary  # noqa: E402
from synthxrd.predict import (  # noqa: E402
    NO_SHIPPED_MODEL,
    Prediction,
    PredictionFailure,
    Predictor,
    crystal_system_probabilities,
    extinction_group_probabilities,
    to_full,
    top_k,
)
from synthxrd.symmetry import n_extinction_groups  # noqa: E402

RAW = "xred/monophase/UnderThreeElements/{}/data.csv"


@pytest.fixture(scope="module")
def predictor(tiny_run) -> Predictor:
    return Predictor.load(tiny_run / "best.pt", device="cpu", library=None)


@pytest.fixture(scope="module")
def measured(experimental_data) -> list[Path]:
    return [experimental_data / RAW.format(name) for name in ("Al2O3", "MnS")]


def _gaussians(tt, centres, width=0.1):
    return sum(np.exp(-0.5 * ((tt - c) / width) ** 2) for c in centres)


def test_load_run_folder_and_metadata(tiny_run, predictor):
    p = Predictor.load(tiny_run, device="cpu", library=None)
    assert p.metadata["checkpoint"].endswith("best.pt")
    assert np.array_equal(p.classes, predictor.classes)
    assert p.classes.min() >= 1 and p.classes.max() <= 230
    assert p.metadata["model_config"]["name"] == "park_small" and p.metadata["step"] == 3


def test_load_errors(tmp_path, monkeypatch):
    monkeypatch.setattr("synthxrd.predict.SHIPPED_MODEL", "models/not-there.pt")
    with pytest.raises(DataError, match="no pretrained model is shipped yet"):
        Predictor.load()
    assert "--model" in NO_SHIPPED_MODEL
    with pytest.raises(DataError, match="no such checkpoint"):
        Predictor.load(tmp_path / "missing.pt")
    with pytest.raises(DataError, match="neither best.pt nor checkpoint.pt"):
        Predictor.load(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot load checkpoint"):
        Predictor.load(bad)


def test_predict_shapes_normalisation_and_zeros(predictor):
    tt = np.linspace(8.0, 85.0, 4000)
    rng = np.random.default_rng(0)
    batch = np.stack([_gaussians(tt, rng.uniform(10, 80, 6)) + 0.01 * rng.random(tt.size) for _ in range(3)])
    probs = predictor.predict(tt, batch)
    assert probs.shape == (3, 230) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    outside = np.setdiff1d(np.arange(230), predictor.classes - 1)
    assert (probs[:, outside] == 0).all() and (probs[:, predictor.classes - 1] > 0).all()
    one = predictor.predict(tt, batch[1])  # 1-D input: one row
    assert one.shape == (1, 230)
    np.testing.assert_allclose(one[0], probs[1], rtol=1e-6)
    # scale does not matter (normalised to max 1); the model's own wavelength changes nothing
    np.testing.assert_allclose(predictor.predict(tt, 37.0 * batch[1], wavelength=1.5406)[0], probs[1], rtol=1e-5)
    # on-grid arrays give (almost: resample may cell-average; the calibrated temperature scales the
    # logits' differences) the same as resampled ones
    grid = predictor.grid.values()
    on_grid = predictor.predict_grid(np.interp(grid, tt, batch[0], left=0, right=0))
    np.testing.assert_allclose(on_grid[0], predictor.predict(grid, np.interp(grid, tt, batch[0], left=0, right=0))[0],
                               rtol=5e-3)
    with pytest.raises(DataError, match="no positive intensity"):
        predictor.predict(tt, np.zeros(tt.size))
    with pytest.raises(DataError, match="two_theta must be"):
        predictor.predict(tt, batch[:, :10])


def test_predict_measured_file(predictor, measured):
    result = predictor.predict_file(measured[0], wavelength=1.54184)
    assert isinstance(result, Prediction) and result.probabilities.shape == (230,)
    assert result.probabilities.sum() == pytest.approx(1.0)
    top = result.top(5)
    assert len(top) == 5 and [p for *_, p in top] == sorted((p for *_, p in top), reverse=True)
    assert all(isinstance(n, int) and isinstance(s, str) for n, s, _ in top)
    systems = result.crystal_systems()
    assert list(systems)[0] == "triclinic" and sum(systems.values()) == pytest.approx(1.0)
    assert result.info["coverage"] > 0.5 and result.info["wavelength"] == pytest.approx(1.54184)
    json.dumps(result.to_dict())  # JSON-compatible
    assert result.pattern.shape == (predictor.grid.n,) and result.pattern.max() == pytest.approx(1.0)

    results = predictor.predict_files([measured[1], "missing.xy"], wavelength=1.54184, errors="collect")
    assert results[0].ok and isinstance(results[1], PredictionFailure) and not results[1].ok
    assert results[1].error.startswith("missing.xy:")
    with pytest.raises(DataError, match="missing.xy"):
        predictor.predict_files(["missing.xy"], wavelength=1.54184)


def test_probability_helpers():
    p = np.zeros(230)
    p[[224, 215, 13]] = [0.5, 0.3, 0.2]  # Fm-3m, F-43m, P2_1/c
    assert top_k(p, 5) == [(225, "Fm-3m", 0.5), (216, "F-43m", 0.3), (14, "P2_1/c", 0.2)]
    systems = crystal_system_probabilities(p)
    assert systems.shape == (7,) and systems[6] == pytest.approx(0.8) and systems[1] == pytest.approx(0.2)
    groups = extinction_group_probabilities(np.stack([p, p]))
    assert groups.shape == (2, n_extinction_groups()) and groups.max() == pytest.approx(0.8)
    full = to_full([[0.25, 0.75]], [2, 230])
    assert full.shape == (1, 230) and full[0, 1] == 0.25 and full[0, 229] == 0.75


def test_cli_predict_tables_errors_plots(tiny_fused, measured, tmp_path, capsys):
    broken = tmp_path / "broken.xy"
    broken.write_text("this is not a pattern\n")
    plots = tmp_path / "plots"
    files = [str(measured[0]), str(broken), str(measured[1])]
    code = main(["predict", *files, "--model", str(tiny_fused), "--wavelength", "CuKa", "--top", "3",
                 "--plot", str(plots), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1
    assert [line for line in err.splitlines() if line.strip()] == [line for line in err.splitlines()
                                                                    if str(broken) in line]
    assert len([line for line in err.splitlines() if str(broken) in line]) == 1
    assert out.count("rank   SG  symbol") == 2 and "system  tric" in out and "2 predicted, 1 failed" in out
    pngs = sorted(p.name for p in plots.iterdir())
    # same stem: the folder name keeps them apart; refinement (the default) adds the Rietveld-style figure
    assert pngs == ["Al2O3_data.png", "Al2O3_data_refined.png", "MnS_data.png", "MnS_data_refined.png"]
    assert all((plots / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    # existing plots are not replaced without --overwrite
    assert main(["predict", *files, "--model", str(tiny_fused), "--wavelength", "CuKa", "--plot", str(plots)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_predict_plot_png_name_for_one_file(tiny_fused, measured, tmp_path, capsys):
    # as refine --plot and mixture --plot take it: a .png name is the figure of the one file given
    png = tmp_path / "figs" / "scan.png"
    png.parent.mkdir()
    assert main(["predict", str(measured[0]), "--model", str(tiny_fused), "--wavelength", "CuKa", "--matches", "3",
                 "--plot", str(png), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert sorted(p.name for p in png.parent.iterdir()) == ["scan.png", "scan_refined.png"]
    assert result["plot"] == str(png) and result["refined_plot"] == str(png.parent / "scan_refined.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png.unlink()
    assert main(["predict", str(measured[0]), "--model", str(tiny_fused), "--wavelength", "CuKa", "--no-refine",
                 "--plot", str(png), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"1 predicted, 0 failed; plot in {png}") and png.exists()
    # several files need a folder: refused before anything runs, naming the option
    assert main(["predict", str(measured[0]), str(measured[1]), "--model", str(tiny_fused), "--wavelength", "CuKa",
                 "--plot", str(tmp_path / "two.png")]) == 2
    err = capsys.readouterr().err
    assert "--plot" in err and "give a folder" in err and not (tmp_path / "two.png").exists()


def test_cli_predict_json(tiny_run, measured, tmp_path, capsys):
    target = tmp_path / "pred.json"
    code = main(["predict", str(measured[0]), str(measured[1]), "--model", str(tiny_run / "best.pt"),
                 "--wavelength", "1.54184", "--json", "--json-file", str(target), "--device", "cpu", "--no-library"])
    out, _ = capsys.readouterr()
    assert code == 0
    doc = json.loads(out)
    assert doc == json.loads(target.read_text())
    assert doc["summary"] == {"predicted": 2, "failed": 0} and len(doc["results"]) == 2
    first = doc["results"][0]
    assert first["ok"] and len(first["top"]) == 5 and set(first["crystal_systems"]) >= {"cubic", "trigonal"}
    assert first["top"][0]["spacegroup"] in doc["model"]["classes"]


def test_fused_predictor(tiny_run, tiny_fused, measured):
    """With the shipped library: one fused distribution, the network's and the search's own, the matches."""
    fused = Predictor.load(tiny_fused, device="cpu")
    size = len(ReferenceLibrary.load())  # the default library: MP and AMCSD
    assert fused.library is not None and len(fused.library) == size and f"library={size}" in repr(fused)
    result = fused.predict_file(measured[1], wavelength=1.54184, k=4)  # MnS, Fm-3m
    for p in (result.probabilities, result.network, result.search):
        assert p.shape == (230,) and p.sum() == pytest.approx(1.0) and (p >= 0).all()
    assert len(result.matches) == 4 and result.matches[0].score >= result.matches[-1].score
    assert result.matches[0].spacegroup == 225 and result.top(1)[0][0] == 225
    assert 0 <= result.confidence <= 1
    doc = result.to_dict()
    assert doc["matches"][0]["id"].startswith(("mp-", "amcsd-")) and "network_top" in doc and json.dumps(doc)
    assert "mineral" in doc["matches"][0]
    # the array API gives the same fused answer as identify, and library=None the network's
    alone = Predictor.load(tiny_fused, device="cpu", library=None)
    tt = np.linspace(10, 80, 3501)
    y = _gaussians(tt, [20.0, 35.0, 50.0])
    both = fused.identify(tt, y)
    np.testing.assert_allclose(fused.predict(tt, y), both["probabilities"])
    np.testing.assert_allclose(alone.predict(tt, y), both["network"])
    only_o = fused.identify(tt, y, elements="O", only_elements=False)["matches"][0]
    assert all("O" in m.formula for m in only_o)
    with pytest.raises(ConfigError, match="unknown element"):
        fused.predict(tt, y, elements="Qq")


def test_cli_predict_fused_tables_and_options(tiny_fused, measured, capsys):
    args = ["predict", str(measured[0]), "--model", str(tiny_fused), "--wavelength", "1.54184", "--device", "cpu"]
    assert main([*args, "--matches", "2"]) == 0  # refined by default: the refined matches follow the table
    assert "refined (whole-pattern fit, best first)" in capsys.readouterr().out
    args.append("--no-refine")
    assert main([*args, "--matches", "2"]) == 0
    out = capsys.readouterr().out
    assert "best matches (p that the best is right:" in out and out.count(" mp-") + out.count(" amcsd-") == 2
    assert "refined (" not in out
    assert main([*args, "--no-library"]) == 0
    assert "best matches" not in capsys.readouterr().out
    assert main([*args, "--elements", "Al,Xx"]) == 2
    assert "unknown element 'Xx'" in capsys.readouterr().err
    assert main([*args, "--only-elements"]) == 2
    assert "--only-elements needs --elements" in capsys.readouterr().err
    assert main([*args, "--elements", "Al,O", "--only-elements", "--matches", "3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " mp-" in line or " amcsd-" in line]
    assert len(lines) == 3 and all(set(line.split()[1]) <= set("AlO0123456789.") for line in lines)


def test_uncertain_flag_follows_the_threshold(tiny_run, measured, capsys):
    args = ["predict", str(measured[0]), "--model", str(tiny_run), "--wavelength", "1.54184", "--device", "cpu",
            "--no-library"]
    assert main([*args, "--threshold", "1.0"]) == 0
    assert "UNCERTAIN" in capsys.readouterr().out
    assert main([*args, "--threshold", "0.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["uncertain"] is False
    assert main([*args, "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_cli_predict_without_model(measured, capsys, monkeypatch):
    monkeypatch.setattr("synthxrd.predict.SHIPPED_MODEL", "models/not-there.pt")
    assert main(["predict", str(measured[0])]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"synthxrd predict: error: {NO_SHIPPED_MODEL}"


def test_export_half_precision_round_trip(tiny_run, predictor, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["export", str(tiny_run), str(out)]) == 0
    assert "exported park_small (step 3" in capsys.readouterr().out
    payload = torch.load(out, weights_only=True)
    assert "optimizer" not in payload and payload["export"]["dtype"] == "float16"
    assert payload["config"]["out"] == tiny_run.name and str(tmp_path) not in json.dumps(payload["config"])
    assert all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
    assert out.stat().st_size < 0.6 * (tiny_run / "best.pt").stat().st_size
    half = Predictor.load(out, device="cpu", library=None)
    assert np.array_equal(half.classes, predictor.classes) and half.metadata["export"]["dtype"] == "float16"
    x = np.random.default_rng(0).random((4, predictor.grid.n))
    p32, p16 = predictor.predict_grid(x), half.predict_grid(x)
    assert np.abs(p32 - p16).max() < 1e-2 and np.array_equal(p32.argmax(1), p16.argmax(1))
    assert main(["export", str(tiny_run), str(out)]) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tiny_run / "best.pt"), str(out), "--dtype", "float32", "--overwrite"]) == 0
    assert torch.load(out, weights_only=True)["export"]["dtype"] == "float32"
    stranger = tmp_path / "stranger.pt"
    torch.save({"weights": torch.zeros(2)}, stranger)
    assert main(["export", str(stranger), str(tmp_path / "x.pt")]) == 2
    assert f"{stranger}: not a synthxrd checkpoint (no 'model')" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_shipped_model():
    """The model inside the package: small, safe, loadable without arguments, classes of the shipped statistics."""
    from importlib.resources import files

    from synthxrd.data import BatchMaker, StreamConfig

    resource = files("synthxrd") / "resources" / "models" / "default.pt"
    assert resource.is_file() and resource.stat().st_size <= 20e6
    p = Predictor.load(device="cpu")
    assert p.source == "shipped" and p.metadata["checkpoint"] == "models/default.pt"
    config = p.metadata["config"]
    classes = BatchMaker(StreamConfig(min_count=config["min_count"], statistics=config["statistics"])).classes
    assert np.array_equal(p.classes, classes)
    assert p.metadata["statistics_version"] and p.metadata["export"]["dtype"] == "float16"
    card = json.loads((files("synthxrd") / "resources" / "models" / "default.json").read_text())
    assert card["model"] == p.metadata["model_config"]["name"] and card["step"] == p.metadata["step"]
    for part in ("match", "measured", "rruff_dev"):
        for who in ("model", "prior"):
            assert {"top1", "top5", "crystal_system", "extinction_group"} <= set(card["metrics"][part][who])
    for part in ("rruff_dev", "measured", "match"):  # fused with the library: the answer, its parts and the prior
        assert {"model", "network", "search", "prior"} <= set(card["fused"][part])
    campaign = card["campaign"]
    assert campaign[-1]["steps"] == card["step"] and card["campaign_wall_hours"] == pytest.approx(
        sum(r["wall_hours"] for r in campaign), abs=1e-3)
    assert [r["step"] for r in card["learning_curve"]]
    projection = card["projection"]  # what the campaign's curve projects for issue 15's network-alone targets
    assert [(t["set"], t["metric"], t["target"]) for t in projection["targets"]] == [
        ("match", "top1", 0.40), ("rruff_dev", "top1", 0.30), ("rruff_dev", "crystal_system", 0.60)]
    last = card["learning_curve"][-1]
    assert projection["patterns_seen"] == last["campaign_patterns_seen"] <= card["campaign_patterns_seen"]
    for target in projection["targets"]:
        assert target["now"] == last["sets"][target["set"]][target["metric"]]
        assert target["reached"] == (target["now"] >= target["target"])
        if not target["reached"] and target["patterns_seen"] is not None:  # None: the curve does not rise
            assert target["patterns_seen"] > projection["patterns_seen"] and target["more_hours"] > 0
    from synthxrd.models.checkpoint import PATH_KEYS

    assert not any("/" in str(card["config"].get(k) or "") for k in PATH_KEYS)  # no machine paths


def test_the_shipped_card_states_what_the_shipped_model_does(shared_data):
    """The card's rruff_dev figures (network alone) are those of the shipped file, and above the prior."""
    from importlib.resources import files

    from synthxrd.evaluate import evaluate_patterns

    card = json.loads((files("synthxrd") / "resources" / "models" / "default.json").read_text())
    ev = evaluate_patterns(Predictor.load(device="cpu", library=None),
                           shared_data / "experimental" / "rruff_dev" / "rruff_dev300.npz")
    summary, stated = ev.summary()["all"], card["metrics"]["rruff_dev"]
    for metric in ("top1", "top5", "crystal_system"):
        assert summary["model"][metric] == pytest.approx(stated["model"][metric], abs=1e-3), metric
        assert summary["baseline"][metric] == pytest.approx(stated["prior"][metric], abs=1e-3), metric
    assert summary["model"]["top5"] > summary["baseline"]["top5"]
    assert summary["model"]["crystal_system"] > summary["baseline"]["crystal_system"] + 0.1


def test_cli_predict_refine_lists_refined_matches_and_plots(tiny_fused, measured, tmp_path, capsys):
    plots = tmp_path / "plots"
    code = main(["predict", str(measured[0]), "--model", str(tiny_fused), "--wavelength", "CuKa", "--matches", "3",
                 "--refine", "--plot", str(plots), "--json", "--device", "cpu"])
    out, _ = capsys.readouterr()
    assert code == 0
    result = json.loads(out)["results"][0]
    refined = result["refined"]
    assert len(refined) >= 3 and all(r["rwp"] is not None and len(r["cell"]) == 6 for r in refined)
    assert [r["rwp"] for r in refined] == sorted(r["rwp"] for r in refined)  # re-ranked by the fit
    assert Path(result["refined_plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_predict_write_cif_writes_the_best_refined_match(tiny_fused, measured, tmp_path, capsys):
    import gemmi

    cifs = tmp_path / "cifs"
    args = ["predict", str(measured[0]), "--model", str(tiny_fused), "--wavelength", "CuKa", "--matches", "3",
            "--write-cif", str(cifs), "--json", "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    best = result["refined"][0]
    written = Path(result["cif"])
    assert written == cifs / f"{Path(measured[0]).stem}.cif"
    small = gemmi.make_small_structure_from_block(gemmi.cif.read(str(written)).sole_block())
    assert [small.cell.a, small.cell.b, small.cell.c] == pytest.approx(best["cell"][:3], abs=2e-4)
    assert small.spacegroup.number == best["spacegroup"]
    assert best["id"] in written.read_text()
    assert main(args) == 2  # never replaced without --overwrite
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--no-refine"]) == 2  # it writes the best refined match
    assert "--write-cif writes the best refined match" in capsys.readouterr().err


def test_match_tables_keep_long_formulas_aligned_and_mark_unscored_entries():
    from synthxrd.cli.options import match_columns
    from synthxrd.match.search import Match

    matches = [Match("mp-1", "Mn2O3", 206, 0.935), Match("amcsd-2", "Ti10.6656Fe10.6656Cu10.6656O48", 206, 0.912),
               Match("amcsd-3", "Y2O3", 206, 0.0)]
    width, scores = match_columns(matches)
    assert width == len("Ti10.6656Fe10.6656Cu10.6656O48") + 2
    assert scores == ["  0.935", "  0.912", "      -"]
    assert match_columns(matches[:1]) == (18, ["  0.935"])
    rows = [f"{m.id:<15}{m.formula:<{width}}{m.spacegroup:>4}{s}" for m, s in zip(matches, scores)]
    assert len({len(r) for r in rows}) == 1  # the columns after the formula line up
