"""The digit bottleneck (`model.bottleneck: digits`): what it reads, and how well it reads digits.

The CNN ends in Linear(F, 10) -> softmax per image; the model's readers see only those 10 probabilities
(the dense GRU reads them, NAU/NMU read E[d] through `ExpectedDigit`, the exact head their logs). Nothing
supervises the 10 slots with digit labels: training sees images, lengths and results only. So which slot
holds which digit is learned from the results, and is measured here, on the pool images (each once):

- exact and nau/nmu give slot k the value k, so slot k *is* digit k (identity reading);
- the dense GRU may use the slots in any order: its reading is the slot-to-digit matching that maximises
  the validation pool's correct reads (scipy's linear_sum_assignment on the validation confusion), found on
  validation and applied unchanged to the test pool.

`digit_accuracy` is the per-epoch `valid/digit_acc`; `digit_report` gives `valid/digit_acc`,
`test/digit_acc` and the test pool's confusion table (confusion.csv: true digit x read digit, counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn


class ExpectedDigit(nn.Module):
    """(..., 10) digit probabilities -> (..., 1) expected digit E[d] = sum_k k p_k (no parameters)."""

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return (p * torch.arange(10, device=p.device, dtype=p.dtype)).sum(-1, keepdim=True)


@torch.no_grad()
def read_slots(model, pools, which: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    """(n,) int64 on the CPU: the bottleneck's most probable slot for each pool image `which` (indices)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(which), batch):
        idx = which[i : i + batch].to(pools.images.device)
        out.append(model.digit_logits(pools.images.index_select(0, idx)).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def confusion(labels: torch.Tensor, read: torch.Tensor) -> np.ndarray:
    """(10, 10) int64 counts: row the true digit, column the digit (or slot) read."""
    return np.bincount(labels.numpy() * 10 + read.numpy(), minlength=100).reshape(10, 10)


def slot_matching(conf: np.ndarray) -> np.ndarray:
    """(10,) slot -> digit: the one-to-one matching with the most correct reads in `conf` (true x slot)."""
    from scipy.optimize import linear_sum_assignment  # scipy.optimize takes ~1 s to import; only slot matching needs it

    digits, slots = linear_sum_assignment(conf, maximize=True)
    matching = np.empty(10, dtype=np.int64)
    matching[slots] = digits
    return matching


def _reading(model, pools) -> tuple[np.ndarray, np.ndarray]:
    """(slot -> digit matching, validation confusion under it)."""
    valid = pools.valid.cpu()
    slots = read_slots(model, pools, valid)
    labels = pools.labels.cpu()[valid]
    matching = slot_matching(confusion(labels, slots)) if model.kind == "dense" else np.arange(10)
    return matching, confusion(labels, torch.from_numpy(matching)[slots])


def _accuracy(conf: np.ndarray) -> float:
    return float(np.trace(conf) / max(conf.sum(), 1))


def digit_accuracy(model, pools) -> float:
    """valid/digit_acc: share of validation-pool images whose read digit is their label."""
    return _accuracy(_reading(model, pools)[1])


def digit_report(model, pools) -> tuple[dict[str, float], pd.DataFrame]:
    """({valid/digit_acc, test/digit_acc}, the test pool's confusion table: `digit`, `read_0`..`read_9`)."""
    matching, valid_conf = _reading(model, pools)
    test = pools.test.cpu()
    read = torch.from_numpy(matching)[read_slots(model, pools, test)]
    conf = confusion(pools.labels.cpu()[test], read)
    table = pd.DataFrame(conf, columns=[f"read_{k}" for k in range(10)])
    table.insert(0, "digit", np.arange(10))
    return {"valid/digit_acc": _accuracy(valid_conf), "test/digit_acc": _accuracy(conf)}, table
