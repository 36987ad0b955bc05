"""The structure issue's targets, met or not, for the Structure section of docs/FINDINGS.md.

- product: a results-only model at >= SHARE of the strong reference in every magnitude bin (including
  >= 1000) and on lengths 5..8;
- sum: squared error <= SUM_MSE from the embedded training images, and the rarest bin (>= 30) at >= SHARE of
  the strong reference.

The sum's squared error is each model's own prediction rule for squared error, fixed in advance
(seqsum.evaluate): a classifier's posterior mean (the mean of its predicted distribution), a regressor's
output; both scored on the trained lengths 1..4 of the re-scored test set (`ext/trained/*`, analysis.findings),
where every run of the study has them. The point shown is the one closest to its target (the largest
smallest margin); the line and the interval's side are said beside every number.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .doc import fmt, md_table

SHARE = 0.95  # a target: the share of the strong reference to reach
SUM_MSE = 0.5  # a target: the sum's test MSE (the original post reached 0.61 with 60,000 images)
MEAN_MSE = "ext/trained/mean_mse"  # a classifier's posterior mean on the trained lengths
MODE_MSE = "ext/trained/mse"  # a regressor's output (a classifier's most likely result) on the same sequences
STRONG = "strong_reference"
MSE_HEADERS = {MEAN_MSE: "squared error (posterior mean, trained lengths)",
               MODE_MSE: "squared error (trained lengths)", "test/mse": "test MSE"}  # fmt: skip

TARGETS = {
    "product": f"a results-only model at >= {SHARE:.0%} of the strong reference in every magnitude bin "
    "(including >= 1000) and on lengths 5..8",
    "sum": f"squared error <= {SUM_MSE} (each model's rule for it: a classifier's posterior mean) from the "
    f"embedded training images, and the rarest bin (>= 30) at >= {SHARE:.0%} of the strong reference",
}


def mse_metric(s: Any, task: str, condition: str) -> str:
    """The squared-error metric of a point: its posterior mean's where it has one, else its output's, else
    the run's own test MSE (a folder collected before the re-scored set had them)."""
    for metric in (MEAN_MSE, MODE_MSE):
        if s.d.values(task, condition, metric):
            return metric
    return "test/mse"


def criteria(s: Any, task: str) -> list:
    ms = s.metrics(task, digits=False)
    if task == "product":  # every magnitude bin and lengths 5..8
        return [m for m in ms if m.scope in ("bin", "ext")]
    return [None, s.rare(task)]  # None: the squared error, per point (mse_metric)


def margin(s: Any, task: str, p: Any, m: Any) -> float:
    """>= 1 where the point meets the criterion (its mean over seeds against the line)."""
    if m is None:
        mean = s.d.stat(task, p.condition, mse_metric(s, task, p.condition))[0]
        return SUM_MSE / mean if mean > 0 else float("inf")
    share = s.share(task, p, m)
    return 0.0 if share != share else share / SHARE


def target(s: Any, task: str) -> tuple[Any, bool, pd.DataFrame]:
    """The point closest to meeting the task's target (the largest smallest margin), whether it meets it,
    and its numbers per criterion."""
    crit = criteria(s, task)
    best = max(s.shown(task), key=lambda p: min(margin(s, task, p, m) for m in crit))
    rows = []
    for m in crit:
        metric = mse_metric(s, task, best.condition) if m is None else m.metric
        mean, lo, hi, _ = s.d.stat(task, best.condition, metric)
        if m is None:
            header = MSE_HEADERS[metric]
            line, met, side = SUM_MSE, mean <= SUM_MSE, _side(lo, hi, SUM_MSE, higher=False)
        else:
            header = m.header
            line = SHARE * s.d.ref_stat(task, m.scope, m.key, STRONG)[0]
            met, side = mean >= line, _side(lo, hi, line, higher=True)
        rows.append({"criterion": header, "value": s.d.cell(task, best.condition, metric),
                     "line": fmt(line), "met": "met" if met else "not met", "interval": side})  # fmt: skip
    table = pd.DataFrame(rows)
    return best, bool((table.met == "met").all()), table


def _side(lo: float, hi: float, line: float, higher: bool) -> str:
    """Where the interval over seeds lies against the target's line."""
    if (lo >= line) if higher else (hi <= line):
        return "wholly on the target's side"
    if (hi < line) if higher else (lo > line):
        return "wholly short of it"
    return "straddles the line"


def target_lines(s: Any) -> list[str]:
    out = []
    for task in (t for t in ("product", "sum") if t in s.d.tasks):
        best, met, table = target(s, task)
        head = f"**{task.capitalize()} target** ({TARGETS[task]}): **{'met' if met else 'not met'}**"
        out += [head + f"; {'met by' if met else 'the closest point,'} {s.names[best.condition]}:", ""]
        out += md_table(table)
    return out
