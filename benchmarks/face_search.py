"""What spacing out Face Mesh's search for new faces saves, measured in one run on calls anyone can regenerate.

    python benchmarks/face_search.py [--seconds 10] [--rounds 2]

Renders two synthetic calls with the project's own generator (``detector.synth``; no third-party footage): a
one-person 1280x720 30 fps call, scanned with the defaults, and a 3x3 gallery call (9 participants in 320x240
tiles), scanned with ``--gallery 3 --max-faces 9``. Each is scanned with ``new_face_search_s`` None (MediaPipe's own
schedule: its face detector runs on every frame while fewer faces than the maximum are tracked) and 1.0 (the
default: once a second while a face is tracked), ``--rounds`` times each in ABBA order (so that a machine getting
faster or slower during the run favours neither arm), after one untimed scan per arm (first-run costs). It prints
the scan's CPU and wall time per arm, their ratios, and how many participants each arm found, all from this one
run. Loading the ONNX models is paid before the timed scans; each scan builds its own Face Mesh graphs (one, or ten
for the gallery), inside the timing, as a scan does.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from detector import Analyzer, ScanOptions
from detector.bench import cpu_seconds
from detector.synth import render_call, render_gallery


def _timed_scan(analyzer: Analyzer, path: Path) -> tuple[float, float, int]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    analysis = analyzer.analyse(path)
    return cpu_seconds() - c0, time.perf_counter() - t0, len(analysis.tracks)


def compare(name: str, path: Path, options: ScanOptions, rounds: int) -> list[str]:
    arms = {"every frame": None, "once a second": 1.0}
    analyzers: dict[str, Analyzer] = {}
    try:
        for label, s in arms.items():
            analyzers[label] = Analyzer(ScanOptions(**{**options.to_dict(), "new_face_search_s": s}))
            analyzers[label].analyse(path)  # untimed: first-run costs
        runs: dict[str, list[tuple[float, float, int]]] = {label: [] for label in arms}
        order = list(arms)
        for r in range(rounds):
            for label in (order if r % 2 == 0 else order[::-1]):  # ABBA...
                runs[label].append(_timed_scan(analyzers[label], path))
    finally:
        for analyzer in analyzers.values():
            analyzer.close()
    lines = [f"{name}:"]
    mean = {}
    for label, rs in runs.items():
        cpu = sum(r[0] for r in rs) / len(rs)
        wall = sum(r[1] for r in rs) / len(rs)
        mean[label] = (cpu, wall)
        lines.append(f"  search {label:14s} CPU {cpu:6.2f} s, wall {wall:6.2f} s (mean of {len(rs)}), "
                     f"participants found {sorted({r[2] for r in rs})}")
    (c_every, w_every), (c_once, w_once) = mean["every frame"], mean["once a second"]
    lines.append(f"  once a second / every frame: CPU {c_once / c_every:.2f}x, wall {w_once / w_every:.2f}x")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each synthetic call (default 10 s)")
    ap.add_argument("--rounds", type=int, default=2, help="timed scans per arm, in ABBA order (default 2)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = render_call(Path(tmp) / "one_720p30.mp4", seconds=a.seconds, fps=30, size=(1280, 720), seed=7)
        gallery = render_gallery(Path(tmp) / "gallery_3x3.mp4", grid=(3, 3), seconds=a.seconds, fps=15, seed=5)
        common = dict(use_fusion=False, hash_file=False)
        lines = compare(f"one person, 1280x720 30 fps, {a.seconds:g} s", one, ScanOptions(**common), a.rounds)
        lines += compare(f"3x3 gallery, 960x720 15 fps, {a.seconds:g} s (--gallery 3 --max-faces 9)", gallery,
                         ScanOptions(max_faces=9, gallery_grid=3, **common), a.rounds)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
