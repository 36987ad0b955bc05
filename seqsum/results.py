"""The run folder: the one module that writes it, reads it back, recognises it and clears it.

A run folder holds (docs/STUDY_LAYOUT.md): `.seqsum-run` (marker, written first), config.json (the
resolved RunConfig), metrics.jsonl (one line per epoch), predictions.parquet, per_target.csv,
pairs.csv, confusion.csv (the evaluation; confusion.csv with the digit bottleneck), checkpoint.pt,
params.json (a study trial's identity) and summary.json (status, final metrics). summary.json is written
last: a folder without it is an unfinished run. Every file goes through seqsum.files (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import RunConfig
from .errors import CliError, ConfigError, CorruptFile
from .evaluate import Evaluation, evaluate
from .files import (
    append_line,
    check_name_lengths,
    check_writable,
    clean,
    read_json,
    read_jsonl,
    write_csv,
    write_json,
    write_parquet,
    write_text,
)

MARKER = ".seqsum-run"
FILES = (
    MARKER,
    "config.json",
    "metrics.jsonl",
    "predictions.parquet",
    "per_target.csv",
    "pairs.csv",
    "confusion.csv",
    "checkpoint.pt",
    "params.json",
    "summary.json",
)
_MARKER_TEXT = "seqsum run folder: `seqsum train --overwrite` replaces only the files in seqsum.results.FILES\n"
_SUMMARY_KEYS = ("train/", "valid/", "precision")  # the last epoch's, into summary.json


def _config_dict(cfg: RunConfig | dict[str, Any]) -> dict[str, Any]:
    return cfg.to_dict() if isinstance(cfg, RunConfig) else RunConfig.from_dict(cfg).to_dict()


def start_run(out: Path, cfg: RunConfig | dict[str, Any], history: Iterable[dict[str, Any]] = ()) -> None:
    """Open a run folder for training: marker, config.json, metrics.jsonl from `history`; an old
    summary.json goes (the run is unfinished again)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MARKER, _MARKER_TEXT)
    (out / "summary.json").unlink(missing_ok=True)
    write_json(out / "config.json", _config_dict(cfg))
    _write_metrics(out, history)


def _write_metrics(out: Path, history: Iterable[dict[str, Any]]) -> None:
    write_text(out / "metrics.jsonl", "".join(json.dumps(clean(m)) + "\n" for m in history))


def append_metrics(out: Path, metrics: dict[str, Any]) -> None:
    """One epoch's metrics as a line of metrics.jsonl (progress while training)."""
    append_line(Path(out) / "metrics.jsonl", json.dumps(clean(metrics)))


def write_evaluation(out: Path, ev: Evaluation) -> None:
    out = Path(out)
    write_parquet(out / "predictions.parquet", ev.predictions)
    write_csv(out / "per_target.csv", ev.per_target)
    write_csv(out / "pairs.csv", ev.pairs)
    if ev.confusion is not None:
        write_csv(out / "confusion.csv", ev.confusion)


def write_run(
    out: Path,
    cfg: RunConfig | dict[str, Any],
    history: list[dict[str, Any]],
    status: str,
    train_seconds: float,
    evaluation: Evaluation | None = None,
    params: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write (or complete) the run folder `out`; return the summary.

    Writes the marker, config.json, metrics.jsonl (rebuilt from `history`), the evaluation files when
    `evaluation` is given, params.json when `params` (a study trial's identity) is given, and
    summary.json last: status, epochs, train_seconds (all segments of a resumed run), the last
    epoch's train/* and valid/* metrics and precision, the evaluation's metrics, then `extra`. checkpoint.pt is
    the caller's (seqsum.checkpoint.save_checkpoint).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MARKER, _MARKER_TEXT)
    write_json(out / "config.json", _config_dict(cfg))
    _write_metrics(out, history)
    last = history[-1] if history else {}
    summary: dict[str, Any] = {
        "status": status,
        "epochs": len(history),
        "train_seconds": float(train_seconds),
        **{k: v for k, v in last.items() if k.startswith(_SUMMARY_KEYS)},
    }
    if evaluation is not None:
        write_evaluation(out, evaluation)
        summary.update(evaluation.metrics)
    if params is not None:
        write_json(out / "params.json", params)
    summary.update(extra or {})
    write_json(out / "summary.json", summary)
    return clean(summary)


def finish_run(out: Path, cfg: RunConfig, result, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a seqsum.train.TrainResult on the test and pair sets (unless it diverged) and write the run folder."""
    ev = None
    if result.status == "ok":
        ev = evaluate(result.model, result.codec, result.pools, result.sets, cfg.train.task)
    return write_run(out, cfg, result.history, result.status, result.train_seconds, evaluation=ev, extra=extra)


def read_run(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config dict, summary dict) of a run folder; an unfinished run (no summary.json) gives summary {}.

    A missing, truncated or malformed config.json / summary.json raises CorruptFile (one line naming
    the file and how to recover).
    """
    out = Path(out)
    cfg_path, sum_path = out / "config.json", out / "summary.json"
    if not cfg_path.is_file():
        raise CorruptFile(f"{str(out)!r} is not a seqsum run folder (no config.json)")
    fix_cfg = "the config is also inside checkpoint.pt: `seqsum train --resume` the folder, or train it again"
    cfg = read_json(cfg_path, fix=fix_cfg)
    try:
        RunConfig.from_dict(cfg)
    except ConfigError as e:
        raise CorruptFile(f"{str(cfg_path)!r} is not a valid run config ({e}); {fix_cfg}") from None
    if not sum_path.is_file():
        return cfg, {}
    fix_sum = "delete it and `seqsum train --resume` the folder to rewrite it"
    summary = read_json(sum_path, fix=fix_sum)
    if not isinstance(summary, dict) or "status" not in summary:
        raise CorruptFile(f"{str(sum_path)!r} is not a run summary (no status); {fix_sum}")
    return cfg, summary


def read_metrics(out: Path) -> list[dict[str, Any]]:
    """metrics.jsonl of a run folder ([] when absent); a torn last line is dropped."""
    path = Path(out) / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


# --- recognising and clearing a run folder ---------------------------------------------------------------
def _is_own(name: str) -> bool:
    """A file seqsum writes into a run folder, or the temporary file of an interrupted atomic write."""
    if name in FILES:
        return True
    return any(name.startswith(f".{f}.") and name.endswith(".tmp") for f in FILES) or name == "checkpoint.pt.tmp"


def is_run_folder(path: Path) -> bool:
    """Whether `path` is provably a seqsum run folder: it holds the `.seqsum-run` marker seqsum writes
    first. A folder that merely holds files with seqsum's names (a user's config.json) is not."""
    path = Path(path)
    return path.is_dir() and (path / MARKER).is_file() and not (path / MARKER).is_symlink()


def check_clearable(path: Path) -> None:
    """Raise ConfigError unless `path` is absent, empty, or a run folder holding only seqsum's files."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ConfigError(f"{str(path)!r} exists and is not a directory")
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return
    if not is_run_folder(path):
        raise ConfigError(
            f"{str(path)!r} is not a seqsum run folder (it holds {', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''}); refusing to overwrite it: choose another folder"
        )
    foreign = [p.name for p in sorted(path.iterdir()) if not (_is_own(p.name) and p.is_file() and not p.is_symlink())]
    if foreign:
        raise ConfigError(
            f"run folder {str(path)!r} also holds files seqsum did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); refusing to overwrite it: move them or choose another folder"
        )


def clear_run_folder(path: Path) -> None:
    """Remove seqsum's own files from a run folder; raise ConfigError (deleting nothing) if it holds anything else."""
    path = Path(path)
    check_clearable(path)
    if not path.is_dir():
        return
    for p in path.iterdir():
        p.unlink()  # check_clearable: every entry is one of seqsum's own plain files


__all__ = [
    "FILES",
    "MARKER",
    "append_metrics",
    "check_clearable",
    "clear_run_folder",
    "finish_run",
    "is_run_folder",
    "read_metrics",
    "read_run",
    "start_run",
    "write_evaluation",
    "write_run",
]


def check_out_dir(out: Path, overwrite: bool) -> None:
    """--out must be absent or empty, or (with --overwrite) a seqsum run folder holding only seqsum's files."""
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
