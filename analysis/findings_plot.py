"""The seaborn figures of docs/FINDINGS.md: one per section (analysis.findings_doc draws them); it reads
analysis.findings_data, never findings_doc, so the two import no cycle."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .findings_data import NAMES


def figure(d, s, comps, path: Path) -> None:
    """The section's statistical figure: the compared metric per condition and task, mean and 95% bootstrap
    interval over seeds (seaborn); for extrapolation, exact per length with the reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

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
