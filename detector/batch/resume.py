"""The batch output file: read, repair, lock and append.

The JSONL file *is* the checkpoint. There is no side database to drift out of
step with it: a re-run reads it, skips what it already holds and appends.
Three properties keep it trustworthy after a crash, a ``kill -9`` or Ctrl-C:

* only the parent process writes, one whole line per ``os.write`` on an
  ``O_APPEND`` descriptor, followed by ``fsync``; a line is either on disk
  in full or (if the machine died mid-write) an unterminated tail;
* on opening, an unterminated tail (a torn last line) is cut off, so the
  next append starts on a line boundary instead of gluing onto garbage;
* an exclusive ``flock`` stops two batches from interleaving into one file.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from detector.batch.records import PERMANENT_ERRORS, BatchRecord, record_key
from detector.errors import ConfigError


class OutputLockedError(ConfigError):
    """Another batch process holds the output file."""

    code = "output_locked"


@dataclass
class LoadResult:
    rows: list[dict] = field(default_factory=list)  # parsed rows, file order
    bad_lines: int = 0  # complete lines that are not valid rows (kept in the file, ignored)
    torn_bytes: int = 0  # bytes of an unterminated last line that were cut off


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yield ``(end_offset, raw_line)`` for every line, terminated or not."""
    with open(path, "rb") as f:
        offset = 0
        for raw in f:
            offset += len(raw)
            yield offset, raw


def parse_line(raw: bytes) -> dict | None:
    try:
        row = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(row, dict) or "status" not in row or "path" not in row or "score_key" not in row:
        return None
    return row


def read_output(path: str | os.PathLike) -> LoadResult:
    """Parse an output file without modifying it (torn tail counted, not cut)."""
    res = LoadResult()
    if not os.path.exists(path):
        return res
    for _, raw in iter_rows(path):
        if not raw.endswith(b"\n"):
            res.torn_bytes = len(raw)
            break
        if not raw.strip():
            continue
        row = parse_line(raw)
        if row is None:
            res.bad_lines += 1
        else:
            res.rows.append(row)
    return res


def done_keys(rows: list[dict], score_key: str, retry_failed: bool = False) -> set[str]:
    """Keys of work that a re-run must not repeat.

    Successful rows always count. Failed rows count only when the failure is
    a property of the file (corrupt, not decodable): retrying those wastes a
    worker for the same answer. Crashes and internal errors are retried.
    """
    keys = set()
    for row in rows:
        if row.get("score_key") != score_key:
            continue
        k = record_key(row.get("sha256"), score_key)
        if k is None:
            continue
        if row.get("status") == "ok" or (not retry_failed and row.get("error_code") in PERMANENT_ERRORS):
            keys.add(k)
    return keys


class ResultStore:
    """Append-only, locked, crash-safe JSONL writer. Use as a context manager."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None
        self.loaded = LoadResult()

    def open(self) -> "ResultStore":
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(f"another batch is writing to {self.path}")
        self._fd = fd
        self.loaded = self._load_and_repair()
        return self

    def _load_and_repair(self) -> LoadResult:
        res = LoadResult()
        good_end = 0
        for end, raw in iter_rows(self.path):
            if not raw.endswith(b"\n"):
                res.torn_bytes = len(raw)
                break
            good_end = end
            if not raw.strip():
                continue
            row = parse_line(raw)
            if row is None:
                res.bad_lines += 1  # a complete but foreign line: keep it, it is not ours to delete
            else:
                res.rows.append(row)
        if res.torn_bytes:
            # the previous run died mid-line; cut the fragment so the next
            # append starts a fresh line (we hold the lock, nobody else writes)
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)
        return res

    def append(self, record: BatchRecord | str) -> None:
        if self._fd is None:
            raise RuntimeError("ResultStore is not open")
        data = (record.to_line() if isinstance(record, BatchRecord) else record).encode("utf-8")
        if not data.endswith(b"\n") or b"\n" in data[:-1]:
            raise ValueError("a batch row must be exactly one line")
        view = memoryview(data)
        while view:  # os.write may write less than asked (signals, pipes); finish the line
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "ResultStore":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
