"""First-layer filters of a CNN-RNN run beside the reference digit classifier's ("Visualizing Layer 1").

The similarity of two filter banks is the mean |cosine| of the best one-to-one matching of their
normalized (zero-mean, unit-norm) filters; the same score against random filters of the same shape
says what "no resemblance" looks like.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from seqsum.checkpoint import load_checkpoint, model_from_checkpoint, read_checkpoint
from seqsum.data import load_pools
from seqsum.errors import ConfigError
from seqsum.files import check_writable, write_with
from seqsum.model import build

from .reference import get_reference, stack_label


def weights(conv) -> np.ndarray:
    """(C, k, k) filters of a conv layer with one input channel."""
    return conv.weight.detach().cpu().numpy()[:, 0]


def _unit(f: np.ndarray) -> np.ndarray:
    f = f.reshape(len(f), -1).astype(np.float64)
    if f.shape[1] > 1:
        f = f - f.mean(1, keepdims=True)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean |cosine| of the best one-to-one matching of a's and b's filters.

    Returns (score, match, cos): match[i] = index of b's filter paired with a's filter i (-1 when b
    has fewer filters), cos[i] = the signed cosine of that pair.
    """
    c = _unit(a) @ _unit(b).T  # (Ca, Cb)
    rows, cols = linear_sum_assignment(np.abs(c), maximize=True)
    match, cos = np.full(len(a), -1), np.full(len(a), np.nan)
    match[rows], cos[rows] = cols, c[rows, cols]
    return float(np.abs(c[rows, cols]).mean()), match, cos


def random_similarity(a: np.ndarray, like: np.ndarray, n: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the similarity of `a` to random Gaussian filters shaped like `like`."""
    rng = np.random.default_rng(seed)
    scores = [similarity(a, rng.standard_normal(like.shape))[0] for _ in range(n)]
    return float(np.mean(scores)), float(np.std(scores))


@dataclass
class Comparison:
    run: np.ndarray  # (C, k, k) the run's first-layer filters
    cnn: np.ndarray  # (C, k, k) the reference classifier's
    score: float
    random_mean: float
    random_std: float
    match: np.ndarray
    cos: np.ndarray
    reference_accuracy: float
    label: str  # what the run is, for titles
    init_score: float  # the same score of the run's filters against their own initial values

    @property
    def sentence(self) -> str:
        z = (self.score - self.random_mean) / self.random_std if self.random_std > 0 else float("nan")
        verdict = "closer than chance" if z > 2 else "no closer than chance"
        return (
            f"{self.label}: {len(self.run)} filters of {self.run.shape[1]}x{self.run.shape[2]}; matched "
            f"|cosine| to the reference classifier's {self.score:.2f} vs {self.random_mean:.2f} "
            f"(sd {self.random_std:.2f}) for random filters ({verdict}, z = {z:.1f}); "
            f"{self.init_score:.2f} to the run's own initial filters"
        )


def compare_run(run_dir: Path, cache: Path | None, train_if_missing: bool = True, pools=None) -> Comparison:
    """Load a run's checkpoint and compare its first conv layer with the reference classifier of the same shape."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
    cfg, model, _ = model_from_checkpoint(load_checkpoint(ckpt))
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(cfg.train.seed)  # train() seeds this way before building the model
        init = build(cfg)[0].first_conv
    if model.first_conv is None:
        raise ConfigError(f"run {str(run_dir)!r} has no conv layer: no first-layer filters to draw")
    ref = get_reference(cfg.data, cfg.model, pools or load_pools(cfg.data), cache, train_if_missing)
    if ref is None:
        raise ConfigError(f"no cached reference classifier for {stack_label(cfg.model)} in {cache}")
    run, cnn = weights(model.first_conv), weights(ref.model.first_conv)
    score, match, cos = similarity(run, cnn)
    mean, std = random_similarity(run, cnn)
    label = f"{cfg.train.task}/{cfg.train.loss} run {ckpt.parent.name}"
    return Comparison(run, cnn, score, mean, std, match, cos, ref.accuracy, label, similarity(run, weights(init))[0])


def plot_filters(c: Comparison) -> Figure:
    """The run's filters (top block) and the reference classifier's, each CNN filter under its matched run filter."""
    n = len(c.run)
    cols = min(n, 16)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(max(6.0, 0.9 * cols), 1.2 + 2.0 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols)
    for i in range(n):
        r, col = divmod(i, cols)
        j = c.match[i]
        pair = [(c.run[i], f"#{i}", 0)]
        if j >= 0:
            sign = 1.0 if c.cos[i] >= 0 else -1.0  # show the matched filter with the sign that matches
            pair.append((sign * c.cnn[j], f"|cos| {abs(c.cos[i]):.2f}", 1))
        for f, text, block in pair:
            ax = fig.add_subplot(grid[2 * r + block, col])
            ax.imshow(f, cmap="gray", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(text, fontsize=7)
            if col == 0:
                ax.set_ylabel("CNN-RNN" if block == 0 else "reference classifier", fontsize=8)
    fig.suptitle(
        f"First-layer filters: {c.label} (top) vs reference classifier, acc {c.reference_accuracy:.3f} (below)\n"
        f"matched |cos| {c.score:.2f}, random filters {c.random_mean:.2f} (sd {c.random_std:.2f})",
        fontsize=9,
    )
    return fig


def study_of(run_dir: Path) -> Path | None:
    """The study folder a run folder sits in (trials/<task>/<id> or rerun/<task>/<id>), if any."""
    for parent in list(Path(run_dir).resolve().parents)[:4]:
        if (parent / "optuna.db").is_file() or (parent / "study.yaml").is_file():
            return parent
    return None


def default_cache(run_dir: Path) -> Path:
    study = study_of(run_dir)
    if study is not None:
        return study / "report" / "reference"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seqsum" / "reference"


def default_out(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    study = study_of(run_dir)
    if study is not None:
        return study / "report" / "figures" / f"filters-{run_dir.resolve().parent.name}-{run_dir.name}.png"
    return run_dir / "filters.png"


def filters_command(run_dir: Path, out: Path | None, cache: Path | None) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConfigError(f"run folder {str(run_dir)!r} does not exist")
    if run_dir.is_dir() and not (run_dir / "checkpoint.pt").is_file():
        raise ConfigError(
            f"{str(run_dir)!r} has no checkpoint.pt: give a run folder written by seqsum train or a study"
        )
    read_checkpoint(run_dir)  # a damaged or foreign checkpoint fails here, before the reference is trained
    out = Path(out) if out else default_out(run_dir)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {str(out)!r} must be a .png file")
    check_writable(out.parent, "--out's folder")
    cache = Path(cache) if cache else default_cache(run_dir)
    check_writable(cache, "--cache")
    print(f"seqsum filters: {run_dir} (reference classifier cache: {cache})", flush=True)
    c = compare_run(run_dir, cache)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_filters(c)
    write_with(out, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    print(c.sentence)
    print(f"wrote {out}")
    return out
