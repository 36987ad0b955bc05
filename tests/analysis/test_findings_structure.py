"""The Structure section of docs/FINDINGS.md from a small collected frame built here (no study): its tables,
verdicts that follow the intervals, the targets met or not, and no section without the data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.findings_doc import render
from analysis.findings_structure import Structure, section
from analysis.tables import BINS

STRONG_STACK_REF = "reference (conv strong)"
POINTS = [
    {"condition": "control", "family": "classify", "stack": "seed", "reference": "reference"},
    {"condition": "family=mse+digits+nmu", "family": "mse+digits+nmu", "stack": "seed", "reference": "reference"},
    {"condition": "family=classify+exact", "family": "classify+exact", "stack": "seed", "reference": "reference"},
    {"condition": "conv_stack=strong", "family": "classify", "stack": "strong", "reference": STRONG_STACK_REF},
    {"condition": "family=classify+exact, conv_stack=strong", "family": "classify+exact", "stack": "strong",
     "reference": STRONG_STACK_REF},
]  # fmt: skip
SPREAD = (-0.01, 0.0, 0.01)  # per seed around the mean: an interval about +-0.01 wide


def _collected(folder, exact: dict[str, float], mse: dict[str, float] | None = None, strong: float = 0.9):
    """A collected findings-structure folder: each condition scores `exact` (mean over 3 seeds) on every
    metric, test MSE `mse`; the strong reference scores `strong` everywhere, the run-stack ones 0.6."""
    folder.mkdir(parents=True)
    rows, refs = [], []
    for task in ("product", "sum"):
        metrics = ["test/exact", "pairs/9x9/exact", "ext/extrapolated/exact", "test/digit_acc"]
        metrics += [f"test/bin={b}/exact" for *_, b in BINS[task]]
        for cond, mean in exact.items():
            for seed, dx in zip((1000, 1001, 1002), SPREAD):
                rows += [{"task": task, "condition": cond, "seed": seed, "trial_id": f"t{seed}", "metric": m,
                          "value": mean + dx} for m in metrics]  # fmt: skip
                rows.append({"task": task, "condition": cond, "seed": seed, "trial_id": f"t{seed}",
                             "metric": "test/mse", "value": (mse or {}).get(cond, 3.0) + dx})  # fmt: skip
        keys = [("all", "all"), ("cells", "9x9"), ("ext", "5-8"), ("digits", "test pool")]
        keys += [("bin", b) for *_, b in BINS[task]]
        for predictor, x in (("strong_reference", strong), ("reference", 0.6), (STRONG_STACK_REF, 0.6)):
            refs += [{"task": task, "predictor": predictor, "scope": scope, "key": key, "n": 1000, "exact": x,
                      "ci_low": x - 0.02, "ci_high": min(x + 0.02, 1.0)} for scope, key in keys]  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "runs.csv", index=False)
    pd.DataFrame(refs).to_csv(folder / "reference.csv", index=False)
    pd.DataFrame(columns=["task", "a", "b", "target", "target_in_training"]).to_csv(folder / "heldout.csv", index=False)
    meta = {"commands": ["seqsum study launch --preset findings-structure"], "seeds": [1000, 1001, 1002],
            "epochs": 4, "train_size": 10000, "test_size": 100000, "eval_max_len": 8, "precision": ["bf16"],
            "conditions": [p["condition"] for p in POINTS], "points": POINTS}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


EXACT_SEED, EXACT_STRONG = "family=classify+exact", "family=classify+exact, conv_stack=strong"
CONTROLS = {"control": 0.3, "family=mse+digits+nmu": 0.305, "conv_stack=strong": 0.3}


def test_the_section_renders_every_stack_and_family_beside_both_references(tmp_path):
    folder = _collected(tmp_path / "s", {**CONTROLS, EXACT_SEED: 0.8, EXACT_STRONG: 0.5})
    lines, st = section(folder, tmp_path / "figures")
    text = "\n".join(lines)
    assert text.startswith("## Structure: does giving the network the operator close the gap?")
    assert (tmp_path / "figures" / "findings-structure.png").stat().st_size > 10_000
    table = st.table("product")
    assert list(table.columns[:3]) == ["stack", "family", "seeds"]
    assert {"test exact", ">=1000", "9x9", "lengths 5-8", "digit accuracy"} <= set(table.columns)
    assert list(zip(table["stack"], table.family))[:5] == [(p["stack"], p["family"]) for p in POINTS]
    refs = list(table.family[5:])
    assert refs == ["strong reference", "run-stack reference (seed stack)", "run-stack reference (strong stack)"]
    assert table.loc[2, ">=1000"] == "0.800 [0.790, 0.810]"  # mean and bootstrap interval over the 3 seeds
    assert table.loc[5, ">=1000"] == "0.900 [0.880, 0.920]"  # the strong reference's Wilson interval
    shares = st.share_table("sum")
    assert shares.loc[2, ">=30"] == f"{0.8 / 0.9:.0%}"  # the share of the strong reference
    assert "100,000 test sequences" in text and "seeds 1000, 1001, 1002; trained in bf16." in text
    # the text does not depend on drawing the figure
    assert section(folder, None)[0] == lines


def test_verdicts_follow_the_intervals(tmp_path):
    # seed stack: the exact operator's interval lies above the control's; strong stack: they overlap
    st = Structure(_collected(tmp_path / "s", {**CONTROLS, EXACT_SEED: 0.8, EXACT_STRONG: 0.305}))
    v = st.verdict_table("classify", ["mse+digits+nmu", "classify+exact"])
    got = dict(zip(zip(v.task, v["stack"], v.family), v["test exact"]))
    assert got[("product", "seed", "classify+exact")] == "higher"
    assert got[("product", "strong", "classify+exact")] == "not separated"
    assert got[("product", "seed", "mse+digits+nmu")] == "not separated"  # 0.305 +- 0.01 overlaps 0.3 +- 0.01
    text = "\n".join(section(tmp_path / "s", None)[0])
    verdict = "mixed (supported on product (seed stack), sum (seed stack); "
    verdict += "not separated on product (strong stack), sum (strong stack))"
    assert f"**Verdict (at this budget): {verdict}.**" in text
    # the learned operator (NMU on E[d]) against the exact one, on the seed stack: lower where they separate
    assert (
        "**A learned operator against the exact one**: the exact operator beats the best learned one everywhere" in text
    )
    # one overlapping pair everywhere: no verdict either way
    st = Structure(_collected(tmp_path / "o", {**CONTROLS, EXACT_SEED: 0.31, EXACT_STRONG: 0.295}))
    assert set(st.verdict_table("classify", ["classify+exact"])["test exact"]) == {"not separated"}
    assert "**Verdict (at this budget): not separated.**" in "\n".join(section(tmp_path / "o", None)[0])


def test_targets_are_met_or_not_with_their_numbers(tmp_path):
    # 0.86 >= 0.95 * 0.9 = 0.855 in every bin and on 5..8; sum MSE 0.4 <= 0.5
    st = Structure(_collected(tmp_path / "m", {**CONTROLS, EXACT_SEED: 0.86, EXACT_STRONG: 0.5},
                              mse={EXACT_SEED: 0.4}))  # fmt: skip
    best, met, table = st.target("product")
    assert best.condition == EXACT_SEED and met and set(table.met) == {"met"}
    assert list(table.criterion) == [b for *_, b in BINS["product"]] + ["lengths 5-8"]
    assert set(table.interval) == {"straddles the line"}  # 0.86 +- 0.01 around 0.855: the interval does not settle it
    assert st.target("sum")[1]
    # 0.84 < 0.855: not met, and the section says which point came closest
    st = Structure(_collected(tmp_path / "n", {**CONTROLS, EXACT_SEED: 0.84, EXACT_STRONG: 0.5}))
    best, met, table = st.target("product")
    assert best.condition == EXACT_SEED and not met and set(table.met) == {"not met"}
    text = "\n".join(section(tmp_path / "n", None)[0])
    assert "**Product target** (" in text and "**not met**; the closest point, classify+exact (seed stack)" in text
    assert "**Sum target** (" in text


def test_the_sum_target_reads_a_classifiers_posterior_mean_where_it_has_one(tmp_path):
    folder = _collected(tmp_path / "p", {**CONTROLS, EXACT_SEED: 0.86, EXACT_STRONG: 0.5}, mse={EXACT_SEED: 0.9})
    assert not Structure(folder).target("sum")[1]  # test MSE 0.9 of the most likely result: not met
    runs = pd.read_csv(folder / "runs.csv")
    rows = runs[(runs.metric == "test/mse") & (runs.condition == EXACT_SEED)]
    extra = [rows.assign(metric="ext/trained/mean_mse", value=rows.value - 0.5),  # its posterior mean's: 0.4
             rows.assign(metric="ext/trained/mse", value=rows.value)]  # fmt: skip
    pd.concat([runs, *extra]).to_csv(folder / "runs.csv", index=False)
    best, met, table = Structure(folder).target("sum")
    assert met and best.condition == EXACT_SEED
    assert table.criterion[0] == "squared error (posterior mean, trained lengths)" and table.value[0].startswith("0.4")


def test_missing_structure_data_omits_the_section(tmp_path):
    findings = tmp_path / "findings"  # no findings study collected either
    assert "## Structure" not in render(findings, "CMD", None, tmp_path / "missing")
    assert section(tmp_path / "missing", None) == ([], None)
    _collected(tmp_path / "s", {**CONTROLS, EXACT_SEED: 0.8, EXACT_STRONG: 0.5})
    text = render(findings, "CMD", None, tmp_path / "s")
    assert "Not measured yet" in text and "## Structure: does giving the network" in text


def test_a_folder_from_an_older_collector_is_named_in_one_line(tmp_path):
    folder = _collected(tmp_path / "s", {**CONTROLS, EXACT_SEED: 0.8, EXACT_STRONG: 0.5})
    meta = json.loads((folder / "meta.json").read_text())
    del meta["points"]
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no points in meta.json .* collect it again"):
        section(folder, None)
