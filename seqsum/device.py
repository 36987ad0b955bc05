"""Where and in which precision a run computes: `train.device` resolved, and bf16 autocast where it is fast."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available; allowed here: auto, cpu")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """train.precision -> the autocast dtype of the training forward (None: plain float32).

    `auto` is bf16 where the device runs bf16 matmuls fast: a CUDA device with bf16, or a CPU with
    AMX or AVX-512 BF16 (torch's CPU capability AMX / AVX512 and the amx_bf16 / avx512_bf16 flag)."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and bf16_fast(device):
        return torch.bfloat16
    return None


def bf16_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu" or torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
