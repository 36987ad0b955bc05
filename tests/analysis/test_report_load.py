"""analysis.load and analysis.compare on synthetic study folders: identity from params.json, seed statistics."""

from __future__ import annotations

import json
import shutil

import pytest

from analysis.compare import describe, seed_table, verdict, with_intervals
from analysis.load import load_study, replicates_frame, trials_frame
from tests.report_fixtures import make_synthetic_study, write_run


def test_trials_frame_reads_identity_from_params_json_not_folder_names(tmp_path):
    d = make_synthetic_study(tmp_path)
    # a folder whose name says nothing: identity still comes from params.json
    shutil.move(d / "trials" / "sum" / "trial01", d / "trials" / "sum" / "renamed")
    t = trials_frame(d).set_index("trial_id")
    assert len(t) == 6 and set(t.kind) == {"search"}
    assert t.loc["trial01", "family"] == "log" and t.loc["trial01", "task"] == "sum"
    assert t.loc["trial01", "seed"] == 1 and t.loc["trial01", "status"] == "ok"
    assert t.loc["trial01", "params"] == {"loss": "log"} and t.loc["trial01", "param.loss"] == "log"
    assert t.loc["trial01", "test/exact"] == 0.5


def test_old_params_json_without_kind_or_family_still_loads(tmp_path):
    d = tmp_path / "old"
    run = write_run(d / "trials" / "product" / "abc", "product", "classify", 3, 0.4)
    (run / "params.json").write_text(json.dumps({"trial_id": "abc", "task": "product", "params": {}}))
    t = trials_frame(d).iloc[0]
    assert (t.kind, t.family, t.seed, t.trial_id) == ("search", "classify", 3, "abc")


def test_replicates_frame_one_row_per_replicate_run(tmp_path):
    d = make_synthetic_study(tmp_path, {("product", "log"): [0.2, 0.4, 0.3], ("product", "classify"): [0.6]})
    r = replicates_frame(d)
    assert len(r) == 4 and set(r.kind) == {"replicate"}
    assert set(r.columns) >= {"task", "family", "rank", "source_trial_id", "seed", "status", "test/exact"}
    assert sorted(r[r.family == "log"].seed) == [1000, 1001, 1002]
    assert set(r.source_trial_id) == {"trial00"}
    assert replicates_frame(tmp_path / "nothing").empty


def test_load_study_stacks_details_of_both_kinds(tmp_path):
    d = make_synthetic_study(tmp_path, {("sum", "mse"): [0.1, 0.2]})
    s = load_study(d)
    assert len(s.trials) == 6 and len(s.replicates) == 2
    assert set(s.per_target.kind) == {"search", "replicate"}
    assert len(s.pairs[s.pairs.kind == "replicate"]) == 200
    assert not any("no replicates" in n for n in s.notes)
    assert any("no replicates" in n for n in load_study(make_synthetic_study(tmp_path / "b")).notes)


def test_seed_table_mean_interval_and_values(tmp_path):
    d = make_synthetic_study(tmp_path, {("product", "log"): [0.2, 0.4, 0.3], ("product", "classify"): [0.6, 0.6]})
    t = seed_table(replicates_frame(d)).set_index(["family", "metric"])
    log = t.loc[("log", "test/exact")]
    assert log.n_seeds == 3 and log["mean"] == pytest.approx(0.3) and log["values"] == [0.2, 0.4, 0.3]
    assert 0.2 - 1e-9 <= log.ci_low < 0.3 < log.ci_high <= 0.4 + 1e-9
    same = t.loc[("classify", "test/exact")]  # equal values: the interval is that value, never NaN
    assert (same.ci_low, same["mean"], same.ci_high) == (0.6, 0.6, 0.6)
    assert {"test/exact", "test/mae", "test/mse", "pairs/9x9/exact"} <= set(t.index.get_level_values("metric"))


def test_one_seed_says_n_1_never_plus_minus_0():
    assert describe(0.5, 0.5, 0.5, 1) == "0.500 (n = 1 seed)"
    assert describe(0.5, 0.4, 0.6, 3, [0.4, 0.5, 0.6]) == "0.500 [0.400, 0.600] over 3 seeds (0.400, 0.500, 0.600)"
    assert "±" not in describe(0.5, 0.5, 0.5, 1)


def test_verdict_only_when_intervals_separate():
    assert verdict("test/exact", "classify", (0.6, 0.7), "log", (0.2, 0.3)) == "classify beats log on test/exact"
    assert verdict("test/exact", "classify", (0.2, 0.5), "log", (0.4, 0.6)).endswith("not separated")
    assert verdict("test/mae", "classify", (0.6, 0.7), "log", (0.2, 0.3)) == "log beats classify on test/mae"


def test_with_intervals_wilson_for_one_run_bootstrap_for_seeds():
    import pandas as pd

    one = with_intervals(pd.DataFrame({"g": ["a"], "n": [100], "exact": [0.5]}), ["g"]).iloc[0]
    assert one.interval == "wilson" and one.ci_low == pytest.approx(0.4038, abs=1e-3) and one.n_seeds == 1
    many = with_intervals(pd.DataFrame({"g": ["a"] * 3, "n": [100] * 3, "exact": [0.4, 0.5, 0.6]}), ["g"]).iloc[0]
    assert many.interval == "seeds" and many.n == 300 and many.ci_low >= 0.4 and many.ci_high <= 0.6


def test_a_truncated_run_file_is_left_out_with_one_line_naming_it(tmp_path):
    d = make_synthetic_study(tmp_path)
    summary = d / "trials" / "sum" / "trial01" / "summary.json"
    summary.write_text(summary.read_text()[:20])
    s = load_study(d)
    assert len(s.trials) == 5 and "trial01" not in set(s.trials.trial_id)
    note = next(n for n in s.notes if "summary.json" in n)
    assert str(summary) in note and "\n" not in note
