"""An arm measured in a study of its own joins docs/RESULTS.md's comparison (analysis.results_tables.merge):
its rows are added to every table, the strong reference it brings fills the older collection's rows, and
benchmarks/results.py --collect refuses an arm scored on other test sequences (one line, exit 2, nothing
written). The base is the committed docs/data/seed/; the arm is built from it here."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.results_tables import TABLES, merge, read_tables, same_sequences
from tests.helpers import REPO

SEED = REPO / "docs" / "data" / "seed"
ARM = "classify+exact"


def _arm_tables(strong: float = 0.97) -> dict[str, pd.DataFrame]:
    """docs/data/seed's classify rows as the arm's family (exact + 0.1), with a strong reference everywhere."""
    t = read_tables(SEED)
    out = {}
    for name, df in t.items():
        df = df[df.family == "classify"] if "family" in df else df[df.families.str.contains("classify")]
        df = df.assign(**({"family": ARM} if "family" in df else {"families": ARM}))
        if name == "comparison":
            df = df.assign(**{c: df[c] + 0.1 * (df.metric == "test/exact") for c in ("mean", "ci_low", "ci_high")})
        if name in ("by_bin", "per_length"):
            df = df.assign(strong_reference=strong, strong_reference_ci_low=strong - 0.01,
                           strong_reference_ci_high=strong + 0.01)  # fmt: skip
        if name == "baselines":
            strong_rows = df[df.predictor == "reference"].assign(predictor="strong_reference", exact=strong)
            df = pd.concat([df, strong_rows], ignore_index=True)
        out[name] = df.reset_index(drop=True)
    return out


def test_an_arm_merges_into_the_comparison_with_the_strong_reference_filled():
    base, arm = read_tables(SEED), _arm_tables()
    assert same_sequences(base, arm) == []
    merged = merge(base, arm)
    c = merged["comparison"]
    assert set(c.family) == {"mse", "log", "classify", ARM}
    bins = merged["by_bin"]
    assert bins.strong_reference.notna().all()  # the seed families' rows got the arm's strong reference
    seed_rows = bins[bins.family == "mse"]
    assert (seed_rows.share_of_strong_reference == seed_rows.exact / 0.97).all()
    assert (merged["baselines"].predictor == "strong_reference").sum() == (
        arm["baselines"].predictor == "strong_reference"
    ).sum()
    # the older collection's yardsticks stay as they were (not duplicated)
    assert len(merged["baselines"][merged["baselines"].predictor == "reference"]) == len(
        base["baselines"][base["baselines"].predictor == "reference"]
    )


def test_other_test_sequences_are_named():
    base, arm = read_tables(SEED), _arm_tables()
    b = arm["baselines"]
    arm["baselines"] = b.assign(exact=b.exact.where(b.predictor != "reference", b.exact + 0.01))
    assert same_sequences(base, arm)  # the run-stack reference differs: not the same sequences


def _generator():
    spec = importlib.util.spec_from_file_location("results_doc", REPO / "benchmarks" / "results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _study(folder: Path, tables: dict[str, pd.DataFrame]) -> Path:
    (folder / "report" / "tables").mkdir(parents=True)
    for name in TABLES:
        tables[name].to_csv(folder / "report" / "tables" / f"{name}.csv", index=False)
    return folder


def test_collect_adds_the_arm_to_results_and_refuses_other_sequences(tmp_path, monkeypatch, capsys):
    gen = _generator()
    data = tmp_path / "data"
    shutil.copytree(SEED, data / "seed")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    for name, value in (("DATA", data), ("OUT", tmp_path / "RESULTS.md"), ("FINDINGS", tmp_path / "FINDINGS.md"),
                        ("FIGURES", tmp_path / "figures"), ("PERFORMANCE", tmp_path / "PERFORMANCE.md"),
                        ("README", readme), ("ROOT", tmp_path)):  # fmt: skip
        monkeypatch.setattr(gen, name, value)
    assert gen.main([]) == 0
    assert "**The structured arm is not measured yet.**" in (tmp_path / "RESULTS.md").read_text()
    args = ["--as", "seed-structure", "--command", "seqsum study launch --preset seed-compare-structure",
            "--design", "classify+exact on the seed stack.", "--seeds", "1000-1004", "--budget", "5"]  # fmt: skip

    bad = _arm_tables()
    bad["baselines"] = bad["baselines"].assign(n=bad["baselines"].n + 1)
    with pytest.raises(SystemExit) as e:
        gen.main(["--collect", str(_study(tmp_path / "bad", bad)), *args])
    assert e.value.code == 2 and not (data / "seed-structure").exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an arm joins a comparison only on the same test sequences" in err

    assert gen.main(["--collect", str(_study(tmp_path / "arm", _arm_tables())), *args]) == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "not measured yet" not in text and "**An arm measured in its own study**: classify+exact" in text
    assert f"| sum | {ARM} | 5 |" in text and "strong reference" in text
    assert gen.main(["--check"]) == 0
