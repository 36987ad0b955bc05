"""CnnGru: a CNN on every digit image, a GRU stack over the sequence, dropout, a head.

Only the real (unpadded) images go through the CNN, and the prediction is read from the last GRU
layer at each sequence's last real step, so padding can never change a prediction.

The hot path (see docs/PERFORMANCE.md): the first GRU layer's input projection (CNN features ->
3 gates; 8464 -> 600 for the seed model) is most of the model's arithmetic, so it runs as one
matmul over the real images only, and the recurrence (T <= a few steps) runs here with the
`nn.GRU` module's own parameters. Deeper GRU layers, whose inputs are small, run as `nn.GRU`.
The parameters and the state_dict are exactly those of the plain modules.

`model.outputs: every_step` reads the head at every step (`forward_steps`, (B, T, out_dim)); `forward`
is always the last real step. `model.head: nau | nmu` replaces the GRU stack and the dense head by an
arithmetic unit (seqsum.heads.ArithmeticHead) accumulating over time on the per-step CNN features.

`model.bottleneck: digits` ends the CNN in Linear(F, 10) -> softmax per image (seqsum.bottleneck): the GRU
reads the 10 probabilities, NAU/NMU the expected digit, and `model.head: exact` (seqsum.exact) turns their
logs into the result's log-distribution over the classify codec's classes, with no parameters of its own.
The conv stack's shapes (padding, pooling) come from seqsum.stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .config import ModelConfig, RunConfig
from .exact import EVAL_BATCH, ExactOperator, eval_batch
from .heads import ArithmeticHead
from .stack import conv_layers, feature_size
from .targets import Codec, make_codec


class _TanhFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.mul(2.0).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(x) = 2 sigmoid(2x) - 1
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), as nn.Tanh's backward


class Tanh(nn.Tanh):
    """nn.Tanh for the conv activations, computed on CPU as 2 sigmoid(2x) - 1.

    torch.tanh on CPU (Sleef's tanhf) costs ~3.4 ns per float here, sigmoid ~0.9 ns; this form is
    the same function within 2e-7 (a couple of float32 ulps near +-1) and makes a seed-model
    training step ~5% faster. Elsewhere (CUDA) it is torch.tanh.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _TanhFn.apply(x) if x.device.type == "cpu" else torch.tanh(x)


_ACT = {"tanh": Tanh, "relu": nn.ReLU}


class CnnGru(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int = 1, task: str = "sum", classes: tuple[int, ...] = ()):
        """`task` and `classes` (the classify codec's values) only matter to the exact head."""
        super().__init__()
        layers: list[nn.Module] = []
        for layer in conv_layers(cfg):
            layers += [nn.Conv2d(layer.c_in, layer.c_out, layer.kernel, padding=layer.padding), _ACT[cfg.activation]()]
            if layer.pool > 1:
                layers.append(nn.MaxPool2d(layer.pool))
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.feat_dim = feature_size(cfg)
        self.outputs, self.kind = cfg.outputs, cfg.head
        # the digit bottleneck: CNN features -> 10 digit logits per image (None: the features as they are)
        self.digits = nn.Linear(self.feat_dim, 10) if cfg.bottleneck == "digits" else None
        d_in = 10 if self.digits is not None else self.feat_dim
        if cfg.head == "exact":  # parameter-free: the result's distribution from the digit distributions
            self.grus = nn.ModuleList()
            self.head: nn.Module = ExactOperator(task, classes)
            return
        if cfg.head != "dense":  # an arithmetic unit over time on the CNN features: no GRU, no dropout
            self.grus = nn.ModuleList()
            solved, expected = cfg.accumulator == "solved", self.digits is not None
            self.head = ArithmeticHead(cfg.head, d_in, solved=solved, expected_digit=expected)
            return
        grus = []
        for h in cfg.gru_hidden:
            grus.append(nn.GRU(d_in, h, batch_first=True))
            d_in = h
        self.grus = nn.ModuleList(grus)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d_in, out_dim)

    @property
    def arithmetic(self) -> bool:
        return isinstance(self.head, ArithmeticHead)

    def eval_batch(self, steps: int) -> int:
        """Sequences per evaluation batch of `steps` steps: 4096, fewer for an exact head with many classes."""
        if isinstance(self.head, ExactOperator):
            return eval_batch(self.head.n_classes, steps if self.outputs == "every_step" else 1)
        return EVAL_BATCH

    @torch.no_grad()
    def digit_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 28, 28) images -> (N, 10) the bottleneck's digit logits (float32)."""
        return self.digits(self.cnn(pixels.unsqueeze(1).float().div_(255.0))).float()

    @property
    def first_conv(self) -> nn.Conv2d | None:
        return next((m for m in self.cnn if isinstance(m, nn.Conv2d)), None)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor, steps: bool = False) -> torch.Tensor:
        """images (B, T, 28, 28) uint8 or float in [0, 255], lengths (B,) -> (B, out_dim) at the last real
        step, or (B, T, out_dim) at every step with `steps` (padded steps: unspecified)."""
        B, T = images.shape[:2]
        lengths = lengths.to(images.device)
        real = self._real_steps(T, lengths)
        pixels = images.transpose(0, 1).reshape(T * B, *images.shape[2:]).index_select(0, real)
        gi_real = self._input_gates(pixels)  # (N, 3H): the big matmul, real rows only
        return self._sequence(gi_real, real, B, T, lengths, steps)

    def forward_steps(self, images: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward(images, lengths, steps=True)

    @torch.no_grad()
    def forward_pool(
        self, pool: torch.Tensor, idx: torch.Tensor, lengths: torch.Tensor, steps: bool = False
    ) -> torch.Tensor:
        """forward(pool[idx], lengths) for inference, with the CNN and the first GRU layer's input
        projection run once per distinct image (evaluation sets reuse a few hundred test images
        many times: the 10x10 pair grid scores 20,000 sequences of ~500 images)."""
        B, T = idx.shape
        lengths = lengths.to(pool.device)
        real = self._real_steps(T, lengths)
        flat = idx.to(pool.device).transpose(0, 1).reshape(-1).index_select(0, real)  # (N,) image of each real step
        uniq, inverse = flat.unique(return_inverse=True)  # (U,), (N,)
        gi_real = self._input_gates(pool.index_select(0, uniq)).index_select(0, inverse)  # (N, 3H)
        return self._sequence(gi_real, real, B, T, lengths, steps)

    @staticmethod
    def _real_steps(T: int, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(T, device=lengths.device)[:, None] < lengths  # (T, B), time-major
        return mask.reshape(-1).nonzero().squeeze(1)  # (N,) flat (t, b) positions of the real steps

    def _input_gates(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 28, 28) images -> (N, 3H) first GRU layer input gates x W_ih^T + b_ih (arithmetic head:
        the (N, F) CNN features)."""
        f = self.cnn(pixels.unsqueeze(1).float().div_(255.0))  # (N, F)
        if self.digits is not None:  # (N, 10): log-probabilities for the exact head, probabilities otherwise
            logits = self.digits(f).float()
            f = logits.log_softmax(1) if self.kind == "exact" else logits.softmax(1)
        if self.kind != "dense":
            return f
        gru = self.grus[0]
        return F.linear(f, gru.weight_ih_l0, gru.bias_ih_l0)

    def _sequence(
        self, gi_real: torch.Tensor, real: torch.Tensor, B: int, T: int, lengths: torch.Tensor, steps: bool = False
    ) -> torch.Tensor:
        """Input gates of the real steps -> the GRU stack -> head at each sequence's last real step
        (B, out_dim), or at every step (B, T, out_dim) with `steps`."""
        # (T, B, 3H); padded steps get zeros, and they all come after their sequence's last real step
        gi = gi_real.new_zeros(T * B, gi_real.shape[1]).index_copy(0, real, gi_real).view(T, B, -1)
        if self.kind == "exact":  # (B, C) | (B, T, C): padded steps leave the distribution as it is
            return self.head(gi, torch.arange(T, device=lengths.device)[:, None] < lengths, steps)
        if self.arithmetic:
            mask = torch.arange(T, device=lengths.device)[:, None] < lengths  # (T, B)
            v = self.head(gi, mask)  # (T, B, 1): the running value; a padded step keeps it
            return v.transpose(0, 1) if steps else v[lengths - 1, torch.arange(B, device=v.device)]
        gru = self.grus[0]
        x = _gru_recurrence(gi, gru.weight_hh_l0, gru.bias_hh_l0)  # (T, B, H)
        if len(self.grus) > 1:
            x = x.transpose(0, 1)  # (B, T, H)
            for g in self.grus[1:]:
                x, _ = g(x)  # (B, T, H): small inputs, nn.GRU's own loop
            x = x.transpose(0, 1)
        if steps:
            return self.head(self.drop(x)).transpose(0, 1)  # (B, T, out_dim)
        last = x[lengths - 1, torch.arange(B, device=x.device)]  # (B, H) at each last real step
        return self.head(self.drop(last))  # (B, out_dim)


def _gru_recurrence(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """nn.GRU's recurrence given the input gates gi (T, B, 3H) = x W_ih^T + b_ih -> outputs (T, B, H).

    Same equations as torch.nn.GRU (gate order r, z, n; h0 = 0):
    r, z = sigmoid(gi_rz + gh_rz); n = tanh(gi_n + r * gh_n); h' = n + z * (h - n).
    Under bf16 autocast the matmuls give bf16 gates; the gate arithmetic and the state stay float32
    (`.float()` is a no-op for float32 tensors, so the float32 path is unchanged bit for bit).
    """
    gi = gi.float()
    T, B, H3 = gi.shape
    H = H3 // 3
    outs = []
    h = None
    for t in range(T):
        gh = b_hh.expand(B, H3) if h is None else F.linear(h, w_hh, b_hh).float()  # h0 = 0: gh = b_hh
        g = gi[t]
        rz = torch.sigmoid(g[:, : 2 * H] + gh[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(torch.addcmul(g[:, 2 * H :], r, gh[:, 2 * H :]))
        h = n - z * n if h is None else torch.lerp(n, h, z)  # (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs)


def build(cfg: RunConfig) -> tuple[CnnGru, Codec]:
    """The run's untrained model and the codec between its outputs and target values."""
    codec = make_codec(cfg.train, cfg.data, cfg.model.head)
    return CnnGru(cfg.model, codec.out_dim, cfg.train.task, getattr(codec, "classes", ())), codec
