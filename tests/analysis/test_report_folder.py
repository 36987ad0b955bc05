"""The report on synthetic studies: its folder (marker, only its own files), damaged caches, n = 1, the tables.

The reference classifier is trained once per session (mnist5k, the synthetic runs' 4x5x5 conv stack) and
its cache copied into each report folder, so every test but one reads it back in milliseconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import CACHE, MARKER, build_report
from seqsum.cli import main
from tests.report_fixtures import make_synthetic_study

pytestmark = pytest.mark.slow  # every test writes a whole report (tables, figures, HTML) end to end

REPS = {("product", "log"): [0.2, 0.4, 0.3], ("product", "classify"): [0.6, 0.65, 0.7]}


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A report folder's reference cache, from one real report of a synthetic study."""
    d = make_synthetic_study(tmp_path_factory.mktemp("cache"), REPS)
    build_report(d)
    return d / "report" / CACHE


def study_with_cache(root: Path, cache: Path, replicates=REPS) -> Path:
    d = make_synthetic_study(root, replicates)
    shutil.copytree(cache, d / "report" / CACHE)
    return d


def test_report_folder_of_someone_else_is_refused_and_untouched(tmp_path, cache, capsys):
    d = study_with_cache(tmp_path, cache)
    mine = tmp_path / "notes"
    (mine / "figures").mkdir(parents=True)
    (mine / "figures" / "holiday.png").write_bytes(b"not a report")
    (mine / "todo.txt").write_text("buy milk")
    assert main(["report", str(d), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqsum: error: ") and "seqsum did not write" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in mine.rglob("*")) == ["figures", "holiday.png", "todo.txt"]
    assert (mine / "figures" / "holiday.png").read_bytes() == b"not a report"


def test_a_second_report_replaces_only_its_own_files(tmp_path, cache):
    d = study_with_cache(tmp_path, cache)
    out = build_report(d)
    listed = set(pd.read_json(out / MARKER, typ="series")["files"])
    assert {"index.html", "report.md", "tables/comparison.csv", "figures/magnitude.png"} <= listed
    # a user's files beside the report's, and an old file of the report that it no longer writes
    (out / "figures" / "mine.png").write_bytes(b"user")
    (out / "tables" / "mine.csv").write_text("a\n1\n")
    (out / "tables" / "old.csv").write_text("x\n")
    marker = (out / MARKER).read_text().replace('"index.html"', '"index.html", "tables/old.csv"')
    (out / MARKER).write_text(marker)
    build_report(d)
    assert (out / "figures" / "mine.png").read_bytes() == b"user" and (out / "tables" / "mine.csv").is_file()
    assert not (out / "tables" / "old.csv").exists()  # the report's own, no longer written
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary files


@pytest.mark.parametrize("name", ["reference.json", "classifier.pt", "test_predictions.npz"])
def test_damaged_reference_cache_is_rebuilt_or_named_in_one_line(tmp_path, cache, name, capsys):
    d = study_with_cache(tmp_path, cache)
    damaged = next((d / "report" / CACHE).glob(f"*/{name}"))
    damaged.write_bytes(damaged.read_bytes()[:30])
    # training off: one line naming the file, in the report's notes; the rest of the report is written
    assert main(["report", str(d), "--no-reference"]) == 0
    md = (d / "report" / "report.md").read_text()
    line = next(x for x in md.splitlines() if "no reference" in x and name in x)
    assert str(damaged) in line
    assert "most frequent target" in md  # the constant baselines do not need the classifier
    # training on: rebuilt, and said so
    build_report(d)
    md = (d / "report" / "report.md").read_text()
    assert "reference cache rebuilt" in md and str(damaged) in md
    assert "Traceback" not in capsys.readouterr().err


def test_one_seed_is_n_1_never_plus_minus_0(tmp_path, cache):
    out = build_report(study_with_cache(tmp_path, cache, replicates={}))
    md = (out / "report.md").read_text()
    assert "(n = 1 seed)" in md and "± 0" not in md and "±0" not in md
    assert "not separated (one seed" in md and " beats " not in md
    assert "Wilson [" in md  # a single run's exact carries its Wilson interval
    cmp = pd.read_csv(out / "tables" / "comparison.csv")
    assert set(cmp.n_seeds) == {1} and (cmp.ci_low == cmp["mean"]).all() and (cmp.ci_high == cmp["mean"]).all()


def test_comparison_tables_and_separated_sentences(tmp_path, cache):
    out = build_report(study_with_cache(tmp_path, cache))
    cmp = pd.read_csv(out / "tables" / "comparison.csv")
    assert list(cmp.columns) == ["task", "family", "metric", "n_seeds", "mean", "ci_low", "ci_high"]
    prod = cmp[cmp.task == "product"].set_index(["family", "metric"])
    assert {"test/exact", "test/mae", "test/mse", "pairs/9x9/exact"} <= set(prod.index.get_level_values(1))
    assert prod.loc[("classify", "test/exact"), "n_seeds"] == 3
    assert prod.loc[("classify", "test/exact"), "mean"] == pytest.approx(0.65)
    md = (out / "report.md").read_text()
    assert "classify beats log on test/exact" in md  # [0.6, 0.7] vs [0.2, 0.4]: separated
    for name in ("per_length", "by_bin", "pairs", "baselines"):
        t = pd.read_csv(out / "tables" / f"{name}.csv")
        assert {"ci_low", "ci_high"} <= set(t.columns) and len(t) and (t.ci_low <= t.ci_high + 1e-12).all(), name
    base = pd.read_csv(out / "tables" / "baselines.csv")
    assert set(base.predictor) == {"most_frequent", "train_mean", "reference", "strong_reference"}
    assert set(base.scope) == {"all", "length", "bin"}
    lengths = pd.read_csv(out / "tables" / "per_length.csv")
    assert {"reference", "most_frequent", "train_mean", "share_of_reference"} <= set(lengths.columns)
    html = (out / "index.html").read_text()
    for fig in ("magnitude", "per_length", "pairs_product", "error_by_target"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 8000 and f"figures/{fig}.png" in html
        assert f"figures/{fig}.png" in (out / "report.md").read_text()
    assert "ceiling" not in (out / "report.md").read_text().lower()


def test_a_report_written_before_the_marker_is_adopted_and_kept(tmp_path, cache):
    d = study_with_cache(tmp_path, cache)
    old = d / "report"
    (old / "tables").mkdir()
    (old / "figures").mkdir()
    (old / "report.md").write_text("# old report\n")
    (old / "tables" / "ceiling.csv").write_text("a\n1\n")
    (old / "figures" / "ceiling.png").write_bytes(b"png")
    build_report(d)
    assert (old / MARKER).is_file() and "old report" not in (old / "report.md").read_text()
    assert (old / "tables" / "ceiling.csv").is_file() and (old / "figures" / "ceiling.png").is_file()  # not ours
