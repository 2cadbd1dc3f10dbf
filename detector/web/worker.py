"""Background analysis workers.

Each worker is a thread that builds ONE analyzer when it starts (models
load once per worker) and then claims queued jobs from the store until the
pool stops. Threads rather than processes because the heavy lifting
(FFmpeg, MediaPipe, onnxruntime) runs in native code that releases the GIL,
and so that a test can inject a fake analyzer. A process that dies mid-job
is covered by :meth:`JobStore.recover_interrupted` at the next start.

The queue is bounded where it matters: uploads beyond ``max_queued``
waiting jobs are refused before a byte is stored (see the app).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Protocol

from detector.analysis import Cancelled
from detector.api import SECOND_PASS_LABEL
from detector.errors import DetectorError
from detector.report.model import Report
from detector.web.store import Job, JobStore
from detector.web.uploads import upload_path

log = logging.getLogger("detector.web")

# Progress is written at most this often per job: enough for a live bar,
# few enough writes that SQLite never becomes the bottleneck.
_PROGRESS_INTERVAL_S = 0.5
_PROGRESS_STEP = 0.02  # ...or when it moved this much, so a jump is never hidden behind the interval


class ScanningAnalyzer(Protocol):
    def scan(self, path, progress=None, should_stop=None, shot_cuts=None) -> Report: ...

    def close(self) -> None: ...


AnalyzerFactory = Callable[[], ScanningAnalyzer]


class WorkerPool:
    def __init__(self, store: JobStore, uploads_dir: Path, analyzer_factory: AnalyzerFactory, workers: int = 1):
        self.store = store
        self.uploads_dir = uploads_dir
        self.analyzer_factory = analyzer_factory
        self.size = workers
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running: dict[str, threading.Event] = {}  # job id -> set when its worker let go of it
        self.startup_error: Optional[str] = None  # why analysis is unavailable (e.g. a missing model)
        self.ready = threading.Event()  # set once every worker has tried to build its analyzer
        self._ready_count = 0

    # -- control --------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.size):
            t = threading.Thread(target=self._run, name=f"detector-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        """A job was queued: wake one idle worker."""
        with self._wake:
            self._wake.notify()

    def cancel(self, job_id: str, wait_s: float = 10.0) -> None:
        """Stop the job if a worker is on it, and wait until the worker has let go."""
        with self._cancel_lock:
            self._cancelled.add(job_id)
            released = self._running.get(job_id)
        if released is not None:
            released.wait(wait_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming; running jobs are interrupted and go back to the queue."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    # -- the worker loop ------------------------------------------------------

    def _mark_ready(self) -> None:
        with self._cancel_lock:
            self._ready_count += 1
            if self._ready_count >= self.size:
                self.ready.set()

    def _run(self) -> None:
        try:
            analyzer = self.analyzer_factory()
        except Exception as exc:  # a missing model must not take the web app down with it
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.error("analysis worker could not start: %s", self.startup_error)
            self._mark_ready()
            return
        self._mark_ready()
        try:
            while not self._stopping.is_set():
                job = self.store.claim_next()
                if job is None:
                    with self._wake:
                        # the timeout is a safety net for a missed notify, not the main signal
                        self._wake.wait(timeout=2.0)
                    continue
                self._process(analyzer, job)
        finally:
            try:
                analyzer.close()
            except Exception:  # pragma: no cover - closing must not mask the real problem
                log.exception("closing the analyzer failed")

    def _process(self, analyzer: ScanningAnalyzer, job: Job) -> None:
        released = threading.Event()
        with self._cancel_lock:
            self._running[job.id] = released
        try:
            self._scan_one(analyzer, job)
        finally:
            with self._cancel_lock:
                # only our own entry: a re-scan queued the moment this one finished may already run elsewhere
                if self._running.get(job.id) is released:
                    self._running.pop(job.id)
                    self._cancelled.discard(job.id)
            released.set()

    def _scan_one(self, analyzer: ScanningAnalyzer, job: Job) -> None:
        path = upload_path(self.uploads_dir, job.id)
        if not path.is_file():
            self.store.fail(job.id, "missing_file", "the uploaded file is no longer on disk")
            return
        last_write = [0.0, 0.0]  # monotonic time, fraction
        second_pass = [False]

        def progress(fraction: float, message: str) -> None:
            now = time.monotonic()
            if message == SECOND_PASS_LABEL and not second_pass[0]:
                # progress starts again from 0 (--auto-speaker-view): written at once, and the time left is
                # extrapolated from this pass, not from both
                second_pass[0] = True
                last_write[:] = [now, fraction]
                self.store.set_progress(job.id, fraction, message, new_pass=True)
            elif (now - last_write[0] >= _PROGRESS_INTERVAL_S or fraction - last_write[1] >= _PROGRESS_STEP
                    or fraction >= 1.0):
                last_write[:] = [now, fraction]
                self.store.set_progress(job.id, fraction, message)

        def should_stop() -> bool:
            return self._stopping.is_set() or job.id in self._cancelled

        self.store.set_progress(job.id, 0.0, "analysing")
        try:
            # speaker_view None (a job from before it was stored): the analyzer's own setting, the server's
            report = analyzer.scan(path, progress=progress, should_stop=should_stop, shot_cuts=job.speaker_view)
        except Cancelled:
            if job.id not in self._cancelled:  # server stopping: resume on the next start
                self.store.requeue(job.id, "interrupted by a server stop; will resume", clean_stop=True)
            return
        except DetectorError as exc:
            self.store.fail(job.id, exc.code, str(exc).replace(str(path), "the recording"))
            return
        except Exception as exc:  # a bug must fail one job, not kill the worker
            log.exception("analysis of job %s crashed", job.id)
            self.store.fail(job.id, "internal_error", f"unexpected error during analysis: {type(exc).__name__}: {exc}")
            return
        if job.id in self._cancelled:
            return
        # the stored report names the upload as the user knows it, never our disk path
        report.video.file_name = job.original_name
        report.video.path = job.original_name
        self.store.finish(job.id, report.verdict.value, report.probability, report.to_json())
