"""RunConfig: defaults = the original post, (de)serialisation, validation messages, presets."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seqsum.config import PRESETS, DataConfig, ModelConfig, RunConfig, TrainConfig, preset
from seqsum.errors import ConfigError


def test_seed_preset_is_the_original_keras_post():
    cfg = preset("seed")
    m, t, d = cfg.model, cfg.train, cfg.data
    assert (m.conv_channels, m.conv_kernels, m.activation) == ((8, 16), (4, 3), "tanh")
    assert (m.gru_hidden, m.dropout) == ((200, 100), 0.2)
    assert (t.loss, t.standardize, t.optimizer, t.lr) == ("mse", False, "rmsprop", 1e-3)
    assert (t.batch_size, t.epochs, d.train_size) == (32, 20, 20_000)
    assert (d.source, d.min_len, d.max_len) == ("mnist5k", 1, 4)
    assert cfg == RunConfig()


def test_smoke_preset_is_small():
    cfg = preset("smoke")
    assert cfg.data.train_size <= 1000 and cfg.train.epochs <= 2
    assert cfg.model.gru_hidden == (16,)


def test_unknown_preset_names_it_and_the_choices():
    with pytest.raises(ConfigError) as e:
        preset("huge")
    msg = str(e.value)
    assert "'huge'" in msg and all(name in msg for name in PRESETS)


def test_dict_round_trip_and_lists_become_tuples():
    cfg = RunConfig().replace({"model.gru_hidden": [64, 32], "train.task": "product", "data.eval_max_len": 6})
    d = cfg.to_dict()
    assert d["model"]["gru_hidden"] == [64, 32]  # JSON-ready
    json.dumps(d)
    back = RunConfig.from_dict(d)
    assert back == cfg
    assert back.model.gru_hidden == (64, 32)
    assert back.data.test_max_len == 6


def test_missing_keys_take_defaults():
    cfg = RunConfig.from_dict({"train": {"task": "product"}})
    assert cfg.train.task == "product"
    assert cfg.model == ModelConfig() and cfg.data == DataConfig()


def test_save_and_load_json_and_yaml(tmp_path):
    cfg = RunConfig().replace({"train.loss": "classify", "data.max_len": 3})
    cfg.save(tmp_path / "c.json")
    assert RunConfig.load(tmp_path / "c.json") == cfg
    (tmp_path / "c.yaml").write_text("train:\n  loss: classify\ndata:\n  max_len: 3\n")
    assert RunConfig.load(tmp_path / "c.yaml") == cfg
    # PyYAML alone reads 1e-3 as a string; configs read it as the float everyone means
    (tmp_path / "lr.yaml").write_text("train:\n  lr: 1e-3\n  grad_clip: 5E+1\ndata:\n  root: 1e3x\n")
    lr = RunConfig.load(tmp_path / "lr.yaml")
    assert lr.train.lr == 0.001 and lr.train.grad_clip == 50.0 and lr.data.root == "1e3x"
    (tmp_path / "empty.yaml").write_text("")
    assert RunConfig.load(tmp_path / "empty.yaml") == RunConfig()


@pytest.mark.parametrize(
    "d, named",
    [
        ({"train": {"lerning_rate": 1}}, "lerning_rate"),
        ({"modle": {}}, "modle"),
        ({"data": {"max_len": 4, "colour": "red"}}, "colour"),
    ],
)
def test_unknown_keys_are_rejected_with_the_allowed_ones(d, named):
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict(d)
    msg = str(e.value)
    assert named in msg and "allowed" in msg and "\n" not in msg


def test_load_reports_unreadable_and_unparsable_files_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"task": "sum",,}}')
    with pytest.raises(ConfigError, match="cannot parse") as e:
        RunConfig.load(bad)
    assert "\n" not in str(e.value)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.load(tmp_path / "list.yaml")


def test_replace_applies_dotted_overrides_and_rejects_unknown_ones():
    cfg = RunConfig().replace({"train.lr": 3e-4, "model.gru_hidden": [64]})
    assert cfg.train.lr == 3e-4 and cfg.model.gru_hidden == (64,)
    assert RunConfig().train.lr == 1e-3  # frozen original untouched
    with pytest.raises(ConfigError, match="train has:"):
        RunConfig().replace({"train.learning_rate": 1})
    with pytest.raises(ConfigError, match="section.name"):
        RunConfig().replace({"lr": 1})


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().train.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides, bad, allowed",
    [
        ({"train.task": "divide"}, "'divide'", "sum, product"),
        ({"train.loss": "hinge"}, "'hinge'", "mse, log, classify"),
        ({"model.activation": "gelu"}, "'gelu'", "tanh, relu"),
        ({"train.optimizer": "sgd"}, "'sgd'", "rmsprop, adam"),
        ({"data.source": "cifar"}, "'cifar'", "mnist5k, mnist"),
        ({"train.device": "tpu"}, "'tpu'", "auto, cpu, cuda"),
        ({"data.max_len": 0}, "got 0", ">= 1"),
        ({"data.min_len": 5}, "got 5", "1..max_len=4"),
        ({"data.eval_max_len": 2}, "got 2", ">= max_len=4"),
        ({"data.train_size": 0}, "got 0", ">= 1"),
        ({"data.valid_frac": 1.5}, "got 1.5", "(0, 1)"),
        ({"data.valid_frac": 0.5, "data.test_frac": 0.45}, "0.95", ">= 10%"),
        ({"data.source": "mnist"}, "'mnist'", "--data-root"),
        ({"model.gru_hidden": [0]}, "got 0", "positive integers"),
        ({"model.gru_hidden": []}, "got ()", "non-empty"),
        ({"model.conv_channels": [8, -1]}, "got -1", "positive integers"),
        ({"model.conv_channels": [8]}, "[8]", "differ in length"),
        ({"model.conv_channels": [8, 8], "model.conv_kernels": [15, 15]}, "[15, 15]", "to nothing"),
        ({"model.dropout": 1.0}, "got 1.0", "[0, 1)"),
        ({"train.epochs": 0}, "got 0", ">= 1"),
        ({"train.batch_size": 2.5}, "got 2.5", ">= 1"),
        ({"train.lr": -1}, "got -1", "> 0"),
        ({"train.grad_clip": 0}, "got 0", "> 0 or null"),
        ({"train.seed": "x"}, "got 'x'", "integer"),
        ({"train.epochs": True}, "got True", ">= 1"),
        ({"data.test_size": False}, "got False", ">= 1"),
        ({"train.lr": True}, "got True", "> 0"),
        ({"train.standardize": "yes"}, "got 'yes'", "true or false"),
        ({"data.download": 1}, "got 1", "true or false"),
    ],
)
def test_bad_values_name_the_value_and_what_is_allowed(overrides, bad, allowed):
    with pytest.raises(ConfigError) as e:
        RunConfig().replace(overrides)
    msg = str(e.value)
    assert bad in msg and allowed in msg, msg
    assert "\n" not in msg


def test_every_problem_is_listed_in_one_message():
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({"train": {"task": "divide", "loss": "hinge"}, "data": {"max_len": 0}})
    msg = str(e.value)
    assert "'divide'" in msg and "'hinge'" in msg and "max_len" in msg and "\n" not in msg


def test_classify_with_conv_free_model_is_valid():
    cfg = RunConfig().replace({"model.conv_channels": [], "model.conv_kernels": [], "train.loss": "classify"})
    assert cfg.model.conv_channels == ()


def test_test_max_len_defaults_to_max_len():
    assert DataConfig(max_len=3).test_max_len == 3
    assert DataConfig(max_len=3, eval_max_len=5).test_max_len == 5
    assert TrainConfig().device == "auto"
