"""A checkpoint read for use: `seqsum.train.load_checkpoint` plus the checks that its contents are what a
seqsum run wrote, so a damaged or foreign checkpoint fails as one line before anything is written.

`read_checkpoint(path)` (evaluate, filters): a valid config, an epoch count, a list of epochs, and model
weights that fit the config's model. With `resume=True` (train --resume) also the optimizer and random
states load, and the run did not diverge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, RunConfig
from .files import CorruptFile

_AGAIN = "train the run again (seqsum train --out NEW_FOLDER ...)"


def read_checkpoint(path: str | Path, resume: bool = False) -> dict[str, Any]:
    """The checkpoint at `path` (a run folder or the file), checked; CorruptFile names what is wrong."""
    from .train import load_checkpoint

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
    from .budget import check_memory
    from .train import model_from_checkpoint

    check_memory(cfg)  # a config too big for this machine is refused before its model is built
    try:
        model_from_checkpoint(state)
    except Exception as e:  # noqa: BLE001 - missing or unexpected keys, shape mismatches, not a mapping
        reason = " ".join(str(e).split())[:200]
        raise CorruptFile(f"{where}: its weights do not fit its config's model ({reason}); {_AGAIN}") from None


def _check_resumable(where: str, cfg: RunConfig, state: dict[str, Any]) -> None:
    from .train import build, make_optimizer

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
    except Exception as e:  # noqa: BLE001 - KeyError, ValueError, RuntimeError, TypeError from torch
        reason = " ".join(str(e).split())[:200]
        raise CorruptFile(f"{where}: its optimizer or random state cannot be restored ({reason}); {_AGAIN}") from None
