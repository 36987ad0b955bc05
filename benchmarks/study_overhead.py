"""How much of a study's wall time is spent outside `train()`?

Runs a small study on an embedded local Ray (one task, FIFO so every trial runs to the end) and
splits its wall time into: time inside `train()` (summed over trials, per concurrent slot), the
trials' own harness work (per-epoch checkpoints + reports, final evaluation + run folder), and the
rest (Ray start, actor start, data transfer, search, collecting results). Also prints the peak RSS
of each trial worker.

    .venv/bin/python benchmarks/study_overhead.py                  # 16 ~1-minute trials, 2 at a time (~10 min)
    .venv/bin/python benchmarks/study_overhead.py --trials 4       # the 4-trial case
    .venv/bin/python benchmarks/study_overhead.py --json docs/data/perf/overhead.json   # also write the numbers
    .venv/bin/python benchmarks/study_overhead.py --smoke          # seconds; the tests run this

Every trial scores the same small fixed evaluation sets (EVAL below), whatever the presets say, so the
final evaluation's share (printed on its own line) measures the harness, not a large test set. The
`OVERHEAD (...)` line is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from seqsum.files import write_json
from study.config import (
    StudyConfig,
    load_preset,
)
from study.runner import launch

EVAL = {"valid_size": 256, "test_size": 512, "pairs_per_cell": 2}  # fixed evaluation sizes of every trial


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--concurrent", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--train-size", type=int, default=16_000, help="sequences per epoch (sets the trial length: ~1 minute)"
    )
    p.add_argument("--small-model", action="store_true", help="a searched small model instead (seconds per trial)")
    p.add_argument("--smoke", action="store_true", help="tiny trials: checks the harness, not the target")
    p.add_argument("--storage", help="keep the study here (default: a temporary folder)")
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        help="train on CUDA with this share of a GPU per trial (benchmarks/gpu.sh)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the numbers (trials, concurrent, shares, overhead)")
    a = p.parse_args(argv)
    if a.smoke:
        a.trials, a.epochs, a.train_size = 2, 2, 512

    d = load_preset("smoke").to_dict()
    d["what"]["tasks"] = ["sum"]
    base = d["what"]["base"]
    base["train"]["epochs"] = a.epochs
    base["data"].update(train_size=a.train_size, **EVAL)
    if not a.small_model and not a.smoke:
        # the original post's model, only the learning rate searched: ~1-minute trials on one CPU thread
        base["model"] = {}  # the seed preset's model (the defaults)
        base["train"]["batch_size"] = 32
        d["what"]["space"] = {"lr": {"low": 0.0005, "high": 0.002, "log": True}}
    elif a.small_model:
        base["model"] = {"conv_channels": [8], "conv_kernels": [5], "gru_hidden": [64]}
    d["how"].update(num_samples=a.trials, max_concurrent=a.concurrent, scheduler="fifo")
    if a.gpus_per_trial:
        d["where"]["gpus_per_trial"] = a.gpus_per_trial
        base["train"]["device"] = "cuda"

    with tempfile.TemporaryDirectory() as tmp:
        d["where"].update(storage=a.storage or tmp, name=f"overhead-{int(time.time())}")
        cfg = StudyConfig.from_dict(d)
        t0 = time.perf_counter()
        study_dir = launch(cfg)
        wall = time.perf_counter() - t0
        trials = [json.loads(q.read_text()) for q in (study_dir / "trials" / "sum").glob("*/params.json")]
        state = json.loads((study_dir / "state.json").read_text())

    slots = a.concurrent
    train_s = sum(t["train_seconds"] for t in trials)
    ckpt_s = sum(t.get("checkpoint_seconds", 0.0) for t in trials)
    eval_s = sum(t.get("eval_seconds", 0.0) for t in trials)
    trial_wall = [t["finished_at"] - t["started_at"] for t in trials]
    slot_time = wall * slots
    shares = {
        "inside train()": train_s / slot_time,
        "checkpoints + reports": ckpt_s / slot_time,
        "final evaluation + run folder": eval_s / slot_time,
        "everything else (Ray/actor start, transfer, search, collect)": (slot_time - train_s - ckpt_s - eval_s)
        / slot_time,
    }
    overhead = 1 - train_s / slot_time
    seq_per_s = [a.train_size * a.epochs / t["train_seconds"] for t in trials]  # training + validation passes
    rows = [
        (
            "study wall time",
            f"{wall:.1f} s ({len(trials)} trials, {slots} at once, mean trial {sum(trial_wall) / len(trials):.1f} s)",
        ),
        ("tuner wall time (Ray running)", f"{state['tasks']['sum']['wall_seconds']:.1f} s"),
        *((k, f"{v:6.1%}" + (" of slot time" if k == "inside train()" else "")) for k, v in shares.items()),
        ("sequences/s per trial in train()", ", ".join(f"{x:.0f}" for x in seq_per_s)),
        ("peak RSS per trial worker", ", ".join(f"{t['peak_rss_mb']:.0f} MB" for t in trials)),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    tuner_slot_time = state["tasks"]["sum"]["wall_seconds"] * slots
    print(f"{'overhead once Ray is up (tuner wall time)':<{w}}  {1 - train_s / tuner_slot_time:.1%}")
    sizes = ", ".join(f"{k} {v}" for k, v in EVAL.items())
    print(f"{'FINAL EVALUATION share (' + sizes + ')':<{w}}  {shares['final evaluation + run folder']:.1%}")
    if a.json:
        command = "benchmarks/study_overhead.py" + "".join(f" {x}" for x in (argv or sys.argv[1:]))
        write_json(
            a.json,
            {
                "command": command,
                "trials": len(trials),
                "concurrent": slots,
                "shares": shares,
                "overhead": overhead,
                "overhead_once_ray_is_up": 1 - train_s / tuner_slot_time,
                "final_evaluation_sizes": EVAL,
                "seq_per_s": seq_per_s,
                "load": os.getloadavg(),
            },
        )
    print(f"{'OVERHEAD (share outside train())':<{w}}  {overhead:.1%}  (target <= 5% for ~1-minute trials)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
