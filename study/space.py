"""The search space: parameter specs, their validation, Optuna define-by-run, and applying a point to a RunConfig.

A space maps a name to `{choices: [...]}` or `{low: .., high: .., log: bool}` (integers when both bounds are),
with an optional `role` (scientific | nuisance) and `when: {other: value}` (conditional; `{other: [a, b]}`:
when it is any of them). A name is a
shorthand from PARAMS or any RunConfig key written as section.field ("model.dropout", "train.loss"), so a
new config switch needs no code here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from seqsum.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from seqsum.errors import ConfigError

from .family import family_of, parse_family

ROLES = ("scientific", "nuisance")

# Searchable parameters and how each maps onto a RunConfig. Width/depth build layer lists:
# CNN channels double per layer (8, 16, ...), GRU sizes halve per layer (200, 100, ...).
PARAMS: dict[str, str] = {
    "conv_depth": "number of conv layers (int >= 0)",
    "conv_width": "channels of the first conv layer; doubles per layer (int >= 1)",
    "gru_depth": "number of GRU layers (int >= 1)",
    "gru_width": "hidden size of the first GRU layer; halves per layer (int >= 1)",
    "loss": "loss family: mse | log | classify",
    "family": "the search arm: a loss with its bottleneck and head (study.family), e.g. classify, classify+exact",
    "conv_stack": "a named conv stack (STACKS): seed (the original post's) | strong (padding, pooling, relu)",
    "standardize": "mse only: regress the standardized value (bool)",
    "activation": "conv activation: tanh | relu",
    "lr": "learning rate (float > 0)",
    "batch_size": "batch size (int >= 1)",
    "dropout": "dropout before the head, in [0, 1)",
    "optimizer": "rmsprop | adam",
    "grad_clip": "max gradient norm (float > 0)",
}
# Shorthand names that are one RunConfig key each; any other key may be named directly ("model.dropout").
ALIASES: dict[str, str] = {
    "loss": "train.loss",
    "standardize": "train.standardize",
    "activation": "model.activation",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "dropout": "model.dropout",
    "optimizer": "train.optimizer",
    "grad_clip": "train.grad_clip",
}
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# The study sets these, not the sampler (epochs: the budget that ASHA and the reruns share).
NOT_SEARCHABLE = ("train.task", "train.device", "train.epochs")

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
    "family": "mse",
    "conv_stack": "seed",
}
# Named conv stacks (`conv_stack`): every key a stack sets, so a point on one never inherits the other's.
STACKS: dict[str, dict[str, Any]] = {
    "seed": {"model.conv_channels": [8, 16], "model.conv_kernels": [4, 3], "model.conv_padding": [],
             "model.conv_pool": [], "model.activation": "tanh"},
    "strong": {"model.conv_channels": [32, 64], "model.conv_kernels": [3, 3], "model.conv_padding": [1, 1],
               "model.conv_pool": [2, 2], "model.activation": "relu"},
}  # fmt: skip
# The run config keys a family stands for (study.family): a space names them or `family`, never both.
IDENTITY_KEYS = ("train.loss", "model.bottleneck", "model.head")


def params_to_run(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """`base` with searched values applied: shorthand names through ALIASES (or the width/depth rules),
    dotted names ("model.dropout") as they are."""
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
    if "family" in params:
        o.update(parse_family(params["family"]))
    if "conv_stack" in params:
        if params["conv_stack"] not in STACKS:
            raise ConfigError(f"unknown conv_stack {params['conv_stack']!r}; allowed: {', '.join(STACKS)}")
        o.update(STACKS[params["conv_stack"]])
    o.update({ALIASES.get(k, k): v for k, v in params.items() if k in ALIASES or "." in k})
    return base.replace(o)


def shorthand_value(base: RunConfig, name: str) -> Any:
    """The base config's value of `family` or `conv_stack` (the named stack it is, else None)."""
    if name == "family":
        return family_of(base)
    if name == "conv_stack":
        m = {f"model.{k}": list(v) if isinstance(v, tuple) else v for k, v in vars(base.model).items()}
        return next((n for n, keys in STACKS.items() if all(m.get(k) == v for k, v in keys.items())), None)
    return None


def identity_names(space: dict[str, Any]) -> list[str]:
    """The space's parameters that decide a trial's family (`family`, the loss, model.bottleneck,
    model.head), in ordered() order."""
    return [n for n in ordered(space) if n == "family" or ALIASES.get(n, n) in IDENTITY_KEYS]


def ordered(space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The space with every conditional parameter after the parameters its `when` names (otherwise in the
    file's order), so whether it is active is known when it comes up."""
    order, cyclic = _resolve(space)
    return {name: space[name] for name in order + cyclic}  # a cycle (refused by space_problems): file order


def _resolve(space: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(the names in an order where every `when` comes after what it names, the names left over because
    their `when`s depend on each other in a cycle, in the file's order)."""
    order: list[str] = []
    pending = dict(space)
    while pending:
        ready = [n for n, s in pending.items() if all(k in order or k not in space for k in _when(s))]
        if not ready:
            break
        for name in ready:
            order.append(name)
            pending.pop(name)
    return order, list(pending)


def _when(spec: Any) -> dict[str, Any]:
    when = spec.get("when") if isinstance(spec, dict) else None
    return when if isinstance(when, dict) else {}


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna define-by-run: suggest every active parameter of `space` on `trial`."""
    params: dict[str, Any] = {}
    for name, spec in ordered(space).items():
        if not active(spec, params):
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
    import optuna.distributions as od  # optuna: kept off the parser's path (study.config imports this module)

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


def active(spec: dict[str, Any], chosen: dict[str, Any]) -> bool:
    """Whether every `when` condition holds: {other: value}, or {other: [value, ...]} for any of them."""
    return all(_matches(chosen.get(k), v) for k, v in (spec.get("when") or {}).items())


def _matches(value: Any, want: Any) -> bool:
    return value == want or (isinstance(want, list) and value in want)


def contains(spec: dict[str, Any], value: Any) -> bool:
    if "choices" in spec:
        return value in spec["choices"]
    return isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]


def space_problems(space: Any) -> list[str]:
    if not isinstance(space, dict) or not space:
        return [f"what.space must be a non-empty mapping of parameters, got {space!r}"]
    p = []
    for name, spec in space.items():
        if name not in PARAMS and not _is_config_key(name):
            p.append(
                f"unknown search parameter {name!r}; allowed: {', '.join(PARAMS)}, or a run config key "
                "such as model.dropout (section data/model/train)"
            )
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
        if "log" in spec and not isinstance(spec["log"], bool):
            p.append(f"search parameter {name!r} has log {spec['log']!r}; allowed: true, false")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                p.append(f"search parameter {name!r} has empty or invalid choices {choices!r}")
            elif len({repr(c) for c in choices}) < len(choices):
                p.append(f"search parameter {name!r} has a choice twice in {choices!r}; list each once")
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
        p += _when_problems(name, spec.get("when"), space)
    cyclic = [n for n in _resolve(space)[1] if n not in _when(space[n])]  # a self-condition is named above
    if not p and cyclic:
        p.append(f"search parameters {cyclic} are conditional on each other (a cycle); break it")
    return p


def _when_problems(name: str, when: Any, space: dict[str, Any]) -> list[str]:
    """`when: {other: value}` must name other parameters of the space, with a value they can take."""
    if when is None:
        return []
    if not isinstance(when, dict):
        return [f"search parameter {name!r} has when {when!r}; allowed: a mapping such as {{loss: mse}}"]
    p = []
    for k, v in when.items():
        if k == name or k not in space:
            why = "itself" if k == name else f"{k!r}, which is not in the space"
            p.append(f"search parameter {name!r} is conditional on {why}")
        elif isinstance(space[k], dict) and "choices" in space[k] and isinstance(space[k]["choices"], list):
            choices = space[k]["choices"]
            wanted = v if isinstance(v, list) and v not in choices else [v]
            bad = [x for x in wanted if x not in choices]
            if bad or not wanted:
                p.append(f"search parameter {name!r} is conditional on {k}={v!r}, which is not among {choices!r}"
                         + (" (a list means any of its values)" if isinstance(v, list) else ""))  # fmt: skip
    return p


def corners(space: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Points that bound a (valid) space: every range at its low end, then at its high end, each with every
    choice of one categorical parameter in turn (the others at their first); only active parameters."""
    out = []
    for end in ("low", "high"):
        base = {n: s["choices"][0] if "choices" in s else s[end] for n, s in space.items()}
        out.append(base)
        out += [{**base, n: c} for n, s in space.items() if "choices" in s for c in s["choices"][1:]]
    return [_active_only(space, point) for point in out]


def _active_only(space: dict[str, dict[str, Any]], point: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, spec in ordered(space).items():
        if active(spec, kept):
            kept[name] = point[name]
    return kept


def _is_config_key(name: str) -> bool:
    section, _, key = name.partition(".")
    kind = SECTIONS.get(section)
    return kind is not None and key in {f.name for f in fields(kind)} and name not in NOT_SEARCHABLE
