"""Memory a run config needs, estimated from the config alone, checked before anything is allocated.

`check_memory(cfg)` sums the big allocations of a run (the digit images, a training epoch's sequences,
one training batch's activations and gradients, the evaluation sets and their prediction tables, one
evaluation batch, the model with its gradients and optimizer state) and raises ConfigError when they
exceed what this machine has (physical memory, or the cgroup limit of a container; on CUDA, the GPU's
memory for what lives there). The message names the largest part, the config values it grows with,
and the bound on their product. Estimates are deliberately generous upper bounds (every sequence at
its longest), so a config that passes fits with room to spare; one that fails by a little is still
refused (lower the named value).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import RunConfig
from .errors import ConfigError
from .exact import eval_batch, step_bytes
from .stack import conv_layers, feature_size
from .targets import achievable_values

N_IMAGES = {"mnist5k": 5_000, "mnist": 70_000}  # digit images a source holds (at most)
EVAL_BATCH = 4096  # sequences per evaluation batch (seqsum.evaluate.predict)
HEADROOM = 0.8  # use at most this share of the machine's memory
SEQ_BYTES = 33  # per (sequence, step) while sampling: pick, idx, digits (int64), mask (bool), one copy
ROW_BYTES = 48  # per (test sequence, step) in the prediction table (a Python int in a list) and parquet


@dataclass(frozen=True)
class Part:
    """One allocation: what, how many bytes, where (host | device), and the config values it grows with."""

    what: str
    bytes: float
    where: str
    grows_with: tuple[tuple[str, int], ...]  # (config key, value): bytes are linear in their product


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup (container) limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def _per_image_floats(cfg: RunConfig) -> tuple[int, int]:
    """(floats of activations per image through the CNN and the digit bottleneck, feature size)."""
    m = cfg.model
    floats = 28 * 28
    for layer in conv_layers(m):
        floats += 2 * layer.c_out * layer.side_conv**2  # conv output and activation output (both kept for backward)
        if layer.pool > 1:
            floats += layer.c_out * layer.side_out**2  # the pooled output
    if m.bottleneck == "digits":
        floats += 3 * 10  # the digit logits, their softmax (or log-softmax) and its gradient
    return floats, feature_size(m)


def _out_dim(cfg: RunConfig) -> int:
    if cfg.train.loss != "classify":
        return 1
    if cfg.train.task == "sum":
        return 9 * cfg.data.test_max_len + 1

    return len(achievable_values("product", cfg.data.test_max_len))


def parameters(cfg: RunConfig) -> int:
    """Number of model parameters (the same count as CnnGru's), computed without building it."""
    m = cfg.model
    n = sum(layer.c_in * layer.c_out * layer.kernel**2 + layer.c_out for layer in conv_layers(m))
    d_in = feature_size(m)
    if m.bottleneck == "digits":  # Linear(F, 10): the digit logits
        n += 10 * d_in + 10
        d_in = 10
    if m.head == "exact":  # seqsum.exact: no parameters
        return n
    if m.head != "dense":  # seqsum.heads.ArithmeticHead: digit Linear(F, 1) (bottleneck: E[d]), a unit over [x_t, h]
        return n + (0 if m.bottleneck == "digits" else d_in + 1) + 2
    for h in m.gru_hidden:
        n += 3 * h * (d_in + h) + 6 * h
        d_in = h
    return n + (d_in + 1) * _out_dim(cfg)


TRAINING_ONLY = ("an epoch's training sequences", "a training batch's activations and gradients")


def estimate(cfg: RunConfig, evaluating: bool = False) -> list[Part]:
    """The big allocations of a run, largest first; `evaluating` (seqsum evaluate): without training's (its
    sequences, a training batch, gradients and optimizer state)."""
    d, m, t = cfg.data, cfg.model, cfg.train
    per_image, _ = _per_image_floats(cfg)
    h0, rest = m.gru_hidden[0], sum(m.gru_hidden[1:])
    per_step = 4 * (per_image + 3 * h0 + 10 * h0 + 10 * rest)  # bytes per real step: CNN, gates, GRU states
    exact = m.head == "exact"
    if exact:  # the operator's working set of every step is kept for backward (seqsum.exact)
        per_step = 4 * per_image + step_bytes(_out_dim(cfg))
    T, Te = d.max_len, d.test_max_len
    te_key = "data.eval_max_len" if d.eval_max_len is not None else "data.max_len"
    eval_images = min(EVAL_BATCH * Te, round(N_IMAGES.get(d.source, 70_000) * max(d.test_frac, d.valid_frac)) + 1)
    parts = [
        Part("the digit images", 784 * N_IMAGES.get(d.source, 70_000), "device", ()),
        Part(
            "an epoch's training sequences",
            SEQ_BYTES * d.train_size * T,
            "host",
            (("data.train_size", d.train_size), ("data.max_len", T)),
        ),
        Part(
            "a training batch's activations and gradients",
            2 * t.batch_size * T * per_step,
            "device",
            (("train.batch_size", t.batch_size), ("data.max_len", T)) + (((te_key, Te),) if exact else ()),
        ),
        Part(
            "the validation sequences",
            SEQ_BYTES * d.valid_size * T,
            "host",
            (("data.valid_size", d.valid_size), ("data.max_len", T)),
        ),
        Part(
            "the test sequences and their prediction table",
            (SEQ_BYTES + ROW_BYTES) * d.test_size * Te,
            "host",
            (("data.test_size", d.test_size), (te_key, Te)),
        ),
        Part(
            "the pair grid's sequences and prediction table",
            (SEQ_BYTES + ROW_BYTES) * 100 * d.pairs_per_cell * 2,
            "host",
            (("data.pairs_per_cell", d.pairs_per_cell),),
        ),
        Part(
            "an evaluation batch",
            _eval_batch_bytes(cfg) + 4 * per_image * eval_images,
            "device",
            ((te_key, Te),),
        ),
        Part(
            "the model, its gradients and optimizer state",
            (4 if evaluating else 16) * parameters(cfg),
            "device",
            (),
        ),
    ]
    if exact:
        parts.append(Part("the exact head's class map", 8 * 10 * _out_dim(cfg), "device", ((te_key, Te),)))
    return sorted((p for p in parts if not (evaluating and p.what in TRAINING_ONLY)), key=lambda p: -p.bytes)


def _eval_batch_bytes(cfg: RunConfig) -> float:
    """One evaluation batch's activations: EVAL_BATCH sequences through the GRU stack, or for the exact head
    the batch it is cut to (seqsum.exact.eval_batch) through the operator."""
    m, Te = cfg.model, cfg.data.test_max_len
    if m.head == "exact":
        steps = Te if m.outputs == "every_step" else 1
        n_classes = _out_dim(cfg)
        return eval_batch(n_classes, steps) * step_bytes(n_classes, steps)
    h0, rest = m.gru_hidden[0], sum(m.gru_hidden[1:])
    return EVAL_BATCH * Te * 4 * (2 * 3 * h0 + 2 * h0 + 2 * rest)


def _widths(cfg: RunConfig) -> str:
    m = cfg.model
    return f"model.conv_channels={list(m.conv_channels)}, model.gru_hidden={list(m.gru_hidden)}"


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def gpu_memory(cfg: RunConfig) -> int | None:
    """Bytes of GPU memory when `cfg` trains on CUDA, else None (the run is on the CPU)."""
    if cfg.train.device == "cpu":
        return None

    return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None


def _over(
    cfg: RunConfig, host: int, device: int | None, evaluating: bool = False
) -> tuple[str, float, int, list[Part]] | None:
    """(kind of memory, bytes needed, bytes available, its parts) of the first memory `cfg` exceeds, or None."""
    parts = estimate(cfg, evaluating)
    if device is None:
        limits = {"memory": (host, parts)}
    else:
        limits = {
            "host memory": (host, [p for p in parts if p.where == "host"]),
            "GPU memory": (device, [p for p in parts if p.where == "device"]),
        }
    for kind, (have, mine) in limits.items():
        total = sum(p.bytes for p in mine)
        if total > HEADROOM * have:
            return kind, total, have, mine
    return None


def _largest_fitting(
    cfg: RunConfig, key: str, value: int, host: int, device: int | None, evaluating: bool = False
) -> int:
    """The largest value of config `key` (<= value) with which the run fits; 0 if none does."""

    def fits(v: int) -> bool:
        try:
            return _over(cfg.replace({key: v}), host, device, evaluating) is None
        except ConfigError:  # e.g. max_len below min_len
            return False

    lo, hi = 0, value  # fits(lo) (0 stands for "none"), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


_DEFAULTS = {"data.max_len": 4, "data.eval_max_len": 4}


def check_memory(cfg: RunConfig, host: int | None = None, device: int | None = None, evaluating: bool = False) -> None:
    """Raise ConfigError (one line) if `cfg` needs more memory than this machine has.

    host: bytes of host memory (default: this machine's); device: bytes of GPU memory when the run is
    on a GPU (default: this machine's GPU, if the run will use one; None = everything is on the host).
    The message names the largest part, the config value that grew it most, and the largest value of it
    that fits here. `evaluating`: the run is only scored (seqsum evaluate), nothing is trained."""
    host = machine_memory() if host is None else host
    device = gpu_memory(cfg) if device is None else device
    over = _over(cfg, host, device, evaluating)
    if over is None:
        return
    kind, total, have, parts = over
    big = parts[0]
    msg = (
        f"this run needs about {_gb(total)} of {kind}, more than {int(HEADROOM * 100)}% of the {_gb(have)} "
        f"this machine has; the largest part is {big.what} ({_gb(big.bytes)})"
    )
    if big.grows_with:
        default = RunConfig().to_dict()

        def pushed(kv: tuple[str, int]) -> float:
            section, name = kv[0].split(".")
            base = _DEFAULTS.get(kv[0]) or default[section][name] or 1
            return kv[1] / base

        key, value = max(big.grows_with, key=pushed)
        bound = _largest_fitting(cfg, key, value, host, device, evaluating)
        others = "".join(f" with {k}={v}" for k, v in big.grows_with if k != key)
        shrink = f"no {key} fits{others}: shrink the model ({_widths(cfg)})"
        allowed = f"{key} <= {bound:,}{others}" if bound else shrink
        msg += f": {key}={value}; allowed here: {allowed}"
    else:
        msg += f": {parameters(cfg):,} parameters; make model.conv_channels / model.gru_hidden smaller ({_widths(cfg)})"
    raise ConfigError(msg)
