"""Scoring in value space: one row per test sequence, a per-target-value table, the digit-pair grid.

*exact* is the share of sequences whose decoded prediction, rounded, equals the target; *rel_err* is
`relative_error`: |error| / max(|target|, 1), so for target 0 it is the absolute error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .data import EvalSets, Pools, Sequences
from .stats import wilson
from .targets import Codec, target

# The summary.json metrics that reports compare across runs, families and seeds (defined once).
COMPARED_METRICS = ("test/exact", "test/mae", "test/mse", "pairs/9x9/exact", "valid/exact")


@torch.no_grad()
def predict(model, codec: Codec, pools: Pools, seqs: Sequences, batch: int = 4096) -> torch.Tensor:
    """Decoded predictions (n,) float64 for every sequence in `seqs`."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(seqs), batch):
        b = seqs[i : i + batch]
        pooled = getattr(model, "forward_pool", None)  # one CNN pass per distinct image
        raw = pooled(pools.images, b.idx, b.lengths) if pooled else model(pools.images[b.idx], b.lengths)
        out.append(codec.decode(raw))
    model.train(was_training)
    return torch.cat(out)


def relative_error(error, tgt):
    """|error| / max(|target|, 1): the relative error, defined for target 0 (there: the absolute error).

    The one definition of `rel_err`; works on torch tensors, numpy arrays and pandas Series."""
    if isinstance(error, torch.Tensor):
        return error.abs() / tgt.abs().clamp(min=1)
    return np.abs(error) / np.maximum(np.abs(tgt), 1)


def value_metrics(pred: torch.Tensor, tgt: torch.Tensor) -> dict[str, float]:
    """exact, mae, mse, rel_err of (n,) predictions against (n,) targets (NaN predictions count wrong)."""
    pred, tgt = pred.double(), tgt.double()
    err = pred - tgt
    return {
        "exact": (pred.round() == tgt).double().mean().item(),
        "mae": err.abs().mean().item(),
        "mse": (err**2).mean().item(),
        "rel_err": relative_error(err, tgt).mean().item(),
    }


@dataclass
class Evaluation:
    predictions: pd.DataFrame  # one row per test sequence
    per_target: pd.DataFrame  # one row per target value
    pairs: pd.DataFrame  # one row per (a, b) digit pair
    metrics: dict[str, Any]  # test/exact, test/len=3/mae, pairs/9x9/exact, ...


def evaluate(model, codec: Codec, pools: Pools, sets: EvalSets, task: str) -> Evaluation:
    preds = prediction_frame(model, codec, pools, sets.test, task)
    pairs = pair_grid(prediction_frame(model, codec, pools, sets.pairs, task))
    metrics: dict[str, Any] = {}
    metrics.update({f"test/{k}": v for k, v in _frame_metrics(preds).items()})
    for length, g in preds.groupby("length"):
        metrics.update({f"test/len={length}/{k}": v for k, v in _frame_metrics(g).items()})
    nine = pairs[(pairs.a == 9) & (pairs.b == 9)].iloc[0]
    metrics["pairs/exact"] = float(pairs.exact.mean())
    metrics["pairs/9x9/exact"] = float(nine.exact)
    return Evaluation(preds, per_target_table(preds), pairs, metrics)


def prediction_frame(model, codec: Codec, pools: Pools, seqs: Sequences, task: str) -> pd.DataFrame:
    pred = predict(model, codec, pools, seqs).cpu().numpy()
    tgt = target(task, seqs.digits, seqs.lengths).cpu().numpy()
    lengths = seqs.lengths.cpu().numpy()
    digits = seqs.digits.cpu().numpy()
    df = pd.DataFrame(
        {
            "length": lengths,
            "digits": [list(map(int, d[:n])) for d, n in zip(digits, lengths)],
            "target": tgt.astype(np.int64),
            "prediction": pred,
        }
    )
    df["rounded"] = np.round(pred)
    df["error"] = pred - tgt
    df["abs_error"] = np.abs(df["error"])
    df["correct"] = df["rounded"] == tgt
    return df


def _frame_metrics(df: pd.DataFrame) -> dict[str, float]:
    return {
        "n": int(len(df)),
        "exact": float(df.correct.mean()),
        "mae": float(df.abs_error.mean()),
        "mse": float((df.error**2).mean()),
        "rel_err": float(relative_error(df.error, df.target).mean()),
    }


def per_target_table(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per target value: n, exact, mae, rmse, rel_err, mean_prediction."""
    g = preds.assign(sq=preds.error**2, rel=relative_error(preds.error, preds.target)).groupby("target")
    out = pd.DataFrame(
        {
            "n": g.size(),
            "exact": g.correct.mean(),
            "mae": g.abs_error.mean(),
            "rmse": np.sqrt(g.sq.mean()),
            "rel_err": g.rel.mean(),
            "mean_prediction": g.prediction.mean(),
        }
    )
    return out.reset_index()


def pair_grid(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per (a, b) from length-2 predictions: n, target, exact with its Wilson 95% interval
    (ci_low, ci_high), mae, mean_prediction."""
    two = preds[preds.length == 2]
    ab = pd.DataFrame(two.digits.tolist(), index=two.index, columns=["a", "b"])
    g = pd.concat([ab, two], axis=1).groupby(["a", "b"])
    n, k = g.size(), g.correct.sum()
    low, high = wilson(k.to_numpy(), n.to_numpy())
    out = pd.DataFrame(
        {
            "n": n,
            "target": g.target.first(),
            "exact": k / n,
            "ci_low": low,
            "ci_high": high,
            "mae": g.abs_error.mean(),
            "mean_prediction": g.prediction.mean(),
        }
    )
    return out.reset_index()
