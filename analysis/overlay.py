"""The first screen's figure: one per task, every compared family on the same axes so the eye compares them.

Left: exact per test length; right: exact per target magnitude bin. Each family is a seaborn line with its
95% interval as a band (over seeds; Wilson for one run: the intervals the tables hold, never recomputed);
each reference present in the yardsticks (run-stack, strong) is dashed, with its Wilson band.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from .baselines import NAMES, REFERENCES
from .plots import _color, _groups
from .tables import BINS

REF_STYLE = {"reference": ("black", "--"), "strong_reference": ("0.45", (0, (6, 2)))}


def overlay_figure(task: str, lengths: pd.DataFrame, bins: pd.DataFrame, yard_len: pd.DataFrame,
                   yard_bin: pd.DataFrame) -> Figure:  # fmt: skip
    """Families overlaid with interval bands; references dashed. Inputs: scores.per_length and per_bin rows
    and baselines.per_family rows (scope length and bin) of this task."""
    fig = Figure(figsize=(11, 3.9), layout="constrained")
    left, right = fig.subplots(1, 2)
    labels = [lab for _, _, lab in BINS[task]]
    pos = {lab: i for i, lab in enumerate(labels)}
    groups = _groups(pd.concat([lengths[["family"]], bins[["family"]]])) if len(lengths) or len(bins) else []
    for j, family in enumerate(groups):
        color = _color(family, j)
        n = _seeds(lengths, bins, family)
        label = f"{family} ({n} seed{'s' * (n != 1)})"
        d = lengths[lengths.family == family].sort_values("length")
        if not d.empty:
            _line(left, d, "length", color, label)
        b = bins[bins.family == family]
        b = b.assign(x=b.bin.astype(str).map(pos)).dropna(subset=["x"]).sort_values("x")
        if not b.empty:
            _line(right, b, "x", color, label)
    _references(left, yard_len.assign(x=pd.to_numeric(yard_len.value, errors="coerce")) if len(yard_len) else None)
    _references(right, yard_bin.assign(x=yard_bin.value.astype(str).map(pos)) if len(yard_bin) else None)
    trained = sorted(set(lengths[lengths.trained.astype(bool)].length)) if len(lengths) else []
    if trained and len(lengths) and lengths.length.max() > max(trained):
        left.axvspan(max(trained) + 0.5, lengths.length.max() + 0.5, color="0.9", zorder=0, label="beyond training")
    left.set_xlabel("sequence length"), left.set_title(f"{task}: exact per test length")
    if len(lengths):
        left.set_xticks(sorted(lengths.length.unique()))
    right.set_xticks(range(len(labels)), labels)
    right.set_xlabel("target magnitude"), right.set_title(f"{task}: exact per magnitude bin")
    for ax in (left, right):
        ax.set_ylim(-0.03, 1.03), ax.set_ylabel("test exact"), ax.grid(alpha=0.3)
    handles, names = left.get_legend_handles_labels()
    seen = dict(zip(names, handles))
    for h, n in zip(*right.get_legend_handles_labels()):
        seen.setdefault(n, h)
    for ax in (left, right):
        if ax.get_legend():
            ax.get_legend().remove()
    fig.legend(seen.values(), seen.keys(), loc="outside right upper", fontsize=8)
    return fig


def _seeds(lengths: pd.DataFrame, bins: pd.DataFrame, family: str) -> int:
    for d in (lengths, bins):
        d = d[d.family == family]
        if not d.empty and "n_seeds" in d:
            return int(d.n_seeds.max())
    return 1


def _line(ax, d: pd.DataFrame, x: str, color: str, label: str) -> None:
    sns.lineplot(data=d, x=x, y="exact", ax=ax, marker="o", errorbar=None, color=color, label=label)
    if d.ci_low.notna().any():
        ax.fill_between(d[x], d.ci_low, d.ci_high, alpha=0.18, color=color, lw=0)


def _references(ax, yard: pd.DataFrame | None) -> None:
    """Each reference once (families sharing a setup share its numbers), dashed, with its Wilson band."""
    if yard is None or yard.empty:
        return
    yard = yard.dropna(subset=["x"]).sort_values("x")
    for name in REFERENCES:
        if name not in yard or yard[name].isna().all():
            continue
        cols = ["x", name, *[c for c in (f"{name}_ci_low", f"{name}_ci_high") if c in yard]]
        one = yard.groupby("family", sort=False)
        for k, (_, d) in enumerate(one):
            d = d[cols].dropna(subset=[name])
            color, ls = REF_STYLE.get(name, ("black", "--"))
            label = NAMES[name] if k == 0 else None
            ax.plot(d.x, d[name], color=color, ls=ls, lw=1.4, label=label)
            if f"{name}_ci_low" in d:
                ax.fill_between(d.x, d[f"{name}_ci_low"], d[f"{name}_ci_high"], color=color, alpha=0.07, lw=0)
            if one.ngroups > 1 and _same(yard, name):
                break  # every family shares this reference: drawn once


def _same(yard: pd.DataFrame, name: str) -> bool:
    per = yard.groupby("x")[name].nunique()
    return bool((per <= 1).all())
