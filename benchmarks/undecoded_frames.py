"""What leaving unneeded H.264 frames undecoded saves a scan, measured in one run.

    python benchmarks/undecoded_frames.py FILE [--rounds 4] [--fps 10]

A scan samples 10 frames a second, and ``PyAVSource`` leaves undecoded the non-reference H.264 frames the clock
does not pick (``detector.video.frame_skipping``). This script scans FILE in one process with that on ("skip") and
off ("full", every frame decoded as before), in ABBA order so that drift in the machine's speed falls on both arms,
and prints each arm's median wall and CPU time, their ratios, how many frames went undecoded, and whether the two
arms' reports agree (they must: the analysed frames are the same, bit for bit). It also times decoding alone both
ways. To turn skipping off it replaces the source class the analysis opens, here only.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import detector.analysis as analysis
from detector.api import Analyzer, ScanOptions
from detector.bench import cpu_seconds
from detector.video.pyav_source import PyAVSource


def _decode(path: Path, fps: float, skip: bool) -> tuple[float, float, int, int]:
    t, c = time.perf_counter(), cpu_seconds()
    with PyAVSource(path, skip_unreferenced=skip) as src:
        n = sum(1 for _ in src.frames(fps))
        return time.perf_counter() - t, cpu_seconds() - c, src.decoded_frames, src.undecoded_frames


def _comparable(report) -> dict:
    d = report.model_dump(mode="json")
    d.pop("timings_s", None)
    d.pop("created_at", None)
    d["video"].pop("undecoded_frames", None)  # what differs by design
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--rounds", type=int, default=4, help="ABBA pairs per arm (default 4: 8 scans)")
    ap.add_argument("--fps", type=float, default=10.0)
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")

    decode = {"full": [], "skip": []}
    for arm in ("full", "skip", "skip", "full"):
        decode[arm].append(_decode(a.file, a.fps, arm == "skip"))
    frames, undecoded = decode["skip"][0][2], decode["skip"][0][3]

    original = analysis.PyAVSource
    arms = {"full": functools.partial(PyAVSource, skip_unreferenced=False), "skip": PyAVSource}
    times: dict[str, list[tuple[float, float]]] = {"full": [], "skip": []}
    reports = {}
    try:
        with Analyzer(ScanOptions(analysis_fps=a.fps)) as analyzer:
            analyzer.scan(a.file)  # warm caches and allocators before either arm is timed
            order = ["full", "skip", "skip", "full"] * a.rounds
            for arm in order:
                analysis.PyAVSource = arms[arm]
                t, c = time.perf_counter(), cpu_seconds()
                reports[arm] = analyzer.scan(a.file)
                times[arm].append((time.perf_counter() - t, cpu_seconds() - c))
    finally:
        analysis.PyAVSource = original

    def med(arm: str, k: int, source=times) -> float:
        return statistics.median(x[k] for x in source[arm])

    print(f"file: {a.file}  ({frames} frames; {undecoded} left undecoded at {a.fps:g} fps, "
          f"{undecoded / max(frames, 1):.0%})")
    print(f"decode at {a.fps:g} fps, 2 passes each: full {med('full', 0, decode):.2f} s wall, "
          f"{med('full', 1, decode):.2f} s CPU; skip {med('skip', 0, decode):.2f} s wall, "
          f"{med('skip', 1, decode):.2f} s CPU; skip / full {med('skip', 1, decode) / med('full', 1, decode):.2f} x CPU")
    for arm in ("full", "skip"):
        walls = sorted(x[0] for x in times[arm])
        print(f"scan, {arm:4s} ({len(walls)} scans): median {med(arm, 0):.2f} s wall ({walls[0]:.2f}-{walls[-1]:.2f}), "
              f"{med(arm, 1):.2f} s CPU")
    print(f"skip / full: {med('skip', 0) / med('full', 0):.3f} x the wall time, "
          f"{med('skip', 1) / med('full', 1):.3f} x the CPU")
    full, skip = _comparable(reports["full"]), _comparable(reports["skip"])
    same = full == skip
    print(f"reports identical apart from timings and the count of undecoded frames: {'yes' if same else 'NO'}")
    if not same:
        print("  differing keys: " + ", ".join(k for k in full if full[k] != skip.get(k)))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
