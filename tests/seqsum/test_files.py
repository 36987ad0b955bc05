"""seqsum/files.py: atomic writes leave the old file or the new one (never a partial one), with the usual
permissions; damaged files are named in one line."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from seqsum.errors import CorruptFile
from seqsum.files import read_json, read_jsonl, write_csv, write_json, write_parquet, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "a.json"
    write_json(p, {"x": 1})

    class Boom:  # json.dumps fails half-way through the object
        pass

    with pytest.raises(TypeError):
        write_json(p, {"x": 2, "y": Boom()})
    assert read_json(p) == {"x": 1}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.json"]


def test_written_files_get_the_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        for name, write in (
            ("a.txt", lambda p: write_text(p, "x")),
            ("b.csv", lambda p: write_csv(p, pd.DataFrame({"a": [1]}))),
        ):
            write(tmp_path / name)
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644
    finally:
        os.umask(old)


def test_nan_is_written_as_null_and_parquet_round_trips(tmp_path):
    write_json(tmp_path / "a.json", {"v": float("nan"), "w": [float("inf"), 1.5]})
    assert read_json(tmp_path / "a.json") == {"v": None, "w": [None, 1.5]}
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_parquet(tmp_path / "a.parquet", df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), df)


def test_damaged_files_are_named_in_one_line(tmp_path):
    p = tmp_path / "summary.json"
    p.write_text('{"status": "o')
    with pytest.raises(CorruptFile) as e:
        read_json(p, fix="rerun it")
    msg = str(e.value)
    assert str(p) in msg and "rerun it" in msg and "\n" not in msg
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_jsonl(log) == [{"epoch": 1}, {"epoch": 2}]  # a torn last line is dropped
    log.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(CorruptFile, match="line 2"):
        read_jsonl(log)
