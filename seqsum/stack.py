"""The conv stack's shapes: the one place the image side after every conv layer is computed.

`conv_layers(model_config)` lists each layer (channels in and out, kernel, padding, max-pool size and the
image side after the conv and after its pool) for a 28x28 digit; the model (seqsum.model), the memory
estimate (seqsum.memory) and the config checks (seqsum.config) all read their shapes from it.

A layer is Conv2d(c_in, c_out, kernel, padding) -> activation -> MaxPool2d(pool) (pool 1: no pooling):
side after the conv = side + 2 padding - kernel + 1, after the pool = that // pool (floor, as torch).
`model.conv_padding` and `model.conv_pool` are per-layer lists; `[]` means 0 padding / no pooling everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGE_SIDE = 28  # MNIST digits are 28x28


@dataclass(frozen=True)
class ConvLayer:
    c_in: int
    c_out: int
    kernel: int
    padding: int
    pool: int
    side_conv: int  # image side after the convolution
    side_out: int  # after the max-pool (= side_conv without one)


def per_layer(values: tuple[int, ...], n: int, default: int) -> tuple[int, ...]:
    """A per-layer list as given, or `default` for every layer when it is empty."""
    return tuple(values) if values else (default,) * n


def conv_layers(m: Any) -> list[ConvLayer]:
    """The layers of ModelConfig `m`'s conv stack; ValueError (one line) when the lists do not fit together
    or a layer shrinks the image to nothing. Assumes the entries are integers (the config checks that)."""
    channels, kernels = tuple(m.conv_channels), tuple(m.conv_kernels)
    n = len(channels)
    if len(kernels) != n:
        raise ValueError(f"conv_channels {list(channels)} and conv_kernels {list(kernels)} differ in length")
    for name, values in (("conv_padding", m.conv_padding), ("conv_pool", m.conv_pool)):
        if values and len(values) != n:
            raise ValueError(
                f"model.{name} {list(values)} needs one entry per conv layer ({n}: conv_channels "
                f"{list(channels)}) or [] for none"
            )
    layers, c_in, side = [], 1, IMAGE_SIDE
    for c, k, pad, pool in zip(channels, kernels, per_layer(m.conv_padding, n, 0), per_layer(m.conv_pool, n, 1)):
        if pad >= k:
            raise ValueError(
                f"model.conv_padding {pad} at layer {len(layers) + 1} pads more than its kernel {k} can see; "
                f"allowed: 0..{k - 1}"
            )
        conv = side + 2 * pad - k + 1
        out = conv // pool if conv >= 1 else 0
        if out < 1:
            raise ValueError(
                f"the conv stack (kernels {list(kernels)}, padding {list(m.conv_padding)}, pool {list(m.conv_pool)}) "
                f"shrinks a 28x28 image to nothing at layer {len(layers) + 1} (side {side} -> {max(conv, 0)}"
                f"{f' -> {out} after pool {pool}' if pool > 1 and conv >= 1 else ''})"
            )
        layers.append(ConvLayer(c_in, c, k, pad, pool, conv, out))
        c_in, side = c, out
    return layers


def feature_size(m: Any) -> int:
    """CNN features per image: channels x side x side after the last layer (784 without conv layers)."""
    layers = conv_layers(m)
    if not layers:
        return IMAGE_SIDE * IMAGE_SIDE
    last = layers[-1]
    return last.c_out * last.side_out * last.side_out
