"""Typed, frozen run configuration: one dataclass per concern, composed into `RunConfig`.

`RunConfig.to_dict()` is what lands in `config.json` beside every result and checkpoint;
`RunConfig.from_dict()` reads it back, rejecting unknown keys. Validation happens once, in
`RunConfig.__post_init__`, and lists every problem in one message.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .choices import ALL_DIGITS
from .config_checks import problems as config_problems
from .config_text import read_config_text, unique_keys, yaml_load
from .errors import ConfigError
from .files import write_json


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
        problems = config_problems(self)
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
                d = json.loads(text, object_pairs_hook=unique_keys)
        except Exception as e:  # any parse error becomes one line
            raise ConfigError(f"cannot parse config file {str(path)!r}: {str(e).splitlines()[0]}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"config file {str(path)!r}: {e}") from None


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
