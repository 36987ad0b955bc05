"""The plain PyTorch reference that benchmarks/throughput.py times beside seqsum's training path: python lists
of images -> torch.stack, each sequence zero-padded to the batch's longest, CNN on every padded image, nn.GRU
over every padded step, the last real step read."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqsum.config import ModelConfig
from seqsum.model import CnnGru


class PaddedCnnGru(CnnGru):
    """The same network (CnnGru's modules, so the same seed gives the same initial weights, with
    torch's nn.Tanh) run the plain way, over zero-padded float batches."""

    def __init__(self, cfg: ModelConfig, out_dim: int = 1):
        super().__init__(cfg, out_dim)
        plain_tanh(self)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, 28, 28) float in [0, 1], zero-padded; lengths (B,) -> (B, out_dim)."""
        B, T = x.shape[:2]
        h = self.cnn(x.reshape(B * T, 1, 28, 28)).reshape(B, T, -1)
        for gru in self.grus:
            h, _ = gru(h)
        last = h[torch.arange(B), lengths - 1]
        return self.head(self.drop(last))


def host_batch(images: list[torch.Tensor], idx: list[list[int]], lengths: list[int]):
    """Assemble one padded batch on the host from python lists, as a first implementation does."""
    T = max(lengths)
    rows = []
    for row, n in zip(idx, lengths):
        x = torch.stack([images[j] for j in row[:n]]).float() / 255.0  # (n, 28, 28)
        if n < T:
            x = torch.cat([x, torch.zeros(T - n, 28, 28)])
        rows.append(x)
    return torch.stack(rows), torch.tensor(lengths)


class Reference:
    def __init__(self, cfg, pools, seed: int):
        torch.manual_seed(seed)
        self.model = PaddedCnnGru(cfg.model)
        self.opt = torch.optim.RMSprop(self.model.parameters(), lr=cfg.train.lr, alpha=0.9, eps=1e-7)
        self.images = list(pools.images)  # one (28, 28) uint8 tensor per digit
        self.batch = cfg.train.batch_size

    def train(self, idx: list[list[int]], lengths: list[int], values: list[float]) -> None:
        self.model.train()
        for i in range(0, len(lengths), self.batch):
            x, ln = host_batch(self.images, idx[i : i + self.batch], lengths[i : i + self.batch])
            y = torch.tensor(values[i : i + self.batch], dtype=torch.float32)
            loss = F.mse_loss(self.model(x, ln)[:, 0], y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    @torch.no_grad()
    def predict(self, idx: list[list[int]], lengths: list[int], batch: int = 1024) -> torch.Tensor:
        self.model.eval()
        out = [
            self.model(*host_batch(self.images, idx[i : i + batch], lengths[i : i + batch]))[:, 0]
            for i in range(0, len(lengths), batch)
        ]
        return torch.cat(out).double()


def plain_tanh(model: CnnGru) -> CnnGru:
    """Swap seqsum's Tanh (2 sigmoid(2x) - 1 on CPU) for torch's nn.Tanh."""
    model.cnn = nn.Sequential(*(nn.Tanh() if isinstance(m, nn.Tanh) else m for m in model.cnn))
    return model
