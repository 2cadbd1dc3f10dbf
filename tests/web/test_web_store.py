"""The SQLite job store: atomic claims, recovery after a crash, schema guard."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient

from web_fakes import FakeAnalyzer
from detector.errors import ConfigError
from detector.web.app import create_app
from detector.web.settings import WebSettings
from detector.web.store import JobStore


def test_claims_are_exclusive_and_in_upload_order(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    ids = [f"{i:024x}" for i in range(40)]
    for i in ids:
        store.add(i, f"{i}.mp4", 10, 1.0)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker():
        while (job := store.claim_next()) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids  # every job exactly once
    assert store.claim_next() is None
    assert all(j.state == "running" and j.attempts == 1 for j in store.list())


def test_finish_and_fail_only_touch_live_rows(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("a" * 24, "a.mp4", 1, None)
    job = store.claim_next()
    store.set_progress(job.id, 1.7, "analysing")  # clamped
    assert store.get(job.id).progress == 1.0
    store.delete(job.id)
    # a worker finishing a deleted job must not resurrect it
    assert store.finish(job.id, "likely_genuine", 0.1, "{}") is False
    assert store.fail(job.id, "x", "y") is False
    assert store.get(job.id) is None


def test_recovery_requeues_then_gives_up(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("b" * 24, "b.mp4", 1, None)
    job = store.claim_next()
    assert store.recover_interrupted(max_attempts=2) == ([job.id], [])
    assert store.get(job.id).state == "queued" and store.get(job.id).message == "resumed after a restart"
    store.claim_next()  # second attempt, interrupted again
    assert store.recover_interrupted(max_attempts=2) == ([], [job.id])
    failed = store.get(job.id)
    assert failed.state == "failed" and failed.error_code == "interrupted"


def test_refuses_a_database_from_another_schema(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    JobStore(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="schema 99"):
        JobStore(path)


def test_eta_is_extrapolated_from_progress(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("c" * 24, "c.mp4", 1, None)
    job = store.claim_next()
    store.set_progress(job.id, 0.25, "analysing")
    job = store.get(job.id)
    assert job.eta_seconds(now=job.started_at + 10) == pytest.approx(30.0)


def test_one_server_per_data_dir(tmp_path):
    settings = WebSettings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings, analyzer_factory=FakeAnalyzer)):
        with pytest.raises(ConfigError, match="already using"):
            with TestClient(create_app(settings, analyzer_factory=FakeAnalyzer)):
                pass
    with TestClient(create_app(settings, analyzer_factory=FakeAnalyzer)) as client:  # released on shutdown
        assert client.get("/api/health").status_code == 200


_SCHEMA_1 = """CREATE TABLE jobs (id TEXT PRIMARY KEY, original_name TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, duration_s REAL, state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, verdict TEXT, probability REAL, error_code TEXT,
    error_message TEXT, report_json TEXT);"""


def _schema_1_database(path):
    with sqlite3.connect(path) as db:  # as the store created it before speaker_view
        db.executescript(_SCHEMA_1)
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at, verdict, report_json) "
                   "VALUES (?, 'old.mp4', 5, 'done', 1.0, 'likely_genuine', ?)",
                   ("a" * 24, '{"settings": {"shot_cuts": true}}'))
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at) "
                   "VALUES (?, 'waiting.mp4', 5, 'queued', 2.0)", ("b" * 24,))
        db.execute("PRAGMA user_version=1")


def test_a_database_from_before_speaker_view_is_upgraded_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    _schema_1_database(path)
    store = JobStore(path)
    done, waiting = store.get("a" * 24), store.get("b" * 24)
    assert done.original_name == "old.mp4" and done.state == "done"
    assert done.speaker_view is True  # its report says how it was scanned
    assert waiting.speaker_view is None  # not recorded: it will be scanned with the server's setting
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
    JobStore(path)  # opening it again changes nothing
    assert store.get("b" * 24).speaker_view is None


def test_an_upgrade_stopped_after_adding_the_column_is_finished(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    _schema_1_database(path)
    with sqlite3.connect(path) as db:  # the column added, the version not yet written
        db.execute("ALTER TABLE jobs ADD COLUMN speaker_view INTEGER")
    assert JobStore(path).get("a" * 24).speaker_view is True


def _report_json(store, job_id):
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT report_json FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]


def test_rescan_requeues_a_finished_job_with_the_option_and_keeps_its_report_until_replaced(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("d" * 24, "d.mp4", 1, None)
    assert store.rescan("d" * 24, speaker_view=True) is False  # queued: nothing to scan again
    job = store.claim_next()
    assert store.rescan(job.id, speaker_view=True) is False  # a worker holds it
    store.finish(job.id, "likely_genuine", 0.1, '{"old": 1}')
    assert store.rescan(job.id, speaker_view=True) is True
    again = store.get(job.id)
    assert again.state == "queued" and again.speaker_view is True and again.attempts == 0
    assert store.report_json(job.id) is None  # hidden while queued ...
    assert _report_json(store, job.id) == '{"old": 1}'  # ... but kept
    store.claim_next()
    store.finish(job.id, "likely_face_swapped", 0.9, '{"new": 1}')
    assert store.report_json(job.id) == '{"new": 1}'
    assert store.rescan(job.id, speaker_view=False) is True and store.get(job.id).speaker_view is False
    assert store.add("e" * 24, "e.mp4", 1, None, speaker_view=True).speaker_view is True


_OLD = '{"old": 1, "settings": {"shot_cuts": false}}'


def _rescan_running(tmp_path, job_id):
    """A store whose one job finished with the report _OLD (scanned without speaker view) and is being scanned again
    with it."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add(job_id, f"{job_id}.mp4", 1, None)
    job = store.claim_next()
    store.finish(job.id, "likely_genuine", 0.1, _OLD)
    store.rescan(job.id, speaker_view=True)
    store.claim_next()
    return store, job


def test_a_failed_rescan_keeps_the_earlier_report(tmp_path):
    store, job = _rescan_running(tmp_path, "f" * 24)
    assert store.fail(job.id, "corrupt_video", "the file is truncated") is True
    after = store.get(job.id)
    assert after.state == "done" and store.report_json(job.id) == _OLD
    assert after.speaker_view is False  # as the report it shows was scanned
    assert after.error_message == "the file is truncated" and "earlier report" in after.message
    store.add("g" * 24, "g.mp4", 1, None)  # a first scan that fails still fails
    store.claim_next()
    store.fail("g" * 24, "corrupt_video", "bad")
    assert store.get("g" * 24).state == "failed"


def test_a_database_from_before_queued_at_keeps_its_queue_order(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    _schema_1_database(path)
    with sqlite3.connect(path) as db:  # as schema 2 left it: speaker_view, no queued_at
        db.execute("ALTER TABLE jobs ADD COLUMN speaker_view INTEGER")
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at, speaker_view) "
                   "VALUES (?, 'earlier.mp4', 5, 'queued', 0.5, 0)", ("c" * 24,))
        db.execute("PRAGMA user_version=2")
    store = JobStore(path)
    assert store.get("b" * 24).queued_at == 2.0 and store.get("c" * 24).queued_at == 0.5
    assert [store.claim_next().id, store.claim_next().id] == ["c" * 24, "b" * 24]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_rescan_or_retry_waits_behind_the_uploads_queued_before_it(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    old, failed, new = "1" * 24, "2" * 24, "3" * 24
    for job_id in (old, failed):
        store.add(job_id, f"{job_id}.mp4", 1, None)
    store.claim_next()
    store.finish(old, "likely_genuine", 0.1, '{"old": 1}')
    store.claim_next()
    store.fail(failed, "corrupt_video", "bad")
    store.add(new, "new.mp4", 1, None)
    assert store.rescan(old, speaker_view=True)
    assert store.requeue(failed, keep_place=False)  # a retry
    assert [store.queue_position(store.get(i)) for i in (new, old, failed)] == [1, 2, 3]
    assert [store.claim_next().id for _ in range(3)] == [new, old, failed]
    # a job interrupted by a server stop resumes where it stood
    store.add("4" * 24, "4.mp4", 1, None)
    attempts = store.get(old).attempts
    assert store.requeue(old, "interrupted by a server stop; will resume", clean_stop=True)
    assert store.get(old).attempts == attempts - 1  # a planned stop is not held against the recording
    assert store.claim_next().id == old
    with store._write() as db:  # a row written by hand without queued_at waits as if queued at its upload
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at) "
                   "VALUES (?, 'hand.mp4', 1, 'queued', ?)", ("5" * 24, time.time() + 1000))
    assert [store.queue_position(store.get(i * 24)) for i in "45"] == [1, 2]
    assert [store.claim_next().id for _ in range(2)] == ["4" * 24, "5" * 24]  # not NULL first


def test_a_clean_server_stop_is_not_counted_against_the_recording(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    store.add("c" * 24, "call.mp4", 1, None)
    for _ in range(3):  # three planned restarts while it ran...
        assert store.claim_next().attempts == 1
        assert store.requeue("c" * 24, "interrupted by a server stop; will resume", clean_stop=True)
    assert store.claim_next().attempts == 1
    # ...then one crash: resumed, not failed (max_attempts counts runs a crash may have ended)
    assert store.recover_interrupted(max_attempts=2) == (["c" * 24], [])
    assert store.claim_next().attempts == 2
    assert store.recover_interrupted(max_attempts=2) == ([], ["c" * 24])  # a second crash fails it


def test_a_rescan_interrupted_too_often_shows_the_earlier_report_again(tmp_path):
    store, job = _rescan_running(tmp_path, "h" * 24)
    assert store.recover_interrupted(max_attempts=1) == ([], [job.id])
    after = store.get(job.id)
    assert after.state == "done" and after.verdict == "likely_genuine" and store.report_json(job.id) == _OLD
    assert after.speaker_view is False
    assert after.error_code == "interrupted" and "earlier report" in after.message
    assert "Retry" not in after.error_message  # a finished job has no Retry button; its report is back


def test_a_second_pass_restarts_the_time_left(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("i" * 24, "i.mp4", 1, None)
    job = store.claim_next()
    with store._write() as db:  # the first pass took 100 s
        db.execute("UPDATE jobs SET started_at = started_at - 100, pass_started_at = pass_started_at - 100")
    store.set_progress(job.id, 0.5, "analysing again", new_pass=True)
    job = store.get(job.id)
    assert job.pass_started_at > job.started_at + 99
    assert job.eta_seconds(now=job.pass_started_at + 10) == pytest.approx(10.0)  # not (110 s so far) * 1
