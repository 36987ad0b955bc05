"""docs/STUDY_LAYOUT.md against a real smoke study (the session fixture `smoke_study`: launched, then rerun
with --per-family --seeds 2 --epochs 1): every documented file and field is there, nothing undocumented is;
Optuna's record matches the run folders; the replicates are what `study rerun` promises; its bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from seqsum.choices import LOSSES
from seqsum.cli import main
from study.config import REPLICATE_PAIRS_PER_CELL, StudyConfig
from study.rerun import FIRST_SEED, make_plan
from tests.helpers import REPO

LAYOUT = REPO / "docs" / "STUDY_LAYOUT.md"
RUN_FOLDERS = ("trials/<task>/<trial_id>/", "rerun/<task>/<trial_id>/")
NOT_OURS = ("tune/", "report/")  # Ray Tune's own format; the report (docs/REPORT.md)


def _layout() -> dict[str, dict[str, str]]:
    """{section: {name: when}}: '## The study folder' and '## A run folder' (paths), '### `file`' (fields)."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for line in LAYOUT.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            section = title.split("`")[1] if "`" in title else title
            continue
        m = re.match(r"\| `([^`]+)` \| (\w+) \|", line)
        if m and section:
            out.setdefault(section, {})[m.group(1)] = m.group(2)
    return out


DOC = _layout()


def _pattern(name: str) -> re.Pattern:
    return re.compile("".join("[^/]+" if p.startswith("<") else re.escape(p) for p in re.split(r"(<[^>]+>)", name)))


def _matches(name: str, documented) -> bool:
    return any(_pattern(d).fullmatch(name) for d in documented)


def _fields(doc_name: str) -> dict[str, str]:
    fields = dict(DOC[doc_name])
    for name in [n for n in fields if n.startswith("<") and n.endswith(".json>")]:
        del fields[name]
        fields.update(dict.fromkeys(DOC[name[1:-1]], "optional"))  # e.g. every summary.json field
    return fields


def _check(doc_name: str, found, when=("always",)) -> None:
    fields = _fields(doc_name)
    found = list(found)
    extra = [f for f in found if not _matches(f, fields)]
    assert not extra, f"{doc_name}: {extra} are not in docs/STUDY_LAYOUT.md"
    missing = [f for f, w in fields.items() if w in when and not any(_pattern(f).fullmatch(x) for x in found)]
    assert not missing, f"{doc_name}: documented {missing} missing"


def _runs(d: Path) -> list[Path]:
    return sorted(p for pattern in ("trials/*/*", "rerun/*/*") for p in d.glob(pattern) if p.is_dir())


def test_study_folder_has_every_documented_file_and_nothing_else(smoke_study):
    paths = DOC["The study folder"]
    for path, when in paths.items():
        if when in ("always", "rerun", "report"):
            hits = list(smoke_study.glob(re.sub(r"<[^>]+>", "*", path).rstrip("/")))
            assert hits, f"documented {path} missing"
    run_dirs = {p.relative_to(smoke_study).as_posix() + "/" for p in _runs(smoke_study)}
    for p in sorted(smoke_study.rglob("*")):
        rel = p.relative_to(smoke_study).as_posix() + ("/" if p.is_dir() else "")
        if rel.startswith(NOT_OURS) or any(rel.startswith(r) for r in run_dirs):
            continue
        if p.is_dir() and any(d.startswith(rel) for d in run_dirs | set(NOT_OURS)):
            continue  # trials/, trials/sum/, rerun/sum/ ...
        assert _matches(rel, paths), f"{rel} is not in docs/STUDY_LAYOUT.md"
    assert all(_matches(r, RUN_FOLDERS) for r in run_dirs)


def test_every_run_folder_matches_the_layout(smoke_study):
    runs = _runs(smoke_study)
    assert len(runs) >= 6 + 12  # 3 trials per task, 3 families x 2 seeds per task
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        ok = summary["status"] == "ok"
        when = ("always", "ok") if ok else ("always",)
        _check("A run folder", [p.name for p in run.iterdir()], when)
        assert (run / "params.json").is_file()  # always in a study's run folders
        _check("config.json", json.loads((run / "config.json").read_text()))
        for line in (run / "metrics.jsonl").read_text().splitlines():
            _check("metrics.jsonl", json.loads(line))
        _check("summary.json", summary, when)
        params = json.loads((run / "params.json").read_text())
        _check("params.json", params)
        if params["kind"] == "replicate":
            assert {"rank", "source_trial_id"} <= set(params)
        if ok:
            _check("predictions.parquet", pd.read_parquet(run / "predictions.parquet").columns)
            _check("per_target.csv", pd.read_csv(run / "per_target.csv").columns)
            _check("pairs.csv", pd.read_csv(run / "pairs.csv").columns)


def test_study_files_match_the_layout(smoke_study):
    d = smoke_study
    _check("study.yaml", yaml.safe_load((d / "study.yaml").read_text()))
    _check("state.json", json.loads((d / "state.json").read_text()))
    _check("trials.csv", pd.read_csv(d / "trials.csv").columns)
    _check("rerun/plan.json", json.loads((d / "rerun" / "plan.json").read_text()))
    _check("rerun/state.json", json.loads((d / "rerun" / "state.json").read_text()))
    _check("rerun/summary.csv", pd.read_csv(d / "rerun" / "summary.csv").columns)


def test_optuna_record_matches_the_run_folders(smoke_study):
    """optuna.db through Optuna's own API: one trial per run folder, its state from the run's status,
    every epoch's valid/exact as an intermediate value, and every COMPLETE trial with every epoch."""
    cfg = StudyConfig.load(smoke_study / "study.yaml")
    epochs = cfg.base_run("sum").train.epochs
    state = {"ok": "COMPLETE", "stopped": "PRUNED", "diverged": "PRUNED", "error": "FAIL"}
    storage = f"sqlite:///{smoke_study / 'optuna.db'}"
    for task in cfg.what.tasks:
        trials = optuna.load_study(study_name=f"smoke/{task}", storage=storage).get_trials(deepcopy=False)
        runs = {p.name: p for p in (smoke_study / "trials" / task).iterdir()}
        assert sorted(t.user_attrs["tune_trial_id"] for t in trials) == sorted(runs)
        for t in trials:
            assert set(t.user_attrs) == set(DOC["Optuna trial user attrs"])
            run = runs[t.user_attrs["tune_trial_id"]]
            status = json.loads((run / "params.json").read_text())["status"]
            assert t.state.name == state[status] and t.user_attrs["status"] == status
            lines = map(json.loads, (run / "metrics.jsonl").open())
            curve = {m["epoch"]: m["valid/exact"] for m in lines if m["valid/exact"] is not None}
            assert t.intermediate_values == curve
            if t.state.name == "COMPLETE":
                assert sorted(curve) == list(range(1, epochs + 1)) and t.value == curve[epochs]
            if t.state.name == "PRUNED":
                assert t.value is None and t.user_attrs["last_value"] == curve[max(curve)]


def test_replicates_cover_every_family_with_fresh_seeds(smoke_study):
    reps = [json.loads(p.read_text()) for p in sorted((smoke_study / "rerun").glob("*/*/params.json"))]
    search = {p.parent.name: json.loads(p.read_text()) for p in (smoke_study / "trials").glob("*/*/params.json")}
    for task in ("sum", "product"):
        assert {r["family"] for r in reps if r["task"] == task} == set(LOSSES)
        assert {s["family"] for s in search.values() if s["task"] == task} == set(LOSSES)  # each family enqueued
    for r in reps:
        source = search[r["source_trial_id"]]
        assert r["kind"] == "replicate" and r["seed"] >= FIRST_SEED and r["seed"] != source["seed"]
        assert r["params"] == source["params"] and r["family"] == source["family"] and r["task"] == source["task"]
        run = smoke_study / "rerun" / r["task"] / r["trial_id"]
        assert json.loads((run / "config.json").read_text())["train"]["seed"] == r["seed"]
        assert json.loads((run / "summary.json").read_text())["epochs"] == 1
        assert pd.read_csv(run / "pairs.csv").n.min() >= REPLICATE_PAIRS_PER_CELL
    by_config = pd.DataFrame(reps).groupby(["task", "source_trial_id"]).seed.apply(sorted)
    assert all(s == [FIRST_SEED, FIRST_SEED + 1] for s in by_config)
    summary = pd.read_csv(smoke_study / "rerun" / "summary.csv")
    assert set(summary.n) == {2} and (summary.ci_low <= summary["mean"]).all()
    assert "n = 2" in (smoke_study.parent / "rerun.log").read_text()


@pytest.mark.parametrize("flags", [["--seeds", "0"], ["--epochs", "0"], ["--top", "0"]])
def test_rerun_bad_numbers_exit_2_and_write_nothing(smoke_study, flags, capsys, snapshot):
    before = snapshot(smoke_study)
    assert main(["study", "rerun", str(smoke_study), "--per-family", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flags[0] in err and "0" in err
    assert snapshot(smoke_study) == before


def test_rerun_of_a_study_without_an_epoch_exits_2(tmp_path, capsys):
    d = tmp_path / "empty"
    (d / "trials" / "sum").mkdir(parents=True)
    cfg = StudyConfig.load(REPO / "study" / "presets" / "smoke.yaml")
    (d / "study.yaml").write_text(cfg.to_yaml())
    assert main(["study", "rerun", str(d), "--per-family", "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no trial that reported an epoch" in err
    assert sorted(p.name for p in d.iterdir()) == ["study.yaml", "trials"]


def test_a_family_without_trials_is_named_and_skipped(smoke_study, tmp_path, capsys):
    d = tmp_path / "s"
    shutil.copytree(smoke_study / "trials", d / "trials")
    cfg = StudyConfig.load(smoke_study / "study.yaml")
    for p in (d / "trials" / "sum").glob("*/params.json"):
        if json.loads(p.read_text())["family"] == "classify":
            shutil.rmtree(p.parent)
    plan = make_plan(cfg, d, top=None, per_family=True, seeds=1, epochs=1)
    assert "sum: loss family 'classify' has no trial that reported an epoch; skipped" in capsys.readouterr().err
    families = {(p["task"], p["family"]) for p in plan["points"]}
    assert ("sum", "classify") not in families and ("product", "classify") in families
    assert len(families) == 5 and all(p["seed"] == FIRST_SEED for p in plan["points"])
