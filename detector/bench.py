"""``detector bench``: throughput and memory of the default scan on one file.

Everything is measured in one run on the same file: a decode-only pass (the
floor any analysis pays), then the full scan. Ratios, not absolute timings,
are what to compare across machines. Start-up (imports, loading the models)
is paid once per process, not per recording, so it is timed on its own and the
real-time factor is the scan's; the factor with start-up included is printed
too, since on a short file it is close to what a one-off ``detector scan``
sees (which also pays launching Python and importing this package, ~0.3 s,
counted in neither). The CPU time the scan used over its wall time says how
many cores it kept busy: near the core count, it is bound by computation.
"""
from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

from detector.api import Analyzer
from detector.errors import ConfigError
from detector.options import ScanOptions
from detector.video import PyAVSource


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    # every thread of the process: decoding, MediaPipe's own threads, the check stage
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_bench(path: Path, fps: float = 10.0, speaker_view: bool = False, rounds: int = 1) -> str:
    """The bench's printout. With ``rounds`` > 1 the file is scanned that many times by the same analyzer and a
    last line gives the median and range of the real-time factor and CPU time over the scans: on a shared
    machine one scan of a short file can be 20-30% off its neighbours, and the first scan of a process also
    warms caches and allocators (the lines above are the first scan's, as a one-off ``detector scan`` sees it).
    """
    if rounds < 1:
        raise ConfigError("rounds must be at least 1")
    options = ScanOptions(analysis_fps=fps, shot_cuts=speaker_view)
    t0 = time.perf_counter()
    with PyAVSource(path, max_side=options.max_side) as src:
        info = src.info
        n_decoded = sum(1 for _ in src.timestamps())
    t_decode = time.perf_counter() - t0
    rss_after_decode = _peak_rss_mb()

    t_start = time.perf_counter()
    with Analyzer(options) as analyzer:
        t1 = time.perf_counter()
        cpu0 = cpu_seconds()
        report = analyzer.scan(path)
        cpu_scan = cpu_seconds() - cpu0
        t_scan = time.perf_counter() - t1
        repeats = [(t_scan, cpu_scan)]
        for _ in range(rounds - 1):
            t2, cpu2 = time.perf_counter(), cpu_seconds()
            analyzer.scan(path)
            repeats.append((time.perf_counter() - t2, cpu_seconds() - cpu2))
    t_startup = t1 - t_start
    # the video seconds the scan went through: the decoded span (never FFmpeg's bitrate guess of a live-written
    # file's length, nor the part of a cut file that is missing); the header's duration for older reports
    duration = report.video.decoded_s or report.video.duration_s or 0.0
    analysed = report.video.analysed_frames
    lines = [
        f"file: {path} ({info.width}x{info.height}, {info.codec}, {duration:.1f} s, {n_decoded} frames)",
        f"decode only:        {n_decoded / t_decode:8.1f} frames/s  ({t_decode:.2f} s)",
        f"scan at {fps:g} fps:   {analysed / t_scan:8.1f} analysed frames/s  ({t_scan:.2f} s, "
        + ("speaker view, " if speaker_view else "") +
        f"{n_decoded / t_scan:.1f} frames/s read, {report.video.undecoded_frames} of them left undecoded: "
        "non-reference frames between analysed ones)",
        f"start-up:           {t_startup:8.2f} s  (loading MediaPipe and the models, once per process)",
        f"real-time factor:   {duration / t_scan:8.2f} x  (video seconds per wall second; "
        f"{duration / (t_startup + t_scan):.2f} x with start-up)",
        f"scan / decode-only: {t_scan / t_decode:8.2f} x the wall time of decoding alone",
        f"CPU during scan:    {cpu_scan:8.2f} s  ({cpu_scan / t_scan:.2f} cores busy on average)",
        f"peak RSS:           {_peak_rss_mb():8.1f} MB  (after decode-only pass: {rss_after_decode:.1f} MB)",
        "stage busy time:    " + ", ".join(f"{k} {v:.2f} s" for k, v in report.timings_s.items()),
    ]
    if rounds > 1:
        factors = sorted(duration / t for t, _ in repeats)
        cpus = sorted(c for _, c in repeats)
        lines.append(f"over {rounds} scans:      real-time factor median {statistics.median(factors):.2f} x "
                     f"({factors[0]:.2f}-{factors[-1]:.2f}), CPU median {statistics.median(cpus):.2f} s "
                     f"({cpus[0]:.2f}-{cpus[-1]:.2f}); peak RSS above covers them all")
    return "\n".join(lines)
