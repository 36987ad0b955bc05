"""The study config and the command line's refusals, without Ray."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import optuna
import pytest
import yaml

from seqsum.choices import LOSSES
from seqsum.cli import main
from seqsum.config import RunConfig
from seqsum.errors import ConfigError
from study.config import StudyConfig, load_preset, preset_names
from study.space import SEED_POINT, ordered, space_problems, suggest


def test_every_shipped_preset_parses_and_builds_run_configs():
    assert {"smoke", "quick", "full"} <= set(preset_names())
    for name in preset_names():
        cfg = load_preset(name)
        for task in cfg.what.tasks:
            # a random point of the space (through Optuna's own FixedTrial) makes a valid RunConfig
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
            for _ in range(5):
                params = suggest(study.ask(), cfg.what.space)
                run = cfg.run_config(task, suggest(optuna.trial.FixedTrial(params), cfg.what.space))
                assert isinstance(run, RunConfig) and run.train.task == task


def test_full_preset_enqueues_the_original_model():
    cfg = load_preset("full")
    point = cfg.seed_point()
    assert point is not None and point["gru_width"] == SEED_POINT["gru_width"]
    run = cfg.run_config("product", point)
    assert run.model.conv_channels == (8, 16) and run.model.conv_kernels == (4, 3)
    assert run.model.gru_hidden == (200, 100) and run.train.loss == "mse" and run.train.lr == 1e-3


def test_conditions_that_depend_on_each_other_are_refused_as_a_cycle():
    space = {
        "loss": {"choices": ["mse", "log"]},
        "model.dropout": {"low": 0.0, "high": 0.5, "when": {"train.standardize": True}},
        "train.standardize": {"choices": [False, True], "when": {"model.dropout": 0.1}},
    }
    assert space_problems(space) == [
        "search parameters ['model.dropout', 'train.standardize'] are conditional on each other (a cycle); break it"
    ]
    assert list(ordered(space)) == ["loss", "model.dropout", "train.standardize"]  # file order for what is left
    del space["train.standardize"]["when"]
    assert space_problems(space) == [] and list(ordered(space)) == ["loss", "train.standardize", "model.dropout"]


def test_conditional_parameter_only_when_its_condition_holds():
    space = load_preset("quick").what.space
    assert "when" in space["standardize"]
    mse = suggest(optuna.trial.FixedTrial({**_fixed(space), "family": "mse", "standardize": True}), space)
    cls = suggest(optuna.trial.FixedTrial({**_fixed(space), "family": "classify"}), space)
    assert mse["standardize"] is True and "standardize" not in cls


def _fixed(space):
    return {k: (s["choices"][0] if "choices" in s else s["low"]) for k, s in space.items() if k != "standardize"}


def _bad(mutate) -> str:
    d = load_preset("smoke").to_dict()
    mutate(d)
    with pytest.raises(ConfigError) as e:
        StudyConfig.from_dict(d)
    return str(e.value)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda d: d["what"]["space"].update(width={"low": 1, "high": 4}), ["'width'", "allowed"]),
        (lambda d: d["what"]["space"].update(gru_width={"low": 32, "high": 8}), ["inverted", "gru_width"]),
        (lambda d: d["what"]["space"].update(lr={"low": 0.01, "high": 0.01}), ["empty", "lr"]),
        (lambda d: d["what"]["space"].update(loss={"choices": []}), ["empty", "loss"]),
        (lambda d: d["what"]["space"].update(loss={"choices": ["mse", "hinge"]}), ["'hinge'", "classify"]),
        (lambda d: d["how"].update(scheduler="hyperband"), ["'hyperband'", "asha, fifo"]),
        (lambda d: d["where"].update(name="a/b"), ["'a/b'", "path separators"]),
        (lambda d: d["what"].update(tasks=["sum", "division"]), ["division", "sum, product"]),
        (lambda d: d.update(extra={}), ["extra", "what, how, where"]),
    ],
)
def test_bad_study_configs_name_the_value_and_what_is_allowed(mutate, words):
    msg = _bad(mutate)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def _cli(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.err.strip()


def test_unknown_preset_exits_2_and_writes_nothing(tmp_path, capsys):
    code, err = _cli(["study", "launch", "--preset", "huge", "--storage", str(tmp_path)], capsys)
    assert code == 2 and "'huge'" in err and "smoke" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_config_file_and_overrides_exit_2(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"how": {"scheduler": "pbt"}}))
    code, err = _cli(["study", "launch", "--config", str(cfg), "--storage", str(tmp_path / "st")], capsys)
    assert code == 2 and "'pbt'" in err
    code, err = _cli(
        ["study", "launch", "--preset", "smoke", "--name", "../x", "--storage", str(tmp_path / "st")], capsys
    )
    assert code == 2 and "'../x'" in err
    code, err = _cli(
        ["study", "launch", "--preset", "smoke", "--storage", str(tmp_path / "st"), "--set", "model.width=3"], capsys
    )
    assert code == 2 and "width" in err
    assert not (tmp_path / "st").exists()


def test_storage_folder_with_a_different_study_is_refused(tmp_path, capsys):
    d = tmp_path / "smoke"
    d.mkdir()
    other = load_preset("smoke").override("how", num_samples=7).override("where", storage=str(tmp_path))
    (d / "study.yaml").write_text(other.to_yaml())
    before = (d / "study.yaml").read_text()
    code, err = _cli(["study", "launch", "--preset", "smoke", "--storage", str(tmp_path)], capsys)
    assert code == 2 and "different study" in err
    assert (d / "study.yaml").read_text() == before and sorted(p.name for p in d.iterdir()) == ["study.yaml"]


def test_unreachable_address_fails_fast_with_one_line(tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqsum",
            "study",
            "launch",
            "--preset",
            "smoke",
            "--storage",
            str(tmp_path / "st"),
            "--address",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert time.time() - t0 < 30
    assert "unreachable" in r.stderr and f"127.0.0.1:{port}" in r.stderr
    assert not (tmp_path / "st").exists()


def test_resume_and_rerun_of_a_non_study_fail_clearly(tmp_path, capsys):
    code, err = _cli(["study", "resume", str(tmp_path)], capsys)
    assert code == 2 and "not a study folder" in err
    code, err = _cli(["study", "rerun", str(tmp_path)], capsys)
    assert code == 2 and "not a study folder" in err


def test_study_help():
    for argv in (
        ["study", "--help"],
        ["study", "launch", "--help"],
        ["study", "resume", "--help"],
        ["study", "rerun", "--help"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0


def test_space_names_run_config_keys_directly():
    d = load_preset("smoke").to_dict()
    d["what"]["space"] = {
        "train.loss": {"choices": ["mse", "classify"]},
        "model.dropout": {"low": 0.0, "high": 0.5},
        "train.standardize": {"choices": [False, True], "when": {"train.loss": "mse"}},
    }
    cfg = StudyConfig.from_dict(d)
    run = cfg.run_config("product", {"train.loss": "classify", "model.dropout": 0.25})
    assert run.train.loss == "classify" and run.model.dropout == 0.25 and run.train.task == "product"
    assert cfg.families() == ["mse", "classify"]
    assert cfg.first_points() == [{"train.loss": "mse"}, {"train.loss": "classify"}]
    for bad in ("model.width", "train.task", "train.epochs", "nosection.x"):
        d2 = load_preset("smoke").to_dict()
        d2["what"]["space"][bad] = {"low": 1, "high": 4}
        with pytest.raises(ConfigError, match=bad.replace(".", r"\.")):
            StudyConfig.from_dict(d2)


def test_every_loss_family_is_enqueued_before_the_sampler():
    smoke = load_preset("smoke")
    assert smoke.first_points() == [{"loss": f} for f in LOSSES]
    assert smoke.how.num_samples >= len(LOSSES)  # so a smoke study always has every family
    full = load_preset("full")  # the original model (mse) first, then the other families (loss, head, bottleneck)
    points = full.first_points()
    assert points[0] == full.seed_point() and points[0]["family"] == "mse"
    assert points[1:] == [{"family": f} for f in full.families() if f != "mse"]
    assert {"log", "classify", "classify+exact", "mse+digits+nmu"} <= set(full.families())


def test_base_run_is_built_once_per_study_config():
    cfg = load_preset("quick")
    assert cfg.base_run("sum") is cfg.base_run("sum")


def test_resources_no_node_has_fail_fast_with_one_line(tmp_path):
    """A per-trial request beyond what any node (here: this machine) has: exit 2 within seconds, nothing written."""
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-m", "seqsum", "study", "launch", "--preset", "smoke", "--storage", str(tmp_path / "st")]
        + ["--gpus-per-trial", "64"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("seqsum:")]
    assert len(err) == 1 and "64 GPU(s)" in err[0] and "this machine has" in err[0], r.stderr
    assert time.time() - t0 < 30
    assert not (tmp_path / "st").exists()


def _with_points(points, num_samples=None, **space):
    d = load_preset("smoke").to_dict()
    d["what"]["space"] = space or {
        "train.loss": {"choices": ["classify", "mse"]},
        "data.balance": {"choices": ["none", "target"]},
        "data.holdout": {"choices": ["none", "random:0.1"]},
        "model.head": {"choices": ["dense", "nmu"], "when": {"train.loss": "mse"}},
    }
    d["what"]["base"]["train"] = {**d["what"]["base"].get("train", {}), "loss": "classify"}
    d["what"]["points"] = points
    d["how"]["num_samples"] = num_samples or len(points)
    return StudyConfig.from_dict(d)


def test_designed_points_are_the_base_with_their_changes_enqueued_first():
    cfg = _with_points([{}, {"data.balance": "target"}, {"train.loss": "mse", "model.head": "nmu"}], num_samples=4)
    control, balanced, nmu, dense = cfg.first_points()
    assert control == {"train.loss": "classify", "data.balance": "none", "data.holdout": "none"}
    assert balanced == {**control, "data.balance": "target"}
    assert nmu == {"train.loss": "mse", "data.balance": "none", "data.holdout": "none", "model.head": "nmu"}
    # the family no point covers (mse with the dense head) is enqueued once, its head set, the rest sampled
    assert dense == {"train.loss": "mse", "model.head": "dense"}
    assert cfg.families() == ["classify", "mse", "mse+nmu"]
    # the control is exactly the base run: 'none' holdout is the empty holdout, and the default sampling path
    assert cfg.run_config("product", control).replace({"data.holdout": []}) == cfg.base_run("product").replace(
        {"data.holdout": []}
    )
    from seqsum.train_data import holdout_pairs

    assert holdout_pairs(cfg.run_config("product", control)) == ()
    assert cfg.run_config("sum", nmu).model.head == "nmu"


@pytest.mark.parametrize(
    "points, num_samples, match",
    [
        ([{"model.dropout": 0.1}], None, r"what.points #1 names 'model.dropout', which is not in the space"),
        ([{"data.balance": "uniform"}], None, r"what.points #1 names data.balance='uniform', which is outside"),
        ([{}, {}, {}], 2, r"how.num_samples=2 is below the 5 points enqueued first"),
        (["control"], None, r"what.points #1 must be a mapping"),
        ([{"model.head": "nmu"}], None, r"names 'model.head', which applies only when"),  # nmu needs mse
    ],
)
def test_bad_designed_points_are_refused_in_one_line(points, num_samples, match):
    with pytest.raises(ConfigError, match=match) as e:
        _with_points(points, num_samples)
    assert "\n" not in str(e.value)


def test_a_point_whose_base_value_is_outside_the_space_is_refused():
    with pytest.raises(ConfigError, match=r"leaves to the base config data.balance='none'"):
        _with_points([{}], None, **{"data.balance": {"choices": ["target"]}})


def _flat(run: RunConfig) -> dict:
    from dataclasses import asdict

    return {f"{sec}.{k}": v for sec, d in asdict(run).items() for k, v in d.items()}


def test_findings_preset_enqueues_one_trial_per_condition():
    cfg = load_preset("findings")
    points = cfg.first_points()
    assert len(points) == cfg.how.num_samples == len({tuple(sorted(p.items())) for p in points})
    control = _flat(cfg.run_config("product", points[0]))
    assert control == _flat(cfg.base_run("product").replace({"data.holdout": "none"}))
    # every other condition's run config differs from the control's exactly in the switches its point names
    for spec, point in zip(cfg.what.points[1:], points[1:]):
        run = _flat(cfg.run_config("product", point))
        assert {k for k in run if run[k] != control[k]} == set(spec)


def test_each_findings_section_has_a_preset_with_the_control_and_its_conditions():
    from analysis.findings import condition_label
    from analysis.findings_doc import SECTIONS

    full = load_preset("findings")
    for s in SECTIONS:
        cfg = load_preset(f"findings-{s.key}")
        assert cfg.what.base == full.what.base and set(cfg.what.space) <= set(full.what.space)
        labels = [condition_label(p, cfg.first_points()[0]) for p in cfg.first_points()]
        assert labels[0] == "control" and set(labels) == set(s.conditions) | {"control"}
        assert cfg.how.num_samples == len(labels) and cfg.how.scheduler == "fifo"
        # each condition trains exactly the run config the full findings study trained under that name
        full_points = {condition_label(p, full.first_points()[0]): p for p in full.first_points()}
        for label, point in zip(labels, cfg.first_points()):
            same = full.run_config("product", full_points[label]).replace({"data.holdout": []})
            assert cfg.run_config("product", point).replace({"data.holdout": []}) == same, (s.key, label)


def test_a_conditional_parameter_listed_before_its_condition_is_still_suggested():
    space = {
        "model.head": {"choices": ["nmu"], "when": {"train.loss": "mse"}},
        "train.loss": {"choices": ["mse"]},
    }
    params = suggest(optuna.create_study().ask(), space)
    assert params == {"train.loss": "mse", "model.head": "nmu"}
