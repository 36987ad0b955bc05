"""The compared runs' tables: what the report compares, with an interval beside every number.

The compared runs are the replicates (`seqsum study rerun --per-family`: fresh seeds, one budget) when
the study has them, else each task x family's best search trial (one seed). A family is the loss with its
head and bottleneck (study.family: 'classify', 'classify+exact', 'mse+nmu'), so no two heads are pooled.
Within a task x family the runs are seeds: across seeds a number is the mean with a 95% bootstrap
interval; a single run's exact rate carries its Wilson 95% interval (analysis.compare). Replicates of
several configs of one family (a designed study rerun with --top N, e.g. the findings presets) are compared
as arms of their own: the family column names what sets each apart ("classify (data.balance=target)", see `arms`).
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pandas as pd

from study.family import family_order
from study.space import ALIASES, IDENTITY_KEYS

from .compare import COMPARED_METRICS, seed_table, with_intervals
from .load import Study, finished
from .tables import by_task, magnitude_bin, rank

GROUP = ["task", "family"]
# the parameters a family already names (study.family): never what sets an arm apart within it
IDENTITY = ("family", *IDENTITY_KEYS, *(k for k, v in ALIASES.items() if v in IDENTITY_KEYS))
RUN = ["kind", "task", "trial_id"]


def compared_runs(study: Study) -> tuple[pd.DataFrame, str]:
    """(runs, source): per task, its finished replicates when it has any, else each family's best search
    trial; source says 'replicates', 'search' or 'mixed'. Sorted by task, family order, seed."""
    reps = arms(finished(study.replicates))
    metric, mode = study.metric
    done = study.finished
    search = done.iloc[0:0]
    if not done.empty and metric in done:
        search = rank(done, metric, mode).groupby(GROUP, sort=False).head(1)
        search = search[~search.task.isin(set(reps.task))]
    frames = [f for f in (reps, search) if not f.empty]
    if not frames:
        return done, "search"
    runs = pd.concat(frames, ignore_index=True)
    source = "mixed" if len(frames) == 2 else "replicates" if not reps.empty else "search"
    runs = runs.assign(_f=runs.family.map(family_order))  # an arm ("classify (data.balance=target)") with its family
    return by_task(runs, "_f", "seed").drop(columns="_f").reset_index(drop=True), source


def arms(reps: pd.DataFrame) -> pd.DataFrame:
    """Within a task x family whose replicates come from several selected configs, each config becomes an
    arm: its family reads 'family (key=value, ...)' with the searched parameters in which it differs from
    the family's most common values (a config with the most common values keeps the plain family name)."""
    if reps.empty or "source_trial_id" not in reps:
        return reps
    reps = reps.copy()
    for (task, family), g in reps.groupby(["task", "family"], sort=False):
        sources = g.drop_duplicates("source_trial_id")
        if len(sources) < 2:
            continue
        params = [p if isinstance(p, dict) else {} for p in sources.params]
        keys = list(dict.fromkeys(k for p in params for k in p if k not in IDENTITY))
        tops = {k: Counter(json.dumps(p.get(k)) for p in params).most_common(2) for k in keys}
        # a value is "common" only when no other value is as frequent (a tie names every arm's value)
        common = {k: t[0][0] if len(t) == 1 or t[0][1] > t[1][1] else None for k, t in tops.items()}
        for source, p in zip(sources.source_trial_id, params):
            diff = [f"{k}={p.get(k)}" for k in keys if json.dumps(p.get(k)) != common[k]]
            if diff:
                reps.loc[(reps.task == task) & (reps.source_trial_id == source), "family"] = (
                    f"{family} ({', '.join(diff)})"
                )
    return reps


def comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """tables/comparison.csv: task, family, metric, n_seeds, mean, ci_low, ci_high (one row per metric)."""
    return seed_table(runs, COMPARED_METRICS).drop(columns="values")


def per_length(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task x family x test length: exact over the seeds (Wilson for one run), mean MAE, whether the
    length was trained, and the share of targets a classifier cannot answer (`unreachable`)."""
    rows = []
    for r in runs.to_dict("records"):
        for col, v in r.items():
            m = re.fullmatch(r"test/len=(\d+)/exact", col)
            if m and pd.notna(v):
                k = int(m.group(1))
                rows.append({"task": r["task"], "family": r["family"], "seed": r["seed"], "length": k,
                             "n": r.get(f"test/len={k}/n"), "exact": v, "mae": r.get(f"test/len={k}/mae"),
                             "trained": k <= r.get("max_len", k),
                             "unreachable": r.get(f"test/len={k}/unreachable", float("nan"))})  # fmt: skip
    cols = ["task", "family", "seed", "length", "n", "exact", "mae", "trained", "unreachable"]
    df = pd.DataFrame(rows, columns=cols)
    by = [*GROUP, "length"]
    # trained: the length was among the training lengths (else extrapolated); unreachable: the share of its
    # targets a classifier has no class for (it cannot answer them), mean over seeds (NaN for regression)
    extra = df.groupby(by, sort=False).agg(trained=("trained", "all"), unreachable=("unreachable", "mean"))
    return _with_mae(df, by).merge(extra.reset_index(), on=by, how="left")


def per_bin(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """Per task x family x magnitude bin: exact over the seeds (Wilson for one run) and mean MAE."""
    pt = _details(study.per_target, runs)
    if pt.empty:
        return _with_mae(pd.DataFrame(columns=["task", "family", "seed", "bin", "n", "exact", "mae"]), GROUP)
    parts = []
    for task, df in pt.groupby("task", sort=False):
        df = df.assign(bin=magnitude_bin(task, df.target), k=df.exact * df.n, ae=df.mae * df.n)
        g = df.groupby([*RUN, "family", "seed", "bin"], observed=True, sort=False)[["n", "k", "ae"]].sum()
        parts.append(g.assign(exact=g.k / g.n, mae=g.ae / g.n).reset_index())
    bins = pd.concat(parts, ignore_index=True)
    return _with_mae(bins, [*GROUP, "bin"])


def per_target(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """Per task x family x target value: n, exact, MAE and relative error averaged over the seeds."""
    pt = _details(study.per_target, runs)
    cols = ["task", "family", "target", "n", "n_seeds", "exact", "mae", "rel_err"]
    if pt.empty:
        return pd.DataFrame(columns=cols)
    g = pt.groupby([*GROUP, "target"], sort=False)
    out = g[["exact", "mae", "rel_err"]].mean().assign(n=g.n.sum(), n_seeds=g.size()).reset_index()
    return out[cols]


def pair_cells(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """Per task x family x (a, b): n (summed over seeds), exact over the seeds (Wilson for one run)."""
    pairs = _details(study.pairs, runs)
    if pairs.empty:
        return pd.DataFrame(columns=[*GROUP, "a", "b", "n", "n_seeds", "exact", "ci_low", "ci_high", "interval"])
    return with_intervals(pairs, [*GROUP, "a", "b"])


def _with_mae(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Exact with its interval, and MAE with its interval over the seeds (mae_ci_low, mae_ci_high)."""
    out = with_intervals(df, by)
    mae = with_intervals(df, by, value="mae")[[*by, "mae", "ci_low", "ci_high"]]
    return out.merge(mae.rename(columns={"ci_low": "mae_ci_low", "ci_high": "mae_ci_high"}), on=by, how="left")


def _details(details: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of a per-run detail frame (study.per_target, study.pairs) that belong to `runs`."""
    if details.empty or runs.empty:
        return details.iloc[0:0]
    keys = runs[[*RUN, "family", "seed"]].drop_duplicates(RUN)  # family may be relabelled (e.g. a bucket)
    return details.drop(columns=["family", "seed"]).merge(keys, on=RUN)
