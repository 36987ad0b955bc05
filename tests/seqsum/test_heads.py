"""Neural arithmetic units (seqsum/heads.py): ideal weights add and multiply exactly, padding is inert,
the regulariser is zero exactly at the discrete solutions."""

from __future__ import annotations

import pytest
import torch

from seqsum.heads import NAU, NMU, ArithmeticHead, sparsity_weight


def _ideal(head: ArithmeticHead) -> ArithmeticHead:
    """x_t = the first feature, unit weights all one: the exact sum (NAU) or product (NMU)."""
    with torch.no_grad():
        head.digit.weight.zero_()
        head.digit.weight[0, 0] = 1.0
        head.digit.bias.zero_()
        head.unit.W.fill_(1.0)
    return head


@pytest.mark.parametrize("kind, op", [("nau", sum), ("nmu", lambda ds: torch.tensor(ds).prod().item())])
def test_ideal_weights_compute_exactly(kind, op):
    g = torch.Generator().manual_seed(0)
    T, B = 5, 64
    digits = torch.randint(0, 10, (T, B), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[:, None] < lengths  # (T, B)
    feats = torch.zeros(T, B, 3)
    feats[..., 0] = digits.float()
    feats[..., 1:] = torch.randn(T, B, 2, generator=g)  # ignored by the ideal weights
    out = _ideal(ArithmeticHead(kind, 3))(feats, mask)  # (T, B, 1)
    for b in range(B):
        L = int(lengths[b])
        ds = [int(d) for d in digits[:L, b]]
        assert out[L - 1, b, 0].item() == op(ds)  # exactly, in float32 (products <= 9^5)
        assert out[-1, b, 0].item() == op(ds)  # padded steps keep the value
        for t in range(L):  # every step is the running value
            assert out[t, b, 0].item() == op(ds[: t + 1])


def test_regularizer_is_zero_at_discrete_weights_only():
    nau, nmu = NAU(2, 1), NMU(2, 1)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[1.0, -1.0]]))
        nmu.W.copy_(torch.tensor([[0.0, 1.0]]))
    assert nau.regularizer().item() == 0 and nmu.regularizer().item() == 0
    with torch.no_grad():
        nau.W.fill_(0.5)
        nmu.W.fill_(0.5)
    assert nau.regularizer().item() > 0 and nmu.regularizer().item() > 0


def test_weights_are_clamped_and_gradients_flow():
    head = ArithmeticHead("nmu", 4)
    feats = torch.randn(3, 8, 4)
    mask = torch.ones(3, 8, dtype=torch.bool)
    with torch.no_grad():
        head.unit.W.fill_(2.0)  # out of range: acts as 1
    out = head(feats, mask)
    x = head.digit(feats)[..., 0]
    assert torch.allclose(out[-1, :, 0], x.prod(0), rtol=1e-5)
    head.unit.W.data.fill_(0.5)
    head(feats, mask).sum().backward()
    assert head.unit.W.grad is not None and head.digit.weight.grad.abs().sum() > 0


def test_sparsity_weight_ramps_over_steps():
    assert sparsity_weight(0, 100, 300) == 0 and sparsity_weight(100, 100, 300) == 0
    assert sparsity_weight(200, 100, 300) == pytest.approx(0.5) and sparsity_weight(10**6, 100, 300) == 1.0
    assert sparsity_weight(50, 50, 50, scale=3.0) == 3.0 and sparsity_weight(49, 50, 50, scale=3.0) == 0.0
