"""The study folder's own files (docs/STUDY_LAYOUT.md): study.yaml and state.json, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqsum.files import read_json, write_json, write_text

from .config import StudyConfig
from .session import StudyError

STATE = "state.json"


def study_dir_of(cfg: StudyConfig) -> Path:
    if "://" in cfg.where.storage:
        raise StudyError(
            f"storage {cfg.where.storage!r}: URIs are not supported yet; use a local or shared (NFS) folder"
        )
    return Path(cfg.where.storage).expanduser().resolve() / cfg.where.name


def read_state(folder: Path) -> dict[str, Any]:
    """{"tasks": {task: {"status": "done", ...}}} of a study (or of its rerun/ folder)."""
    p = folder / STATE
    return read_json(p, fix="delete it and resume: finished tasks are run again") if p.exists() else {"tasks": {}}


def write_state(folder: Path, state: dict[str, Any]) -> None:
    write_json(folder / STATE, state)


def load_study(study_dir: str | Path) -> tuple[Path, StudyConfig]:
    """The folder and the config (parsed once) of an existing study."""
    study_dir = Path(study_dir).expanduser().resolve()
    if not (study_dir / "study.yaml").is_file():
        raise StudyError(f"{str(study_dir)!r} is not a study folder (no study.yaml)")
    return study_dir, StudyConfig.load(study_dir / "study.yaml")


def check_new_study_dir(cfg: StudyConfig) -> Path:
    """The folder a new study would get; refuses one that holds anything already (nothing is written)."""
    d = study_dir_of(cfg)
    if (d / "study.yaml").exists():
        if StudyConfig.load(d / "study.yaml").to_dict() == cfg.to_dict():
            raise StudyError(f"study {str(d)!r} already exists; continue it with: seqsum study resume {d}")
        raise StudyError(
            f"storage folder {str(d)!r} already holds a different study; choose another --name or --storage"
        )
    if d.exists() and not d.is_dir():
        raise StudyError(f"{str(d)!r} exists and is not a folder; choose another --name or --storage")
    if d.exists() and any(d.iterdir()):
        raise StudyError(f"{str(d)!r} exists and is not empty; choose another --name or --storage")
    return d


def create_study_dir(cfg: StudyConfig) -> Path:
    d = check_new_study_dir(cfg)
    d.mkdir(parents=True, exist_ok=True)
    write_text(d / "study.yaml", cfg.to_yaml())
    write_state(d, {"tasks": {}})
    return d
