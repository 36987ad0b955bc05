"""The committed findings summaries (docs/data/findings*/, written by analysis.findings.collect) read back
with per-condition statistics over seeds, and the words every findings section shares: condition names,
verdicts and effect sentences.

A verdict names the hypothesis and says *supported* when the condition's interval over seeds lies on the
predicted side of the comparison's, *refuted* when it lies on the other side, *not separated* otherwise
(seqsum.stats.separated: the same rule as docs/RESULTS.md and the report).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from seqsum.stats import seed_interval, separated

from .doc import fmt
from .findings import CONTROL

RARE_BIN = {"product": ">=1000", "sum": ">=30"}  # the largest magnitude bin of analysis.tables.BINS
HEAD = {"sum": "train.loss=mse, model.head=nau", "product": "train.loss=mse, model.head=nmu"}
DENSE = "train.loss=mse, model.head=dense"
NAMES = {
    CONTROL: "control (classify)",
    "data.balance=target": "balance: target",
    "train.class_weight=inverse_frequency": "class weight: inverse frequency",
    "data.holdout=random:0.1": "holdout: random:0.1",
    "model.outputs=every_step": "outputs: every step",
    "data.train_images=1000": "1,000 training images",
    DENSE: "mse, dense head",
    "train.loss=mse, model.head=nau": "mse, NAU head",
    "train.loss=mse, model.head=nmu": "mse, NMU head",
}


class Data:
    """The committed findings summaries, with per-condition statistics over seeds."""

    def __init__(self, folder: Path):
        self.meta = json.loads((folder / "meta.json").read_text())
        self.runs = pd.read_csv(folder / "runs.csv")
        self.ref = pd.read_csv(folder / "reference.csv", dtype={"key": str})
        self.heldout = pd.read_csv(folder / "heldout.csv")
        self.tasks = list(dict.fromkeys(self.runs.task))
        ok = self.runs.dropna(subset=["value"]).sort_values("seed", kind="stable")
        self._values = {k: [float(v) for v in g.value] for k, g in ok.groupby(["task", "condition", "metric"])}
        self._stats: dict[tuple[str, str, str], tuple[float, float, float, int]] = {}

    def values(self, task: str, condition: str, metric: str) -> list[float]:
        """The per-seed values, in seed order."""
        return self._values.get((task, condition, metric), [])

    def stat(self, task: str, condition: str, metric: str) -> tuple[float, float, float, int]:
        """(mean, ci_low, ci_high, n_seeds) over seeds; each bootstrap is computed once."""
        key = (task, condition, metric)
        if key not in self._stats:
            v = self.values(*key)
            self._stats[key] = (*seed_interval(v), len(v)) if v else (float("nan"),) * 3 + (0,)
        return self._stats[key]

    def cell(self, task: str, condition: str, metric: str) -> str:
        mean, lo, hi, n = self.stat(task, condition, metric)
        if n <= 1:
            return "-" if n == 0 else f"{fmt(mean)} (n = 1)"
        return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"

    def reference(self, task: str, scope: str, key: str, predictor: str = "reference") -> str:
        r = self.ref
        row = r[(r.task == task) & (r.scope == scope) & (r.key == key) & (r.predictor == predictor)]
        if row.empty:
            return "-"
        x = row.iloc[0]
        return f"{fmt(x.exact)} [{fmt(x.ci_low)}, {fmt(x.ci_high)}]"

    def ref_stat(self, task: str, scope: str, key: str, predictor: str = "reference") -> tuple[float, float, float]:
        """(exact, ci_low, ci_high) of a reference row; NaNs when reference.csv has no such row."""
        r = self.ref
        row = r[(r.task == task) & (r.scope == scope) & (r.key == key) & (r.predictor == predictor)]
        if row.empty:
            return (float("nan"),) * 3
        return float(row.exact.iloc[0]), float(row.ci_low.iloc[0]), float(row.ci_high.iloc[0])

    def ref_interval(self, task: str, scope: str, key: str) -> tuple[float, float]:
        return self.ref_stat(task, scope, key)[1:]

    def verdict(
        self, task: str, cond: str, base: str, metric: str, higher: bool = True, names=NAMES
    ) -> tuple[str, str]:
        """(word, sentence): is `cond` above `base` (below, when not `higher`) on `metric`, by the intervals?"""
        a, b = self.stat(task, cond, metric), self.stat(task, base, metric)
        if min(a[3], b[3]) < 2:
            return "not separated", f"{task}: fewer than 2 seeds, no interval"
        text = f"{task}: {names.get(cond, cond)} {self.cell(task, cond, metric)} vs {names.get(base, base)} " + (
            f"{self.cell(task, base, metric)} ({metric})"
        )
        if not separated((a[1], a[2]), (b[1], b[2])):
            return "not separated", text
        above = a[1] > b[2]
        return ("supported" if above == higher else "refuted"), text


def overall(words: list[str]) -> str:
    """One word for a section: the tasks agree, or 'mixed'."""
    return words[0] if len(set(words)) == 1 else "mixed (" + ", ".join(words) + ")"


LABELS = {"test/exact": "test exact", "pairs/heldout_cells/exact": "exact on the held-out pairs' cells",
          "ext/extrapolated/exact": "exact on lengths 5..8"}  # fmt: skip


def label(metric: str) -> str:
    if metric.startswith("test/bin="):
        return f"exact in the bin {metric.split('=', 1)[1].rsplit('/', 1)[0]}"
    return LABELS.get(metric, metric)


def effect(d: Data, task: str, cond: str, base: str, metric: str, higher: bool = True, names=NAMES) -> str:
    """'balance: target raised exact in the bin >=30 on sum from 0 [0, 0] to 0.21 [0.11, 0.36]', or
    '... did not separate from ...' (the intervals decide, as in the verdicts)."""
    word, _ = d.verdict(task, cond, base, metric, higher, names)
    a, b = d.cell(task, cond, metric), d.cell(task, base, metric)
    if word == "not separated":
        return f"{names[cond]} did not separate from {names[base]} on {task} ({label(metric)} {a} vs {b})"
    up = d.stat(task, cond, metric)[0] > d.stat(task, base, metric)[0]
    return f"{names[cond]} {'raised' if up else 'lowered'} {label(metric)} on {task} from {b} to {a}"
