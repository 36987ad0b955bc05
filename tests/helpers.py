"""Helpers the tests share (plain functions and constants; the fixtures are in conftest.py): tiny configs,
IDX writers, the CLI run in this process, a folder's files, and the repository's root."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from seqsum.config import RunConfig

REPO = Path(__file__).resolve().parents[1]  # the repository: seqsum/, study/, analysis/, docs/, tests/

# A model and data small enough that a few epochs take about a second.
TINY: dict[str, Any] = {
    "data.train_size": 256,
    "data.valid_size": 64,
    "data.test_size": 128,
    "data.pairs_per_cell": 1,
    "model.conv_channels": [4],
    "model.conv_kernels": [5],
    "model.gru_hidden": [8],
    "train.epochs": 2,
    "train.batch_size": 64,
    "train.device": "cpu",
}


def tiny_config(**overrides: Any) -> RunConfig:
    """TINY plus overrides given as section__name=value (e.g. train__task="product")."""
    extra = {k.replace("__", "."): v for k, v in overrides.items()}
    return RunConfig().replace({**TINY, **extra})


def history_without_times(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


# --- IDX files ------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return head + array.tobytes()


def fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n random 28x28 images with labels cycling 0..9 (every digit present)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_idx_pair(
    folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = False, dotted: bool = False
) -> tuple[Path, Path]:
    """Write <split>-images-idx3-ubyte and <split>-labels-idx1-ubyte (optionally .gz, or the
    dotted variant train-images.idx3-ubyte) into folder; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    paths = []
    for kind, code, arr in (("images", 3, images), ("labels", 1, labels)):
        name = f"{split}-{kind}{sep}idx{code}-ubyte" + (".gz" if gz else "")
        data = idx_bytes(arr)
        path = folder / name
        if gz:
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)
        paths.append(path)
    return paths[0], paths[1]


# --- the CLI in-process -----------------------------------------------------------------------------
def run_cli(*argv: Any) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of seqsum.cli.main(argv), run in this process."""
    import contextlib
    import io

    from seqsum.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse: --help, usage errors
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path with its bytes (to check that a folder was left untouched)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
