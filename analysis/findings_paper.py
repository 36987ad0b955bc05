"""The paper-protocol section of docs/FINDINGS.md: does the NMU learn the product as the NAU paper reports?

It reads docs/data/nmu-paper/: one JSON per task written by `python -m seqsum.paper_success STUDY/rerun --json`
(per learned arm: its settings, seeds, budget, and per test length the success rate under the paper's
criterion, mean exact and MSE, the solved-accumulator reference's exact) and paper.json, what the paper
reports (its source and its stated success range). Success rates get a 95% Clopper-Pearson interval over
seeds (scipy); a length is *below the paper* only where that interval lies below the lowest rate the paper
reports, *within* where it overlaps, and the section says so length by length. Nothing here is typed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from scipy import stats

from .doc import fmt, md_table

PAPER_FILE = "paper.json"  # what the paper reports; every other *.json is a paper_success result


def rate_interval(solved: int, seeds: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a success rate of `solved` out of `seeds`."""
    ci = stats.binomtest(solved, seeds).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def arm_name(arm: dict) -> str:
    rz = "with R_z" if arm.get("rz") else "without R_z"
    return f"{arm['head'].upper()} {rz}"


def results(folder: Path) -> list[dict]:
    """Every learned arm of every collected task, in file then arm order."""
    out = []
    for f in sorted(folder.glob("*.json")):
        if f.name != PAPER_FILE:
            out += json.loads(f.read_text())
    return out


def verdict(low: float, high: float, paper: tuple[float, float]) -> str:
    if high < paper[0]:
        return "below"
    if low > paper[1]:
        return "above"
    return "within"


def table(arms: list[dict], paper: tuple[float, float], rz: bool = True) -> pd.DataFrame:
    """Per test length: each arm's solved seeds, its rate's interval, mean exact; the reference. The arm the
    paper reports (R_z on or off as `rz`) also gets its verdict against the paper's range."""
    frames = []
    for a in arms:
        name = arm_name(a["arm"])
        rows = []
        for r in a["rows"]:
            lo, hi = rate_interval(r["solved_seeds"], r["seeds"])
            said = f" {verdict(lo, hi, paper)}" if bool(a["arm"].get("rz")) == rz else ""
            rows.append({
                "length": r["length"],
                f"{name}: solved": f"{r['solved_seeds']}/{r['seeds']} [{fmt(lo)}, {fmt(hi)}]{said}",
                f"{name}: exact": r["exact"],
                "solved-accumulator reference: exact": r["reference_exact"],
            })  # fmt: skip
        frames.append(pd.DataFrame(rows).set_index("length"))
    merged = frames[0]
    for f in frames[1:]:
        merged = merged.combine_first(f)[list(dict.fromkeys([*merged.columns, *f.columns]))]
    ref = merged.pop("solved-accumulator reference: exact")
    merged["solved-accumulator reference: exact"] = ref
    return merged.reset_index()


def section(folder: Path | None) -> list[str]:
    """The section's Markdown lines ([] while nothing is collected)."""
    collected = results(folder) if folder is not None and (folder / PAPER_FILE).is_file() else []
    if not collected:
        return []
    paper = json.loads((folder / PAPER_FILE).read_text())
    lines = ["## The paper's protocol: does the NMU learn the product as the NAU paper reports?", ""]
    for task in dict.fromkeys(a["arm"]["task"] for a in collected):
        arms = [a for a in collected if a["arm"]["task"] == task]
        rep = paper[task]
        span = (rep["success_low"], rep["success_high"])
        b, seeds = arms[0]["budget"], arms[0]["seeds"]
        study = f"studies/nmu-paper-{task}"
        commands = [f"seqsum study launch --preset nmu-paper-{task}",
                    f"seqsum study rerun {study} --top {len(arms) + 1} --seeds {len(seeds)} --epochs {b['epochs']}",
                    f"python -m seqsum.paper_success {study}/rerun --json docs/data/nmu-paper/{task}.json"]  # fmt: skip
        lines += [
            f"### {task}", "",
            f"**The paper** ({paper['source']}): {rep['what']}, success {span[0]:.1f}–{span[1]:.1f} at lengths "
            f"{rep['lengths'][0]}..{rep['lengths'][1]} over {rep['seeds']} seeds, trained on ~{rep['train_images']:,} "
            f"images for up to ~{rep['steps']:,} steps.", "",
            "**Here**, measured with", "", "```bash", *commands, "```", "",
            f"digits "
            f"{b['digits'][0]}..{b['digits'][-1]}, trained at lengths {b['train_lengths'][0]}..{b['train_lengths'][1]}"
            f" with a loss on every prefix, {b['optimizer']} lr {b['lr']}, batch {b['batch_size']}, "
            f"{b['steps']:,} optimizer steps ({b['epochs']} epochs of {b['train_size']:,} sequences) from the "
            f"{_images(b)}; seeds {', '.join(map(str, seeds))}; scored at the end of training on lengths 1.."
            f"{b['eval_max_len']}. Success at a length: test MSE below the solved-accumulator reference's one-sided "
            f"99% upper bound ({arms[0]['reference_seeds']} seeds), the paper's criterion. Rates carry a 95% "
            "Clopper-Pearson interval over seeds; *below* / *within* compare the arm the paper reports with its range.",
            "",
            *md_table(table(arms, span, bool(rep["rz"]))),
            "**Verdict.** " + _verdict_words([a for a in arms if bool(a["arm"].get("rz")) == bool(rep["rz"])], span),
            "",
        ]  # fmt: skip
    return lines


def _images(b: dict) -> str:
    n = b.get("train_images")
    return f"{n:,} training images of {b['source']}" if n else f"training pool of {b['source']}"


def _verdict_words(arms: list[dict], span: tuple[float, float]) -> str:
    parts = []
    for a in arms:
        v = [verdict(*rate_interval(r["solved_seeds"], r["seeds"]), span) for r in a["rows"]]
        lengths = [r["length"] for r in a["rows"]]
        below = [L for L, w in zip(lengths, v) if w == "below"]
        name = arm_name(a["arm"])
        if not below:
            parts.append(f"{name}: within or above the paper's range at every length ({len(a['seeds'])} seeds "
                         "cannot separate more)")  # fmt: skip
        else:
            parts.append(f"{name}: below the paper's range at {len(below)} of {len(lengths)} lengths "
                         f"({_ranges(below)})")  # fmt: skip
    return "; ".join(parts) + "."


def _ranges(xs: list[int]) -> str:
    """[1, 2, 3, 5] -> '1..3, 5'."""
    runs: list[list[int]] = []
    for x in xs:
        if runs and x == runs[-1][-1] + 1:
            runs[-1].append(x)
        else:
            runs.append([x])
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)
