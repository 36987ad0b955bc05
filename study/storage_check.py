"""A study storage checked before anything is written: a URI that is malformed, or whose endpoint or bucket
does not answer, fails within seconds as one StudyError; a folder must be writable."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from seqsum.errors import ConfigError, StudyError
from seqsum.files import check_writable

from .storage import filesystem, info

TIMEOUT_S = 10.0  # a storage URI that does not answer within this is unreachable


def check(uri: str) -> None:
    """Fail within seconds, writing nothing, when a URI is malformed, its endpoint or bucket unreachable."""
    fs, base = filesystem(uri)
    kind = type(fs).__name__
    if kind == "LocalFileSystem":  # file:///path: a folder after all
        _check_local(uri, Path(base))
    if kind == "_MockFileSystem":  # lives in one process's memory: trials on other workers could not reach it
        raise StudyError(f"storage {uri!r} is pyarrow's in-memory test filesystem; use a folder, s3:// or gs://")
    if kind not in ("S3FileSystem", "GcsFileSystem"):
        return
    bucket = base.split("/")[0]
    if not bucket:
        raise StudyError(f"storage {uri!r} names no bucket; use {urlsplit(uri).scheme}://BUCKET/path")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if kind == "S3FileSystem" and endpoint:
        _check_endpoint(uri, endpoint)
    out: list = []

    def probe() -> None:
        try:
            out.append(info(fs, bucket))
        except Exception as e:  # OSError with the store's message
            out.append(e)

    t = threading.Thread(target=probe, daemon=True)  # an unreachable store may retry for minutes
    t.start()
    t.join(TIMEOUT_S)
    if not out:
        raise StudyError(f"storage {uri!r} did not answer within {TIMEOUT_S:g} s (credentials, network, endpoint?)")
    if isinstance(out[0], Exception):
        raise StudyError(f"storage {uri!r} is unreachable: {str(out[0]).splitlines()[0][:300]}")
    if out[0].type.name == "NotFound":
        at = f" at {endpoint}" if endpoint and kind == "S3FileSystem" else ""
        raise StudyError(f"storage {uri!r}: bucket {bucket!r} does not exist{at}; create it first")


def _check_local(uri: str, folder: Path) -> None:
    try:
        check_writable(folder, "storage")
    except ConfigError as e:
        raise StudyError(f"{e} ({uri})") from None


def _check_endpoint(uri: str, endpoint: str) -> None:
    p = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    port = p.port or (443 if p.scheme == "https" else 80)
    try:
        with socket.create_connection((p.hostname or "", port), timeout=5):
            pass
    except OSError as e:
        raise StudyError(
            f"storage {uri!r}: endpoint {endpoint!r} (AWS_ENDPOINT_URL) is unreachable: {e.strerror or e}"
        ) from None
