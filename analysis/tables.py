"""Tables of the search (best trials, progress, top configurations) and the magnitude bins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from seqsum.choices import LOSSES, TASKS

from .compare import describe, seed_table
from .load import Study

# Magnitude bins of the target: (low, high inclusive, label).
BINS = {
    "product": ((0, 0, "0"), (1, 9, "1-9"), (10, 99, "10-99"), (100, 999, "100-999"), (1000, math.inf, ">=1000")),
    "sum": ((0, 9, "0-9"), (10, 19, "10-19"), (20, 29, "20-29"), (30, math.inf, ">=30")),
}


def best_trials(study: Study) -> pd.DataFrame:
    """The best finished trial per task x loss family and per task x width/depth bucket.

    Columns: task, selection (family | bucket), group (the family or bucket label), trial_id, family,
    bucket, score (the study's ranking metric).
    """
    metric, mode = study.metric
    done = study.finished
    cols = ["task", "selection", "group", "trial_id", "family", "bucket", "score"]
    if done.empty or metric not in done:
        return pd.DataFrame(columns=cols)
    ranked = rank(done, metric, mode)
    rows = []
    for selection in ("family", "bucket"):
        best = ranked.groupby(["task", selection], sort=False).head(1)
        rows.append(best.assign(selection=selection, group=best[selection], score=best[metric]))
    out = pd.concat(rows, ignore_index=True)[cols]
    out["order"] = out.group.map(lambda g: LOSSES.index(g) if g in LOSSES else 9)
    return by_task(out, "selection", "order", "group").drop(columns="order").reset_index(drop=True)


def rank(trials: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials best first by `metric` (ties: lower valid MAE first)."""
    keys = [metric] + (["valid/mae"] if "valid/mae" in trials and metric != "valid/mae" else [])
    return trials.sort_values(keys, ascending=[mode == "min"] + [True] * (len(keys) - 1), na_position="last")


def magnitude_bin(task: str, target: pd.Series) -> pd.Series:
    bins = BINS[task]
    labels = [lab for _, _, lab in bins]
    idx = np.searchsorted([lo for lo, _, _ in bins], target.to_numpy(), side="right") - 1
    return pd.Series(pd.Categorical([labels[i] for i in idx], categories=labels, ordered=True), index=target.index)


def best_so_far(study: Study) -> pd.DataFrame:
    """Trials in order with the running best of the study's metric."""
    metric, mode = study.metric
    t = study.trials
    if t.empty or metric not in t:
        return pd.DataFrame(columns=["task", "number", "trial_id", "family", "status", "score", "best_so_far"])
    t = by_task(
        t[["task", "number", "trial_id", "family", "status", metric]].rename(columns={metric: "score"}), "number"
    )
    acc = (lambda s: s.cummax()) if mode == "max" else (lambda s: s.cummin())
    t["best_so_far"] = t.groupby("task").score.transform(lambda s: acc(s.ffill()))
    return t.reset_index(drop=True)


def top_configs(study: Study, k: int = 5) -> pd.DataFrame:
    """The top k finished trials per task with their searched parameters, scores and replicates' test exact."""
    metric, mode = study.metric
    done = study.finished
    if done.empty:
        return pd.DataFrame()
    top = rank(done, metric, mode).groupby("task", sort=False).head(k).copy()
    top["rank"] = top.groupby("task").cumcount() + 1
    top = by_task(top, "rank")
    shown = {"loss", "family", "conv_channels", "gru_hidden"}  # params that repeat these columns are left out
    params = [c for c in top.columns if c.startswith("param.") and top[c].notna().any() and c[6:] not in shown]
    cols = [
        "task",
        "rank",
        "trial_id",
        "family",
        *params,
        "conv_channels",
        "gru_hidden",
        metric,
        "test/exact",
        "test/mae",
        "pairs/9x9/exact",
    ]
    out = top[list(dict.fromkeys(cols))].rename(columns={p: p[len("param.") :] for p in params})
    if not study.replicates.empty:
        r = seed_table(study.replicates, ["test/exact"], by=("task", "source_trial_id"))
        r = r.assign(replicates=[describe(*x) for x in zip(r["mean"], r.ci_low, r.ci_high, r.n_seeds, r["values"])])
        r = r.rename(columns={"source_trial_id": "trial_id", "replicates": "replicates test/exact"})
        out = out.merge(r[["task", "trial_id", "replicates test/exact"]], on=["task", "trial_id"], how="left")
    return out.reset_index(drop=True)


def by_task(df: pd.DataFrame, *then: str) -> pd.DataFrame:
    """Sorted sum first, then product, then by `then`."""
    order = df.task.map({t: i for i, t in enumerate(TASKS)})
    return df.assign(_o=order).sort_values(["_o", *then]).drop(columns="_o")


STATUSES = ("ok", "stopped", "diverged", "error", "running")


def overview(study: Study) -> pd.DataFrame:
    """Trials per task and status (ok, stopped early, diverged, error, running)."""
    t = study.trials
    rows = []
    for task in TASKS:
        sub = t[t.task == task] if not t.empty else t
        listed = study.n_listed.get(task)
        if sub.empty and not listed:
            continue
        counts = sub.status.value_counts().to_dict() if not sub.empty else {}
        rows.append(
            {
                "task": task,
                "trials.csv rows": listed if listed is not None else "-",
                "trial folders": len(sub),
                **{s: counts.get(s, 0) for s in STATUSES},
                **{s: n for s, n in counts.items() if s not in STATUSES},
            }
        )
    df = pd.DataFrame(rows).fillna(0)
    return df[[c for c in df.columns if c in ("task", "trials.csv rows", "trial folders", "ok") or (df[c] != 0).any()]]
