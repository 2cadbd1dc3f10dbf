"""Peak memory does not grow with recording length.

    python benchmarks/memory_flat.py [FILE] [--repeat 12]

Builds a long recording by looping FILE (default: the bundled fake sample)
``--repeat`` times (re-encoded with continuous timestamps), then scans the
original and the long version, each in a fresh process, and prints both
peak RSS values and their ratio, measured in this one run. A ratio near 1.0
means memory is flat in the length of the call.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
from detector import Analyzer, ScanOptions
t = time.perf_counter()
with Analyzer(ScanOptions()) as a:
    r = a.scan(sys.argv[1])
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": time.perf_counter() - t, "duration_s": r.video.duration_s,
                  "frames": r.video.analysed_frames, "verdict": r.verdict.value}))
"""


def loop_video(src: Path, dst: Path, repeat: int) -> None:
    with av.open(str(src)) as inp:
        s = inp.streams.video[0]
        frames = [f.to_ndarray(format="yuv420p") for f in inp.decode(s)]
        rate = s.average_rate or Fraction(30)
        w, h = s.codec_context.width, s.codec_context.height
    with av.open(str(dst), "w") as out:
        o = out.add_stream("libx264", rate=rate)
        o.width, o.height, o.pix_fmt = w, h, "yuv420p"
        o.options = {"preset": "ultrafast", "crf": "23"}
        for _ in range(repeat):
            for arr in frames:
                for p in o.encode(av.VideoFrame.from_ndarray(arr, format="yuv420p")):
                    out.mux(p)
        for p in o.encode():
            out.mux(p)


def measure(path: Path) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         env={"GLOG_minloglevel": "2", **__import__("os").environ}, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", type=Path, default=REPO / "samples" / "interview_faceswap.mp4")
    ap.add_argument("--repeat", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / "long.mp4"
        t = time.perf_counter()
        loop_video(args.file, long, args.repeat)
        print(f"built {args.repeat}x loop in {time.perf_counter() - t:.1f} s")
        short_m, long_m = measure(args.file), measure(long)
    for name, m in (("original", short_m), (f"{args.repeat}x longer", long_m)):
        print(f"{name:>14}: {m['duration_s']:7.1f} s of video, {m['frames']:6d} frames analysed, "
              f"peak RSS {m['rss_mb']:7.1f} MB, {m['duration_s'] / m['wall_s']:.2f}x real time")
    print(f"peak RSS ratio (long / original): {long_m['rss_mb'] / short_m['rss_mb']:.3f} "
          f"for a {long_m['duration_s'] / short_m['duration_s']:.1f}x longer recording")


if __name__ == "__main__":
    main()
