"""The run-stack reference: a digit classifier, then exact arithmetic on the digits it reads.

The classifier is the run's own conv stack (seqsum.model.CnnGru's, same layers and activation) with a
10-way head, trained on the same training images (same data split). It reads every image of the SAME
test sequences the run was scored on (regenerated with seqsum.data.eval_sets), and the sum or product
of the digits it reads is compared with the target. That is what an end-to-end model that had learned
the arithmetic perfectly would score with this recognizer. It is a reference, not an upper bound: a
model can recognize digits better, and errors can cancel (a misread 0 in a product still makes 0).

The classifier and its readings of the test pool are cached in a folder keyed by the data split and the
conv stack; a damaged cache file is rebuilt (or, when training is turned off, named in one line).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqsum.config import DataConfig, ModelConfig
from seqsum.data import Pools, Sequences
from seqsum.errors import ConfigError, CorruptFile
from seqsum.files import read_json, write_bytes, write_json, write_with
from seqsum.model import CnnGru
from seqsum.targets import target

# Not 0: runs seed their model with train.seed (0 by default); a classifier drawn from the same seed would
# start from the very same first-layer filters as the runs it is compared with.
CLASSIFIER_SEED = 20160101
SPLIT_FIELDS = ("source", "root", "valid_frac", "test_frac", "split_seed")
FILES = ("reference.json", "classifier.pt", "test_predictions.npz")


class DigitClassifier(nn.Module):
    """The run's conv stack (CnnGru's own layers) -> dropout -> a 10-way linear head."""

    def __init__(self, model: ModelConfig):
        super().__init__()
        plain = {k: v for k, v in (("head", "dense"), ("bottleneck", "none")) if hasattr(model, k)}
        stack = CnnGru(replace(model, **plain))  # only the conv stack is used: any head builds the same one
        self.cnn, self.drop, self.head = stack.cnn, nn.Dropout(0.25), nn.Linear(stack.feat_dim, 10)

    @property
    def first_conv(self) -> nn.Conv2d | None:
        return next((m for m in self.cnn if isinstance(m, nn.Conv2d)), None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (N, 28, 28) uint8 -> logits (N, 10)."""
        return self.head(self.drop(self.cnn(images.unsqueeze(1).float() / 255.0)))


@dataclass
class Reference:
    """A trained digit classifier and its reading of every test-pool image."""

    model: DigitClassifier
    test_index: np.ndarray  # (N_test,) image index of each test-pool image
    test_labels: np.ndarray  # (N_test,) its true digit
    test_predictions: np.ndarray  # (N_test,) the digit the classifier reads
    info: dict = field(default_factory=dict)  # stack, epochs, accuracy, timing, cache folder

    @property
    def accuracy(self) -> float:
        return float((self.test_labels == self.test_predictions).mean())

    @property
    def per_digit(self) -> list[float]:
        ok = self.test_labels == self.test_predictions
        return [float(ok[self.test_labels == d].mean()) if (self.test_labels == d).any() else float("nan")
                for d in range(10)]  # fmt: skip

    def read(self, seqs: Sequences) -> torch.Tensor:
        """(B, T) digits the classifier reads for the images of `seqs` (test-pool images only)."""
        lookup = np.full(int(self.test_index.max()) + 1, -1, dtype=np.int64)
        lookup[self.test_index] = self.test_predictions
        idx = seqs.idx.cpu().numpy()
        read = lookup[np.minimum(idx, len(lookup) - 1)]
        real = seqs.mask.cpu().numpy()
        if (read[real] < 0).any():
            raise ConfigError("the reference reads test-pool images only; these sequences hold other images")
        return torch.from_numpy(np.where(real, read, 0))

    def correct(self, seqs: Sequences, task: str) -> np.ndarray:
        """(B,) bool: the exact sum/product of the digits read equals the target."""
        truth = target(task, seqs.digits.cpu(), seqs.lengths.cpu())
        return (target(task, self.read(seqs), seqs.lengths.cpu()) == truth).numpy()


def stack_of(model: ModelConfig) -> dict:
    """The part of a model config the classifier copies (padding and pooling only when a stack has them, so
    a stack without them keeps the cache key it always had)."""
    out = {"conv_channels": list(model.conv_channels), "conv_kernels": list(model.conv_kernels),
           "activation": model.activation}  # fmt: skip
    for key in ("conv_padding", "conv_pool"):
        if getattr(model, key, ()):
            out[key] = list(getattr(model, key))
    return out


def stack_label(model: ModelConfig) -> str:
    pads, pools = getattr(model, "conv_padding", ()) or (), getattr(model, "conv_pool", ()) or ()
    layers = []
    for i, (c, k) in enumerate(zip(model.conv_channels, model.conv_kernels)):
        pad = f" pad {pads[i]}" if i < len(pads) and pads[i] else ""
        pool = f" pool {pools[i]}" if i < len(pools) and pools[i] > 1 else ""
        layers.append(f"{c}x{k}x{k}{pad}{pool}")
    return f"conv {', '.join(layers) or 'no conv'} ({model.activation})"


def cache_key(data: DataConfig, model: ModelConfig) -> str:
    """Same data split and conv stack -> same key (the pools depend only on the split fields)."""
    text = json.dumps(
        {"split": {k: getattr(data, k) for k in SPLIT_FIELDS}, "stack": stack_of(model), "seed": CLASSIFIER_SEED},
        sort_keys=True,
    )
    return "ref-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def get_reference(
    data: DataConfig,
    model: ModelConfig,
    pools: Pools,
    cache: Path | None = None,
    train_if_missing: bool = True,
    notes: list[str] | None = None,
) -> Reference | None:
    """The cached reference for this split and stack; trained (and cached) when missing or damaged.

    Returns None when it is missing and training is off. A damaged cache with training off raises
    ConfigError naming the file; with training on it is rebuilt and a line goes to `notes`.
    """
    folder = Path(cache) / cache_key(data, model) if cache else None
    if folder is not None and (folder / FILES[0]).exists():
        try:
            return _load(folder, model)
        except ConfigError as e:
            if not train_if_missing:
                raise ConfigError(f"{e}; run the report without --no-reference to rebuild it") from None
            if notes is not None:
                notes.append(f"reference cache rebuilt: {e}")
    if not train_if_missing:
        return None
    ref = train_reference(pools, model)
    ref.info["split"] = {k: getattr(data, k) for k in SPLIT_FIELDS}
    if folder is not None:
        _save(ref, folder)
    return ref


def train_reference(pools: Pools, model: ModelConfig, epochs: int | None = None, batch_size: int = 64) -> Reference:
    """Train on the train pool, keep the epoch with the best validation accuracy, read the test pool.

    About 40,000 digits seen (10 epochs of mnist5k's 4,000, one of full MNIST's 56,000), on one CPU
    thread; the caller's random state is left as it was.
    """
    epochs = epochs or max(1, min(10, round(40_000 / len(pools.train))))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return _train(pools.to("cpu"), model, epochs, batch_size)
    finally:
        torch.set_num_threads(threads)


def _train(pools: Pools, model_cfg: ModelConfig, epochs: int, batch_size: int) -> Reference:
    torch.manual_seed(CLASSIFIER_SEED)
    model = DigitClassifier(model_cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(CLASSIFIER_SEED)
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
    info = {
        "stack": stack_of(model_cfg),
        "epochs": epochs,
        "valid_accuracy": best,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "n_train": len(y),
        "n_test": len(pools.test),
    }
    preds = _predict(model, pools.images[pools.test]).numpy()
    return Reference(model, pools.test.numpy(), pools.labels[pools.test].numpy(), preds, info)


@torch.no_grad()
def _predict(model: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[i : i + 2048]).argmax(1) for i in range(0, len(images), 2048)])


def _save(r: Reference, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_with(folder / FILES[1], lambda f: torch.save(r.model.state_dict(), f))
    buf = io.BytesIO()
    np.savez(buf, index=r.test_index, labels=r.test_labels, predictions=r.test_predictions)
    write_bytes(folder / FILES[2], buf.getvalue())
    write_json(folder / FILES[0], {**r.info, "accuracy": r.accuracy, "per_digit": r.per_digit})  # last: complete
    r.info["cache"] = str(folder)


def _load(folder: Path, model_cfg: ModelConfig) -> Reference:
    """Read a cached reference; any damaged or mismatched file raises CorruptFile naming it."""
    info = read_json(folder / FILES[0], fix="it is rebuilt when the report may train the reference")
    if not isinstance(info, dict) or info.get("stack") != stack_of(model_cfg):
        raise CorruptFile(f"{str(folder / FILES[0])!r} does not describe this conv stack")
    model = DigitClassifier(model_cfg)
    damaged = (OSError, RuntimeError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
    try:
        model.load_state_dict(torch.load(folder / FILES[1], map_location="cpu", weights_only=True))
    except damaged as e:
        raise CorruptFile(f"{str(folder / FILES[1])!r} is damaged ({_first_line(e)})") from None
    try:
        with np.load(folder / FILES[2]) as arrays:
            index, labels, preds = arrays["index"], arrays["labels"], arrays["predictions"]
    except damaged as e:
        raise CorruptFile(f"{str(folder / FILES[2])!r} is damaged ({_first_line(e)})") from None
    model.eval()
    for k in ("accuracy", "per_digit"):
        info.pop(k, None)
    return Reference(model, index, labels, preds, {**info, "cache": str(folder), "cached": True})


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:100]
