"""The SQLite job store: atomic claims, recovery after a crash, schema guard."""
from __future__ import annotations

import sqlite3
import threading

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


def test_a_database_from_before_speaker_view_is_upgraded_and_keeps_its_jobs(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(path) as db:  # schema 1, as the store created it before speaker_view
        db.executescript("""CREATE TABLE jobs (id TEXT PRIMARY KEY, original_name TEXT NOT NULL,
            size_bytes INTEGER NOT NULL, duration_s REAL, state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            started_at REAL, finished_at REAL, verdict TEXT, probability REAL, error_code TEXT,
            error_message TEXT, report_json TEXT);""")
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at, verdict, report_json) "
                   "VALUES (?, 'old.mp4', 5, 'done', 1.0, 'likely_genuine', '{}')", ("a" * 24,))
        db.execute("PRAGMA user_version=1")
    store = JobStore(path)
    old = store.get("a" * 24)
    assert old.original_name == "old.mp4" and old.state == "done" and old.speaker_view is False
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    JobStore(path)  # opening it again changes nothing


def test_rescan_requeues_a_finished_job_with_the_option_and_drops_its_report(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add("d" * 24, "d.mp4", 1, None)
    assert store.rescan("d" * 24, speaker_view=True) is False  # queued: nothing to scan again
    job = store.claim_next()
    store.finish(job.id, "likely_genuine", 0.1, "{}")
    assert store.rescan(job.id, speaker_view=True) is True
    again = store.get(job.id)
    assert again.state == "queued" and again.speaker_view is True and again.verdict is None
    assert again.attempts == 0 and store.report_json(job.id) is None
    assert store.add("e" * 24, "e.mp4", 1, None, speaker_view=True).speaker_view is True
