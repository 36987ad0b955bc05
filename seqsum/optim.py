"""The optimizers a run trains with (`train.optimizer`): Keras' RMSprop as one fused pass on the CPU, or Adam."""

from __future__ import annotations

from typing import Any

import torch

from .config import RunConfig


class RMSprop(torch.optim.RMSprop):
    """torch.optim.RMSprop (same arguments, state and state_dict) whose plain update of float32 CPU
    parameters runs as one fused pass instead of five memory-bound ones.

    The plain RMSprop update (no momentum, not centered, no weight decay)
        v = alpha v + (1 - alpha) g^2;  p -= lr g / (sqrt(v) + eps)
    is Adam's update with beta1 = 0 (m = g), beta2 = alpha and no bias correction; torch's fused
    CPU Adam kernel computes it in one pass when given the gradient as its first moment buffer
    (m = 0 m + 1 g = g, so the gradient is left as it is) and a step count so large that
    beta1^t = beta2^t = 0. `v` is bit-identical to torch's RMSprop; the parameter step may differ
    in the last bit (the division and the lr product are rounded in another order). Anything else
    (momentum, centered, CUDA, a closure, another dtype) runs torch's own RMSprop.step.
    """

    _fused = hasattr(torch, "_fused_adam_")  # torch's own fused Adam kernel (CPU since torch 2.4)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None or not self._fused or not all(map(_plain_rmsprop, self.param_groups)):
            return super().step(closure)
        for group in self.param_groups:
            params, grads, square_avgs, steps = [], [], [], []
            self._init_group(group, params, grads, square_avgs, [], [], steps)  # torch's own state init
            if not params:
                continue
            no_correction = [torch.tensor(2.0**40)] * len(params)  # 0.9^(2^40) == 0 == 0^(2^40)
            torch._fused_adam_(
                params,
                grads,
                grads,
                square_avgs,
                [],
                no_correction,
                lr=group["lr"],
                beta1=0.0,
                beta2=group["alpha"],
                weight_decay=0.0,
                eps=group["eps"],
                amsgrad=False,
                maximize=False,
            )
            torch._foreach_add_(steps, 1)
        return None


def _plain_rmsprop(group: dict[str, Any]) -> bool:
    return (
        group["momentum"] == 0
        and not group["centered"]
        and group["weight_decay"] == 0
        and not group["maximize"]
        and not group["differentiable"]
        and not group["capturable"]
        and not isinstance(group["lr"], torch.Tensor)
        and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in group["params"])
    )


def make_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    if cfg.train.optimizer == "rmsprop":  # Keras RMSprop defaults
        return RMSprop(params, lr=cfg.train.lr, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(params, lr=cfg.train.lr)
