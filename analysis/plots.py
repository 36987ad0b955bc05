"""Plots: each takes tidy DataFrames (from analysis.tables) and returns a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no GUI backend, no global state);
`savefig` renders PNGs with Agg.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .tables import BINS, LOSS_ORDER

TASKS = ("sum", "product")
COLORS = {"mse": "#1f77b4", "log": "#ff7f0e", "classify": "#2ca02c"}


def _color(group: str, i: int) -> str:
    return COLORS.get(group, f"C{3 + i}")


def _groups(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df.group))
    return sorted(present, key=lambda g: (LOSS_ORDER.index(g) if g in LOSS_ORDER else 9, g))


def _tasks(df: pd.DataFrame) -> list[str]:
    return [t for t in TASKS if t in set(df.task)]


def error_by_target(per_target: pd.DataFrame) -> Figure:
    """Exact, MAE and relative error vs target value; one line per loss family; sum and product side by side."""
    tasks = _tasks(per_target)
    metrics = (("exact", "exact"), ("mae", "MAE"), ("rel_err", "relative error"))
    fig = Figure(figsize=(6 * len(tasks), 9), layout="constrained")
    axes = fig.subplots(3, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        df = per_target[per_target.task == task]
        for i, (col, label) in enumerate(metrics):
            ax = axes[i, j]
            for k, g in enumerate(_groups(df)):
                d = df[df.group == g].sort_values("target")
                # the product has hundreds of sparse target values: points, not a zigzag line
                ax.plot(
                    d.target,
                    d[col],
                    marker="o",
                    ms=2.5,
                    lw=0 if task == "product" else 1,
                    alpha=0.8,
                    color=_color(g, k),
                    label=f"{g} ({d.trial_id.iloc[0]})",
                )
            if task == "product":
                ax.set_xscale("symlog", linthresh=1)
                if col != "exact":
                    ax.set_yscale("symlog", linthresh=1)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(f"{task}: best trial per loss family")
                ax.set_ylim(-0.03, 1.03)
                ax.legend(fontsize=8)
            if i == 2:
                ax.set_xlabel("target value" + (" (symlog)" if task == "product" else ""))
    return fig


def bin_heatmap(bins: pd.DataFrame, value: str = "exact") -> Figure:
    """Exact (or another metric) per magnitude bin: one heatmap per task, rows = group (loss family or bucket)."""
    tasks = _tasks(bins)
    fig = Figure(figsize=(5.5 * len(tasks), 1.2 + 0.55 * max(len(_groups(bins)), 2)), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        df = bins[bins.task == task]
        groups = _groups(df)
        labels = [lab for _, _, lab in BINS[task]]
        grid = df.pivot_table(index="group", columns="bin", values=value, observed=False).reindex(
            index=groups, columns=labels
        )
        n = df.pivot_table(index="group", columns="bin", values="n", aggfunc="sum", observed=False).reindex(
            index=groups, columns=labels
        )
        im = ax.imshow(grid.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (r, c), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            text = "n/a" if np.isnan(v) else f"{v:.2f}\nn={int(n.iat[r, c])}"
            ax.text(
                c, r, text, ha="center", va="center", fontsize=8, color="white" if np.isnan(v) or v < 0.6 else "black"
            )
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(groups)), groups)
        ax.set_xlabel("target magnitude")
        ax.set_title(f"{task}: {value} per magnitude bin")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=value)
    return fig


def pair_heatmaps(pairs: pd.DataFrame, verdicts: pd.DataFrame, totals: pd.DataFrame | None = None) -> Figure:
    """10x10 exact per (a, b) for each loss family of one task, with the verdict as subtitle.

    For the sum, a second row shows exact per a + b (from `totals`).
    """
    task = pairs.task.iloc[0]
    groups = _groups(pairs)
    extra = task == "sum" and totals is not None and not totals.empty
    fig = Figure(figsize=(4.6 * len(groups), 5.2 + (2.6 if extra else 0)), layout="constrained")
    grid = fig.add_gridspec(2 if extra else 1, len(groups), height_ratios=[2, 0.9] if extra else [1])
    op = "+" if task == "sum" else "x"
    for k, g in enumerate(groups):
        ax = fig.add_subplot(grid[0, k])
        df = pairs[pairs.group == g]
        m = df.pivot_table(index="a", columns="b", values="exact").reindex(index=range(10), columns=range(10))
        im = ax.imshow(m.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis")
        for (a, b), v in np.ndenumerate(m.to_numpy(dtype=float)):
            if not np.isnan(v):
                ax.text(
                    b, a, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black"
                )
        ax.add_patch(Rectangle((8.5, 8.5), 1, 1, fill=False, ec="red", lw=2))
        ax.set_xticks(range(10)), ax.set_yticks(range(10))
        ax.set_xlabel("b"), ax.set_ylabel("a")
        v = verdicts[(verdicts.task == task) & (verdicts.group == g)]
        line = v.verdict.iloc[0].split(";")[0] if not v.empty else ""
        ax.set_title(f"{task} {g} ({df.trial_id.iloc[0]}): % exact per a{op}b\n{line}", fontsize=9)
    fig.colorbar(im, ax=fig.axes, shrink=0.6, label="exact")
    if extra:
        ax = fig.add_subplot(grid[1, :])
        for k, g in enumerate(groups):
            d = totals[totals.group == g].sort_values("total")
            ax.plot(d.total, d.exact, marker="o", color=_color(g, k), label=g)
        ax.set_xticks(range(19))
        ax.set_xlabel("a + b"), ax.set_ylabel("exact"), ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
        ax.set_title("sum: exact per a + b")
    return fig


def ceiling_plot(ceiled: pd.DataFrame) -> Figure:
    """Exact per test length for each loss family, beside the ceiling p**K and the classify-then-compute pipeline."""
    tasks = _tasks(ceiled)
    fig = Figure(figsize=(5.5 * len(tasks), 4), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        df = ceiled[ceiled.task == task]
        for k, g in enumerate(_groups(df)):
            d = df[df.group == g].sort_values("length")
            ax.plot(d.length, d.exact, marker="o", color=_color(g, k), label=f"{g} ({d.trial_id.iloc[0]})")
        b = df.drop_duplicates("length").sort_values("length")
        if b.bound.notna().any():
            ax.plot(b.length, b.bound, "k--", label=f"ceiling p^K, p = {b.p.iloc[0]:.3f}")
            ax.plot(b.length, b.pipeline, ":", color="gray", label="classify digits, then compute")
        ax.set_xticks(sorted(df.length.unique()))
        ax.set_xlabel("sequence length K"), ax.set_ylabel("test exact"), ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{task}: exact vs the digit-classifier ceiling")
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    return fig


def importance_plot(imp: pd.DataFrame) -> Figure:
    """Optuna parameter importance per task, as horizontal bars."""
    tasks = _tasks(imp)
    fig = Figure(figsize=(5 * len(tasks), 1.2 + 0.35 * imp.param.nunique()), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        d = imp[imp.task == task].sort_values("importance")
        ax.barh(d.param, d.importance, color="#4c72b0")
        ax.set_xlabel("importance"), ax.set_xlim(0, 1)
        ax.set_title(f"{task}: parameter importance ({int(d.n_trials.iloc[0])} trials)")
    return fig


def best_so_far_plot(bsf: pd.DataFrame, metric: str) -> Figure:
    """Every trial's score (coloured by loss; hollow when not finished ok) and the running best, over trial number."""
    tasks = _tasks(bsf)
    fig = Figure(figsize=(5.5 * len(tasks), 3.8), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        d = bsf[bsf.task == task]
        for k, (loss, g) in enumerate(d.groupby("family")):
            ok = g.status == "ok"
            ax.scatter(g.number[ok], g.score[ok], s=20, color=_color(loss, k), label=loss)
            ax.scatter(g.number[~ok], g.score[~ok], s=20, facecolors="none", edgecolors=_color(loss, k))
        if (d.status != "ok").any():
            ax.scatter([], [], s=20, facecolors="none", edgecolors="gray", label="stopped early / diverged")
        ax.step(d.number, d.best_so_far, where="post", color="black", lw=1.5, label="best so far")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if metric.endswith("exact"):
            ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("trial number"), ax.set_ylabel(metric)
        ax.set_title(f"{task}: search progress")
        ax.grid(alpha=0.3), ax.legend(fontsize=8)
    return fig


def learning_curves(epochs: pd.DataFrame, top: pd.DataFrame) -> Figure:
    """Training loss and validation exact per epoch of the top trials of each task."""
    tasks = _tasks(top)
    fig = Figure(figsize=(5.5 * len(tasks), 6.5), layout="constrained")
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        for i, t in enumerate(top[top.task == task].itertuples()):
            d = epochs[(epochs.kind == "search") & (epochs.task == task) & (epochs.trial_id == t.trial_id)].sort_values(
                "epoch"
            )
            label = f"#{t.rank} {t.trial_id} ({t.family})"
            axes[0, j].plot(d.epoch, d["train/loss"], marker=".", color=f"C{i}", label=label)
            axes[1, j].plot(d.epoch, d["valid/exact"], marker=".", color=f"C{i}", label=label)
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"{task}: top trials")
        axes[0, j].set_ylabel("train loss (own loss family)")
        axes[1, j].set_ylabel("valid exact"), axes[1, j].set_xlabel("epoch"), axes[1, j].set_ylim(-0.03, 1.03)
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, j].legend(fontsize=7)
    return fig
