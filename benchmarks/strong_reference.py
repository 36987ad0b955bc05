"""Measure the two references on the same test sequences: digit accuracy on the test pool, exact overall and
per magnitude bin for sum and product, each with its Wilson 95% interval.

    .venv/bin/python benchmarks/strong_reference.py                       # default data config, 20,000 sequences
    .venv/bin/python benchmarks/strong_reference.py --test-size 50000 --json out.json

The strong reference comes from (or goes to) the per-machine cache (analysis.strong_reference.user_cache);
the run-stack reference uses the default (seed) conv stack and is cached beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis.baselines import NAMES, score, sequence_scores
from analysis.reference import get_reference
from analysis.strong_reference import get_strong, user_cache
from analysis.tables import magnitude_bin
from seqsum.config import RunConfig
from seqsum.data import load_pools
from seqsum.files import write_json
from seqsum.stats import wilson


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test-size", type=int, default=20_000, help="test sequences per task (lengths 1..max_len)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    a = p.parse_args(argv)
    if a.test_size < 1:
        p.error(f"--test-size must be >= 1, got {a.test_size}")
    cfg = RunConfig().replace({"data.test_size": a.test_size})
    pools = load_pools(cfg.data)
    strong = get_strong(cfg.data, pools)
    run_stack = get_reference(cfg.data, cfg.model, pools, user_cache())
    out: dict = {"test_size": a.test_size, "strong": strong.info, "digits": {}}
    for name, r in (("reference", run_stack), ("strong_reference", strong)):
        k, n = int((r.test_labels == r.test_predictions).sum()), len(r.test_labels)
        lo, hi = wilson(k, n)
        out["digits"][name] = {"accuracy": k / n, "ci_low": float(lo), "ci_high": float(hi), "n": n}
        print(f"{NAMES[name]}: digit accuracy {k / n:.4f} [{float(lo):.4f}, {float(hi):.4f}] on {n} test-pool images")
    for task in ("sum", "product"):
        seqs = sequence_scores(pools, cfg.data, task, run_stack, strong)
        seqs = seqs[seqs.predictor.isin(list(NAMES)[2:])]
        seqs = seqs.assign(bin=magnitude_bin(task, seqs.target))
        rows = []
        for scope in ("all", "bin"):
            t = score(seqs.assign(all="all"), ["predictor", scope]).rename(columns={scope: "value"})
            rows += t.assign(scope=scope, value=t.value.astype(str)).to_dict("records")
        out[task] = rows
        for r in rows:
            print(f"{task} {NAMES[str(r['predictor'])]} {r['value']}: exact {r['exact']:.3f} "
                  f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] n={r['n']}")  # fmt: skip
    if a.json:
        write_json(a.json, json.loads(json.dumps(out, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
