"""Training throughput of the structured heads beside the GRU control, length by length.

Every family of the findings-structure study (study.family) on the seed preset's model: the control
(classify: the GRU stack reads CNN features), classify+digits (the GRU reads the 10-way digit bottleneck),
mse+digits+nau / mse+digits+nmu (an arithmetic unit over E[d]) and classify+exact (the exact operator over
the digit distributions), each trained through seqsum.train.train_epoch (the loop train() runs) on batches of
sequences of one length L at a time, L = 1..--max-len; the classify codec and the exact operator carry the
classes achievable up to --max-len, as a model scored on those lengths does. Timed chunks alternate
between the families (rotated every round) in this one process; it prints and writes sequences per second
per family and length (the median over rounds, and each round), and each family's ratio to the control.

    .venv/bin/python benchmarks/heads_throughput.py [--rounds 3 --steps 20 --threads 1 --json OUT]

--profile: where one classify+exact step at the longest length spends its time (the operator's share).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile

from counting import cpu_model
from seqsum.config import preset
from seqsum.data import load_pools, sample
from seqsum.device import autocast_dtype
from seqsum.files import write_json
from seqsum.model import build
from seqsum.optim import make_optimizer
from seqsum.targets import running_target, target
from seqsum.train import train_epoch
from study.family import parse_family

FAMILIES = ("classify", "classify+digits", "mse+digits+nau", "mse+digits+nmu", "classify+exact")
HEAD_OF = {"sum": "nau", "product": "nmu"}  # the arithmetic unit each task's findings compare


def config(task: str, family: str, max_len: int, precision: str):
    values = {**parse_family(family), "train.task": task, "data.eval_max_len": max_len}
    values["train.precision"] = precision
    return preset("seed").replace(values)


class FamilyLoop:
    """One family's model, optimizer and batch loop (train_epoch), on fixed-length batches."""

    def __init__(self, cfg, pools, seed: int):
        torch.manual_seed(seed)
        self.cfg, self.pools = cfg, pools
        self.model, self.codec = build(cfg)
        self.opt = make_optimizer(cfg, self.model.parameters())
        self.amp = autocast_dtype(cfg.train.precision, torch.device("cpu"))

    def batches(self, length: int, n: int, gen: torch.Generator):
        seqs = sample(self.pools, self.pools.train, n, length, length, gen, None, self.cfg.data.digits)
        every = self.cfg.model.outputs == "every_step"
        task = self.cfg.train.task
        values = running_target(task, seqs.digits, seqs.lengths) if every else target(task, seqs.digits, seqs.lengths)
        return seqs, values

    def run(self, seqs, values) -> float:
        self.model.train()
        t = time.perf_counter()
        train_epoch(self.model, self.codec, self.opt, self.pools, seqs, values, self.cfg.train.batch_size, amp=self.amp)
        return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["sum", "product"], default="product")
    p.add_argument("--max-len", type=int, default=8, help="lengths 1..N (the findings score 1..8)")
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per timed chunk (batch 32)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    load_before = list(os.getloadavg())
    families = [f.replace("nau", HEAD_OF[a.task]).replace("nmu", HEAD_OF[a.task]) for f in FAMILIES]
    families = list(dict.fromkeys(families))
    cfgs = {f: config(a.task, f, a.max_len, a.precision) for f in families}
    pools = load_pools(cfgs[families[0]].data)
    paths = {f: FamilyLoop(c, pools, seed=0) for f, c in cfgs.items()}
    n = a.steps * cfgs[families[0]].train.batch_size
    gen = torch.Generator().manual_seed(0)
    rates: dict[str, dict[int, list[float]]] = {f: {L: [] for L in range(1, a.max_len + 1)} for f in families}
    for f, path in paths.items():  # warm-up: one short chunk per family and length
        for L in range(1, a.max_len + 1):
            path.run(*path.batches(L, cfgs[f].train.batch_size * 2, gen))
    for r in range(a.rounds):
        order = families[r % len(families) :] + families[: r % len(families)]
        for L in range(1, a.max_len + 1):
            for f in order:
                seqs, values = paths[f].batches(L, n, gen)
                rates[f][L].append(n / paths[f].run(seqs, values))
        print(f"round {r + 1}/{a.rounds} done", flush=True)
    print(f"\n{a.task}, {a.precision}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}; "
          "sequences/s (median over rounds), ratio to the control:")  # fmt: skip
    print("length " + "".join(f"{f:>22}" for f in families))
    rows = []
    for L in range(1, a.max_len + 1):
        base = statistics.median(rates[families[0]][L])
        cells = []
        for f in families:
            med = statistics.median(rates[f][L])
            cells.append(f"{med:>12.0f} ({med / base:>5.2f}x)")
            rows.append({"family": f, "length": L, "median": med, "rounds": rates[f][L], "ratio": med / base})
        print(f"{L:>6} " + "".join(f"{c:>22}" for c in cells))
    command = "benchmarks/heads_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    machine = {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
    }
    out = {"command": command, "machine": machine, "task": a.task, "precision": a.precision, "steps": a.steps,
           "batch_size": cfgs[families[0]].train.batch_size, "rounds": a.rounds, "families": families,
           "rows": rows}  # fmt: skip
    if a.profile:
        exact = paths["classify+exact"]
        seqs, values = exact.batches(a.max_len, n, gen)
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            exact.run(seqs, values)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
    if a.json:
        write_json(a.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
