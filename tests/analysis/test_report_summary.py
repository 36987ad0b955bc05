"""The report's first screen on a synthetic study: every family tried is listed (also one ASHA stopped early),
replicated arms are ranked with not-separated groups lettered, the contents list links every section, and a
run folder the report leaves out because a file is damaged is named on stderr as well as in report.md."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from analysis.doc import slug
from analysis.report import build_report
from tests.report_fixtures import make_synthetic_study, write_run

# product: classify and mse overlap (one group), log is below both (its own group)
REPS = {("product", "log"): [0.2, 0.4, 0.3], ("product", "classify"): [0.6, 0.65, 0.7],
        ("product", "mse"): [0.58, 0.62, 0.66]}  # fmt: skip


pytestmark = pytest.mark.slow  # whole reports end to end, and a headless Chromium in a subprocess


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = make_synthetic_study(tmp_path_factory.mktemp("summary"), REPS)
    # sum: mse was tried only by trials ASHA stopped early (no test metrics), one of them damaged
    shutil.rmtree(d / "trials" / "sum" / "trial00")
    for tid, epochs in (("stop1", 1), ("stop2", 2)):
        run = write_run(d / "trials" / "sum" / tid, "sum", "mse", 7, 0.1, status="stopped",
                        info={"trial_id": tid, "kind": "search", "number": 9})  # fmt: skip
        s = pd.read_json(run / "summary.json", typ="series").to_dict()
        s = {k: v for k, v in s.items() if not k.startswith(("test/", "pairs/"))} | {"epochs": epochs}
        (run / "summary.json").write_text(pd.Series(s).to_json())
    broken = d / "trials" / "sum" / "broken"
    shutil.copytree(d / "trials" / "sum" / "trial01", broken)
    (broken / "config.json").write_text('{"data": ')  # torn
    return d, build_report(d, train_reference=False)


def summary_rows(out, task):
    t = pd.read_csv(out / "tables" / "summary.csv", dtype=str)
    return t[t.task == task].set_index("arm")


def test_a_family_only_stopped_early_is_listed_with_status_and_budget_never_ranked(report):
    _, out = report
    s = summary_rows(out, "sum")
    assert set(s.index) == {"mse", "log", "classify"}
    assert s.loc["mse", "status"].startswith("stopped at epoch 2")  # its furthest trial
    assert s.loc["mse", "rank"] == "-" and s.loc["mse", "test exact"] == "-"
    assert s.loc["mse", "valid exact"] == "0.100"
    assert list(s.index)[-1] == "mse"  # below every arm that finished


def test_replicated_arms_ranked_best_first_with_not_separated_groups(report):
    _, out = report
    s = summary_rows(out, "product")
    assert list(s.index) == ["classify", "mse", "log"]
    assert list(s["rank"]) == ["1 (A)", "2 (A)", "3 (B)"]
    assert s.loc["classify", "test exact"].startswith("0.650 [")
    assert s.loc["log", "runs"] == "3 seeds (replicates)"
    assert "9x9 cell" in s and "rarest bin (0)" in s  # product's rarest magnitude bin in this study


def test_first_screen_is_the_summary_with_a_contents_list_and_one_figure_per_task(report):
    _, out = report
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    head = md.split("\n## ")[0]
    assert "**Contents:**" in head and "[Summary](#summary)" in head and "[The comparison](#the-comparison)" in head
    assert md.index("## Summary") < md.index("## Overview") < md.index("## The comparison")
    for name in ("Summary", "The comparison", "The 9x9 question", "First-layer filters"):
        assert f"id='{slug(name)}'" in html and f"href='#{slug(name)}'" in html
    for task in ("sum", "product"):
        assert f"figures/summary_{task}.png" in md
    assert md.count("yardsticks (for") == 2  # said once per task, not once per family


def test_a_damaged_run_folder_is_named_on_stderr_and_in_the_report(report, capsys):
    d, _ = report
    out = build_report(d, d / "again", train_reference=False)
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("seqsum: warning: ")]
    assert len(warned) == 1 and "broken" in warned[0] and "config.json" in warned[0]
    assert "broken" in (out / "report.md").read_text()


def _chromium_or_skip() -> None:
    from analysis.browser import find_chromium

    if find_chromium() is None:
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure, not a skip
            pytest.fail("no chromium in CI (.ci/run installs it with apt-get)")
        pytest.skip("no chromium here (apt-get install chromium)")


def test_the_report_opens_in_headless_chromium_with_every_image_and_no_console_error(report, tmp_path):
    from analysis.browser import check_page

    _chromium_or_skip()
    _, out = report
    shot = tmp_path / "first_screen.png"
    c = check_page(out / "index.html", shot)
    assert c.title.startswith("Sum vs product") and c.errors == []
    n_figures = (out / "report.md").read_text().count("](figures/")
    assert len(c.images) == n_figures >= 3 and all(ok for _, ok in c.images)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    from analysis.browser import check_page
    from analysis.browser import main as browser

    _chromium_or_skip()
    page = tmp_path / "index.html"
    page.write_text("<title>t</title><img alt='gone' src='missing.png'><script>console.error('boom')</script>")
    c = check_page(page)
    assert c.images == [("gone", False)] and any("boom" in e for e in c.errors) and not c.ok
    assert browser([str(page)]) == 1
