"""`build_report(study_dir)`: the study's report folder (index.html, report.md, tables/, figures/).

Every sentence is computed from the tables; nothing in the study folder outside the report folder
is written (optuna.db is read from a copy).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from seqsum.config import ConfigError, RunConfig

from . import plots, tables
from .ceiling import DEFAULT_SHAPE, Ceiling, cache_key, get_ceiling
from .doc import Doc
from .filters import compare_run, plot_filters
from .load import Study, load_study
from .optuna_db import optuna_importances

SECTIONS = ("Overview", "Error by magnitude", "The 9x9 question", "The ceiling", "The search", "First-layer filters")


@dataclass
class Ctx:
    study: Study
    out: Path
    train_ceiling: bool
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    ceilings: dict[str, Ceiling | None] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    def step(self, text: str) -> None:
        print(f"[report {time.perf_counter() - self.t0:5.1f}s] {text}", flush=True)

    def save_table(self, name: str, df: pd.DataFrame) -> None:
        df.to_csv(self.out / "tables" / f"{name}.csv", index=False)

    def save_figure(self, doc: Doc, name: str, fig, caption: str) -> None:
        fig.savefig(self.out / "figures" / f"{name}.png", dpi=110)
        doc.figure(f"figures/{name}.png", caption)


def build_report(study_dir: Path, out: Path | None = None, train_ceiling: bool = True) -> Path:
    """Read the study in `study_dir`, write its report into `out` (default STUDY_DIR/report), return that folder.

    Raises ConfigError (one line) when `study_dir` is not a study or `out` cannot be written.
    With train_ceiling=False the simple CNN is only read from its cache, never trained.
    """
    study = load_study(study_dir)
    out = Path(out) if out else study.dir / "report"
    _prepare(out)
    ctx = Ctx(study, out, train_ceiling)
    ctx.step(f"study {study.name!r}: {len(study.trials)} trial folders, {len(study.finished)} finished")
    doc = Doc(f"Sum vs product: study {study.name}")
    ctx.best = tables.best_trials(study)
    ctx.save_table("trials", study.trials.drop(columns="params"))
    ctx.save_table("epochs", study.epochs)
    ctx.save_table("best_trials", ctx.best)
    finished = not study.finished.empty
    ceiled = section_ceiling_numbers(ctx) if finished else pd.DataFrame()
    headline: list[str] = []
    section_overview(ctx, doc, ceiled, headline)
    if not finished:
        doc.p(
            f"No trial has finished yet ({len(study.trials)} trial folders, none with test metrics): there is "
            "nothing to compare. Run `seqsum report` again once trials finish."
        )
        for name in SECTIONS[1:]:
            doc.h(name)
            doc.p("Skipped: no finished trial.")
    else:
        section_magnitude(ctx, doc, ceiled, headline)
        section_pairs(ctx, doc, headline)
        section_ceiling(ctx, doc, ceiled)
        section_search(ctx, doc)
        section_filters(ctx, doc)
    if headline:
        doc.blocks[0:0] = [("h", (2, "Key findings")), ("ul", headline)]
    (out / "report.md").write_text(doc.markdown() + "\n")
    (out / "index.html").write_text(doc.html(out))
    ctx.step(f"wrote {out / 'index.html'} and report.md ({len(doc.figures)} figures)")
    return out


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report folder {str(out)!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for sub in ("figures", "tables"):  # ours: replaced on every report; the ceiling cache stays
            shutil.rmtree(out / sub, ignore_errors=True)
            (out / sub).mkdir()
    except OSError as e:
        raise ConfigError(f"cannot write the report folder {str(out)!r}: {e.strerror}") from None


# --- sections -------------------------------------------------------------------------------------
def section_overview(ctx: Ctx, doc: Doc, ceiled: pd.DataFrame, headline: list[str]) -> None:
    s = ctx.study
    metric, mode = s.metric
    doc.h("Overview")
    counts = tables.overview(s)
    status = s.trials.status.value_counts() if not s.trials.empty else pd.Series(dtype=int)
    doc.p(
        f"Study `{s.name}` in `{s.dir}`: tasks {', '.join(s.tasks) or 'none yet'}; {len(s.trials)} trial folders"
        + "".join(f", {n} {st}" for st, n in status.items())
        + f". Trials are ranked by {metric} ({mode})."
    )
    doc.table(counts)
    doc.bullets([f"Note: {n}" for n in s.notes])
    if not s.finished.empty:
        best = tables.by_task(tables.rank(s.finished, metric, mode).groupby("task", sort=False).head(1))
        overall = tables.overall_ceiling(ceiled).set_index(["task", "trial_id"]) if not ceiled.empty else None
        for _, r in best.iterrows():
            bound = overall.bound.get((r.task, r.trial_id), float("nan")) if overall is not None else float("nan")
            headline.append(
                f"{r.task}: best trial {r.trial_id} ({r.family}), {metric} {r[metric]:.3f}, test exact "
                f"{r['test/exact']:.3f}"
                + (f" vs ceiling {bound:.3f}" if pd.notna(bound) else "")
                + f", test MAE {r['test/mae']:.2f}"
            )


def section_ceiling_numbers(ctx: Ctx) -> pd.DataFrame:
    """Train or read the simple CNN per task (the shape of that task's best trial) and put p**K beside every exact."""
    s = ctx.study
    ctx.step("ceiling: simple CNN digit classifier per task")
    for task in s.tasks:
        sel = ctx.best[(ctx.best.task == task) & (ctx.best.selection == "family")]
        if sel.empty:
            continue
        top = sel.sort_values("score", ascending=s.metric[1] == "min").iloc[0]
        run = s.trials[(s.trials.task == task) & (s.trials.trial_id == top.trial_id)].iloc[0]
        cfg = RunConfig.load(Path(run.run_dir) / "config.json")
        m = cfg.model
        shape = (m.conv_channels[0], m.conv_kernels[0], m.activation) if m.conv_channels else DEFAULT_SHAPE
        key = cache_key(cfg.data, shape)
        try:
            known = next((c for t, c in ctx.ceilings.items() if c is not None and c.info.get("key") == key), None)
            ctx.ceilings[task] = known or get_ceiling(
                cfg.data, shape, ctx.out / "ceiling", train_if_missing=ctx.train_ceiling
            )
        except ConfigError as e:
            ctx.ceilings[task] = None
            s.notes.append(f"{task}: no ceiling (the digits could not be loaded: {e})")
            continue
        c = ctx.ceilings[task]
        if c is not None:
            c.info["key"] = key
        if c is None:
            s.notes.append(f"{task}: no ceiling (training the simple CNN was turned off and none is cached)")
        else:
            ctx.step(
                f"  {task}: simple CNN {shape}, per-digit test accuracy {c.accuracy:.3f}"
                + (" (cached)" if c.info.get("cached") else f" (trained in {c.info['train_seconds']}s)")
            )
    return tables.with_ceiling(tables.per_length(s, ctx.best), ctx.ceilings)


def section_magnitude(ctx: Ctx, doc: Doc, ceiled: pd.DataFrame, headline: list[str]) -> None:
    ctx.step("error by magnitude")
    s = ctx.study
    doc.h("Error by magnitude")
    pt = tables.by_target(s, ctx.best)
    bins = tables.by_bin(pt)
    overall = (
        tables.overall_ceiling(ceiled)
        if not ceiled.empty
        else pd.DataFrame(columns=["task", "group", "exact", "bound"])
    )
    ctx.save_table("per_target", pt)
    ctx.save_table("by_bin", bins)
    loss_pt, loss_bins = pt[pt.selection == "family"], bins[bins.selection == "family"]
    doc.p(
        "Best trial per task and loss family (by the ranking metric). Exact is the share of test sequences "
        "whose rounded prediction equals the target; the ceiling is the digit classifier's p^K, weighted over the "
        "test lengths."
    )
    lines = []
    for (task, group), b in loss_bins.groupby(["task", "group"], sort=False):
        row = s.trials[(s.trials.task == task) & (s.trials.trial_id == b.trial_id.iloc[0])].iloc[0]
        o = overall[(overall.task == task) & (overall.group == group)]
        ceiling = f" vs ceiling {o.bound.iloc[0]:.2f}" if not o.empty and pd.notna(o.bound.iloc[0]) else ""
        per_bin = ", ".join(
            f"{e:.2f} for {'targets ' if i == 0 else ''}{lab}" for i, (lab, e) in enumerate(zip(b.bin, b.exact))
        )
        lines.append(
            f"{task}, {group} ({b.trial_id.iloc[0]}): exact {row['test/exact']:.2f}{ceiling}; {per_bin}; "
            f"MAE {b.mae.iloc[0]:.2f} in the smallest bin, {b.mae.iloc[-1]:.2f} in the largest"
        )
    doc.bullets(lines)
    doc.bullets(_side_by_side(s, loss_bins))
    doc.bullets(_hardest(loss_bins, headline))
    ctx.save_figure(
        doc,
        "error_by_target",
        plots.error_by_target(loss_pt),
        "Exact, MAE and relative error per target value, best trial per loss family (product on a symlog axis).",
    )
    ctx.save_figure(doc, "magnitude_loss", plots.bin_heatmap(loss_bins), "Exact per magnitude bin, loss family x bin.")
    buckets = bins[bins.selection == "bucket"]
    doc.p(
        f"Best trial per width/depth bucket (GRU layers x first GRU width), exact per magnitude bin "
        f"({buckets.group.nunique()} bucket(s) in the study):"
    )
    for task, b in buckets.groupby("task", sort=False):
        t = b.pivot_table(index=["group", "trial_id"], columns="bin", values="exact", observed=True, sort=False)
        doc.table(t.reset_index().rename(columns={"group": f"{task} bucket"}))
    if buckets.group.nunique() > 1:
        ctx.save_figure(
            doc, "magnitude_bucket", plots.bin_heatmap(buckets), "Exact per magnitude bin, width/depth bucket x bin."
        )


def _side_by_side(s: Study, bins: pd.DataFrame) -> list[str]:
    """Sum and product of the same loss family in one line: overall exact and the largest bin."""
    out = []
    for group in [g for g in tables.LOSS_ORDER if g in set(bins.group)]:
        parts = []
        for task in ("sum", "product"):
            b = bins[(bins.task == task) & (bins.group == group)]
            if b.empty:
                continue
            exact = s.trials.set_index(["task", "trial_id"]).loc[(task, b.trial_id.iloc[0]), "test/exact"]
            parts.append(f"{task} {exact:.2f} ({b.exact.iloc[-1]:.2f} for {b.bin.iloc[-1]})")
        if len(parts) == 2:
            out.append(f"{group}, side by side: exact " + " vs ".join(parts))
    return out


def _hardest(bins: pd.DataFrame, headline: list[str]) -> list[str]:
    out = []
    for task, b in bins.groupby("task", sort=False):
        by = b.groupby("bin", observed=True).exact.max()  # the best loss family in each bin
        worst = by.idxmin()
        out.append(
            f"{task}: hardest magnitude bin {worst} (exact {by[worst]:.2f} for the best loss family there), "
            f"easiest {by.idxmax()} ({by.max():.2f})"
        )
        headline.append(out[-1])
    return out


def section_pairs(ctx: Ctx, doc: Doc, headline: list[str]) -> None:
    ctx.step("the 9x9 question: digit-pair grids")
    s = ctx.study
    doc.h("The 9x9 question")
    pairs = tables.pair_grids(s, ctx.best)
    verdicts = tables.pair_verdicts(pairs)
    ctx.save_table("pairs", pairs)
    ctx.save_table("pair_verdicts", verdicts)
    doc.p(
        'The original post: "can get 1x9 every time, but never 9x9". Below, length-2 test sequences for every '
        "digit pair (a, b), scored by the best trial of each task and loss family; the red square is 9x9 (9+9)."
    )
    doc.bullets([f"{r.task}, {r.group} ({r.trial_id}): {r.verdict}" for r in verdicts.itertuples()])
    for task in ("sum", "product"):
        p = pairs[pairs.task == task]
        if not p.empty:
            totals = tables.sum_by_total(pairs) if task == "sum" else None
            ctx.save_figure(
                doc,
                f"pairs_{task}",
                plots.pair_heatmaps(p, verdicts, totals),
                f"{task}: exact per digit pair" + (" and per a + b" if task == "sum" else "") + ".",
            )
    if not verdicts.empty:
        v = verdicts.sort_values("exact_9x9", ascending=False).groupby("task", sort=False).head(1)
        for r in v.itertuples():
            headline.append(
                f"{r.task}: best 9{'+' if r.task == 'sum' else 'x'}9 cell {r.correct_9x9}/{r.n_9x9} correct ({r.group})"
            )


def section_ceiling(ctx: Ctx, doc: Doc, ceiled: pd.DataFrame) -> None:
    ctx.step("the ceiling")
    doc.h("The ceiling")
    ctx.save_table("ceiling", ceiled)
    have = {t: c for t, c in ctx.ceilings.items() if c is not None}
    if not have:
        doc.p("No ceiling: the simple CNN digit classifier is unavailable (see the notes in the overview).")
        return
    lengths = sorted(ceiled.length.unique())
    for c in {c.info["key"]: c for c in have.values()}.values():
        tasks = " and ".join(t for t, x in have.items() if x is c)
        ch, k, act = c.info["shape"]
        worst = min(range(10), key=lambda d: c.per_digit[d])
        doc.p(
            f"{tasks}: a simple CNN ({ch} filters of {k}x{k}, {act}, the first-layer shape of the best trial; "
            f"max-pool, dense 128, softmax) trained on the same {c.info['n_train']} train-pool digits reads single "
            f"test-pool digits with accuracy p = {c.accuracy:.3f} (weakest digit {worst}: {c.per_digit[worst]:.2f}). "
            f"A sequence model that reads each digit that well gets a length-K sequence right with probability "
            f"about p^K: {', '.join(f'K={K}: {c.bound(K):.2f}' for K in lengths)}."
        )
    lines = []
    for (task, group), d in ceiled.groupby(["task", "group"], sort=False):
        if d.bound.isna().all():
            continue
        d = d.sort_values("length")
        per = "; ".join(f"K={r.length}: {r.exact:.2f} vs {r.bound:.2f}" for r in d.itertuples())
        lines.append(
            f"{task}, {group}: exact vs ceiling per length: {per} "
            f"(longest length at {d.share_of_bound.iloc[-1]:.0%} of its ceiling)"
        )
    doc.bullets(lines)
    show = ceiled.rename(columns={"group": "loss", "bound": "ceiling p^K", "pipeline": "classify-then-compute"})
    doc.table(show.drop(columns=["p"]))
    ctx.save_figure(
        doc,
        "ceiling",
        plots.ceiling_plot(ceiled),
        "Test exact per sequence length against p^K (dashed) and a classify-each-digit-then-compute pipeline (dotted).",
    )


def section_search(ctx: Ctx, doc: Doc) -> None:
    ctx.step("the search: importance, progress, learning curves, top configs")
    s = ctx.study
    metric, mode = s.metric
    doc.h("The search")
    imp, skipped = optuna_importances(s.optuna)
    ctx.save_table("importance", imp)
    for task, d in imp.groupby("task", sort=False):
        d = d.sort_values("importance", ascending=False)
        doc.p(
            f"{task}: most important parameter {d.param.iloc[0]} ({d.importance.iloc[0]:.2f})"
            + (f", then {d.param.iloc[1]} ({d.importance.iloc[1]:.2f})" if len(d) > 1 else "")
            + f", over {int(d.n_trials.iloc[0])} complete Optuna trials."
        )
    doc.bullets([f"Parameter importance skipped for {line}" for line in skipped])
    if imp.empty and not skipped:
        doc.p("No parameter importance: optuna.db has no usable Optuna study (see the notes in the overview).")
    if not imp.empty:
        ctx.save_figure(doc, "importance", plots.importance_plot(imp), "Optuna parameter importance per task.")
    bsf = tables.best_so_far(s)
    ctx.save_table("best_so_far", bsf)
    for task, d in bsf.groupby("task", sort=False):
        d = d.dropna(subset=["score"])
        if d.empty:
            continue
        final = d.best_so_far.iloc[-1]
        first = d[d.best_so_far == final].number.iloc[0]
        doc.p(f"{task}: {len(d)} scored trials; the best {metric} {final:.3f} was first reached at trial {first}.")
    ctx.save_figure(
        doc, "best_so_far", plots.best_so_far_plot(bsf, metric), f"{metric} of every trial and the best so far."
    )
    top = tables.top_configs(s)
    ctx.save_table("top_configs", top)
    curves = top[top["rank"] <= 5] if not top.empty else top
    if not s.epochs.empty and not curves.empty:
        ctx.save_figure(
            doc, "learning_curves", plots.learning_curves(s.epochs, curves), "Learning curves of the top trials."
        )
    overall = (
        tables.overall_ceiling(tables.with_ceiling(_per_length_all(s, top), ctx.ceilings)) if not top.empty else None
    )
    if overall is not None and overall.bound.notna().any():
        top = top.merge(
            overall[["task", "trial_id", "bound"]].rename(columns={"bound": "ceiling"}),
            on=["task", "trial_id"],
            how="left",
        )
    doc.p(
        "Top configurations per task"
        + (
            " with their replicates' test exact (mean [95% interval] over seeds)."
            if not s.replicates.empty
            else " (no replicates: one seed each)."
        )
    )
    doc.table(top)


def _per_length_all(s: Study, top: pd.DataFrame) -> pd.DataFrame:
    sel = top[["task", "trial_id"]].merge(s.trials[["task", "trial_id", "family", "bucket"]], on=["task", "trial_id"])
    return tables.per_length(s, sel.assign(selection="family", group=sel.family, score=0.0))


def section_filters(ctx: Ctx, doc: Doc) -> None:
    ctx.step("first-layer filters")
    s = ctx.study
    doc.h("First-layer filters")
    doc.p(
        'As in the post\'s "Visualizing Layer 1": the first conv layer of the best trial per task beside the '
        "simple CNN's (same shape, same train digits). Similarity = mean |cosine| of the best one-to-one matching "
        "of zero-mean, unit-norm filters, against the same score for random filters."
    )
    rows = []
    for task in s.tasks:
        sel = ctx.best[(ctx.best.task == task) & (ctx.best.selection == "family")]
        if sel.empty:
            continue
        top = sel.sort_values("score", ascending=s.metric[1] == "min").iloc[0]
        run_dir = Path(s.trials[(s.trials.task == task) & (s.trials.trial_id == top.trial_id)].run_dir.iloc[0])
        try:
            c = compare_run(run_dir, ctx.out / "ceiling", train_if_missing=ctx.train_ceiling)
        except ConfigError as e:
            doc.p(f"{task}: skipped ({e}).")
            continue
        doc.p(c.sentence + ".")
        rows.append(
            {
                "task": task,
                "trial_id": top.trial_id,
                "filters": len(c.run),
                "kernel": c.run.shape[1],
                "similarity": c.score,
                "random_mean": c.random_mean,
                "random_std": c.random_std,
            }
        )
        ctx.save_figure(
            doc,
            f"filters_{task}",
            plot_filters(c),
            f"{task}: first-layer filters of trial {top.trial_id} and the simple CNN.",
        )
    ctx.save_table("filters", pd.DataFrame(rows))
