"""The batch loop on the local process pool, with the model-free fake analyzer."""
from __future__ import annotations

import collections
import time
import shutil

import pytest

from batch_fakes import FAKE, distinct_copies, fake_log
from detector.api import file_sha256
from detector.batch.discover import walk
from detector.batch.records import BatchRecord
from detector.batch.resume import ResultStore, read_output
from detector.batch.runner import BatchAbortedError, LocalBackend, run_batch
from detector.options import ScanOptions

OPTS = ScanOptions()


def _run(paths, out, workers=2, factory=FAKE, **kw):
    with ResultStore(out) as store:
        return run_batch(list(paths), store, OPTS, LocalBackend(workers), factory=factory, **kw)


def test_archive_rows_failures_and_skips(archive, tmp_path):
    out = tmp_path / "r.jsonl"
    stats = _run(walk([archive]), out)
    rows = [BatchRecord.model_validate(r) for r in read_output(out).rows]
    by_name = {r.path.rsplit("/", 1)[1]: r for r in rows}
    assert set(by_name) == {"call_p0.91.mp4", "call_p0.12.mp4", "recording_p0.55.dat", "truncated_upload.mp4"}
    ok = by_name["call_p0.91.mp4"]
    assert ok.status == "ok" and ok.report.probability == pytest.approx(0.91)
    assert ok.report.verdict.value == "likely_face_swapped"
    assert ok.sha256 == file_sha256(ok.path) == ok.report.video.sha256
    assert ok.score_key == OPTS.result_key()
    bad = by_name["truncated_upload.mp4"]
    assert bad.status == "failed" and bad.report is None and bad.error and bad.error_code
    assert bad.sha256 == file_sha256(bad.path)  # a broken file is still identified by content
    assert (stats.ok, stats.failed, stats.not_recordings, stats.already_done) == (3, 1, 1, 0)
    assert stats.verdicts == {"likely_face_swapped": 1, "likely_genuine": 1, "inconclusive": 1, "failed": 1}
    assert stats.video_seconds == pytest.approx(1.5 + 1.0 + 1.2, abs=0.2)


def test_each_worker_builds_its_analyzer_once(video_src, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(6):
        shutil.copy(video_src / "base.mp4", d / f"c{i}.mp4")
        with open(d / f"c{i}.mp4", "ab") as f:
            f.write(bytes([i]) * 16)  # distinct content, still decodable
    _run(walk([d]), tmp_path / "r.jsonl", workers=2)
    log = fake_log(tmp_path)
    builds = collections.Counter(pid for what, _, pid in log if what == "build")
    scans = [pid for what, _, pid in log if what == "scan"]
    assert len(scans) == 6
    assert set(builds.values()) == {1} and len(builds) <= 2  # once per process, not per file
    assert set(scans) <= set(builds)


def test_rerun_skips_finished_work_by_content(archive, tmp_path):
    out = tmp_path / "r.jsonl"
    _run(walk([archive]), out)
    before = out.read_bytes()
    # a renamed copy of a finished call is the same work: keyed by content, not name
    shutil.copy(archive / "2024" / "call_p0.12.mp4", archive / "renamed_copy.bin")
    stats = _run(walk([archive]), out)
    assert out.read_bytes() == before
    assert stats.already_done == 5 and stats.ok == 0 and stats.failed == 0  # permanent failure not retried
    stats = _run(walk([archive]), out, retry_failed=True)
    assert stats.failed == 1 and stats.already_done == 4
    # other settings change the score key: everything is new work
    with ResultStore(out) as store:
        stats = run_batch(list(walk([archive])), store, ScanOptions(analysis_fps=5), LocalBackend(1),
                          factory=FAKE)
    # (the renamed copy and its original are one recording: one row, the other counted as a copy)
    assert stats.ok == 3 and stats.already_done == 0
    assert stats.skipped_reasons["copy of another recording (same content)"] == 1


def test_copies_in_one_run_get_one_row(video_src, tmp_path):
    # three names, one content, met in the same run: the workers started knowing nothing was done, so each may
    # analyse a copy, but the output holds one row for that content, as it would across runs
    d = tmp_path / "dups"
    (d / "sub").mkdir(parents=True)
    for name in ("a_p0.8.mp4", "sub/b_p0.8.mov", "sub/c_p0.8.bin"):
        shutil.copy(video_src / "base.mp4", d / name)
    shutil.copy(video_src / "other.mp4", d / "other_p0.2.mp4")
    out = tmp_path / "r.jsonl"
    stats = _run(walk([d]), out, workers=1)
    rows = read_output(out).rows
    assert sorted(r["sha256"] for r in rows) == sorted({file_sha256(p) for p in walk([d])})
    assert stats.ok == 2 and stats.failed == 0
    assert stats.skipped_reasons == {"copy of another recording (same content)": 2}
    assert stats.finished == stats.candidates == 4


def test_torn_line_repaired_and_work_completed(archive, tmp_path):
    out = tmp_path / "r.jsonl"
    _run(walk([archive]), out)
    lines = out.read_text().splitlines(keepends=True)
    # as if killed while writing the last row
    out.write_text("".join(lines[:-1]) + lines[-1][:40])
    stats = _run(walk([archive]), out)
    assert stats.torn_bytes_repaired == 40
    assert stats.ok + stats.failed == 1 and stats.already_done == 3
    res = read_output(out)
    assert res.torn_bytes == 0 and res.bad_lines == 0 and len(res.rows) == 4


def test_crashing_file_is_isolated_and_neighbours_survive(video_src, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    shutil.copy(video_src / "base.mp4", d / "a_p0.8.mp4")
    shutil.copy(video_src / "other.mp4", d / "b_crash.mp4")
    shutil.copy(video_src / "third.mp4", d / "c_p0.2.mp4")
    out = tmp_path / "r.jsonl"
    stats = _run(walk([d]), out, workers=2)
    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_output(out).rows}
    assert rows["b_crash.mp4"]["status"] == "failed" and rows["b_crash.mp4"]["error_code"] == "worker_crashed"
    assert rows["a_p0.8.mp4"]["status"] == "ok" and rows["c_p0.2.mp4"]["status"] == "ok"
    assert stats.failed == 1 and stats.ok == 2
    # a crash is not a property of the file: the next run tries it again
    stats = _run(walk([d]), out, workers=1)
    assert stats.already_done == 2 and stats.failed == 1


def test_analyser_bug_becomes_a_row(video_src, tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    shutil.copy(video_src / "base.mp4", d / "x_boom.mp4")
    out = tmp_path / "r.jsonl"
    stats = _run(walk([d]), out, workers=1)
    (row,) = read_output(out).rows
    assert row["error_code"] == "internal_error" and "simulated analyser bug" in row["error"]
    assert stats.failed == 1


def test_missing_models_abort_the_batch(archive, tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(BatchAbortedError) as ei:
        _run(walk([archive]), out, factory="batch_fakes:make_broken")
    assert ei.value.code == "model_error"
    # no recording was blamed for the missing model
    assert all(r["error_code"] != "model_error" for r in read_output(out).rows)


def test_stop_midway_keeps_finished_rows_and_resumes(video_src, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SLOW_S", "0.3")
    d = tmp_path / "s"
    d.mkdir()
    distinct_copies(video_src / "base.mp4", d, "slow", 5)
    out = tmp_path / "r.jsonl"
    seen = []
    stats = _run(walk([d]), out, workers=1, on_record=seen.append, should_stop=lambda: len(seen) >= 2)
    assert stats.interrupted and stats.ok == 2
    assert len(read_output(out).rows) == 2
    stats = _run(walk([d]), out, workers=2)
    assert not stats.interrupted and stats.already_done == 2 and stats.ok == 3
    paths = [r["path"] for r in read_output(out).rows]
    assert len(paths) == len(set(paths)) == 5


def test_timeouts_cooperative_and_hard(video_src, tmp_path, monkeypatch):
    import detector.batch.runner as runner

    monkeypatch.setattr(runner, "KILL_GRACE", 1.0)
    monkeypatch.setenv("FAKE_SLOW_S", "30")
    d = tmp_path / "t"
    d.mkdir()
    shutil.copy(video_src / "base.mp4", d / "a_slow.mp4")  # stops itself at the limit
    shutil.copy(video_src / "other.mp4", d / "b_hang.mp4")  # must be killed
    shutil.copy(video_src / "third.mp4", d / "c_p0.8.mp4")  # a bystander
    out = tmp_path / "r.jsonl"
    t0 = time.monotonic()
    stats = _run(walk([d]), out, workers=2, timeout_s=2.0)
    assert time.monotonic() - t0 < 25
    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_output(out).rows}
    assert rows["a_slow.mp4"]["error_code"] == "timeout"
    assert rows["b_hang.mp4"]["error_code"] == "timeout" and "killed" in rows["b_hang.mp4"]["error"]
    assert rows["c_p0.8.mp4"]["status"] == "ok"
    assert stats.failed == 2 and stats.ok == 1


def test_workers_dying_on_everything_abort_instead_of_blaming_files(video_src, tmp_path):
    d = tmp_path / "k"
    d.mkdir()
    distinct_copies(video_src / "base.mp4", d, "crash", 7)
    out = tmp_path / "r.jsonl"
    with pytest.raises(BatchAbortedError) as ei:
        _run(walk([d]), out, workers=1)
    assert ei.value.code == "workers_dying"
    assert len(read_output(out).rows) == 4  # blamed until the pattern was clear, not all seven
