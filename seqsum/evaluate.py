"""Scoring in value space: one row per test sequence, a per-target-value table, the digit-pair grid.

*exact* is the share of sequences whose decoded prediction, rounded, equals the target; *rel_err* is
`relative_error`: |error| / max(|target|, 1), so for target 0 it is the absolute error.

The data and output switches add (only when they are on): a `held_out` column and held-out/seen metrics
(data.holdout), `test/step=K/*` (model.outputs every_step), and for every test length beyond the
training lengths `extrapolated_lengths` plus, for a classifier, `test/len=K/unreachable` (not for the exact
head, whose classes are computed, not learned). With the digit bottleneck: `valid/digit_acc`,
`test/digit_acc` and the test pool's confusion table (seqsum.bottleneck). A classifier (the classify loss,
the exact head) predicts the most likely result (`prediction`, scored by exact, mae, mse); it also gives the
mean of its predicted distribution (`posterior_mean`), the prediction rule for squared error, scored as
`mean_mse` (test/mean_mse, test/len=K/mean_mse). Both rules are fixed here, never chosen on test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .bottleneck import digit_report
from .choices import ALL_DIGITS
from .data import EvalSets, Pools, Sequences, held_out_rows
from .stats import wilson
from .targets import ClassifyCodec, Codec, achievable_values, running_target, target

# The summary.json metrics that reports compare across runs, families and seeds (defined once).
COMPARED_METRICS = ("test/exact", "test/mae", "test/mse", "pairs/9x9/exact", "valid/exact")


@torch.no_grad()
def predict(
    model, codec: Codec, pools: Pools, seqs: Sequences, batch: int = 4096, steps: bool = False, decode=None
) -> torch.Tensor:
    """Decoded predictions (n,) float64 for every sequence in `seqs`; with `steps`, (n, T) after every step.
    `decode`: (B, out_dim) model outputs -> (B, ...) predictions, codec.decode unless given."""
    decode = decode or codec.decode
    was_training = model.training
    model.eval()
    out = []
    if hasattr(model, "eval_batch"):  # the exact head with many classes: smaller batches
        batch = min(batch, model.eval_batch(seqs.idx.shape[1]))
    for i in range(0, len(seqs), batch):
        b = seqs[i : i + batch]
        pooled = getattr(model, "forward_pool", None)  # one CNN pass per distinct image
        kw = {"steps": True} if steps else {}
        raw = pooled(pools.images, b.idx, b.lengths, **kw) if pooled else model(pools.images[b.idx], b.lengths, **kw)
        out.append(decode(raw.reshape(-1, raw.shape[-1])).reshape(raw.shape[:-1]) if steps else decode(raw))
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
    confusion: pd.DataFrame | None = None  # the digit bottleneck's test-pool reads (confusion.csv)


def evaluate(model, codec: Codec, pools: Pools, sets: EvalSets, task: str) -> Evaluation:
    preds = prediction_frame(model, codec, pools, sets.test, task)
    pairs = pair_grid(prediction_frame(model, codec, pools, sets.pairs, task))
    metrics: dict[str, Any] = {}
    metrics.update({f"test/{k}": v for k, v in _frame_metrics(preds).items()})
    for length, g in preds.groupby("length"):
        metrics.update({f"test/len={length}/{k}": v for k, v in _frame_metrics(g).items()})
    nine = pairs[(pairs.a == 9) & (pairs.b == 9)]  # absent when data.digits leaves 9 out
    metrics["pairs/exact"] = float(pairs.exact.mean())
    metrics["pairs/9x9/exact"] = float(nine.exact.iloc[0]) if len(nine) else float("nan")
    if sets.holdout:
        _held_out(preds, pairs, sets, metrics)
    if getattr(model, "outputs", "last") == "every_step":
        metrics.update(step_metrics(model, codec, pools, sets.test, task))
    if sets.train_max_len is not None and preds.length.max() > sets.train_max_len:
        digits = sets.drawn_for.digits if sets.drawn_for is not None else ALL_DIGITS
        _extrapolation(preds, codec, sets.train_max_len, task, metrics, digits)
    if getattr(model, "kind", "dense") == "exact":  # its classes are computed: none is unreachable
        metrics = {k: v for k, v in metrics.items() if not k.endswith("/unreachable")}
    conf = None
    if getattr(model, "digits", None) is not None:
        digit_metrics, conf = digit_report(model, pools)
        metrics.update(digit_metrics)
    return Evaluation(preds, per_target_table(preds), pairs, metrics, conf)


def _held_out(preds: pd.DataFrame, pairs: pd.DataFrame, sets: EvalSets, metrics: dict[str, Any]) -> None:
    """data.holdout: a `held_out` column (the sequence holds a held-out pair) and metrics for each side."""
    seqs = sets.test
    preds["held_out"] = held_out_rows(seqs.digits, seqs.lengths, sets.holdout).numpy()
    held = {tuple(p) for p in sets.holdout}
    pairs["held_out"] = [(min(a, b), max(a, b)) in held for a, b in zip(pairs.a, pairs.b)]
    for name, side in (("held_out", True), ("seen", False)):
        part = preds[preds.held_out == side]
        metrics[f"test/{name}/n"] = int(len(part))
        metrics[f"test/{name}/exact"] = float(part.correct.mean()) if len(part) else float("nan")
        cells = pairs[pairs.held_out == side]
        metrics[f"pairs/{name}/exact"] = float(cells.exact.mean()) if len(cells) else float("nan")


def step_metrics(model, codec: Codec, pools: Pools, seqs: Sequences, task: str) -> dict[str, Any]:
    """model.outputs every_step: test/step=K/{n,exact,mae} of the running value after digit K, over the test
    sequences of length >= K."""
    pred = predict(model, codec, pools, seqs, steps=True).cpu()  # (n, T)
    tgt = running_target(task, seqs.digits, seqs.lengths).cpu()
    real = seqs.mask.cpu()
    out: dict[str, Any] = {}
    for k in range(pred.shape[1]):
        rows = real[:, k]
        p, t = pred[rows, k], tgt[rows, k]
        out[f"test/step={k + 1}/n"] = int(rows.sum())
        out[f"test/step={k + 1}/exact"] = (p.round() == t).double().mean().item()
        out[f"test/step={k + 1}/mae"] = (p - t).abs().mean().item()
    return out


def _extrapolation(
    preds: pd.DataFrame, codec: Codec, train_max_len: int, task: str, metrics: dict[str, Any], digits=ALL_DIGITS
) -> None:
    """Test lengths beyond training: listed; a classifier's unreachable share per length (targets that are
    no class it was trained on: outside its class set or not achievable at the training lengths)."""
    lengths = sorted(int(v) for v in preds.length.unique())
    metrics["trained_lengths"] = [n for n in lengths if n <= train_max_len]
    metrics["extrapolated_lengths"] = [n for n in lengths if n > train_max_len]
    if not isinstance(codec, ClassifyCodec):
        return
    trained = set(achievable_values(task, train_max_len, tuple(digits))) & set(codec.values.long().tolist())
    for length, g in preds.groupby("length"):
        metrics[f"test/len={length}/unreachable"] = float((~g.target.isin(trained)).mean())


def prediction_frame(model, codec: Codec, pools: Pools, seqs: Sequences, task: str) -> pd.DataFrame:
    classifier = isinstance(codec, ClassifyCodec)
    both = (lambda raw: torch.stack([codec.decode(raw), codec.mean(raw)], 1)) if classifier else None
    out = predict(model, codec, pools, seqs, decode=both).cpu().numpy()
    pred = out[:, 0] if classifier else out
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
    if classifier:
        df["posterior_mean"] = out[:, 1]
    return df


def _frame_metrics(df: pd.DataFrame) -> dict[str, float]:
    out = {
        "n": int(len(df)),
        "exact": float(df.correct.mean()),
        "mae": float(df.abs_error.mean()),
        "mse": float((df.error**2).mean()),
        "rel_err": float(relative_error(df.error, df.target).mean()),
    }
    if "posterior_mean" in df:
        out["mean_mse"] = float(((df.posterior_mean - df.target) ** 2).mean())
    return out


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
