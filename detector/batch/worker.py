"""What one worker does with one path; shared by the local pool and Dask.

A worker process builds its analyzer once (models loaded once) and keeps it
in a module-level cache for every later task, whatever ran the task: a
``spawn`` process of the local pool or a Dask worker process. The analyzer is
built by a *factory named by a string* (``"module:callable"``) because a
spawned or remote process cannot receive a live object, and because tests
substitute a model-free analyzer that way.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Collection

from detector.batch.discover import classify
from detector.batch.records import BatchRecord, record_key
from detector.errors import DetectorError, InputError
from detector.options import ScanOptions

DEFAULT_FACTORY = "detector.api:Analyzer"

_CACHE: dict[tuple, object] = {}
_CACHE_LOCK = threading.Lock()


class FatalBatchError(Exception):
    """Raised in the parent when a worker cannot run at all (e.g. models missing)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    """A worker's answer for one path (small and picklable)."""

    path: str
    kind: str  # "record" | "done" (already in the output) | "not_recording" | "fatal"
    line: str | None = None  # the BatchRecord JSON line, for kind == "record"
    status: str | None = None  # "ok" | "failed"
    verdict: str | None = None
    probability: float | None = None
    duration_s: float | None = None
    key: str | None = None
    reason: str | None = None  # why skipped / failed / fatal
    code: str | None = None


def load_factory(spec: str) -> Callable[[ScanOptions], object]:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"analyzer factory must be 'module:callable', got {spec!r}")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def worker_options(options: ScanOptions) -> ScanOptions:
    # the worker hashes the file itself (it needs the hash before scanning, to
    # skip finished work), so the analyzer must not read the file twice
    return dataclasses.replace(options, hash_file=False)


def get_analyzer(factory_spec: str, options: ScanOptions) -> object:
    """The analyzer of this process (and thread) for these options, built once."""
    key = (factory_spec, json.dumps(options.to_dict(), sort_keys=True, default=str), threading.get_ident())
    with _CACHE_LOCK:
        analyzer = _CACHE.get(key)
    if analyzer is None:
        # built outside the lock: model loading takes seconds, and each thread has its own key
        analyzer = load_factory(factory_spec)(worker_options(options))
        with _CACHE_LOCK:
            _CACHE[key] = analyzer
    return analyzer


def close_analyzers() -> None:
    with _CACHE_LOCK:
        items = list(_CACHE.values())
        _CACHE.clear()
    for a in items:
        close = getattr(a, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass  # closing at shutdown must not mask the real outcome


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _hash(path: str) -> str:
    from detector.api import file_sha256

    return file_sha256(path)


def _failed(path: str, score_key: str, code: str, error: str, sha: str | None, size: int | None,
            t0: float) -> Outcome:
    rec = BatchRecord.failed(path, score_key, code, error, sha256=sha, size_bytes=size,
                             elapsed_s=round(time.perf_counter() - t0, 3), worker=worker_name())
    return Outcome(path, "record", line=rec.to_line(), status="failed", verdict="failed",
                   key=record_key(sha, score_key), reason=error, code=code)


def process_path(path: str, options: ScanOptions, factory_spec: str = DEFAULT_FACTORY,
                 done: Collection[str] = (), timeout_s: float | None = None) -> Outcome:
    """Classify, hash, skip-if-done, then scan one path. Never raises for a bad file.

    ``timeout_s`` asks the analyzer to give up (between frames) after that
    long; the recording gets a ``timeout`` row. A hang inside native code does
    not see the request: the local backend also kills overdue workers.
    """
    t0 = time.perf_counter()
    score_key = options.result_key()  # settings and model files: a retrained model re-scores
    c = classify(path)
    if c.kind == "not_recording":
        return Outcome(path, "not_recording", reason=c.reason)
    try:
        sha = _hash(path)
    except OSError as exc:
        return _failed(path, score_key, "bad_input", f"cannot read: {exc.strerror or exc}", None, c.size_bytes, t0)
    key = record_key(sha, score_key)
    if key in done:
        return Outcome(path, "done", key=key)
    if c.kind == "broken":
        return _failed(path, score_key, c.code or "bad_input", c.reason, sha, c.size_bytes, t0)
    try:
        analyzer = get_analyzer(factory_spec, options)
    except DetectorError as exc:
        return Outcome(path, "fatal", reason=str(exc), code=exc.code)
    except Exception as exc:  # a broken install must stop the batch, not fail every file
        return Outcome(path, "fatal", reason=f"cannot build analyzer: {exc!r}", code="internal_error")
    deadline = None if not timeout_s else time.monotonic() + timeout_s
    should_stop = None if deadline is None else (lambda: time.monotonic() > deadline)
    try:
        report = analyzer.scan(path, should_stop=should_stop)
    except InputError as exc:
        return _failed(path, score_key, exc.code, str(exc), sha, c.size_bytes, t0)
    except DetectorError as exc:
        if exc.code == "cancelled" and deadline is not None and time.monotonic() > deadline:
            return _failed(path, score_key, "timeout", f"analysis took longer than {timeout_s:g}s",
                           sha, c.size_bytes, t0)
        return _failed(path, score_key, exc.code, str(exc), sha, c.size_bytes, t0)
    except MemoryError:
        return _failed(path, score_key, "out_of_memory", "ran out of memory", sha, c.size_bytes, t0)
    except Exception as exc:  # a decoder or model bug on one file must not end the batch
        return _failed(path, score_key, "internal_error", f"{type(exc).__name__}: {exc}", sha, c.size_bytes, t0)
    report.video.sha256 = sha
    rec = BatchRecord.ok(path, sha, score_key, report, size_bytes=c.size_bytes,
                         elapsed_s=round(time.perf_counter() - t0, 3), worker=worker_name())
    return Outcome(path, "record", line=rec.to_line(), status="ok", verdict=report.verdict.value,
                   probability=report.probability, duration_s=report.video.duration_s, key=key)
