"""The loss families a search space can reach: every assignment of its identity parameters (loss, head,
bottleneck) the sampler can make, and the family each one's run config belongs to."""

from __future__ import annotations

from typing import Any

from seqsum.errors import ConfigError

from .family import family_of
from .space import active, identity_names, ordered

MAX_COMBINATIONS = 10_000  # identity assignments enumerated per space (a few dozen in every preset)


def assignments(space: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every assignment the sampler can reach of the space's identity parameters (study.space.identity_names)
    and of the categorical parameters their `when`s name, in the space's order (each parameter's choices
    in order): only active parameters are assigned. [{}] when the space has no identity parameter."""
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


def reachable(space: dict[str, dict[str, Any]], build_run) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({family: the first assignment that reaches it}, problems): `build_run(assignment)` builds each
    assignment's RunConfig; one it refuses (an exact head with mse, say) is a problem naming the
    assignment, so a space must rule it out with `when:` (or `family` choices)."""
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    points = assignments(space)
    if len(points) > MAX_COMBINATIONS:
        return out, [f"the space's loss, head and bottleneck choices combine in more than {MAX_COMBINATIONS:,} ways"]
    for point in points:
        try:
            key = family_of(build_run(point))
        except ConfigError as e:
            problems.append(f"the space lets a trial take {point}, which is not a valid run config ({e}); "
                            "rule it out with when: (e.g. model.head: {..., when: {loss: classify}})")  # fmt: skip
            continue
        out.setdefault(key, point)
    return out, problems[:1]
