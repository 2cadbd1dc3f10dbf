"""The output file: append, torn-line repair, locking, what counts as done."""
from __future__ import annotations

import json

import pytest

from detector.batch.records import BatchRecord, record_key
from detector.batch.resume import OutputLockedError, ResultStore, done_keys, read_output


def _failed(path: str, code: str, sha: str = "a" * 64, key: str = "k1") -> BatchRecord:
    return BatchRecord.failed(path, key, code, "reason", sha256=sha)


def test_append_writes_whole_lines_and_reads_back(tmp_path):
    out = tmp_path / "sub" / "r.jsonl"
    with ResultStore(out) as s:
        s.append(_failed("/a", "corrupt_video"))
        s.append(_failed("/b", "not_a_video", sha="b" * 64))
    raw = out.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2
    rows = read_output(out).rows
    assert [r["path"] for r in rows] == ["/a", "/b"]
    assert BatchRecord.model_validate(rows[0]).error_code == "corrupt_video"


def test_append_refuses_multiline_text(tmp_path):
    with ResultStore(tmp_path / "r.jsonl") as s:
        with pytest.raises(ValueError):
            s.append('{"a": 1}\n{"b": 2}\n')


def test_torn_last_line_is_cut_and_next_append_is_clean(tmp_path):
    out = tmp_path / "r.jsonl"
    good = _failed("/a", "corrupt_video").to_line()
    out.write_text(good + good[: len(good) // 2])  # the machine died mid-write
    assert read_output(out).torn_bytes == len(good) // 2  # reading alone does not modify
    with ResultStore(out) as s:
        assert s.loaded.torn_bytes == len(good) // 2
        assert len(s.loaded.rows) == 1
        s.append(_failed("/b", "corrupt_video"))
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["path"] in ("/a", "/b") for line in lines)


def test_foreign_complete_line_is_kept_but_ignored(tmp_path):
    out = tmp_path / "r.jsonl"
    good = _failed("/a", "corrupt_video").to_line()
    out.write_text("not json at all\n" + good + '{"no": "schema"}\n')
    with ResultStore(out) as s:
        assert s.loaded.bad_lines == 2 and len(s.loaded.rows) == 1
    assert out.read_text().startswith("not json at all\n")


def test_second_writer_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with ResultStore(out):
        with pytest.raises(OutputLockedError):
            ResultStore(out).open()
    ResultStore(out).open().close()  # released on close


def test_done_keys_skip_ok_and_permanent_failures_only():
    sha = "c" * 64
    rows = [
        BatchRecord.failed("/1", "k1", "corrupt_video", "x", sha256="1" * 64).model_dump(),
        BatchRecord.failed("/2", "k1", "worker_crashed", "x", sha256="2" * 64).model_dump(),
        BatchRecord.failed("/3", "k1", "internal_error", "x", sha256="3" * 64).model_dump(),
        BatchRecord.failed("/4", "k1", "corrupt_video", "x", sha256=None).model_dump(),
        BatchRecord.failed("/5", "k2", "corrupt_video", "x", sha256=sha).model_dump(),
        {"status": "ok", "path": "/6", "sha256": sha, "score_key": "k1"},
    ]
    assert done_keys(rows, "k1") == {record_key("1" * 64, "k1"), record_key(sha, "k1")}
    assert done_keys(rows, "k1", retry_failed=True) == {record_key(sha, "k1")}
    assert done_keys(rows, "k2") == {record_key(sha, "k2")}
