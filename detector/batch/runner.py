"""Running a batch: the scheduling loop and the local process-pool backend.

The loop is the same for every backend (local processes, Dask): keep a few
tasks in flight, append each finished row to the output the moment it
arrives, and never hold more than ``capacity`` recordings of unfinished work,
so a crash or Ctrl-C loses at most those.

A worker that dies (a segfault in a native decoder, the OOM killer) takes
every task in flight on that pool with it and we cannot tell which file
killed it. Each of those files is therefore retried *alone*; one that kills a
worker on its own gets a ``worker_crashed`` row, and its neighbours are not
blamed.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from detector.batch.records import PERMANENT_ERRORS, BatchRecord, record_key
from detector.batch.resume import ResultStore, done_keys
from detector.batch.worker import DEFAULT_FACTORY, Outcome, process_path
from detector.errors import ConfigError, DetectorError
from detector.options import ScanOptions


MAX_CRASHES_IN_A_ROW = 5  # solo crashes with nothing else finishing: the workers, not the files, are broken
KILL_GRACE = 10.0  # seconds past the timeout before a worker that ignores it is killed


class BatchAbortedError(DetectorError):
    """The batch cannot go on (e.g. a worker cannot load its models)."""

    def __init__(self, message: str, code: str = "batch_aborted"):
        super().__init__(message)
        self.code = code


class WorkerCrashed(Exception):
    """A task's worker process died. ``definite``: the backend already isolated it."""

    def __init__(self, message: str, definite: bool = False):
        super().__init__(message)
        self.definite = definite


class Requeue(Exception):
    """The task never ran (cancelled with a dead pool): run it again, no blame."""


@dataclass
class BatchStats:
    candidates: int = 0  # files handed to workers
    finished: int = 0  # candidates with an answer (any kind)
    ok: int = 0
    failed: int = 0
    already_done: int = 0  # found in the output from an earlier run
    not_recordings: int = 0
    skipped_reasons: dict[str, int] = field(default_factory=dict)  # walk + worker skips by reason
    verdicts: dict[str, int] = field(default_factory=dict)  # this run's rows
    video_seconds: float = 0.0  # analysed this run
    in_flight: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    torn_bytes_repaired: int = 0
    bad_lines: int = 0

    def skip(self, reason: str) -> None:
        self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + 1


ProgressFn = Callable[[BatchStats, "Outcome | None"], None]
RecordFn = Callable[[Outcome], None]


class Backend:
    """How tasks run. Subclasses: :class:`LocalBackend`, ``DaskBackend``."""

    capacity: int = 1
    can_kill: bool = False  # abort() stops running tasks for real (hard timeouts)

    def start(self, options: ScanOptions, factory: str, done: set[str], timeout_s: float | None = None) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Kill every running task; the next submit starts fresh workers."""
        raise NotImplementedError

    def submit(self, path: str, done: set[str]) -> object:
        raise NotImplementedError

    def wait(self, handles: list, timeout: float) -> list[tuple[object, "Outcome | BaseException"]]:
        raise NotImplementedError

    def shutdown(self, cancel: bool) -> None:
        raise NotImplementedError


# -- local process pool -------------------------------------------------------

_W: dict = {}


def _init_local_worker(options: dict, factory: str, done: frozenset, timeout_s: float | None,
                       log_path: str | None) -> None:
    # the parent owns Ctrl-C: it stops scheduling and terminates us; a worker
    # dying of KeyboardInterrupt mid-file would look like a crash
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if log_path:
        # MediaPipe/TFLite log from C++ straight to fd 2, past any Python
        # logging config; keep that (and any native crash message) in a file
        # next to the output instead of across the progress bar
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    _W.update(options=ScanOptions(**options), factory=factory, done=done, timeout_s=timeout_s)


def _local_task(path: str) -> Outcome:
    return process_path(path, _W["options"], _W["factory"], _W["done"], _W["timeout_s"])


class LocalBackend(Backend):
    """N ``spawn`` processes; each builds its analyzer once, on its first task.

    ``spawn`` rather than ``fork``: the parent may hold threads (rich's
    progress refresh, FFmpeg) and forking a threaded process can deadlock.
    """

    def __init__(self, workers: int = 2, log_path: str | os.PathLike | None = None):
        if workers < 1:
            raise ConfigError("workers must be at least 1")
        self.workers = workers
        self.log_path = os.fspath(log_path) if log_path is not None else None
        self.capacity = workers  # no queued-but-not-running tasks: in flight means running
        self._pool: cf.ProcessPoolExecutor | None = None
        self._broken = False
        self.can_kill = True

    def start(self, options: ScanOptions, factory: str, done: set[str], timeout_s: float | None = None) -> None:
        self._args = (options.to_dict(), factory)
        self._timeout_s = timeout_s
        self._new_pool(done)

    def _new_pool(self, done: set[str]) -> None:
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                            initializer=_init_local_worker,
                                            initargs=(*self._args, frozenset(done), self._timeout_s, self.log_path))
        self._broken = False

    def abort(self) -> None:
        self._kill_pool()
        self._broken = True  # next submit builds a new pool

    def submit(self, path: str, done: set[str]) -> cf.Future:
        if self._broken or self._pool is None:
            self._kill_pool()
            self._new_pool(done)  # a fresh pool also learns what finished meanwhile
        try:
            return self._pool.submit(_local_task, path)
        except cf.process.BrokenProcessPool:
            # the pool died after our last wait(); its running futures will
            # still report the crash, this path just goes to a fresh pool
            self._kill_pool()
            self._new_pool(done)
            return self._pool.submit(_local_task, path)

    def wait(self, handles: list, timeout: float) -> list:
        finished, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in finished:
            try:
                out.append((fut, fut.result()))
            except cf.process.BrokenProcessPool as exc:
                self._broken = True
                out.append((fut, WorkerCrashed(f"worker process died: {exc}")))
            except cf.CancelledError:
                out.append((fut, Requeue()))
            except BaseException as exc:  # an exception pickled back from the worker
                out.append((fut, exc))
        return out

    def _kill_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public "kill": terminate the processes so
        # Ctrl-C does not wait for a two-hour recording to finish
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()

    def shutdown(self, cancel: bool) -> None:
        if cancel:
            self._kill_pool()
        elif self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# -- the loop -------------------------------------------------------------------

def _parent_sha(path: str) -> str | None:
    try:
        from detector.api import file_sha256

        return file_sha256(path)
    except OSError:  # may be unreadable from here (remote workers): then no hash
        return None


def _failed_row(path: str, score_key: str, code: str, message: str, sha256: str | None = None) -> Outcome:
    """A failure row written by the parent for a recording its worker could not report on."""
    rec = BatchRecord.failed(path, score_key, code, message, sha256=sha256)
    return Outcome(path, "record", line=rec.to_line(), status="failed", verdict="failed",
                   key=record_key(sha256, score_key), reason=message, code=code)


def run_batch(paths: Iterable[str], store: ResultStore, options: ScanOptions, backend: Backend,
              factory: str = DEFAULT_FACTORY, retry_failed: bool = False, stats: BatchStats | None = None,
              on_progress: ProgressFn | None = None, on_record: RecordFn | None = None,
              should_stop: Callable[[], bool] | None = None, poll_s: float = 0.25,
              timeout_s: float | None = None) -> BatchStats:
    """Run every path through ``backend``, appending rows to the open ``store``.

    ``timeout_s``: per-recording limit. Workers stop cooperatively at the
    limit; where the backend can kill (local pool), a task still running
    ``KILL_GRACE`` later is killed with its pool, gets a ``timeout`` row, and
    the other tasks that were running are requeued without blame.

    Returns the stats; ``stats.interrupted`` is set when ``should_stop`` or
    Ctrl-C ended the run early (everything finished so far is on disk).
    Raises :class:`BatchAbortedError` when workers cannot run at all.
    """
    options = options.validate()
    score_key = options.result_key()  # settings and model files: a retrained model re-scores
    stats = stats or BatchStats()
    stats.torn_bytes_repaired = store.loaded.torn_bytes
    stats.bad_lines = store.loaded.bad_lines
    done = done_keys(store.loaded.rows, score_key, retry_failed)
    queue = collections.deque(paths)
    stats.candidates = len(queue)
    suspects: collections.deque[str] = collections.deque()  # paths to retry alone after a crash
    inflight: dict[object, tuple[str, bool]] = {}
    started: dict[object, float] = {}
    crashes_in_a_row = [0]
    t0 = time.perf_counter()

    def emit(outcome: Outcome | None) -> None:
        stats.in_flight = len(inflight)
        stats.elapsed_s = time.perf_counter() - t0
        if on_progress is not None:
            on_progress(stats, outcome)

    def record(o: Outcome) -> None:
        if o.kind == "record" and o.key and o.key in done:
            # The same content finished twice in this run: a copy under another name, handed to a worker before
            # its twin's row existed (workers know only what was done when they started). One row per content, as
            # across runs; the copy is counted as skipped.
            stats.skip("copy of another recording (same content)")
        elif o.kind == "record":
            store.append(o.line)
            if o.key and (o.status == "ok" or (not retry_failed and o.code in PERMANENT_ERRORS)):
                done.add(o.key)  # a pool restarted after a crash must not redo this
            if o.status == "ok":
                stats.ok += 1
                stats.video_seconds += o.duration_s or 0.0
            else:
                stats.failed += 1
            stats.verdicts[o.verdict] = stats.verdicts.get(o.verdict, 0) + 1
            if on_record is not None:
                on_record(o)
        elif o.kind == "done":
            stats.already_done += 1
        elif o.kind == "not_recording":
            stats.not_recordings += 1
            stats.skip(o.reason or "not a recording")
        stats.finished += 1
        emit(o)

    def submit(p: str, solo: bool) -> None:
        h = backend.submit(p, done)
        inflight[h] = (p, solo)
        started[h] = time.monotonic()

    def kill_overdue() -> None:
        now = time.monotonic()
        limit = timeout_s + max(KILL_GRACE, 0.25 * timeout_s)  # first task also loads the models
        overdue = [h for h in inflight if now - started[h] > limit]
        if not overdue:
            return
        backend.abort()
        for h, (p, solo) in list(inflight.items()):
            if h in overdue:
                record(_failed_row(p, score_key, "timeout", f"analysis still running past the {timeout_s:g}s limit "
                                    "(plus grace); worker killed", _parent_sha(p)))
            elif solo:
                suspects.appendleft(p)
            else:
                queue.appendleft(p)  # innocent bystander: run it again, no blame
        inflight.clear()
        started.clear()

    clean = False
    try:
        backend.start(options, factory, done, timeout_s)  # inside: a half-started cluster is still shut down
        emit(None)
        while queue or suspects or inflight:
            if should_stop is not None and should_stop():
                stats.interrupted = True
                break
            if suspects:
                if not inflight:
                    submit(suspects.popleft(), True)
            else:
                while queue and len(inflight) < backend.capacity:
                    submit(queue.popleft(), False)
            for handle, res in backend.wait(list(inflight), poll_s):
                path, solo = inflight.pop(handle)
                started.pop(handle, None)
                if isinstance(res, Requeue):
                    (suspects if solo else queue).appendleft(path)
                    continue
                if isinstance(res, WorkerCrashed):
                    if solo or res.definite:
                        crashes_in_a_row[0] += 1
                        if crashes_in_a_row[0] >= MAX_CRASHES_IN_A_ROW:
                            raise BatchAbortedError(f"workers died on {crashes_in_a_row[0]} recordings in a row "
                                                    f"(last: {res}); not blaming more files", "workers_dying")
                        record(_failed_row(path, score_key, "worker_crashed", str(res), _parent_sha(path)))
                    else:
                        suspects.append(path)
                    continue
                crashes_in_a_row[0] = 0
                if isinstance(res, BaseException):
                    record(_failed_row(path, score_key, "internal_error", f"{type(res).__name__}: {res}"))
                elif res.kind == "fatal":
                    raise BatchAbortedError(f"workers cannot analyse: {res.reason}", res.code or "batch_aborted")
                else:
                    record(res)
            if timeout_s and backend.can_kill and inflight:
                kill_overdue()
        clean = not stats.interrupted
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        backend.shutdown(cancel=not clean)
        inflight.clear()
        emit(None)
    return stats
