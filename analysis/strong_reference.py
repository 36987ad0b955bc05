"""The strong reference: the best digit reader trained on the run's training images, then exact arithmetic.

The run-stack reference (analysis.reference) reads digits with the run's own conv stack; a model that reads
worse than a good CNN can still score well against it. The strong reference reads them with a small modern
CNN (conv-BN-ReLU blocks with padding and max pooling, dropout), trained with Adam under a one-cycle
schedule on randomly shifted, rotated and scaled copies of the SAME training-pool images (never the
validation or test pool; the epoch with the best validation accuracy is kept). On the embedded digits
(4,000 training images) it trains in a minute or two on two CPU threads.

It depends only on the data split (and READER_VERSION, SEED), never on the run's model, so it is cached
once per machine (`user_cache()`: $SEQSUM_REFERENCE_CACHE, else $XDG_CACHE_HOME/seqsum/reference, else
~/.cache/seqsum/reference) and shared by every report, findings collection and smoke study on that split.
A damaged cache is rebuilt (or, when training is off, named in one line).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from seqsum.config import DataConfig
from seqsum.data import Pools
from seqsum.errors import ConfigError, CorruptFile
from seqsum.files import read_json, write_bytes, write_json, write_with

from .reference import FILES, SPLIT_FIELDS, Reference

READER_VERSION = 1  # bump when the architecture, augmentation or schedule changes: a new cache key
SEED = 20160102
EPOCHS = 12  # over mnist5k's 4,000 training images; scaled down for larger pools (see train_strong)
BATCH = 64
LR = 3e-3
NAME = "strong reference"
ARCHITECTURE = (
    "conv 16x3x3, conv 16x3x3, maxpool 2, conv 32x3x3, conv 32x3x3, maxpool 2 (padding 1, batch norm, relu), "
    "dropout 0.25, dense 128, dropout 0.5, 10 classes; augmentation: random rotation +-12 deg, shift +-2.5 px, "
    "scale 0.9-1.1; Adam, one-cycle lr 3e-3"
)


class StrongReader(nn.Module):
    """Two conv-BN-ReLU pairs per resolution, max pooling, dropout, a 128-unit dense layer, 10 logits."""

    def __init__(self):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32), nn.MaxPool2d(2)
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128, bias=False), nn.BatchNorm1d(128),
            nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 1, 28, 28) float in [0, 1] -> logits (N, 10)."""
        return self.head(self.features(x))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine copies of x (N, 1, 28, 28): rotation, isotropic scale and shift, bilinear, zero fill."""
    n = len(x)
    u = torch.rand(n, 4, generator=gen) * 2 - 1
    angle, scale = u[:, 0] * math.radians(12), 1 + 0.1 * u[:, 1]
    shift = u[:, 2:] * (2.5 / 14)  # affine_grid coordinates: the image spans [-1, 1], 14 px per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def cache_key(data: DataConfig) -> str:
    """Same data split -> same key (the pools depend only on the split fields)."""
    text = json.dumps(
        {"split": {k: getattr(data, k) for k in SPLIT_FIELDS}, "reader": READER_VERSION, "seed": SEED}, sort_keys=True
    )
    return "strong-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def user_cache() -> Path:
    """Where strong references are cached on this machine (shared by every study and report)."""
    if os.environ.get("SEQSUM_REFERENCE_CACHE"):
        return Path(os.environ["SEQSUM_REFERENCE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqsum" / "reference"


def get_strong(
    data: DataConfig,
    pools: Pools,
    cache: Path | None = None,
    train_if_missing: bool = True,
    notes: list[str] | None = None,
) -> Reference | None:
    """The cached strong reference of this split (default cache: user_cache()); trained and cached when
    missing or damaged. None when missing and training is off; a damaged cache with training off raises
    ConfigError naming the file (with training on it is rebuilt and a line goes to `notes`)."""
    folder = Path(cache or user_cache()) / cache_key(data)
    if (folder / FILES[0]).exists():
        try:
            return _load(folder)
        except ConfigError as e:
            if not train_if_missing:
                raise ConfigError(f"{e}; run the report without --no-reference to rebuild it") from None
            if notes is not None:
                notes.append(f"strong reference cache rebuilt: {e}")
    if not train_if_missing:
        return None
    ref = train_strong(pools)
    ref.info["split"] = {k: getattr(data, k) for k in SPLIT_FIELDS}
    try:
        _save(ref, folder)
    except OSError as e:  # a read-only home: the reference still serves this report, uncached
        if notes is not None:
            notes.append(f"strong reference not cached in {str(folder)!r}: {e.strerror or e}")
    return ref


def train_strong(pools: Pools, epochs: int | None = None, threads: int = 2) -> Reference:
    """Train on the train pool (about EPOCHS x 4,000 augmented images seen), keep the epoch with the best
    validation accuracy, read the test pool. At most `threads` CPU threads; the caller's random state and
    thread count are left as they were."""
    epochs = epochs or max(2, min(EPOCHS, round(EPOCHS * 4000 / len(pools.train))))
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(threads, before)))
    try:
        with torch.random.fork_rng(devices=[]):
            return _train(pools.to("cpu"), epochs)
    finally:
        torch.set_num_threads(before)


def _images(pools: Pools, index: torch.Tensor) -> torch.Tensor:
    return pools.images[index].unsqueeze(1).float() / 255.0


def _train(pools: Pools, epochs: int) -> Reference:
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = StrongReader()
    x, y = _images(pools, pools.train), pools.labels[pools.train]
    steps = epochs * math.ceil(len(y) / BATCH)
    opt = torch.optim.Adam(model.parameters(), lr=LR / 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.25)
    xv, yv = _images(pools, pools.valid), pools.labels[pools.valid]
    best, best_state, best_epoch, t0 = -1.0, None, 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), BATCH):
            b = order[i : i + BATCH]
            if len(b) < 2:  # batch norm needs two samples
                continue
            loss = F.cross_entropy(model(augment(x[b], gen)), y[b], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = float((_predict(model, xv) == yv).float().mean())
        if acc >= best:
            best, best_state, best_epoch = acc, {k: v.clone() for k, v in model.state_dict().items()}, epoch
    model.load_state_dict(best_state)
    model.eval()
    info = {
        "reader": NAME,
        "architecture": ARCHITECTURE,
        "version": READER_VERSION,
        "epochs": epochs,
        "best_epoch": best_epoch,
        "valid_accuracy": best,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        "n_train": len(y),
        "n_test": len(pools.test),
    }
    preds = _predict(model, _images(pools, pools.test)).numpy()
    return Reference(model, pools.test.numpy(), pools.labels[pools.test].numpy(), preds, info)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + 1024]).argmax(1) for i in range(0, len(x), 1024)])


def _save(r: Reference, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_with(folder / FILES[1], lambda f: torch.save(r.model.state_dict(), f))
    buf = io.BytesIO()
    np.savez(buf, index=r.test_index, labels=r.test_labels, predictions=r.test_predictions)
    write_bytes(folder / FILES[2], buf.getvalue())
    write_json(folder / FILES[0], {**r.info, "accuracy": r.accuracy, "per_digit": r.per_digit})  # last: complete
    r.info["cache"] = str(folder)


def _load(folder: Path) -> Reference:
    """Read a cached strong reference; a damaged or mismatched file raises CorruptFile naming it."""
    info = read_json(folder / FILES[0], fix="it is rebuilt when the report may train the reference")
    if not isinstance(info, dict) or info.get("reader") != NAME or info.get("version") != READER_VERSION:
        raise CorruptFile(f"{str(folder / FILES[0])!r} does not describe strong reference v{READER_VERSION}")
    model = StrongReader()
    damaged = (OSError, RuntimeError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError)
    try:
        model.load_state_dict(torch.load(folder / FILES[1], map_location="cpu", weights_only=True))
        with np.load(folder / FILES[2]) as arrays:
            index, labels, preds = arrays["index"], arrays["labels"], arrays["predictions"]
    except damaged as e:
        raise CorruptFile(f"{str(folder)!r} holds a damaged file ({(str(e).splitlines() or [''])[0][:100]})") from None
    model.eval()
    for k in ("accuracy", "per_digit"):
        info.pop(k, None)
    return Reference(model, index, labels, preds, {**info, "cache": str(folder), "cached": True})
