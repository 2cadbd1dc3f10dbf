"""A model-free analyzer for testing the batch machinery.

Imported by name ("batch_fakes:make_fake") in spawned and Dask worker processes;
conftest puts this folder on PYTHONPATH for them. Behaviour is driven by the
file name so a test arranges outcomes by naming files:
``crash`` kills the worker process, ``boom`` raises a bug, ``slow`` sleeps
FAKE_SLOW_S seconds (honouring should_stop), ``hang`` sleeps deaf to it, ``p0.83`` sets the probability (default 0.1).
Every build and scan is appended to $FAKE_ANALYZER_LOG as "build|scan pid path".
"""
from __future__ import annotations

import os
import re
import time
from fractions import Fraction
from pathlib import Path

from detector.errors import ModelError
from detector.report.model import Report, Thresholds, Verdict, VideoMeta
from detector.video import probe


FAKE = "batch_fakes:make_fake"


def distinct_copies(src: Path, folder: Path, stem: str, n: int) -> None:
    """``n`` copies of ``src`` named ``{stem}_{i}.mp4``, each with different trailing bytes.

    Resume keys rows by content hash: identical copies would count as one
    recording already done.
    """
    import shutil

    for i in range(n):
        dst = folder / f"{stem}_{i}.mp4"
        shutil.copy(src, dst)
        with open(dst, "ab") as f:
            f.write(bytes([i]) * 8)


def _log(what: str) -> None:
    log = os.environ.get("FAKE_ANALYZER_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{what} {os.getpid()}\n")


class FakeAnalyzer:
    def __init__(self, options):
        self.options = options
        _log("build -")

    def scan(self, path, progress=None, should_stop=None) -> Report:
        name = os.path.basename(path)
        _log(f"scan {path}")
        if "crash" in name:
            os._exit(7)
        if "boom" in name:
            raise RuntimeError("simulated analyser bug")
        if "hang" in name:  # stuck in native code: deaf to should_stop
            time.sleep(600)
        if "slow" in name:
            end = time.monotonic() + float(os.environ.get("FAKE_SLOW_S", "2"))
            while time.monotonic() < end:
                if should_stop is not None and should_stop():
                    from detector.analysis import Cancelled

                    raise Cancelled("analysis cancelled")
                time.sleep(0.02)
        info = probe(path)
        m = re.search(r"p(0\.\d+)", name)
        p = float(m.group(1)) if m else 0.1
        verdict = Verdict.likely_face_swapped if p >= 0.7 else Verdict.likely_genuine if p < 0.3 \
            else Verdict.inconclusive
        return Report(detector_version="fake", verdict=verdict, probability=p,
                      thresholds=Thresholds(low=0.3, high=0.7), summary="fake analysis",
                      video=VideoMeta(path=path, file_name=name, size_bytes=info.size_bytes,
                                      container=info.container, codec=info.codec, width=info.width,
                                      height=info.height,
                                      duration_s=float(info.duration) if info.duration is not None else None,
                                      analysis_fps=self.options.analysis_fps),
                      settings=self.options.to_dict(),
                      caveats=["fake caveat: small face"] if p >= 0.7 else [])

    def close(self) -> None:
        pass


def make_fake(options) -> FakeAnalyzer:
    return FakeAnalyzer(options)


def make_broken(options):
    raise ModelError("models/fusion.onnx not found (simulated)")


def write_mp4(path, seconds: float = 1.0, fps: int = 10, size=(96, 64), seed: int = 0) -> str:
    """A small real H.264/MPEG-4 file (moov at the end, as PyAV writes it)."""
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="mp4") as c:
        try:
            s = c.add_stream("libx264", rate=fps)
        except Exception:  # a PyAV build without x264
            s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return str(path)


def cut_in_half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def fake_log(tmp_path: Path) -> list[tuple[str, str, int]]:
    p = tmp_path / "fake.log"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        what, rest = line.split(" ", 1)
        path, pid = rest.rsplit(" ", 1)
        out.append((what, path, int(pid)))
    return out
