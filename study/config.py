"""The study config: *what* to explore, *how* to search, *where* it runs (one YAML file).

```yaml
what:                      # what to explore
  tasks: [sum, product]
  base: {data: {...}, model: {...}, train: {...}}   # RunConfig fields shared by every trial
  space:                   # searched parameters (Optuna define-by-run)
    loss: {choices: [mse, log, classify], role: scientific}
    gru_width: {low: 16, high: 256, log: true, role: scientific}
    standardize: {choices: [false, true], when: {loss: mse}}   # conditional
    model.dropout: {low: 0.0, high: 0.5}   # any RunConfig key, named directly
  enqueue_seed: true       # try the original post's model first where it fits the space
                           # (and one trial of every loss family of the space is always enqueued)
  points:                  # optional: conditions tried first, in order (a designed comparison); a key a
    - {}                   # point does not name takes the base config's value, so {} is the base itself
    - {data.balance: target}
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
  storage: studies         # a folder (local or shared) or a URI: s3://bucket/studies, gs://...
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
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from seqsum.choices import TASKS
from seqsum.config import RunConfig
from seqsum.config_text import read_config_text, yaml_load
from seqsum.errors import ConfigError

from . import checks
from .family import family_of
from .reach import reachable
from .space import ALIASES, SEED_POINT, active, contains, ordered, params_to_run, shorthand_value

PRESET_DIR = Path(__file__).parent / "presets"
REPLICATE_PAIRS_PER_CELL = 200  # test sequences per digit-pair cell in every replicate


@dataclass(frozen=True)
class What:
    """What to explore: tasks, the shared base run config and the search space."""

    tasks: tuple[str, ...] = ("sum", "product")
    base: dict[str, Any] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    enqueue_seed: bool = True
    points: tuple[dict[str, Any], ...] = ()  # designed conditions, enqueued first (see first_points)


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
    optuna_storage: str | None = None  # an Optuna RDB URL or journal file; None: optuna.db in the study folder


@dataclass(frozen=True)
class StudyConfig:
    what: What = field(default_factory=What)
    how: How = field(default_factory=How)
    where: Where = field(default_factory=Where)

    def __post_init__(self) -> None:
        problems = checks.problems(self)
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
        return cls.from_yaml(read_config_text(path, "study config"), str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "study.yaml") -> StudyConfig:
        try:
            d = yaml_load(text)
        except (yaml.YAMLError, ValueError, RecursionError) as e:
            raise ConfigError(f"cannot parse study config {source!r}: {str(e).splitlines()[0]}") from None
        if d is None:
            raise ConfigError(f"study config {source!r} is empty; give sections what/how/where")
        try:
            return cls.from_dict(d)
        except ConfigError as e:
            raise ConfigError(f"study config {source!r}: {e}") from None

    def override(self, section: str, **values: Any) -> StudyConfig:
        """A copy with some fields of one section replaced (None values are ignored)."""
        d = self.to_dict()
        d[section].update({k: v for k, v in values.items() if v is not None})
        return StudyConfig.from_dict(d)

    # --- the search space ---------------------------------------------------------------------
    @cached_property
    def _base_runs(self) -> dict[str, RunConfig]:
        base = RunConfig.from_dict(copy.deepcopy(self.what.base))
        return {t: base.replace({"train.task": t}) for t in TASKS}

    def base_run(self, task: str) -> RunConfig:
        """The RunConfig every trial of `task` starts from (built once per StudyConfig)."""
        return self._base_runs[task]

    @cached_property
    def _reachable(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """({family: the first identity assignment reaching it}, problems): see study.family.reachable."""
        task = self.what.tasks[0]
        return reachable(self.what.space, lambda point: self.run_config(task, point))

    def families(self) -> list[str]:
        """The families this study searches (study.family: the loss with its head and bottleneck, e.g.
        'classify', 'classify+exact', 'mse+nmu'), in the space's order; the base config's when the space
        searches none of them."""
        return list(self._reachable[0]) or [family_of(self.base_run(self.what.tasks[0]))]

    def family_of_point(self, point: dict[str, Any]) -> str:
        """The family a (completed) point of the space trains."""
        return family_of(self.run_config(self.what.tasks[0], point))

    def first_points(self) -> list[dict[str, Any]]:
        """Points enqueued before the sampler: the original post's model (if asked and it fits), the
        designed `what.points` (each completed from the base config), then one point per family not yet
        covered (its loss, head and bottleneck set; its other parameters left to the sampler)."""
        points = []
        seed = self.seed_point() if self.what.enqueue_seed else None
        if seed:
            points.append(seed)
        points += [self.complete_point(p) for p in self.what.points]
        reach = self._reachable[0]
        if reach:
            covered = {self.family_of_point(p) for p in points}
            points += [dict(p) for f, p in reach.items() if f not in covered]
        return points

    def complete_point(self, point: dict[str, Any]) -> dict[str, Any]:
        """A designed point with every active parameter of the space: the ones it names, the base config's
        value for the others (so a point is exactly "the base with these changes")."""
        base = self.base_run(self.what.tasks[0])
        full: dict[str, Any] = {}
        for name, spec in ordered(self.what.space).items():
            if active(spec, full):
                full[name] = point[name] if name in point else _base_value(base, name)
        return full

    def run_config(self, task: str, params: dict[str, Any]) -> RunConfig:
        """The RunConfig of one trial: base config + task + searched params."""
        return params_to_run(self.base_run(task), params)

    def replicate_run(self, point: dict[str, Any]) -> RunConfig:
        """The RunConfig of one replicate (a rerun point: task, params, seed, epochs): the selected trial's
        config with a fresh seed, the shared epoch budget and a pair grid of REPLICATE_PAIRS_PER_CELL."""
        run = self.run_config(point["task"], point["params"])
        return run.replace(
            {
                "train.seed": point["seed"],
                "train.epochs": point["epochs"],
                "data.pairs_per_cell": max(REPLICATE_PAIRS_PER_CELL, run.data.pairs_per_cell),
            }
        )

    def seed_point(self) -> dict[str, Any] | None:
        """The original post's model as a point of this space, or None if it does not fit."""
        point = {}
        for name, spec in ordered(self.what.space).items():
            if not active(spec, point):
                continue
            value = SEED_POINT.get(name)
            if value is None or not contains(spec, value):
                return None
            point[name] = value
        return point


def _base_value(base: RunConfig, name: str) -> Any:
    """The base config's value of a space parameter named as a config key or ALIASES shorthand (a
    width/depth shorthand has no single value: None; family and conv_stack: space.shorthand_value). An empty
    holdout is spelled 'none' in a space."""
    key = ALIASES.get(name, name)
    section, _, attr = key.partition(".")
    if not attr:
        return shorthand_value(base, name)
    value = getattr(getattr(base, section), attr)
    if key == "data.holdout" and not value:
        return "none"
    return list(value) if isinstance(value, tuple) else value


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> StudyConfig:
    if name not in preset_names():
        raise ConfigError(f"unknown study preset {name!r}; allowed: {', '.join(preset_names())}")
    return StudyConfig.load(PRESET_DIR / f"{name}.yaml")


def _section(kind: type, d: Any, name: str):
    if not isinstance(d, dict):
        raise ConfigError(f"study config section {name!r} must be a mapping, got {d!r}")
    allowed = [f.name for f in fields(kind)]
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in study section {name!r}; allowed: {', '.join(allowed)}")
    return kind(**{k: tuple(v) if isinstance(v, list) and k in ("tasks", "points") else v for k, v in d.items()})
