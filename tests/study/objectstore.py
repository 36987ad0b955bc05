"""A real S3-compatible server for the study tests: moto's server mode on loopback, one bucket, and the
environment (AWS_ENDPOINT_URL and keys) that points pyarrow, Ray and seqsum at it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from tests.raytools import kill_pids, session_pids, wait_for

MOTO = Path(sys.executable).parent / "moto_server"
BUCKET = "seqsum-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]
    fs: pafs.S3FileSystem

    def files(self, prefix: str) -> dict[str, int]:
        """{path under `prefix`: size} of every object there."""
        sel = pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True)
        n = len(BUCKET) + len(prefix) + 2
        return {i.path[n:]: i.size for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File}

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(f"{BUCKET}/{path}") as f:
            return f.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def moto_server() -> Iterator[S3]:
    """A moto server on a free loopback port with BUCKET created; stopped (with what it started) on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: proc.poll() is not None or _answers(port), 60, "moto_server to listen")
        assert proc.poll() is None, f"moto_server exited with {proc.returncode}"
        endpoint = f"http://127.0.0.1:{port}"
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint,
            access_key=KEYS["AWS_ACCESS_KEY_ID"],
            secret_key=KEYS["AWS_SECRET_ACCESS_KEY"],
            region=KEYS["AWS_DEFAULT_REGION"],
            allow_bucket_creation=True,
        )
        fs.create_dir(BUCKET)
        yield S3(endpoint, {"AWS_ENDPOINT_URL": endpoint, **KEYS}, fs)
    finally:
        kill_pids(session_pids(proc.pid) | {proc.pid})
        proc.wait()
