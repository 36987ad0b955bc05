"""Atomic, durable file writes and one-line errors for unreadable files.

Every file seqsum writes (JSON, CSV, Parquet, YAML, text, checkpoints) goes through `atomic_write`: the
bytes land in a temporary file in the same folder, are flushed and fsynced, and the temporary file is
renamed over the target (then the folder is fsynced). A crash leaves either the old file or the new one,
never a truncated one. Readers that find a damaged file anyway raise `CorruptFile`: one line naming the
file and how to recover.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .config import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)


class CorruptFile(ConfigError):
    """A file that exists but cannot be read back (truncated, not JSON, wrong shape)."""


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on success fsync it and rename it to `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


NAME_MAX = 255  # bytes in one file or folder name (ext4, xfs, btrfs, tmpfs, NFS)


def check_name_lengths(path: str | Path, what: str) -> None:
    """Refuse (ConfigError, before anything is written) a path with a name the file system cannot hold."""
    for part in Path(path).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise ConfigError(
                f"{what} {str(path)[:60]!r}...: the name {part[:30]!r}... is {len(os.fsencode(part))} bytes; "
                f"allowed: at most {NAME_MAX} per name"
            )


def check_writable(folder: str | Path, what: str) -> None:
    """Refuse (ConfigError, nothing written) a folder that exists as a file, or cannot be made or written:
    a file on its path, a read-only parent, a name too long for the file system."""
    folder = Path(folder)
    check_name_lengths(folder, what)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {str(folder)!r} exists and is not a folder")
    base = next(p for p in (folder, *folder.absolute().parents) if p.exists())  # the folder it would be made in
    if not base.is_dir():
        raise ConfigError(f"{what} {str(folder)!r} cannot be made: {str(base)!r} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {str(folder)!r} is not writable ({str(base)!r} is read-only); choose another")
    try:  # root passes os.access everywhere: /proc, sysfs and the like refuse only a real attempt
        os.rmdir(tempfile.mkdtemp(prefix=".seqsum-probe-", dir=base))
    except OSError as e:
        why = f"cannot be made in {str(base)!r} ({e.strerror})"
        raise ConfigError(f"{what} {str(folder)!r} {why}; choose another") from None


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN/Inf become null), indented, atomically."""
    write_text(path, json.dumps(clean(obj), indent=2) + "\n")


def write_csv(path: str | Path, df) -> None:
    write_text(path, df.to_csv(index=False))


def write_parquet(path: str | Path, df) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    write_bytes(path, buf.getvalue())


def write_with(path: str | Path, save: Callable[[IO], None]) -> None:
    """Atomically write whatever `save(binary_file)` writes (torch.save, savefig, ...)."""
    with atomic_write(path, "wb") as f:
        save(f)


def append_line(path: str | Path, line: str) -> None:
    """Append one line and fsync (JSON Lines logs: a torn last line is skipped by `read_jsonl`)."""
    with open(path, "a") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_json(path: str | Path, fix: str = "") -> Any:
    """Parse a JSON file; a truncated or invalid one raises CorruptFile naming it (and `fix`, how to recover)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as e:
        hint = f"; {fix}" if fix else ""
        raise CorruptFile(f"{str(path)!r} is corrupt ({str(e).splitlines()[0]}){hint}") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """JSON Lines; a torn last line (a crash mid-append) is dropped, a bad line elsewhere is CorruptFile."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break
            raise CorruptFile(f"{str(path)!r} line {i + 1} is not JSON") from None
    return out


def clean(obj: Any) -> Any:
    """NaN/Inf -> None so that every file is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj
