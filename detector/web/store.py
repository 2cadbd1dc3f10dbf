"""SQLite job store: one row per uploaded recording, the queue lives here too.

The database is the queue on purpose: a job is queued by committing its row,
so an upload acknowledged to the browser survives a crash of the server, and
workers claim jobs with one atomic UPDATE, so two workers never take the
same job. The finished report is kept in the row (a few hundred kB at most,
thumbnails included), which makes deleting a recording one DELETE plus one
file removal, with nothing left behind.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

SCHEMA_VERSION = 3  # 2: speaker_view; 3: queued_at, pass_started_at

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,          -- random hex id; also names the stored file
    original_name   TEXT NOT NULL,             -- client's file name, for display only
    size_bytes      INTEGER NOT NULL,
    duration_s      REAL,                      -- from probing at upload time
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress        REAL NOT NULL DEFAULT 0,   -- 0..1 while running
    message         TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,             -- unix seconds
    started_at      REAL,
    finished_at     REAL,
    verdict         TEXT,
    probability     REAL,
    error_code      TEXT,
    error_message   TEXT,
    report_json     TEXT,
    speaker_view    INTEGER,                   -- 1: tracks end at cuts between cameras (an active-speaker
                                               -- recording); NULL (jobs from schema 1): the server's setting
    queued_at       REAL,                      -- when it last joined the queue (upload, re-scan, retry): the
                                               -- queue's order, so a re-scan of an old upload waits its turn
    pass_started_at REAL                       -- when the running pass began (a second pass restarts progress)
);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at);
"""

# Every column except the report, which only the report pages read.
_SUMMARY_COLUMNS = ("id, original_name, size_bytes, duration_s, state, progress, message, attempts, created_at, "
                    "started_at, finished_at, verdict, probability, error_code, error_message, speaker_view, "
                    "queued_at, pass_started_at")

ACTIVE_STATES = ("queued", "running")



def _failed_or_restored(restored_message: str) -> str:
    """SET clause for a job whose analysis ended without a report: 'failed', unless it still holds an earlier report
    (a re-scan), which goes back to 'done' with that report shown again, ``restored_message`` as its message and the
    speaker-view setting that report was scanned with (read as the upgrade from schema 1 reads it), not the one the
    re-scan was asked for. The caller sets the error columns, which keep the failure either way."""
    return ("state = CASE WHEN report_json IS NULL THEN 'failed' ELSE 'done' END, "
            f"message = CASE WHEN report_json IS NULL THEN 'failed' ELSE '{restored_message}' END, "
            "progress = CASE WHEN report_json IS NULL THEN progress ELSE 1 END, "
            "speaker_view = CASE WHEN report_json IS NULL THEN speaker_view "
            "ELSE COALESCE(json_extract(report_json, '$.settings.shot_cuts'), speaker_view) END")


@dataclass
class Job:
    id: str
    original_name: str
    size_bytes: int
    duration_s: Optional[float]
    state: str
    progress: float
    message: str
    attempts: int
    created_at: float
    started_at: Optional[float]
    finished_at: Optional[float]
    verdict: Optional[str]
    probability: Optional[float]
    error_code: Optional[str]
    error_message: Optional[str]
    #: None: not recorded (a job from schema 1 not yet finished): scanned with the server's setting
    speaker_view: Optional[bool] = False
    #: when it last joined the queue; None only for a Job built by hand
    queued_at: Optional[float] = None
    #: when the running pass began: the start, or the start of a second pass whose progress began again at 0
    pass_started_at: Optional[float] = None

    def __post_init__(self) -> None:
        if self.speaker_view is not None:
            self.speaker_view = bool(self.speaker_view)  # sqlite stores it as 0/1

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def eta_seconds(self, now: float | None = None) -> Optional[float]:
        """Remaining seconds, extrapolated from the pace so far (None until measurable)."""
        start = self.pass_started_at if self.pass_started_at is not None else self.started_at
        if self.state != "running" or start is None or self.progress < 0.02:
            return None
        elapsed = (now or time.time()) - start
        return max(0.0, elapsed * (1.0 - self.progress) / self.progress)


class JobStore:
    """Thread-safe access to the jobs table.

    One connection per call keeps threads independent; WAL mode lets the
    pages read while a worker writes progress, and the process-wide lock
    serialises writers so claims stay atomic without retry loops.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._write_lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        with self._write() as db:  # one transaction: a stop halfway leaves schema 1 as it was
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version in (1, 2):
                if version == 1:
                    self._upgrade_from_1(db)
                self._upgrade_from_2(db)
                version = 0
            if version == 0:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise RuntimeError(f"job database {self.path} has schema {version}, expected {SCHEMA_VERSION}")
            # here rather than in SCHEMA: a schema-2 table has no queued_at until the upgrade above adds it
            db.execute("CREATE INDEX IF NOT EXISTS jobs_state_queued ON jobs (state, queued_at)")

    @staticmethod
    def _upgrade_from_1(db: sqlite3.Connection) -> None:
        """Schema 1 had no speaker_view column; its server applied ``serve --speaker-view`` to every job.

        A finished job's report says how it was scanned; the others keep NULL, which the worker reads as "the
        server's setting", as schema 1 did.
        """
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        if "speaker_view" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN speaker_view INTEGER")
        for job_id, text in db.execute("SELECT id, report_json FROM jobs WHERE report_json IS NOT NULL").fetchall():
            try:
                flag = json.loads(text).get("settings", {}).get("shot_cuts")
            except (ValueError, AttributeError):
                continue
            if isinstance(flag, bool):
                db.execute("UPDATE jobs SET speaker_view = ? WHERE id = ?", (int(flag), job_id))

    @staticmethod
    def _upgrade_from_2(db: sqlite3.Connection) -> None:
        """Schema 2 ordered the queue by upload time, so a re-scan of an old upload went ahead of newer ones.

        Jobs keep their place: a waiting job joined the queue when it was uploaded, as far as anyone can tell.
        """
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for name in ("queued_at", "pass_started_at"):
            if name not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} REAL")
        db.execute("UPDATE jobs SET queued_at = created_at WHERE queued_at IS NULL")
        db.execute("UPDATE jobs SET pass_started_at = started_at WHERE pass_started_at IS NULL")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- writes ---------------------------------------------------------------

    def add(self, job_id: str, original_name: str, size_bytes: int, duration_s: float | None,
            speaker_view: bool = False) -> Job:
        now = time.time()
        with self._write() as db:
            db.execute("INSERT INTO jobs (id, original_name, size_bytes, duration_s, state, message, created_at, "
                       "speaker_view, queued_at) VALUES (?, ?, ?, ?, 'queued', 'waiting for a worker', ?, ?, ?)",
                       (job_id, original_name, size_bytes, duration_s, now, int(speaker_view), now))
        return self.get(job_id)

    def rescan(self, job_id: str, speaker_view: bool) -> bool:
        """Queue a finished or failed job again, with ``speaker_view`` set as asked, behind the jobs waiting now.

        Its old report stays stored (hidden while the job is not done) until the new scan's report replaces it in
        :meth:`finish`; if the new scan fails, :meth:`fail` shows it again, with the failure as the job's message.
        """
        with self._write() as db:
            cur = db.execute("UPDATE jobs SET state = 'queued', progress = 0, message = 'waiting for a worker', "
                             "attempts = 0, started_at = NULL, pass_started_at = NULL, finished_at = NULL, "
                             "error_code = NULL, error_message = NULL, speaker_view = ?, queued_at = ? "
                             "WHERE id = ? AND state IN ('done', 'failed')",
                             (int(speaker_view), time.time(), job_id))
            return cur.rowcount == 1

    def claim_next(self) -> Optional[Job]:
        """Atomically move the job that joined the queue first to running and return it."""
        now = time.time()
        with self._write() as db:
            # COALESCE: a row written by hand without queued_at waits as if queued at its upload
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY COALESCE(queued_at, created_at), id "
                             "LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET state = 'running', progress = 0, message = 'starting', "
                       "attempts = attempts + 1, started_at = ?, pass_started_at = ?, finished_at = NULL "
                       "WHERE id = ?", (now, now, row[0]))
        return self.get(row[0])

    def set_progress(self, job_id: str, fraction: float, message: str, new_pass: bool = False) -> None:
        """``new_pass``: progress starts again from ``fraction`` (a second scan of the recording), so the time
        left is extrapolated from this pass alone."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        with self._write() as db:
            db.execute("UPDATE jobs SET progress = ?, message = ?, pass_started_at = COALESCE(?, pass_started_at) "
                       "WHERE id = ? AND state = 'running'",
                       (fraction, message, time.time() if new_pass else None, job_id))

    def finish(self, job_id: str, verdict: str, probability: float | None, report_json: str) -> bool:
        with self._write() as db:
            cur = db.execute("UPDATE jobs SET state = 'done', progress = 1, message = 'done', finished_at = ?, "
                             "verdict = ?, probability = ?, report_json = ?, error_code = NULL, error_message = NULL "
                             "WHERE id = ? AND state = 'running'",
                             (time.time(), verdict, probability, report_json, job_id))
            return cur.rowcount == 1

    def fail(self, job_id: str, code: str, message: str) -> bool:
        """The analysis failed. A job that still holds a report (a failed re-scan) goes back to 'done' with it, so
        nothing is lost; the failure stays in its error columns."""
        with self._write() as db:
            restored = _failed_or_restored("scanning again failed; the earlier report is kept")
            cur = db.execute(f"UPDATE jobs SET {restored}, finished_at = ?, error_code = ?, error_message = ? "
                             "WHERE id = ? AND state IN ('queued', 'running')",
                             (time.time(), code, message, job_id))
            return cur.rowcount == 1

    def requeue(self, job_id: str, message: str = "waiting for a worker", keep_place: bool = True,
                clean_stop: bool = False) -> bool:
        """Queue a running or failed job again. ``keep_place``: where it stood before (a job interrupted by a server
        stop resumes first); otherwise behind the jobs waiting now (a retry asked for later). ``clean_stop``: the
        server stopped it on purpose, which is not the recording's fault, so the attempt is not counted (attempts
        count the runs a crash may have ended: a file that kills the worker twice is failed)."""
        with self._write() as db:
            cur = db.execute("UPDATE jobs SET state = 'queued', progress = 0, message = ?, started_at = NULL, "
                             "pass_started_at = NULL, queued_at = CASE WHEN ? THEN queued_at ELSE ? END, "
                             "attempts = CASE WHEN ? THEN MAX(attempts - 1, 0) ELSE attempts END "
                             "WHERE id = ? AND state IN ('running', 'failed')",
                             (message, int(keep_place), time.time(), int(clean_stop), job_id))
            return cur.rowcount == 1

    def reset_attempts(self, job_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE jobs SET attempts = 0, error_code = NULL, error_message = NULL WHERE id = ?", (job_id,))

    def delete(self, job_id: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1

    def recover_interrupted(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """After a restart, 'running' rows belong to a dead process.

        Re-queue them, unless they were already tried ``max_attempts`` times:
        a file that keeps killing the worker must not crash-loop the server.
        Returns (requeued ids, failed ids).
        """
        requeued, failed = [], []
        with self._write() as db:
            rows = db.execute("SELECT id, attempts, report_json IS NOT NULL FROM jobs WHERE state = 'running'"
                              ).fetchall()
            for job_id, attempts, has_report in rows:
                if attempts >= max_attempts:
                    # as in fail(): a re-scan that keeps being interrupted shows its earlier report again
                    restored = _failed_or_restored("scanning again was interrupted; the earlier report is kept")
                    db.execute(f"UPDATE jobs SET {restored}, finished_at = ?, error_code = 'interrupted', "
                               "error_message = ? WHERE id = ?",
                               (time.time(), f"analysis was interrupted {attempts} times (the server or worker "
                                             f"stopped mid-job)" + ("" if has_report else "; use Retry to try again"),
                                job_id))
                    failed.append(job_id)
                else:
                    db.execute("UPDATE jobs SET state = 'queued', progress = 0, started_at = NULL, "
                               "pass_started_at = NULL, message = 'resumed after a restart' WHERE id = ?", (job_id,))
                    requeued.append(job_id)
        return requeued, failed

    # -- reads ----------------------------------------------------------------

    def get(self, job_id: str) -> Optional[Job]:
        with self._connect() as db:
            row = db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(*row) if row else None

    def report_json(self, job_id: str) -> Optional[str]:
        with self._connect() as db:
            row = db.execute("SELECT report_json FROM jobs WHERE id = ? AND state = 'done'", (job_id,)).fetchone()
        return row[0] if row else None

    def list(self, limit: int = 500, active_only: bool = False) -> list[Job]:
        where = "WHERE state IN ('queued', 'running')" if active_only else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM jobs {where} ORDER BY created_at DESC, id LIMIT ?",
                              (limit,)).fetchall()
        return [Job(*r) for r in rows]

    def ids(self) -> set[str]:
        with self._connect() as db:
            return {r[0] for r in db.execute("SELECT id FROM jobs")}

    def count_queued(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]

    def queue_position(self, job: Job) -> Optional[int]:
        """1-based place among queued jobs (1 = next to start)."""
        if job.state != "queued":
            return None
        with self._connect() as db:
            at = job.queued_at if job.queued_at is not None else job.created_at
            ahead = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND (COALESCE(queued_at, created_at) "
                               "< ? OR (COALESCE(queued_at, created_at) = ? AND id < ?))",
                               (at, at, job.id)).fetchone()[0]
        return ahead + 1
