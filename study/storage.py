"""Where a study lives: a folder (local or shared), or a URI of any pyarrow filesystem (s3://, gs://, ...).

Every command works on a local folder (`Place.local`). For a folder that is the study folder itself.
For a URI (`s3://bucket/studies/NAME`) it is a working copy on this machine
(`$SEQSUM_CACHE_DIR/studies/<scheme>/<bucket>/<path>`, default `~/.cache/seqsum/studies/...`): `pull()`
mirrors the study's files from the URI into it and `push()` uploads what changed since the last pull
or push (whole objects; files deleted locally are deleted at the URI). Ray Tune's experiments
(`tune/`) never pass through the working copy: Tune writes them to `URI/tune` itself (its storage_path),
so trials on any node reach the store directly. The endpoint and credentials are pyarrow's (and Ray's):
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION for S3-compatible stores.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from seqsum.errors import StudyError

TUNE = "tune"  # Tune's experiments: written to the store by Tune, never part of the working copy
CACHE_ENV = "SEQSUM_CACHE_DIR"
_SYNCED: dict[str, dict[str, tuple[int, int]]] = {}  # working copy -> {relative path: (size, mtime_ns) in sync}
_ACTIVE: list[Place] = []


def is_uri(location: str) -> bool:
    return "://" in str(location)


def join(uri: str, *parts: str) -> str:
    base, sep, query = uri.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


@dataclass(frozen=True)
class Place:
    """A study's location as the user names it (`where`: a folder or a URI) and the folder commands work in."""

    where: str
    local: Path

    @property
    def remote(self) -> bool:
        return is_uri(self.where)

    def tune_path(self, *parts: str) -> str:
        """Where Tune keeps its experiments (a RunConfig storage_path), or one experiment of them."""
        return join(self.where, TUNE, *parts) if self.remote else str(Path(self.local, TUNE, *parts))

    def remove_tune(self, name: str) -> None:
        """Delete one Tune experiment (a rerun replaced with --overwrite)."""
        if not self.remote:
            shutil.rmtree(self.local / TUNE / name, ignore_errors=True)
            return
        fs, base = filesystem(self.where)
        path = f"{base}/{TUNE}/{name}"
        if info(fs, path).type.name == "Directory":
            fs.delete_dir(path)

    def pull(self, skip: tuple[str, ...] = ()) -> None:
        """Mirror the URI's study files (all but tune/ and `skip`) into the working copy."""
        if self.remote:
            pull(self, (TUNE, *skip))

    def push(self) -> None:
        """Upload the working copy's files that changed since the last pull or push; delete removed ones."""
        if self.remote:
            push(self)


def place(location: str | Path, name: str | None = None) -> Place:
    """The Place of the study at `location` (a study folder or URI), or of study `name` under `location`."""
    location = str(location)
    if not is_uri(location):
        folder = Path(location).expanduser().resolve()
        return Place(str(folder / name) if name else str(folder), folder / name if name else folder)
    where = join(location, name) if name else location.rstrip("/")
    parts = urlsplit(where)
    segments = [parts.netloc, *parts.path.strip("/").split("/")]
    if any(seg in (".", "..") for seg in segments) or not parts.scheme.replace("+", "").isalnum():
        raise StudyError(f"storage URI {where!r}: no '.' or '..' segments allowed, and a scheme such as s3://")
    given = urlsplit(location)
    if not given.netloc and not given.path.strip("/"):  # "s3://": joined with a name it would lose its "//"
        raise StudyError(f"storage URI {location!r} names no bucket or folder; use {given.scheme}://BUCKET/path")
    return Place(where, cache_root() / "studies" / parts.scheme / "/".join(s for s in segments if s))


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqsum"


ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


@cache
def _filesystem(uri: str, env: tuple):
    import pyarrow.fs as pafs  # pyarrow: only a study at a URI needs it

    return pafs.FileSystem.from_uri(uri)


def filesystem(uri: str):
    """(pyarrow filesystem, base path) of a URI; a URI pyarrow cannot use raises StudyError (one line)."""
    try:
        fs, path = _filesystem(uri, tuple(os.environ.get(v) for v in ENDPOINT_VARS))
    except Exception as e:  # ArrowInvalid, OSError (e.g. hdfs without a JVM)
        raise StudyError(
            f"storage {uri!r}: {str(e).splitlines()[0]}; give a folder or a URI Ray Tune accepts "
            "(s3://bucket/path, gs://bucket/path, any pyarrow filesystem)"
        ) from None
    return fs, path.rstrip("/")


def info(fs, path: str):
    return fs.get_file_info(path)


def exists(p: Place, rel: str) -> bool:
    """Whether the study at `p` holds the file `rel` (at its URI, or in its folder)."""
    if not p.remote:
        return (p.local / rel).exists()
    fs, base = filesystem(p.where)
    return info(fs, f"{base}/{rel}").type.name == "File"


def read_text(p: Place, rel: str) -> str:
    if not p.remote:
        return (p.local / rel).read_text()
    fs, base = filesystem(p.where)
    with fs.open_input_stream(f"{base}/{rel}") as f:
        return f.read().decode()


def is_empty(p: Place) -> bool:
    """Whether nothing is stored at the study's location yet."""
    if not p.remote:
        return not p.local.exists() or (p.local.is_dir() and not any(p.local.iterdir()))
    return not _remote_files(p)


def _remote_files(p: Place) -> dict[str, object]:
    import pyarrow.fs as pafs  # (the same)

    fs, base = filesystem(p.where)
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path[len(base) + 1 :]: i for i in infos if i.type.name == "File"}


def _local_files(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of the study files in a working copy (no temporary files)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        top = dirpath == str(root)
        dirnames[:] = [d for d in dirnames if not d.startswith(".collect-") and not (top and d == TUNE)]
        for f in filenames:
            if (f.startswith(".") and f.endswith(".tmp")) or f.endswith(("-journal", "-wal", "-shm")):
                continue  # seqsum.files' temporary files; SQLite's while a transaction is open
            path = Path(dirpath, f)
            st = path.stat()
            out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def _skipped(rel: str, skip: tuple[str, ...]) -> bool:
    return rel.split("/", 1)[0] in skip


def pull(p: Place, skip: tuple[str, ...]) -> None:
    import pyarrow.fs as pafs  # (the same)

    fs, base = filesystem(p.where)
    remote = {rel: i for rel, i in _remote_files(p).items() if not _skipped(rel, skip)}
    p.local.mkdir(parents=True, exist_ok=True)
    synced = _SYNCED.setdefault(str(p.local), {})
    local = {rel: v for rel, v in _local_files(p.local).items() if not _skipped(rel, skip)}
    for rel in set(local) - set(remote):  # the URI is the truth: e.g. a rerun replaced on another machine
        (p.local / rel).unlink()
        synced.pop(rel, None)
    for rel, info in remote.items():
        mtime_ns = int(info.mtime_ns or 0)
        if local.get(rel) != (info.size, mtime_ns):
            dst = p.local / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.pull.tmp")
            pafs.copy_files(f"{base}/{rel}", str(tmp), fs, pafs.LocalFileSystem())
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, dst)
        synced[rel] = (info.size, mtime_ns)


def push(p: Place) -> None:
    import pyarrow.fs as pafs  # (the same)

    fs, base = filesystem(p.where)
    synced = _SYNCED.setdefault(str(p.local), {})
    local = _local_files(p.local) if p.local.is_dir() else {}
    for rel, stamp in sorted(local.items()):
        if synced.get(rel) != stamp:
            pafs.copy_files(str(p.local / rel), f"{base}/{rel}", pafs.LocalFileSystem(), fs)
            synced[rel] = stamp
    for rel in set(synced) - set(local):
        try:
            fs.delete_file(f"{base}/{rel}")
        except FileNotFoundError:
            pass
        del synced[rel]


def sync(p: Place, strict: bool = False) -> None:
    """Push a URI study's working copy. A failure is a warning (the next synchronisation point retries),
    or with `strict` (a command's last one) a StudyError naming the working copy."""
    try:
        p.push()
    except Exception as e:  # the trials are safe in Tune's experiment at the URI
        why = f"could not upload to {p.where}: {str(e).splitlines()[0][:200]}"
        if strict:
            raise StudyError(f"{why}; the study's files are in {p.local}, the trials at the URI") from None
        print(f"seqsum: warning: {why}", file=sys.stderr)


def forget(p: Place) -> None:
    """Start a new study's working copy afresh (its URI holds nothing yet)."""
    if p.remote:
        shutil.rmtree(p.local, ignore_errors=True)
        _SYNCED.pop(str(p.local), None)
        root = cache_root()
        for parent in p.local.parents:  # and the folders made for it, while empty, up to the cache root
            if not parent.is_relative_to(root) or not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()


class active:
    """`with active(place):` the study the driver callbacks of this process collect into and push."""

    def __init__(self, p: Place):
        self.p = p

    def __enter__(self) -> Place:
        _ACTIVE.append(self.p)
        return self.p

    def __exit__(self, *exc) -> None:
        _ACTIVE.remove(self.p)


def current() -> Place | None:
    return _ACTIVE[-1] if _ACTIVE else None
