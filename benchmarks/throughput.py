"""Training throughput on CPU: seqsum's training path vs a plain padded PyTorch reference.

Both train the seed preset's model (Conv 8@4x4 tanh, Conv 16@3x3 tanh, flatten, GRU 200 -> GRU 100,
dropout 0.2, dense 1; MSE; RMSprop lr 1e-3; batch 32; 1..4 digits) from the same initial weights on
the same sequences, with the same dropout masks, for the same number of steps, in timed chunks that
alternate A/B (and B/A) in this one process. It prints sequences per second (median over the
repeats), the training FLOPs per sequence (conv + GRU + head, x3 for forward + backward, at the
mean length) and the share of the float32 GEMM rate measured here that each path reaches, the
validation exact of both after the same steps, and the ratios last.

  seqsum     seqsum.train.train_epoch: the loop that seqsum.train.train() runs every epoch
             (batches gathered on the device, CNN and the first GRU layer's input projection on the
             real steps only, its own GRU recurrence), in the default precision (train.precision auto:
             bf16 autocast on a CPU with fast bf16 matmuls, else fp32).
  seqsum fp32  the same in float32, timed beside it where the default resolves to bf16.
  reference  what a first implementation does: python lists of images -> torch.stack, zero-pad
             each sequence to the batch's longest, CNN on every padded image, nn.GRU over every
             padded step, read the last real step.

Run in the project's venv:  .venv/bin/python benchmarks/throughput.py [--steps 30 --repeats 5]
(--smoke: ~15 s, used by tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from counting import cpu_model, gemm_rate, train_flops_per_seq
from padded_reference import Reference, plain_tanh
from seqsum.config import preset
from seqsum.data import Sequences, eval_sets, load_pools, sample
from seqsum.device import autocast_dtype
from seqsum.evaluate import predict, value_metrics
from seqsum.files import write_json
from seqsum.model import CnnGru, build
from seqsum.optim import make_optimizer
from seqsum.targets import target
from seqsum.train import train_epoch


# --- seqsum's path ---------------------------------------------------------------------------------
class Seqsum:
    def __init__(
        self,
        cfg,
        pools,
        seed: int,
        model_cls=None,
        plain_rmsprop: bool = False,
        torch_tanh: bool = False,
        amp: torch.dtype | None = None,
    ):
        torch.manual_seed(seed)  # as seqsum.train.train() does before building
        self.model, self.codec = build(cfg)
        if model_cls is not None:  # an earlier variant of the model, same parameters
            state = self.model.state_dict()
            self.model = model_cls(cfg.model, self.codec.out_dim)
            self.model.load_state_dict(state)
        if torch_tanh:
            plain_tanh(self.model)
        if plain_rmsprop:
            self.opt = torch.optim.RMSprop(self.model.parameters(), lr=cfg.train.lr, alpha=0.9, eps=1e-7)
        else:
            self.opt = make_optimizer(cfg, self.model.parameters())
        self.pools, self.batch, self.amp = pools, cfg.train.batch_size, amp

    def train(self, seqs: Sequences, values: torch.Tensor) -> None:
        self.model.train()
        train_epoch(self.model, self.codec, self.opt, self.pools, seqs, values, self.batch, amp=self.amp)

    def predict(self, seqs: Sequences) -> torch.Tensor:
        return predict(self.model, self.codec, self.pools, seqs)


class PaddedInputCnnGru(CnnGru):
    """--variants only: CnnGru's forward as first committed (CNN on the real images, but their
    features scattered into a zero-padded (B, T, F) tensor and nn.GRU run over every padded step)."""

    def forward(self, images: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T = images.shape[:2]
        mask = torch.arange(T, device=images.device) < lengths[:, None]
        f = self.cnn(images[mask].unsqueeze(1).float().div_(255.0))
        x = f.new_zeros(B, T, self.feat_dim)
        x[mask] = f
        for gru in self.grus:
            x, _ = gru(x)
        return self.head(self.drop(x[torch.arange(B, device=x.device), lengths - 1]))


def profile(name: str, paths: dict, chunk) -> list[dict]:
    """torch.profiler over one more chunk of `name`'s steps (after the timing and scoring); returns the top
    ops as rows (op, share of self CPU time, calls)."""
    if name not in paths:
        raise SystemExit(f"--profile: no path {name!r}; one of: {', '.join(paths)}")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        chunk()
    print(f"\nprofile of {name!r}, one chunk (self CPU time, top ops):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops) or 1.0
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in ops[:14]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="training steps per timed chunk (batch 32)")
    p.add_argument(
        "--repeats", type=int, default=5, help="rounds: timed chunks per path, alternated A/B then B/A (>= 5)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--valid", type=int, default=2000, help="validation sequences scored at the end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--variants",
        action="store_true",
        help="also time seqsum without each of its optimizations (-sigmoid tanh, -fused rmsprop, -real rows) "
        "and without all three (first commit)",
    )
    p.add_argument(
        "--profile", metavar="PATH", help="also print torch.profiler's top ops for one chunk of PATH's steps"
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="where the default precision resolves to fp32 (no fast bf16 here), also time seqsum in bf16 "
        "(autocast) and measure the bf16 GEMM rate",
    )
    p.add_argument("--smoke", action="store_true", help="a ~15 s run (6 steps x 3 repeats, 256 valid)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers (for docs/data/perf/, read by results.py)")
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.repeats, a.valid = 6, 3, 256
    if a.threads:
        torch.set_num_threads(a.threads)

    cfg = preset("seed").replace({"train.device": "cpu", "data.valid_size": a.valid, "train.seed": a.seed})
    d, bs = cfg.data, cfg.train.batch_size
    pools = load_pools(cfg.data)
    warm = 2
    n_steps = warm + a.steps * a.repeats
    gen = torch.Generator().manual_seed(a.seed)
    seqs = sample(pools, pools.train, n_steps * bs, d.min_len, d.max_len, gen)
    values = target(cfg.train.task, seqs.digits, seqs.lengths)
    idx_l, len_l, val_l = seqs.idx.tolist(), seqs.lengths.tolist(), values.tolist()
    mean_len = sum(len_l) / len(len_l)
    flops = train_flops_per_seq(cfg.model, mean_len)

    # "seqsum" is what train() runs by default here: train.precision auto, bf16 autocast where the CPU has
    # fast bf16 matmuls (seqsum.device.bf16_fast); the other precision is timed beside it as its own path
    amp = autocast_dtype(cfg.train.precision, torch.device("cpu"))
    precision = {"seqsum": "bf16" if amp is not None else "fp32"}
    paths: dict[str, object] = {"seqsum": Seqsum(cfg, pools, a.seed, amp=amp)}
    if amp is not None:
        paths["seqsum fp32"], precision["seqsum fp32"] = Seqsum(cfg, pools, a.seed), "fp32"
    elif a.bf16:
        paths["seqsum bf16"], precision["seqsum bf16"] = Seqsum(cfg, pools, a.seed, amp=torch.bfloat16), "bf16"
    if a.variants:
        paths["-sigmoid tanh"] = Seqsum(cfg, pools, a.seed, torch_tanh=True, amp=amp)
        paths["-fused rmsprop"] = Seqsum(cfg, pools, a.seed, plain_rmsprop=True, amp=amp)
        paths["-real rows"] = Seqsum(cfg, pools, a.seed, model_cls=PaddedInputCnnGru, amp=amp)
        paths["first commit"] = Seqsum(
            cfg, pools, a.seed, model_cls=PaddedInputCnnGru, plain_rmsprop=True, torch_tanh=True, amp=amp
        )
    paths["reference"] = Reference(cfg, pools, a.seed)
    bf16_gemm = "bf16" in precision.values()
    params = [list(p.model.parameters()) for p in paths.values()]
    same_init = all(torch.equal(x, y) for ps in params[1:] for x, y in zip(params[0], ps))
    rng = {name: torch.get_rng_state() for name in paths}  # the same dropout masks for every path

    faults: dict[str, list[float]] = {name: [] for name in paths}

    def run(name: str, lo: int, hi: int) -> float:
        torch.set_rng_state(rng[name])
        s = slice(lo * bs, hi * bs)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        if isinstance(paths[name], Reference):
            paths[name].train(idx_l[s], len_l[s], val_l[s])
        else:
            paths[name].train(seqs[s], values[s])
        dt = time.perf_counter() - t0
        faults[name].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / (hi - lo))
        rng[name] = torch.get_rng_state()
        return (hi - lo) * bs / dt

    gemm_n, gemm_s = (512, 0.2) if a.smoke else (1024, 0.5)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    gemm: list[float] = []
    gemm16: list[float] = []
    t_start = time.perf_counter()
    for name in paths:  # warm-up steps (the same data for every path), not timed
        run(name, 0, warm)
    for r in range(a.repeats):
        gemm.append(gemm_rate(gemm_n, gemm_s))
        if bf16_gemm:
            gemm16.append(gemm_rate(gemm_n, gemm_s, torch.bfloat16))
        lo, hi = warm + r * a.steps, warm + (r + 1) * a.steps
        for name in list(paths) if r % 2 == 0 else list(paths)[::-1]:  # A/B, then B/A
            rates[name].append(run(name, lo, hi))
    gemm.append(gemm_rate(gemm_n, gemm_s))
    bench_s = time.perf_counter() - t_start

    sets = eval_sets(pools, cfg.data)
    valid_t = target(cfg.train.task, sets.valid.digits, sets.valid.lengths)
    exact = {}
    for name, path in paths.items():
        if isinstance(path, Reference):
            pred = path.predict(sets.valid.idx.tolist(), sets.valid.lengths.tolist())
        else:
            pred = path.predict(sets.valid)
        exact[name] = value_metrics(pred, valid_t)["exact"]

    peak = statistics.median(gemm)
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}); torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"model: seed preset, batch {bs}, lengths {d.min_len}..{d.max_len} (mean {mean_len:.3f}); "
        f"training FLOPs/sequence {flops / 1e6:.1f} M (conv + GRU + head, x3)"
    )
    print(
        f"float32 GEMM {gemm_n}^3: {peak / 1e9:.1f} GFLOP/s (median of {len(gemm)}; "
        f"range {min(gemm) / 1e9:.1f}..{max(gemm) / 1e9:.1f})"
    )
    if gemm16:
        print(
            f"bfloat16 GEMM {gemm_n}^3: {statistics.median(gemm16) / 1e9:.1f} GFLOP/s (median of {len(gemm16)}; "
            f"range {min(gemm16) / 1e9:.1f}..{max(gemm16) / 1e9:.1f}); bf16 paths' % GEMM is still of float32's"
        )
    print(
        f"steps: {warm} warm-up + {a.repeats} x {a.steps} timed per path, same sequences and init "
        f"(identical initial weights: {same_init}); {bench_s:.1f} s"
    )
    print()
    print(
        f"{'path':<14} {'precision':>9} {'seq/s':>8} {'range':>13} {'ms/step':>8} {'GFLOP/s':>8} {'% GEMM':>7} "
        f"{'best %':>7} {'faults/step':>11} {'valid exact':>12}"
    )
    for name, rs in rates.items():
        med = statistics.median(rs)
        print(
            f"{name:<14} {precision.get(name, 'fp32'):>9} {med:8.1f} {min(rs):6.1f}..{max(rs):<6.1f} "
            f"{1e3 * bs / med:8.1f} "
            f"{med * flops / 1e9:8.2f} {100 * med * flops / peak:6.1f}% {100 * max(rs) * flops / max(gemm):6.1f}% "
            f"{statistics.median(faults[name]):11.0f} {exact[name]:12.4f}"
        )
    print(
        "(% GEMM: median seq/s x FLOPs/sequence over the median GEMM rate; best %: fastest chunk over the "
        "fastest GEMM; faults/step: minor page faults)"
    )
    top = profile(a.profile, paths, lambda: run(a.profile, warm, warm + a.steps)) if a.profile else []
    print()
    ratios = {}
    pairs = [("seqsum", name) for name in list(paths)[1:]]  # seqsum/reference last
    pairs += [(name, "reference") for name in ("seqsum fp32", "seqsum bf16") if name in paths]
    for num, name in pairs:
        ratio = statistics.median(rates[num]) / statistics.median(rates[name])
        rounds = [x / y for x, y in zip(rates[num], rates[name])]  # one ratio per alternated round
        ratios[f"{num}/{name}"] = {
            "min": min(rounds), "median": statistics.median(rounds), "max": max(rounds), "rounds": rounds
        }  # fmt: skip
        print(
            f"ratio {num}/{name}: min {min(rounds):.2f}x median {statistics.median(rounds):.2f}x "
            f"max {max(rounds):.2f}x over {len(rounds)} rounds (ratio of medians {ratio:.2f}x); "
            f"valid exact difference {exact[num] - exact[name]:+.4f} after {n_steps} steps"
        )
    if a.json:
        write_json(Path(a.json), {
            "command": "benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {"cpus": os.cpu_count(), "cpu": cpu_model(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "load": os.getloadavg()},
            "flops_per_seq": flops, "gemm_fp32": peak, "gemm_bf16": statistics.median(gemm16) if gemm16 else None,
            "steps": n_steps, "paths": {n: {"precision": precision.get(n, "fp32"), "seq_s": statistics.median(rs),
                                            "min": min(rs), "max": max(rs),
                                            "share_of_fp32_gemm": statistics.median(rs) * flops / peak,
                                            "valid_exact": exact[n]} for n, rs in rates.items()},
            "ratios": ratios, "profile": {"path": a.profile, "top_ops": top} if a.profile else None,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
