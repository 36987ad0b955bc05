"""The report's comparison sections: the compared runs beside the baselines and the reference, with intervals.

Each section saves its tables, writes its sentences from them and draws its figures (analysis.plots).
A sentence that ranks two families is written only when their intervals separate (analysis.compare.verdict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from . import plots
from .baselines import NAMES, per_family, with_shares, yardstick_table
from .compare import COMPARED_METRICS, describe, rate_interval, seed_table, verdicts
from .doc import Doc
from .scores import pair_cells, per_bin, per_length, per_target

if TYPE_CHECKING:
    from .report import Ctx


def _iv(lo: float, hi: float) -> str:
    return f"[{lo:.2f}, {hi:.2f}]"


def yardsticks(ctx: Ctx) -> pd.DataFrame:
    yard = yardstick_table(ctx.setups)
    ctx.save_table("baselines", yard)
    return yard


def _overall(ctx: Ctx, task: str, family: str) -> dict[str, pd.Series]:
    """The yardsticks' overall rows for a task x family, by predictor."""
    y = ctx.yard[(ctx.yard.task == task) & (ctx.yard.scope == "all")]
    y = y[y.families.str.split(", ").map(lambda fs: family in fs)]
    return {str(r.predictor): r for _, r in y.iterrows()}


def comparison(ctx: Ctx, doc: Doc, headline: list[str]) -> None:
    ctx.step("the comparison: intervals over seeds, baselines, reference")
    doc.h("The comparison")
    runs = ctx.runs
    cmp = seed_table(runs)
    ctx.save_table("comparison", cmp.drop(columns="values"))
    keep = ["kind", "task", "family", "seed", "trial_id", "source_trial_id", "rank", "status", "epochs"]
    ctx.save_table("compared_runs", runs[[c for c in [*keep, *COMPARED_METRICS] if c in runs]])
    reps = runs[runs.kind == "replicate"]
    if not reps.empty:
        epochs = sorted(set(reps.epochs.dropna().astype(int))) if "epochs" in reps else []
        doc.p(
            f"Compared ({', '.join(dict.fromkeys(reps.task))}): the replicates (`seqsum study rerun --per-family`): "
            "each family's best search configuration retrained with fresh seeds and one shared budget "
            f"({', '.join(map(str, epochs)) or '?'} epoch(s)). Each number is the mean over seeds with its 95% "
            "bootstrap interval over seeds, then the per-seed values."
        )
    single = [t for t in dict.fromkeys(runs.task) if t not in set(reps.task)]
    if single:
        doc.p(
            f"No replicates for {', '.join(single)}: compared there is each family's best search trial, one seed "
            "each (n = 1), so no interval over seeds exists and no family is ranked above another. "
            "Run `seqsum study rerun STUDY --per-family --seeds 5` for the comparison."
        )
    for task in [t for t in ctx.study.tasks if t in set(runs.task)]:
        c = cmp[cmp.task == task]
        lines = []
        for family, g in c.groupby("family", sort=False):
            parts = [f"{r.metric} {describe(r['mean'], r.ci_low, r.ci_high, r.n_seeds, r['values'])}"
                     + _wilson(runs, task, family, r) for _, r in g.iterrows()]  # fmt: skip
            lines.append(f"{task}, {family}: " + "; ".join(parts))
        doc.bullets(lines)
        ranked = verdicts(c)
        doc.bullets(ranked)
        headline += [f"{task}: {v}" for v in ranked if "beats" in v and "test/exact" in v]
        best = c[c.metric == "test/exact"].sort_values("mean", ascending=False)
        if not best.empty:
            b = best.iloc[0]
            ref = _overall(ctx, task, b.family).get("reference")
            headline.append(
                f"{task}: highest test exact {b.family} {describe(b['mean'], b.ci_low, b.ci_high, b.n_seeds)}"
                + (f"; reference {ref.exact:.3f} {_iv(ref.ci_low, ref.ci_high)}" if ref is not None else "")
            )
    wide = cmp.assign(value=[describe(m, lo, hi, n) for m, lo, hi, n in zip(cmp["mean"], cmp.ci_low, cmp.ci_high,
                                                                           cmp.n_seeds)])  # fmt: skip
    doc.table(wide.pivot_table(index=["task", "family"], columns="metric", values="value", aggfunc="first",
                               sort=False).reset_index())  # fmt: skip


def _wilson(runs: pd.DataFrame, task: str, family: str, r: pd.Series) -> str:
    """For one run's test exact: its Wilson 95% interval over the test sequences."""
    if r.n_seeds != 1 or r.metric != "test/exact" or "test/n" not in runs:
        return ""
    run = runs[(runs.task == task) & (runs.family == family)].iloc[0]
    lo, hi = rate_interval(pd.Series([run["test/exact"]]), pd.Series([run["test/n"]]))
    return f", Wilson {_iv(lo[0], hi[0])} over its {int(run['test/n'])} test sequences"


def baseline_lines(ctx: Ctx, task: str) -> list[str]:
    out = []
    y = ctx.yard[(ctx.yard.task == task) & (ctx.yard.scope == "all")]
    for families, g in y.groupby("families", sort=False):
        parts = []
        for r in g.itertuples():
            what = NAMES[str(r.predictor)]
            if r.predictor == "most_frequent":
                s = next(x for x in ctx.setups if x.task == task and ", ".join(x.families) == families)
                value = s.sequences[s.sequences.predictor == "most_frequent"].prediction.iloc[0]
                what += f" ({value:.0f})"
            parts.append(f"{what} exact {r.exact:.3f} {_iv(r.ci_low, r.ci_high)}, MAE {r.mae:,.2f}, MSE {r.mse:,.1f}")
        out.append(f"{task} yardsticks (for {families}, n = {int(g.n.iloc[0])} test sequences): " + "; ".join(parts))
    return out


def _with_yard(ctx: Ctx, df: pd.DataFrame, scope: str, col: str) -> pd.DataFrame:
    y = per_family(ctx.yard, scope).rename(columns={"value": col})
    if df.empty or y.empty:
        return df
    cast = int if scope == "length" else str
    y[col] = y[col].map(cast)
    out = df.assign(**{col: df[col].map(cast)}).merge(y, on=["task", "family", col], how="left")
    return with_shares(out)


def magnitude(ctx: Ctx, doc: Doc, headline: list[str]) -> None:
    ctx.step("error by magnitude")
    doc.h("Error by magnitude")
    bins = _with_yard(ctx, per_bin(ctx.study, ctx.runs), "bin", "bin")
    ctx.save_table("by_bin", bins)
    doc.p(
        "Exact per target magnitude bin: mean over seeds with its 95% interval (Wilson for one run), beside the "
        "reference on the same test sequences."
    )
    lines = []
    for (task, family), b in bins.groupby(["task", "family"], sort=False):
        per = "; ".join(
            f"{r.bin}: {r.exact:.2f} {_iv(r.ci_low, r.ci_high)}"
            + (f" vs reference {r.reference:.2f}" if "reference" in b and pd.notna(r.reference) else "")
            for r in b.itertuples()
        )
        lines.append(f"{task}, {family} (n = {int(b.n_seeds.max())} seed(s)): {per}")
    doc.bullets(lines)
    for task, b in bins.groupby("task", sort=False):
        by = b.groupby("bin", sort=False).exact.max()
        headline.append(f"{task}: hardest magnitude bin {by.idxmin()} (best family {by.min():.2f} exact there)")
    y = per_family(ctx.yard, "bin") if not ctx.yard.empty else pd.DataFrame(columns=["task", "family", "value"])
    caption = "Exact and MAE per magnitude bin; bands: 95% intervals over seeds; dashed: reference; dotted: baselines."
    ctx.save_figure(doc, "magnitude", plots.magnitude_figure(bins, y), caption)
    pt = per_target(ctx.study, ctx.runs)
    ctx.save_table("per_target", pt)
    caption = "Exact and MAE per target value (mean over seeds), one colour per family."
    ctx.save_figure(doc, "error_by_target", plots.error_by_target(pt), caption)
    best = ctx.best[ctx.best.selection == "bucket"]
    if not best.empty:
        runs = ctx.study.trials.merge(best[["task", "trial_id", "group"]], on=["task", "trial_id"])
        buckets = per_bin(ctx.study, runs.assign(family=runs.group))
        ctx.save_table("by_bin_bucket", buckets)
        doc.p("Best search trial per width/depth bucket (GRU layers x first GRU width): exact per bin, one seed each.")
        for task, b in buckets.groupby("task", sort=False):
            t = b.pivot_table(index="family", columns="bin", values="exact", observed=True, sort=False)
            doc.table(t.reset_index().rename(columns={"family": f"{task} bucket"}))


def lengths(ctx: Ctx, doc: Doc) -> None:
    ctx.step("score per length")
    doc.h("Score per length")
    df = _with_yard(ctx, per_length(ctx.runs), "length", "length")
    ctx.save_table("per_length", df)
    lines = []
    for (task, family), d in df.groupby(["task", "family"], sort=False):
        per = "; ".join(
            f"K={r.length}{'' if r.trained else ' (extrapolated)'}: {r.exact:.2f} {_iv(r.ci_low, r.ci_high)}"
            + (f", no class for {r.unreachable:.0%} of its targets" if r.unreachable > 0 else "")
            + (
                f" ({r.share_of_reference:.0%} of the reference's {r.reference:.2f})"
                if "reference" in d and pd.notna(r.reference) and r.reference > 0
                else ""
            )  # fmt: skip
            for r in d.itertuples()
        )
        lines.append(f"{task}, {family}: {per}")
    doc.bullets(lines)
    y = per_family(ctx.yard, "length") if not ctx.yard.empty else pd.DataFrame(columns=["task", "family", "value"])
    caption = (
        "Exact per sequence length per family (band: 95% interval), the reference (dashed) and baselines (dotted)."
    )
    ctx.save_figure(doc, "per_length", plots.length_figure(df, y), caption)


def pairs(ctx: Ctx, doc: Doc, headline: list[str]) -> None:
    ctx.step("the 9x9 question: digit-pair grids")
    doc.h("The 9x9 question")
    cells = pair_cells(ctx.study, ctx.runs)
    ref = [s.pairs.assign(task=s.task, family=f) for s in ctx.setups if not s.pairs.empty for f in s.families]
    if ref:
        r = pd.concat(ref, ignore_index=True)[["task", "family", "a", "b", "exact", "ci_low", "ci_high"]]
        r = r.rename(columns={"exact": "reference", "ci_low": "reference_ci_low", "ci_high": "reference_ci_high"})
        cells = cells.merge(r, on=["task", "family", "a", "b"], how="left")
        cells["below_reference"] = cells.ci_high < cells.reference_ci_low
    ctx.save_table("pairs", cells)
    doc.p(
        'The original post: "can get 1x9 every time, but never 9x9". Length-2 test sequences for every digit pair '
        "(a, b); per cell the exact rate with its 95% interval (over seeds; Wilson for one run) and the reference's "
        "on the same sequences. A red dot marks a cell whose interval lies wholly below the reference's."
    )
    rows = []
    for (task, family), g in cells.groupby(["task", "family"], sort=False):
        op = "+" if task == "sum" else "x"
        nine, one = g[(g.a == 9) & (g.b == 9)].iloc[0], g[(g.a == 1) & (g.b == 9)].iloc[0]
        n_below = int(g.below_reference.sum()) if "below_reference" in g else 0
        text = (
            f"9{op}9: {nine.exact:.2f} {_iv(nine.ci_low, nine.ci_high)} "
            f"(n = {int(nine.n / nine.n_seeds)} per seed, {int(nine.n_seeds)} seed(s))"
            + (
                f", reference {nine.reference:.2f} {_iv(nine.reference_ci_low, nine.reference_ci_high)}"
                if "reference" in g
                else ""
            )  # fmt: skip
            + f"; 1{op}9: {one.exact:.2f} {_iv(one.ci_low, one.ci_high)}; whole grid {g.exact.mean():.2f}"
            + (f"; {n_below} of 100 cells below the reference" if "reference" in g else "")
        )
        rows.append({"task": task, "family": family, "exact_9x9": nine.exact, "ci_low_9x9": nine.ci_low,
                     "ci_high_9x9": nine.ci_high, "cells_below_reference": n_below, "verdict": text})  # fmt: skip
    verdicts = pd.DataFrame(rows)
    ctx.save_table("pair_verdicts", verdicts)
    doc.bullets([f"{r.task}, {r.family}: {r.verdict}" for r in verdicts.itertuples()])
    for task in [t for t in ("sum", "product") if t in set(cells.task)]:
        r = next((s.pairs for s in ctx.setups if s.task == task and not s.pairs.empty), None)
        fig = plots.pair_heatmaps(cells[cells.task == task], r)
        ctx.save_figure(doc, f"pairs_{task}", fig, f"{task}: % exact per digit pair, each family and the reference.")
    if not verdicts.empty:
        for r in verdicts.sort_values("exact_9x9", ascending=False).groupby("task", sort=False).head(1).itertuples():
            headline.append(f"{r.task}: best 9{'+' if r.task == 'sum' else 'x'}9 cell {r.family}: {r.verdict}")


def reference(ctx: Ctx, doc: Doc) -> None:
    ctx.step("baselines and the reference")
    doc.h("Baselines and the reference")
    doc.p(
        "Constant baselines: always the most frequent training target, and always the training mean. The reference: "
        "a digit classifier with the run's own conv stack and a 10-way head, trained on the same training images, "
        "reads every image of the same test sequences; the sum or product of the digits it reads is its answer. "
        "It is what an end-to-end model that had learned the arithmetic perfectly would score with that recognizer: "
        "not an upper bound (a model can read digits better, and a misread 0 still gives the right product 0)."
    )
    if not ctx.setups:
        doc.p("No baselines or reference: see the notes in the overview.")
        return
    for s in ctx.setups:
        r = s.reference
        if r is None:
            doc.p(f"{s.task} ({', '.join(s.families)}): no reference classifier (see the notes).")
            continue
        worst = min(range(10), key=lambda d: r.per_digit[d])
        doc.p(
            f"{s.task} ({', '.join(s.families)}): the reference classifier ({s.stack}) trained on "
            f"{r.info['n_train']} train-pool digits reads the {r.info['n_test']} test-pool digits with accuracy "
            f"{r.accuracy:.3f} (weakest digit {worst}: {r.per_digit[worst]:.2f})."
        )
        if s.strong is not None:
            g = s.strong
            doc.p(f"The strong reference reads the same test-pool digits with accuracy {g.accuracy:.3f}: "
                  f"{g.info['architecture']}, trained on the same {g.info['n_train']} digits.")  # fmt: skip
    show = ctx.yard[ctx.yard.scope != "bin"].assign(predictor=lambda d: d.predictor.map(lambda p: NAMES[str(p)]))
    doc.table(show, max_rows=60)
