"""Tidy tables computed from a loaded `Study`: every number the report shows or says comes from here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .compare import describe, seed_table
from .load import Study

TASKS = ("sum", "product")
LOSS_ORDER = ("mse", "log", "classify")
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
    out["order"] = out.group.map(lambda g: LOSS_ORDER.index(g) if g in LOSS_ORDER else 9)
    return by_task(out, "selection", "order", "group").drop(columns="order").reset_index(drop=True)


def rank(trials: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials best first by `metric` (ties: lower valid MAE first)."""
    keys = [metric] + (["valid/mae"] if "valid/mae" in trials and metric != "valid/mae" else [])
    return trials.sort_values(keys, ascending=[mode == "min"] + [True] * (len(keys) - 1), na_position="last")


def by_target(study: Study, best: pd.DataFrame) -> pd.DataFrame:
    """Per-target-value errors of the selected trials.

    Columns: task, selection, group, trial_id, target, n, exact, mae, rel_err.
    """
    if best.empty or study.per_target.empty:
        return pd.DataFrame(
            columns=["task", "selection", "group", "trial_id", "target", "n", "exact", "mae", "rel_err"]
        )
    pt = _search(study.per_target)
    out = best[["task", "selection", "group", "trial_id"]].merge(pt, on=["task", "trial_id"])
    return out[
        ["task", "selection", "group", "trial_id", "target", "n", "exact", "mae", "rmse", "rel_err", "mean_prediction"]
    ]


def magnitude_bin(task: str, target: pd.Series) -> pd.Series:
    bins = BINS[task]
    labels = [lab for _, _, lab in bins]
    idx = np.searchsorted([lo for lo, _, _ in bins], target.to_numpy(), side="right") - 1
    return pd.Series(pd.Categorical([labels[i] for i in idx], categories=labels, ordered=True), index=target.index)


def by_bin(per_target: pd.DataFrame) -> pd.DataFrame:
    """n-weighted exact, MAE and relative error per magnitude bin of each selected trial."""
    cols = ["task", "selection", "group", "trial_id", "bin", "n", "exact", "mae", "rel_err"]
    if per_target.empty:
        return pd.DataFrame(columns=cols)
    parts = []
    for task, df in per_target.groupby("task", sort=False):
        df = df.assign(bin=magnitude_bin(task, df.target))
        w = df[["exact", "mae", "rel_err"]].mul(df.n, axis=0).assign(n=df.n)
        keys = [df[k] for k in ("task", "selection", "group", "trial_id", "bin")]
        g = w.groupby(keys, observed=True, sort=False).sum()
        g[["exact", "mae", "rel_err"]] = g[["exact", "mae", "rel_err"]].div(g.n, axis=0)
        parts.append(g.reset_index())
    return pd.concat(parts, ignore_index=True)[cols]


def pair_grids(study: Study, best: pd.DataFrame) -> pd.DataFrame:
    """The 10x10 digit-pair grids of the best trial per task x loss family."""
    sel = best[best.selection == "family"]
    if sel.empty or study.pairs.empty:
        return pd.DataFrame(
            columns=["task", "group", "trial_id", "a", "b", "n", "target", "exact", "mae", "mean_prediction"]
        )
    return sel[["task", "group", "trial_id"]].merge(_search(study.pairs), on=["task", "trial_id"])


def pair_verdicts(pairs: pd.DataFrame) -> pd.DataFrame:
    """One line per grid: how the 9x9 (or 9+9) cell went, against the grid as a whole and its hardest row."""
    rows = []
    for (task, group, trial_id), g in pairs.groupby(["task", "group", "trial_id"], sort=False):
        nine = g[(g.a == 9) & (g.b == 9)]
        n9 = int(nine.n.sum())
        ok9 = int(round(float((nine.exact * nine.n).sum())))
        grid = float((g.exact * g.n).sum() / g.n.sum())
        rows_exact = g.assign(w=g.exact * g.n).groupby("a")[["w", "n"]].sum()
        worst = int((rows_exact.w / rows_exact.n).idxmin())
        op = "+" if task == "sum" else "x"
        verdict = (
            f"9{op}9: {ok9}/{n9} correct; whole grid {grid:.2f} exact; "
            f"{'1x9' if task == 'product' else '1+9'}: {_cell(g, 1, 9)}; weakest row a={worst}"
        )
        rows.append(
            {
                "task": task,
                "group": group,
                "trial_id": trial_id,
                "n_9x9": n9,
                "correct_9x9": ok9,
                "exact_9x9": ok9 / n9 if n9 else float("nan"),
                "grid_exact": grid,
                "weakest_a": worst,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def _cell(g: pd.DataFrame, a: int, b: int) -> str:
    c = g[(g.a == a) & (g.b == b)]
    return f"{int(round(float((c.exact * c.n).sum())))}/{int(c.n.sum())}"


def sum_by_total(pairs: pd.DataFrame) -> pd.DataFrame:
    """Exact of the sum grids per a + b (0..18)."""
    s = pairs[pairs.task == "sum"]
    if s.empty:
        return pd.DataFrame(columns=["group", "total", "n", "exact"])
    w = s.assign(total=s.a + s.b, w=s.exact * s.n).groupby(["group", "total"], sort=False)[["w", "n"]].sum()
    return w.assign(exact=w.w / w.n).drop(columns="w").reset_index()


def per_length(study: Study, best: pd.DataFrame) -> pd.DataFrame:
    """test/len=K/{n,exact} of the selected trials, one row per (trial, length)."""
    sel = best[best.selection == "family"].merge(study.trials, on=["task", "trial_id", "family", "bucket"])
    rows = []
    for _, r in sel.iterrows():
        for k in range(1, int(r.test_max_len) + 1):
            if pd.notna(r.get(f"test/len={k}/exact")):
                rows.append(
                    {
                        "task": r.task,
                        "group": r.group,
                        "trial_id": r.trial_id,
                        "length": k,
                        "n": int(r[f"test/len={k}/n"]),
                        "exact": float(r[f"test/len={k}/exact"]),
                    }
                )
    return pd.DataFrame(rows, columns=["task", "group", "trial_id", "length", "n", "exact"])


def with_ceiling(lengths: pd.DataFrame, ceilings: dict) -> pd.DataFrame:
    """Add p**K (`bound`) and the classify-then-compute pipeline's exact beside each per-length exact."""
    out = lengths.copy()
    out["p"] = out.task.map(lambda t: ceilings[t].accuracy if ceilings.get(t) else float("nan"))
    out["bound"] = out.p**out.length
    out["pipeline"] = [
        ceilings[t].pipeline_exact(t, k) if ceilings.get(t) else float("nan") for t, k in zip(out.task, out.length)
    ]
    out["share_of_bound"] = out.exact / out.bound
    return out


def overall_ceiling(ceiled: pd.DataFrame) -> pd.DataFrame:
    """Per selected trial: test exact and the n-weighted bound over its test lengths."""
    g = ceiled.assign(we=ceiled.exact * ceiled.n, wb=ceiled.bound * ceiled.n).groupby(
        ["task", "group", "trial_id"], sort=False
    )
    s = g[["we", "wb", "n"]].sum(min_count=1)  # no ceiling stays NaN, never 0
    return pd.DataFrame({"exact": s.we / s.n, "bound": s.wb / s.n}).reset_index()


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
    """The top k finished trials per task with their searched parameters, scores and rerun mean ± std."""
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


def _search(details: pd.DataFrame) -> pd.DataFrame:
    """The search trials' rows of a per-run detail frame, without the identity columns the selection has."""
    return details[details.kind == "search"].drop(columns=["kind", "family", "seed"])


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
