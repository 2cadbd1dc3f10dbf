"""Helpers of the web tests: a tiny real video and a fake analyzer.

The fake analyzer honours the real interface (progress callback,
should_stop, typed errors, a valid Report) so the job machinery is tested
without models; the browser test uses the real :class:`Analyzer`.
"""
from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np

from detector.analysis import Cancelled
from detector.api import SECOND_PASS_LABEL
from detector.report.model import (CheckResult, Evidence, Report, Segment, Thresholds, TimelinePoint, TrackReport,
                                   Verdict, VideoMeta)
from detector.video import probe


def write_tiny_video(path: Path, seconds: float = 2.0, fps: int = 10, size: int = 64) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((size, size, 3), (i * 9) % 255, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _thumb_b64() -> str:
    img = np.zeros((48, 48, 3), np.uint8)
    cv2.circle(img, (24, 24), 16, (180, 160, 140), -1)
    return base64.b64encode(cv2.imencode(".jpg", img)[1].tobytes()).decode("ascii")


def fake_report(path: str, probability: float = 0.82) -> Report:
    info = probe(path)
    duration = float(info.duration or 2.0)
    verdict = Verdict.likely_face_swapped if probability >= 0.7 else Verdict.likely_genuine
    timeline = [TimelinePoint(start_s=t, end_s=t + duration / 2, probability=p)
                for t, p in ((0.0, 0.3), (duration / 4, 0.6), (duration / 2, probability))]
    track = TrackReport(track_id=0, first_seen_s=0.0, last_seen_s=duration, observed_frames=20, median_face_px=120.0,
                        verdict=verdict, probability=probability, timeline=timeline,
                        checks=[CheckResult(name="sbi", title="Blending artefacts", explanation="edges of a pasted face",
                                            suspicion=0.9),
                                CheckResult(name="geometry", title="Face geometry", explanation="landmark jitter",
                                            suspicion=None)])
    return Report(detector_version="test", verdict=verdict, probability=probability,
                  thresholds=Thresholds(low=0.3, high=0.7), summary="Synthetic report for tests.",
                  video=VideoMeta(path=str(path), file_name=Path(path).name, size_bytes=info.size_bytes,
                                  container=info.container, codec=info.codec, width=info.width, height=info.height,
                                  duration_s=duration, analysis_fps=10.0, analysed_frames=20),
                  tracks=[track],
                  segments=[Segment(track_id=0, start_s=duration / 2, end_s=duration, probability=probability,
                                    top_check="sbi", explanation="blending edges around the face")],
                  evidence=[Evidence(track_id=0, time_s=duration * 0.75, probability=probability, check="sbi",
                                     explanation="blending edges around the face", bbox=(0, 0, 10, 10),
                                     thumbnail_jpeg_b64=_thumb_b64())],
                  timings_s={"total": 0.1})


class FakeAnalyzer:
    """Steps through progress; ``gate`` (when given) holds the scan at 50 % until set."""

    instances = 0
    lock = threading.Lock()

    def __init__(self, gate: threading.Event | None = None, fail_with: Exception | None = None, steps: int = 4,
                 cuts_crossed: bool = False, second_pass: bool = False):
        with FakeAnalyzer.lock:
            FakeAnalyzer.instances += 1
        self.gate = gate
        self.fail_with = fail_with
        self.steps = steps
        #: report a track carried across a cut when scanned without shot_cuts (an active-speaker recording)
        self.cuts_crossed = cuts_crossed
        #: progress runs from 0 to 1 twice, the second time under the label of a second pass (--auto-speaker-view)
        self.second_pass = second_pass
        self.scanned: list[str] = []
        self.shot_cuts: list = []  # what each scan was asked: None (the analyzer's setting), True or False
        self.closed = False

    def scan(self, path, progress=None, should_stop=None, shot_cuts=None):
        self.scanned.append(str(path))
        self.shot_cuts.append(shot_cuts)
        probe(path)  # bad files raise InputError like the real analyzer
        passes = ["analysing", SECOND_PASS_LABEL] if self.second_pass else ["analysing"]
        for i in range(self.steps * len(passes)):
            if should_stop and should_stop():
                raise Cancelled("analysis cancelled")
            frac = (i % self.steps) / self.steps
            if progress:
                progress(frac, passes[i // self.steps])
            if self.gate is not None and frac >= 0.5:
                while not self.gate.wait(0.02):
                    if should_stop and should_stop():
                        raise Cancelled("analysis cancelled")
            time.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        report = fake_report(str(path))
        report.video.shot_cuts_s = [0.5] if self.cuts_crossed else []
        if self.cuts_crossed and not shot_cuts:
            report.video.cuts_crossed_s = [0.5]
            report.caveats = ["a track was carried across the cut once"]
        if progress:
            progress(1.0, "done")
        return report

    def close(self):
        self.closed = True


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
