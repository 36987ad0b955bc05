"""The ceiling: a simple CNN digit classifier, and what its per-digit accuracy allows.

The original post compared its CNN-RNN with a "simple CNN", a softmax classifier on single digits.
A sequence model can only get a whole sequence right if it reads every digit right, so with a
per-digit accuracy p the exact score on length-K sequences is bounded by about p**K. The classifier
here has the same first conv layer shape as the run it is compared with, trains on the same train
pool (same data split) and is scored on the same test pool. It is cached in a folder: a second call
with the same data split and layer shape only reads it back.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqsum.config import DataConfig
from seqsum.data import Pools, load_pools

_ACT = {"tanh": nn.Tanh, "relu": nn.ReLU}
DEFAULT_SHAPE = (8, 4, "tanh")  # the post's first layer: 8 filters of 4x4, tanh


class SimpleCnn(nn.Module):
    """conv(channels, kernel) + activation -> max-pool 2 -> dense 128 -> softmax over 10 digits."""

    def __init__(self, channels: int, kernel: int, activation: str = "tanh"):
        super().__init__()
        side = (28 - kernel + 1) // 2
        self.conv = nn.Conv2d(1, channels, kernel)
        self.net = nn.Sequential(
            _ACT[activation](),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels * side * side, 128),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(128, 10),
        )

    @property
    def first_conv(self) -> nn.Conv2d:
        return self.conv

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 28, 28) uint8 -> logits (N, 10)."""
        return self.net(self.conv(images.unsqueeze(1).float() / 255.0))


@dataclass
class Ceiling:
    """A trained classifier and its scores on the test pool."""

    model: SimpleCnn
    accuracy: float  # per-digit accuracy p on the test pool
    per_digit: list[float]  # accuracy per true digit 0..9
    test_labels: np.ndarray  # (N_test,) true digit of each test-pool image
    test_predictions: np.ndarray  # (N_test,) predicted digit
    info: dict  # what was trained, how long, where cached

    def bound(self, length: int) -> float:
        """p ** length: the exact score a model that reads each digit with accuracy p can reach."""
        return self.accuracy**length

    def pipeline_exact(self, task: str, length: int, n: int = 20_000, seed: int = 0) -> float:
        """Exact score of 'classify every digit, then add or multiply' on random test-pool sequences.

        Above p**K for the product: a read 0 makes the product 0 whatever the other digits are.
        """
        rng = np.random.default_rng(seed + length)
        pick = rng.integers(0, len(self.test_labels), size=(n, length))
        true, pred = self.test_labels[pick], self.test_predictions[pick]
        if task == "sum":
            return float((true.sum(1) == pred.sum(1)).mean())
        return float((true.prod(1) == pred.prod(1)).mean())


def cache_key(data: DataConfig, shape: tuple[int, int, str]) -> str:
    """Same split and first-layer shape -> same key (the pools depend only on these fields)."""
    split = {k: getattr(data, k) for k in ("source", "root", "valid_frac", "test_frac", "split_seed")}
    text = json.dumps({"split": split, "shape": list(shape), "seed": CLASSIFIER_SEED}, sort_keys=True)
    return f"c{shape[0]}k{shape[1]}-{shape[2]}-" + hashlib.sha1(text.encode()).hexdigest()[:8]


def get_ceiling(
    data: DataConfig,
    shape: tuple[int, int, str] = DEFAULT_SHAPE,
    cache: Path | None = None,
    train_if_missing: bool = True,
    pools: Pools | None = None,
    epochs: int | None = None,
) -> Ceiling | None:
    """The cached classifier for this split and shape, trained first when missing (None if not allowed)."""
    folder = Path(cache) / cache_key(data, shape) if cache else None
    if folder is not None and (folder / "ceiling.json").is_file():
        return _load(folder)
    if not train_if_missing:
        return None
    pools = pools if pools is not None else load_pools(data)
    ceiling = train_classifier(pools, shape, epochs=epochs)
    ceiling.info["split"] = {k: getattr(data, k) for k in ("source", "root", "valid_frac", "test_frac", "split_seed")}
    if folder is not None:
        _save(ceiling, folder)
    return ceiling


# Not 0: runs seed their model with train.seed (0 by default), and a classifier drawn from the same seed
# would start from the very same first-layer filters as the runs it is compared with.
CLASSIFIER_SEED = 20160101


def train_classifier(
    pools: Pools,
    shape: tuple[int, int, str],
    epochs: int | None = None,
    seed: int = CLASSIFIER_SEED,
    batch_size: int = 64,
) -> Ceiling:
    """Train on the train pool, keep the epoch with the best validation accuracy, score the test pool.

    Briefly: about 40,000 digits seen (10 epochs of mnist5k's 4,000, one of full MNIST's 56,000),
    on one CPU thread: for a model this small, more threads only fight over shared cores.
    """
    epochs = epochs or max(1, min(10, round(40_000 / len(pools.train))))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            return _train(pools, shape, epochs, seed, batch_size)
    finally:
        torch.set_num_threads(threads)


def _train(pools: Pools, shape: tuple[int, int, str], epochs: int, seed: int, batch_size: int) -> Ceiling:
    """The training loop of `train_classifier`."""
    channels, kernel, activation = shape
    pools = pools.to("cpu")
    torch.manual_seed(seed)
    model = SimpleCnn(channels, kernel, activation)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    x, y = pools.images[pools.train], pools.labels[pools.train]
    best, best_state, t0 = -1.0, None, time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            b = order[i : i + batch_size]
            loss = nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = float((_predict(model, pools.images[pools.valid]) == pools.labels[pools.valid]).float().mean())
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    labels = pools.labels[pools.test].numpy()
    preds = _predict(model, pools.images[pools.test]).numpy()
    info = {
        "shape": list(shape),
        "epochs": epochs,
        "valid_accuracy": best,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "n_train": len(y),
        "n_test": len(labels),
    }
    return _ceiling(model, labels, preds, info)


@torch.no_grad()
def _predict(model: SimpleCnn, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[i : i + 2048]).argmax(1) for i in range(0, len(images), 2048)])


def _ceiling(model: SimpleCnn, labels: np.ndarray, preds: np.ndarray, info: dict) -> Ceiling:
    correct = labels == preds
    per_digit = [float(correct[labels == d].mean()) if (labels == d).any() else float("nan") for d in range(10)]
    return Ceiling(model, float(correct.mean()), per_digit, labels, preds, info)


def _save(c: Ceiling, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(c.model.state_dict(), folder / "classifier.pt")
    np.savez(folder / "test_predictions.npz", labels=c.test_labels, predictions=c.test_predictions)
    info = {**c.info, "accuracy": c.accuracy, "per_digit": c.per_digit}
    (folder / "ceiling.json").write_text(json.dumps(info, indent=2) + "\n")
    c.info["cache"] = str(folder)


def _load(folder: Path) -> Ceiling:
    info = json.loads((folder / "ceiling.json").read_text())
    channels, kernel, activation = info["shape"]
    model = SimpleCnn(channels, kernel, activation)
    model.load_state_dict(torch.load(folder / "classifier.pt", map_location="cpu", weights_only=True))
    model.eval()
    arrays = np.load(folder / "test_predictions.npz")
    info.pop("accuracy"), info.pop("per_digit")
    return _ceiling(model, arrays["labels"], arrays["predictions"], {**info, "cache": str(folder), "cached": True})
