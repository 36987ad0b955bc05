"""The NAU paper's success criterion for sequential MNIST, on seqsum run folders.

Madsen & Johansen (ICLR 2020) call a run *solved* at test length L when its test MSE at L is below a
threshold set by a reference model: the same network with the accumulator fixed at its solution (their
`model_simplification: solved-accumulator`; here `model.accumulator: solved`), trained the same way. Their
analysis script (export/sequential_mnist_prod_long.r) takes, per length L, the reference seeds' test MSE and
sets

    threshold(L) = mean + t_{0.99, n-1} * sd / sqrt(n)      (a one-sided 99% upper bound on the mean)

and the success rate at L is the share of seeds of a learned unit whose MSE at L is below it.

Differences from the paper's script, stated where the numbers are shown: every reference seed counts (the
paper dropped reference seeds that had not solved the task, and used 8 degrees of freedom whatever their
number), and a run is scored at its end (the paper took the step of lowest validation MSE).

    python -m seqsum.paper_success RUN_OR_STUDY_FOLDER... [--json OUT]

finds every run folder (summary.json + config.json) under the folders given, groups them into arms by
their config without the seed, and prints, per learned arm and length, the success rate and the runs'
test exact and MSE beside the threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from scipy import stats

from .errors import ConfigError
from .files import write_json

ALPHA = 0.01  # the paper's final script: alpha = 0.01, one-sided


def threshold(reference_mse: list[float], alpha: float = ALPHA) -> float:
    """mean + t_{1-alpha, n-1} sd / sqrt(n) of the reference seeds' MSE at one length (one seed: its MSE)."""
    n = len(reference_mse)
    mean = sum(reference_mse) / n
    if n < 2:
        return mean
    sd = math.sqrt(sum((x - mean) ** 2 for x in reference_mse) / (n - 1))
    return float(mean + stats.t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n))


def lengths_of(summary: dict[str, Any]) -> list[int]:
    """The test lengths a summary reports (test/len=K/mse)."""
    return sorted(int(k.split("/")[1][4:]) for k in summary if k.startswith("test/len=") and k.endswith("/mse"))


def success(learned: list[dict[str, Any]], reference: list[dict[str, Any]], alpha: float = ALPHA) -> list[dict]:
    """Per test length: threshold, the learned runs' success rate and mean exact / MSE (summaries in)."""
    rows = []
    for L in lengths_of(reference[0]):
        key = f"test/len={L}"
        ref = [s[f"{key}/mse"] for s in reference if s.get(f"{key}/mse") is not None]
        runs = [s for s in learned if s.get(f"{key}/mse") is not None]
        if not ref or not runs:
            continue
        limit = threshold(ref, alpha)
        solved = [bool(s[f"{key}/mse"] < limit) for s in runs]
        rows.append(
            {
                "length": L,
                "threshold_mse": limit,
                "reference_mse": sum(ref) / len(ref),
                "reference_exact": sum(s[f"{key}/exact"] for s in reference) / len(reference),
                "success": sum(solved) / len(solved),
                "solved_seeds": sum(solved),
                "seeds": len(solved),
                "mse": sum(s[f"{key}/mse"] for s in runs) / len(runs),
                "exact": sum(s[f"{key}/exact"] for s in runs) / len(runs),
            }
        )
    return rows


def _arms(folders: list[Path]) -> dict[str, dict[str, Any]]:
    """Run folders under `folders`, grouped by config without the seed: {arm name: {config, summaries}}."""
    arms: dict[str, dict[str, Any]] = defaultdict(lambda: {"summaries": []})
    for top in folders:
        if not top.is_dir():
            raise ConfigError(f"{str(top)!r} is not a folder; give run folders or a study folder")
        for summary_path in sorted(top.rglob("summary.json")):
            cfg_path = summary_path.with_name("config.json")
            if not cfg_path.exists():
                continue
            cfg, summary = json.loads(cfg_path.read_text()), json.loads(summary_path.read_text())
            if summary.get("status") != "ok" or cfg["model"]["head"] not in ("nau", "nmu"):
                continue
            seed = cfg["train"].pop("seed")
            name = json.dumps(cfg, sort_keys=True)
            arms[name]["config"] = cfg
            arms[name]["summaries"].append(summary)
            arms[name].setdefault("seeds", []).append(seed)
    return dict(arms)


def budget(cfg: dict[str, Any]) -> dict[str, Any]:
    """What an arm trained on and for how long, from its config.json (the deviations from the paper)."""
    d, t = cfg["data"], cfg["train"]
    return {
        "digits": d.get("digits", list(range(10))),
        "train_lengths": [d["min_len"], d["max_len"]],
        "eval_max_len": d["eval_max_len"],
        "train_images": d.get("train_images"),
        "source": d.get("source"),
        "epochs": t["epochs"],
        "train_size": d["train_size"],
        "batch_size": t["batch_size"],
        "steps": t["epochs"] * math.ceil(d["train_size"] / t["batch_size"]),
        "optimizer": t["optimizer"],
        "lr": t["lr"],
    }


def report(folders: list[Path], alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every learned arm beside the solved arm of its task and head (ConfigError when one is missing)."""
    arms = _arms(folders)
    solved = {
        (a["config"]["train"]["task"], a["config"]["model"]["head"]): a
        for a in arms.values()
        if a["config"]["model"].get("accumulator") == "solved"
    }
    out = []
    for a in arms.values():
        c = a["config"]
        if c["model"].get("accumulator", "learned") == "solved":
            continue
        ref = solved.get((c["train"]["task"], c["model"]["head"]))
        if ref is None:
            raise ConfigError(
                f"no model.accumulator solved run of {c['train']['task']} / {c['model']['head']} under "
                f"{[str(f) for f in folders]}: the success threshold needs the solved reference"
            )
        arm = {k: c["train"].get(k) for k in ("task", "rz", "sparsity", "sparsity_shape", "sparsity_ramp")}
        arm["head"] = c["model"]["head"]
        out.append(
            {
                "arm": arm,
                "budget": budget(c),
                "seeds": sorted(a["seeds"]),
                "reference_seeds": len(ref["summaries"]),
                "rows": success(a["summaries"], ref["summaries"], alpha),
            }
        )
    return out


def _print(result: list[dict[str, Any]]) -> None:
    for r in result:
        print(f"{r['arm']}  (threshold from {r['reference_seeds']} solved-accumulator seeds)")
        print("  length  success  seeds  exact    mse         threshold   reference exact")
        for x in r["rows"]:
            print(
                f"  {x['length']:>6}  {x['success']:>7.2f}  {x['solved_seeds']}/{x['seeds']}    {x['exact']:.3f}"
                f"    {x['mse']:<10.4g}  {x['threshold_mse']:<10.4g}  {x['reference_exact']:.3f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqsum.paper_success", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, or a study folder holding them")
    parser.add_argument("--json", type=Path, help="also write the result here (JSON)")
    args = parser.parse_args(argv)
    try:
        if args.json is not None and args.json.exists():
            raise ConfigError(f"--json {str(args.json)!r} exists; give a new file (nothing is overwritten)")
        result = report(args.folders)
        if not result:
            raise ConfigError(
                f"no finished nau/nmu run with model.accumulator learned under {[str(f) for f in args.folders]}"
            )
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print(result)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
