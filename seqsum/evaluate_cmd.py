"""`seqsum evaluate RUN --out DIR`: score a trained run's checkpoint on longer sequences or another digit
pool without retraining, writing the evaluation files of a run folder (predictions.parquet, per_target.csv,
pairs.csv, config.json with the evaluation's data settings, summary.json) into DIR through seqsum.results.

The model and its codec come from the checkpoint's own config (a classifier keeps its class set); only the
data section changes (eval_max_len, source/root, test_size). The exact head (seqsum.exact) learns no class:
it is rebuilt for the evaluation's lengths, so results longer than training's are computed, not unreachable.
DIR follows `train --out`'s rules: absent or empty, or with --overwrite a seqsum run folder holding only
seqsum's files, and never RUN itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .checkpoint import model_from_checkpoint, read_checkpoint
from .data import eval_sets, load_pools
from .device import resolve_device
from .errors import CliError
from .evaluate import evaluate
from .memory import check_memory
from .model import build
from .results import check_out_dir, clear_run_folder, write_run


def cmd_evaluate(a: argparse.Namespace) -> int:
    run = Path(a.run)
    ckpt = run / "checkpoint.pt" if run.is_dir() else run
    out = Path(a.out)
    if out.resolve() == ckpt.parent.resolve():
        raise CliError("--out must be another folder than the run's own (its evaluation files would be replaced)")
    check_out_dir(out, a.overwrite)
    state = read_checkpoint(ckpt)
    history = list(state["history"])
    if history and history[-1].get("status") == "diverged":
        raise CliError(f"the run in {str(ckpt.parent)!r} diverged: there is no model to evaluate")
    cfg, model, codec = model_from_checkpoint(state)
    overrides: dict[str, Any] = {"train.device": "cpu" if a.device is None else a.device}
    for key, value in (("data.eval_max_len", a.eval_max_len), ("data.source", a.data), ("data.test_size", a.test_size)):
        if value is not None:
            overrides[key] = value
    if a.data_root is not None:
        overrides["data.root"] = a.data_root
        overrides.setdefault("data.source", "mnist")
    ecfg = cfg.replace(overrides)
    device = resolve_device(ecfg.train.device)
    check_memory(ecfg, evaluating=True)  # scoring only: no training batch, gradients or optimizer state
    if ecfg.model.head == "exact":  # the same weights, the classes of the evaluation's lengths
        model, codec = build(ecfg)
        model.load_state_dict(state["model"])
    pools = load_pools(ecfg.data).to(device)  # a bad data root fails here, before anything is written
    if a.overwrite:
        clear_run_folder(out)
    print(f"seqsum evaluate: {ckpt} on {len(pools.test)} test digits from {pools.source}; writing {out}", flush=True)
    ev = evaluate(model.to(device), codec, pools, eval_sets(pools, ecfg.data), ecfg.train.task)
    n_params = sum(p.numel() for p in model.parameters())
    extra = {"params": n_params, "evaluated_from": str(ckpt.resolve())}
    summary = write_run(out, ecfg, history, "ok", float(state.get("train_seconds", 0.0)), evaluation=ev, extra=extra)
    print(f"done: test exact {summary['test/exact']:.3f}  mae {summary['test/mae']:.3f} -> {out}")
    return 0
