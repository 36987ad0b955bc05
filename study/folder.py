"""The study folder's own files (docs/STUDY_LAYOUT.md): study.yaml and state.json, written atomically.

A study lives in a folder or at a URI (study/storage.py); these functions take and return its Place,
whose `local` folder is where every command reads and writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqsum.errors import ConfigError, CorruptFile, StudyError
from seqsum.files import check_writable, read_json, write_json, write_text

from . import storage, storage_check
from .config import StudyConfig

STATE = "state.json"
SPEC = "study.yaml"


def place_of(cfg: StudyConfig) -> storage.Place:
    """Where the study of `cfg` lives: <storage>/<name> (a folder or a URI)."""
    return storage.place(cfg.where.storage, cfg.where.name)


def read_state(folder: Path) -> dict[str, Any]:
    """{"tasks": {task: {"status": "done", ...}}} of a study (or of its rerun/ folder)."""
    p = folder / STATE
    fix = "delete it and resume: finished tasks are run again"
    state = read_json(p, fix=fix) if p.exists() else {"tasks": {}}
    tasks = state.get("tasks", {}) if isinstance(state, dict) else None
    if not isinstance(tasks, dict) or not all(isinstance(t, dict) for t in tasks.values()):
        raise CorruptFile(f"{str(p)!r} is not a study's state (a mapping with tasks: {{...}}); {fix}")
    return state


def write_state(folder: Path, state: dict[str, Any]) -> None:
    write_json(folder / STATE, state)


def open_study(location: str | Path, skip: tuple[str, ...] = ()) -> tuple[storage.Place, StudyConfig]:
    """The Place and the config (parsed once) of an existing study, a folder or a URI; a URI's files
    (all but `skip` and tune/) are pulled into its local working copy first."""
    p = storage.place(location)
    if p.remote:
        storage_check.check(p.where)
    if not storage.exists(p, SPEC):
        raise StudyError(f"{p.where!r} is not a study {'URI' if p.remote else 'folder'} (no {SPEC})")
    p.pull(skip)
    return p, StudyConfig.load(p.local / SPEC)


def check_new_study_dir(cfg: StudyConfig) -> storage.Place:
    """The Place a new study would get; refuses one that holds anything already, or a folder that cannot
    be made or written (nothing is written)."""
    p = place_of(cfg)
    if p.remote:
        storage_check.check(p.where)
    else:
        _check_writable(p.local)
    if storage.exists(p, SPEC):
        if StudyConfig.from_yaml(storage.read_text(p, SPEC)).to_dict() == cfg.to_dict():
            raise StudyError(f"study {p.where!r} already exists; continue it with: seqsum study resume {p.where}")
        raise StudyError(
            f"storage folder {p.where!r} already holds a different study; choose another --name or --storage"
        )
    if not storage.is_empty(p):
        raise StudyError(f"{p.where!r} exists and is not empty; choose another --name or --storage")
    return p


def _check_writable(folder: Path) -> None:
    """A study folder that exists as a folder, or whose nearest existing parent is a writable folder."""
    try:
        check_writable(folder, "study folder")
    except ConfigError as e:
        raise StudyError(f"{e} (--storage/--name)") from None


def create_study_dir(cfg: StudyConfig) -> storage.Place:
    p = check_new_study_dir(cfg)
    storage.forget(p)  # a URI's working copy starts afresh
    p.local.mkdir(parents=True, exist_ok=True)
    write_text(p.local / SPEC, cfg.to_yaml())
    write_state(p.local, {"tasks": {}})
    try:
        p.push()
    except Exception as e:  # e.g. credentials that may read but not write
        storage.forget(p)
        raise StudyError(f"cannot write to {p.where!r}: {str(e).splitlines()[0][:200]}") from None
    return p
