"""Collect a findings study (study/presets/findings*.yaml) into the small summaries of docs/FINDINGS.md.

A findings study is a grid of designed points (`what.points`): the control (the base config) and
conditions that each change one switch. Its replicates (`seqsum study rerun STUDY --top N`) are what is
compared. `collect(STUDY, DEST)` writes, into DEST:

- `runs.csv`: one row per (replicate, metric): task, condition, seed, trial_id, metric, value. Metrics are
  the run's summary.json numbers, exact per magnitude bin (`test/bin=<bin>/exact`, from predictions),
  exact on the digit-pair cells of the held-out pairs and on the others (`pairs/heldout_cells/exact`,
  `pairs/other_cells/exact`, in every condition, from pairs.csv), and for the conditions in EXTRAPOLATED,
  a re-scoring of the trained checkpoint on lengths 1..EVAL_MAX_LEN (every condition of a study whose space
  names `family`, e.g. findings-structure; `seqsum evaluate`, kept under
  STUDY/extrapolate/<trial_id>/): `ext/len=<L>/exact`, `ext/len=<L>/unreachable`, `ext/extrapolated/exact`.
- `reference.csv`: the run-stack reference (predictor `reference`: the control's conv stack; a study whose
  points train other conv stacks adds theirs, `reference (conv ...)`), the strong reference
  (`strong_reference`) and the most-frequent baseline on the same test sequences: task, predictor, scope
  (length | bin | ext_length | ext | all | cells | digits), key, n, exact, ci_low, ci_high; cells: the held-out
  pairs' cells, the others and the 9x9 cell; digits: each reader's digit accuracy on the test pool.
- `heldout.csv`: each held-out pair per task with its target and whether any training sequence can still
  produce that target (a classifier never trained on a class cannot answer it).
- `meta.json`: the commands, seeds, epochs, training sequences per epoch, test sequences, the precisions the runs
  trained in, and per designed
  point its condition, family, conv stack and the predictor of its run-stack reference (`points`).

The condition of a run is read from its params.json (the point it replicates), never from folder names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from seqsum.cli import main
from seqsum.data import load_pools
from seqsum.files import read_json, write_csv, write_json
from seqsum.results import read_run
from seqsum.sampling import contains_pair, digit_tuples
from seqsum.stats import wilson
from seqsum.targets import target
from seqsum.train_data import holdout_pairs
from study.config import REPLICATE_PAIRS_PER_CELL, StudyConfig
from study.family import family_of
from study.runs import replicates_frame
from study.space import STACKS, params_to_run

from .baselines import pair_scores, score, sequence_scores
from .reference import get_reference, stack_label, stack_of
from .strong_reference import get_strong
from .tables import magnitude_bin

CONTROL = "control"
EVAL_MAX_LEN = 8
# The conditions re-scored on longer sequences (the extrapolation section): the heads and outputs.
EXTRAPOLATED = (
    CONTROL,
    "model.outputs=every_step",
    "train.loss=mse, model.head=dense",
    "train.loss=mse, model.head=nau",
    "train.loss=mse, model.head=nmu",
)


def condition_label(params: dict[str, Any], control: dict[str, Any]) -> str:
    """'control', or the switches in which a point differs from the control ('data.balance=target')."""
    changed = [f"{k}={v}" for k, v in params.items() if control.get(k, _MISSING) != v]
    return ", ".join(changed) or CONTROL


_MISSING = object()


def collect(study_dir: str | Path, dest: str | Path, commands: list[str], step=print) -> pd.DataFrame:

    study_dir, dest = Path(study_dir), Path(dest)
    cfg = StudyConfig.load(study_dir / "study.yaml")
    points = cfg.first_points()
    control = points[0]
    reps = replicates_frame(study_dir)
    reps = reps[reps.status == "ok"] if not reps.empty else reps
    if reps.empty:
        raise ValueError(f"{str(study_dir)!r} has no finished replicate; run seqsum study rerun first")
    holdout = _heldout_pairs(cfg, points)
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(reps.itertuples(), 1):
        label = condition_label(r.params, control)
        run = Path(r.run_dir)
        step(f"[findings] {i}/{len(reps)} {r.task} {label} seed {r.seed}")
        metrics = _run_metrics(run, r.task, holdout)
        if label in EXTRAPOLATED or "family" in cfg.what.space:  # a study of families: every condition
            metrics.update(_extrapolated(run, study_dir / "extrapolate" / str(r.trial_id), int(r.max_len)))
        ident = {"task": r.task, "condition": label, "seed": int(r.seed), "trial_id": str(r.trial_id)}
        rows += [{**ident, "metric": k, "value": v} for k, v in sorted(metrics.items())]
    runs = pd.DataFrame(rows).sort_values(["task", "condition", "seed", "metric"], kind="stable")
    dest.mkdir(parents=True, exist_ok=True)
    write_csv(dest / "runs.csv", runs)
    write_csv(dest / "reference.csv", _reference(cfg, control, holdout, study_dir / "extrapolate", step))
    write_csv(dest / "heldout.csv", _heldout_table(cfg, holdout))
    plan = read_json(study_dir / "rerun" / "plan.json")
    write_json(
        dest / "meta.json",
        {
            "commands": commands,
            "seeds": sorted({int(s) for s in reps.seed}),
            "epochs": int(plan["points"][0]["epochs"]),
            "train_size": cfg.base_run(cfg.what.tasks[0]).data.train_size,
            "test_size": cfg.base_run(cfg.what.tasks[0]).data.test_size,
            "eval_max_len": EVAL_MAX_LEN,
            "precision": sorted({str(read_run(Path(d))[1].get("precision", "fp32")) for d in reps.run_dir}),
            "conditions": [condition_label(p, control) for p in points],
            "points": _points(cfg, control),
        },
    )
    return runs


def _run_metrics(run: Path, task: str, holdout: tuple[tuple[int, int], ...]) -> dict[str, float]:
    _, summary = read_run(run)
    out = {k: float(v) for k, v in summary.items() if _kept(k, v)}
    preds = pd.read_parquet(run / "predictions.parquet", columns=["target", "correct"])
    bins = preds.groupby(magnitude_bin(task, preds.target), observed=True).correct.mean()
    out.update({f"test/bin={b}/exact": float(v) for b, v in bins.items()})
    pairs = pd.read_csv(run / "pairs.csv")
    held = _held_cells(pairs, holdout)
    for name, part in (("heldout_cells", pairs[held]), ("other_cells", pairs[~held])):
        if len(part):
            out[f"pairs/{name}/exact"] = float((part.exact * part.n).sum() / part.n.sum())
    return out


def _held_cells(cells: pd.DataFrame, holdout) -> np.ndarray:
    """Rows (a, b) of a digit-pair grid whose unordered pair is held out."""
    held = set(holdout)
    return np.array([tuple(sorted(ab)) in held for ab in zip(cells.a, cells.b)], dtype=bool)


def _kept(key: str, value: Any) -> bool:
    """The summary numbers FINDINGS.md reads (exact-match rates, test MAE/MSE, time): runs.csv stays small."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    kept = key.endswith(("/exact", "/unreachable", "/digit_acc")) or key in ("test/mae", "test/mse", "train_seconds")
    kept = kept or key == "test/mean_mse"
    return number and kept


def _extrapolated(run: Path, out: Path, trained: int) -> dict[str, float]:
    """The checkpoint re-scored on lengths 1..EVAL_MAX_LEN (once; kept in `out`)."""
    if not (out / "summary.json").is_file():
        args = ["evaluate", str(run), "--out", str(out), "--eval-max-len", str(EVAL_MAX_LEN)]
        if main(args + (["--overwrite"] if out.exists() else [])) != 0:
            raise RuntimeError(f"seqsum evaluate failed on {run}")
    _, summary = read_run(out)
    res = {}
    for k, v in summary.items():
        if k.startswith("test/len=") and k.endswith(("/exact", "/unreachable")):
            res["ext/" + k.removeprefix("test/")] = float(v)
    path = out / "predictions.parquet"
    wanted = ["length", "correct", "error", "target", "posterior_mean"]  # not the digit lists
    preds = pd.read_parquet(path, columns=[c for c in wanted if c in pq.read_schema(path).names])
    res["ext/extrapolated/exact"] = float(preds[preds.length > trained].correct.mean())
    seen = preds[preds.length <= trained]  # the trained lengths of the re-scored set: both prediction rules
    res["ext/trained/mse"] = float((seen.error**2).mean())
    if "posterior_mean" in seen:  # a classifier re-scored since evaluate gives it (seqsum.evaluate)
        res["ext/trained/mean_mse"] = float(((seen.posterior_mean - seen.target) ** 2).mean())
    return res


def _heldout_pairs(cfg, points: list[dict[str, Any]]) -> tuple[tuple[int, int], ...]:
    for p in points:
        pairs = holdout_pairs(cfg.run_config(cfg.what.tasks[0], p))
        if pairs:
            return pairs
    return ()


def _heldout_table(cfg, holdout: tuple[tuple[int, int], ...]) -> pd.DataFrame:
    """Per task and held-out pair: its target and whether a training sequence can still produce it."""

    rows = []
    for task in cfg.what.tasks:
        d = cfg.base_run(task).data
        seen: set[int] = set()
        for length in range(d.min_len, d.max_len + 1):
            t = digit_tuples(length)
            t = t[~contains_pair(t, holdout)]
            seen |= set(target(task, t, torch.full((len(t),), length)).tolist())
        for a, b in holdout:
            value = a + b if task == "sum" else a * b
            rows.append({"task": task, "a": a, "b": b, "target": value, "target_in_training": value in seen})
    return pd.DataFrame(rows, columns=["task", "a", "b", "target", "target_in_training"])


def _reference(cfg, control: dict[str, Any], holdout, cache: Path, step) -> pd.DataFrame:
    """The run-stack reference of every conv stack the study trains (`reference` for the control's, `reference
    (conv ...)` for the others), the strong reference and the most-frequent baseline, all on the control's test
    sequences (per length and bin), on the EVAL_MAX_LEN test sequences the extrapolation used, on the held-out
    cells and the 9x9 cell; and each reader's digit accuracy on the test pool (scope digits)."""

    frames = []
    for task in cfg.what.tasks:
        run = cfg.run_config(task, control)
        data = run.data
        pools = load_pools(data)
        step(f"[findings] {task}: the run-stack references and the strong reference")
        ref = get_reference(data, run.model, pools, cache)
        readers = {"reference": ref, "strong_reference": get_strong(data, pools)}
        readers.update({name: get_reference(data, m, pools, cache) for name, m in _other_stacks(cfg, task, run.model)})
        for scope, d in (("", data), ("ext_", replace(data, eval_max_len=EVAL_MAX_LEN))):
            seqs = sequence_scores(pools, d, task, ref, readers["strong_reference"])
            others = [sequence_scores(pools, d, task, r).query("predictor == 'reference'").assign(predictor=name)
                      for name, r in list(readers.items())[2:]]  # fmt: skip
            seqs = pd.concat([seqs[seqs.predictor.isin(["most_frequent", *readers])], *others], ignore_index=True)
            by_len = score(seqs, ["predictor", "length"]).rename(columns={"length": "key"})
            frames.append(by_len.assign(task=task, scope=scope + "length"))
            if scope:
                ext = seqs[seqs.length > data.max_len].assign(key=f"{data.max_len + 1}-{EVAL_MAX_LEN}")
                frames.append(score(ext, ["predictor", "key"]).assign(task=task, scope="ext"))
            else:
                seqs = seqs.assign(key=magnitude_bin(task, seqs.target).astype(str))
                frames.append(score(seqs, ["predictor", "key"]).assign(task=task, scope="bin"))
                frames.append(score(seqs.assign(key="all"), ["predictor", "key"]).assign(task=task, scope="all"))
        grid_data = replace(data, pairs_per_cell=REPLICATE_PAIRS_PER_CELL)
        for predictor, reader in readers.items():
            grid = pair_scores(pools, grid_data, task, reader)
            held = _held_cells(grid, holdout)
            nine = grid[(grid.a == 9) & (grid.b == 9)]
            for name, part in (("heldout_cells", grid[held]), ("other_cells", grid[~held]), ("9x9", nine)):
                k, n = int(round((part.exact * part.n).sum())), int(part.n.sum())
                frames.append(_rate_row(task, predictor, "cells", name, k, n))
            ok = reader.test_labels == reader.test_predictions
            frames.append(_rate_row(task, predictor, "digits", "test pool", int(ok.sum()), len(ok)))
    cols = ["task", "predictor", "scope", "key", "n", "exact", "ci_low", "ci_high"]
    out = pd.concat(frames, ignore_index=True)
    out["key"] = out.key.astype(str)
    return out[cols]


def _other_stacks(cfg, task: str, control_model) -> list[tuple[str, Any]]:
    """(reference name, model config) of each conv stack the study's points train other than the control's."""
    seen, out = [stack_of(control_model)], []
    for p in cfg.first_points():
        model = cfg.run_config(task, p).model
        if stack_of(model) not in seen:
            seen.append(stack_of(model))
            out.append((_reference_name(model, control_model), model))
    return out


def _reference_name(model, control_model) -> str:
    """The run-stack reference's predictor name for a run of this model config."""
    return "reference" if stack_of(model) == stack_of(control_model) else f"reference ({stack_label(model)})"


def _points(cfg, control: dict[str, Any]) -> list[dict[str, str]]:
    """Per designed point: its condition, family (study.family), conv stack (a study.space.STACKS name, else
    its label) and the predictor of its run-stack reference in reference.csv."""

    task = cfg.what.tasks[0]
    base = cfg.base_run(task)
    named = {json.dumps(stack_of(params_to_run(base, {"conv_stack": n}).model), sort_keys=True): n for n in STACKS}
    ctrl = cfg.run_config(task, control).model
    out = []
    for p in cfg.first_points():
        run = cfg.run_config(task, p)
        stack = named.get(json.dumps(stack_of(run.model), sort_keys=True), stack_label(run.model))
        out.append({"condition": condition_label(p, control), "family": family_of(run), "stack": stack,
                    "reference": _reference_name(run.model, ctrl)})  # fmt: skip
    return out


def _rate_row(task: str, predictor: str, scope: str, key: str, k: int, n: int) -> pd.DataFrame:
    low, high = wilson(k, n)
    return pd.DataFrame([{"task": task, "predictor": predictor, "scope": scope, "key": key, "n": n,
                          "exact": k / n if n else np.nan, "ci_low": float(low), "ci_high": float(high)}])  # fmt: skip
