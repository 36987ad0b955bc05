"""Statistics over seeds and the sentences that compare them, computed in one place.

Across seeds: the mean, a 95% bootstrap interval of the mean and the per-seed values
(`seqsum.stats.seed_interval`; one seed or equal values give that value as the interval, and the text
says "n = 1", never "± 0"). One run's exact-match rate: its Wilson 95% interval (`seqsum.stats.wilson`).
A comparison sentence says "beats" only when the two intervals separate (`seqsum.stats.separated`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from seqsum.evaluate import COMPARED_METRICS  # the metrics every replicate is compared on, defined once
from seqsum.stats import seed_interval, separated, wilson

STAT_COLUMNS = ("n_seeds", "mean", "ci_low", "ci_high")
# A percentile bootstrap of 2 values is their range: too narrow to rank families on. Ranking needs 3 seeds each.
MIN_SEEDS_TO_RANK = 3
LOWER_IS_BETTER = ("mae", "mse", "rel_err", "loss")


def seed_table(
    runs: pd.DataFrame, metrics: Sequence[str] = COMPARED_METRICS, by: Sequence[str] = ("task", "family")
) -> pd.DataFrame:
    """One row per group of `by` x metric: n_seeds, mean, ci_low, ci_high and `values` (per seed, in seed order).

    Only runs with status ok count; a metric a run lacks (or NaN) is left out of that metric's seeds.
    """
    cols = [*by, "metric", *STAT_COLUMNS, "values"]
    if runs.empty or "status" not in runs:
        return pd.DataFrame(columns=cols)
    ok = runs[runs.status == "ok"]
    sort = [c for c in ("seed",) if c in ok]
    rows = []
    for key, g in ok.groupby(list(by), sort=False):
        g = g.sort_values(sort) if sort else g
        for metric in metrics:
            if metric not in g:
                continue
            values = [float(v) for v in g[metric] if pd.notna(v)]
            if not values:
                continue
            mean, low, high = seed_interval(values)
            rows.append({**dict(zip(by, key)), "metric": metric, "n_seeds": len(values), "mean": mean,
                         "ci_low": low, "ci_high": high, "values": values})  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def rate_interval(exact: pd.Series, n: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Wilson 95% interval of exact-match rates given as shares `exact` of `n` sequences."""
    k = np.round(np.asarray(exact, dtype=float) * np.asarray(n, dtype=float))
    return wilson(k, n)


def with_intervals(df: pd.DataFrame, by: Sequence[str], value: str = "exact", n: str = "n") -> pd.DataFrame:
    """Per group of `by`: over the runs (seeds) in it, n_seeds, mean, ci_low, ci_high of `value` and the
    summed `n`. A group of one run takes the Wilson interval of its rate (when `value` is a rate)."""
    rows = []
    for key, g in df.groupby(list(by), sort=False, observed=True):
        vals = g[value].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals) == 0:
            continue
        mean, low, high = seed_interval(vals)
        interval = "seeds"
        if len(vals) == 1 and value == "exact":
            row = g[g[value].notna()]
            lo, hi = rate_interval(row[value], row[n])
            low, high = float(lo[0]), float(hi[0])
            interval = "wilson"
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "n": int(g[n].sum()), "n_seeds": len(vals), value: mean,
                     "ci_low": low, "ci_high": high, "interval": interval})  # fmt: skip
    return pd.DataFrame(rows, columns=[*by, "n", "n_seeds", value, "ci_low", "ci_high", "interval"])


def describe(mean: float, low: float, high: float, n_seeds: int, values: Sequence[float] = ()) -> str:
    """'0.512 [0.480, 0.550] over 5 seeds (0.50, 0.49, ...)'; one seed: '0.512 (n = 1 seed)'."""
    if n_seeds <= 1:
        return f"{_num(mean)} (n = 1 seed)"
    per = f" ({', '.join(_num(v) for v in values)})" if len(values) else ""
    return f"{_num(mean)} [{_num(low)}, {_num(high)}] over {n_seeds} seeds{per}"


def verdict(metric: str, a: str, ia: tuple[float, float], b: str, ib: tuple[float, float]) -> str:
    """'a beats b on metric' only when the intervals separate; otherwise 'a vs b on metric: not separated'."""
    if not separated(ia, ib):
        return f"{a} vs {b} on {metric}: not separated"
    lower = metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER
    a_better = (ia[1] < ib[0]) if lower else (ia[0] > ib[1])
    win, lose = (a, b) if a_better else (b, a)
    return f"{win} beats {lose} on {metric}"


def verdicts(comparison: pd.DataFrame, metrics: Sequence[str] = COMPARED_METRICS) -> list[str]:
    """One line per metric and pair of families of one task's comparison rows (seed_table's columns):
    'a beats b' only when both have >= MIN_SEEDS_TO_RANK seeds and their intervals separate."""
    out = []
    for metric in metrics:
        m = comparison[comparison.metric == metric].set_index("family")
        for a, b in combinations(m.index, 2):
            n = min(m.n_seeds[a], m.n_seeds[b])
            if n < 2:
                out.append(f"{a} vs {b} on {metric}: not separated (one seed: no interval over seeds)")
            elif n < MIN_SEEDS_TO_RANK:
                out.append(f"{a} vs {b} on {metric}: not separated ({n} seeds: too few to rank, need "
                           f"{MIN_SEEDS_TO_RANK})")  # fmt: skip
            else:
                out.append(verdict(metric, a, (m.ci_low[a], m.ci_high[a]), b, (m.ci_low[b], m.ci_high[b])))
    return out


def _num(v: float) -> str:
    a = abs(v)
    return f"{v:.3f}" if a < 10 else f"{v:.1f}" if a < 1000 else f"{v:,.0f}"
