"""analysis/: the report of a real smoke study (replicated), of a hand-made one, filters, bad input.

Two studies: the session's real smoke study (tests/conftest.py `smoke_study`: launched, then rerun with
--per-family --seeds 2 --epochs 1), copied before a report is written into it; and a small one built by
hand from real `seqsum train --smoke` runs (params.json, trials.csv, a real Optuna RDB optuna.db,
replicates in an older layout), which the bad-input and partial-report tests copy and break.
Synthetic studies for the tables and the report folder: tests/analysis/test_report_*.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from PIL import Image

from analysis.doc import slug
from analysis.filters import random_similarity, similarity
from analysis.load import load_study
from analysis.optuna_db import optuna_importances
from analysis.report import CACHE, SECTIONS, build_report
from seqsum.choices import LOSSES
from seqsum.cli import main
from seqsum.config import RunConfig
from seqsum.data import eval_sets, load_pools

NAME = "fixture"
end_to_end = pytest.mark.slow  # the hand-made study: real `seqsum train` runs, and whole reports
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
    # Replicates in an older layout: run folders under rerun/ whose identity is only in config.json.
    for seed in (1, 2):
        smoke_run(d / "rerun" / "product" / f"old-{seed}", "product", "classify", "--seed", str(seed))
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
    anchors = [h for h in hrefs if h.startswith("#")]  # the contents list: each names a heading's id
    assert anchors and all(f"id='{a[1:]}'" in html for a in anchors)
    hrefs = [h for h in hrefs if not h.startswith("#")]
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
        assert f"## {name}" in md and f"<h2 id='{slug(name)}'>{name}</h2>" in html, name


@pytest.fixture(scope="session")
def smoke_report(smoke_study, tmp_path_factory) -> Path:
    """The report of a copy of the real smoke study (the fixture itself stays as it is)."""
    d = tmp_path_factory.mktemp("smoke-copy") / "smoke"
    shutil.copytree(smoke_study, d)
    before = snapshot(d)
    out = build_report(d)
    assert snapshot(d) == before, "the report changed files of the study outside report/"
    return out


def test_smoke_study_replicated_comparison(smoke_study, smoke_report):
    """The comparison on a real smoke study: comparison.csv, intervals, pair cells, baselines."""
    out = smoke_report
    check_sections(out)
    check_pngs(out)
    cmp = pd.read_csv(out / "tables" / "comparison.csv")
    assert list(cmp.columns) == ["task", "family", "metric", "n_seeds", "mean", "ci_low", "ci_high"]
    for task in ("sum", "product"):
        c = cmp[cmp.task == task]
        assert set(c.family) == set(LOSSES), task  # every family of the search space replicated
        assert {"test/exact", "test/mae", "test/mse", "pairs/9x9/exact"} <= set(c.metric)
    assert set(cmp.n_seeds) == {2} and (cmp.ci_low <= cmp["mean"] + 1e-12).all() and cmp.ci_low.notna().all()
    for name in ("per_length", "by_bin"):
        t = pd.read_csv(out / "tables" / f"{name}.csv")
        assert {"ci_low", "ci_high", "reference", "share_of_reference"} <= set(t.columns), name
        assert t.ci_low.notna().all() and set(t.family) == set(LOSSES), name
    pairs = pd.read_csv(out / "tables" / "pairs.csv")
    assert len(pairs) == 2 * 3 * 100 and (pairs.n / pairs.n_seeds >= 200).all()
    assert {"reference", "reference_ci_low", "below_reference"} <= set(pairs.columns)
    base = pd.read_csv(out / "tables" / "baselines.csv")
    assert set(base.predictor) == {"most_frequent", "train_mean", "reference", "strong_reference"}
    assert set(base.task) == {"sum", "product"}
    md = (out / "report.md").read_text()
    assert "over 2 seeds" in md and "± 0" not in md and "ceiling" not in md.lower()
    assert re.search(r"(beats|not separated)", md)
    runs = load_study(smoke_study).replicates
    assert set(runs.seed) & set(load_study(smoke_study).trials.seed) == set()  # fresh seeds


def test_reference_reads_the_very_test_sequences_of_the_run(smoke_study):
    """eval_sets regenerates exactly the test sequences a replicate was scored on (its predictions.parquet)."""
    run = Path(load_study(smoke_study).replicates.run_dir.iloc[0])
    cfg = RunConfig.load(run / "config.json")
    test = eval_sets(load_pools(cfg.data), cfg.data).test
    preds = pd.read_parquet(run / "predictions.parquet")
    assert len(preds) == len(test)
    assert preds.length.tolist() == test.lengths.tolist()
    assert preds.digits.map(list).tolist() == [d[:n] for d, n in zip(test.digits.tolist(), test.lengths.tolist())]


def test_second_report_reads_the_cache_and_touches_nothing_else(smoke_report, capsys):
    d = smoke_report.parent
    before = snapshot(d)
    cache = {p: p.stat().st_mtime_ns for p in (smoke_report / CACHE).rglob("*")}
    assert cache and main(["report", str(d)]) == 0
    assert "(cached)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (smoke_report / CACHE).rglob("*")} == cache
    run = next((d / "trials" / "product").iterdir())
    assert main(["filters", str(run)]) == 0  # default: into the study's report/figures, cached classifier
    assert "matched |cosine|" in capsys.readouterr().out
    check_pngs(smoke_report)
    assert (smoke_report / "figures" / f"filters-product-{run.name}.png").is_file()
    assert snapshot(d) == before, "the report changed files of the study outside report/"


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("studies"))


@pytest.fixture(scope="session")
def report(study) -> Path:
    before = snapshot(study)
    out = build_report(study)
    assert snapshot(study) == before, "the report changed files of the study outside report/"
    return out


@end_to_end
def test_hand_made_study_with_older_replicates(study, report):
    check_sections(report)
    check_pngs(report)
    names = {p.stem for p in (report / "figures").glob("*.png")}
    assert {"magnitude", "error_by_target", "per_length", "pairs_sum", "pairs_product", "best_so_far",
            "learning_curves", "filters_sum", "filters_product"} <= names  # fmt: skip
    for name in ("trials", "epochs", "per_target", "by_bin", "pairs", "pair_verdicts", "baselines", "comparison",
                 "per_length", "top_configs", "filters"):  # fmt: skip
        assert len(pd.read_csv(report / "tables" / f"{name}.csv")) > 0, name
    s = load_study(study)
    assert len(s.replicates) == 2 and set(s.replicates.family) == {"classify"} and set(s.replicates.seed) == {1, 2}
    cmp = pd.read_csv(report / "tables" / "comparison.csv").set_index(["task", "family", "metric"])
    assert cmp.loc[("product", "classify", "test/exact"), "n_seeds"] == 2  # product: the replicates
    assert cmp.loc[("sum", "mse", "test/exact"), "n_seeds"] == 1  # sum: no replicates, its best trial
    md = (report / "report.md").read_text()
    assert "No replicates for sum" in md and "(n = 1 seed)" in md
    ref = json.loads(next((report / CACHE).glob("*/reference.json")).read_text())
    assert ref["accuracy"] > 0.85 and f"accuracy {ref['accuracy']:.3f}" in md
    pairs = pd.read_csv(study / "trials" / "product" / "t02p" / "pairs.csv")
    assert int(pairs.n.iloc[0]) >= 1


@end_to_end
def test_cli_report_without_the_classifier_and_filters(study, report, tmp_path, capsys):
    assert main(["report", str(study), "--out", str(tmp_path / "r"), "--no-reference"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no reference (training it was turned off and none is cached)" in md
    assert "most frequent target" in md  # the constant baselines are there without the classifier
    check_sections(tmp_path / "r")
    check_pngs(tmp_path / "r")
    png = tmp_path / "f.png"
    argv = ["filters", str(study / "trials" / "sum" / "t00s"), "--out", str(png), "--cache", str(report / CACHE)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"matched \|cosine\| to the reference classifier's \d\.\d\d vs \d\.\d\d", out)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 300


@end_to_end
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
        (["report", "{study}", "--out", "{study}/trials"], "seqsum did not write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(study, tmp_path, capsys, args, message):
    before = snapshot(study, skip="")
    argv = [a.format(tmp=tmp_path, study=study) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqsum: error: ") and message in err and len(err.splitlines()) == 1, err
    assert snapshot(study, skip="") == before


@end_to_end
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


@end_to_end
def test_missing_rerun_folder_gives_an_honest_partial_report(study, report, tmp_path):
    d = tmp_path / NAME
    shutil.copytree(study, d, ignore=shutil.ignore_patterns("rerun"))
    before = snapshot(d)
    out = build_report(d, train_reference=False)  # the reference cache came along with report/
    assert snapshot(d) == before
    md = (out / "report.md").read_text()
    assert "no replicates (rerun/ is missing or empty)" in md and "No replicates for sum, product" in md
    assert " beats " not in md and "accuracy 0." in md


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
    imp, skipped = optuna_importances(load_study(d).optuna)
    assert set(imp[imp.task == "sum"].param) == {"lr", "width"}
    assert imp[imp.task == "sum"].set_index("param").importance["lr"] > 0.5
    assert skipped == ["product: parameter importance needs >= 4 complete trials, the Optuna study has 2"]


def test_filter_similarity_finds_a_permuted_sign_flipped_bank():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 5, 5))
    b = -a[[3, 1, 0, 5, 4, 2]] * 2.0 + 0.3  # permuted, sign-flipped, scaled, shifted
    score, match, cos = similarity(a, b)
    assert score == pytest.approx(1.0) and list(match) == [2, 1, 5, 0, 4, 3] and np.allclose(cos, -1)
    mean, std = random_similarity(a, b)
    assert mean < 0.7 and std > 0


def test_replicates_of_several_configs_of_one_family_are_compared_as_arms():
    import pandas as pd

    from analysis.scores import arms

    def rep(task, source, family, **params):
        return {"task": task, "source_trial_id": source, "family": family, "seed": 1000, "params": params}

    reps = pd.DataFrame(
        [
            rep("sum", "a", "classify", **{"train.loss": "classify", "data.balance": "none", "model.outputs": "last"}),
            rep(
                "sum", "b", "classify", **{"train.loss": "classify", "data.balance": "target", "model.outputs": "last"}
            ),
            rep(
                "sum",
                "c",
                "classify",
                **{"train.loss": "classify", "data.balance": "none", "model.outputs": "every_step"},
            ),
            rep("sum", "d", "mse", **{"train.loss": "mse", "train.lr": 0.001}),
            rep("sum", "e", "mse", **{"train.loss": "mse", "train.lr": 0.01}),
            rep("product", "f", "log", **{"loss": "log"}),
        ]
    )
    assert list(arms(reps).family) == [
        "classify",  # the most common values: the control keeps the family's name
        "classify (data.balance=target)",
        "classify (model.outputs=every_step)",
        "mse (train.lr=0.001)",  # a tie: every arm is named
        "mse (train.lr=0.01)",
        "log",  # one config per family (study rerun --per-family): unchanged
    ]
