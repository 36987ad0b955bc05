"""docs/FINDINGS.md from docs/data/findings/ (written by analysis.findings.collect): one section per
question, each with its design, a table with 95% intervals over seeds, one seaborn figure and a verdict.

A verdict names the hypothesis and says *supported* when the condition's interval over seeds lies on the
predicted side of the comparison's, *refuted* when it lies on the other side, *not separated* otherwise
(seqsum.stats.separated: the same rule as docs/RESULTS.md and the report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seqsum.stats import seed_interval, separated

from .doc import fmt, md_table
from .findings import CONTROL

RARE_BIN = {"product": ">=1000", "sum": ">=30"}  # the largest magnitude bin of analysis.tables.BINS
HEAD = {"sum": "train.loss=mse, model.head=nau", "product": "train.loss=mse, model.head=nmu"}
DENSE = "train.loss=mse, model.head=dense"
NAMES = {
    CONTROL: "control (classify)",
    "data.balance=target": "balance: target",
    "train.class_weight=inverse_frequency": "class weight: inverse frequency",
    "data.holdout=random:0.1": "holdout: random:0.1",
    "model.outputs=every_step": "outputs: every step",
    "data.train_images=1000": "1,000 training images",
    DENSE: "mse, dense head",
    "train.loss=mse, model.head=nau": "mse, NAU head",
    "train.loss=mse, model.head=nmu": "mse, NMU head",
}


@dataclass(frozen=True)
class Finding:
    key: str  # anchor, preset findings-<key>, figure docs/figures/findings-<key>.png
    title: str
    question: str
    hypothesis: str  # what "supported" means
    conditions: tuple[str, ...]


SECTIONS = (
    Finding("rarity", "Rarity", "Are the large results hard because they are rare in training?",
            "reweighing training toward rare targets (balanced sampling or inverse-frequency class weights) "
            "raises exact in the rarest magnitude bin above the control's",
            (CONTROL, "data.balance=target", "train.class_weight=inverse_frequency")),
    Finding("lookup", "Lookup or computation", "Does the network look results up per digit pair, or compute them?",
            "the network looks pairs up: cells of digit pairs it never saw together score below the same cells "
            "in the control, which saw them",
            (CONTROL, "data.holdout=random:0.1")),
    Finding("per-step", "Per-step supervision", "Does a target after every digit (the running result) help?",
            "supervising every step raises test exact above the control's",
            (CONTROL, "model.outputs=every_step")),
    Finding("heads", "Arithmetic heads", "Does a neural arithmetic unit (NAU for sums, NMU for products) beat "
            "a dense regression head?",
            "the task's arithmetic head (NAU on sums, NMU on products) raises test exact above the dense head "
            "trained with the same loss (mse)",
            (DENSE, "train.loss=mse, model.head=nau", "train.loss=mse, model.head=nmu", CONTROL)),
    Finding("extrapolation", "Length extrapolation", "Trained on 1..4 digits, what is scored on 5..8?",
            "the task's arithmetic head extrapolates better than the dense head: exact on lengths 5..8 above it",
            (CONTROL, "model.outputs=every_step", DENSE, "train.loss=mse, model.head=nau",
             "train.loss=mse, model.head=nmu")),
    Finding("data-scale", "Data scale", "Does more data help, and does the original post's sum MSE of 0.61 come "
            "within reach?",
            "4,000 training images raise test exact above 1,000",
            ("data.train_images=1000", CONTROL)),
)  # fmt: skip
POST_SUM_MSE = 0.61  # the original post's sum MSE after 20 epochs on full MNIST (its stated result)


class Data:
    """The committed findings summaries, with per-condition statistics over seeds."""

    def __init__(self, folder: Path):
        self.meta = json.loads((folder / "meta.json").read_text())
        self.runs = pd.read_csv(folder / "runs.csv")
        self.ref = pd.read_csv(folder / "reference.csv", dtype={"key": str})
        self.heldout = pd.read_csv(folder / "heldout.csv")
        self.tasks = list(dict.fromkeys(self.runs.task))
        ok = self.runs.dropna(subset=["value"]).sort_values("seed", kind="stable")
        self._values = {k: [float(v) for v in g.value] for k, g in ok.groupby(["task", "condition", "metric"])}
        self._stats: dict[tuple[str, str, str], tuple[float, float, float, int]] = {}

    def values(self, task: str, condition: str, metric: str) -> list[float]:
        """The per-seed values, in seed order."""
        return self._values.get((task, condition, metric), [])

    def stat(self, task: str, condition: str, metric: str) -> tuple[float, float, float, int]:
        """(mean, ci_low, ci_high, n_seeds) over seeds; each bootstrap is computed once."""
        key = (task, condition, metric)
        if key not in self._stats:
            v = self.values(*key)
            self._stats[key] = (*seed_interval(v), len(v)) if v else (float("nan"),) * 3 + (0,)
        return self._stats[key]

    def cell(self, task: str, condition: str, metric: str) -> str:
        mean, lo, hi, n = self.stat(task, condition, metric)
        if n <= 1:
            return "-" if n == 0 else f"{fmt(mean)} (n = 1)"
        return f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"

    def reference(self, task: str, scope: str, key: str, predictor: str = "reference") -> str:
        r = self.ref
        row = r[(r.task == task) & (r.scope == scope) & (r.key == key) & (r.predictor == predictor)]
        if row.empty:
            return "-"
        x = row.iloc[0]
        return f"{fmt(x.exact)} [{fmt(x.ci_low)}, {fmt(x.ci_high)}]"

    def ref_interval(self, task: str, scope: str, key: str) -> tuple[float, float]:
        r = self.ref
        row = r[(r.task == task) & (r.scope == scope) & (r.key == key) & (r.predictor == "reference")].iloc[0]
        return float(row.ci_low), float(row.ci_high)

    def verdict(self, task: str, cond: str, base: str, metric: str, higher: bool = True) -> tuple[str, str]:
        """(word, sentence): is `cond` above `base` (below, when not `higher`) on `metric`, by the intervals?"""
        a, b = self.stat(task, cond, metric), self.stat(task, base, metric)
        if min(a[3], b[3]) < 2:
            return "not separated", f"{task}: fewer than 2 seeds, no interval"
        text = f"{task}: {NAMES.get(cond, cond)} {self.cell(task, cond, metric)} vs {NAMES.get(base, base)} " + (
            f"{self.cell(task, base, metric)} ({metric})"
        )
        if not separated((a[1], a[2]), (b[1], b[2])):
            return "not separated", text
        above = a[1] > b[2]
        return ("supported" if above == higher else "refuted"), text


def overall(words: list[str]) -> str:
    """One word for a section: the tasks agree, or 'mixed'."""
    return words[0] if len(set(words)) == 1 else "mixed (" + ", ".join(words) + ")"


# --- the sections ---------------------------------------------------------------------------------
def _rows(d: Data, conditions, columns: dict[str, object]) -> pd.DataFrame:
    """One row per task x condition; `columns` maps a header to a metric name or f(task) -> metric."""
    rows = []
    for task in d.tasks:
        for c in conditions:
            if not d.values(task, c, "test/exact"):
                continue
            row = {"task": task, "condition": NAMES.get(c, c), "seeds": len(d.values(task, c, "test/exact"))}
            for head, metric in columns.items():
                row[head] = d.cell(task, c, metric(task) if callable(metric) else metric)
            rows.append(row)
    return pd.DataFrame(rows)


def _rare(task: str) -> str:
    return f"test/bin={RARE_BIN[task]}/exact"


def section_parts(d: Data, s: Finding) -> tuple[pd.DataFrame, list[tuple[str, str, str, str, bool]], list[str]]:
    """(table, comparisons (task, condition, base, metric, higher), extra lines) of one section."""
    notes: list[str] = []
    if s.key == "rarity":
        table = _rows(d, s.conditions, {"test exact": "test/exact", "rarest bin exact": _rare})
        comps = [(t, c, CONTROL, _rare(t), True) for t in d.tasks for c in s.conditions[1:]]
        notes += [f"Rarest bin: {', '.join(f'{t} {RARE_BIN[t]}' for t in d.tasks)}; the reference there: "
                  + "; ".join(f"{t} {d.reference(t, 'bin', RARE_BIN[t])}" for t in d.tasks) + "."]  # fmt: skip
    elif s.key == "lookup":
        table = _rows(d, s.conditions, {"held-out cells exact": "pairs/heldout_cells/exact",
                                        "other cells exact": "pairs/other_cells/exact"})  # fmt: skip
        comps = [(t, s.conditions[1], CONTROL, "pairs/heldout_cells/exact", False) for t in d.tasks]
        h = d.heldout
        for t in d.tasks:
            ht = h[h.task == t]
            pairs = ", ".join(f"{a}{'+' if t == 'sum' else 'x'}{b}={v}" + ("" if ok else " (result never in training)")
                              for a, b, v, ok in zip(ht.a, ht.b, ht.target, ht.target_in_training))  # fmt: skip
            held, other = (d.reference(t, "cells", k) for k in ("heldout_cells", "other_cells"))
            cells = f"{held}, on the others {other}"
            notes.append(f"{t}: held-out pairs {pairs}; the reference on their cells {cells}.")
    elif s.key == "per-step":
        table = _rows(d, s.conditions, {"test exact": "test/exact", "rarest bin exact": _rare})
        comps = [(t, s.conditions[1], CONTROL, "test/exact", True) for t in d.tasks]
    elif s.key == "heads":
        table = _rows(d, s.conditions, {"test exact": "test/exact", "test MAE": "test/mae"})
        comps = [(t, HEAD[t], DENSE, "test/exact", True) for t in d.tasks]
    elif s.key == "extrapolation":
        cols = {"exact on 5..8": "ext/extrapolated/exact"}
        cols.update({f"length {k}": f"ext/len={k}/exact" for k in range(5, d.meta["eval_max_len"] + 1)})
        cols["unreachable at 8"] = f"ext/len={d.meta['eval_max_len']}/unreachable"
        table = _rows(d, s.conditions, cols)
        comps = [(t, HEAD[t], DENSE, "ext/extrapolated/exact", True) for t in d.tasks]
        key = f"5-{d.meta['eval_max_len']}"
        ref = "; ".join(f"{t} {d.reference(t, 'ext', key)}" for t in d.tasks)
        mode = "; ".join(f"{t} {d.reference(t, 'ext', key, 'most_frequent')}" for t in d.tasks)
        notes.append(f"On lengths 5..8, the reference: {ref}; always answering the most frequent result: {mode}"
                     + ". *unreachable*: the share of test targets a classifier over the training results has no "
                     "class for (it cannot answer them); the regression heads can produce any value.")  # fmt: skip
    else:  # data-scale
        table = _rows(d, s.conditions, {"test exact": "test/exact", "test MSE": "test/mse"})
        comps = [(t, CONTROL, s.conditions[0], "test/exact", True) for t in d.tasks]
        if "sum" in d.tasks:
            mean, lo, hi, _ = d.stat("sum", CONTROL, "test/mse")
            where = "lies below this interval: not reached" if lo > POST_SUM_MSE else "is within or above this interval"
            notes.append(f"Sum test MSE of the control (all 4,000 embedded training images): {fmt(mean)} [{fmt(lo)}, "
                         f"{fmt(hi)}]; the original post's {POST_SUM_MSE} (full MNIST, 20 epochs) {where} at this "
                         "budget.")  # fmt: skip
    return table, comps, notes


def render(folder: Path, command: str, figures: Path | None) -> str:
    """FINDINGS.md's text; with `figures`, also (re)draw the section figures there."""
    lines = [f"<!-- generated by: {command} -->", "# Findings: why is the product hard?", ""]
    if not (folder / "meta.json").is_file():
        return (
            "\n".join(lines + ["Not measured yet: run the `findings` study preset (study/presets/findings.yaml)."])
            + "\n"
        )
    d = Data(folder)
    m = d.meta
    lines += [
        "Every number here is written by the command on the first line from the summaries in `docs/data/findings/`,",
        "collected from one study (`findings` preset) with these commands, run from the repository root:",
        "", "```bash", *m["commands"], "```", "",
        f"**Design.** The original post's model (conv 8@4x4, 16@3x3, GRU 200 -> 100, RMSprop 1e-3, batch 32) on the "
        f"embedded digits; the control trains it with the classify loss, and each other condition changes one switch "
        f"of the control. Every condition has the same budget: {m['epochs']} epochs of {m['train_size']:,} fresh "
        f"training sequences (1..4 digits), retrained from scratch for each seed ({', '.join(map(str, m['seeds']))}). "
        "Cells give the mean over seeds and its 95% bootstrap interval; the reference is the digit classifier with "
        "exact arithmetic on the same test sequences (docs/REPORT.md). A section's preset `findings-<section>` "
        "reruns its conditions alone.",
        "",
    ]  # fmt: skip
    words, parts = {}, {}
    for s in SECTIONS:
        table, comps, notes = section_parts(d, s)
        parts[s.key] = comps
        results = [d.verdict(*c) for c in comps]
        words[s.key] = overall([w for w, _ in results])
        lines += [f"## {s.title}", "", f"**Question.** {s.question}", "", f"**Hypothesis.** {s.hypothesis}.", ""]
        lines += ["**Conditions**: " + ", ".join(NAMES[c] for c in s.conditions) +
                  f"; preset `findings-{s.key}`.", ""]  # fmt: skip
        lines += md_table(table) + [*notes, ""] if notes else md_table(table)
        lines += [f"![{s.title}](figures/findings-{s.key}.png)", ""]
        lines += [f"**Verdict (at this budget): {words[s.key]}.**", "", *[f"- {w}: {t}" for w, t in results], ""]
        if figures is not None:
            from .findings_plot import figure

            figure(d, s, comps, figures / f"findings-{s.key}.png")
    lines += ["## The short answer", "", *answer(d, words, parts), ""]
    return "\n".join(lines).rstrip() + "\n"


LABELS = {"test/exact": "test exact", "pairs/heldout_cells/exact": "exact on the held-out pairs' cells",
          "ext/extrapolated/exact": "exact on lengths 5..8"}  # fmt: skip


def _label(metric: str) -> str:
    if metric.startswith("test/bin="):
        return f"exact in the bin {metric.split('=', 1)[1].rsplit('/', 1)[0]}"
    return LABELS.get(metric, metric)


def effect(d: Data, task: str, cond: str, base: str, metric: str, higher: bool = True, names=NAMES) -> str:
    """'balance: target raised exact in the bin >=30 on sum from 0 [0, 0] to 0.21 [0.11, 0.36]', or
    '... did not separate from ...' (the intervals decide, as in the verdicts)."""
    word, _ = d.verdict(task, cond, base, metric, higher)
    a, b = d.cell(task, cond, metric), d.cell(task, base, metric)
    if word == "not separated":
        return f"{names[cond]} did not separate from {names[base]} on {task} ({_label(metric)} {a} vs {b})"
    up = d.stat(task, cond, metric)[0] > d.stat(task, base, metric)[0]
    return f"{names[cond]} {'raised' if up else 'lowered'} {_label(metric)} on {task} from {b} to {a}"


def answer(d: Data, words: dict[str, str], parts: dict[str, list]) -> list[str]:
    """The short answer in plain words, every number and every direction from the data and its intervals."""
    out = []
    for t in d.tasks:
        rare = f"{d.cell(t, CONTROL, _rare(t))} in the rarest bin ({RARE_BIN[t]})"
        out.append(f"- **Where it fails.** {t}: the control scores {d.cell(t, CONTROL, 'test/exact')} exact against "
                   f"the reference's {d.reference(t, 'all', 'all')}, and {rare} against the reference's "
                   f"{d.reference(t, 'bin', RARE_BIN[t])}.")  # fmt: skip
    lookup = words["lookup"] == "supported"
    cells = [[d.ref_interval(t, "cells", k) for k in ("heldout_cells", "other_cells")] for t in d.tasks]
    ref_alike = all(not separated(*c) for c in cells)
    out.append("- **Lookup, not computation.** " if lookup else "- **Lookup or computation: not settled.** ")
    out[-1] += "; ".join(effect(d, *c) for c in parts["lookup"])
    out[-1] += (
        "; the reference reads those pairs no worse than the others (its intervals overlap)." if ref_alike else "."
    )
    for key, title in (("rarity", "Rarity"), ("per-step", "Per-step supervision"), ("heads", "Arithmetic heads"),
                       ("extrapolation", "Longer sequences"), ("data-scale", "More images")):  # fmt: skip
        names = {**NAMES, CONTROL: "all 4,000 training images (the control)"} if key == "data-scale" else NAMES
        out.append(f"- **{title}** ({words[key]}): " + "; ".join(effect(d, *c, names=names) for c in parts[key]) + ".")
    key = f"5-{d.meta['eval_max_len']}"
    ext = "ext/extrapolated/exact"
    shown = [(t, c) for t in d.tasks for c in SECTIONS[4].conditions if d.values(t, c, ext)]
    below = all(d.stat(t, c, ext)[2] < d.ref_interval(t, "ext", key)[0] for t, c in shown)
    refs = "; ".join(f"{t} {d.reference(t, 'ext', key)}" for t in d.tasks)
    line = (
        f"- On lengths 5..8 {'every' if below else 'not every'} condition's interval lies below the reference ({refs})"
    )
    if "product" in d.tasks:
        mode = d.reference("product", "ext", key, "most_frequent")
        line += f"; for products, always answering the most frequent result scores {mode} there"
    out.append(line + ".")
    return _lead(d, words) + out


def _lead(d: Data, words: dict[str, str]) -> list[str]:
    """One paragraph answering the original question; each clause is said only where the intervals carry it."""
    rare_gap = all(d.stat(t, CONTROL, _rare(t))[2] < d.ref_interval(t, "bin", RARE_BIN[t])[0] for t in d.tasks)
    fixes = {"rarity": "reweighing toward rare targets", "per-step": "supervising the running result",
             "heads": "neural arithmetic heads", "data-scale": "4x the training images"}  # fmt: skip
    helped = [v for k, v in fixes.items() if "supported" in words[k]]
    hurt = [v for k, v in fixes.items() if words[k].startswith("refuted")]
    flat = [v for k, v in fixes.items() if words[k] == "not separated"]
    text = "**In plain words.** "
    if words["lookup"] == "supported":
        text += ("The network does not compute the result from the digits it reads: digit pairs it never saw "
                 "together drop far below the same pairs in the control, on sums and products alike. ")  # fmt: skip
    if rare_gap:
        text += ("What fails are the large, rare results: in the rarest magnitude bin the control's interval lies "
                 "far below the reference's, on both tasks. ")  # fmt: skip
    text += "Of the fixes tried at this budget, " + "; ".join(
        part for part in (
            f"these helped on at least one task: {', '.join(helped)}" if helped else "",
            f"these hurt: {', '.join(hurt)}" if hurt else "",
            f"these did not separate: {', '.join(flat)}" if flat else "",
        ) if part
    ) + " (details below)."  # fmt: skip
    return [text, ""]
