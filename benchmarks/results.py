"""Write docs/RESULTS.md, docs/FINDINGS.md, docs/PERFORMANCE.md's measured block and README's findings
paragraph from the small summaries committed in docs/data/.

    .venv/bin/python benchmarks/results.py                                   # rewrite the docs from docs/data/
    .venv/bin/python benchmarks/results.py --check                           # exit 1 if a doc is stale
    .venv/bin/python benchmarks/results.py --collect STUDY_DIR --as seed     # copy a study's report tables
                                                                             # into docs/data/seed/, then rewrite
    .venv/bin/python benchmarks/results.py --collect STUDY_DIR --as findings --command ...
                                                                             # a findings study into
                                                                             # docs/data/findings/, then rewrite
                                                                             # (--as findings-structure: the
                                                                             # structure study's folder)
    python -m seqsum.paper_success studies/nmu-paper-product/rerun --json docs/data/nmu-paper/product.json
                                                                             # the paper-protocol section's data

Numbers are never typed by hand: every one comes from a CSV/JSON file in docs/data/ that a committed command
wrote (each folder's meta.json names it). A sentence that ranks two loss families is written only when
their intervals over seeds separate (analysis.compare.verdicts, the report's own rule). Running it twice
changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from analysis.doc import md_table
from analysis.findings import collect as collect_findings
from analysis.findings_doc import render as render_findings
from analysis.perf_doc import perf_text
from analysis.results_tables import TABLES, Comparison, read_tables, same_sequences
from seqsum.files import write_csv, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ".venv/bin/python benchmarks/results.py"
README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"
FINDINGS_DATA = ("findings", "findings-structure")  # --as names collected by analysis.findings.collect


def section(name: str, title: str, pending: str) -> tuple[list[str], Comparison | None]:
    folder = DATA / name
    out = [f"## {title}", ""]
    if not (folder / "meta.json").is_file():
        return out + [f"Not measured yet. {pending}", ""], None
    arms = [DATA / a for a, joins in ARMS.items() if joins == name and (DATA / a / "meta.json").is_file()]
    cmp = Comparison(folder, *arms)
    m = cmp.meta
    out += [m["design"], "", "Commands (run from the repository root):", "", "```bash", *m["commands"], "```", ""]
    for a in cmp.arms:
        out += [f"**An arm measured in its own study**: {a['design']} Seeds {a['seeds']}; budget {a['budget']}. "
                "Commands:", "", "```bash", *a["commands"], "```", ""]  # fmt: skip
    for a, joins in ARMS.items():
        if joins == name and DATA / a not in arms:
            out += [ARM_PENDING[a], ""]
    out += [
        "**The compared runs**: mean over seeds with its 95% bootstrap interval over seeds; seeds "
        f"{m['seeds']}; budget {m['budget']}.",
        "",
    ]
    out += cmp.metrics_table()
    out += ["**Baselines and the references** on the same test sequences (Wilson 95% intervals):", ""]
    out += cmp.yardsticks_table()
    out += ["**What the intervals support** (a family 'beats' another only where the intervals separate):", ""]
    out += [f"- {line}" for line in cmp.claims()] + [""]
    if "per_length" in cmp.t:
        out += ["**Per length** (exact; the references on the same sequences):", ""] + cmp.scoped_table(
            "per_length", "length"
        )
    if "by_bin" in cmp.t:
        out += ["**Per magnitude bin**:", ""] + cmp.scoped_table("by_bin", "bin")
    if "pair_verdicts" in cmp.t:
        out += ["**The 9x9 cell** (200 distinct test image pairs per cell and seed):", ""]
        out += [f"- {r.task}, {r.family}: {r.verdict}" for r in cmp.t["pair_verdicts"].itertuples()] + [""]
    return out, cmp


# A collected arm -> the comparison it joins (measured in a study of its own on the same test sequences)
ARMS = {"seed-structure": "seed"}
ARM_PENDING = {
    "seed-structure": "**The structured arm is not measured yet.** classify+exact (the exact operator over the "
    "digit bottleneck, on the seed stack: the structured head the Structure study of docs/FINDINGS.md tests) joins "
    "this comparison at the same budget, seeds and test sequences with `seqsum study launch --preset "
    "seed-compare-structure`, `seqsum study rerun studies/seed-compare-structure --per-family --seeds 5 --epochs 5`, "
    "`seqsum report studies/seed-compare-structure` and `benchmarks/results.py --collect "
    "studies/seed-compare-structure --as seed-structure ...`."
}


def section_overhead() -> list[str]:
    out = ["## Harness overhead", ""]
    p = DATA / "perf" / "overhead.json"
    if not p.is_file():
        return out + [
            "Not measured with the current harness yet: `.venv/bin/python benchmarks/study_overhead.py "
            "--json docs/data/perf/overhead.json` on a quiet machine writes it (docs/PERFORMANCE.md).",
            "",
        ]
    o = json.loads(p.read_text())
    rows = pd.DataFrame([{"part": k, "share of slot time": f"{v:.1%}"} for k, v in o["shares"].items()])
    return [*out, f"`{o['command']}` ({o['trials']} trials, {o['concurrent']} at a time):", "", *md_table(rows),
            f"**Overhead {o['overhead']:.2%}** (target <= 5%).", ""]  # fmt: skip


def render() -> tuple[str, list[str]]:
    lines = [
        f"<!-- generated by: {COMMAND} -->",
        "# Results",
        "",
        "Every number on this page is written by the command on its first line from the summaries committed in",
        "`docs/data/`; each section names the commands that measured them. Compared numbers carry their seeds and a",
        "95% interval: across seeds a bootstrap interval of the mean, for one exact-match rate a Wilson interval.",
        "[REPORT.md](REPORT.md) explains how to read intervals, baselines and the references; the embedded digits",
        "(`mnist5k`: 4,000 training, 500 validation, 500 test images) are the data unless a section says otherwise.",
        "",
    ]
    seed, cmp = section(
        "seed",
        "The original post's model: sum and product with each loss family",
        "Measure it with `seqsum study launch --preset seed-compare`, `seqsum study rerun studies/seed-compare "
        "--per-family --seeds 5 --epochs 5`, `seqsum report studies/seed-compare` and `benchmarks/results.py "
        "--collect studies/seed-compare --as seed`. The single-seed numbers this page showed before were "
        "withdrawn: they had no intervals and unequal budgets.",
    )
    lines += seed + section_overhead()
    summary = cmp.summary_lines() if cmp else ["not measured yet with seeds and intervals (docs/RESULTS.md)"]
    return "\n".join(lines).rstrip() + "\n", summary


def readme_text(summary: list[str]) -> str:
    text = README.read_text()
    block = "\n".join(
        [README_BEGIN, "**What it finds so far** ([docs/RESULTS.md](docs/RESULTS.md), generated):", "",
         *[f"- {s}" for s in summary], README_END]
    )  # fmt: skip
    if README_BEGIN not in text:
        raise SystemExit(f"results.py: error: README.md has no {README_BEGIN} ... {README_END} block")
    return re.sub(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), lambda _: block, text, flags=re.S)


def collect(study_dir: Path, name: str, commands: list[str], design: str, seeds: str, budget: str) -> None:
    tables = Path(study_dir) / "report" / "tables"
    missing = [t for t in TABLES if not (tables / f"{t}.csv").is_file()]
    if missing:
        raise SystemExit(f"results.py: error: {str(tables)!r} lacks {missing}; run seqsum report first")
    joins = DATA / ARMS.get(name, name)
    if name in ARMS and (joins / "meta.json").is_file():
        differ = same_sequences(read_tables(joins), read_tables(tables))
        if differ:
            print(f"results.py: error: the yardsticks of {str(study_dir)!r} differ from {str(joins)!r}'s (in "
                  f"{', '.join(differ[:3])}); an arm joins a comparison only on the same test sequences and "
                  "training data", file=sys.stderr)  # fmt: skip
            raise SystemExit(2)
    dest = DATA / name
    dest.mkdir(parents=True, exist_ok=True)
    for t in TABLES:
        write_csv(dest / f"{t}.csv", pd.read_csv(tables / f"{t}.csv"))
    write_json(dest / "meta.json", {"commands": commands, "design": design, "seeds": seeds, "budget": budget})


DATA = ROOT / "docs" / "data"
OUT = ROOT / "docs" / "RESULTS.md"
FINDINGS = ROOT / "docs" / "FINDINGS.md"
PERFORMANCE = ROOT / "docs" / "PERFORMANCE.md"
FIGURES = ROOT / "docs" / "figures"
README = ROOT / "README.md"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if a generated doc differs from what would be written")
    p.add_argument("--collect", type=Path, metavar="STUDY_DIR", help="copy a study's report tables into docs/data")
    p.add_argument("--as", dest="name", help="the docs/data folder for --collect (e.g. seed)")
    p.add_argument("--command", action="append", default=[], help="with --collect: a command that measured it")
    p.add_argument("--design", default="", help="with --collect: what varied, what was held equal")
    p.add_argument("--seeds", default="", help="with --collect: the seeds, e.g. '1000-1004 (5 per family)'")
    p.add_argument("--budget", default="", help="with --collect: the shared budget, e.g. '5 epochs of 20,000'")
    a = p.parse_args(argv)
    if a.collect and a.name in FINDINGS_DATA:
        if not a.command:
            p.error(f"--collect STUDY_DIR --as {a.name} needs --command (one or more: what measured it)")
        collect_findings(a.collect, DATA / a.name, a.command)
    elif a.collect:
        if not (a.name and a.command and a.design and a.seeds and a.budget):
            p.error("--collect needs --as, --command (one or more), --design, --seeds and --budget")
        collect(a.collect, a.name, a.command, a.design, a.seeds, a.budget)
    text, summary = render()
    readme = readme_text(summary)
    try:
        findings = render_findings(
            DATA / "findings", COMMAND, None if a.check else FIGURES, DATA / "findings-structure", DATA / "nmu-paper"
        )
    except ValueError as e:  # a collected folder this generator cannot read
        print(f"results.py: error: {e}", file=sys.stderr)
        return 2
    perf = perf_text(PERFORMANCE.read_text(), DATA / "perf") if PERFORMANCE.is_file() else None
    docs = ((OUT, text), (FINDINGS, findings), (README, readme)) + (((PERFORMANCE, perf),) if perf else ())
    if a.check:
        stale = [str(f.relative_to(ROOT)) for f, t in docs if not f.is_file() or f.read_text() != t]
        print(f"stale: {', '.join(stale)}; run {COMMAND}" if stale else "docs are up to date")
        return 1 if stale else 0
    for f, t in docs:
        write_text(f, t)
    print(f"wrote {', '.join(str(f.relative_to(ROOT)) for f, _ in docs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
