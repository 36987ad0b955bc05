"""`seqsum study launch | resume | rerun`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from seqsum.errors import ConfigError, Interrupted
from seqsum.flags import parse_set

from .config import StudyConfig, load_preset, preset_names
from .storage import Place

STUDY_HELP = "the study: its folder (<storage>/<name>) or its URI (e.g. s3://bucket/studies/NAME)"


def study_config_from_args(a: argparse.Namespace) -> StudyConfig:
    if bool(a.preset) == bool(a.config):
        raise ConfigError("give exactly one of --preset NAME or --config FILE")
    cfg = load_preset(a.preset) if a.preset else StudyConfig.load(a.config)
    cfg = cfg.override("how", num_samples=a.num_samples, max_concurrent=a.max_concurrent, scheduler=a.scheduler)
    cfg = cfg.override(
        "where",
        storage=a.storage,
        name=a.name,
        cpus_per_trial=a.cpus_per_trial,
        gpus_per_trial=a.gpus_per_trial,
        max_failures=a.max_failures,
        optuna_storage=a.optuna_storage,
    )
    if a.base:
        d = cfg.to_dict()
        for key, value in a.base:  # parse_set: key is section.name
            section, _, name = key.partition(".")
            d["what"]["base"].setdefault(section, {})[name] = value
        cfg = StudyConfig.from_dict(d)
    return cfg


def cmd_launch(a: argparse.Namespace) -> int:
    from .runner import launch  # torch: kept off the parser's path (--help and usage errors answer at once)

    return _guard(lambda: launch(study_config_from_args(a), address=a.address, after=_report(a)))


def cmd_resume(a: argparse.Namespace) -> int:
    from .runner import resume  # torch: kept off the parser's path (--help and usage errors answer at once)

    return _guard(lambda: resume(a.study, address=a.address, after=_report(a)))


def _report(a: argparse.Namespace) -> Callable[[Place], None] | None:
    """What runs once every task is done: the report the CLI was handed, unless --no-report."""
    return None if a.no_report else a.report_study


def cmd_rerun(a: argparse.Namespace) -> int:
    from .rerun import rerun  # torch: kept off the parser's path (--help and usage errors answer at once)

    if a.resume:
        given = [f for f, v in (("--top", a.top), ("--seeds", a.seeds), ("--epochs", a.epochs)) if v is not None]
        given += [f for f, v in (("--per-family", a.per_family), ("--overwrite", a.overwrite)) if v]
        if given:
            raise ConfigError(f"--resume continues the plan in rerun/plan.json; {', '.join(given)} cannot change it")
    return _guard(
        lambda: rerun(
            a.study,
            top=a.top,
            per_family=a.per_family,
            seeds=3 if a.seeds is None else a.seeds,
            epochs=a.epochs,
            address=a.address,
            overwrite=a.overwrite,
            resume=a.resume,
        )
    )


def _guard(fn) -> int:
    try:
        fn()
    except Interrupted as e:
        full = _stopped_for_space()
        if full:
            print(f"seqsum: error: {full}", file=sys.stderr, flush=True)
            return 1
        print(f"seqsum: study interrupted: {e}", flush=True)
        return 130
    except KeyboardInterrupt:
        print("seqsum: interrupted; continue a launched study with: seqsum study resume STUDY", flush=True)
        return 130
    return 0


def _stopped_for_space() -> str:
    """Why the study stopped itself, when its storage was about to fill up (study/recorder.py)."""
    recorder = sys.modules.get("study.recorder")  # imported only when a study ran
    return recorder.STOPPED_FOR_SPACE[0] if recorder is not None and recorder.STOPPED_FOR_SPACE else ""


def add_parsers(sub, report: Callable[[Place], None] | None = None) -> None:
    """The `study` subcommands; `report(place)` writes a finished study's report (seqsum.cli hands over
    analysis's, so launch and resume end with the report while study never imports analysis)."""
    st = sub.add_parser(
        "study",
        help="search width, depth and loss with Ray Tune + Optuna",
        description="Launch, resume and rerun studies (Ray Tune + Optuna).",
    )
    ss = st.add_subparsers(dest="study_command", required=True)

    la = ss.add_parser("launch", help="start a study (embedded Ray unless --address)")
    la.add_argument("--preset", help=f"study preset: {', '.join(preset_names())}")
    la.add_argument("--config", help="study YAML file (what / how / where)")
    la.add_argument(
        "--storage",
        help="where studies live: a folder (shared on a multi-node cluster) or a URI such as s3://bucket/studies "
        "(any pyarrow filesystem; S3-compatible endpoint through AWS_ENDPOINT_URL)",
    )
    la.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="keep the Optuna studies in this Optuna storage (RDB URL, e.g. postgresql://..., or a journal file) "
        "instead of optuna.db in the study folder",
    )
    la.add_argument("--name", help="study name (a folder name)")
    la.add_argument("--num-samples", type=int, help="trials per task")
    la.add_argument("--max-concurrent", type=int, help="trials running at once per task")
    la.add_argument("--scheduler", help="asha | fifo")
    la.add_argument("--cpus-per-trial", type=float)
    la.add_argument("--gpus-per-trial", type=float, help="e.g. 0.25: four trials share one GPU")
    la.add_argument("--max-failures", type=int, help="retries of a trial that raised")
    la.add_argument(
        "--set",
        dest="base",
        type=parse_set,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="base run config of every trial, e.g. --set data.root=/data/mnist --set train.epochs=10",
    )
    _common(la)
    la.set_defaults(func=cmd_launch, report_study=report)

    re = ss.add_parser("resume", help="finish a study whose driver died or was interrupted")
    re.add_argument("study", metavar="STUDY", help=STUDY_HELP)
    _common(re)
    re.set_defaults(func=cmd_resume, report_study=report)

    rr = ss.add_parser(
        "rerun",
        help="replicate the best configs with fresh seeds and one shared budget",
        description="Rerun the top-K configs and/or the best config of every loss family of each task with "
        "fresh seeds (1000, 1001, ...) and one shared epoch budget, as parallel trials on Ray; writes "
        "STUDY_DIR/rerun/. A killed rerun continues with --resume.",
    )
    rr.add_argument("study", metavar="STUDY", help=STUDY_HELP)
    rr.add_argument("--top", type=int, help="the K best configs per task (default 3 without --per-family)")
    rr.add_argument("--per-family", action="store_true", help="the best config of every loss family per task")
    rr.add_argument("--seeds", type=int, help="fresh seeds per config (default 3)")
    rr.add_argument("--epochs", type=int, help="epochs of every replicate (default: the study's)")
    rr.add_argument("--overwrite", action="store_true", help="replace an existing rerun/ folder")
    rr.add_argument("--resume", action="store_true", help="continue the rerun in rerun/ (after a crash or Ctrl-C)")
    _common(rr, report=False)
    rr.set_defaults(func=cmd_rerun)


def _common(p: argparse.ArgumentParser, report: bool = True) -> None:
    p.add_argument("--address", help="Ray cluster to join: auto or host:port (default: an embedded local Ray)")
    if report:
        p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
