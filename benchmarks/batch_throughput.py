"""Batch throughput: 1 local worker vs 2, on the same files, in one run.

    python benchmarks/batch_throughput.py                 # synthetic calls (detector.synth)
    python benchmarks/batch_throughput.py DIR_OR_FILES... # your own recordings

Each configuration scans every file into a fresh output with the real
Analyzer through ``detector.batch`` (spawned workers, models loaded once per
worker). Wall time includes starting the workers and loading the models,
because a real batch pays that too. Prints recordings/min and video-seconds
per wall-second for each, and the 2-vs-1 ratio. Without models/fusion.onnx
the fusion is skipped (features only) and the output says so.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from detector.batch.discover import walk  # noqa: E402
from detector.batch.resume import ResultStore, read_output  # noqa: E402
from detector.batch.runner import LocalBackend, run_batch  # noqa: E402
from detector.options import ScanOptions  # noqa: E402
from detector.paths import models_dir  # noqa: E402


def synthetic_set(d: Path, n: int, seconds: float) -> list[str]:
    from detector.synth import render_call

    for i in range(n):
        render_call(d / f"call_{i:02d}.mp4", seconds=seconds, fps=30, size=(640, 480), seed=i, swap=bool(i % 2))
    return sorted(str(p) for p in d.glob("*.mp4"))


def measure(files: list[str], workers: int, options: ScanOptions, out_dir: Path) -> dict:
    out = out_dir / f"w{workers}.jsonl"
    done_at: list[tuple[float, float]] = []  # (time, video seconds) of each finished recording
    t0 = time.perf_counter()
    with ResultStore(out, fsync=True) as store:
        stats = run_batch(files, store, options, LocalBackend(workers),
                          on_record=lambda o: done_at.append((time.perf_counter(), o.duration_s or 0.0)))
    wall = time.perf_counter() - t0
    rows = read_output(out).rows
    r = {"workers": workers, "wall_s": wall, "ok": stats.ok, "failed": stats.failed,
         "video_s": stats.video_seconds, "rec_per_min": stats.ok / wall * 60,
         "video_s_per_s": stats.video_seconds / wall, "rows": len(rows), "steady_rec_per_min": None}
    # steady state: after each worker's first recording (which also paid for
    # process start and model loading), until the last one
    if len(done_at) > workers:
        span = done_at[-1][0] - done_at[workers - 1][0]
        if span > 0:
            r["steady_rec_per_min"] = (len(done_at) - workers) / span * 60
            r["steady_video_s_per_s"] = sum(v for _, v in done_at[workers:]) / span
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", help="files or folders (default: generate synthetic calls)")
    ap.add_argument("--files", type=int, default=8, help="synthetic calls to generate")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each synthetic call")
    ap.add_argument("--fps", type=float, default=10.0, help="analysis fps")
    args = ap.parse_args()

    has_fusion = (models_dir() / "fusion.onnx").is_file()
    options = ScanOptions(analysis_fps=args.fps, use_fusion=has_fusion)
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        tmp = Path(tmp)
        if args.paths:
            files = list(walk(args.paths))
            source = "given files"
        else:
            (tmp / "calls").mkdir()
            files = synthetic_set(tmp / "calls", args.files, args.seconds)
            source = f"{args.files} synthetic 640x480 calls of {args.seconds:g}s (detector.synth)"
        if not files:
            print("no recordings found", file=sys.stderr)
            return 2
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible; python {platform.python_version()}")
        print(f"input: {len(files)} files, {source}; analysis {args.fps:g} fps; "
              f"fusion {'on' if has_fusion else 'OFF (models/fusion.onnx missing: features only)'}")
        results = [measure(files, w, options, tmp) for w in (1, 2)]
    for r in results:
        print(f"workers={r['workers']}: {r['ok']} ok, {r['failed']} failed in {r['wall_s']:.1f}s wall "
              f"(incl. worker start + model load) -> {r['rec_per_min']:.1f} recordings/min, "
              f"{r['video_s_per_s']:.2f} video-s per wall-s")
        if r["steady_rec_per_min"]:
            print(f"           steady state (after each worker's first file): {r['steady_rec_per_min']:.1f} "
                  f"recordings/min, {r['steady_video_s_per_s']:.2f} video-s per wall-s")
    one, two = results
    if one["rec_per_min"] > 0:
        print(f"ratio 2 workers / 1 worker (wall, incl. start-up): {two['rec_per_min'] / one['rec_per_min']:.2f}x")
    if one["steady_rec_per_min"] and two["steady_rec_per_min"]:
        print(f"ratio 2 workers / 1 worker (steady state): "
              f"{two['steady_rec_per_min'] / one['steady_rec_per_min']:.2f}x")
    try:
        print(f"load average during the run (other users share this machine): {os.getloadavg()[0]:.1f}")
    except OSError:
        pass
    return 0 if all(r["failed"] == 0 and r["ok"] == len(files) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
