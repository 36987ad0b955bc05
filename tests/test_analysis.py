"""analysis/: the report of a study folder, the ceiling classifier, first-layer filters, bad input.

Two studies: one real smoke study written by `seqsum study launch` (which writes its report at its
end), and a small one built by hand from real `seqsum train --smoke` runs as docs/STUDY_LAYOUT.md
lays it out (params.json, trials.csv, a real Optuna RDB optuna.db, rerun/ with its summary.csv),
which the bad-input and partial-report tests copy and break.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from analysis import tables
from analysis.filters import random_similarity, similarity
from analysis.load import load_study, optuna_importances
from analysis.report import SECTIONS, build_report
from seqsum.cli import main

NAME = "fixture"
# (task, loss, extra flags): the product in two loss families and two width buckets.
TRIALS = [("sum", "mse", []), ("product", "log", ["--gru-hidden", "48"]), ("product", "classify", [])]


def smoke_run(out: Path, task: str, loss: str, *extra: str) -> dict:
    argv = ["train", "--smoke", "--epochs", "1", "--task", task, "--loss", loss, "--out", str(out), *extra]
    assert main(argv) in (0, 1)
    return json.loads((out / "summary.json").read_text())


def make_study(root: Path) -> Path:
    """A study folder as `seqsum study launch` lays it out, from real smoke runs."""
    d = root / NAME
    (d / "trials").mkdir(parents=True)
    (d / "study.yaml").write_text(
        f"what: {{tasks: [sum, product]}}\nhow: {{metric: valid/exact, mode: max}}\n"
        f"where: {{storage: {root}, name: {NAME}}}\n"
    )
    storage = optuna.storages.RDBStorage(f"sqlite:///{d / 'optuna.db'}")
    dists = {
        "loss": optuna.distributions.CategoricalDistribution(["mse", "log", "classify"]),
        "gru_width": optuna.distributions.IntDistribution(8, 64, log=True),
    }
    rows, studies = (
        [],
        {
            t: optuna.create_study(study_name=f"{NAME}/{t}", storage=storage, direction="maximize")
            for t in ("sum", "product")
        },
    )
    for number, (task, loss, extra) in enumerate(TRIALS):
        trial_id = f"t{number:02d}{task[0]}"
        run = d / "trials" / task / trial_id
        summary = smoke_run(run, task, loss, *extra)
        params = {"loss": loss, "gru_width": int(extra[1]) if extra else 16}
        (run / "params.json").write_text(
            json.dumps(
                {
                    "trial_id": trial_id,
                    "task": task,
                    "number": number,
                    "params": params,
                    "node_ip": "127.0.0.1",
                    "hostname": "test",
                    "status": summary["status"],
                }
            )
        )
        studies[task].add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=summary["valid/exact"])
        )
        rows.append(
            {
                "task": task,
                "trial_id": trial_id,
                "status": summary["status"],
                **{f"param/{k}": v for k, v in params.items()},
                **{k: v for k, v in summary.items() if k != "status"},
            }
        )
    storage.engine.dispose()
    pd.DataFrame(rows).to_csv(d / "trials.csv", index=False)
    # Reruns of the product's classify config: two more seeds.
    reruns = []
    for seed in (1, 2):
        s = smoke_run(d / "rerun" / "product" / "1-t02p" / f"seed={seed}", "product", "classify", "--seed", str(seed))
        reruns.append(s)
    stats = pd.DataFrame(reruns)[["test/exact", "test/mae"]].agg(["mean", "std", "count"]).T
    pd.DataFrame(
        {
            "task": "product",
            "trial_id": "t02p",
            "metric": stats.index,
            "mean": stats["mean"].values,
            "std": stats["std"].values,
            "n": stats["count"].values,
        }
    ).to_csv(d / "rerun" / "summary.csv", index=False)
    return d


def snapshot(d: Path, skip: str = "report") -> dict[str, str]:
    """sha1 of every file outside d/skip."""
    return {
        str(p.relative_to(d)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.relative_to(d).parts[0] != skip
    }


def check_pngs(report: Path) -> None:
    """Every figure is a PNG of real size; every image the HTML shows decodes; every file it links exists."""
    figures = sorted((report / "figures").glob("*.png"))
    assert figures
    for f in figures:
        assert f.stat().st_size > 8_000, f
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200, f
    html = (report / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN: opens offline
    srcs, hrefs = re.findall(r"src='([^']+)'", html), re.findall(r"href='([^']+)'", html)
    assert len(srcs) == len(hrefs) >= 6
    for src in srcs:  # embedded: the HTML alone shows every figure
        assert src.startswith("data:image/png;base64,")
    for href in hrefs:  # and links the file beside it
        assert (report / href).is_file() and href.startswith("figures/"), href
    md = (report / "report.md").read_text()
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report / rel).is_file(), rel


def check_sections(report: Path) -> None:
    md, html = (report / "report.md").read_text(), (report / "index.html").read_text()
    for name in SECTIONS:
        assert f"## {name}" in md and f"<h2>{name}</h2>" in html, name


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """The one real smoke study of this file: `seqsum study launch --preset smoke`, report included."""
    root = tmp_path_factory.mktemp("real")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    argv = [
        sys.executable,
        "-m",
        "seqsum",
        "study",
        "launch",
        "--preset",
        "smoke",
        "--storage",
        str(root),
        "--name",
        "smoke",
    ]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "report: " in r.stdout, r.stdout[-3000:]
    return root / "smoke"


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("studies"))


@pytest.fixture(scope="session")
def report(study, smoke_study) -> Path:
    # Same data split and first-layer shape as the smoke study: its cached classifier serves here too.
    shutil.copytree(smoke_study / "report" / "ceiling", study / "report" / "ceiling")
    before = snapshot(study)
    out = build_report(study)
    assert snapshot(study) == before, "the report changed files of the study outside report/"
    return out


def test_smoke_study_report_has_every_section(smoke_study):
    """The report `seqsum study launch` wrote at its end, from a real study."""
    out = smoke_study / "report"
    check_sections(out)
    check_pngs(out)
    md = (out / "report.md").read_text()
    trials = pd.read_csv(smoke_study / "trials.csv", dtype={"trial_id": str})
    best = tables.rank(trials, "valid/exact", "max").groupby("task").head(1)  # ties: lower valid MAE
    for _, r in best.iterrows():
        assert f"{r.task}: best trial" in md and f"test exact {r['test/exact']:.3f} vs ceiling" in md
    assert (out / "ceiling").is_dir() and list((out / "ceiling").glob("*/classifier.pt"))


def test_smoke_study_second_report_is_cached_and_touches_nothing_else(smoke_study, capsys):
    before = snapshot(smoke_study)
    cached = {p: p.stat().st_mtime_ns for p in (smoke_study / "report" / "ceiling").rglob("*")}
    assert main(["report", str(smoke_study)]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (smoke_study / "report" / "ceiling").rglob("*")} == cached
    run = next((smoke_study / "trials" / "product").iterdir())
    assert main(["filters", str(run)]) == 0  # default: into the study's report/figures, cached classifier
    assert "matched |cosine|" in capsys.readouterr().out
    check_pngs(smoke_study / "report")
    assert (smoke_study / "report" / "figures" / f"filters-product-{run.name}.png").is_file()
    assert snapshot(smoke_study) == before, "the report changed files of the study outside report/"


def test_report_has_every_section_figure_and_table(report):
    check_sections(report)
    check_pngs(report)
    names = {p.stem for p in (report / "figures").glob("*.png")}
    assert {
        "error_by_target",
        "magnitude_loss",
        "magnitude_bucket",
        "pairs_sum",
        "pairs_product",
        "ceiling",
        "best_so_far",
        "learning_curves",
        "filters_sum",
        "filters_product",
    } <= names
    for name in (
        "trials",
        "epochs",
        "per_target",
        "by_bin",
        "pairs",
        "pair_verdicts",
        "ceiling",
        "top_configs",
        "filters",
    ):
        assert len(pd.read_csv(report / "tables" / f"{name}.csv")) > 0, name


def test_sentences_come_from_the_numbers(study, report):
    md = (report / "report.md").read_text()
    trials = pd.read_csv(report / "tables" / "trials.csv", dtype={"trial_id": str})
    for _, r in trials.iterrows():  # one trial per task and loss family: each is its family's best
        assert f"{r.task}, {r.loss} ({r.trial_id}): exact {r['test/exact']:.2f} vs ceiling" in md
    pairs = pd.read_csv(study / "trials" / "product" / "t02p" / "pairs.csv")
    nine = pairs[(pairs.a == 9) & (pairs.b == 9)].iloc[0]
    assert f"product, classify (t02p): 9x9: {round(nine.exact * nine.n)}/{int(nine.n)} correct" in md
    ceiling = json.loads(next((report / "ceiling").glob("*/ceiling.json")).read_text())
    assert f"p = {ceiling['accuracy']:.3f}" in md
    assert ceiling["accuracy"] > 0.9  # the simple CNN reads single digits well
    assert "K=4: " + f"{ceiling['accuracy'] ** 4:.2f}" in md
    assert "rerun test/exact" in md and "±" in md  # the rerun summary beside the top configs


def test_cli_report_without_the_classifier_and_filters(study, report, tmp_path, capsys):
    assert main(["report", str(study), "--out", str(tmp_path / "r"), "--no-ceiling"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no ceiling (training the simple CNN was turned off and none is cached)" in md
    assert "## The ceiling\n\nNo ceiling" in md
    check_sections(tmp_path / "r")
    check_pngs(tmp_path / "r")
    png = tmp_path / "f.png"
    assert (
        main(["filters", str(study / "trials" / "sum" / "t00s"), "--out", str(png), "--cache", str(report / "ceiling")])
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"matched \|cosine\| to the simple CNN's \d\.\d\d vs \d\.\d\d ± \d\.\d\d for random", out)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 300


@pytest.mark.parametrize(
    "args, message",
    [
        (["filters", "{tmp}/nope"], "does not exist"),
        (["filters", "{tmp}"], "has no checkpoint.pt"),
        (["filters", "{study}/trials/sum/t00s", "--out", "{tmp}/f.jpg"], "must be a .png file"),
        (["report", "{tmp}/nope"], "does not exist"),
        (["report", "{tmp}"], "is not a study folder"),
        (["report", "{study}/trials.csv"], "is not a folder"),
        (["report", "{study}", "--out", "{study}/study.yaml"], "exists and is not a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(study, tmp_path, capsys, args, message):
    before = snapshot(study, skip="")
    argv = [a.format(tmp=tmp_path, study=study) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqsum: error: ") and message in err and len(err.splitlines()) == 1, err
    assert snapshot(study, skip="") == before


def test_study_with_no_finished_trial_says_so_plainly(study, tmp_path):
    d = tmp_path / NAME
    shutil.copytree(study, d, ignore=shutil.ignore_patterns("report", "rerun", "summary.json", "checkpoint.pt"))
    before = snapshot(d)
    out = build_report(d)
    assert snapshot(d) == before
    md = (out / "report.md").read_text()
    assert "No trial has finished yet (3 trial folders, none with test metrics)" in md
    assert md.count("Skipped: no finished trial.") == len(SECTIONS) - 1
    check_sections(out)


def test_missing_rerun_folder_gives_an_honest_partial_report(study, report, tmp_path):
    d = tmp_path / NAME
    shutil.copytree(study, d, ignore=shutil.ignore_patterns("rerun"))
    before = snapshot(d)
    out = build_report(d, train_ceiling=False)  # the ceiling cache came along with report/
    assert snapshot(d) == before
    md = (out / "report.md").read_text()
    assert "no reruns (rerun/ is missing or empty)" in md and "(no reruns: one seed each)" in md
    assert "rerun test/exact" not in md and "p = 0.9" in md
    # rerun folders without their summary.csv: the statistics come from the folders
    shutil.copytree(study / "rerun", d / "rerun", ignore=shutil.ignore_patterns("summary.csv"))
    s = load_study(d)
    assert "rerun/summary.csv is missing: rerun statistics computed from the rerun folders" in s.notes
    top = tables.top_configs(s).set_index("trial_id")
    assert top.loc["t02p", "rerun test/exact"].endswith("(n=2)") and "±" in top.loc["t02p", "rerun test/exact"]


def test_importance_from_optuna_db(tmp_path):
    d = tmp_path / "imp"
    d.mkdir()
    storage = f"sqlite:///{d / 'optuna.db'}"
    for task in ("sum", "product"):
        s = optuna.create_study(
            study_name=f"imp/{task}",
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        s.optimize(
            lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True) * 100 + 1e-4 * t.suggest_int("width", 8, 64),
            n_trials=12 if task == "sum" else 2,
        )
    imp, skipped = optuna_importances(load_study(d))
    assert set(imp[imp.task == "sum"].param) == {"lr", "width"}
    assert imp[imp.task == "sum"].set_index("param").importance["lr"] > 0.5
    assert skipped == ["product: parameter importance needs >= 4 complete trials, the Optuna study has 2"]


def test_magnitude_bins_and_weighted_means():
    t = pd.Series([0, 1, 9, 10, 99, 100, 999, 1000, 6561])
    assert list(tables.magnitude_bin("product", t)) == [
        "0",
        "1-9",
        "1-9",
        "10-99",
        "10-99",
        "100-999",
        "100-999",
        ">=1000",
        ">=1000",
    ]
    assert list(tables.magnitude_bin("sum", pd.Series([0, 9, 10, 29, 30, 36]))) == [
        "0-9",
        "0-9",
        "10-19",
        "20-29",
        ">=30",
        ">=30",
    ]
    pt = pd.DataFrame(
        {
            "task": "sum",
            "selection": "loss",
            "group": "mse",
            "trial_id": "x",
            "target": [3, 5, 12],
            "n": [1, 3, 2],
            "exact": [1.0, 0.0, 0.5],
            "mae": [0.0, 2.0, 1.0],
            "rel_err": [0.0, 0.4, 0.1],
        }
    )
    b = tables.by_bin(pt).set_index("bin")
    assert (
        b.loc["0-9", "n"] == 4
        and b.loc["0-9", "exact"] == pytest.approx(0.25)
        and b.loc["0-9", "mae"] == pytest.approx(1.5)
    )
    assert b.loc["10-19", "exact"] == pytest.approx(0.5)


def test_pair_verdict_counts_the_9x9_cell():
    grid = pd.DataFrame(
        [
            {
                "task": "product",
                "group": "mse",
                "trial_id": "x",
                "a": a,
                "b": b,
                "n": 4,
                "exact": 0.25 if (a, b) == (9, 9) else 1.0,
            }
            for a in range(10)
            for b in range(10)
        ]
    )
    v = tables.pair_verdicts(grid).iloc[0]
    assert v.verdict.startswith("9x9: 1/4 correct; whole grid 0.99 exact; 1x9: 4/4; weakest row a=9")


def test_filter_similarity_finds_a_permuted_sign_flipped_bank():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5, 5))
    b = -a[[3, 1, 0, 5, 4, 2]] * 2.0 + 0.3  # permuted, sign-flipped, scaled, shifted
    score, match, cos = similarity(a, b)
    assert score == pytest.approx(1.0) and list(match) == [2, 1, 5, 0, 4, 3] and np.allclose(cos, -1)
    mean, std = random_similarity(a, b)
    assert mean < 0.7 and std > 0
