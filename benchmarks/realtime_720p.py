"""Real-time factor of the default scan on a 720p30 call that anyone can regenerate.

    python benchmarks/realtime_720p.py [--seconds 20] [--out call_720p.mp4]

Renders a synthetic 1280x720, 30 fps, H.264 4:2:0 call with the project's own
generator (``detector.synth``: the bundled portrait, head motion, sensor
noise; no third-party footage), then runs ``detector bench`` on it in a fresh process: decode-only
throughput, the scan's real-time factor with and without start-up, the ratio
of the two wall times and peak RSS, all measured in this one run.

Why a second benchmark file: the dev clip the README also benches
(``ffpp_c40/original_183.mp4``) is stored as 4:4:4 chroma, for which FFmpeg's
colour conversion to RGB takes a slow path (about 4 ms a 720p frame on this
machine against about 1 ms for 4:2:0); call recordings from Zoom, Meet, Teams and browsers are 4:2:0.
Rendering takes about three times the clip's length; pass ``--out`` to keep
the clip and benchmark it again later without re-rendering.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from detector.synth import render_call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the synthetic call (default 20 s)")
    ap.add_argument("--out", type=Path, default=None, help="keep the rendered call here (reused if it exists)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = a.out or Path(tmp) / "call_720p30.mp4"
        if not path.exists():
            render_call(path, seconds=a.seconds, fps=30, size=(1280, 720), seed=7)
        # a fresh process, so start-up is timed as a user's first scan pays it (rendering imported mediapipe)
        out = subprocess.run([sys.executable, "-m", "detector.cli", "bench", str(path)],
                             capture_output=True, text=True)
        print(out.stdout, end="")
        if out.returncode != 0:
            sys.exit(f"detector bench failed (exit {out.returncode}):\n{out.stderr}")


if __name__ == "__main__":
    main()
