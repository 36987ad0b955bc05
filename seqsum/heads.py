"""Neural arithmetic units as recurrent heads (Madsen & Johansen, ICLR 2020, "Neural Arithmetic Units").

The head reads one small digit representation per step, x_t = Linear(CNN features) of width `d`, and
accumulates over time with one arithmetic unit applied to [x_t, h_{t-1}]:

- NAU (sum):     h_t = W [x_t, h_{t-1}],             W clamped to [-1, 1], h_0 = 0
- NMU (product): h_t = prod_i (W_i z_i + 1 - W_i),   z = [x_t, h_{t-1}], W clamped to [0, 1], h_0 = 1

With ideal weights (all ones) and x_t equal to the digit, h_T is exactly the sum (NAU) or the product
(NMU) of the digits. Each unit has the paper's sparsity regulariser, which pushes every weight to
{-1, 0, 1} (NAU) or {0, 1} (NMU), in one of two shapes (`train.sparsity_shape`):
  squared (default):  mean(W^2 (1 - |W|)^2) (NAU),      mean(W^2 (1 - W)^2) (NMU)
  linear (the paper): mean(min(|W|, |1 - |W||)) (NAU),  mean(min(|W|, |1 - W|)) (NMU)
added to the loss with a weight that ramps up over a window of optimizer steps (see `sparsity_weight`),
and optionally the paper's R_z (`train.rz`, not ramped), which pulls the weight of an input whose batch
mean x_bar is far from the unit's neutral value (0 for a sum, 1 for a product) towards 1:
  NAU: mean((1 - |W|) x_bar^2),  NMU: mean((1 - W) (1 - x_bar)^2)
with x_bar the mean of the unit's input [x_t, h_{t-1}] over the real steps of the last training batch.
`model.accumulator: solved` fixes W at ones (h + x, h * x): the paper's reference model, whose error sets
its success threshold.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .bottleneck import ExpectedDigit


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

    def regularizer(self, shape: str = "squared") -> torch.Tensor:
        W = self.W
        if shape == "linear":
            return torch.minimum(W.abs(), (1 - W.abs()).abs()).mean()
        return (W**2 * (1 - W.abs()) ** 2).mean()

    def rz(self, x_bar: torch.Tensor) -> torch.Tensor:
        """R_z for the input means x_bar (n_in,): a sum's neutral input is 0."""
        return ((1 - self.W.abs()) * x_bar**2).mean()


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

    def regularizer(self, shape: str = "squared") -> torch.Tensor:
        W = self.W
        if shape == "linear":
            return torch.minimum(W.abs(), (1 - W).abs()).mean()
        return (W**2 * (1 - W) ** 2).mean()

    def rz(self, x_bar: torch.Tensor) -> torch.Tensor:
        """R_z for the input means x_bar (n_in,): a product's neutral input is 1."""
        return ((1 - self.W) * (1 - x_bar) ** 2).mean()


class ArithmeticHead(nn.Module):
    """Per-step features (T, B, F) -> running value per step (T, B, 1), accumulated by an NAU or NMU."""

    def __init__(
        self, kind: str, feat_dim: int, digit_dim: int = 1, solved: bool = False, expected_digit: bool = False
    ):
        super().__init__()
        if kind not in ("nau", "nmu"):
            raise ValueError(f"unknown arithmetic head {kind!r}; allowed: nau, nmu")
        self.kind = kind
        # x_t: the digit's value (or a few features); with the digit bottleneck (`expected_digit`: the features
        # are the 10 digit probabilities) the expected digit E[d], with no parameters (seqsum.bottleneck)
        self.digit = ExpectedDigit() if expected_digit else nn.Linear(feat_dim, digit_dim)
        self.unit = (NAU if kind == "nau" else NMU)(digit_dim + 1, 1)
        self.h0 = 0.0 if kind == "nau" else 1.0
        self.solved = solved
        if solved:  # model.accumulator solved: the unit is the exact operator, never trained
            with torch.no_grad():
                self.unit.W.fill_(1.0)
            self.unit.W.requires_grad_(False)
        self.x_bar: torch.Tensor | None = None  # mean unit input of the last training forward (for R_z)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats (T, B, F), mask (T, B) of real steps -> (T, B, 1); a padded step keeps h unchanged."""
        T, B, _ = feats.shape
        x = self.digit(feats)  # (T, B, d)
        h = x.new_full((B, 1), self.h0)
        outs, z_sum = [], 0.0
        for t in range(T):
            z = torch.cat([x[t], h], dim=1)  # (B, d + 1)
            if self.training:
                z_sum = z_sum + (z * mask[t, :, None]).sum(0)
            new = self.unit(z)  # (B, 1)
            h = torch.where(mask[t, :, None], new, h)
            outs.append(h)
        if self.training:
            self.x_bar = z_sum / mask.sum().clamp(min=1)
        return torch.stack(outs)  # (T, B, 1)

    def regularizer(self, shape: str = "squared") -> torch.Tensor:
        return self.unit.regularizer(shape)

    def penalty(self, sparsity: float, rz: float = 0.0, shape: str = "squared") -> torch.Tensor:
        """What the unit adds to the training loss: `sparsity` (the ramped weight) x the sparsity regulariser
        of `shape` + `rz` x R_z on the last training batch's input means (each term only when its weight is
        not 0; sparsity alone is exactly sparsity x regularizer())."""
        out = sparsity * self.regularizer(shape) if sparsity else self.unit.W.new_zeros(())
        if rz:
            if self.x_bar is None:
                raise RuntimeError("R_z needs a training forward first (the unit's input means)")
            out = out + rz * self.unit.rz(self.x_bar)
        return out

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the unit's weights in their range after an optimizer step ([-1, 1] NAU, [0, 1] NMU); the
        paper's units clip the same way (its `nac_oob: clip`), so its out-of-bound regulariser is 0."""
        self.unit.W.clamp_(-1.0 if self.kind == "nau" else 0.0, 1.0)


def sparsity_weight(step: int, start: int, end: int, scale: float = 1.0) -> float:
    """The regulariser's weight at optimizer step `step` (counted over the whole run): 0 before `start`,
    ramping linearly to `scale` at `end`, as the paper ramps it between two step counts."""
    if end <= start:
        return scale if step >= start else 0.0
    return scale * min(max((step - start) / (end - start), 0.0), 1.0)
