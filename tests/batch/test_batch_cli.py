"""``detector batch`` end to end: CSV, HTML, summary, and being killed."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from batch_fakes import FAKE, distinct_copies, fake_log
from detector.batch.cli import register
from detector.batch.resume import read_output


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)

    @a.callback()
    def _cb() -> None:
        pass

    return a


def test_local_batch_csv_html_summary(app, archive, tmp_path):
    out, csv_path, html = tmp_path / "r.jsonl", tmp_path / "ranked.csv", tmp_path / "html"
    args = ["batch", str(archive), "--out", str(out), "--csv", str(csv_path), "--html-dir", str(html),
            "--workers", "2", "--no-progress", "--analyzer", FAKE]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 3, res.output  # the truncated upload failed
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["verdict"] for r in table] == ["likely_face_swapped", "inconclusive", "likely_genuine", "failed"]
    assert [float(r["probability"]) for r in table[:3]] == [0.91, 0.55, 0.12]
    assert table[3]["status"] == "failed" and table[3]["error"] and table[3]["probability"] == ""
    assert all(len(r["sha256"]) == 64 for r in table)
    # the report's caveats travel to the table: only the suspicious call has one here
    assert [r["caveats"] for r in table] == ["fake caveat: small face", "", "", ""]
    # summary: verdict counts, most suspicious first, the failure with its reason
    assert "likely_face_swapped" in res.output and "failures (1)" in res.output
    assert res.output.index("call_p0.91.mp4") < res.output.index("call_p0.12.mp4")
    assert "truncated_upload.mp4" in res.output
    assert (tmp_path / "r.jsonl.workers.log").is_file()  # worker stderr kept off the terminal
    pages = sorted(p.name for p in html.iterdir())
    assert len(pages) == 3 and all(p.endswith(".html") for p in pages)
    # a resumed run has nothing to do and exits cleanly
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "0 analysed, 0 failed, 4 already in" in res.output


def test_usage_errors(app, tmp_path):
    assert CliRunner().invoke(app, ["batch", "--out", str(tmp_path / "r.jsonl")]).exit_code == 2
    res = CliRunner().invoke(app, ["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 5
    res = CliRunner().invoke(app, ["batch", str(tmp_path), "--out", str(tmp_path / "r.jsonl"), "--dask", "yarn"])
    assert res.exit_code == 2


def test_outputs_that_cannot_be_written_are_refused_before_any_work(app, archive, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["batch", str(archive), "--no-progress", "--analyzer", FAKE]
    out = tmp_path / "r.jsonl"
    for extra, option in ((["--out", str(tmp_path)], "--out"),  # a folder
                          (["--out", str(a_file / "r.jsonl")], "--out"),  # under a file
                          (["--out", str(out), "--csv", str(a_file / "t.csv")], "--csv"),
                          (["--out", str(out), "--worker-log", str(a_file / "w.log")], "--worker-log"),
                          (["--out", str(out), "--html-dir", str(a_file)], "--html-dir")):
        res = CliRunner().invoke(app, base + extra)
        assert res.exit_code == 2 and f"error: {option} " in res.output, (extra, res.output)
        assert "Traceback" not in res.output
        assert not out.exists() or out.read_bytes() == b""  # refused before scanning anything
    assert CliRunner().invoke(app, base + ["--out", str(out), "--top", "-1"]).exit_code == 2


def test_a_csv_that_fails_at_the_end_still_prints_the_summary(app, archive, tmp_path, monkeypatch):
    import detector.batch.summary as summary

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(summary, "write_csv", disk_full)
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["batch", str(archive), "--out", str(out), "--csv", str(tmp_path / "t.csv"),
                                   "--no-progress", "--analyzer", FAKE])
    assert res.exit_code == 2, res.output
    assert "failures (1)" in res.output  # the summary came first
    assert "could not write --csv" in res.output and "No space left on device" in res.output
    assert len(read_output(out).rows) == 4


def test_a_file_given_twice_is_scanned_once(app, archive, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call = archive / "2024" / "call_p0.12.mp4"
    Path("list.txt").write_text(f"{call}\ngone.mp4\n")  # a relative list, with an entry that is not there
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["batch", str(call), "--from-list", "list.txt", "--out", str(out),
                                   "--no-progress", "--analyzer", FAKE])
    assert res.exit_code == 3, res.output  # the listed file that is gone is a failure
    rows = read_output(out).rows
    assert sorted(r["path"] for r in rows) == sorted([str(call), str(tmp_path / "gone.mp4")])
    assert all(os.path.isabs(r["path"]) for r in rows)
    assert [p for what, p, _ in fake_log(tmp_path) if what == "scan"] == [str(call)]  # handed to a worker once
    assert "duplicate path 1" in res.output


def _slow_archive(video_src, d, n):
    d.mkdir()
    distinct_copies(video_src / "base.mp4", d, "slow", n)


def _start(d, out, tmp_path):
    env = dict(os.environ, FAKE_SLOW_S="0.6")
    return subprocess.Popen([sys.executable, "-m", "detector.batch", "batch", str(d), "--out", str(out),
                             "--workers", "2", "--no-progress", "--analyzer", FAKE],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_ctrl_c_as_at_a_terminal)


def _ctrl_c_as_at_a_terminal() -> None:
    # A shell starts background jobs with SIGINT ignored, children inherit that,
    # and Python then leaves Ctrl-C ignored: when the test suite itself runs in
    # the background the batch would never see the SIGINT this test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_rows(out, n, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if out.exists() and out.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError("batch made no progress")


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_killed_batch_leaves_valid_output_and_resumes(video_src, tmp_path, how):
    d, out = tmp_path / "calls", tmp_path / "r.jsonl"
    _slow_archive(video_src, d, 8)
    proc = _start(d, out, tmp_path)
    try:
        _wait_rows(out, 2)
        if how == "sigint":
            os.kill(proc.pid, signal.SIGINT)  # Ctrl-C reaches the parent; it stops its workers
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 130, err.decode()
            assert b"resume" in err
        else:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole job dies at once, no cleanup at all
            proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = read_output(out)
    assert first.torn_bytes == 0 and first.bad_lines == 0
    assert 2 <= len(first.rows) < 8
    # the same command again finishes the job without redoing anything
    proc = _start(d, out, tmp_path)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    rows = read_output(out).rows
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 8
    assert all(r["status"] == "ok" for r in rows)
    assert f"{len(first.rows)} already in".encode() in stdout


def test_dask_local_from_cli(app, archive, tmp_path):
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["batch", str(archive), "--out", str(out), "--dask", "local", "--workers", "1",
                                   "--no-progress", "--analyzer", FAKE])
    assert res.exit_code == 3, res.output
    rows = read_output(out).rows
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "ok"]
    assert "1 failed" in res.output


def test_auto_speaker_view_reaches_the_workers_and_keys_the_rows(app, archive, tmp_path):
    from detector.options import ScanOptions

    out = tmp_path / "auto.jsonl"
    res = CliRunner().invoke(app, ["batch", str(archive), "--out", str(out), "--workers", "1", "--no-progress",
                                   "--auto-speaker-view", "--analyzer", FAKE])
    assert res.exit_code == 3, res.output  # the truncated upload, as above
    import json

    rows = [r for r in map(json.loads, out.read_text().splitlines()) if r["status"] == "ok"]
    assert rows and all(r["report"]["settings"]["speaker_view_auto"] is True for r in rows)
    # a run with the setting never reuses results scanned without it
    assert {r["score_key"] for r in rows} == {ScanOptions(speaker_view_auto=True).result_key()}
    assert ScanOptions(speaker_view_auto=True).result_key() != ScanOptions().result_key()


def test_summary_and_table_count_active_speaker_recordings_merged_or_scanned_again(tmp_path):
    from detector.batch.runner import BatchStats
    from detector.batch.summary import render_summary, summarize, write_csv

    def row(path, crossed, auto):
        return {"status": "ok", "path": path, "sha256": path * 8, "score_key": "k",
                "report": {"verdict": "inconclusive", "probability": 0.5, "caveats": [],
                           "video": {"duration_s": 10.0, "cuts_crossed_s": crossed, "speaker_view_auto": auto}}}

    rows = [row("a", [], False), row("b", [1.5, 3.0], False), row("c", [2.0], True), row("d", [4.0], False),
            row("e", [], False) | {"score_key": "other"}]
    archive = summarize(rows, "k")
    assert (archive.merged_across_cuts, archive.rescanned_speaker_view) == (2, 1)
    text = render_summary(BatchStats(), archive, "out.jsonl")
    assert "1 scanned a second time as active-speaker recordings" in text
    assert "2 carried a participant's track across a cut" in text and "--auto-speaker-view" in text
    csv_path = tmp_path / "ranked.csv"
    failed = {"status": "failed", "path": "f", "sha256": "f" * 8, "score_key": "k", "error_code": "corrupt_video",
              "error": "truncated"}
    write_csv(rows + [failed], csv_path, "k")
    with open(csv_path, newline="") as f:
        header = next(csv.reader(f))
    assert header[-3:] == ["caveats", "cuts_crossed", "scanned_again"]  # appended: earlier columns keep their place
    with open(csv_path, newline="") as f:
        table = {r["path"]: r for r in csv.DictReader(f)}
    assert [(table[p]["cuts_crossed"], table[p]["scanned_again"]) for p in "abcdf"] == [
        ("0", "0"), ("2", "0"), ("1", "1"), ("1", "0"), ("", "")]
    # an archive without such recordings gets neither line
    text = render_summary(BatchStats(), summarize([row("a", [], False)], "k"), "out.jsonl")
    assert "active-speaker" not in text and "across a cut" not in text
