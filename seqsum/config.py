"""Typed, frozen run configuration: one dataclass per concern, composed into `RunConfig`.

`RunConfig.to_dict()` is what lands in `config.json` beside every result and checkpoint;
`RunConfig.from_dict()` reads it back, rejecting unknown keys. Validation happens once, in
`RunConfig.__post_init__`, and lists every problem in one message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TASKS = ("sum", "product")
LOSSES = ("mse", "log", "classify")
ACTIVATIONS = ("tanh", "relu")
OPTIMIZERS = ("rmsprop", "adam")
SOURCES = ("mnist5k", "mnist")
DEVICES = ("auto", "cpu", "cuda")
BALANCES = ("none", "target")  # data.balance: training targets as drawn | uniform per length
CLASS_WEIGHTS = ("none", "inverse_frequency")  # train.class_weight
PRECISIONS = ("fp32", "bf16", "auto")  # train.precision: auto = bf16 autocast where the device runs it fast
OUTPUTS = ("last", "every_step")  # model.outputs: the value after the last digit | after every digit
MAX_EPOCHS = 100_000  # train.epochs beyond this is a typo, not a run that would ever end
HEADS = ("dense", "nau", "nmu", "exact")  # model.head: a linear layer on the GRU | an arithmetic unit | exact
BOTTLENECKS = ("none", "digits")  # model.bottleneck: CNN features as they are | a 10-way softmax per image
HEAD_LOSSES = ("mse", "log")  # the losses an arithmetic head (a value, not classes) supports
SPARSITY_SHAPES = ("squared", "linear")  # train.sparsity_shape: W^2 (1 - W)^2 | the paper's min(|W|, |1 - W|)
ACCUMULATORS = ("learned", "solved")  # model.accumulator: the unit's weights learned | fixed at the solution
ALL_DIGITS = tuple(range(10))  # data.digits default: sequences draw from every digit
MAX_TUPLE_LEN = 6  # balance / holdout / class_weight enumerate the 10^L digit tuples of every training length
MAX_SEED = 2**62  # seeds are 0 .. 2^62 - 1: torch.manual_seed takes them, and split_seed + 1,000,003 too
MAX_CLASSIFY_PRODUCT_LEN = 30  # 246,017 classes, enumerated in ~5 s; the count grows ~ length^4, the time ~ length^5


class ConfigError(ValueError):
    """A bad value in a configuration: the message names it and what is allowed."""


@dataclass(frozen=True)
class DataConfig:
    """Where the digits come from, how they split, and which sequences are drawn."""

    source: str = "mnist5k"  # mnist5k (embedded, 5,000 digits) | mnist (torchvision / IDX folder)
    root: str | None = None  # data root for source=mnist
    download: bool = False  # let torchvision download MNIST into root (needs internet)
    valid_frac: float = 0.1  # share of digit images held out for validation sequences
    test_frac: float = 0.1  # share of digit images held out for test sequences
    split_seed: int = 0  # seeds the image split and the fixed valid/test sequence sets
    min_len: int = 1  # shortest training sequence
    max_len: int = 4  # longest training sequence (lengths uniform in min_len..max_len)
    eval_max_len: int | None = None  # longest test sequence (> max_len measures extrapolation)
    train_size: int = 20_000  # training sequences per epoch
    valid_size: int = 2_000  # fixed validation sequences
    test_size: int = 5_000  # fixed test sequences
    pairs_per_cell: int = 200  # distinct length-2 test image pairs per (a, b) cell of the digit-pair grid
    balance: str = "none"  # none | target: training targets uniform within each length (seqsum.sampling)
    holdout: Any = ()  # [] | [[a, b], ...] (order-free) | "random:F": digit pairs no training sequence contains
    train_images: int | None = None  # use a seeded subset of N training-pool images (learning curves); null = all
    digits: tuple[int, ...] = ALL_DIGITS  # the digits sequences draw from (e.g. 1..9 as the NAU paper's products)

    @property
    def test_max_len(self) -> int:
        return self.eval_max_len or self.max_len


@dataclass(frozen=True)
class ModelConfig:
    """CNN on every image -> GRU stack -> dropout -> head."""

    conv_channels: tuple[int, ...] = (8, 16)  # output channels per conv layer
    conv_kernels: tuple[int, ...] = (4, 3)  # kernel size per conv layer
    conv_padding: tuple[int, ...] = ()  # zero padding per conv layer; [] = 0 everywhere (seqsum.stack)
    conv_pool: tuple[int, ...] = ()  # max-pool size after each conv layer (1: none); [] = no pooling
    activation: str = "tanh"  # tanh | relu, after every conv
    gru_hidden: tuple[int, ...] = (200, 100)  # hidden size per GRU layer
    dropout: float = 0.2  # before the head (dense only)
    outputs: str = "last"  # last | every_step: predict the running value after every digit, loss on every step
    head: str = "dense"  # dense | nau | nmu: an arithmetic unit over per-step CNN digit features (no GRU) | exact
    # none | digits: the CNN ends in Linear(F, 10) -> softmax per image, what reads the sequence reads those
    # (dense: the GRU reads the 10 probabilities; nau/nmu: E[d]; exact: seqsum.exact); needed by head exact
    bottleneck: str = "none"
    # nau/nmu: learned | solved: the unit fixed at its solution (h + x, h * x), the NAU paper's reference model
    accumulator: str = "learned"


@dataclass(frozen=True)
class TrainConfig:
    """What to learn and how."""

    task: str = "sum"  # sum | product
    loss: str = "mse"  # mse | log | classify
    standardize: bool = False  # mse only: regress (value - mean) / std instead of the raw value
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "rmsprop"  # rmsprop (Keras defaults: rho 0.9, eps 1e-7) | adam
    grad_clip: float | None = None  # max gradient norm; None = no clipping
    seed: int = 0  # model init and training batches
    device: str = "auto"  # auto | cpu | cuda
    class_weight: str = "none"  # none | inverse_frequency: weight each sequence's loss by 1 / p(its target)
    precision: str = "auto"  # fp32 | bf16 | auto: bf16 autocast (fp32 weights and optimizer state); see PRECISIONS
    sparsity: float = 1.0  # nau/nmu: weight of the sparsity regulariser at the end of its ramp
    # nau/nmu: the optimizer steps (counted over the whole run) over which the regulariser's weight ramps
    # linearly from 0 to `sparsity`; in steps, so extending a run with --resume keeps the schedule it trained
    # with. (2500, 7500): 0.2 -> 0.6 of the seed preset's 12,500 steps; the paper's is (10^4, 10^5)
    sparsity_ramp: tuple[int, int] = (2500, 7500)
    # nau/nmu: the sparsity regulariser's shape: squared mean(W^2 (1 - |W|)^2) | linear mean(min(|W|, |1 - |W||)),
    # the paper's (its code's regualizer_shape); see seqsum.heads
    sparsity_shape: str = "squared"
    rz: float = 0.0  # nau/nmu: weight of the paper's R_z regulariser (not ramped; the paper's NMU: 1); 0 = off


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("; ".join(problems))

    # --- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a mapping with sections data/model/train, got {type(d).__name__}")
        unknown = sorted(set(d) - {"data", "model", "train"})
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; allowed: data, model, train")
        return cls(
            data=_section(DataConfig, d.get("data", {}), "data"),
            model=_section(ModelConfig, d.get("model", {}), "model"),
            train=_section(TrainConfig, d.get("train", {}), "train"),
        )

    def replace(self, overrides: dict[str, Any]) -> RunConfig:
        """A copy with dotted overrides applied: {"train.lr": 3e-4, "model.gru_hidden": [64]}."""
        d = self.to_dict()
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if section not in d or not name:
                raise ConfigError(f"unknown config key {key!r}; use section.name with section in data, model, train")
            if name not in d[section]:
                allowed = ", ".join(d[section])
                raise ConfigError(f"unknown config key {key!r}; {section} has: {allowed}")
            d[section][name] = value
        return RunConfig.from_dict(d)

    def save(self, path: str | Path) -> None:
        """config.json, written atomically (seqsum.files)."""
        from .files import write_json  # files imports ConfigError from here

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config from JSON or YAML (safe loader). Missing keys take defaults."""
        path = Path(path)
        text = read_config_text(path, "config file")
        try:
            if path.suffix in (".yaml", ".yml"):
                d = yaml_load(text) or {}
            else:
                d = json.loads(text, object_pairs_hook=_unique_keys)
        except Exception as e:  # noqa: BLE001 - any parse error becomes one line
            raise ConfigError(f"cannot parse config file {str(path)!r}: {str(e).splitlines()[0]}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"config file {str(path)!r}: {e}") from None


def read_config_text(path: Path, what: str) -> str:
    """The text of a config file; unreadable or not UTF-8 text raises ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}); give YAML or JSON") from None


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping from (key, value) pairs that refuses a key given twice (JSON's and YAML's last-one-wins)."""
    out: dict[Any, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} is given twice")
        out[k] = v
    return out


def yaml_load(text: str) -> Any:
    """yaml.safe_load, except that 1e-3 is a float (PyYAML's YAML 1.1 rules read it as a string) and a
    key given twice in one mapping is an error (safe_load keeps the last silently)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for k, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(k)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", k.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    """A finite int or float (not a bool, not NaN or +-inf)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _section(kind: type, d: Any, name: str):
    if not isinstance(d, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, got {d!r}")
    names = {f.name: f for f in fields(kind)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in section {name!r}; allowed: {', '.join(names)}")
    kwargs = {}
    for k, v in d.items():
        kwargs[k] = _tuples(v)
    if kind is DataConfig and kwargs.get("holdout") in ("none", None):  # a search space's spelling of []
        kwargs["holdout"] = ()
    return kind(**kwargs)


def _tuples(v: Any) -> Any:
    """Lists (from JSON/YAML) as tuples, nested too, so a config stays hashable."""
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


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


def _problems(c: RunConfig) -> list[str]:
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
    from .stack import conv_layers

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
    """The issue-12 switches: holdout, train_images, sparsity, which losses a head takes, enumeration limits."""
    from .digits import digits_problem
    from .sampling import longest_free_length, parse_holdout

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


# The original post's model and training (Keras, 2016).
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},  # the defaults are the post's setup
    "smoke": {
        "data": {"train_size": 512, "valid_size": 128, "test_size": 256, "pairs_per_cell": 200},
        "model": {"conv_channels": [4], "conv_kernels": [5], "gru_hidden": [16]},
        "train": {"epochs": 2, "batch_size": 64},
    },
}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name])
