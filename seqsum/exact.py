"""The exact operator (`model.head: exact`): per-image digit distributions -> the distribution of the result.

With the digit bottleneck (`model.bottleneck: digits`) the CNN gives every image a distribution p_t over the
digits 0..9. If the digits are independent with those distributions, the distribution of their sum or
product follows exactly, with no parameters:

- sum: the distribution after step t is the convolution of the one after step t-1 with p_t
  (new[s] = sum_k old[s - k] p_t[k]), starting from the point mass at 0;
- product: new[j] = sum over (class c, digit d) with value(c) * d = value(j) of old[c] p_t[d], starting
  from the point mass at 1; a (classes x 10) index map gives each (c, d) its class j, and one scatter-add
  per step applies it (digit 0 sends every class to the class of 0).

A padded step leaves the distribution as it is, so the one after the last step is each sequence's result.
Everything runs in log space (log-sum-exp with each class's largest term factored out), so a result whose
probability is below float32's range still has a finite log-probability and long products do not underflow.
Classes impossible so far hold LOG_ZERO (finite, so no inf - inf and no NaN gradient), which exp() reads as 0.

The output is the result's log-distribution over the classify codec's classes (seqsum.targets.ClassifyCodec:
every value achievable up to the longest test sequence), trained by the classify loss, i.e. the negative
log-likelihood of the true result. The prediction rule is fixed in advance: the codec's argmax, the MAP of
the result distribution. The operator holds no parameters and nothing in the state_dict, so a model built for
a longer evaluation length (more classes) loads a trained model's weights and computes those classes.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

LOG_ZERO = -1.0e4  # log-probability of an impossible class: exp() is 0 in float32, sums stay finite
FLOATS_PER_CLASS = 40  # floats per (sequence, class) while one step runs: the (class, digit) sums, maxima, exps
EVAL_BYTES = 512 * 2**20  # an evaluation batch of the exact head is cut to hold at most this much
EVAL_BATCH = 4096  # sequences per evaluation batch otherwise (seqsum.evaluate.predict)


@cache
def product_map(values: tuple[int, ...]) -> torch.Tensor:
    """(C * 10,) int64: the class of value(c) * d for class c and digit d (row-major), C for a product outside
    the class set (only products of more digits than the longest sequence land there)."""
    index = {v: i for i, v in enumerate(values)}
    c = len(values)
    return torch.tensor([index.get(v * d, c) for v in values for d in range(10)], dtype=torch.int64)


def step_bytes(n_classes: int, steps: int = 1) -> int:
    """Bytes one sequence needs while the operator runs (the working set of a step, and with `steps` the
    distributions kept after every step)."""
    return 4 * n_classes * (FLOATS_PER_CLASS + steps)


def eval_batch(n_classes: int, steps: int = 1) -> int:
    """Sequences per evaluation batch: EVAL_BATCH, or fewer so that one batch holds at most EVAL_BYTES."""
    return max(1, min(EVAL_BATCH, EVAL_BYTES // step_bytes(n_classes, steps)))


class ExactOperator(nn.Module):
    """(T, B, 10) digit log-probabilities -> (B, C) log-probabilities of the result over the classes."""

    def __init__(self, task: str, values: tuple[int, ...]):
        super().__init__()
        if task not in ("sum", "product"):
            raise ValueError(f"unknown task {task!r}; allowed: sum, product")
        values = tuple(int(v) for v in values)
        # the values the operator carries: 0..max for a sum; for a product the classes, 0 and 1 (the result of
        # no digits), so a class set drawn from fewer digits (data.digits) still has every slot's result
        support = tuple(range(max(values) + 1)) if task == "sum" else tuple(sorted(set(values) | {0, 1}))
        where = {v: i for i, v in enumerate(support)}
        self.task, self.n_classes = task, len(support)
        self.start = where[0 if task == "sum" else 1]
        step_map = product_map(support) if task == "product" else torch.zeros(0, dtype=torch.int64)
        self.register_buffer("step_map", step_map, persistent=False)
        out = [where[v] for v in values]  # the codec's classes among the support (all of it, in order, usually)
        self.picks = out != list(range(len(support)))
        self.register_buffer("out_index", torch.tensor(out, dtype=torch.int64), persistent=False)

    def forward(self, logp: torch.Tensor, mask: torch.Tensor, steps: bool = False) -> torch.Tensor:
        """logp (T, B, 10) log-probabilities of each step's digit, mask (T, B) real steps -> (B, C) after each
        sequence's last real step, or (B, T, C) after every step with `steps` (padded: the last real one's)."""
        logp = logp.float()
        T, B, _ = logp.shape
        dist = logp.new_full((B, self.n_classes), LOG_ZERO)
        dist[:, self.start] = 0.0
        outs = []
        for t in range(T):
            new = self._sum_step(dist, logp[t]) if self.task == "sum" else self._product_step(dist, logp[t])
            dist = torch.where(mask[t, :, None], new, dist)
            if steps:
                outs.append(dist)
        out = torch.stack(outs, 1) if steps else dist
        return out.index_select(-1, self.out_index) if self.picks else out

    @staticmethod
    def _sum_step(old: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        """new[s] = logsumexp_k old[s - k] + lp[k]: a convolution in log space (values above the class set,
        reachable only with more digits than the longest sequence, are dropped)."""
        padded = torch.nn.functional.pad(old, (9, 0), value=LOG_ZERO)  # (B, C + 9)
        windows = padded.unfold(1, 10, 1)  # (B, C, 10): windows[b, s, j] = old[b, s + j - 9]
        return torch.logsumexp(windows + lp.flip(1)[:, None, :], dim=2)  # j = 9 - k

    def _product_step(self, old: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        """new[j] = logsumexp over (c, d) with class(value(c) d) = j of old[c] + lp[d]."""
        B, C = old.shape
        terms = (old[:, :, None] + lp[:, None, :]).reshape(B, C * 10)  # (B, C * 10)
        index = self.step_map.expand(B, -1)
        with torch.no_grad():  # the largest term of each class, factored out (its value cancels in the gradient)
            top = old.new_full((B, C + 1), LOG_ZERO).scatter_reduce(1, index, terms, "amax", include_self=False)
        total = old.new_zeros(B, C + 1).scatter_add(1, index, (terms - top.gather(1, index)).exp())
        # every class c has the term (c, 1) mapped to itself, so total >= 1 there: the log is finite
        return (total[:, :C].log() + top[:, :C]).clamp(min=LOG_ZERO)
