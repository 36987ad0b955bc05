"""A study's family is the loss with its head and bottleneck (study.family): each head is its own arm in the
enqueue, the rerun's --per-family, the report's comparison; spaces that let a trial reach an impossible
combination are refused before anything runs; old folders keep the family they recorded."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from seqsum.errors import ConfigError
from study.config import StudyConfig, load_preset
from study.family import family_key, family_order, parse_family


@pytest.mark.parametrize(
    "loss, bottleneck, head, key",
    [
        ("classify", "none", "dense", "classify"),
        ("classify", "digits", "dense", "classify+digits"),
        ("classify", "digits", "exact", "classify+exact"),
        ("mse", "none", "nmu", "mse+nmu"),
        ("log", "digits", "nau", "log+digits+nau"),
    ],
)
def test_family_keys_read_back_as_the_switches_they_name(loss, bottleneck, head, key):
    assert family_key(loss, bottleneck, head) == key
    assert parse_family(key) == {"train.loss": loss, "model.bottleneck": bottleneck, "model.head": head}


@pytest.mark.parametrize(
    "bad, match",
    [
        ("hinge", "unknown family 'hinge'"),
        ("classify+digits+exact", "spelled 'classify\\+exact'"),
        ("mse+nau+nmu", "unknown family"),
        ("classify+dense", "the dense head is the default"),
        ("mse+digits+digits", "unknown family"),
        (3, "unknown family 3"),
    ],
)
def test_a_family_key_not_of_the_defined_form_is_one_line(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_family(bad)


def test_families_sort_by_loss_then_plain_head_first_with_arms_beside_their_family():
    keys = ["classify+exact", "mse+nmu", "classify", "classify (data.balance=target)", "mse", "log", "x"]
    assert sorted(keys, key=family_order) == [
        "mse", "mse+nmu", "log", "classify", "classify (data.balance=target)", "classify+exact", "x",
    ]  # fmt: skip


def _study(space, points=(), num_samples=20, base_train=None):
    d = load_preset("smoke").to_dict()
    d["what"]["space"] = space
    d["what"]["points"] = list(points)
    d["what"]["base"]["train"] = {**d["what"]["base"]["train"], **(base_train or {})}
    d["how"]["num_samples"] = num_samples
    return StudyConfig.from_dict(d)


def test_every_family_a_space_reaches_is_enqueued_once_with_its_head_and_bottleneck_set():
    space = {
        "loss": {"choices": ["mse", "classify"]},
        "model.bottleneck": {"choices": ["none", "digits"]},
        "model.head": {"choices": ["dense", "exact"], "when": {"loss": "classify", "model.bottleneck": "digits"}},
        "standardize": {"choices": [False, True], "when": {"loss": "mse"}},
        "lr": {"low": 0.001, "high": 0.01, "log": True},
    }
    cfg = _study(space)
    assert cfg.families() == ["mse", "mse+digits", "classify", "classify+digits", "classify+exact"]
    points = cfg.first_points()
    assert [cfg.family_of_point(p) for p in points] == cfg.families()
    # the identity is fixed, everything else (standardize, lr) is left to the sampler
    assert points[4] == {"loss": "classify", "model.bottleneck": "digits", "model.head": "exact"}
    assert points[0] == {"loss": "mse", "model.bottleneck": "none"}


def test_a_when_may_list_values_and_nau_nmu_take_mse_or_log():
    space = {
        "loss": {"choices": ["mse", "log", "classify"]},
        "model.head": {"choices": ["dense", "nau", "nmu"], "when": {"loss": ["mse", "log"]}},
    }
    cfg = _study(space)
    assert cfg.families() == ["mse", "mse+nau", "mse+nmu", "log", "log+nau", "log+nmu", "classify"]
    assert len(cfg.first_points()) == 7


@pytest.mark.parametrize(
    "space, match",
    [
        (  # the exact head reachable with mse: a trial would fail after Ray started
            {"loss": {"choices": ["mse", "classify"]}, "model.bottleneck": {"choices": ["digits"]},
             "model.head": {"choices": ["dense", "exact"]}},
            r"the space lets a trial take .*'exact'.* rule it out with when:",
        ),
        (  # nmu reachable with classify
            {"loss": {"choices": ["classify"]}, "model.head": {"choices": ["dense", "nmu"]}},
            r"not a valid run config .*model.head nmu",
        ),
        ({"family": {"choices": ["classify", "mse+exact"]}}, r"family 'mse\+exact' is spelled|not a valid run config"),
        ({"family": {"choices": ["classify"]}, "loss": {"choices": ["mse"]}}, r"names family and loss"),
        ({"loss": {"choices": ["mse"]}, "model.head": {"choices": ["dense"], "when": {"loss": ["mse", "x"]}}},
         r"conditional on loss=\['mse', 'x'\], which is not among"),
    ],
)  # fmt: skip
def test_a_space_that_reaches_an_impossible_family_is_refused_in_one_line(space, match):
    with pytest.raises(ConfigError, match=match) as e:
        _study(space)
    assert "\n" not in str(e.value)


def test_old_studies_keep_their_loss_families():
    for name in ("smoke", "quick", "seed-compare"):
        cfg = load_preset(name)
        assert {"mse", "log", "classify"} <= set(cfg.families())
    assert load_preset("seed-compare").families() == ["mse", "log", "classify"]
    assert load_preset("seed-compare").first_points() == [{"train.loss": f} for f in ("mse", "log", "classify")]


def test_quick_and_full_search_the_heads_and_quick_tries_the_exact_head():
    for name in ("quick", "full"):
        cfg = load_preset(name)
        fams = cfg.families()
        assert "classify+exact" in fams and "classify+digits" in fams, fams
        assert {cfg.family_of_point(p) for p in cfg.first_points()} == set(fams)
    quick = load_preset("quick")
    assert len(quick.first_points()) <= quick.how.num_samples


def test_a_run_folder_without_a_recorded_family_gets_it_from_its_config(tmp_path):
    from seqsum.cli import main
    from study.runs import run_row

    run = tmp_path / "run"
    argv = ["train", "--smoke", "--task", "product", "--loss", "mse", "--set", "model.head=nmu", "--epochs", "1"]
    assert main([*argv, "--out", str(run)]) == 0
    assert run_row(run)["family"] == "mse+nmu"
    # an old study's trial recorded its loss as the family: that is what it reads
    (run / "params.json").write_text(json.dumps({"family": "mse", "kind": "search", "trial_id": "t0"}))
    assert run_row(run)["family"] == "mse"


def test_arms_of_one_family_are_named_by_what_is_not_the_family():
    from analysis.scores import arms

    reps = pd.DataFrame(
        {
            "task": ["product"] * 2,
            "family": ["classify+exact"] * 2,
            "source_trial_id": ["a", "b"],
            "params": [
                {"family": "classify+exact", "conv_stack": "seed"},
                {"family": "classify+exact", "conv_stack": "strong"},
            ],
        }
    )
    assert list(arms(reps).family) == ["classify+exact (conv_stack=seed)", "classify+exact (conv_stack=strong)"]


def test_findings_structure_runs_every_family_on_both_stacks_with_large_test_sets():
    """The structure preset stands apart from the findings preset (its own control, 100,000 test sequences so
    the rarest bins have narrow intervals): 5 families x 2 conv stacks, one point each, nothing sampled."""
    from analysis.findings import condition_label
    from seqsum.memory import estimate, machine_memory

    cfg = load_preset("findings-structure")
    points = cfg.first_points()
    assert len(points) == cfg.how.num_samples == 10
    labels = [condition_label(p, points[0]) for p in points]
    assert labels[0] == "control" and len(set(labels)) == 10
    for task in cfg.what.tasks:
        runs = [cfg.run_config(task, p) for p in points]
        assert {(r.train.loss, r.model.bottleneck, r.model.head) for r in runs} == {
            ("classify", "none", "dense"), ("classify", "digits", "dense"), ("mse", "digits", "nau"),
            ("mse", "digits", "nmu"), ("classify", "digits", "exact"),
        }  # fmt: skip
        assert {r.model.conv_pool for r in runs} == {(), (2, 2)}
        assert all(r.data.test_size == 100_000 for r in runs)
        # every replicate, re-scored on lengths 1..8, fits in memory with room for two at a time
        for p in points:
            run = cfg.replicate_run({"task": task, "params": p, "seed": 1000, "epochs": 4})
            need = sum(part.bytes for part in estimate(run.replace({"data.eval_max_len": 8})))
            assert 2 * need < 0.8 * machine_memory()
    assert "structure" not in load_preset("findings").to_yaml()  # not a section of the findings study
