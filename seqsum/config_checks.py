"""A run config's validation: every problem of a RunConfig as one line each (RunConfig.__post_init__ joins
them into one ConfigError). Torch-free, so a bad config is refused in a fraction of a second."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .choices import (
    ACCUMULATORS,
    ACTIVATIONS,
    ALL_DIGITS,
    BALANCES,
    BOTTLENECKS,
    CLASS_WEIGHTS,
    DEVICES,
    HEAD_LOSSES,
    HEADS,
    LOSSES,
    MAX_CLASSIFY_PRODUCT_LEN,
    MAX_EPOCHS,
    MAX_SEED,
    MAX_TUPLE_LEN,
    OPTIMIZERS,
    OUTPUTS,
    PRECISIONS,
    SOURCES,
    SPARSITY_SHAPES,
    TASKS,
)
from .holdout import longest_free_length, parse_holdout
from .stack import conv_layers

if TYPE_CHECKING:  # annotations only: config imports this module
    from .config import DataConfig, ModelConfig, RunConfig, TrainConfig

ALLOWED = "a non-empty list of distinct digits 0..9, e.g. [1, 2, 3, 4, 5, 6, 7, 8, 9]"


def digits_problem(value: Any) -> str | None:
    """The one-line problem with a data.digits value (after lists became tuples), or None if it is fine."""
    shown = list(value) if isinstance(value, tuple) else value
    if not isinstance(value, tuple) or not value:
        return f"data.digits must be {ALLOWED}, got {shown!r}"
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9:
            return f"data.digits holds {v!r}, which is no digit 0..9, in {shown!r}; allowed: {ALLOWED}"
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        return f"data.digits repeats {repeated} in {shown!r}; allowed: {ALLOWED}"
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite int or float (not a bool, not NaN or +-inf)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _choice(problems: list[str], name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        problems.append(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _positive_ints(problems: list[str], name: str, value: Any, allow_empty: bool = False) -> None:
    if not isinstance(value, tuple) or (not value and not allow_empty):
        problems.append(f"{name} must be a non-empty list of positive integers, got {value!r}")
        return
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            problems.append(f"{name} must hold positive integers, got {v!r} in {list(value)!r}")
            return


def problems(c: RunConfig) -> list[str]:
    p: list[str] = []
    d, m, t = c.data, c.model, c.train
    _choice(p, "data source", d.source, SOURCES)
    _choice(p, "task", t.task, TASKS)
    _choice(p, "loss", t.loss, LOSSES)
    _choice(p, "activation", m.activation, ACTIVATIONS)
    _choice(p, "optimizer", t.optimizer, OPTIMIZERS)
    _choice(p, "device", t.device, DEVICES)
    _choice(p, "data.balance", d.balance, BALANCES)
    _choice(p, "train.class_weight", t.class_weight, CLASS_WEIGHTS)
    _choice(p, "train.precision", t.precision, PRECISIONS)
    _choice(p, "model.outputs", m.outputs, OUTPUTS)
    _choice(p, "model.head", m.head, HEADS)
    _choice(p, "model.bottleneck", m.bottleneck, BOTTLENECKS)
    _choice(p, "model.accumulator", m.accumulator, ACCUMULATORS)
    _choice(p, "train.sparsity_shape", t.sparsity_shape, SPARSITY_SHAPES)
    _mechanism_problems(p, d, m, t)
    _head_problems(p, m, t)
    if not (_is_int(d.max_len) and d.max_len >= 1):
        p.append(f"max_len must be an integer >= 1, got {d.max_len!r}")
    elif not (_is_int(d.min_len) and 1 <= d.min_len <= d.max_len):
        p.append(f"min_len must be an integer in 1..max_len={d.max_len}, got {d.min_len!r}")
    elif d.eval_max_len is not None and not (_is_int(d.eval_max_len) and d.eval_max_len >= d.max_len):
        p.append(f"eval_max_len must be an integer >= max_len={d.max_len}, got {d.eval_max_len!r}")
    for name in ("train_size", "valid_size", "test_size", "pairs_per_cell"):
        v = getattr(d, name)
        if not (_is_int(v) and v >= 1):
            p.append(f"{name} must be an integer >= 1, got {v!r}")
    for name in ("valid_frac", "test_frac"):
        v = getattr(d, name)
        if not (_is_number(v) and 0 < v < 1):
            p.append(f"{name} must be in (0, 1), got {v!r}")
    if not p and d.valid_frac + d.test_frac >= 0.9:
        p.append(f"valid_frac + test_frac must leave >= 10% for training, got {d.valid_frac + d.test_frac}")
    if d.root is not None and not isinstance(d.root, str):
        p.append(f"data.root must be a folder path or null, got {d.root!r}")
    elif d.source == "mnist" and not d.root:
        p.append("data source 'mnist' needs a data root (--data-root DIR)")
    _positive_ints(p, "conv channels (width)", m.conv_channels, allow_empty=True)
    _positive_ints(p, "conv kernels", m.conv_kernels, allow_empty=True)
    _positive_ints(p, "gru hidden sizes (width/depth)", m.gru_hidden)
    _stack_problems(p, m)
    if not (_is_number(m.dropout) and 0 <= m.dropout < 1):
        p.append(f"dropout must be in [0, 1), got {m.dropout!r}")
    if not (_is_int(t.epochs) and 1 <= t.epochs <= MAX_EPOCHS):
        p.append(f"epochs must be an integer >= 1 and <= {MAX_EPOCHS:,}, got {t.epochs!r}")
    if not (_is_int(t.batch_size) and t.batch_size >= 1):
        p.append(f"batch_size must be an integer >= 1, got {t.batch_size!r}")
    if not (_is_number(t.lr) and t.lr > 0):
        p.append(f"lr must be a finite number > 0, got {t.lr!r}")
    if t.grad_clip is not None and not (_is_number(t.grad_clip) and t.grad_clip > 0):
        p.append(f"grad_clip must be a finite number > 0 or null, got {t.grad_clip!r}")
    for name, v in (("standardize", t.standardize), ("download", d.download)):
        if not isinstance(v, bool):
            p.append(f"{name} must be true or false, got {v!r}")
    for name, v in (("seed", t.seed), ("split_seed", d.split_seed)):
        if not (_is_int(v) and 0 <= v < MAX_SEED):
            p.append(f"{name} must be an integer in 0..{MAX_SEED - 1}, got {v!r}")
    lengths_ok = _is_int(d.max_len) and (d.eval_max_len is None or _is_int(d.eval_max_len))
    if lengths_ok and t.loss == "classify" and t.task == "product" and d.test_max_len > MAX_CLASSIFY_PRODUCT_LEN:
        p.append(
            f"loss classify on product has one class per achievable product: the longest test sequence "
            f"(eval_max_len or max_len) must be <= {MAX_CLASSIFY_PRODUCT_LEN} (246,017 classes), got {d.test_max_len}"
        )
    return p


def _stack_problems(p: list[str], m: ModelConfig) -> None:
    """conv_padding / conv_pool values, then the stack's shapes (seqsum.stack: list lengths, padding within
    the kernel, an image side of at least 1 after every layer)."""
    for name, v, low in (("model.conv_padding", m.conv_padding, 0), ("model.conv_pool", m.conv_pool, 1)):
        if not (isinstance(v, tuple) and all(_is_int(x) and x >= low for x in v)):
            p.append(f"{name} must be a list of integers >= {low} (one per conv layer) or [], got {_listed(v)}")
            return
    lists = (m.conv_channels, m.conv_kernels)
    if all(isinstance(v, tuple) and all(_is_int(x) and x > 0 for x in v) for v in lists):
        try:
            conv_layers(m)
        except ValueError as e:
            p.append(str(e))


def _head_problems(p: list[str], m: ModelConfig, t: TrainConfig) -> None:
    """What the digit bottleneck and the exact head need."""
    if m.head == "exact" and m.bottleneck != "digits":
        p.append(f"model.head exact reads digit distributions: it needs model.bottleneck digits, got {m.bottleneck!r}")
    if m.head == "exact" and t.loss != "classify":
        p.append(f"model.head exact computes the result's distribution: loss must be classify, got {t.loss!r}")


def _listed(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else repr(v)


def _mechanism_problems(p: list[str], d: DataConfig, m: ModelConfig, t: TrainConfig) -> None:
    """The data and head switches: holdout, train_images, sparsity, which losses a head takes, enumeration limits."""
    bad_digits = digits_problem(d.digits)
    if bad_digits:
        p.append(bad_digits)
    try:
        pairs = parse_holdout(d.holdout, d.split_seed if _is_int(d.split_seed) else 0)  # the pairs training holds out
    except (ValueError, TypeError) as e:
        p.append(f"data.holdout: {e}")
        pairs = ()
    longest = longest_free_length(pairs, ALL_DIGITS if bad_digits else d.digits)
    if _is_int(d.max_len) and d.max_len > longest:
        p.append(
            f"data.holdout {d.holdout!r} leaves no training sequence of length {longest + 1} (each holds a "
            f"held-out pair); allowed: max_len <= {longest}, or hold out fewer pairs"
        )
    if d.train_images is not None and not (_is_int(d.train_images) and d.train_images >= 10):
        p.append(f"data.train_images must be an integer >= 10 or null (all), got {d.train_images!r}")
    if not (_is_number(t.sparsity) and t.sparsity >= 0):
        p.append(f"train.sparsity must be a finite number >= 0, got {t.sparsity!r}")
    r = t.sparsity_ramp
    if not (isinstance(r, tuple) and len(r) == 2 and all(_is_int(v) and v >= 0 for v in r) and r[0] <= r[1]):
        p.append(f"train.sparsity_ramp must be [start, end] optimizer steps with 0 <= start <= end, got {r!r}")
    if not (_is_number(t.rz) and t.rz >= 0):
        p.append(f"train.rz must be a finite number >= 0, got {t.rz!r}")
    if m.accumulator == "solved" and m.head not in ("nau", "nmu"):
        p.append(f"model.accumulator solved fixes an arithmetic unit: it needs model.head nau or nmu, got {m.head!r}")
    if m.head in ("nau", "nmu") and t.loss not in HEAD_LOSSES:
        p.append(f"model.head {m.head} predicts a value: loss must be one of {', '.join(HEAD_LOSSES)}, got {t.loss!r}")
    if m.head in ("nau", "nmu") and t.standardize is True:
        p.append(f"model.head {m.head} predicts the raw value: standardize must be false")
    uses = [
        k
        for k, on in (
            ("data.balance", d.balance == "target"),
            ("data.holdout", bool(d.holdout)),
            ("train.class_weight", t.class_weight == "inverse_frequency"),
        )
        if on
    ]
    if uses and _is_int(d.max_len) and d.max_len > MAX_TUPLE_LEN:
        p.append(
            f"{', '.join(uses)} enumerate the digit tuples of every training length: max_len must be "
            f"<= {MAX_TUPLE_LEN}, got {d.max_len}"
        )
