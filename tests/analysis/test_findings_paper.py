"""The paper-protocol section of docs/FINDINGS.md (analysis.findings_paper) from paper_success results."""

from __future__ import annotations

import json

import pytest

from analysis.findings_paper import rate_interval, section, table, verdict

PAPER = {
    "source": "the paper",
    "product": {"what": "an NMU", "rz": 1.0, "success_low": 0.7, "success_high": 1.0, "lengths": [1, 20], "seeds": 10,
                "train_images": 55000, "steps": 100000},
}  # fmt: skip
BUDGET = {"digits": list(range(1, 10)), "train_lengths": [2, 2], "eval_max_len": 3, "train_images": None,
          "source": "mnist5k", "epochs": 40, "train_size": 32000, "batch_size": 64, "steps": 20000,
          "optimizer": "adam", "lr": 0.001}  # fmt: skip


def _arm(rz: float, solved: list[int], exact: list[float]) -> dict:
    rows = [{"length": L, "threshold_mse": 1.0, "reference_mse": 0.5, "reference_exact": 0.9, "success": k / 3,
             "solved_seeds": k, "seeds": 3, "mse": 2.0, "exact": e}
            for L, (k, e) in enumerate(zip(solved, exact), 1)]  # fmt: skip
    arm = {"task": "product", "rz": rz, "sparsity": 10.0, "sparsity_shape": "linear", "sparsity_ramp": [1, 2]}
    return {"arm": {**arm, "head": "nmu"}, "budget": BUDGET, "seeds": [1000, 1001, 1002], "reference_seeds": 3,
            "rows": rows}  # fmt: skip


def test_rates_carry_an_exact_binomial_interval_and_a_verdict_against_the_paper():
    assert rate_interval(0, 3) == pytest.approx((0.0, 0.7076), abs=1e-4)  # 3 seeds cannot rule out 0.7
    assert rate_interval(3, 3) == pytest.approx((0.2924, 1.0), abs=1e-4)
    assert verdict(*rate_interval(0, 3), (0.7, 1.0)) == "within"
    assert verdict(*rate_interval(0, 10), (0.7, 1.0)) == "below"  # ten seeds can: [0, 0.31]
    assert verdict(0.1, 0.5, (0.7, 1.0)) == "below" and verdict(0.75, 0.9, (0.0, 0.5)) == "above"


def test_the_section_sets_every_arm_beside_the_paper_length_by_length(tmp_path):
    assert section(tmp_path) == [] and section(None) == []  # nothing collected: no section
    (tmp_path / "paper.json").write_text(json.dumps(PAPER))
    assert section(tmp_path) == []
    arms = [_arm(1.0, [3, 3, 0], [0.9, 0.8, 0.1]), _arm(0.0, [0, 0, 0], [0.1, 0.0, 0.0])]
    (tmp_path / "product.json").write_text(json.dumps(arms))
    df = table(arms, (0.7, 1.0))
    assert list(df.length) == [1, 2, 3]
    assert df["NMU with R_z: solved"][0].startswith("3/3 [0.292, 1]") and df["NMU without R_z: exact"][0] == 0.1
    assert df.columns[-1] == "solved-accumulator reference: exact"
    text = "\n".join(section(tmp_path))
    assert "## The paper's protocol" in text and "success 0.7–1.0 at lengths 1..20" in text
    assert "seqsum study rerun studies/nmu-paper-product --top 3 --seeds 3 --epochs 40" in text
    assert "20,000 optimizer steps" in text and "seeds 1000, 1001, 1002" in text
    assert "NMU with R_z: within or above the paper's range at every length" in text  # 0/3 cannot be told apart
    assert "NMU without R_z:" not in text.split("**Verdict.**")[1]  # the paper's range is the R_z arm's
    assert df["NMU without R_z: solved"][0] == "0/3 [0, 0.708]"
    arms[0]["rows"] = [{**r, "seeds": 10, "solved_seeds": 0} for r in arms[0]["rows"]]
    (tmp_path / "product.json").write_text(json.dumps(arms))
    assert "NMU with R_z: below the paper's range at 3 of 3 lengths (1..3)" in "\n".join(section(tmp_path))
