"""What a study config must satisfy: every problem found, each as one line naming the value and what
is allowed (StudyConfig raises them together as one ConfigError before anything runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqsum.choices import LOSSES, TASKS
from seqsum.config_checks import _is_int, _is_number
from seqsum.errors import ConfigError
from seqsum.files import NAME_MAX

from .family import parse_family
from .space import ALIASES, contains, corners, identity_names, params_to_run, space_problems

if TYPE_CHECKING:
    from .config import How, StudyConfig, Where

SCHEDULERS = ("asha", "fifo")
MODES = ("max", "min")
EPOCH_METRICS = ("valid/exact", "valid/mae", "valid/mse", "valid/rel_err", "train/loss")  # what every epoch reports
MAX_TRIALS = 100_000  # how.num_samples beyond this is a typo, not a study that would ever end
MAX_SEED = 2**32  # how.seed: Optuna's samplers take 0 .. 2^32 - 1


def _point_problems(c: StudyConfig) -> list[str]:
    p: list[str] = []
    if not isinstance(c.what.points, (list, tuple)):
        return [f"what.points must be a list of mappings of space parameters, got {c.what.points!r}"]
    for i, point in enumerate(c.what.points, 1):
        if not isinstance(point, dict):
            p.append(f"what.points #{i} must be a mapping of space parameters, got {point!r}")
            continue
        unknown = [k for k in point if k not in c.what.space]
        if unknown:
            p.append(f"what.points #{i} names {unknown[0]!r}, which is not in the space; allowed: "
                     f"{', '.join(c.what.space)}")  # fmt: skip
            continue
        full = c.complete_point(point)
        inactive = [k for k in point if k not in full]
        if inactive:
            k = inactive[0]
            p.append(f"what.points #{i} names {k!r}, which applies only when {c.what.space[k]['when']!r}")
            continue
        for name, value in full.items():
            if not contains(c.what.space[name], value):
                why = "names" if name in point else "leaves to the base config"
                p.append(f"what.points #{i} {why} {name}={value!r}, which is outside the space "
                         f"{c.what.space[name]!r}")  # fmt: skip
                break
        else:
            try:
                c.run_config(c.what.tasks[0], full)
            except ConfigError as e:
                p.append(f"what.points #{i} is not a valid run config: {e}")
    n = len(c.first_points()) if not p else 0
    if n > c.how.num_samples:
        p.append(f"how.num_samples={c.how.num_samples} is below the {n} points enqueued first; raise it to >= {n}")
    return p


def problems(c: StudyConfig) -> list[str]:
    w = c.what
    tasks_ok = isinstance(w.tasks, tuple) and w.tasks and all(t in TASKS for t in w.tasks)
    if not tasks_ok or len(set(w.tasks)) != len(w.tasks):
        return [f"what.tasks must be a list of distinct tasks from {', '.join(TASKS)}, got {w.tasks!r}"]
    return _what_problems(c) + _how_problems(c.how) + _where_problems(c.where)


def _what_problems(c: StudyConfig) -> list[str]:
    w = c.what
    p = space_problems(w.space)
    if not isinstance(w.enqueue_seed, bool):
        p.append(f"what.enqueue_seed must be true or false, got {w.enqueue_seed!r}")
    if isinstance(w.base, dict) and isinstance(w.base.get("train"), dict) and "task" in w.base["train"]:
        p.append(f"what.base sets train.task={w.base['train']['task']!r}, which what.tasks decides; remove it")
    if p:
        return p
    losses = [k for k in w.space if ALIASES.get(k, k) == "train.loss"]
    if len(losses) > 1:
        p.append(f"the space names the loss twice ({' and '.join(losses)}); keep one")
    for k in losses:
        bad = [x for x in w.space[k].get("choices") or [] if x not in LOSSES]
        if bad:
            p.append(f"unknown loss {bad[0]!r} in the space; allowed: {', '.join(LOSSES)}")
    identity = identity_names(w.space)
    if "family" in w.space:
        others = [n for n in identity if n != "family"]
        if others:
            p.append(f"the space names family and {others[0]}; family sets the loss, head and bottleneck: keep one")
        for f in w.space["family"].get("choices") or []:
            try:
                parse_family(f)
            except ConfigError as e:
                p.append(f"search parameter 'family': {e}")
                break
    if p:
        return p
    try:  # the base and every corner of the space must make a valid RunConfig
        base = c.base_run(w.tasks[0])
    except ConfigError as e:
        return [f"invalid run config in the study: {e}"]
    if c._reachable[1]:  # every loss x head x bottleneck the sampler can reach must be a valid run config
        return c._reachable[1]
    for point in corners(w.space):
        try:
            params_to_run(base, point)
        except ConfigError as e:
            return [f"invalid run config in the study at {point}: {e}"]
    if base.train.device == "cuda" and c.where.gpus_per_trial == 0:
        p.append("what.base sets train.device=cuda but where.gpus_per_trial is 0; give --gpus-per-trial > 0")
    if not p and w.points:
        p += _point_problems(c)
    return p


def _how_problems(h: How) -> list[str]:
    p: list[str] = []
    if h.mode not in MODES:
        p.append(f"unknown mode {h.mode!r}; allowed: {', '.join(MODES)}")
    if h.scheduler not in SCHEDULERS:
        p.append(f"unknown scheduler {h.scheduler!r}; allowed: {', '.join(SCHEDULERS)}")
    if h.metric not in EPOCH_METRICS:
        p.append(f"unknown metric {h.metric!r}; allowed (reported every epoch): {', '.join(EPOCH_METRICS)}")
    for name in ("num_samples", "max_concurrent", "grace_period"):
        v = getattr(h, name)
        if not (_is_int(v) and 1 <= v <= MAX_TRIALS):
            p.append(f"how.{name} must be an integer in 1..{MAX_TRIALS:,}, got {v!r}")
    if not (_is_number(h.reduction_factor) and h.reduction_factor > 1):
        p.append(f"how.reduction_factor must be a finite number > 1, got {h.reduction_factor!r}")
    if not (_is_int(h.seed) and 0 <= h.seed < MAX_SEED):
        p.append(f"how.seed must be an integer in 0..{MAX_SEED - 1}, got {h.seed!r}")
    return p


def _where_problems(r: Where) -> list[str]:
    p: list[str] = []
    if not _good_name(r.name):
        p.append(
            f"study name {r.name!r} must be a folder name: printable, without path separators or surrounding "
            f"spaces, not . or .., at most {NAME_MAX} bytes"
        )
    if not (_is_number(r.cpus_per_trial) and r.cpus_per_trial > 0):
        p.append(f"where.cpus_per_trial must be a finite number > 0, got {r.cpus_per_trial!r}")
    g = r.gpus_per_trial
    if not (_is_number(g) and 0 <= g and (g <= 1 or float(g).is_integer())):
        p.append(f"where.gpus_per_trial must be a fraction in [0, 1] or a whole number, got {g!r}")
    if not (_is_int(r.max_failures) and r.max_failures >= 0):
        p.append(f"where.max_failures must be an integer >= 0, got {r.max_failures!r}")
    if not isinstance(r.reuse_actors, bool):
        p.append(f"where.reuse_actors must be true or false, got {r.reuse_actors!r}")
    if not isinstance(r.storage, str) or not r.storage:
        p.append(f"where.storage must be a folder or URI, got {r.storage!r}")
    if r.optuna_storage is not None and not (isinstance(r.optuna_storage, str) and r.optuna_storage):
        p.append(f"where.optuna_storage must be an Optuna storage URL or journal file, got {r.optuna_storage!r}")
    return p


def _good_name(name: Any) -> bool:
    """A study name is one folder name (and one URI segment)."""
    return (
        isinstance(name, str)
        and name.strip() == name
        and name not in ("", ".", "..")
        and name.isprintable()
        and not any(sep in name for sep in "/\\")
        and len(name.encode()) <= NAME_MAX
    )
