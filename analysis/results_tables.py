"""docs/RESULTS.md's replicated comparisons read back from docs/data/<name>/ (benchmarks/results.py --collect
copies a study's report tables there): the metric, yardstick and per-length/per-bin tables with their
intervals, and the ranking claims (analysis.compare.verdicts: "beats" only where the intervals separate).

An arm measured in a study of its own (a structured head beside the seed-compare families, on the same test
sequences, budget and seeds) is merged into the comparison it joins: its rows are added to every table, and the
references it has that the older collection lacks (the strong reference) fill that collection's rows, since a
reference depends on the test sequences only, never on the family.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.family import family_order

from .baselines import NAMES, REFERENCES, with_shares
from .compare import verdicts
from .doc import fmt, md_table

# What benchmarks/results.py --collect copies from STUDY/report/tables/ (a few KB each)
TABLES = ("comparison", "compared_runs", "baselines", "per_length", "by_bin", "pair_verdicts")
EXACT = "test/exact"
SHOWN = {"test/exact": "test exact", "test/mae": "test MAE", "test/mse": "test MSE", "pairs/9x9/exact": "9x9 exact"}
SCOPED = {"per_length": "length", "by_bin": "bin"}  # the tables whose rows carry reference columns, by key


def read_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_csv(folder / f"{n}.csv") for n in TABLES if (folder / f"{n}.csv").is_file()}


def same_sequences(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> list[str]:
    """The yardsticks two collections share that differ, per task and scope, in n and exact (empty when both
    were scored on the same test sequences, which the run-stack reference reads, after the same training draw,
    which the most-frequent target comes from)."""
    keys = ["task", "predictor", "scope", "value"]
    pick = ["most_frequent", "reference"]
    x, y = (t["baselines"][t["baselines"].predictor.isin(pick)].set_index(keys)[["n", "exact"]] for t in (a, b))
    both = x.index.intersection(y.index)
    if both.empty:
        return ["no shared yardstick"]
    return [" ".join(map(str, k)) for k in both if not (x.loc[k] == y.loc[k]).all()]


def merge(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """`a`'s tables with `b`'s rows added; a reference column one side lacks is filled from the other's rows of
    the same task and key, and the shares recomputed."""
    out = {}
    for name in a.keys() | b.keys():
        x, y = a.get(name, pd.DataFrame()), b.get(name, pd.DataFrame())
        if name == "baselines":  # b's yardsticks a lacks (the strong reference), a's kept as they were
            keys = ["task", "predictor", "scope", "value"]
            new = y.merge(x[keys].drop_duplicates(), on=keys, how="left", indicator=True)
            y = y[(new._merge == "left_only").to_numpy()]
        df = pd.concat([x, y], ignore_index=True)
        if name == "baselines":  # each task's yardsticks together, in the order they came
            order = {t: i for i, t in enumerate(dict.fromkeys(df.task))}
            df = df.iloc[df.task.map(order).argsort(kind="stable")].reset_index(drop=True)
        if name in SCOPED:
            df = _fill_references(df, ["task", SCOPED[name]])
        out[name] = df
    return out


def _fill_references(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    for ref in REFERENCES:
        cols = [ref, f"{ref}_ci_low", f"{ref}_ci_high"]
        if ref not in df:
            continue
        known = df.dropna(subset=[ref]).drop_duplicates(key).set_index(key)[cols]
        idx = pd.MultiIndex.from_frame(df[key])
        for c in cols:
            df[c] = df[c].fillna(pd.Series(known[c].reindex(idx).to_numpy(), index=df.index))
    return with_shares(df)


def iv(mean, low, high) -> str:
    return f"{fmt(float(mean))} [{fmt(float(low))}, {fmt(float(high))}]"


class Comparison:
    """One collected replicated comparison (docs/data/<name>/)."""

    def __init__(self, folder: Path, *arms: Path):
        """`arms`: collected comparisons of further families on the same test sequences (an arm measured in a
        study of its own, e.g. docs/data/seed-structure/), their rows merged into this one's tables."""
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.t = read_tables(folder)
        self.arms = [json.loads((a / "meta.json").read_text()) for a in arms]
        for arm in arms:
            self.t = merge(self.t, read_tables(arm))

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
