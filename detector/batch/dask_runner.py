"""Running a batch on Dask distributed: one task per recording.

Why Dask and not Ray: Dask distributed is pure Python and pip-installable
with a small footprint (no separate object store, no raylet binaries, no
Redis/GCS), it runs a scheduler and workers from the same wheel on any box a
security team already has, ``LocalCluster`` makes it testable in CI on
loopback, and a task here is "one file in, one small row out", which needs
none of Ray's actor or shared-memory machinery.

Workers keep their models loaded: the task calls
:func:`detector.batch.worker.process_path`, whose analyzer lives in a
module-level cache of the worker *process* and is reused by every later task
on it. :class:`AnalyzerCachePlugin` closes those analyzers when a worker
shuts down. Paths are opened *by the workers*, so they must be visible to
them (a shared filesystem); the client only lists folders it is given.
"""
from __future__ import annotations

import logging
import uuid

from detector.batch.runner import Backend, WorkerCrashed
from detector.batch.worker import Outcome, close_analyzers, process_path
from detector.errors import ConfigError
from detector.options import ScanOptions


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - dask is a declared dependency
    WorkerPlugin = object

# run id -> keys already in the output, installed on each worker by a plugin
_DONE_SETS: dict[str, frozenset] = {}


def _dask_task(path: str, options: dict, factory: str, run_id: str, timeout_s: float | None) -> Outcome:
    return process_path(path, ScanOptions(**options), factory, _DONE_SETS.get(run_id, frozenset()), timeout_s)


class AnalyzerCachePlugin(WorkerPlugin):
    """Closes the per-process analyzers (ONNX sessions, MediaPipe graphs) on worker shutdown."""

    name = "detector-analyzer-cache"

    def teardown(self, worker) -> None:
        close_analyzers()


class DoneSetPlugin(WorkerPlugin):
    """Ships the finished-work set to every worker once, including workers that
    join or restart later.

    Scattered data would be lost with the worker holding it (a worker killed
    by one bad recording would fail every later task); a plugin is re-applied
    by the scheduler to each new worker process.
    """

    def __init__(self, run_id: str, done: frozenset):
        self.run_id = run_id
        self.done = done
        self.name = f"detector-batch-done-{run_id}"

    def setup(self, worker) -> None:
        _DONE_SETS[self.run_id] = self.done

    def teardown(self, worker) -> None:
        _DONE_SETS.pop(self.run_id, None)


class DaskBackend(Backend):
    """Submit tasks to a Dask cluster.

    ``scheduler``: address like ``tcp://host:8786``; ``None`` starts a
    loopback ``LocalCluster`` with ``local_workers`` single-threaded worker
    processes (owned and closed by this backend). ``client``: an existing
    ``distributed.Client`` to use instead (not closed here).
    """

    def __init__(self, scheduler: str | None = None, local_workers: int = 2, client=None,
                 tasks_per_thread: int = 2):
        self.scheduler = scheduler
        self.local_workers = local_workers
        self._client = client
        self._own_client = client is None
        self._cluster = None
        self.tasks_per_thread = tasks_per_thread
        self._futures: set = set()
        self._done_plugin = None

    def start(self, options: ScanOptions, factory: str, done: set[str], timeout_s: float | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - dask is a declared dependency
            raise ConfigError("Dask mode needs dask[distributed]: pip install 'dask[distributed]'") from exc
        if self._client is None:
            if self.scheduler:
                try:
                    self._client = Client(self.scheduler, timeout="20s")
                except OSError as exc:
                    raise ConfigError(f"cannot reach Dask scheduler {self.scheduler}: {exc}") from exc
            else:
                self._cluster = LocalCluster(n_workers=self.local_workers, processes=True, threads_per_worker=1,
                                             dashboard_address=None, host="127.0.0.1",
                                             silence_logs=logging.ERROR)
                self._client = Client(self._cluster)
        self._client.register_plugin(AnalyzerCachePlugin())
        threads = sum(self._client.nthreads().values())
        if threads == 0:
            self._client.wait_for_workers(1, timeout=60)
            threads = sum(self._client.nthreads().values())
        # a queued task per thread hides scheduling latency; more would only
        # widen what an interruption loses
        self.capacity = max(1, threads) * self.tasks_per_thread
        self._options = options.to_dict()
        self._factory = factory
        # Dask cannot kill a running task without killing its worker: only the
        # cooperative timeout applies here (can_kill stays False)
        self._timeout_s = timeout_s
        # one copy of the finished-work set per worker, not one per task
        self._run_id = uuid.uuid4().hex
        self._done_plugin = DoneSetPlugin(self._run_id, frozenset(done))
        self._client.register_plugin(self._done_plugin)

    def submit(self, path: str, done: set[str]):
        fut = self._client.submit(_dask_task, path, self._options, self._factory, self._run_id, self._timeout_s,
                                  key=f"detector-batch-{uuid.uuid4().hex}", pure=False)
        self._futures.add(fut)
        return fut

    def wait(self, handles: list, timeout: float) -> list:
        from distributed import wait as dwait
        from distributed.scheduler import KilledWorker

        try:
            finished, _ = dwait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        out = []
        for fut in finished:
            self._futures.discard(fut)
            if fut.status == "finished":
                out.append((fut, fut.result()))
                continue
            try:
                exc = fut.exception()
            except Exception as e:  # cancelled futures raise here
                exc = e
            if isinstance(exc, KilledWorker):
                # Dask already retried it on other workers: it kills workers by itself
                out.append((fut, WorkerCrashed(f"worker process died on this file: {exc}", definite=True)))
            else:
                out.append((fut, exc if isinstance(exc, BaseException) else RuntimeError(str(exc))))
            fut.release()
        return out

    def shutdown(self, cancel: bool) -> None:
        client, self._client = self._client, None
        if client is not None:
            if cancel and self._futures:
                try:
                    client.cancel(list(self._futures), force=True)
                except Exception:
                    pass  # the cluster may already be gone; nothing left to save
            self._futures.clear()
            try:  # a long-lived cluster should not keep every run's done set
                client.unregister_worker_plugin(self._done_plugin.name)
            except Exception:
                pass  # cluster gone or plugin never registered: nothing to free
            if self._own_client:
                client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
