"""`seqsum train`: train one CNN-GRU into a run folder (no Ray), or continue one with --resume.

The pre-flight checks (device, memory, data, the train-pool subset) run once, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .checkpoint import read_checkpoint, save_checkpoint
from .config import RunConfig
from .data import load_pools
from .device import resolve_device
from .errors import CliError
from .flags import refused_with_resume, run_config_from_args
from .memory import check_memory
from .results import append_metrics, check_out_dir, clear_run_folder, finish_run, start_run
from .train import train
from .train_data import subset_train_pool


def check_resume_flags(a: argparse.Namespace) -> None:
    """--resume continues a run with the config in its checkpoint: a config flag would be ignored."""
    given = refused_with_resume(a)
    if given:
        raise CliError(
            f"--resume continues with the checkpoint's config; {', '.join(given)} cannot change it "
            "(allowed with --resume: --epochs, --device, --out, --overwrite)"
        )


def cmd_train(a: argparse.Namespace) -> int:

    resume = None
    if a.resume is not None:
        if not a.resume:
            raise CliError("--resume '' names no run; give a run folder or its checkpoint.pt")
        run_dir = Path(a.resume)
        ckpt = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
        resume = read_checkpoint(ckpt, resume=True)
        cfg = RunConfig.from_dict(resume["config"])
        check_resume_flags(a)
        if a.epochs is not None:
            if a.epochs < int(resume["epoch"]):
                raise CliError(
                    f"--epochs {a.epochs} is below the checkpoint's epoch {resume['epoch']}; "
                    f"allowed: {resume['epoch']} or more"
                )
            cfg = cfg.replace({"train.epochs": a.epochs})
        if a.device is not None:  # e.g. continue a GPU run on a CPU
            cfg = cfg.replace({"train.device": a.device})
        out = Path(a.out) if a.out else ckpt.parent
        new_folder = out.resolve() != ckpt.parent.resolve()  # continue into another folder
        if new_folder:
            check_out_dir(out, a.overwrite)
    else:
        if not a.out:
            raise CliError("--out DIR is required")
        cfg = run_config_from_args(a)
        out = Path(a.out)
        check_out_dir(out, a.overwrite)
        new_folder = True
    resolve_device(cfg.train.device)  # --device cuda without CUDA fails here, before anything is written
    check_memory(cfg)  # a config this machine cannot hold fails here, before anything is allocated
    pools = load_pools(cfg.data)  # bad data roots fail here, before anything is written
    n_train = len(subset_train_pool(pools, cfg).train)  # data.train_images too (train() takes the same subset)
    if new_folder and a.overwrite:
        clear_run_folder(out)  # only seqsum's own files (checked above, before anything was written)
    # The checkpoint's history is the truth: an epoch logged after the last checkpoint (a crash
    # between the two writes) is dropped, since it runs again.
    start_run(out, cfg, resume["history"] if resume is not None else ())

    def report(m: dict[str, Any], state: dict[str, Any]) -> None:
        append_metrics(out, m)
        save_checkpoint(state, out / "checkpoint.pt")
        shown = "  ".join(f"{k} {v:.4g}" for k, v in m.items() if k.startswith(("train/", "valid/")))
        print(
            f"epoch {m['epoch']}/{cfg.train.epochs}  {shown}  {m['time/epoch_s']:.1f}s"
            + ("  DIVERGED" if m["status"] == "diverged" else ""),
            flush=True,
        )

    print(
        f"seqsum train: {cfg.train.task}/{cfg.train.loss}, {n_train} train / {len(pools.valid)} valid / "
        f"{len(pools.test)} test digits from {pools.source}; writing {out}",
        flush=True,
    )
    result = train(cfg, pools, report=report, resume=resume)
    n_params = sum(p.numel() for p in result.model.parameters())
    summary = finish_run(out, cfg, result, {"params": n_params})
    if summary["status"] == "diverged":
        print(
            f"seqsum: the run diverged in epoch {summary['epochs']} (non-finite training loss; try a lower --lr); "
            f"metrics so far in {out / 'metrics.jsonl'}",
            file=sys.stderr,
        )
        return 1
    print(
        f"done: test exact {summary['test/exact']:.3f}  mae {summary['test/mae']:.3f}  mse {summary['test/mse']:.3f}  "
        f"9x9 exact {summary['pairs/9x9/exact']:.2f}  ({summary['train_seconds']:.0f}s, {n_params:,} params) -> {out}"
    )
    return 0
