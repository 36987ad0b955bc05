"""Is learning the same in bf16 (train.precision bf16: autocast) as in fp32?

Trains the seed preset (CPU) for each task, precision and seed, alternating fp32 / bf16 per seed so
both see the same machine load, and prints final valid exact and test exact per run, then per task and
precision the mean over seeds with its bootstrap interval (seqsum.stats.seed_interval), whether the
fp32 and bf16 intervals overlap, and the median training time ratio fp32 / bf16 (the speed-up).

    .venv/bin/python benchmarks/precision.py                      # 3 seeds x sum, product x 3 epochs (long)
    .venv/bin/python benchmarks/precision.py --seeds 5 --epochs 5
    .venv/bin/python benchmarks/precision.py --smoke              # tiny: a check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from seqsum.choices import TASKS
from seqsum.config import preset
from seqsum.data import load_pools
from seqsum.evaluate import evaluate
from seqsum.files import write_json
from seqsum.stats import seed_interval
from seqsum.train import train

PRECISIONS = ("fp32", "bf16")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-size", type=int, default=None, help="sequences per epoch (default: the preset's)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--small-eval", action="store_true", help="valid 500, test 1000, 2 pairs per cell (a quick look)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers (for docs/data/perf/)")
    p.add_argument("--smoke", action="store_true", help="1 epoch of 256 sequences, 2 seeds, small eval sets")
    a = p.parse_args(argv)
    over = {"train.device": "cpu", "train.epochs": a.epochs}
    if a.train_size:
        over["data.train_size"] = a.train_size
    if a.smoke:
        a.seeds, a.small_eval = 2, True
        over.update({"train.epochs": 1, "data.train_size": 256})
    if a.small_eval:
        over.update({"data.valid_size": 500, "data.test_size": 1000, "data.pairs_per_cell": 2})
    base = preset("seed").replace(over)
    pools = load_pools(base.data)
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    print(f"{'task':<8} {'precision':<9} {'seed':>4} {'valid exact':>11} {'test exact':>10} {'train s':>8}")
    for task in a.tasks:
        for seed in range(a.seeds):
            order = PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]
            for prec in order:
                cfg = base.replace({"train.task": task, "train.seed": seed, "train.precision": prec})
                res = train(cfg, pools)
                test = evaluate(res.model, res.codec, res.pools, res.sets, task).metrics["test/exact"]
                valid = res.history[-1]["valid/exact"]
                runs.setdefault((task, prec), []).append((valid, test, res.train_seconds))
                print(f"{task:<8} {prec:<9} {seed:>4} {valid:11.4f} {test:10.4f} {res.train_seconds:8.1f}", flush=True)
    print()
    summary = {}
    for task in a.tasks:
        iv = {}
        for prec in PRECISIONS:
            r = runs[(task, prec)]
            iv[prec] = {k: seed_interval([x[i] for x in r]) for i, k in enumerate(("valid", "test"))}
            print(
                f"{task} {prec}: "
                + "  ".join(f"{k} exact {m:.4f} [{lo:.4f}, {hi:.4f}]" for k, (m, lo, hi) in iv[prec].items())
            )
        overlap = {k: iv["fp32"][k][1] <= iv["bf16"][k][2] and iv["bf16"][k][1] <= iv["fp32"][k][2] for k in iv["fp32"]}
        speed = statistics.median(f[2] / b[2] for f, b in zip(runs[(task, "fp32")], runs[(task, "bf16")]))
        print(
            f"{task}: intervals overlap: valid {overlap['valid']}, test {overlap['test']}; "
            f"training time fp32/bf16 {speed:.2f}x ({a.seeds} seeds, {base.train.epochs} epochs)"
        )
        summary[task] = {"intervals": iv, "overlap": overlap, "speedup": speed,
                         "runs": {prec: runs[(task, prec)] for prec in PRECISIONS}}  # fmt: skip
    if a.json:
        write_json(Path(a.json), {
            "command": "benchmarks/precision.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seeds": list(range(a.seeds)), "epochs": base.train.epochs, "train_size": base.data.train_size,
            "tasks": summary,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
