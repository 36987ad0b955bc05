"""docs/FINDINGS.md from docs/data/findings/ (written by analysis.findings.collect): one section per
question, each with its design, a table with 95% intervals over seeds, one seaborn figure and a verdict
(analysis.findings_data: supported, refuted or not separated, by the intervals); the Structure section from
docs/data/findings-structure/ (analysis.findings_structure); the paper-protocol section from docs/data/nmu-paper/
(analysis.findings_paper); the short answer last, from the same intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from seqsum.stats import separated

from .doc import fmt, md_table
from .findings import CONTROL
from .findings_data import DENSE, HEAD, NAMES, RARE_BIN, Data, effect, overall
from .findings_paper import section as paper_section
from .findings_plot import figure
from .findings_structure import answer as structure_answer
from .findings_structure import lead as structure_lead
from .findings_structure import section as structure_section


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


def render(
    folder: Path, command: str, figures: Path | None, structure: Path | None = None, paper: Path | None = None
) -> str:
    """FINDINGS.md's text; with `figures`, also (re)draw the section figures there. `structure`: the collected
    findings-structure study (its section is left out while the folder has no meta.json); `paper`: the
    nmu-paper studies' success results (left out while none is collected)."""
    lines = [f"<!-- generated by: {command} -->", "# Findings: why is the product hard?", ""]
    st_lines, st = structure_section(structure, figures) if structure else ([], None)
    if not (folder / "meta.json").is_file():
        lines += ["Not measured yet: run the `findings` study preset (study/presets/findings.yaml).", "", *st_lines]
        lines += paper_section(paper)
        return "\n".join(lines).rstrip() + "\n"
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
        "Cells give the mean over seeds and its 95% bootstrap interval; the reference is the run-stack reference (the "
        "run's own conv stack as a digit classifier, then exact arithmetic, on the same test sequences; "
        "docs/REPORT.md; the Structure section adds the strong reference). A section's preset `findings-<section>` "
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
            figure(d, s, comps, figures / f"findings-{s.key}.png")
    lines += [*st_lines, *paper_section(paper), "## The short answer", "", *answer(d, words, parts, st), ""]
    return "\n".join(lines).rstrip() + "\n"


def answer(d: Data, words: dict[str, str], parts: dict[str, list], st=None) -> list[str]:
    """The short answer in plain words, every number and every direction from the data and its intervals;
    with `st` (analysis.findings_structure.Structure) what giving the network the operator does."""
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
    if st is not None:
        out += structure_answer(st)
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
    return _lead(d, words, st) + out


def _lead(d: Data, words: dict[str, str], st=None) -> list[str]:
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
    if st is not None:
        text += " " + structure_lead(st)
    return [text.rstrip(), ""]
