"""`seqsum report STUDY` (a folder or a URI) and `seqsum filters RUN_DIR`, wired into seqsum's CLI by
`add_parsers(sub)`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only
    from study.storage import Place


def add_parsers(sub) -> None:
    r = sub.add_parser(
        "report",
        help="write a study's report (HTML, Markdown, CSV tables, PNG figures)",
        description="Read a study folder and write report/index.html, report.md, tables/*.csv and "
        "figures/*.png into STUDY_DIR/report (or --out). Compares the replicates of `seqsum study rerun "
        "--per-family` with intervals, beside constant baselines and the pipeline reference. Writes only its "
        "own files (a report folder carries a .seqsum-report marker; a non-empty folder without it is refused).",
    )
    r.add_argument(
        "study_dir",
        metavar="STUDY",
        help="the study: its folder (<storage>/<name>) or its URI (e.g. s3://bucket/studies/NAME, read into a "
        "local working copy first)",
    )
    r.add_argument(
        "--out",
        type=Path,
        help="new, empty or earlier local report folder (default STUDY/report; for a URI, uploaded to URI/report)",
    )
    r.add_argument(
        "--no-reference",
        action="store_true",
        help="do not train the reference digit classifier (use it only when cached)",
    )
    r.set_defaults(func=cmd_report)
    f = sub.add_parser(
        "filters",
        help="draw a run's first-layer filters beside the reference digit classifier's",
        description="Draw the first conv layer of a CNN-RNN run (its checkpoint.pt) beside that of the "
        "reference digit classifier (the same conv stack with a 10-way head), with a similarity score.",
    )
    f.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a run folder with checkpoint.pt (or the checkpoint file)"
    )
    f.add_argument(
        "--out",
        type=Path,
        help="PNG to write (default: STUDY/report/figures/ for a study's run, else RUN_DIR/filters.png)",
    )
    f.add_argument(
        "--cache",
        type=Path,
        help="where the reference classifier is cached (default: STUDY/report/reference, else "
        "~/.cache/seqsum/reference)",
    )
    f.set_defaults(func=cmd_filters)


def cmd_report(a: argparse.Namespace) -> int:
    from .report import build_report  # pandas, matplotlib, torch: kept off the parser's path

    if "://" not in a.study_dir:
        out = build_report(Path(a.study_dir), a.out, train_reference=not a.no_reference)
        print(f"report: {out / 'index.html'}")
        return 0
    from study.folder import open_study  # pyarrow's file systems: only for a study at a URI

    place, _ = open_study(a.study_dir, skip=("report",) if a.out else ())  # the URI's files, in a working copy
    out = build_report(place.local, a.out, train_reference=not a.no_reference)
    if a.out:
        print(f"report: {out / 'index.html'}")
    else:
        place.push()
        print(f"report: {place.where}/report/index.html (local copy: {out / 'index.html'})")
    return 0


def report_after_study(place: Place) -> None:
    """The report at the end of `seqsum study launch/resume` (handed to study.cli by seqsum.cli): a failure is
    one line saying how to rebuild it, and the study's results stay as they are."""
    from .report import build_report  # pandas, matplotlib, torch: kept off the parser's path

    try:
        out = build_report(place.local)
        print(f"report: {out / 'index.html'}", flush=True)
    except Exception as e:  # the study's results are safe; the report can be rebuilt
        print(
            f"report not written ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"rebuild it with: seqsum report {place.where}",
            file=sys.stderr,
        )


def cmd_filters(a: argparse.Namespace) -> int:
    from .filters import filters_command  # torch, matplotlib: kept off the parser's path

    filters_command(a.run_dir, a.out, a.cache)
    return 0
