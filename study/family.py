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

from seqsum.choices import BOTTLENECKS, HEADS, LOSSES
from seqsum.errors import ConfigError

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
