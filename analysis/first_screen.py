"""The report's first screen: per task, the summary table of every arm tried, the yardsticks said once, and
one figure overlaying the compared families (analysis.summary, analysis.overlay)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .baselines import per_family
from .doc import Doc
from .overlay import overlay_figure
from .scores import per_bin, per_length
from .sections import baseline_lines
from .summary import arms

if TYPE_CHECKING:
    from .report import Ctx

HEADING = "Summary"


def summary(ctx: Ctx, doc: Doc) -> None:
    """The Summary section: for each task a table, its yardsticks in one line, and the overlaid figure."""
    ctx.step("summary: every arm per task, one overlaid figure per task")
    doc.h(HEADING)
    metric, _ = ctx.study.metric
    doc.p(
        "Every loss family (and head) the study tried, per task. Test exact is the mean over seeds with its 95% "
        "bootstrap interval (replicates), or one run's Wilson 95% interval over its test sequences. Rank: arms "
        "with replicates at one budget, best first; arms sharing a letter are not separated (their intervals "
        f"overlap the letter's best). Arms known from one search trial, or only from a trial stopped early, are "
        f"listed unranked with their status and budget; their last column is the search metric ({metric})."
    )
    frames = []
    for task in ctx.study.tasks:
        table = arms(ctx, task)
        doc.h(task, level=3)
        if table.empty:
            doc.p(f"{task}: no trial has reported yet.")
            continue
        frames.append(table.assign(task=task))
        doc.table(table)
        doc.bullets(baseline_lines(ctx, task))
        _figure(ctx, doc, task)
    if frames:
        ctx.save_table("summary", pd.concat(frames, ignore_index=True))


def _figure(ctx: Ctx, doc: Doc, task: str) -> None:
    runs = ctx.runs[ctx.runs.task == task] if not ctx.runs.empty else ctx.runs
    if runs.empty:
        return
    lengths, bins = per_length(runs), per_bin(ctx.study, runs)
    empty = pd.DataFrame(columns=["task", "family", "value"])
    y_len = per_family(ctx.yard, "length") if not ctx.yard.empty else empty
    y_bin = per_family(ctx.yard, "bin") if not ctx.yard.empty else empty
    fig = overlay_figure(task, lengths, bins, y_len[y_len.task == task], y_bin[y_bin.task == task])
    caption = (
        f"{task}: test exact of every compared family on one set of axes, per length and per magnitude bin; "
        "bands: 95% intervals; dashed: the references on the same test sequences."
    )
    ctx.save_figure(doc, f"summary_{task}", fig, caption)
