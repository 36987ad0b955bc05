"""`build_report(study_dir)`: the study's report folder (index.html, report.md, tables/, figures/).

Every sentence is computed from the tables. The report folder is recognised by its marker file
(`.seqsum-report`, which lists the files the last report wrote): a report replaces only its own files,
keeps anything else, and refuses a non-empty folder without the marker. Nothing in the study folder
outside the report folder is written (optuna.db is read from a copy). Every file goes through
seqsum.files (temporary file, fsync, rename).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from seqsum.errors import ConfigError, CorruptFile
from seqsum.files import read_json, write_csv, write_json, write_text, write_with

from . import first_screen, plots, sections, tables
from .baselines import Setup, build_setups, yardstick_table
from .doc import Doc
from .filters import compare_run, plot_filters
from .load import Study, load_study
from .optuna_db import optuna_importances
from .scores import compared_runs

MARKER = ".seqsum-report"
CACHE = "reference"  # the reference classifiers, cached inside the report folder
SECTIONS = (
    "Overview",
    "The comparison",
    "Error by magnitude",
    "Score per length",
    "The 9x9 question",
    "Baselines and the reference",
    "The search",
    "First-layer filters",
)


@dataclass
class Ctx:
    study: Study
    out: Path
    train_reference: bool
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # the compared runs (analysis.scores)
    source: str = "search"  # replicates | search | mixed (per task)
    setups: list[Setup] = field(default_factory=list)
    yard: pd.DataFrame = field(default_factory=lambda: yardstick_table([]))  # tables/baselines.csv
    best: pd.DataFrame = field(default_factory=pd.DataFrame)  # best search trial per family / bucket
    written: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)

    def step(self, text: str) -> None:
        print(f"[report {time.perf_counter() - self.t0:5.1f}s] {text}", flush=True)

    def save_table(self, name: str, df: pd.DataFrame) -> None:
        write_csv(self.out / "tables" / f"{name}.csv", df.drop(columns=["params"], errors="ignore"))
        self.written.append(f"tables/{name}.csv")

    def save_figure(self, doc: Doc, name: str, fig, caption: str) -> None:
        write_with(self.out / "figures" / f"{name}.png", lambda f: fig.savefig(f, format="png", dpi=110))
        self.written.append(f"figures/{name}.png")
        doc.figure(f"figures/{name}.png", caption)


def build_report(study_dir: Path, out: Path | None = None, train_reference: bool = True) -> Path:
    """Read the study in `study_dir`, write its report into `out` (default STUDY_DIR/report), return that folder.

    Raises ConfigError (one line) when `study_dir` is not a study, or `out` cannot be written or holds
    files seqsum did not write. With train_reference=False the reference classifier is only read from
    its cache, never trained.
    """
    study = load_study(study_dir)
    out = Path(out) if out else study.dir / "report"
    before = claim(out)
    ctx = Ctx(study, out, train_reference)
    ctx.step(f"study {study.name!r}: {len(study.trials)} trial folders, {len(study.replicates)} replicates")
    for note in study.notes:  # a damaged file the report leaves out is said where the user looks, too
        if note.startswith("left out:"):
            print(f"seqsum: warning: report {note}", file=sys.stderr, flush=True)
    doc = Doc(f"Sum vs product: study {study.name}")
    ctx.best = tables.best_trials(study)
    ctx.runs, ctx.source = compared_runs(study)
    ctx.save_table("trials", study.trials)
    ctx.save_table("epochs", study.epochs)
    ctx.save_table("best_trials", ctx.best)
    headline: list[str] = []
    first = Doc(doc.title)
    first.contents()
    section_overview(ctx, doc)
    if ctx.runs.empty:
        doc.p(
            f"No trial has finished yet ({len(study.trials)} trial folders, none with test metrics): there is "
            "nothing to compare. Run `seqsum report` again once trials finish."
        )
        for name in SECTIONS[1:]:
            doc.h(name)
            doc.p("Skipped: no finished trial.")
    else:
        ctx.step("baselines and the reference: digit classifier on the compared runs' test sequences")
        ctx.setups = build_setups(ctx.runs, out / CACHE, train_reference, study.notes, ctx.step)
        ctx.yard = sections.yardsticks(ctx)
        sections.comparison(ctx, doc, headline)
        sections.magnitude(ctx, doc, headline)
        sections.lengths(ctx, doc)
        sections.pairs(ctx, doc, headline)
        sections.reference(ctx, doc)
        section_search(ctx, doc)
        section_filters(ctx, doc)
    doc.bullets_at(SECTIONS[0], [f"Note: {n}" for n in study.notes])
    first_screen.summary(ctx, first)
    if headline:
        first.blocks += [("h", (2, "Key findings")), ("ul", headline)]
    doc.blocks[0:0] = first.blocks
    write_text(out / "report.md", doc.markdown() + "\n")
    write_text(out / "index.html", doc.html(out))
    ctx.written += ["report.md", "index.html"]
    finish(out, before, ctx.written)
    ctx.step(f"wrote {out / 'index.html'} and report.md ({len(doc.figures)} figures)")
    return out


def claim(out: Path) -> list[str]:
    """Make `out` a report folder: new, empty, or already one (marker). Returns the files the last report wrote.

    Refuses (ConfigError, nothing written) a file, or a folder holding anything but a report's own files.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report folder {str(out)!r} exists and is not a folder")
    before: list[str] = []
    if (out / MARKER).is_file():
        try:
            before = list(read_json(out / MARKER).get("files", []))
        except (CorruptFile, AttributeError):  # our own marker, damaged: keep every file, rewrite the marker
            before = []
    elif out.is_dir() and not _older_report(out):
        raise ConfigError(
            f"report folder {str(out)!r} holds files seqsum did not write (no {MARKER} marker); "
            "give a new or empty folder with --out"
        )
    try:
        for sub in ("figures", "tables"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        write_json(out / MARKER, {"written_by": "seqsum report", "files": before})
    except OSError as e:
        raise ConfigError(f"cannot write the report folder {str(out)!r}: {e.strerror}") from None
    return before


def _older_report(out: Path) -> bool:
    """An empty folder, a reference cache only, or a report written before the marker existed (its own
    names only: index.html, report.md, tables/*.csv, figures/*.png, the classifier cache)."""
    names = {p.name for p in out.iterdir()}
    if names <= {CACHE}:
        return True
    if not names <= {CACHE, "ceiling", "index.html", "report.md", "tables", "figures"} or "report.md" not in names:
        return False
    own = {"tables": ".csv", "figures": ".png"}
    return all(
        p.is_file() and p.suffix == ext for sub, ext in own.items() if sub in names for p in (out / sub).iterdir()
    )


def finish(out: Path, before: list[str], written: list[str]) -> None:
    """Remove the files the last report wrote that this one did not; record this report's files."""
    for rel in sorted(set(before) - set(written)):
        path = out / rel
        if path.is_file() and path.resolve().is_relative_to(out.resolve()):
            path.unlink()
    write_json(out / MARKER, {"written_by": "seqsum report", "files": sorted(set(written))})


def section_overview(ctx: Ctx, doc: Doc) -> None:
    s = ctx.study
    metric, mode = s.metric
    doc.h(SECTIONS[0])
    status = s.trials.status.value_counts() if not s.trials.empty else pd.Series(dtype=int)
    doc.p(
        f"Study `{s.name}` in `{s.dir}`: tasks {', '.join(s.tasks) or 'none yet'}; {len(s.trials)} trial folders"
        + "".join(f", {n} {st}" for st, n in status.items())
        + f"; {len(s.replicates)} replicate runs. Search trials are ranked by {metric} ({mode})."
    )
    doc.table(tables.overview(s))


def section_search(ctx: Ctx, doc: Doc) -> None:
    ctx.step("the search: importance, progress, learning curves, top configs")
    s = ctx.study
    metric, _ = s.metric
    doc.h("The search")
    doc.p("The search picks configurations (one seed per trial); the comparison above is made on the compared runs.")
    imp, skipped = optuna_importances(s.optuna)
    ctx.save_table("importance", imp)
    for task, d in imp.groupby("task", sort=False):
        d = d.sort_values("importance", ascending=False)
        doc.p(
            f"{task}: most important parameter {d.param.iloc[0]} ({d.importance.iloc[0]:.2f})"
            + (f", then {d.param.iloc[1]} ({d.importance.iloc[1]:.2f})" if len(d) > 1 else "")
            + f", over {int(d.n_trials.iloc[0])} complete Optuna trials."
        )
    doc.bullets([f"Parameter importance skipped for {line}" for line in skipped])
    if imp.empty and not skipped:
        doc.p("No parameter importance: optuna.db has no usable Optuna study (see the notes in the overview).")
    if not imp.empty:
        ctx.save_figure(doc, "importance", plots.importance_plot(imp), "Optuna parameter importance per task.")
    bsf = tables.best_so_far(s)
    ctx.save_table("best_so_far", bsf)
    for task, d in bsf.groupby("task", sort=False):
        d = d.dropna(subset=["score"])
        if not d.empty:
            final = d.best_so_far.iloc[-1]
            first = d[d.best_so_far == final].number.iloc[0]
            doc.p(f"{task}: {len(d)} scored trials; the best {metric} {final:.3f} was first reached at trial {first}.")
    ctx.save_figure(
        doc, "best_so_far", plots.best_so_far_plot(bsf, metric), f"{metric} of every trial and the best so far."
    )
    top = tables.top_configs(s)
    ctx.save_table("top_configs", top)
    curves = top[top["rank"] <= 5] if not top.empty else top
    if not s.epochs.empty and not curves.empty:
        ctx.save_figure(
            doc, "learning_curves", plots.learning_curves(s.epochs, curves), "Learning curves of the top trials."
        )
    doc.p(
        "Top configurations per task (one seed each)"
        + (", with their replicates' test exact (mean [95% interval] over seeds)." if not s.replicates.empty else ".")
    )
    doc.table(top)


def section_filters(ctx: Ctx, doc: Doc) -> None:
    ctx.step("first-layer filters")
    s = ctx.study
    doc.h("First-layer filters")
    doc.p(
        'As in the post\'s "Visualizing Layer 1": the first conv layer of the best trial per task beside the '
        "reference digit classifier's (same conv stack, same train digits). Similarity = mean |cosine| of the best "
        "one-to-one matching of zero-mean, unit-norm filters, against the same score for random filters."
    )
    rows = []
    for task in s.tasks:
        sel = ctx.best[(ctx.best.task == task) & (ctx.best.selection == "family")]
        if sel.empty:
            continue
        top = sel.sort_values("score", ascending=s.metric[1] == "min").iloc[0]
        run_dir = Path(s.trials[(s.trials.task == task) & (s.trials.trial_id == top.trial_id)].run_dir.iloc[0])
        try:
            c = compare_run(run_dir, ctx.out / CACHE, train_if_missing=ctx.train_reference)
        except ConfigError as e:
            doc.p(f"{task}: skipped ({e}).")
            continue
        doc.p(c.sentence + ".")
        rows.append({"task": task, "trial_id": top.trial_id, "filters": len(c.run), "kernel": c.run.shape[1],
                     "similarity": c.score, "random_mean": c.random_mean, "random_std": c.random_std})  # fmt: skip
        caption = f"{task}: first-layer filters of trial {top.trial_id} and the reference classifier."
        ctx.save_figure(doc, f"filters_{task}", plot_filters(c), caption)
    ctx.save_table("filters", pd.DataFrame(rows))
