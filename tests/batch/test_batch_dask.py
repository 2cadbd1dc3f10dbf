"""The same batch on Dask distributed, against a LocalCluster the test starts (loopback only)."""
from __future__ import annotations

import collections
import logging
import shutil

import pytest

from batch_fakes import FAKE, distinct_copies, fake_log
from detector.batch.discover import walk
from detector.batch.resume import ResultStore, read_output
from detector.batch.runner import run_batch
from detector.options import ScanOptions

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster(_fake_importable):
    # started after PYTHONPATH is set, so worker processes can import the fake analyzer
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  host="127.0.0.1", silence_logs=logging.ERROR) as c:
        yield c


def test_dask_batch_resumes_and_keeps_models_loaded(archive, video_src, tmp_path, cluster):
    from detector.batch.dask_runner import DaskBackend

    distinct_copies(video_src / "other.mp4", archive, "extra", 4)  # enough tasks that each worker runs several
    out = tmp_path / "r.jsonl"
    with distributed.Client(cluster) as client:
        with ResultStore(out) as store:
            stats = run_batch(list(walk([archive])), store, ScanOptions(), DaskBackend(client=client), factory=FAKE)
        assert (stats.ok, stats.failed, stats.not_recordings) == (7, 1, 1)
        rows = read_output(out).rows
        assert len(rows) == 8
        failed = [r for r in rows if r["status"] == "failed"]
        assert [r["path"].rsplit("/", 1)[1] for r in failed] == ["truncated_upload.mp4"]
        log = fake_log(tmp_path)
        builds = collections.Counter(pid for what, _, pid in log if what == "build")
        scan_pids = {pid for what, _, pid in log if what == "scan"}
        assert set(builds.values()) == {1} and scan_pids <= set(builds) and len(builds) <= 2
        # second run: the finished set is shipped to the workers, nothing is rescanned
        with ResultStore(out) as store:
            stats = run_batch(list(walk([archive])), store, ScanOptions(), DaskBackend(client=client), factory=FAKE)
        assert stats.already_done == 8 and stats.ok == 0
        assert len(read_output(out).rows) == 8


def test_cli_on_scheduler_with_list_of_urls(video_src, tmp_path, cluster):
    import typer
    from typer.testing import CliRunner

    from detector.batch.cli import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _cb() -> None:
        pass

    shared = tmp_path / "shared fs"
    shared.mkdir()
    shutil.copy(video_src / "base.mp4", shared / "a_p0.85.mp4")
    shutil.copy(video_src / "other.mp4", shared / "b.mp4")
    lst = tmp_path / "calls.txt"
    lst.write_text(f"file://{(shared / 'a_p0.85.mp4').as_posix().replace(' ', '%20')}\n"
                   f"{shared / 'b.mp4'}\n{shared / 'missing.mp4'}\n")
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(app, ["batch", "--from-list", str(lst), "--out", str(out), "--no-progress",
                                   "--scheduler", cluster.scheduler_address, "--analyzer", FAKE])
    assert res.exit_code == 3, res.output  # the missing file is a failure row
    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_output(out).rows}
    assert rows["a_p0.85.mp4"]["status"] == "ok" and rows["b.mp4"]["status"] == "ok"
    assert rows["missing.mp4"]["status"] == "failed" and rows["missing.mp4"]["error_code"] == "bad_input"
    assert "likely_face_swapped" in res.output and "missing.mp4" in res.output


def test_dask_worker_death_becomes_a_row(video_src, tmp_path, _fake_importable):
    import dask

    from detector.batch.dask_runner import DaskBackend

    d = tmp_path / "calls"
    d.mkdir()
    shutil.copy(video_src / "base.mp4", d / "a_p0.8.mp4")
    shutil.copy(video_src / "other.mp4", d / "b_crash.mp4")
    out = tmp_path / "r.jsonl"
    # one retry on another worker, then the scheduler gives up on the task (KilledWorker)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                      host="127.0.0.1", silence_logs=logging.ERROR) as c:
            with distributed.Client(c) as client:
                with ResultStore(out) as store:
                    stats = run_batch(list(walk([d])), store, ScanOptions(), DaskBackend(client=client),
                                      factory=FAKE)
    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_output(out).rows}
    assert rows["b_crash.mp4"]["error_code"] == "worker_crashed"
    assert rows["a_p0.8.mp4"]["status"] == "ok"
    assert (stats.ok, stats.failed) == (1, 1)
