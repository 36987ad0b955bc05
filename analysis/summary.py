"""The report's first screen: one table per task with every arm (loss family, head) the study tried.

An arm is what the comparison compares (analysis.scores.compared_runs: a family's replicates, or its best
search trial) or, when nothing of it finished, the best trial it has: a family whose every trial ASHA
stopped early, failed or diverged is listed with that status and its epochs, never left out. Arms with
replicates (at least MIN_SEEDS_TO_RANK seeds at one budget) are ranked best first by test exact; a group
letter marks arms whose 95% intervals do not separate from the group's best. Arms known from one search
trial, and trials stopped early, are listed below them, unranked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from seqsum.choices import LOSSES
from seqsum.stats import separated

from .baselines import NAMES, REFERENCES
from .compare import MIN_SEEDS_TO_RANK, rate_interval, seed_table
from .scores import pair_cells, per_bin, per_length
from .tables import rank

if TYPE_CHECKING:
    from .report import Ctx

UNRANKED = "-"


def _iv(mean: float, lo: float, hi: float) -> str:
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _status(row: pd.Series, planned: int | None) -> str:
    """ok | stopped at epoch k | diverged at epoch k | failed | running."""
    status, epochs = str(row.get("status")), row.get("epochs")
    k = int(epochs) if pd.notna(epochs) else None
    if status == "stopped":
        return f"stopped at epoch {k}" + (f" of {planned}" if planned else "") if k else "stopped early"
    if status == "diverged":
        return f"diverged at epoch {k}" if k else "diverged"
    if status in ("error", "failed"):
        return "failed"
    return status


def _planned(trials: pd.DataFrame) -> int | None:
    """The epoch budget of the task's full-budget (ok) trials, if any finished."""
    ok = trials[(trials.status == "ok")] if "epochs" in trials else trials.iloc[0:0]
    return int(ok.epochs.max()) if not ok.empty and ok.epochs.notna().any() else None


def _head(df: pd.DataFrame) -> pd.Series:
    return df["head"].fillna("dense") if "head" in df else pd.Series("dense", index=df.index)


def _label(family: str, head: str) -> str:
    return family if head in ("dense", "", None) else f"{family}, {head} head"


def arms(ctx: Ctx, task: str) -> pd.DataFrame:
    """One row per arm of `task`: the display table of the first screen (strings with intervals)."""
    s, runs = ctx.study, ctx.runs
    runs = runs[runs.task == task] if not runs.empty else runs
    trials = s.trials[s.trials.task == task] if not s.trials.empty else s.trials
    reps = s.replicates[s.replicates.task == task] if not s.replicates.empty else s.replicates
    planned = _planned(pd.concat([f for f in (trials, reps) if not f.empty]) if len(trials) or len(reps) else trials)
    rows, covered = _compared(ctx, task, runs, reps, planned), set()
    for r in rows:
        covered |= r.pop("_covers")
    rows += _uncompared(ctx, task, trials, reps, covered, planned)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    ranked = df[df["_rankable"]].sort_values("_mean", ascending=False)
    letters, groups = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), []
    for i, (idx, r) in enumerate(ranked.iterrows()):
        lead = next((g for g in groups if not separated(g[1], (r._lo, r._hi))), None)
        if lead is None:
            lead = (next(letters), (r._lo, r._hi))
            groups.append(lead)
        df.loc[idx, "rank"] = f"{i + 1} ({lead[0]})"
    df["rank"] = df.get("rank", pd.Series(index=df.index, dtype=object)).fillna(UNRANKED)
    order = df.assign(_r=~df._rankable, _m=df._mean.fillna(-1), _s=df._stopped)
    df = order.sort_values(["_r", "_s", "_m"], ascending=[True, True, False])
    cols = ["rank", "arm", "runs", "status", "test exact"] + [c for c in df.columns if c.startswith(("rarest", "9"))]
    cols += [c for c in ("beyond training",) if c in df] + [c for c in df.columns if c.startswith("share of")]
    cols += ["valid exact"]
    return df[[c for c in cols if c in df]].fillna("-").reset_index(drop=True)


def _compared(ctx: Ctx, task: str, runs: pd.DataFrame, reps: pd.DataFrame, planned: int | None) -> list[dict]:
    if runs.empty:
        return []
    st = seed_table(runs, ["test/exact", "valid/exact"])
    bins, lengths, cells = per_bin(ctx.study, runs), per_length(runs), pair_cells(ctx.study, runs)
    rare = _rarest(bins)
    op = "+" if task == "sum" else "x"
    out = []
    for family, g in runs.groupby("family", sort=False):
        t = st[(st.family == family) & (st.metric == "test/exact")]
        v = st[(st.family == family) & (st.metric == "valid/exact")]
        if t.empty:
            continue
        t = t.iloc[0]
        replicated = (g.kind == "replicate").all()
        n = int(t.n_seeds)
        mean, lo, hi = float(t["mean"]), float(t.ci_low), float(t.ci_high)
        if n == 1 and "test/n" in g:  # one run: its Wilson interval over the test sequences
            w = cells_wilson(g)
            lo, hi = w if w else (lo, hi)
        failed = _failed(reps, g) if replicated else ""
        row = {
            "arm": family,
            "runs": f"{n} seeds (replicates)" if replicated else "1 search trial (one seed)",
            "status": "ok" + failed,
            "test exact": _iv(mean, lo, hi),
            "valid exact": f"{float(v['mean'].iloc[0]):.3f}" if not v.empty else "-",
            "_mean": mean, "_lo": lo, "_hi": hi, "_stopped": False,
            "_rankable": replicated and n >= MIN_SEEDS_TO_RANK,
            "_covers": {(str(f), str(h)) for f, h in zip(g.family.str.split(" ").str[0], _head(g))},
        }  # fmt: skip
        epochs = sorted(set(g.epochs.dropna().astype(int))) if "epochs" in g else []
        if epochs:
            row["status"] += f", {'/'.join(map(str, epochs))} epoch{'s' * (epochs != [1])}"
        if rare is not None:
            b = bins[(bins.family == family) & (bins.bin.astype(str) == rare)]
            row[f"rarest bin ({rare})"] = _iv(b.exact.iloc[0], b.ci_low.iloc[0], b.ci_high.iloc[0]) if len(b) else "-"
        c = cells[(cells.family == family) & (cells.a == 9) & (cells.b == 9)] if not cells.empty else cells
        row[f"9{op}9 cell"] = _iv(c.exact.iloc[0], c.ci_low.iloc[0], c.ci_high.iloc[0]) if len(c) else "-"
        beyond = lengths[(lengths.family == family) & ~lengths.trained.astype(bool)] if len(lengths) else lengths
        row["beyond training"] = (
            "; ".join(f"K={int(r.length)}: {_iv(r.exact, r.ci_low, r.ci_high)}" for r in beyond.itertuples())
            or "not tested"
        )
        row.update(_shares(ctx, task, family, mean))
        out.append(row)
    return out


def cells_wilson(g: pd.DataFrame) -> tuple[float, float] | None:
    r = g.iloc[0]
    if pd.isna(r.get("test/n")):
        return None
    lo, hi = rate_interval(pd.Series([r["test/exact"]]), pd.Series([r["test/n"]]))
    return float(lo[0]), float(hi[0])


def _rarest(bins: pd.DataFrame) -> str | None:
    """The magnitude bin with the fewest test sequences per run (the task's rarest targets)."""
    if bins.empty:
        return None
    per_run = bins.assign(per=bins.n / bins.n_seeds.clip(lower=1)).groupby(bins.bin.astype(str)).per.mean()
    per_run = per_run[per_run > 0]
    return str(per_run.idxmin()) if not per_run.empty else None


def _failed(reps: pd.DataFrame, g: pd.DataFrame) -> str:
    """', 1 of 5 seeds diverged' for replicates of this arm that did not finish ok."""
    if reps.empty or "source_trial_id" not in g:
        return ""
    mine = reps[reps.source_trial_id.isin(set(g.source_trial_id))]
    bad = mine[mine.status != "ok"]
    if bad.empty:
        return ""
    counts = ", ".join(f"{n} {st}" for st, n in bad.status.value_counts().items())
    return f" ({counts} of {len(mine)} seeds left out)"


def _shares(ctx: Ctx, task: str, family: str, mean: float) -> dict[str, str]:
    """'92% of 0.784' per reference present in the yardsticks (run-stack, strong), by its name."""
    y = ctx.yard
    if y.empty:
        return {}
    y = y[(y.task == task) & (y.scope == "all")]
    y = y[y.families.str.split(", ").map(lambda fs: family in fs)]
    out = {}
    for name in REFERENCES:
        r = y[y.predictor.astype(str) == name]
        if not r.empty and r.exact.iloc[0] > 0:
            out[f"share of {NAMES[name]}"] = f"{mean / r.exact.iloc[0]:.0%} of {r.exact.iloc[0]:.3f}"
    return out


def _uncompared(
    ctx: Ctx, task: str, trials: pd.DataFrame, reps: pd.DataFrame, covered: set, planned: int | None
) -> list[dict]:
    """Arms tried but not compared: every family x head without a compared run, from its best trial
    (furthest budget first, then the study's metric): stopped early, failed, diverged or search-only."""
    metric, mode = ctx.study.metric
    frames = [f.assign(_kind=k) for f, k in ((trials, "search trial"), (reps, "replicate")) if not f.empty]
    if not frames:
        return []
    tried = pd.concat(frames, ignore_index=True)
    tried = tried.assign(_family=tried.family.astype(str).str.split(" ").str[0], _head=_head(tried))
    out = []
    for (family, head), g in tried.groupby(["_family", "_head"], sort=False):
        if (family, head) in covered:
            continue
        g = g.assign(_ep=g.epochs.fillna(0) if "epochs" in g else 0)
        best = rank(g, metric, mode) if metric in g else g
        best = best.sort_values("_ep", ascending=False, kind="stable").iloc[0]
        value = best.get(metric)
        statuses = g.status.value_counts()
        runs = f"{len(g)} {best._kind}{'s' if len(g) > 1 else ''}"
        if len(statuses) > 1:
            runs += " (" + ", ".join(f"{n} {st}" for st, n in statuses.items()) + ")"
        ok = best.status == "ok" and pd.notna(best.get("test/exact"))
        wilson = cells_wilson(best.to_frame().T) if ok else None
        out.append({
            "arm": _label(family, head), "runs": runs,
            "status": _status(best, planned) + (" (search only, not compared)" if ok else ""),
            "test exact": (_iv(best["test/exact"], *wilson) if wilson else f"{best['test/exact']:.3f}") if ok else "-",
            "valid exact": f"{value:.3f}" if pd.notna(value) and metric == "valid/exact" else "-",
            "_mean": None, "_lo": None, "_hi": None, "_stopped": True, "_rankable": False,
        })  # fmt: skip
    out.sort(key=lambda r: LOSSES.index(r["arm"].split(",")[0]) if r["arm"].split(",")[0] in LOSSES else 9)
    return out
