"""Atomic, durable file writes and one-line errors for unreadable files.

Every file seqsum writes (JSON, CSV, Parquet, YAML, text, checkpoints) goes through `atomic_write`: the
bytes land in a temporary file in the same folder, are flushed and fsynced, and the temporary file is
renamed over the target (then the folder is fsynced). A crash leaves either the old file or the new one,
never a truncated one. Readers that find a damaged file anyway raise `CorruptFile`: one line naming the
file and how to recover.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError, CorruptFile

_UMASK = os.umask(0)
os.umask(_UMASK)


FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(Exception):
    """A write the file system refused for want of space (ENOSPC) or quota (EDQUOT): one line naming the
    folder, the file being written and the space left. The file's earlier version is untouched."""

    def __init__(self, path: str | Path, why: int = errno.ENOSPC):
        self.path = Path(path)
        self.folder = self.path.parent
        self.free = free_bytes(self.folder)
        what = "no space left" if why == errno.ENOSPC else "disk quota exceeded"
        free = "unknown" if self.free is None else human_bytes(self.free)
        super().__init__(
            f"{what} in {str(self.folder)!r} while writing {self.path.name} ({free} free there); "
            f"{self.path.name} and every earlier file are as they were: free some space and run again"
        )


def free_bytes(folder: str | Path) -> int | None:
    """Bytes free for an unprivileged writer on the file system holding `folder` (None if unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def full_errno(e: BaseException | None) -> int | None:
    """ENOSPC/EDQUOT when `e`, or an exception it wraps (torch.save's RuntimeError around a failed write),
    is the file system running out of space or quota; else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL:
            return e.errno
        e = e.__cause__ or e.__context__
    return None


class _Watched:
    """A file object that remembers a write refused for want of space: libraries that wrap the OSError
    (torch.save raises RuntimeError 'PytorchStreamWriter failed writing file') lose its errno."""

    def __init__(self, f: IO):
        self._f, self.full = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as e:
            if e.errno in FULL:
                self.full = e.errno
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on success fsync it and rename it to `path`.

    Out of space or quota (ENOSPC, EDQUOT, however a library wraps it) raises DiskFull, after removing
    the temporary file: `path` keeps its earlier version."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if e.errno in FULL:
            raise DiskFull(path, e.errno) from None
        raise
    watched = None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual permissions
        with os.fdopen(fd, mode) as f:
            watched = _Watched(f)
            yield watched
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        why = (watched.full if watched is not None else None) or full_errno(e)
        if why is not None and not isinstance(e, DiskFull):
            raise DiskFull(path, why) from None
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
    """Append one line and fsync (JSON Lines logs: a torn last line is skipped by `read_jsonl`).

    Out of space: the file is cut back to its earlier length and DiskFull raised."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            if e.errno not in FULL:
                raise
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise DiskFull(path, e.errno) from None
    finally:
        os.close(fd)


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
