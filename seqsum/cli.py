"""The `seqsum` command line: train | evaluate | study launch/resume/rerun | report | filters.

Every bad input ends in one line `seqsum: error: ...` and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .choices import SOURCES
from .errors import CliError, ConfigError
from .files import DiskFull
from .flags import add_run_config_args, parse_set

_NEGATIVE = re.compile(r"^-(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) like every other bad input, and every number
    argparse would take for an option (-1e-3, -inf, -nan) is a value, so its check can name it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"seqsum: error: {message} (see '{self.prog} --help')\n")


def _train(a: argparse.Namespace) -> int:
    from .train_cmd import cmd_train  # torch: kept off the parser's path (--help and usage errors answer at once)

    return cmd_train(a)


def _evaluate(a: argparse.Namespace) -> int:
    from .evaluate_cmd import cmd_evaluate  # torch: kept off the parser's path

    return cmd_evaluate(a)


def _add_evaluate(sub) -> None:
    e = sub.add_parser(
        "evaluate",
        help="score a trained run on longer sequences or another digit pool (no retraining)",
        description="Score a trained run folder's checkpoint on its test settings, longer test sequences "
        "(--eval-max-len) or another digit pool (--data/--data-root), writing predictions, per_target, pairs "
        "and summary into --out.",
    )
    e.add_argument("run", help="a run folder with checkpoint.pt (or the checkpoint file)")
    e.add_argument("--out", required=True, help="folder to write (must be empty unless --overwrite; not RUN)")
    e.add_argument("--eval-max-len", type=int, help="longest test sequence (extrapolation beyond max_len)")
    e.add_argument("--data", help=" | ".join(SOURCES))
    e.add_argument("--data-root", help="folder with MNIST (torchvision layout or IDX files); implies --data mnist")
    e.add_argument("--test-size", type=int, help="test sequences (default: the run's)")
    e.add_argument("--device", help="auto | cpu | cuda (default: cpu)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier seqsum run folder in --out")
    e.set_defaults(func=_evaluate)


def _layers_above():
    """(study.cli, analysis.cli), each None where its package is not installed: the entry point's thin
    dispatcher is the one place the core names the layers above it."""
    try:
        from study import cli as study_cli  # imported here, not at the top: the core never needs it
    except ModuleNotFoundError as e:
        if not (e.name and e.name.split(".")[0] == "study"):
            raise
        study_cli = None
    try:
        from analysis import cli as analysis_cli  # likewise
    except ModuleNotFoundError as e:
        if not (e.name and e.name.split(".")[0] == "analysis"):
            raise
        analysis_cli = None
    return study_cli, analysis_cli


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
    t.set_defaults(func=_train)
    _add_evaluate(sub)
    study_cli, analysis_cli = _layers_above()
    if study_cli is not None:  # launch and resume end with the report when analysis is installed
        study_cli.add_parsers(sub, report=analysis_cli.report_after_study if analysis_cli is not None else None)
    if analysis_cli is not None:
        analysis_cli.add_parsers(sub)
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
