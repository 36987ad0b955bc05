"""The Structure section of docs/FINDINGS.md: does giving the network the operator close the gap?

It reads docs/data/findings-structure/ (analysis.findings.collect of the findings-structure preset): per task,
conv stack and family, the mean and 95% interval over seeds of test exact, exact in every magnitude bin, on
the 9x9 cell and on lengths 5..8, and the bottleneck's digit accuracy, beside both references on the same
sequences (the run-stack reference: the run's own conv stack as a digit classifier; the strong reference: the
best digit reader trained on the same images; both with exact arithmetic). Comparisons say *higher* or
*lower* only where the intervals separate (analysis.findings_data.Data.verdict); the issue's targets are
stated as met or not met with their numbers. Nothing here is typed: every number comes from the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .doc import fmt, md_table
from .findings_data import RARE_BIN, Data, effect
from .findings_plot import structure_figure, structure_frames
from .findings_targets import TARGETS, target, target_lines
from .tables import BINS

CONTROL_FAMILY = "classify"  # the control: the GRU stack reads CNN features, dense head
EXACT = "classify+exact"  # the exact operator over the per-image digit distributions
LEARNED = ("classify+digits", "mse+digits+nau", "mse+digits+nmu")  # learned operators over the digit bottleneck
STRONG = "strong_reference"
WORDS = {"supported": "higher", "refuted": "lower", "not separated": "not separated"}


@dataclass(frozen=True)
class Point:
    """One designed point of the study, as the collector recorded it (meta.json `points`)."""

    condition: str
    family: str
    stack: str
    reference: str  # its run-stack reference's predictor in reference.csv


@dataclass(frozen=True)
class Metric:
    header: str
    metric: str  # in runs.csv
    scope: str  # the references' row in reference.csv
    key: str


class Structure:
    """The collected structure study, with its points, metrics and comparisons."""

    def __init__(self, folder: Path):
        self.d = Data(folder)
        if "points" not in self.d.meta:
            raise ValueError(f"{str(folder)!r} has no points in meta.json (an older collector); collect it again")
        self.points = [Point(**p) for p in self.d.meta["points"]]
        self.names = {p.condition: f"{p.family} ({p.stack} stack)" for p in self.points}
        self.stacks = list(dict.fromkeys(p.stack for p in self.points))

    def metrics(self, task: str, digits: bool = True) -> list[Metric]:
        ext = f"5-{self.d.meta['eval_max_len']}"
        out = [Metric("test exact", "test/exact", "all", "all")]
        out += [Metric(b, f"test/bin={b}/exact", "bin", b) for *_, b in BINS[task]]
        out += [
            Metric("9x9", "pairs/9x9/exact", "cells", "9x9"),
            Metric(f"lengths {ext}", "ext/extrapolated/exact", "ext", ext),
        ]
        return out + ([Metric("digit accuracy", "test/digit_acc", "digits", "test pool")] if digits else [])

    def shown(self, task: str) -> list[Point]:
        return [p for p in self.points if self.d.values(task, p.condition, "test/exact")]

    def find(self, task: str, family: str, stack: str) -> Point | None:
        return next((p for p in self.shown(task) if p.family == family and p.stack == stack), None)

    def ref_cell(self, task: str, m: Metric, predictor: str) -> str:
        x, lo, hi = self.d.ref_stat(task, m.scope, m.key, predictor)
        return "-" if x != x else f"{fmt(x)} [{fmt(lo)}, {fmt(hi)}]"

    def table(self, task: str) -> pd.DataFrame:
        """Each point's cells (mean [95% interval] over seeds), then the references' (Wilson intervals)."""
        ms = self.metrics(task)
        rows = [{"stack": p.stack, "family": p.family, "seeds": self.d.stat(task, p.condition, "test/exact")[3],
                 **{m.header: self.d.cell(task, p.condition, m.metric) for m in ms}}
                for p in self.shown(task)]  # fmt: skip
        refs = {p.reference: f"run-stack reference ({p.stack} stack)" for p in self.points}
        for predictor, name in [(STRONG, "strong reference"), *refs.items()]:
            rows.append({"stack": "-", "family": name, "seeds": "-",
                         **{m.header: self.ref_cell(task, m, predictor) for m in ms}})  # fmt: skip
        return pd.DataFrame(rows)

    def share(self, task: str, p: Point, m: Metric) -> float:
        strong = self.d.ref_stat(task, m.scope, m.key, STRONG)[0]
        return self.d.stat(task, p.condition, m.metric)[0] / strong if strong > 0 else float("nan")

    def share_table(self, task: str) -> pd.DataFrame:
        ms = self.metrics(task, digits=False)
        rows = [{"stack": p.stack, "family": p.family,
                 **{m.header: _pct(self.share(task, p, m)) for m in ms}} for p in self.shown(task)]  # fmt: skip
        return pd.DataFrame(rows)

    def word(self, task: str, cond: str, base: str, metric: str) -> str:
        return WORDS[self.d.verdict(task, cond, base, metric, names=self.names)[0]]

    def pairs(self, task: str, against: str, families) -> list[tuple[Point, Point]]:
        """(point, base) per stack: each of `families` against the `against` family on the same stack."""
        out = []
        for stack in self.stacks:
            base = self.find(task, against, stack)
            out += [(p, base) for f in families if base and (p := self.find(task, f, stack)) and p is not base]
        return out

    def verdict_table(self, against: str, families) -> pd.DataFrame:
        rows = []
        for task in self.d.tasks:
            cols = [m for m in self.metrics(task) if m.scope in ("all", "ext")]
            cols.insert(1, self.rare(task))
            for p, base in self.pairs(task, against, families):
                rows.append({"task": task, "stack": p.stack, "family": p.family, "against": base.family,
                             **{m.header if m is not cols[1] else "rarest bin": self.word(
                                 task, p.condition, base.condition, m.metric) for m in cols}})  # fmt: skip
        return pd.DataFrame(rows)

    def rare(self, task: str) -> Metric:
        return next(m for m in self.metrics(task) if m.key == RARE_BIN[task])

    def comps(self, against: str, families, metric: str = "test/exact") -> list[tuple]:
        """(task, condition, base, metric) for the effect sentences."""
        return [
            (t, p.condition, b.condition, metric) for t in self.d.tasks for p, b in self.pairs(t, against, families)
        ]

    def best_learned(self) -> list[tuple]:
        """Per task and stack: the learned operator with the highest mean test exact against the exact one."""
        out = []
        for t in self.d.tasks:
            for stack in self.stacks:
                exact = self.find(t, EXACT, stack)
                learned = [p for f in LEARNED if (p := self.find(t, f, stack))]
                if exact and learned:
                    best = max(learned, key=lambda p: self.d.stat(t, p.condition, "test/exact")[0])
                    out.append((t, best.condition, exact.condition, "test/exact"))
        return out

    def target(self, task: str):
        """analysis.findings_targets.target: the point closest to the task's target, whether it meets it, the
        numbers per criterion."""
        return target(self, task)


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.0%}"


def section(folder: Path, figures: Path | None) -> tuple[list[str], Structure | None]:
    """The section's lines (none when the study has not been collected) and the data for the short answer."""
    if not (folder / "meta.json").is_file():
        return [], None
    s = Structure(folder)
    m = s.d.meta
    lines = ["## Structure: does giving the network the operator close the gap?", "",
             "**Question.** When the network is given the operator (its CNN ends in a 10-way softmax per image, "
             "never trained on digit labels, and an operator turns those distributions into the result), does it "
             "close the gap to the references; and does a learned operator get as far as the exact one?", "",
             "**Hypothesis.** the exact operator over the network's own digit distributions raises test exact "
             "above the control (classify, dense head) on the same conv stack.", "",
             f"**Design.** One study (`findings-structure` preset, `docs/data/findings-structure/`), its own control; "
             f"families {', '.join(dict.fromkeys(p.family for p in s.points))} on the conv stacks "
             f"{', '.join(s.stacks)} (study.space.STACKS). Every run: {m['epochs']} epoch{'s' * (m['epochs'] != 1)} of "
             f"{m['train_size']:,} training sequences (1..4 digits), scored on {m['test_size']:,} test "
             f"sequences and re-scored on lengths 1..{m['eval_max_len']}; seeds {', '.join(map(str, m['seeds']))}"
             f"{'; trained in ' + ' and '.join(m['precision']) if 'precision' in m else ''}. Commands:", "",
             "```bash", *m["commands"], "```", ""]  # fmt: skip
    for task in s.d.tasks:
        lines += [f"**{task}**: exact (mean [95% interval] over seeds; the references: Wilson intervals on the "
                  "same sequences; digit accuracy: what the bottleneck reads on the test pool).", ""]  # fmt: skip
        lines += md_table(s.table(task))
        lines += [f"**{task}, share of the strong reference** (mean over seeds / the strong reference's exact):", ""]
        lines += md_table(s.share_table(task))
    if figures is not None:
        structure_figure(*structure_frames(s), figures / "findings-structure.png")
    lines += ["![Structure](figures/findings-structure.png)", ""]
    verdict = judge(s, s.comps(CONTROL_FAMILY, [EXACT])) or "not measured"
    lines += [f"**Verdict (at this budget): {verdict}.** Against the control on the same stack (*higher*/*lower* "
              "only where the intervals separate):", ""]  # fmt: skip
    lines += md_table(s.verdict_table(CONTROL_FAMILY, [*LEARNED, EXACT]))
    lines += [f"**A learned operator against the exact one**: {judge(s, s.best_learned(), LEARNED_SAID)}.", ""]
    lines += md_table(s.verdict_table(EXACT, LEARNED))
    return lines + target_lines(s), s


LEARNED_SAID = {"supported": "a learned operator beats the exact one",
                "refuted": "the exact operator beats the best learned one",
                "not separated": "the best learned operator does not separate from the exact one"}  # fmt: skip


def where(s: Structure, comps) -> dict[str, list[str]]:
    """Verdict word -> the 'task (stack stack)' places it holds, for comparisons (task, condition, base, metric)."""
    out: dict[str, list[str]] = {}
    for c in comps:
        stack = next(p.stack for p in s.points if p.condition == c[1])
        out.setdefault(s.d.verdict(*c, names=s.names)[0], []).append(f"{c[0]} ({stack} stack)")
    return out


def judge(s: Structure, comps, said: dict[str, str] | None = None) -> str:
    """One phrase for comparisons: the word where they agree, else each word with where it holds ('' if none)."""
    w = where(s, comps)
    if len(w) == 1:
        word = next(iter(w))
        return f"{said[word]} everywhere" if said else word
    return "mixed (" + "; ".join(f"{(said or {}).get(k, k)} on {', '.join(v)}" for k, v in w.items()) + ")"


def answer(s: Structure) -> list[str]:
    """The short answer's structure bullets: every direction from the intervals, every number from the data."""
    out = [f"- **The operator** ({judge(s, s.comps(CONTROL_FAMILY, [EXACT]))}): " + "; ".join(
        effect(s.d, *c, names=s.names) for t in s.d.tasks
        for c in (s.comps(CONTROL_FAMILY, [EXACT]) + s.comps(CONTROL_FAMILY, [EXACT], s.rare(t).metric))
        if c[0] == t) + "."]  # fmt: skip
    learned = s.best_learned()
    if learned:
        out.append(f"- **Learned or exact operator** ({judge(s, learned, LEARNED_SAID)}): "
                   + "; ".join(effect(s.d, *c, names=s.names) for c in learned) + ".")  # fmt: skip
    for task in (t for t in ("product", "sum") if t in s.d.tasks):
        best, met, table = s.target(task)
        numbers = ", ".join(f"{r.criterion} {r.value} (line {r.line})" for r in table.itertuples())
        out.append(f"- **{task.capitalize()} target {'met' if met else 'not met'}** ({TARGETS[task]}): "
                   f"{'met by' if met else 'the closest point,'} {s.names[best.condition]}: {numbers}.")  # fmt: skip
    return out


def lead(s: Structure) -> str:
    """The plain-words sentence on structure, said only as far as the intervals carry it."""
    w = where(s, s.comps(CONTROL_FAMILY, [EXACT]))
    said = {"supported": "raises test exact above the control on", "refuted": "lowers test exact below the control "
            "on", "not separated": "does not separate from the control on"}  # fmt: skip
    parts = [f"{said[k]} {', '.join(v)}" for k, v in w.items()]
    text = "Giving the network the exact operator over its own digit distributions " + "; ".join(parts)
    text += " (the intervals over seeds decide). "
    met = [t for t in s.d.tasks if t in TARGETS and s.target(t)[1]]
    text += f"The targets are met on {', '.join(met)}" if met else "No task's target is met"
    return text + "; the Structure section has the numbers."
