"""Constant baselines and the two references, scored on a run's own test and pair-grid sequences.

- most_frequent: always answer the most frequent target of the training distribution;
- train_mean: always answer the mean training target (exact when it rounds to the target);
- reference (shown as "run-stack reference"): read every digit with a classifier made of the run's own conv
  stack (analysis.reference), then compute;
- strong_reference ("strong reference"): read every digit with the best reader trained on the same training
  images (analysis.strong_reference), then compute.

The training distribution is `train_size` sequences drawn like the run's training sequences (lengths
min_len..max_len, train pool) from a fixed CPU generator. The test and pair sequences are regenerated
with seqsum.data.eval_sets from the run's data config: the very sequences the run was scored on.
Every exact rate carries its Wilson 95% interval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqsum.config import DataConfig, RunConfig
from seqsum.data import Pools, eval_sets, load_pools, sample
from seqsum.errors import ConfigError
from seqsum.stats import wilson
from seqsum.targets import target

from .reference import SPLIT_FIELDS, Reference, cache_key, get_reference, stack_label
from .strong_reference import get_strong
from .tables import magnitude_bin

PREDICTORS = ("most_frequent", "train_mean", "reference", "strong_reference")
REFERENCES = ("reference", "strong_reference")  # predictors that read digits; each gets a share column
NAMES = {"most_frequent": "most frequent target", "train_mean": "training mean", "reference": "run-stack reference",
         "strong_reference": "strong reference"}  # fmt: skip
BASELINE_SEED = 7_000_001


def training_constants(pools: Pools, data: DataConfig, task: str) -> tuple[float, float]:
    """(most frequent target, mean target) of the training distribution."""
    gen = torch.Generator().manual_seed(BASELINE_SEED)
    seqs = sample(pools, pools.train, data.train_size, data.min_len, data.max_len, gen, digits=data.digits)
    t = target(task, seqs.digits, seqs.lengths).cpu().numpy()
    values, counts = np.unique(t, return_counts=True)
    return float(values[np.argmax(counts)]), float(t.mean())


def sequence_scores(
    pools: Pools, data: DataConfig, task: str, ref: Reference | None, strong: Reference | None = None
) -> pd.DataFrame:
    """One row per (predictor, test sequence): predictor, length, target, prediction, correct."""
    test = eval_sets(pools, data).test
    truth = target(task, test.digits, test.lengths).cpu().numpy()
    lengths = test.lengths.cpu().numpy()
    mode, mean = training_constants(pools, data, task)
    preds = {"most_frequent": np.full(len(truth), mode), "train_mean": np.full(len(truth), mean)}
    if ref is not None:
        preds["reference"] = target(task, ref.read(test), test.lengths.cpu()).numpy()
    if strong is not None:
        preds["strong_reference"] = target(task, strong.read(test), test.lengths.cpu()).numpy()
    frames = [
        pd.DataFrame(
            {
                "predictor": name,
                "length": lengths,
                "target": truth.astype(np.int64),
                "prediction": p,
                "correct": np.round(p) == truth,
            }
        )  # fmt: skip
        for name, p in preds.items()
    ]
    return pd.concat(frames, ignore_index=True)


def pair_scores(pools: Pools, data: DataConfig, task: str, ref: Reference) -> pd.DataFrame:
    """The reference on the run's pair-grid sequences: one row per (a, b) with n, exact, ci_low, ci_high."""
    pairs = eval_sets(pools, data).pairs
    digits = pairs.digits.cpu().numpy()
    df = pd.DataFrame({"a": digits[:, 0], "b": digits[:, 1], "correct": ref.correct(pairs, task)})
    return score(df, ["a", "b"])


def score(rows: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per group: n, exact with its Wilson 95% interval, and (when rows have predictions) MAE and MSE."""
    g = rows.assign(k=rows.correct.astype(int), n=1)
    agg = {"n": ("n", "sum"), "k": ("k", "sum")}
    if "prediction" in rows:
        g = g.assign(ae=(g.prediction - g.target).abs(), se=(g.prediction - g.target) ** 2)
        agg.update(mae=("ae", "mean"), mse=("se", "mean"))
    out = g.groupby(list(by), sort=True, observed=True).agg(**agg).reset_index()
    low, high = wilson(out.k, out.n)
    out.insert(len(by) + 1, "exact", out.k / out.n)
    out.insert(len(by) + 2, "ci_low", low)
    out.insert(len(by) + 3, "ci_high", high)
    return out.drop(columns="k")


@dataclass
class Setup:
    """The baselines and the reference for the compared runs of one task that share data and conv stack."""

    task: str
    families: list[str]
    stack: str  # the conv stack's label
    reference: Reference | None  # the run-stack reference
    sequences: pd.DataFrame  # sequence_scores
    pairs: pd.DataFrame  # the run-stack reference's pair cells (empty without a reference)
    strong: Reference | None = None  # the strong reference
    strong_pairs: pd.DataFrame | None = None  # its pair cells


def build_setups(runs: pd.DataFrame, cache: Path | None, train: bool, notes: list[str], step=print) -> list[Setup]:
    """One Setup per task x (data config, conv stack) among the compared runs (usually one per task).

    A digit source that cannot be loaded, or a reference that may not be trained, becomes a note.
    """
    setups: dict[tuple, Setup] = {}
    pools: dict[str, Pools] = {}
    strong: dict[str, Reference | None] = {}
    for r in runs.drop_duplicates(["task", "family"]).itertuples(index=False):
        cfg = RunConfig.load(Path(r.run_dir) / "config.json")
        key = (r.task, json.dumps(cfg.to_dict()["data"], sort_keys=True), cache_key(cfg.data, cfg.model))
        if key in setups:
            setups[key].families.append(r.family)
            continue
        split = json.dumps({k: getattr(cfg.data, k) for k in SPLIT_FIELDS}, sort_keys=True)
        try:
            pools[split] = pools.get(split) or load_pools(cfg.data)
        except ConfigError as e:
            notes.append(f"{r.task}, {r.family}: no baselines or reference (the digits could not be loaded: {e})")
            continue
        try:
            ref = get_reference(cfg.data, cfg.model, pools[split], cache, train, notes)
        except ConfigError as e:
            notes.append(f"{r.task}, {r.family}: no reference ({e})")
            ref = False
        if ref is False:
            ref = None
        elif ref is None:
            notes.append(f"{r.task}, {r.family}: no reference (training it was turned off and none is cached)")
        else:
            how = "cached" if ref.info.get("cached") else f"trained in {ref.info['train_seconds']}s"
            step(
                f"  {r.task}: reference classifier {stack_label(cfg.model)}, digit accuracy {ref.accuracy:.3f} ({how})"
            )
        if split not in strong:
            strong[split] = _strong(cfg.data, pools[split], train, notes, step)
        p, s = pools[split], strong[split]
        seqs = sequence_scores(p, cfg.data, r.task, ref, s)
        pairs = pair_scores(p, cfg.data, r.task, ref) if ref is not None else pd.DataFrame()
        spairs = pair_scores(p, cfg.data, r.task, s) if s is not None else None
        setups[key] = Setup(r.task, [r.family], stack_label(cfg.model), ref, seqs, pairs, s, spairs)
    return list(setups.values())


def _strong(data: DataConfig, pools: Pools, train: bool, notes: list[str], step) -> Reference | None:
    """The strong reference of this split (cached per machine), or None with a note."""
    try:
        s = get_strong(data, pools, train_if_missing=train, notes=notes)
    except ConfigError as e:
        notes.append(f"no strong reference ({e})")
        return None
    if s is None:
        notes.append("no strong reference (training it was turned off and none is cached)")
    else:
        how = "cached" if s.info.get("cached") else f"trained in {s.info['train_seconds']}s"
        step(f"  strong reference: digit accuracy {s.accuracy:.3f} on the test pool ({how})")
    return s


def yardstick_table(setups: list[Setup]) -> pd.DataFrame:
    """tables/baselines.csv: task, families, predictor, scope (all | length | bin), value, n, exact, ci_low,
    ci_high, mae, mse."""
    parts = []
    for s in setups:
        rows = s.sequences.assign(all="all", bin=magnitude_bin(s.task, s.sequences.target).astype(str))
        for scope in ("all", "length", "bin"):
            t = score(rows, ["predictor", scope]).rename(columns={scope: "value"})
            parts.append(t.assign(task=s.task, families=", ".join(s.families), scope=scope))
    cols = ["task", "families", "predictor", "scope", "value", "n", "exact", "ci_low", "ci_high", "mae", "mse"]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    out["predictor"] = pd.Categorical(out.predictor, PREDICTORS, ordered=True)
    return out.sort_values(["task", "families", "scope", "predictor"], kind="stable")[cols].reset_index(drop=True)


def per_family(table: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The yardsticks of one scope, one row per task x family x value, a column per predictor's exact
    (and each reference's interval: reference_ci_low, ..., strong_reference_ci_high)."""
    t = table[table.scope == scope].assign(family=lambda d: d.families.str.split(", ")).explode("family")
    wide = t.pivot_table(index=["task", "family", "value"], columns="predictor", values="exact", observed=True)
    out = wide.reset_index()
    out.columns.name = None
    for name in REFERENCES:
        ref = t[t.predictor == name][["task", "family", "value", "ci_low", "ci_high"]]
        ref = ref.rename(columns={"ci_low": f"{name}_ci_low", "ci_high": f"{name}_ci_high"})
        out = out.merge(ref, on=["task", "family", "value"], how="left") if not ref.empty else out
    return out


def with_shares(df: pd.DataFrame) -> pd.DataFrame:
    """`df` (with an `exact` column, merged with per_family) plus share_of_reference and
    share_of_strong_reference: exact / the reference's exact on the same sequences."""
    for name in REFERENCES:
        if name in df:
            df[f"share_of_{name}"] = df.exact / df[name]
    return df
