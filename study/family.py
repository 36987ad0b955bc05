"""A run's search family: its loss with the head and bottleneck it computes through, as one readable key.

The family is what a study tries once before the sampler (one enqueued trial per family), what `study
rerun --per-family` reruns the best of, and what the report compares as arms. It is the loss alone for
today's model (bottleneck none, dense head: `mse`, `log`, `classify`) and the loss joined by '+' with what
differs from it otherwise:

    classify+digits      the GRU stack reads each image's 10 digit probabilities (model.bottleneck=digits)
    classify+exact       the exact operator over the digit distributions (needs the bottleneck and classify)
    mse+nau, log+nmu     a neural arithmetic unit over per-step CNN features (bottleneck none)
    mse+digits+nau       a neural arithmetic unit over the expected digit E[d] (bottleneck digits)

Folders written before heads and bottlenecks existed recorded the loss as their family; it reads the same.
"""

from __future__ import annotations

from typing import Any

from seqsum.config import LOSSES, ConfigError

BOTTLENECKS = ("none", "digits")
HEADS = ("dense", "nau", "nmu", "exact")
NEEDS_BOTTLENECK = ("exact",)  # heads that read digit distributions only


def family_key(loss: str, bottleneck: str = "none", head: str = "dense") -> str:
    """'classify', 'classify+digits', 'classify+exact', 'mse+nmu', 'mse+digits+nau'."""
    parts = [loss]
    if bottleneck != "none" and head not in NEEDS_BOTTLENECK:
        parts.append(bottleneck)
    if head != "dense":
        parts.append(head)
    return "+".join(parts)


def family_of(cfg: Any) -> str:
    """The family of a RunConfig (a config without bottleneck or head switches: its loss)."""
    m = cfg.model
    return family_key(cfg.train.loss, getattr(m, "bottleneck", "none"), getattr(m, "head", "dense"))


def parse_family(key: Any) -> dict[str, str]:
    """The run config values a family key stands for: {train.loss, model.bottleneck, model.head}.
    ConfigError (one line) for a key that is not of family_key's form."""
    allowed = "a loss (mse, log, classify) optionally followed by +digits and/or +nau, +nmu, +exact"
    parts = key.split("+") if isinstance(key, str) else []
    if not parts or parts[0] not in LOSSES:
        raise ConfigError(f"unknown family {key!r}; allowed: {allowed}, e.g. classify+exact")
    loss, rest = parts[0], parts[1:]
    bottleneck = "digits" if "digits" in rest else "none"
    heads = [p for p in rest if p in HEADS]
    if len(heads) > 1 or any(p not in (*BOTTLENECKS, *HEADS) for p in rest) or len(set(rest)) < len(rest):
        raise ConfigError(f"unknown family {key!r}; allowed: {allowed}, e.g. classify+exact")
    head = heads[0] if heads else "dense"
    if head == "dense" and "dense" in rest:
        raise ConfigError(f"family {key!r}: the dense head is the default, write {family_key(loss, bottleneck)!r}")
    if head in NEEDS_BOTTLENECK:
        bottleneck = "digits"
    out = {"train.loss": loss, "model.bottleneck": bottleneck, "model.head": head}
    if family_key(loss, bottleneck, head) != key:
        raise ConfigError(f"family {key!r} is spelled {family_key(loss, bottleneck, head)!r}; write it that way")
    return out


def family_order(key: Any) -> int:
    """A sort key: by loss (LOSSES order), then today's head first, then the others; unknown keys last. An arm
    of a family ('classify (data.balance=target)', analysis.scores.arms) sorts with its family."""
    try:
        p = parse_family(key.split(" (")[0] if isinstance(key, str) else key)
    except ConfigError:
        return len(LOSSES) * 100
    structure = (BOTTLENECKS.index(p["model.bottleneck"]) * len(HEADS) + HEADS.index(p["model.head"])) + 1
    return LOSSES.index(p["train.loss"]) * 100 + (0 if structure == 1 else structure)


MAX_COMBINATIONS = 10_000  # identity assignments enumerated per space (a few dozen in every preset)


def assignments(space: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every assignment the sampler can reach of the space's identity parameters (study.space.identity_names)
    and of the categorical parameters their `when`s name, in the space's order (each parameter's choices
    in order): only active parameters are assigned. [{}] when the space has no identity parameter."""
    from .space import active, identity_names, ordered

    names = set(identity_names(space))
    grow = True
    while grow:  # the parameters the identity parameters' whens depend on, transitively
        more = {k for n in names for k in (space[n].get("when") or {}) if k in space}
        grow = not more <= names
        names |= more
    out: list[dict[str, Any]] = [{}]
    for name, spec in ordered(space).items():
        if name not in names or "choices" not in spec:
            continue
        nxt = []
        for point in out:
            nxt += [{**point, name: c} for c in spec["choices"]] if active(spec, point) else [point]
        out = nxt[: MAX_COMBINATIONS + 1]
    return out


def reachable(space: dict[str, dict[str, Any]], run_config) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({family: the first assignment that reaches it}, problems): `run_config(assignment)` builds each
    assignment's RunConfig; one it refuses (an exact head with mse, say) is a problem naming the
    assignment, so a space must rule it out with `when:` (or `family` choices)."""
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    points = assignments(space)
    if len(points) > MAX_COMBINATIONS:
        return out, [f"the space's loss, head and bottleneck choices combine in more than {MAX_COMBINATIONS:,} ways"]
    for point in points:
        try:
            key = family_of(run_config(point))
        except ConfigError as e:
            problems.append(f"the space lets a trial take {point}, which is not a valid run config ({e}); "
                            "rule it out with when: (e.g. model.head: {..., when: {loss: classify}})")  # fmt: skip
            continue
        out.setdefault(key, point)
    return out, problems[:1]
