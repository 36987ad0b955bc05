"""Plots: each takes tidy DataFrames (analysis.scores, analysis.tables) and returns a matplotlib Figure.

seaborn draws the statistical figures (magnitude and length bands, the pair-grid heatmaps, per-target
scatter) onto axes of a `matplotlib.figure.Figure` (no pyplot, no GUI backend, no global state); the
bands are the intervals the tables hold (seqsum.stats), never recomputed here.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from seqsum.choices import LOSSES, TASKS

from .tables import BINS

COLORS = {"mse": "#1f77b4", "log": "#ff7f0e", "classify": "#2ca02c"}


def _color(group: str, i: int) -> str:
    return COLORS.get(group, f"C{3 + i}")


def _groups(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df.family))
    return sorted(present, key=lambda g: (LOSSES.index(g) if g in LOSSES else 9, g))


def _tasks(df: pd.DataFrame) -> list[str]:
    return [t for t in TASKS if t in set(df.task)]


def _bands(ax, df: pd.DataFrame, x: str, y: str, low: str, high: str, family: str, **kw) -> None:
    """seaborn line of `y` over `x` for one family, with its interval as a band."""
    d = df.sort_values(x)
    sns.lineplot(data=d, x=x, y=y, ax=ax, marker="o", errorbar=None, **kw)
    if d[low].notna().any():
        ax.fill_between(d[x], d[low], d[high], alpha=0.18, color=kw.get("color"), lw=0)


def _yardsticks(ax, yard: pd.DataFrame, x: str, with_band: bool = True) -> None:
    """The reference (dashed, with its Wilson band) and the constant baselines (dotted) of one task x family."""
    d = yard.sort_values(x)
    if "reference" in d and d.reference.notna().any():
        sns.lineplot(data=d, x=x, y="reference", ax=ax, color="black", ls="--", errorbar=None, label="reference")
        if with_band:
            ax.fill_between(d[x], d.reference_ci_low, d.reference_ci_high, color="black", alpha=0.08, lw=0)
    for name, color in (("most_frequent", "0.45"), ("train_mean", "0.7")):
        if name in d:
            sns.lineplot(data=d, x=x, y=name, ax=ax, color=color, ls=":", errorbar=None, label=name.replace("_", " "))


def _grid(df: pd.DataFrame, rows_per_task: int, height: float):
    """A row block per task, a column per family: (figure, axes, [(row, col, task, family)])."""
    tasks = _tasks(df)
    per_task = {t: _groups(df[df.task == t]) for t in tasks}
    cols = max([len(f) for f in per_task.values()] + [1])
    fig = Figure(figsize=(3.8 * max(cols, 2), height * rows_per_task * len(tasks)), layout="constrained")
    axes = fig.subplots(rows_per_task * len(tasks), cols, squeeze=False)
    cells = [(rows_per_task * i, j, t, f) for i, t in enumerate(tasks) for j, f in enumerate(per_task[t])]
    for i, t in enumerate(tasks):  # panels a task does not use
        for j in range(len(per_task[t]), cols):
            for r in range(rows_per_task):
                axes[rows_per_task * i + r, j].set_visible(False)
    return fig, axes, cells


def _title(ax, task: str, family: str, d: pd.DataFrame) -> None:
    n = int(d.n_seeds.max()) if not d.empty else 0
    ax.set_title(f"{task}, {family} ({n} seed{'s' if n != 1 else ''})", fontsize=10)


def magnitude_figure(bins: pd.DataFrame, yard: pd.DataFrame) -> Figure:
    """Exact and MAE per magnitude bin, a column per family and two rows per task; bands = 95% intervals over
    seeds (Wilson for one run); the reference and the constant baselines beside the exact."""
    fig, axes, cells = _grid(bins, 2, 3.0)
    for r, j, task, family in cells:
        labels = [lab for _, _, lab in BINS[task]]
        pos = {lab: i for i, lab in enumerate(labels)}
        d = bins[(bins.task == task) & (bins.family == family)]
        d = d.assign(x=d.bin.astype(str).map(pos))
        y = yard[(yard.task == task) & (yard.family == family)]
        y = y.assign(x=y.value.astype(str).map(pos))
        color = _color(family, j)
        top, low = axes[r, j], axes[r + 1, j]
        _bands(top, d, "x", "exact", "ci_low", "ci_high", family, color=color, label=family)
        _yardsticks(top, y.dropna(subset=["x"]), "x")
        _bands(low, d, "x", "mae", "mae_ci_low", "mae_ci_high", family, color=color, label=family)
        _title(top, task, family, d)
        top.set_ylim(-0.03, 1.03), top.set_ylabel("exact" if j == 0 else "")
        low.set_ylabel("MAE" if j == 0 else "")
        if d.mae.max() > 10:
            low.set_yscale("symlog", linthresh=1)
        for ax in (top, low):
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
            ax.set_xlabel("target magnitude" if ax is low else ""), ax.grid(alpha=0.3)
            if ax.get_legend():
                ax.legend(fontsize=7)
    return fig


def length_figure(lengths: pd.DataFrame, yard: pd.DataFrame) -> Figure:
    """Exact per test length, a column per family and a row per task: the model with its band, the
    reference with its Wilson band, and the constant baselines."""
    fig, axes, cells = _grid(lengths, 1, 3.4)
    for r, j, task, family in cells:
        ax = axes[r, j]
        d = lengths[(lengths.task == task) & (lengths.family == family)]
        y = yard[(yard.task == task) & (yard.family == family)]
        y = y.assign(length=y.value.astype(int))
        _bands(ax, d, "length", "exact", "ci_low", "ci_high", family, color=_color(family, j), label=family)
        _yardsticks(ax, y, "length")
        _title(ax, task, family, d)
        ax.set_xticks(sorted(d.length.unique())), ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("sequence length"), ax.set_ylabel("exact" if j == 0 else "")
        ax.grid(alpha=0.3), ax.legend(fontsize=7)
    return fig


def error_by_target(per_target: pd.DataFrame) -> Figure:
    """Exact and MAE per target value (mean over seeds), one colour per family; sum and product side by side."""
    tasks = _tasks(per_target)
    fig = Figure(figsize=(6 * len(tasks), 6.5), layout="constrained")
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        df = per_target[per_target.task == task]
        palette = {g: _color(g, k) for k, g in enumerate(_groups(df))}
        for i, col in enumerate(("exact", "mae")):
            ax = axes[i, j]
            sns.scatterplot(data=df, x="target", y=col, hue="family", palette=palette, s=14, ax=ax, linewidth=0)
            if task == "product":
                ax.set_xscale("symlog", linthresh=1)
            if col == "mae":
                ax.set_yscale("symlog", linthresh=1)
            ax.set_ylabel(col if col == "exact" else "MAE"), ax.grid(alpha=0.3)
            ax.set_xlabel("target value" + (" (symlog)" if task == "product" else ""))
        axes[0, j].set_title(f"{task}: per target value, mean over seeds"), axes[0, j].set_ylim(-0.03, 1.03)
    return fig


def pair_heatmaps(cells: pd.DataFrame, reference: pd.DataFrame | None) -> Figure:
    """10x10 % exact per (a, b) for each family of one task, and the reference's; a cell whose interval
    lies wholly below the reference's is marked with a red dot; the 9x9 cell is framed in red."""
    task = cells.task.iloc[0]
    groups = _groups(cells)
    panels = [*groups, *(["reference"] if reference is not None and not reference.empty else [])]
    fig = Figure(figsize=(4.4 * len(panels), 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    op = "+" if task == "sum" else "x"
    for ax, g in zip(axes, panels):
        d = reference if g == "reference" else cells[cells.family == g]
        m = d.pivot_table(index="a", columns="b", values="exact").reindex(index=range(10), columns=range(10))
        sns.heatmap(100 * m, vmin=0, vmax=100, cmap="viridis", annot=True, fmt=".0f", annot_kws={"fontsize": 6},
                    cbar=g == panels[-1], square=True, ax=ax)  # fmt: skip
        for t in ax.texts:  # 100 cell labels: left out of the layout computation (it measures every text)
            t.set_in_layout(False)
        if g != "reference" and "below_reference" in d:
            below = d[d.below_reference]
            ax.scatter(below.b + 0.85, below.a + 0.18, s=10, color="red", marker="o")
        ax.add_patch(Rectangle((9, 9), 1, 1, fill=False, ec="red", lw=2))
        n = int(d.n_seeds.max()) if "n_seeds" in d and not d.empty else 1
        who = "reference" if g == "reference" else f"{g} ({n} seed{'s' * (n != 1)})"
        ax.set_title(f"{task} {who}: % exact per a{op}b", fontsize=9)
        ax.set_xlabel("b"), ax.set_ylabel("a")
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
