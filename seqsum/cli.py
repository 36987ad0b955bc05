"""The `seqsum` command line: train | evaluate | study launch/resume/rerun | report | filters.

Every bad input ends in one line `seqsum: error: ...` and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from .config import ConfigError, RunConfig
from .files import DiskFull
from .flags import add_run_config_args, parse_set, refused_with_resume, run_config_from_args


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


_NEGATIVE = re.compile(r"^-(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) like every other bad input, and every number
    argparse would take for an option (-1e-3, -inf, -nan) is a value, so its check can name it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"seqsum: error: {message} (see '{self.prog} --help')\n")


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """--out must be absent or empty, or (with --overwrite) a seqsum run folder holding only seqsum's files."""
    from .files import check_name_lengths, check_writable
    from .results import check_clearable

    check_name_lengths(out, "--out")
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {str(out)!r} exists and is not a directory")
    check_writable(out, "--out")
    if not overwrite:
        if out.is_dir() and any(out.iterdir()):
            raise CliError(
                f"--out {str(out)!r} is not empty; pass --overwrite to replace a seqsum run folder, or choose another"
            )
        return
    try:
        check_clearable(out)
    except ConfigError as e:
        raise CliError(f"--out --overwrite: {e}") from None


def _check_resume_flags(a: argparse.Namespace) -> None:
    """--resume continues a run with the config in its checkpoint: a config flag would be ignored."""
    given = refused_with_resume(a)
    if given:
        raise CliError(
            f"--resume continues with the checkpoint's config; {', '.join(given)} cannot change it "
            "(allowed with --resume: --epochs, --device, --out, --overwrite)"
        )


def cmd_train(a: argparse.Namespace) -> int:
    from .budget import check_memory
    from .checkpoint import read_checkpoint
    from .data import load_pools
    from .mechanisms import subset_train_pool
    from .results import append_metrics, clear_run_folder, finish_run, start_run
    from .train import resolve_device, save_checkpoint, train

    resume = None
    if a.resume is not None:
        if not a.resume:
            raise CliError("--resume '' names no run; give a run folder or its checkpoint.pt")
        run_dir = Path(a.resume)
        ckpt = run_dir / "checkpoint.pt" if run_dir.is_dir() else run_dir
        resume = read_checkpoint(ckpt, resume=True)
        cfg = RunConfig.from_dict(resume["config"])
        _check_resume_flags(a)
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
            _check_out_dir(out, a.overwrite)
    else:
        if not a.out:
            raise CliError("--out DIR is required")
        cfg = run_config_from_args(a)
        out = Path(a.out)
        _check_out_dir(out, a.overwrite)
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


def _again(a: argparse.Namespace) -> str:
    """How to continue after a full disk: `seqsum train` resumes from its last checkpoint."""
    if getattr(a, "command", None) == "train":
        run = a.resume or a.out
        ckpt = Path(run) / "checkpoint.pt" if run and Path(run).is_dir() else None
        if ckpt is not None and ckpt.is_file():
            return f" (then: seqsum train --resume {run})"
    return ""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="seqsum", description="Sum vs product of handwritten digit sequences: train, study, report.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train", help="train one CNN-GRU (no Ray)", description="Train one CNN-GRU on digit sequences and evaluate it."
    )
    add_run_config_args(t)
    t.add_argument("--out", help="run folder to write (must be empty unless --overwrite)")
    t.add_argument("--overwrite", action="store_true", help="replace an earlier seqsum run in --out")
    t.add_argument("--resume", help="continue the run in this folder (or checkpoint file); --epochs may extend it")
    t.set_defaults(func=cmd_train)
    from .rescore import add_parser as add_evaluate

    add_evaluate(sub)
    for module in ("study.cli", "analysis.cli"):
        try:
            mod = __import__(module, fromlist=["add_parsers"])
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in ("study", "analysis"):
                continue
            raise
        mod.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return int(a.func(a) or 0)
    except (CliError, ConfigError) as e:
        print(f"seqsum: error: {e}", file=sys.stderr)
        return 2
    except DiskFull as e:  # what was written before stays; the command can be run again once space is freed
        print(f"seqsum: error: {e}{_again(a)}", file=sys.stderr)
        return 1
    except OSError as e:  # a path the checks let through that the system refuses (e.g. a folder in /proc)
        where = f" {e.filename!r}" if e.filename else ""
        print(f"seqsum: error: cannot use{where}: {e.strerror or e}; choose another path", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqsum: interrupted", file=sys.stderr)
        return 130


__all__ = ["CliError", "build_parser", "main", "parse_set"]

if __name__ == "__main__":
    sys.exit(main())
