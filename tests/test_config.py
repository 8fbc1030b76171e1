"""Config layering: defaults < TOML < overrides, with errors naming the file and key."""

import pytest

from synthxrd.config import parse_override, to_toml
from synthxrd.errors import ConfigError
from synthxrd.train import TrainConfig, lr_factor


def test_defaults_are_the_reference():
    c = TrainConfig()
    assert (c.optimizer, c.lr, c.batch_size, c.lr_step_size, c.lr_gamma) == ("adam", 1e-4, 145, 450_000, 0.5)


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('model = "park_big"\nlr = 3e-4\nval_sets = ["random"]\n')
    c = TrainConfig.load(path, lr=1e-3, seed=None)
    assert c.model == "park_big" and c.lr == 1e-3 and c.val_sets == ("random",) and c.seed == 0


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("learning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'learning_rate'"):
        TrainConfig.load(path)


@pytest.mark.parametrize("text, key", [('lr = "fast"\n', "lr"), ("batch_size = 1.5\n", "batch_size"),
                                       ("val_sets = 3\n", "val_sets"), ('amp = "maybe"\n', "amp")])
def test_wrong_types_and_values(tmp_path, text, key):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        TrainConfig.load(path)


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("lr = = 1\n")
    with pytest.raises(ConfigError, match=r"x\.toml: invalid TOML"):
        TrainConfig.load(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        TrainConfig.load(tmp_path / "missing.toml")


def test_resolved_config_round_trips(tmp_path):
    c = TrainConfig(model="park_small", model_kwargs={"dropout": 0.1}, val_sets=("random", "match"), statistics=None)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(c))
    assert TrainConfig.load(path) == c


def test_parse_override():
    assert parse_override("lr=3e-4") == ("lr", 3e-4)
    assert parse_override('model="resnet10"') == ("model", "resnet10")
    assert parse_override("model=resnet10") == ("model", "resnet10")
    assert parse_override("amp=false") == ("amp", False)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("lr")


def test_lr_schedules():
    step = TrainConfig(lr_step_size=10, lr_gamma=0.5)
    assert [lr_factor(step, s) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = TrainConfig(schedule="cosine", warmup_steps=4, max_steps=104)
    assert lr_factor(cos, 0) == 0.25 and lr_factor(cos, 3) == 1.0
    assert lr_factor(cos, 4) == pytest.approx(1.0) and lr_factor(cos, 54) == pytest.approx(0.5)
    assert lr_factor(cos, 104) == pytest.approx(0.0, abs=1e-12)
