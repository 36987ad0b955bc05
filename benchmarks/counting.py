"""What benchmarks/throughput.py counts beside its timings: a model's training FLOPs per sequence, this
machine's GEMM rate and its CPU's name."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from seqsum.config import ModelConfig
from seqsum.stack import conv_layers, feature_size


def train_flops_per_seq(m: ModelConfig, mean_len: float, out_dim: int = 1) -> float:
    """Multiply-adds x 2 of conv, GRU and head per sequence, x3 for forward + backward."""
    conv = sum(2 * x.c_out * x.side_conv**2 * x.c_in * x.kernel**2 for x in conv_layers(m))
    gru, d = 0, feature_size(m)
    for h in m.gru_hidden:
        gru += 2 * 3 * h * (d + h)  # input and hidden projections of the 3 gates
        d = h
    head = 2 * d * out_dim
    return 3.0 * (mean_len * (conv + gru) + head)


def gemm_rate(n: int, seconds: float, dtype: torch.dtype = torch.float32) -> float:
    """GEMM FLOP/s of an n x n x n matmul in `dtype`, repeated for about `seconds`."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return reps * 2.0 * n**3 / dt


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
