"""The run-config flags of `seqsum train`, from one table, and the one `--set KEY=VALUE` parser.

`RUN_FLAGS` maps each flag to the dotted RunConfig key it sets; the argparse options, the overrides and
the list of flags `--resume` refuses are all generated from it. `parse_set` is shared with
`seqsum study` (study/cli.py imports it as seqsum.cli.parse_set).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .choices import ACTIVATIONS, DEVICES, LOSSES, OPTIMIZERS, SOURCES, TASKS
from .config import PRESETS, RunConfig, preset
from .errors import ConfigError

SECTIONS = ("data", "model", "train")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 8,16, got {text!r}") from None


def _alts(values: tuple[str, ...]) -> str:
    return " | ".join(values)


@dataclass(frozen=True)
class Flag:
    """--name sets config `key`; `kind` parses the text (None: a switch that sets True)."""

    name: str
    key: str
    kind: Callable[[str], Any] | None
    help: str | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def option(self) -> str:
        return f"--{self.name}"


RUN_FLAGS: tuple[Flag, ...] = (
    Flag("task", "train.task", str, _alts(TASKS)),
    Flag("loss", "train.loss", str, _alts(LOSSES)),
    Flag("max-len", "data.max_len", int, "longest training sequence"),
    Flag("eval-max-len", "data.eval_max_len", int, "longest test sequence (extrapolation)"),
    Flag("epochs", "train.epochs", int),
    Flag("data", "data.source", str, f"{_alts(SOURCES)} (mnist5k: embedded; mnist: full, from --data-root)"),
    Flag("data-root", "data.root", str, "folder with MNIST (torchvision layout or IDX files, .gz or not)"),
    Flag("download", "data.download", None, "let torchvision download MNIST into --data-root"),
    Flag("seed", "train.seed", int),
    Flag("device", "train.device", str, _alts(DEVICES)),
    Flag("lr", "train.lr", float),
    Flag("batch-size", "train.batch_size", int),
    Flag("optimizer", "train.optimizer", str, _alts(OPTIMIZERS)),
    Flag("train-size", "data.train_size", int, "training sequences per epoch"),
    Flag("conv-channels", "model.conv_channels", _ints, "CNN width/depth, e.g. 8,16"),
    Flag("conv-kernels", "model.conv_kernels", _ints, "kernel sizes, e.g. 4,3"),
    Flag("gru-hidden", "model.gru_hidden", _ints, "GRU width/depth, e.g. 200,100"),
    Flag("activation", "model.activation", str, _alts(ACTIVATIONS)),
    Flag("dropout", "model.dropout", float),
    Flag("standardize", "train.standardize", None, "mse: regress the standardized value"),
)
RESUME_FLAGS = ("epochs", "device")  # the run-config flags `--resume` accepts


def parse_set(text: str) -> tuple[str, Any]:
    """`--set KEY=VALUE` -> (key, value): KEY is section.name (section in data, model, train), VALUE is
    parsed as JSON (8, 1e-3, true, null, [8, 16], "x") and otherwise kept as a string. A malformed item
    raises argparse.ArgumentTypeError (argparse turns it into one usage line)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    section, _, name = key.partition(".")
    if not sep or section not in SECTIONS or not name or "." in name:
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE with KEY one of {', '.join(s + '.NAME' for s in SECTIONS)}, got {text!r}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def add_run_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run configuration (flags override --preset/--config)")
    g.add_argument("--preset", help=f"start from a named config: {', '.join(PRESETS)} (seed = the original post)")
    g.add_argument("--config", type=Path, help="start from a JSON/YAML file with sections data/model/train")
    for f in RUN_FLAGS:
        if f.kind is None:
            g.add_argument(f.option, dest=f.dest, action="store_true", help=f.help)
        else:
            g.add_argument(f.option, dest=f.dest, type=f.kind, help=f.help)
    g.add_argument(
        "--set",
        dest="overrides",
        type=parse_set,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, e.g. --set data.valid_size=500 (value parsed as JSON)",
    )
    g.add_argument("--smoke", action="store_true", help="tiny data and model: finishes in seconds")


def _given(a: argparse.Namespace) -> list[Flag]:
    return [f for f in RUN_FLAGS if getattr(a, f.dest, None) is not None and getattr(a, f.dest) is not False]


def run_config_from_args(a: argparse.Namespace) -> RunConfig:
    """--preset/--config, then --smoke, then the flags, then --set (later wins)."""
    if a.preset and a.config:
        raise ConfigError("give --preset or --config, not both")
    cfg = preset(a.preset) if a.preset else RunConfig.load(a.config) if a.config else RunConfig()
    overrides: dict[str, Any] = {}
    if a.smoke:
        overrides.update({f"{s}.{k}": v for s, sec in PRESETS["smoke"].items() for k, v in sec.items()})
    overrides.update({f.key: getattr(a, f.dest) for f in _given(a)})
    if a.data_root is not None and a.data is None:
        overrides["data.source"] = "mnist"  # --data-root alone means full MNIST from there
    overrides.update(dict(a.overrides))
    return cfg.replace(overrides)


def refused_with_resume(a: argparse.Namespace) -> list[str]:
    """The options given that `--resume` would ignore (it continues with the checkpoint's config)."""
    given = [f.option for f in _given(a) if f.dest not in RESUME_FLAGS]
    given += [f"--{name}" for name in ("preset", "config") if getattr(a, name) is not None]
    given += ["--smoke"] * bool(a.smoke) + ["--set"] * bool(a.overrides)
    return given
