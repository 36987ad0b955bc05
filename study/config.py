"""The study config: *what* to explore, *how* to search, *where* it runs (one YAML file).

```yaml
what:                      # what to explore
  tasks: [sum, product]
  base: {data: {...}, model: {...}, train: {...}}   # RunConfig fields shared by every trial
  space:                   # searched parameters (Optuna define-by-run)
    loss: {choices: [mse, log, classify], role: scientific}
    gru_width: {low: 16, high: 256, log: true, role: scientific}
    standardize: {choices: [false, true], when: {loss: mse}}   # conditional
  enqueue_seed: true       # try the original post's model first where it fits the space
how:                       # how to search
  metric: valid/exact
  mode: max
  num_samples: 8           # trials per task
  max_concurrent: 2
  scheduler: asha          # asha | fifo
  grace_period: 1
  reduction_factor: 2
  seed: 0
where:                     # where it runs
  storage: studies         # local folder, shared file system or s3:// URI
  name: quick
  cpus_per_trial: 1
  gpus_per_trial: 0
  max_failures: 1
  reuse_actors: true
```
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from seqsum.config import LOSSES, TASKS, ConfigError, RunConfig, yaml_load

PRESET_DIR = Path(__file__).parent / "presets"
SCHEDULERS = ("asha", "fifo")
MODES = ("max", "min")
ROLES = ("scientific", "nuisance")

# Searchable parameters and how each maps onto a RunConfig. Width/depth build layer lists:
# CNN channels double per layer (8, 16, ...), GRU sizes halve per layer (200, 100, ...).
PARAMS: dict[str, str] = {
    "conv_depth": "number of conv layers (int >= 0)",
    "conv_width": "channels of the first conv layer; doubles per layer (int >= 1)",
    "gru_depth": "number of GRU layers (int >= 1)",
    "gru_width": "hidden size of the first GRU layer; halves per layer (int >= 1)",
    "loss": "loss family: mse | log | classify",
    "standardize": "mse only: regress the standardized value (bool)",
    "activation": "conv activation: tanh | relu",
    "lr": "learning rate (float > 0)",
    "batch_size": "batch size (int >= 1)",
    "dropout": "dropout before the head, in [0, 1)",
    "optimizer": "rmsprop | adam",
    "grad_clip": "max gradient norm (float > 0)",
}

# The original post's model, as searched parameters (enqueued first when it fits the space).
SEED_POINT = {
    "conv_depth": 2,
    "conv_width": 8,
    "gru_depth": 2,
    "gru_width": 200,
    "loss": "mse",
    "standardize": False,
    "activation": "tanh",
    "lr": 1e-3,
    "batch_size": 32,
    "dropout": 0.2,
    "optimizer": "rmsprop",
}


@dataclass(frozen=True)
class What:
    """What to explore: tasks, the shared base run config and the search space."""

    tasks: tuple[str, ...] = ("sum", "product")
    base: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    enqueue_seed: bool = True


@dataclass(frozen=True)
class How:
    """How to search: metric, mode, budget per task, scheduler, concurrency."""

    metric: str = "valid/exact"
    mode: str = "max"
    num_samples: int = 8
    max_concurrent: int = 2
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2
    seed: int = 0


@dataclass(frozen=True)
class Where:
    """Where the study runs and lives."""

    storage: str = "studies"
    name: str = "study"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    reuse_actors: bool = True


@dataclass(frozen=True)
class StudyConfig:
    what: What = field(default_factory=What)
    how: How = field(default_factory=How)
    where: Where = field(default_factory=Where)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, d: Any) -> StudyConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a study config must be a mapping with sections what/how/where, got {type(d).__name__}")
        unknown = sorted(set(d) - {"what", "how", "where"})
        if unknown:
            raise ConfigError(f"unknown study config section(s) {unknown}; allowed: what, how, where")
        return cls(
            _section(What, d.get("what") or {}, "what"),
            _section(How, d.get("how") or {}, "how"),
            _section(Where, d.get("where") or {}, "where"),
        )

    @classmethod
    def load(cls, path: str | Path) -> StudyConfig:
        path = Path(path)
        try:
            d = yaml_load(path.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read study config {str(path)!r}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"cannot parse study config {str(path)!r}: {str(e).splitlines()[0]}") from None
        return cls.from_dict(d or {})

    def override(self, section: str, **values: Any) -> StudyConfig:
        """A copy with some fields of one section replaced (None values are ignored)."""
        d = self.to_dict()
        d[section].update({k: v for k, v in values.items() if v is not None})
        return StudyConfig.from_dict(d)

    # --- the search space ---------------------------------------------------------------------
    def base_run(self, task: str) -> RunConfig:
        return RunConfig.from_dict(copy.deepcopy(self.what.base)).replace({"train.task": task})

    def run_config(self, task: str, params: dict[str, Any]) -> RunConfig:
        """The RunConfig of one trial: base config + task + searched params."""
        return params_to_run(self.base_run(task), params)

    def seed_point(self) -> dict[str, Any] | None:
        """The original post's model as a point of this space, or None if it does not fit."""
        point = {}
        for name, spec in self.what.space.items():
            if not _active(spec, point):
                continue
            value = SEED_POINT.get(name)
            if value is None or not _contains(spec, value):
                return None
            point[name] = value
        return point


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> StudyConfig:
    if name not in preset_names():
        raise ConfigError(f"unknown study preset {name!r}; allowed: {', '.join(preset_names())}")
    return StudyConfig.load(PRESET_DIR / f"{name}.yaml")


def params_to_run(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    o: dict[str, Any] = {}
    m = base.model
    if "conv_depth" in params or "conv_width" in params:
        depth = params.get("conv_depth", len(m.conv_channels))
        width = params.get("conv_width", m.conv_channels[0] if m.conv_channels else 8)
        kernels = (list(m.conv_kernels) + [3] * depth)[:depth]
        o["model.conv_channels"] = [width * 2**i for i in range(depth)]
        o["model.conv_kernels"] = kernels
    if "gru_depth" in params or "gru_width" in params:
        depth = params.get("gru_depth", len(m.gru_hidden))
        width = params.get("gru_width", m.gru_hidden[0])
        o["model.gru_hidden"] = [max(1, width // 2**i) for i in range(depth)]
    direct = {
        "loss": "train.loss",
        "standardize": "train.standardize",
        "activation": "model.activation",
        "lr": "train.lr",
        "batch_size": "train.batch_size",
        "dropout": "model.dropout",
        "optimizer": "train.optimizer",
        "grad_clip": "train.grad_clip",
    }
    o.update({direct[k]: v for k, v in params.items() if k in direct})
    return base.replace(o)


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna define-by-run: suggest every active parameter of `space` on `trial`."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if not _active(spec, params):
            continue
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif _is_int(spec):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


class Space:
    """A picklable define-by-run space function (Tune saves the searcher with the experiment)."""

    def __init__(self, space: dict[str, dict[str, Any]]):
        self.space = space

    def __call__(self, trial) -> None:
        suggest(trial, self.space)


def distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna distributions of every parameter (for writing finished trials into the RDB study)."""
    import optuna.distributions as od

    out = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = od.CategoricalDistribution(list(spec["choices"]))
        elif _is_int(spec):
            out[name] = od.IntDistribution(spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            out[name] = od.FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return out


def _is_int(spec: dict[str, Any]) -> bool:
    return all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("low", "high"))


def _active(spec: dict[str, Any], chosen: dict[str, Any]) -> bool:
    return all(chosen.get(k) == v for k, v in (spec.get("when") or {}).items())


def _contains(spec: dict[str, Any], value: Any) -> bool:
    if "choices" in spec:
        return value in spec["choices"]
    return isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]


def _section(kind: type, d: Any, name: str):
    if not isinstance(d, dict):
        raise ConfigError(f"study config section {name!r} must be a mapping, got {d!r}")
    allowed = [f.name for f in fields(kind)]
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in study section {name!r}; allowed: {', '.join(allowed)}")
    return kind(**{k: tuple(v) if isinstance(v, list) and k == "tasks" else v for k, v in d.items()})


def _space_problems(space: Any) -> list[str]:
    if not isinstance(space, dict) or not space:
        return [f"what.space must be a non-empty mapping of parameters, got {space!r}"]
    p = []
    for name, spec in space.items():
        if name not in PARAMS:
            p.append(f"unknown search parameter {name!r}; allowed: {', '.join(PARAMS)}")
            continue
        if not isinstance(spec, dict):
            p.append(f"search parameter {name!r} needs {{choices: [...]}} or {{low: .., high: ..}}, got {spec!r}")
            continue
        extra = sorted(set(spec) - {"choices", "low", "high", "log", "role", "when"})
        if extra:
            p.append(
                f"search parameter {name!r} has unknown key(s) {extra}; allowed: choices, low, high, log, role, when"
            )
        if spec.get("role", "scientific") not in ROLES:
            p.append(f"search parameter {name!r} has role {spec['role']!r}; allowed: {', '.join(ROLES)}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                p.append(f"search parameter {name!r} has empty or invalid choices {spec['choices']!r}")
        elif "low" in spec and "high" in spec:
            lo, hi = spec["low"], spec["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
                p.append(f"search parameter {name!r} range must be numbers, got low={lo!r} high={hi!r}")
            elif not lo < hi:
                p.append(f"search parameter {name!r} has an empty or inverted range: low={lo!r} high={hi!r}")
            elif spec.get("log") and lo <= 0:
                p.append(f"search parameter {name!r} is log-scaled and needs low > 0, got {lo!r}")
        else:
            p.append(f"search parameter {name!r} needs {{choices: [...]}} or {{low: .., high: ..}}")
        for k in spec.get("when") or {}:
            if k not in space:
                p.append(f"search parameter {name!r} is conditional on {k!r}, which is not in the space")
    return p


def _problems(c: StudyConfig) -> list[str]:
    p: list[str] = []
    w, h, r = c.what, c.how, c.where
    if not w.tasks or any(t not in TASKS for t in w.tasks) or len(set(w.tasks)) != len(w.tasks):
        p.append(f"what.tasks must be distinct tasks from {', '.join(TASKS)}, got {list(w.tasks)!r}")
    p += _space_problems(w.space)
    if not p:
        if "loss" in w.space and "choices" in w.space["loss"]:
            bad = [x for x in w.space["loss"]["choices"] if x not in LOSSES]
            if bad:
                p.append(f"unknown loss {bad[0]!r} in the space; allowed: {', '.join(LOSSES)}")
        try:  # the base and every corner of the space must make a valid RunConfig
            base = c.base_run(w.tasks[0])
            for corner in ("low", "high"):
                params = {k: (s["choices"][0] if "choices" in s else s[corner]) for k, s in w.space.items()}
                params_to_run(base, params)
        except ConfigError as e:
            p.append(f"invalid run config in the study: {e}")
    if h.mode not in MODES:
        p.append(f"unknown mode {h.mode!r}; allowed: {', '.join(MODES)}")
    if h.scheduler not in SCHEDULERS:
        p.append(f"unknown scheduler {h.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    if not h.metric.startswith(("valid/", "train/")):
        p.append(f"metric {h.metric!r} must be a per-epoch metric such as valid/exact, valid/mae, train/loss")
    for name in ("num_samples", "max_concurrent", "grace_period"):
        if not (isinstance(getattr(h, name), int) and getattr(h, name) >= 1):
            p.append(f"how.{name} must be an integer >= 1, got {getattr(h, name)!r}")
    if not (isinstance(h.reduction_factor, (int, float)) and h.reduction_factor > 1):
        p.append(f"how.reduction_factor must be > 1, got {h.reduction_factor!r}")
    if not isinstance(r.name, str) or not r.name or "/" in r.name or "\\" in r.name or r.name in (".", ".."):
        p.append(f"study name {r.name!r} must be a non-empty folder name without path separators")
    if not (isinstance(r.cpus_per_trial, (int, float)) and r.cpus_per_trial > 0):
        p.append(f"where.cpus_per_trial must be > 0, got {r.cpus_per_trial!r}")
    if not (
        isinstance(r.gpus_per_trial, (int, float))
        and 0 <= r.gpus_per_trial
        and (r.gpus_per_trial <= 1 or float(r.gpus_per_trial).is_integer())
    ):
        p.append(f"where.gpus_per_trial must be a fraction in [0, 1] or a whole number, got {r.gpus_per_trial!r}")
    if not (isinstance(r.max_failures, int) and r.max_failures >= 0):
        p.append(f"where.max_failures must be an integer >= 0, got {r.max_failures!r}")
    if not isinstance(r.storage, str) or not r.storage:
        p.append(f"where.storage must be a folder or URI, got {r.storage!r}")
    return p
