"""Fixtures of the study tests: one real S3-compatible server (tests/study/objectstore.py) shared by the
object-store tests and the storage contract, and an environment pointed at it."""

from __future__ import annotations

import pytest

from study import storage
from tests.study.objectstore import S3, moto_server


@pytest.fixture(scope="package")
def s3():
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3, monkeypatch, tmp_path) -> S3:
    """s3, with this process's environment pointed at it and a working-copy cache of the test's own."""
    for k, v in s3.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    return s3
