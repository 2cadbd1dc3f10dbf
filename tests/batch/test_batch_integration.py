"""The batch with the real Analyzer (MediaPipe, checks, report) in spawned workers."""
from __future__ import annotations

from pathlib import Path

import pytest

from batch_fakes import cut_in_half
from detector.api import file_sha256
from detector.batch.discover import walk
from detector.batch.records import BatchRecord
from detector.batch.resume import ResultStore, read_output
from detector.batch.runner import LocalBackend, run_batch
from detector.options import ScanOptions
from detector.paths import models_dir

ROOT = Path(__file__).resolve().parents[2]


def test_real_analyzer_on_synthetic_calls(tmp_path):
    synth = pytest.importorskip("detector.synth")
    d = tmp_path / "calls"
    d.mkdir()
    synth.render_call(d / "genuine.mp4", seconds=3, fps=15, size=(320, 240), seed=1)
    synth.render_call(d / "swapped.mkv", seconds=3, fps=15, size=(320, 240), seed=2, swap=True)
    cut_in_half(d / "genuine.mp4", d / "cut.mp4")
    (d / "readme.txt").write_text("not a call\n" * 300)
    out = tmp_path / "r.jsonl"
    # features only: runs without models/*.onnx (the fusion is another engineer's artefact)
    opts = ScanOptions(analysis_fps=5, use_fusion=False)
    with ResultStore(out) as store:
        stats = run_batch(list(walk([d])), store, opts, LocalBackend(2))
    rows = {Path(r["path"]).name: BatchRecord.model_validate(r) for r in read_output(out).rows}
    assert set(rows) == {"genuine.mp4", "swapped.mkv", "cut.mp4"}
    for name in ("genuine.mp4", "swapped.mkv"):
        r = rows[name]
        assert r.status == "ok", r.error
        assert r.report.video.sha256 == r.sha256 == file_sha256(d / name)
        assert r.report.video.duration_s == pytest.approx(3.0, abs=0.2)
        assert r.report.tracks, "the synthetic face was not tracked"
    assert rows["cut.mp4"].status == "failed" and rows["cut.mp4"].error_code
    assert (stats.ok, stats.failed) == (2, 1)


def test_real_analyzer_on_bundled_sample(tmp_path):
    samples = sorted((ROOT / "samples").glob("*.mp4"), key=lambda p: p.stat().st_size)
    if not (models_dir() / "fusion.onnx").is_file():
        pytest.skip(f"no fusion model at {models_dir() / 'fusion.onnx'} yet")
    if not samples:
        pytest.skip("no samples/*.mp4 yet")
    out = tmp_path / "r.jsonl"
    with ResultStore(out) as store:
        stats = run_batch([str(samples[0])], store, ScanOptions(), LocalBackend(1))
    (row,) = read_output(out).rows
    rec = BatchRecord.model_validate(row)
    assert rec.status == "ok", rec.error
    assert rec.report.probability is not None and 0.0 <= rec.report.probability <= 1.0
    assert rec.report.verdict.value != "failed"
    assert stats.ok == 1
