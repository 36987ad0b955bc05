"""Neural arithmetic units as recurrent heads (Madsen & Johansen, ICLR 2020, "Neural Arithmetic Units").

The head reads one small digit representation per step, x_t = Linear(CNN features) of width `d`, and
accumulates over time with one arithmetic unit applied to [x_t, h_{t-1}]:

- NAU (sum):     h_t = W [x_t, h_{t-1}],             W clamped to [-1, 1], h_0 = 0
- NMU (product): h_t = prod_i (W_i z_i + 1 - W_i),   z = [x_t, h_{t-1}], W clamped to [0, 1], h_0 = 1

With ideal weights (all ones) and x_t equal to the digit, h_T is exactly the sum (NAU) or the product
(NMU) of the digits. Each unit has the paper's sparsity regulariser, which pushes every weight to
{-1, 0, 1} (NAU) or {0, 1} (NMU): R = mean(W^2 (1 - |W|)^2) (NAU) and mean(W^2 (1 - W)^2) (NMU),
added to the loss with a weight that ramps up during training (see `sparsity_weight`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import HEADS  # noqa: F401 - the one list of heads (model.head)


class NAU(nn.Module):
    """Neural addition unit: a linear map with weights in [-1, 1], no bias."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(n_out, n_in))
        r = min(0.5, math.sqrt(3.0) * math.sqrt(2.0 / (n_in + n_out)))
        nn.init.uniform_(self.W, -r, r)  # the paper's init

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, n_in) -> (B, n_out)."""
        return z @ self.W.clamp(-1.0, 1.0).t()

    def regularizer(self) -> torch.Tensor:
        W = self.W
        return (W**2 * (1 - W.abs()) ** 2).mean()


class NMU(nn.Module):
    """Neural multiplication unit: out_j = prod_i (W_ji z_i + 1 - W_ji), weights in [0, 1]."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.uniform_(self.W, 0.25, 0.75)  # the paper's init: mean 0.5, r = min(0.25, sqrt(3) * 0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, n_in) -> (B, n_out)."""
        W = self.W.clamp(0.0, 1.0)  # (n_out, n_in)
        return (W[None] * z[:, None, :] + 1 - W[None]).prod(dim=-1)  # (B, n_out, n_in) -> (B, n_out)

    def regularizer(self) -> torch.Tensor:
        W = self.W
        return (W**2 * (1 - W) ** 2).mean()


class ArithmeticHead(nn.Module):
    """Per-step features (T, B, F) -> running value per step (T, B, 1), accumulated by an NAU or NMU."""

    def __init__(self, kind: str, feat_dim: int, digit_dim: int = 1):
        super().__init__()
        if kind not in ("nau", "nmu"):
            raise ValueError(f"unknown arithmetic head {kind!r}; allowed: nau, nmu")
        self.kind = kind
        self.digit = nn.Linear(feat_dim, digit_dim)  # x_t: the digit's value (or a few features)
        self.unit = (NAU if kind == "nau" else NMU)(digit_dim + 1, 1)
        self.h0 = 0.0 if kind == "nau" else 1.0

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats (T, B, F), mask (T, B) of real steps -> (T, B, 1); a padded step keeps h unchanged."""
        T, B, _ = feats.shape
        x = self.digit(feats)  # (T, B, d)
        h = x.new_full((B, 1), self.h0)
        outs = []
        for t in range(T):
            new = self.unit(torch.cat([x[t], h], dim=1))  # (B, 1)
            h = torch.where(mask[t, :, None], new, h)
            outs.append(h)
        return torch.stack(outs)  # (T, B, 1)

    def regularizer(self) -> torch.Tensor:
        return self.unit.regularizer()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the unit's weights in their range after an optimizer step ([-1, 1] NAU, [0, 1] NMU)."""
        self.unit.W.clamp_(-1.0 if self.kind == "nau" else 0.0, 1.0)


def sparsity_weight(progress: float, start: float = 0.2, end: float = 0.6, scale: float = 1.0) -> float:
    """The regulariser's weight at a point of training (progress in [0, 1]): 0 until `start`, ramping
    linearly to `scale` at `end` (the paper ramps between two step counts; here, shares of training)."""
    if end <= start:
        return scale if progress >= start else 0.0
    return scale * min(max((progress - start) / (end - start), 0.0), 1.0)
