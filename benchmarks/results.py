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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.baselines import NAMES, REFERENCES  # noqa: E402
from analysis.compare import verdicts  # noqa: E402
from analysis.doc import fmt, md_table  # noqa: E402
from analysis.findings import collect as collect_findings  # noqa: E402
from analysis.findings_doc import render as render_findings  # noqa: E402
from analysis.perf_doc import perf_text  # noqa: E402
from seqsum.files import write_csv, write_json, write_text  # noqa: E402
from study.family import family_order  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/results.py"
# What --collect copies from STUDY/report/tables/ (a few KB each)
TABLES = ("comparison", "compared_runs", "baselines", "per_length", "by_bin", "pair_verdicts")
README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"
EXACT = "test/exact"
FINDINGS_DATA = ("findings", "findings-structure")  # --as names collected by analysis.findings.collect
SHOWN = {"test/exact": "test exact", "test/mae": "test MAE", "test/mse": "test MSE", "pairs/9x9/exact": "9x9 exact"}


def iv(mean, low, high) -> str:
    return f"{fmt(float(mean))} [{fmt(float(low))}, {fmt(float(high))}]"


class Comparison:
    """One collected replicated comparison (docs/data/<name>/)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.t = {n: pd.read_csv(folder / f"{n}.csv") for n in TABLES if (folder / f"{n}.csv").is_file()}

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.t["comparison"].task))

    def metrics_table(self) -> list[str]:
        c = self.t["comparison"]
        c = c[c.metric.isin(list(SHOWN))].assign(cell=lambda d: [iv(*r) for r in zip(d["mean"], d.ci_low, d.ci_high)])
        wide = c.pivot_table(index=["task", "family", "n_seeds"], columns="metric", values="cell", aggfunc="first")
        wide = wide.reindex(columns=[m for m in SHOWN if m in wide.columns]).rename(columns=SHOWN)
        wide = self.ordered(wide.reset_index())
        return md_table(wide.rename(columns={"n_seeds": "seeds"}))

    def ordered(self, df: pd.DataFrame) -> pd.DataFrame:
        """Tasks in the study's order, families in family_order (mse, log, classify, each plain head first),
        stable otherwise."""
        order = {t: i for i, t in enumerate(self.tasks())}
        keys = df.task.map(order) * 10_000 + (df.family.map(family_order) if "family" in df else 0)
        return df.iloc[keys.argsort(kind="stable")]

    def yardsticks_table(self) -> list[str]:
        y = self.t["baselines"]
        y = y[y.scope == "all"]
        rows = [
            {"task": r.task, "predictor": NAMES[r.predictor] if r.predictor in REFERENCES else r.predictor,
             "test exact": iv(r.exact, r.ci_low, r.ci_high), "test MAE": r.mae, "test MSE": r.mse, "n": r.n}
            for r in y.itertuples()
        ]  # fmt: skip
        return md_table(pd.DataFrame(rows))

    def scoped_table(self, name: str, key: str) -> list[str]:
        """Per length or per magnitude bin: each family's exact beside each reference's (the run-stack one, and
        the strong one when the data has it), with intervals, and the share of each."""
        d = self.ordered(self.t[name])
        rows = []
        for r in d.to_dict("records"):
            row = {"task": r["task"], "family": r["family"], key: r[key], "n": r["n"],
                   "exact": iv(r["exact"], r["ci_low"], r["ci_high"])}  # fmt: skip
            for ref in (x for x in REFERENCES if x in d):
                row[NAMES[ref]] = iv(r[ref], r[f"{ref}_ci_low"], r[f"{ref}_ci_high"])
                share = r.get(f"share_of_{ref}")
                row[f"share of {NAMES[ref]}"] = f"{share:.0%}" if pd.notna(share) else "-"
            rows.append(row)
        return md_table(pd.DataFrame(rows))

    def claims(self) -> list[str]:
        """The ranking sentences on test exact and the 9x9 cell, per task (intervals decide)."""
        c = self.t["comparison"]
        out = []
        for task in self.tasks():
            out += [f"{task}: {v}" for v in verdicts(c[c.task == task], metrics=(EXACT, "pairs/9x9/exact"))]
        return out

    def best(self, task: str) -> pd.Series:
        c = self.t["comparison"]
        return c[(c.task == task) & (c.metric == EXACT)].sort_values("mean", ascending=False).iloc[0]

    def reference(self, task: str, predictor: str = "reference") -> pd.Series | None:
        y = self.t["baselines"]
        y = y[(y.task == task) & (y.scope == "all") & (y.predictor == predictor)]
        return None if y.empty else y.iloc[0]

    def summary_lines(self) -> list[str]:
        """README's findings paragraph: the best family per task beside the references, and the claims."""
        lines = []
        for task in self.tasks():
            b = self.best(task)
            refs = [(NAMES[p], self.reference(task, p)) for p in REFERENCES]
            lines.append(
                f"{task}: best test exact {b.family} {iv(b['mean'], b.ci_low, b.ci_high)} over {b.n_seeds} seeds; "
                + "; ".join(f"the {name} {iv(r.exact, r.ci_low, r.ci_high)}" for name, r in refs if r is not None)
            )
        return lines + [v for v in self.claims() if "beats" in v and EXACT in v]


def section(name: str, title: str, pending: str) -> tuple[list[str], Comparison | None]:
    folder = DATA / name
    out = [f"## {title}", ""]
    if not (folder / "meta.json").is_file():
        return out + [f"Not measured yet. {pending}", ""], None
    cmp = Comparison(folder)
    m = cmp.meta
    out += [m["design"], "", "Commands (run from the repository root):", "", "```bash", *m["commands"], "```", ""]
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
    findings = render_findings(DATA / "findings", COMMAND, None if a.check else FIGURES, DATA / "findings-structure")
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
