"""`train(config, pools, report)`: the whole training loop, a plain function with no Ray inside.

Each epoch draws fresh training sequences from the train pool (seeded, on the training device),
steps the optimizer over them, scores the fixed validation set in value space and calls
`report(metrics, state)`; `state` is a checkpoint dict that `train(..., resume=state)` continues.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .config import RunConfig
from .data import EvalSets, Pools, Sequences, eval_sets, load_pools, sample
from .evaluate import predict, value_metrics
from .model import CnnGru
from .targets import Codec, make_codec, target

Report = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass
class TrainResult:
    model: CnnGru
    codec: Codec
    pools: Pools
    sets: EvalSets
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"  # ok | diverged
    train_seconds: float = 0.0  # wall time spent inside the epoch loop


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from .config import ConfigError

        raise ConfigError("device 'cuda' requested but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(name)


def build(cfg: RunConfig) -> tuple[CnnGru, Codec]:
    codec = make_codec(cfg.train, cfg.data)
    return CnnGru(cfg.model, codec.out_dim), codec


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    if cfg.train.optimizer == "rmsprop":  # Keras RMSprop defaults
        return torch.optim.RMSprop(params, lr=cfg.train.lr, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(params, lr=cfg.train.lr)


def batch_images(pools: Pools, seqs: Sequences) -> torch.Tensor:
    return pools.images[seqs.idx]  # (B, T, 28, 28) uint8


def train(
    cfg: RunConfig,
    pools: Pools | None = None,
    report: Report | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `cfg`'s model on `pools` (loaded from cfg.data when None).

    report(metrics, state) is called after every epoch; metrics has `epoch`, `train/loss`,
    `valid/{exact,mae,mse,rel_err}`, `time/epoch_s` and `status`. A non-finite training loss ends
    the run with status "diverged" (its last metrics are still reported).
    """
    device = resolve_device(cfg.train.device)
    pools = (pools if pools is not None else load_pools(cfg.data)).to(device)
    sets = eval_sets(pools, cfg.data)
    torch.manual_seed(cfg.train.seed)
    model, codec = build(cfg)
    model.to(device)
    opt = make_optimizer(cfg, model.parameters())
    gen = torch.Generator(device=device).manual_seed(cfg.train.seed)
    result = TrainResult(model, codec, pools, sets)
    start = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        result.history = list(resume["history"])
        start = int(resume["epoch"]) + 1
        if result.history and result.history[-1].get("status") == "diverged":
            result.status = "diverged"
            return result

    d, t = cfg.data, cfg.train
    valid_target = target(t.task, sets.valid.digits, sets.valid.lengths)
    t0 = time.perf_counter()
    for epoch in range(start, t.epochs + 1):
        e0 = time.perf_counter()
        model.train()
        seqs = sample(pools, pools.train, d.train_size, d.min_len, d.max_len, gen)
        values = target(t.task, seqs.digits, seqs.lengths)  # (n,)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        steps = 0
        for i in range(0, len(seqs), t.batch_size):
            b = seqs[i : i + t.batch_size]
            out = model(batch_images(pools, b), b.lengths)  # (B, out_dim)
            loss = codec.loss(out, values[i : i + t.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            opt.step()
            loss_sum += loss.detach()
            steps += 1
        train_loss = loss_sum.item() / steps
        diverged = not math.isfinite(train_loss)
        if diverged:
            vm = {"exact": float("nan"), "mae": float("nan"), "mse": float("nan"), "rel_err": float("nan")}
        else:
            vm = value_metrics(predict(model, codec, pools, sets.valid), valid_target)
        metrics = {
            "epoch": epoch,
            "train/loss": train_loss,
            **{f"valid/{k}": v for k, v in vm.items()},
            "time/epoch_s": time.perf_counter() - e0,
            "status": "diverged" if diverged else "ok",
        }
        result.history.append(metrics)
        if report is not None:
            report(metrics, checkpoint_state(cfg, model, opt, gen, epoch, result.history))
        if diverged:
            result.status = "diverged"
            break
    result.train_seconds = time.perf_counter() - t0
    return result


def checkpoint_state(cfg, model, opt, gen, epoch, history) -> dict[str, Any]:
    """Everything `train(..., resume=...)` needs; loadable with torch.load(weights_only=True)."""
    return {
        "config": cfg.to_dict(),
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": list(history),
    }


def load_checkpoint(path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; a bad file raises ConfigError with one line."""
    from .config import ConfigError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {str(path)!r} does not exist") from None
    except Exception as e:  # noqa: BLE001 - unreadable or corrupted
        raise ConfigError(f"checkpoint {str(path)!r} is unreadable or corrupted: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or not {"config", "model", "epoch"} <= set(state):
        raise ConfigError(f"checkpoint {str(path)!r} is not a seqsum checkpoint (needs config, model, epoch)")
    return state


def save_checkpoint(state: dict[str, Any], path) -> None:
    """Write atomically: a crash mid-write never leaves a half checkpoint under `path`."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def model_from_checkpoint(state: dict[str, Any]) -> tuple[RunConfig, CnnGru, Codec]:
    cfg = RunConfig.from_dict(state["config"])
    model, codec = build(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    return cfg, model, codec
