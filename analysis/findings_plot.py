"""The seaborn figures of docs/FINDINGS.md: one per section (analysis.findings_doc draws them); it reads
analysis.findings_data, never findings_doc, so the two import no cycle."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .findings_data import NAMES


def figure(d, s, comps, path: Path) -> None:
    """The section's statistical figure: the compared metric per condition and task, mean and 95% bootstrap
    interval over seeds (seaborn); for extrapolation, exact per length with the reference dashed."""
    import matplotlib  # matplotlib: the Agg backend is chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (after matplotlib.use)
    import seaborn as sns  # (the same)

    r = d.runs[d.runs.condition.isin(s.conditions)].assign(condition=lambda x: x.condition.map(NAMES))
    order = [NAMES[c] for c in s.conditions]
    sns.set_theme(style="whitegrid", context="paper")
    if s.key == "extrapolation":
        ext = r[r.metric.str.match(r"ext/len=\d+/exact")].assign(
            length=lambda x: x.metric.str.extract(r"=(\d+)/")[0].astype(int)
        )
        g = sns.relplot(data=ext, x="length", y="value", hue="condition", hue_order=order, col="task", kind="line",
                        marker="o", errorbar=("ci", 95), seed=0, height=3.2, aspect=1.2)  # fmt: skip
        ref = d.ref[(d.ref.scope == "ext_length") & (d.ref.predictor == "reference")]
        for task, ax in g.axes_dict.items():
            rt = ref[ref.task == task]
            ax.plot(rt.key.astype(int), rt.exact, "k--", label="reference")
            ax.axvline(d.meta.get("max_len", 4) + 0.5, color="grey", lw=0.8)
        g.set_axis_labels("sequence length (trained: 1..4)", "test exact")
    else:
        metric = {t: m for t, _, _, m, _ in comps}
        sel = pd.concat([r[(r.task == t) & (r.metric == m)] for t, m in metric.items()])
        g = sns.catplot(data=sel, x="condition", y="value", col="task", kind="point", order=order, errorbar=("ci", 95),
                        seed=0, height=3.2, aspect=1.2, sharey=False, linestyle="none", capsize=0.15)  # fmt: skip
        for task, ax in g.axes_dict.items():
            ax.set_title(f"{task}: {metric[task]}")
            ax.tick_params(axis="x", rotation=20)
        g.set_axis_labels("", "mean over seeds (95% interval)")
    g.figure.suptitle(s.title + (" (dashed: the reference)" if s.key == "extrapolation" else ""), y=1.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    g.figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(g.figure)


def structure_figure(runs: pd.DataFrame, refs: pd.DataFrame, path: Path) -> None:
    """The Structure section's overlaid figure, one panel per task: exact per magnitude bin and on lengths
    5..8, a line per family (mean and 95% bootstrap interval over seeds) and a style per conv stack, the strong
    reference dashed black and the run-stack references grey (dotted, dash-dotted); frames: structure_frames."""
    import matplotlib  # (as in figure)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (the same)
    import seaborn as sns  # (the same)

    sns.set_theme(style="whitegrid", context="paper")
    tasks = list(dict.fromkeys(runs.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), squeeze=False)
    for task, ax in zip(tasks, axes[0]):
        r, f = runs[runs.task == task], refs[refs.task == task]
        sns.lineplot(data=r, x="pos", y="exact", hue="family", style="stack", markers=True, dashes=False,
                     errorbar=("ci", 95), seed=0, ax=ax, legend=ax is axes[0][-1])  # fmt: skip
        for i, (name, g) in enumerate(f.groupby("reference", sort=False)):  # the strong reference first
            ls, color = ("--", "black") if i == 0 else ((":", "-.")[i % 2], "grey")
            ax.plot(g.pos, g.exact, ls=ls, color=color, lw=1, label=name)
        ticks = r.drop_duplicates("pos").sort_values("pos")
        ax.axvline(ticks.pos.max() - 0.5, color="grey", lw=0.6)  # the bins | lengths 5..8
        ax.set_xticks(ticks.pos, ticks["where"])
        ax.set(title=task, xlabel="magnitude bin, then lengths 5..8", ylabel="test exact", ylim=(0, 1.02))
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    fig.suptitle("Structure: the operator against the control (dashed: strong reference; grey: run-stack references)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def structure_frames(s) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy frames for structure_figure from an analysis.findings_structure.Structure: per seed (task, stack,
    family, where, pos, exact), and the references' (task, reference, where, pos, exact)."""
    runs, refs = [], []
    for task in s.d.tasks:
        ms = [m for m in s.metrics(task, digits=False) if m.scope in ("bin", "ext")]
        for pos, m in enumerate(ms):
            for p in s.shown(task):
                runs += [{"task": task, "stack": p.stack, "family": p.family, "where": m.header, "pos": pos,
                          "exact": v} for v in s.d.values(task, p.condition, m.metric)]  # fmt: skip
            names = {
                "strong_reference": "strong reference",
                **{p.reference: f"run-stack ({p.stack})" for p in s.points},
            }
            for predictor, name in names.items():
                x = s.d.ref_stat(task, m.scope, m.key, predictor)[0]
                refs.append({"task": task, "reference": name, "where": m.header, "pos": pos, "exact": x})
    return pd.DataFrame(runs), pd.DataFrame(refs)
