"""CnnGru: a CNN on every digit image, a GRU stack over the sequence, dropout, a head.

Only the real (unpadded) images go through the CNN, and the prediction is read from the last GRU
layer at each sequence's last real step, so padding can never change a prediction.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

_ACT = {"tanh": nn.Tanh, "relu": nn.ReLU}


class CnnGru(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, side = 1, 28
        for c, k in zip(cfg.conv_channels, cfg.conv_kernels):
            layers += [nn.Conv2d(c_in, c, k), _ACT[cfg.activation]()]
            c_in, side = c, side - k + 1
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        self.feat_dim = c_in * side * side
        grus, d_in = [], self.feat_dim
        for h in cfg.gru_hidden:
            grus.append(nn.GRU(d_in, h, batch_first=True))
            d_in = h
        self.grus = nn.ModuleList(grus)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d_in, out_dim)

    @property
    def first_conv(self) -> nn.Conv2d | None:
        return next((m for m in self.cnn if isinstance(m, nn.Conv2d)), None)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """images (B, T, 28, 28) uint8 or float in [0, 255], lengths (B,) -> (B, out_dim)."""
        B, T = images.shape[:2]
        mask = torch.arange(T, device=images.device) < lengths[:, None]  # (B, T)
        real = images[mask].unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28), N = lengths.sum()
        f = self.cnn(real)  # (N, F)
        x = f.new_zeros(B, T, self.feat_dim)
        x[mask] = f  # (B, T, F); padded steps are zeros and come after the last real step
        for gru in self.grus:
            x, _ = gru(x)  # (B, T, H)
        last = x[torch.arange(B, device=x.device), lengths - 1]  # (B, H)
        return self.head(self.drop(last))  # (B, out_dim)
