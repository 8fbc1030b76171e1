"""A fusion rule belongs to its network and library: stored in the exported model, refused elsewhere."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthxrd.cli import main  # noqa: E402
from synthxrd.errors import DataError  # noqa: E402
from synthxrd.match import ReferenceLibrary  # noqa: E402
from synthxrd.match.fusion import FusionRule  # noqa: E402
from synthxrd.models.checkpoint import load_checkpoint, weights_fingerprint  # noqa: E402
from synthxrd.predict import Predictor  # noqa: E402
from synthxrd.split import Split, load_split  # noqa: E402

EXAMPLES = files("synthxrd") / "resources" / "examples"


def test_fingerprints_follow_the_content():
    state = {"a.weight": torch.ones(3, 2), "a.bias": torch.zeros(3), "n": torch.tensor(4)}
    same = {k: v.clone() for k, v in reversed(state.items())}
    assert weights_fingerprint(state) == weights_fingerprint(same)
    assert weights_fingerprint(state) == weights_fingerprint({**state, "a.bias": torch.zeros(3, dtype=torch.float16)})
    changed = {**state, "a.bias": torch.tensor([0.0, 0.0, 1e-3])}
    assert weights_fingerprint(changed) != weights_fingerprint(state)
    mp = ReferenceLibrary.load("mp")
    assert mp.fingerprint == ReferenceLibrary.load("mp").fingerprint != ReferenceLibrary.load().fingerprint
    part = mp.select(np.arange(100))
    assert part.fingerprint != mp.fingerprint and part.lineage == (part.fingerprint, mp.fingerprint)
    assert part.select([0, 1]).lineage[1:] == part.lineage


def test_rule_check_names_both_pairs():
    mp = ReferenceLibrary.load("mp")
    rule = FusionRule().bind("sha256:" + "ab" * 32, mp.fingerprint, "shipped:mp", network_temperature=1.5)
    rule.check("sha256:" + "ab" * 32, mp, network_temperature=1.5)
    rule.check("sha256:" + "ab" * 32, mp.select(np.arange(10)), network_temperature=1.5)  # a part of it
    for network, t, library in (("sha256:" + "cd" * 32, 1.5, mp), ("sha256:" + "ab" * 32, 1.0, mp),
                                ("sha256:" + "ab" * 32, 1.5, ReferenceLibrary.load("amcsd"))):
        with pytest.raises(DataError) as info:
            rule.check(network, library, network_temperature=t, rule_label="rule R", model_label="model M")
        message = str(info.value)
        assert "\n" not in message and message.startswith("rule R belongs to network abababababab (T 1.5) and library")
        assert f"not to model M (network {network[7:19]} (T {t:.4g})) with library {library.fingerprint[7:19]}" \
            in message
    assert FusionRule.from_dict(rule.to_dict()) == rule and FusionRule.from_dict(rule.to_dict()).network == rule.network


def test_predictor_takes_the_models_own_rule_and_refuses_others(tiny_run, tiny_fused, tmp_path, capsys):
    with pytest.raises(DataError, match="holds no fusion rule for a library: export it with one"):
        Predictor.load(tiny_run, device="cpu")  # a training run: no rule, and no silent default
    fused = Predictor.load(tiny_fused, device="cpu")
    assert fused.fusion.network == fused.metadata["weights_sha256"] == weights_fingerprint(
        load_checkpoint(tiny_fused)["model"])
    assert fused.fusion.library == ReferenceLibrary.load().fingerprint and fused.fusion.temperature == 0.02
    held = ReferenceLibrary.load().without_part(load_split(), "test")
    assert Predictor.load(tiny_fused, device="cpu", library=held).fusion == fused.fusion  # a part of its library
    with pytest.raises(DataError, match=r"the fusion rule of .*tiny_fused.pt belongs to network .* not to .* "
                                        r"with library .* \(shipped:mp\)"):
        Predictor.load(tiny_fused, device="cpu", library="mp")
    assert Predictor.load(tiny_fused, device="cpu", library="mp", allow_foreign_fusion=True).fusion == fused.fusion
    # the shipped model's rule with the tiny network: refused, and allowed only when asked
    shipped_rule = FusionRule.from_dict(load_checkpoint(files("synthxrd") / "resources" / "models" / "default.pt")
                                        ["fusion"]).save(tmp_path / "shipped_rule.json")
    with pytest.raises(DataError, match="fusion rule .*shipped_rule.json belongs to network"):
        Predictor.load(tiny_fused, device="cpu", fusion=shipped_rule)
    forced = Predictor.load(tiny_fused, device="cpu", fusion=shipped_rule, allow_foreign_fusion=True)
    assert forced.fusion == FusionRule.load(shipped_rule) and forced.fusion.refined and forced.refine
    assert forced.fusion.temperature != fused.fusion.temperature
    # the same on the command line
    pattern = str(EXAMPLES / "NaCl.cif")
    tt = np.arange(10.0, 80.0, 0.02)
    from synthxrd import simulate
    from synthxrd.structure import read_cif

    pos, inten = simulate.peaks(read_cif(pattern), 1.5406, (9.0, 81.0))
    xy = tmp_path / "nacl.xy"
    np.savetxt(xy, np.c_[tt, sum(i * np.exp(-0.5 * ((tt - p) / 0.08) ** 2) for p, i in zip(pos, inten))])
    args = ["predict", str(xy), "--model", str(tiny_fused), "--wavelength", "1.5406", "--device", "cpu"]
    assert main([*args, "--fusion", str(shipped_rule)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "shipped_rule.json belongs to network" in err
    assert main([*args, "--fusion", str(shipped_rule), "--force-fusion"]) == 0
    assert "best matches" in capsys.readouterr().out
    assert main([*args, "--no-library", "--force-fusion"]) == 2
    assert "--no-library excludes --fusion" in capsys.readouterr().err
    # a bound rule is not re-bound to other weights by export --fusion
    bound = FusionRule.from_dict(load_checkpoint(tiny_fused)["fusion"]).save(tmp_path / "bound.json")
    out = tmp_path / "f32.pt"
    assert main(["export", str(tiny_run), str(out), "--dtype", "float32", "--library", "default",
                 "--fusion", str(bound)]) == 2
    assert "bound.json belongs to network" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(tiny_run), str(out), "--library", "default"]) == 2
    assert "needs the library's structures: --source" in capsys.readouterr().err
    assert main(["export", str(tiny_run), str(out), "--source", pattern]) == 2
    assert "need --library" in capsys.readouterr().err


def test_export_fits_the_rule_on_the_calibration_part(tiny_run, tmp_path, capsys):
    """export --library --source: the rule is fitted on simulated patterns of library structures, of the
    held-out part and of structures known only through an isotype, bound to the exported weights and the
    library, and read back by Predictor.load."""
    lib = ReferenceLibrary.build(str(EXAMPLES))
    library = lib.save(tmp_path / "examples.npz")
    ids = lib.ids.tolist()
    assert len(ids) == 8
    # two statistics structures; six calibration ones in three prototypes of two phases each
    parts = ["statistics"] * 2 + ["calibration"] * 6
    prototypes = ["p0", "p1", "q2", "q2", "q4", "q4", "q6", "q6"]
    split = Split(np.array(ids), np.array(prototypes), np.array(parts))
    split.write(tmp_path / "split.csv")
    from synthxrd.match.fusion_fit import isotype_rows

    assert isotype_rows(lib, split).tolist() == [False, False] + [True] * 6
    out = tmp_path / "fitted.pt"
    assert main(["export", str(tiny_run), str(out), "--library", str(library), "--source", str(EXAMPLES),
                 "--fusion-split", str(tmp_path / "split.csv"), "--fusion-patterns", "2"]) == 0
    assert "fusion rule with library" in capsys.readouterr().out
    rule = FusionRule.from_dict(load_checkpoint(out)["fusion"])
    # 4 of the 6 calibration structures are drawn as known and held-out; the 2 left are all the isotypes there are
    assert rule.metadata["n_library"] == 2 and rule.metadata["n_held_out"] == 2 and rule.metadata["n_isotype"] == 2
    assert rule.metadata["fitted_on"] == "simulated patterns, augmentation 'calibration'"
    assert rule.metadata["held_out_part"] == "calibration" and set(rule.metadata["fit_report"]) == {
        "library structures", "held-out prototypes", "isotypes in the library", "answers not flagged uncertain",
        "no known phase"}
    assert rule.known is not None and rule.threshold == 1.0  # 6 patterns: too few to choose a threshold
    predictor = Predictor.load(out, device="cpu", library=library)
    assert predictor.fusion == rule and rule.library == ReferenceLibrary.load(library).fingerprint
    json.dumps(rule.to_dict())
    # thin films and cropped scans in place of the isotypes: the 4 calibration structures left, two of each,
    # one searched against the whole library and one with its part left out, each on its own scan window;
    # they weigh in the mixture only. With a preset that crops, every pattern is searched on its window
    films = tmp_path / "films.pt"
    assert main(["export", str(tiny_run), str(films), "--library", str(library), "--source", str(EXAMPLES),
                 "--fusion-split", str(tmp_path / "split.csv"), "--fusion-patterns", "1", "--fusion-isotypes", "0",
                 "--fusion-thin-films", "2", "--fusion-cropped", "5", "--fusion-augment", "default"]) == 0
    film_rule = FusionRule.from_dict(load_checkpoint(films)["fusion"])
    meta = film_rule.metadata
    assert [meta[k] for k in ("n_library", "n_held_out", "n_isotype", "n_thin_film", "n_thin_film_known", "n_cropped",
                              "n_cropped_known")] == [1, 1, 0, 2, 1, 2, 1]  # 5 cropped asked, 2 structures left
    assert meta["n_patterns"] == 6 and meta["fitted_on"].endswith("'default'")
    assert set(meta["fit_report"]) == {"library structures", "held-out prototypes", "thin films", "cropped scans",
                                       "answers not flagged uncertain", "no known phase"}
    assert sum(meta["fit_report"]["no known phase"][k] for k in ("said, is held out", "said, is known",
                                                                 "not said, is held out", "not said, is known")) == 2
