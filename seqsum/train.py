"""`train(config, pools, report)`: the whole training loop, a plain function with no Ray inside.

Each epoch draws fresh training sequences from the train pool (a seeded CPU generator, so the same
sequences on every device; moved to the training device),
steps the optimizer over them, scores the fixed validation set in value space and calls
`report(metrics, state)`; `state` is a checkpoint dict that `train(..., resume=state)` continues.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .bottleneck import digit_accuracy
from .checkpoint import checkpoint_state
from .config import RunConfig
from .data import EvalSets, Pools, Sequences, eval_sets, load_pools
from .device import autocast_dtype, resolve_device
from .errors import ConfigError
from .evaluate import predict, value_metrics
from .heads import sparsity_weight
from .memory import check_memory
from .model import CnnGru, build
from .optim import make_optimizer
from .targets import Codec, running_target, target
from .train_data import class_weights, subset_train_pool, training_draw

Report = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass
class TrainResult:
    model: CnnGru
    codec: Codec
    pools: Pools
    sets: EvalSets
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"  # ok | diverged
    train_seconds: float = 0.0  # wall time inside the epoch loop, summed over every segment of a resumed run


def batch_images(pools: Pools, seqs: Sequences) -> torch.Tensor:
    return pools.images[seqs.idx]  # (B, T, 28, 28) uint8


def train_epoch(
    model: CnnGru,
    codec: Codec,
    opt: torch.optim.Optimizer,
    pools: Pools,
    seqs: Sequences,
    values: torch.Tensor,
    batch_size: int,
    grad_clip: float | None = None,
    extras: Extras | None = None,
    amp: torch.dtype | None = None,
) -> torch.Tensor:
    """One optimizer step per batch of `batch_size` sequences of `seqs` (in order); the mean batch
    loss as a 0-d float64 tensor on the training device (no host synchronization inside).

    `values` are the (n,) targets, or with model.outputs every_step the (n, T) running targets; `extras`
    carries the training switches (class weights, the arithmetic head's regulariser, a batch observer).
    `amp` (autocast_dtype): the forward runs under autocast to that dtype; the loss, the gradients,
    the parameters and the optimizer state stay float32."""
    x = extras or Extras()
    device_type = values.device.type
    loss_sum = torch.zeros((), device=values.device, dtype=torch.float64)
    steps = 0
    for i in range(0, len(seqs), batch_size):
        b = seqs[i : i + batch_size]
        v = values[i : i + batch_size]
        if x.on_batch is not None:
            x.on_batch(b)
        with torch.autocast(device_type, dtype=amp) if amp is not None else contextlib.nullcontext():
            if v.dim() == 2:  # every step: the loss over every real step
                real = b.mask
                out = model(batch_images(pools, b), b.lengths, steps=True)[real]  # (N, out_dim)
                v = v[real]
            else:
                out = model(batch_images(pools, b), b.lengths)  # (B, out_dim)
        out = out.float()  # no-op in float32
        loss = codec.loss(out, v, x.weigh(v) if x.weigh is not None else None)
        if x.sparsity or x.rz:
            w = sparsity_weight(x.first_step + steps, *x.ramp, scale=x.sparsity)
            if w or x.rz:
                loss = loss + model.head.penalty(w, x.rz, x.shape)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        if getattr(model, "arithmetic", False):
            model.head.clamp_()
        loss_sum += loss.detach()
        steps += 1
    return loss_sum / max(steps, 1)


@dataclass
class Extras:
    """What train_epoch adds to the plain loop: per-sequence loss weights (train.class_weight), the
    arithmetic head's sparsity weight, its ramp (start, end) in optimizer steps and the run's step count
    when this epoch starts, and `on_batch`, called with every batch of Sequences trained on (tests check
    what training saw)."""

    weigh: Callable[[torch.Tensor], torch.Tensor] | None = None
    sparsity: float = 0.0
    ramp: tuple[int, int] = (0, 0)
    first_step: int = 0
    rz: float = 0.0  # train.rz: the arithmetic head's R_z weight (not ramped)
    shape: str = "squared"  # train.sparsity_shape
    on_batch: Callable[[Sequences], None] | None = None


def train(
    cfg: RunConfig,
    pools: Pools | None = None,
    report: Report | None = None,
    resume: dict[str, Any] | None = None,
    on_batch: Callable[[Sequences], None] | None = None,
    sets: EvalSets | None = None,
) -> TrainResult:
    """Train `cfg`'s model on `pools` (loaded from cfg.data when None).

    report(metrics, state) is called after every epoch; metrics has `epoch`, `train/loss`,
    `valid/{exact,mae,mse,rel_err}`, `time/epoch_s`, `precision` (fp32 or bf16: what train.precision
    resolved to on this device) and `status`. A non-finite training loss ends
    the run with status "diverged" (its last metrics are still reported). A config that needs more
    memory than this machine has raises ConfigError first (seqsum.memory.check_memory).
    `on_batch(seqs)` sees every training batch (tests). `sets`: evaluation sets drawn once for many runs
    (a study shares them through Ray's object store), used when they are the ones this config draws.
    """
    device = resolve_device(cfg.train.device)
    check_memory(cfg)  # ConfigError before anything big is allocated
    pools = subset_train_pool((pools if pools is not None else load_pools(cfg.data)).to(device), cfg)
    sets = sets.to(device) if sets is not None and sets.fit(cfg.data) else eval_sets(pools, cfg.data)
    torch.manual_seed(cfg.train.seed)
    model, codec = build(cfg)
    model.to(device)
    opt = make_optimizer(cfg, model.parameters())
    gen = torch.Generator().manual_seed(cfg.train.seed)  # CPU: the same sequences on every device
    result = TrainResult(model, codec, pools, sets)
    start = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        try:
            gen.set_state(resume["generator"])
        except (RuntimeError, TypeError):
            raise ConfigError(
                "the checkpoint's data generator state is not a CPU generator's (written by an older seqsum "
                "on a GPU); it cannot be resumed: train the run again"
            ) from None
        torch.set_rng_state(resume["torch_rng"])
        result.history = list(resume["history"])
        # older checkpoints lack the total: the epochs' own times are the best record of it
        result.train_seconds = float(
            resume.get("train_seconds", sum(m.get("time/epoch_s") or 0.0 for m in result.history))
        )
        start = int(resume["epoch"]) + 1
        if result.history and result.history[-1].get("status") == "diverged":
            result.status = "diverged"
            return result

    t = cfg.train
    valid_target = target(t.task, sets.valid.digits, sets.valid.lengths)
    draw, every_step = training_draw(cfg, pools), cfg.model.outputs == "every_step"
    sparsity = t.sparsity if model.arithmetic else 0.0
    rz = t.rz if model.arithmetic else 0.0
    extras = Extras(class_weights(cfg), sparsity, t.sparsity_ramp, rz=rz, shape=t.sparsity_shape, on_batch=on_batch)
    steps_per_epoch = -(-cfg.data.train_size // t.batch_size)  # every epoch draws train_size sequences
    amp = autocast_dtype(t.precision, device)
    before, t0 = result.train_seconds, time.perf_counter()
    for epoch in range(start, t.epochs + 1):
        e0 = time.perf_counter()
        model.train()
        seqs = draw(gen)
        values = (running_target if every_step else target)(t.task, seqs.digits, seqs.lengths)  # (n,) | (n, T)
        extras.first_step = (epoch - 1) * steps_per_epoch
        train_loss = train_epoch(model, codec, opt, pools, seqs, values, t.batch_size, t.grad_clip, extras, amp).item()
        diverged = not math.isfinite(train_loss)
        if diverged:
            vm = {"exact": float("nan"), "mae": float("nan"), "mse": float("nan"), "rel_err": float("nan")}
        else:
            vm = value_metrics(predict(model, codec, pools, sets.valid), valid_target)
            if model.digits is not None:  # the digit bottleneck's reads of the validation pool (never trained on)
                vm["digit_acc"] = digit_accuracy(model, pools)
        metrics = {
            "epoch": epoch,
            "train/loss": train_loss,
            **{f"valid/{k}": v for k, v in vm.items()},
            "time/epoch_s": time.perf_counter() - e0,
            "precision": "bf16" if amp == torch.bfloat16 else "fp32",  # what train.precision resolved to here
            "status": "diverged" if diverged else "ok",
        }
        result.history.append(metrics)
        if report is not None:
            result.train_seconds = before + time.perf_counter() - t0
            report(metrics, checkpoint_state(cfg, model, opt, gen, epoch, result.history, result.train_seconds))
        if diverged:
            result.status = "diverged"
            break
    result.train_seconds = before + time.perf_counter() - t0
    return result
