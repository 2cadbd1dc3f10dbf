"""The streaming analysis: decode -> landmarks -> tracks -> checks.

Decoding runs in its own thread and hands frames over through a bounded
queue, so memory stays flat however long the call is: at most
``queue_size`` decoded frames exist at once, and each track keeps about one
timeline window of check samples (:mod:`detector.timeline` cuts windows
while the call streams), what its window reducer made of every window, and a
decimated set of small JPEG thumbnails for evidence.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Callable, Iterator

import cv2
import numpy as np

from detector.checks import CHECKS, DEFAULT_CHECKS, CheckContext, FaceObservation, TrackCheck
from detector.errors import ConfigError, DetectorError
from detector.faces import FaceTracker, LandmarkOptions, align_face, create_landmark_detector
from detector.faces.linking import AppearanceSignature, link_tracks
from detector.faces.shots import CutCrossings, ShotCutDetector, SmallFrame
from detector.options import ScanOptions
from detector.timeline import TimelineWindow, TrackTimeline, WindowReducer, keep_features
from detector.video import Frame, PyAVSource, VideoInfo

ProgressCallback = Callable[[float, str], None]

_END = object()


class Cancelled(DetectorError):
    """The caller asked the analysis to stop."""

    code = "cancelled"


@dataclass
class Thumbnail:
    seconds: float
    jpeg: bytes
    bbox: tuple[float, float, float, float]


class ThumbnailStore:
    """At most ``capacity`` evenly spread face thumbnails of one track.

    Keeps one per ``interval`` seconds; when full, drops every other one and
    doubles the interval, so a 2-hour call costs the same memory as a
    2-minute one.
    """

    def __init__(self, capacity: int = 512, interval: float = 0.5):
        self.capacity = capacity
        self.interval = interval
        self.items: list[Thumbnail] = []

    def offer(self, seconds: float, crop_rgb: np.ndarray, bbox) -> None:
        if self.items and seconds - self.items[-1].seconds < self.interval:
            return
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        if ok:
            self.items.append(Thumbnail(seconds, buf.tobytes(), tuple(float(v) for v in bbox)))
        self._thin()

    def merge(self, other: "ThumbnailStore") -> None:
        """Add another store's thumbnails (another turn of the same participant), thinned to capacity as above."""
        self.items = sorted(self.items + other.items, key=lambda t: t.seconds)
        self.interval = max(self.interval, other.interval)
        self._thin()

    def _thin(self) -> None:
        while len(self.items) > self.capacity:
            self.items = self.items[::2]
            self.interval *= 2

    def nearest(self, seconds: float) -> Thumbnail | None:
        if not self.items:
            return None
        return min(self.items, key=lambda t: abs(t.seconds - seconds))


@dataclass
class TrackData:
    track_id: int
    checks: dict[str, TrackCheck]
    thumbnails: ThumbnailStore
    timeline: TrackTimeline
    #: what the track looks like, to join it with the same participant's other turns (detector.faces.linking)
    appearance: AppearanceSignature = field(default_factory=AppearanceSignature)

    def absorb(self, other: "TrackData") -> None:
        """Take in another finished track of the same participant (see :func:`join_participants`)."""
        self.timeline.absorb(other.timeline)
        self.thumbnails.merge(other.thumbnails)
        self.appearance.merge(other.appearance)

    @property
    def frames(self) -> int:
        """Analysed frames in which this track's face was seen."""
        return self.timeline.frames

    @property
    def first_seen(self) -> float:
        return self.timeline.first_seen

    @property
    def last_seen(self) -> float:
        return self.timeline.last_seen

    @property
    def duration(self) -> float:
        return self.timeline.duration

    @property
    def windows(self) -> list[TimelineWindow]:
        return self.timeline.windows


@dataclass
class CallAnalysis:
    """Everything the analysis measured, before fusion."""

    info: VideoInfo
    options: ScanOptions
    tracks: list[TrackData]
    analysed_frames: int
    decoded_frames: int
    truncated: bool
    timings: dict[str, float]
    #: times (s) at which the picture cut to another shot; tracks end there only when ``options.shot_cuts`` is on
    shot_cuts: list[float] = field(default_factory=list)
    #: the cuts that a track was carried across (only when ``options.shot_cuts`` is off): two people may be merged
    cuts_crossed: list[float] = field(default_factory=list)
    #: seconds of the recording that could be decoded (:attr:`PyAVSource.decoded_seconds`); None when unknown
    decoded_seconds: float | None = None
    #: of ``decoded_frames``, those the scan had no need to decode (:attr:`PyAVSource.undecoded_frames`)
    undecoded_frames: int = 0

    @property
    def check_names(self) -> list[str]:
        """The checks that ran, in registry order."""
        return list(selected_checks(self.options))

    def track_features(self, track: TrackData) -> dict[str, float]:
        """The track's features: the mean of its timeline windows' features (see :mod:`detector.timeline`)."""
        return track.timeline.features()


def _frame_producer(source: PyAVSource, rate: float, out: "queue.Queue", stop: threading.Event) -> None:
    """Decode thread body: push (frame, its small copies for the cut detector) pairs (then _END or the exception)
    into ``out``."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for frame in source.frames(rate=Fraction(rate).limit_denominator(1000)):
            # the cut detector's small copy is made here: this thread waits on the scan most of the time
            if not put((frame, ShotCutDetector.small(frame.image))):
                return
        put(_END)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        put(exc)


def _iter_frames(source: PyAVSource, options: ScanOptions) -> Iterator[tuple[Frame, SmallFrame]]:
    q: queue.Queue = queue.Queue(maxsize=options.queue_size)
    stop = threading.Event()
    t = threading.Thread(target=_frame_producer, args=(source, options.analysis_fps, q, stop),
                         name="detector-decode", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def join_participants(tracks: list[TrackData]) -> list[TrackData]:
    """Join the tracks of one participant (split by cuts) by appearance, and number participants in order.

    See :mod:`detector.faces.linking`. Each group becomes its first track with the others absorbed; tracks are
    then numbered 0, 1, ... by when they were first seen, so "participant 2" is the second person to appear.
    """
    ordered = sorted((t for t in tracks if t.first_seen is not None), key=lambda t: (t.first_seen, t.track_id))
    groups = link_tracks([(t.first_seen, t.last_seen) for t in ordered], [t.appearance for t in ordered])
    joined = []
    for g in groups:
        head = ordered[g[0]]
        for k in g[1:]:
            head.absorb(ordered[k])
        joined.append(head)
    joined.sort(key=lambda t: t.first_seen)
    return [replace(t, track_id=i) for i, t in enumerate(joined)]


def landmark_options(options: ScanOptions) -> LandmarkOptions:
    """The landmark stage's options for a scan."""
    return LandmarkOptions(max_faces=options.max_faces, gallery_grid=options.gallery_grid,
                           new_face_search_s=options.new_face_search_s)


def selected_checks(options: ScanOptions) -> dict[str, type[TrackCheck]]:
    names = list(DEFAULT_CHECKS) if options.checks is None else list(options.checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown checks {unknown}; available: {sorted(CHECKS)}")
    return {n: CHECKS[n] for n in names}


class _CheckStage:
    """Runs alignment, checks and thumbnails in a worker thread.

    Landmark inference (main thread), decoding (decode thread) and the checks
    (this thread) overlap: OpenCV, NumPy, onnxruntime and MediaPipe release
    the GIL in their native code. The queue is bounded, so a slow check
    slows the pipeline down instead of growing memory.
    """

    def __init__(self, check_classes: dict[str, type[TrackCheck]], context: CheckContext, options: ScanOptions,
                 window_reducer: WindowReducer):
        self.check_classes = check_classes
        self.context = context
        self.options = options
        self.window_reducer = window_reducer
        self.tracks: dict[int, TrackData] = {}
        self._finished: set[int] = set()
        self.busy = 0.0
        self._q: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="detector-checks", daemon=True)
        self._thread.start()

    def finish_tracks(self, track_ids: list[int]) -> None:
        """These tracks have ended (a cut): cut their last windows and free their checks, in stream order.

        A speaker-view call has hundreds of cuts; holding every ended track's checks (buffered crops, signals)
        until the call ends would make memory grow with the number of turns.
        """
        if self._error is not None:
            raise self._error
        if track_ids:
            self._q.put((None, list(track_ids)))

    def submit(self, frame: Frame, assigned: list) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((frame, assigned))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is not None:
                continue  # drain without work after a failure
            try:
                t0 = time.perf_counter()
                self._process(*item)
                self.busy += time.perf_counter() - t0
            except BaseException as exc:  # re-raised in the caller's thread
                self._error = exc

    def _finish(self, td: TrackData) -> None:
        td.timeline.finish(td.checks)
        td.checks = {}
        self._finished.add(td.track_id)

    def _process(self, frame: Frame | None, assigned: list) -> None:
        if frame is None:  # finish_tracks
            for track_id in assigned:
                if track_id in self.tracks and track_id not in self._finished:
                    self._finish(self.tracks[track_id])
            return
        for track_id, face in assigned:
            td = self.tracks.get(track_id)
            if td is None:
                td = TrackData(track_id, {n: c(self.context) for n, c in self.check_classes.items()}, ThumbnailStore(),
                               TrackTimeline(self.options.window_s, self.options.hop_s, self.window_reducer))
                self.tracks[track_id] = td
            crop, m = align_face(frame.image, face.points, antialias=self.options.crop_antialias)
            obs = FaceObservation(track_id, frame.pts, frame.image, face, crop, m)
            # windows that end before this frame are cut from what the checks recorded so far
            td.timeline.advance(frame.seconds, face.height, td.checks)
            for check in td.checks.values():
                check.update(obs)
            td.thumbnails.offer(frame.seconds, crop, face.bbox)
            if self.options.shot_cuts:  # only joining turns across cuts reads it
                td.appearance.add(crop, frame.image, face.bbox)

    def close(self) -> dict[int, TrackData]:
        """Finish queued work, cut every track's last windows and return the tracks."""
        self._q.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        for td in self.tracks.values():
            if td.track_id not in self._finished:  # not finished at a cut already
                self._finish(td)
        return self.tracks

    def abort(self) -> None:
        """Stop the worker thread after a failure upstream, discarding queued work."""
        self._error = self._error or Cancelled("aborted")
        while True:  # make room so the end marker always gets in: no thread is left blocked
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(_END)
        self._thread.join(timeout=5)


def analyse_video(path: str, options: ScanOptions, context: CheckContext,
                  progress: ProgressCallback | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  window_reducer: WindowReducer = keep_features) -> CallAnalysis:
    """Run the streaming analysis of one recording.

    ``window_reducer`` turns each timeline window's features into what the
    track keeps of it. The default keeps the features themselves (what
    training and evaluation need), which grows with the call's length; a scan
    keeps only the fusion's verdict on each window.
    """
    options.validate()
    check_classes = selected_checks(options)
    t0 = time.perf_counter()
    with PyAVSource(path, max_side=options.max_side) as source:
        info = source.info
        duration = float(info.duration) if info.duration else None
        tracker = FaceTracker()
        # cuts are found in every scan (a 64x36 copy of each analysed frame): with the option they end tracks,
        # without it they are only recorded, and crossing one makes the report warn
        cuts = ShotCutDetector()
        crossings = CutCrossings()
        analysed = 0
        t_landmarks = 0.0
        last_progress = -1.0
        origin: float | None = None
        stage = _CheckStage(check_classes, context, options, window_reducer)
        try:
            with create_landmark_detector(landmark_options(options)) as detector:
                for frame, small in _iter_frames(source, options):
                    if should_stop is not None and should_stop():
                        raise Cancelled("analysis cancelled")
                    analysed += 1
                    ta = time.perf_counter()
                    faces = detector.detect(frame.image, seconds=frame.seconds)
                    t_landmarks += time.perf_counter() - ta
                    if cuts.update_small(frame.seconds, small):
                        if options.shot_cuts:
                            stage.finish_tracks(tracker.cut())
                        else:
                            crossings.cut(frame.seconds, tracker.live_ids(frame.seconds))
                    assigned = tracker.update(frame.seconds, faces)
                    crossings.assigned([track_id for track_id, _ in assigned])
                    if assigned:
                        stage.submit(frame, assigned)
                    if progress is not None and duration:
                        # from the first frame: recordings need not start at time 0 (an MPEG-TS file, a
                        # stream cut out of a longer one)
                        if origin is None:
                            origin = frame.seconds
                        frac = min((frame.seconds - origin) / duration, 1.0)
                        if frac - last_progress >= 0.01:
                            last_progress = frac
                            progress(frac, "analysing")
            tracks = list(stage.close().values())
        except BaseException:
            stage.abort()
            raise
        decoded = source.decoded_frames
        undecoded = source.undecoded_frames
        truncated = source.truncated
        decoded_seconds = None if source.decoded_seconds is None else float(source.decoded_seconds)
    if options.shot_cuts and cuts.cuts:
        tracks = join_participants(tracks)
    timings = {"analysis": time.perf_counter() - t0, "landmarks": t_landmarks, "checks": stage.busy}
    return CallAnalysis(info=info, options=options, tracks=sorted(tracks, key=lambda t: t.track_id),
                        analysed_frames=analysed, decoded_frames=decoded, truncated=truncated, timings=timings,
                        shot_cuts=list(cuts.cuts), cuts_crossed=list(crossings.times),
                        decoded_seconds=decoded_seconds, undecoded_frames=undecoded)
