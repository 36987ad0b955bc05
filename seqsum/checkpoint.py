"""Checkpoint I/O, the one module for it: `checkpoint_state` (what `train` reports after every epoch),
`save_checkpoint` (atomic), `load_checkpoint` (torch.load with weights_only=True: a seqsum checkpoint's keys or
CorruptFile), `model_from_checkpoint`, and `read_checkpoint`: a checkpoint read for use, with the checks that
its contents are what a seqsum run wrote, so a damaged or foreign checkpoint fails as one line before
anything is written.

`read_checkpoint(path)` (evaluate, filters): a valid config, an epoch count, a list of epochs, and model
weights that fit the config's model. With `resume=True` (train --resume) also the optimizer and random
states load, and the run did not diverge.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig
from .errors import ConfigError, CorruptFile
from .files import write_with
from .memory import check_memory
from .model import CnnGru, build
from .optim import make_optimizer
from .targets import Codec


def checkpoint_state(cfg, model, opt, gen, epoch, history, train_seconds: float = 0.0) -> dict[str, Any]:
    """Everything `train(..., resume=...)` needs; loadable with torch.load(weights_only=True).

    A snapshot: tensors are copied, so a state kept in memory does not move on with training."""
    return {
        "config": cfg.to_dict(),
        "epoch": epoch,
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(opt.state_dict()),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": list(history),
        "train_seconds": float(train_seconds),  # total over every segment so far
    }


CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "generator", "torch_rng", "history")
_RECOVER = "it cannot be resumed: train the run again (seqsum train --out NEW_FOLDER ...)"


def load_checkpoint(path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; a missing, truncated or foreign file raises
    CorruptFile (a ConfigError) with one line naming it and how to recover."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CorruptFile(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CorruptFile(f"checkpoint {str(path)!r} is a directory, not a checkpoint file") from None
    except Exception as e:  # unreadable or corrupted
        reason = " ".join(str(e).split())[:200]
        raise CorruptFile(f"checkpoint {str(path)!r} is unreadable or corrupted ({reason}); {_RECOVER}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptFile(
            f"checkpoint {str(path)!r} is not a seqsum checkpoint (missing {', '.join(missing)}); {_RECOVER}"
        )
    return state


def save_checkpoint(state: dict[str, Any], path) -> None:
    """Write atomically (seqsum.files): a crash mid-write never leaves a half checkpoint under `path`."""
    write_with(path, lambda f: torch.save(state, f))


def model_from_checkpoint(state: dict[str, Any]) -> tuple[RunConfig, CnnGru, Codec]:
    cfg = RunConfig.from_dict(state["config"])
    model, codec = build(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return cfg, model, codec


_AGAIN = "train the run again (seqsum train --out NEW_FOLDER ...)"


def read_checkpoint(path: str | Path, resume: bool = False) -> dict[str, Any]:
    """The checkpoint at `path` (a run folder or the file), checked; CorruptFile names what is wrong."""
    path = Path(path)
    ckpt = path / "checkpoint.pt" if path.is_dir() else path
    state = load_checkpoint(ckpt)
    where = f"checkpoint {str(ckpt)!r}"
    try:
        cfg = RunConfig.from_dict(state["config"])
    except ConfigError as e:
        raise CorruptFile(f"{where} holds an invalid config ({e}); {_AGAIN}") from None
    _check_progress(where, state)
    _check_weights(where, cfg, state)
    if resume:
        _check_resumable(where, cfg, state)
    return state


def _check_progress(where: str, state: dict[str, Any]) -> None:
    epoch, history = state["epoch"], state["history"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CorruptFile(f"{where} has epoch {epoch!r}; expected an integer >= 0; {_AGAIN}")
    if not isinstance(history, list) or not all(isinstance(m, dict) for m in history):
        raise CorruptFile(f"{where} has history {str(history)[:80]!r}; expected a list of epochs; {_AGAIN}")


def _check_weights(where: str, cfg: RunConfig, state: dict[str, Any]) -> None:
    check_memory(cfg)  # a config too big for this machine is refused before its model is built
    try:
        model_from_checkpoint(state)
    except Exception as e:  # missing or unexpected keys, shape mismatches, not a mapping
        reason = " ".join(str(e).split())[:200]
        raise CorruptFile(f"{where}: its weights do not fit its config's model ({reason}); {_AGAIN}") from None


def _check_resumable(where: str, cfg: RunConfig, state: dict[str, Any]) -> None:
    history = state["history"]
    if history and history[-1].get("status") == "diverged":
        raise CorruptFile(
            f"{where}: the run diverged in epoch {history[-1].get('epoch', len(history))}; there is nothing to "
            "continue: train it again with a lower --lr"
        )
    model, _ = build(cfg)
    try:
        make_optimizer(cfg, model.parameters()).load_state_dict(state["optimizer"])
        torch.Generator().set_state(state["generator"])
        rng, like = state["torch_rng"], torch.get_rng_state()
        if not (isinstance(rng, torch.Tensor) and rng.dtype == like.dtype and rng.shape == like.shape):
            raise ValueError(f"torch_rng is {type(rng).__name__}, not a CPU random state")
    except Exception as e:  # KeyError, ValueError, RuntimeError, TypeError from torch
        reason = " ".join(str(e).split())[:200]
        raise CorruptFile(f"{where}: its optimizer or random state cannot be restored ({reason}); {_AGAIN}") from None
