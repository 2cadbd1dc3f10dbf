"""The one result type every output is rendered from.

JSON files, the CLI summary, the HTML report, batch rows and the web page
all read a :class:`Report`. Bump :data:`SCHEMA_VERSION` on any change that
breaks readers; add optional fields for compatible changes.
"""
from __future__ import annotations

import datetime as _dt
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, Field

SCHEMA_VERSION = "1.0"


class Verdict(str, Enum):
    likely_genuine = "likely_genuine"
    inconclusive = "inconclusive"
    likely_face_swapped = "likely_face_swapped"
    no_face = "no_face"
    insufficient_evidence = "insufficient_evidence"
    failed = "failed"

    @property
    def label(self) -> str:
        return {
            "likely_genuine": "Likely genuine",
            "inconclusive": "Inconclusive",
            "likely_face_swapped": "Likely face-swapped",
            "no_face": "No face found",
            "insufficient_evidence": "Insufficient evidence",
            "failed": "Analysis failed",
        }[self.value]


class Thresholds(BaseModel):
    """Probability bands of the verdict: [0, low) genuine, [low, high) inconclusive, [high, 1] swapped.

    ``segment``: a timeline window at or above it is a suspicious segment (>= ``high``; absent in reports
    from before session 7, whose segments used ``high``).
    """

    low: float
    high: float
    segment: Optional[float] = None


class VideoMeta(BaseModel):
    path: str
    file_name: str
    sha256: Optional[str] = None
    size_bytes: int
    container: str
    codec: str
    width: int
    height: int
    rotation: int = 0
    #: seconds, as the header declares them; where it declares none or FFmpeg guessed from the bitrate (a
    #: Matroska/WebM file written live), the span decoded, or None if decoding did not reach the end
    duration_s: Optional[float] = None
    average_fps: Optional[float] = None
    analysed_frames: int = 0
    #: frames of the video stream the scan went through, ``undecoded_frames`` included
    decoded_frames: int = 0
    #: frames the scan had no need to decode: non-reference H.264 frames between the analysed ones, which no
    #: other frame is predicted from (they count towards the frame count and the length all the same)
    undecoded_frames: int = 0
    analysis_fps: float
    #: the file ends early or is damaged: decoding stopped on errors, the frames stopped well short of the
    #: duration its header declares, or a Matroska/WebM file ends inside one of its elements; what could be
    #: decoded was analysed
    truncated: bool = False
    #: seconds of the recording that could be decoded (None in reports from before it was recorded)
    decoded_s: Optional[float] = None
    #: times (s) at which the whole picture cut to another camera (an active-speaker recording). With the
    #: ``shot_cuts`` setting (``--speaker-view``) tracks end there and each participant's turns are joined by
    #: appearance; without it they are only recorded
    shot_cuts_s: list[float] = Field(default_factory=list)
    #: the cuts a participant's track was carried across, in a scan without ``shot_cuts``: two people may have been
    #: merged into one participant (the report's caveats say so)
    cuts_crossed_s: list[float] = Field(default_factory=list)
    #: True when a first scan without ``shot_cuts`` carried a track across the cuts in ``cuts_crossed_s``, and the
    #: report is that of a second scan with ``shot_cuts`` (the ``speaker_view_auto`` setting)
    speaker_view_auto: bool = False
    #: True when a scan of the whole frame scored no participant and this report is of a second scan that also
    #: searched 2x2 windows of the frame, for faces too small for the whole-frame detector (the
    #: ``small_face_search`` setting; its ``settings`` then show ``gallery_grid`` 2)
    small_face_search: bool = False


class CheckResult(BaseModel):
    """One check's verdict-relevant summary for one track."""

    name: str
    title: str
    explanation: str
    # how unusual this track is on this check compared with genuine footage,
    # 0 (typical of genuine) .. 1 (far outside); None when not measurable, and on a track too short to score
    suspicion: Optional[float] = None
    features: dict[str, Optional[float]] = Field(default_factory=dict)


class TimelinePoint(BaseModel):
    start_s: float
    end_s: float
    probability: Optional[float]


class TrackReport(BaseModel):
    track_id: int
    first_seen_s: float
    last_seen_s: float
    observed_frames: int
    median_face_px: float
    verdict: Verdict
    probability: Optional[float] = None
    checks: list[CheckResult] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)
    note: Optional[str] = None


class Segment(BaseModel):
    """A stretch of the call the fused model finds suspicious."""

    track_id: int
    start_s: float
    end_s: float
    probability: float
    top_check: Optional[str] = None
    explanation: str


class Evidence(BaseModel):
    """One moment that shows why: a face crop and what was seen there."""

    track_id: int
    time_s: float
    probability: Optional[float] = None
    check: Optional[str] = None
    explanation: str
    bbox: tuple[float, float, float, float]
    thumbnail_jpeg_b64: Optional[str] = None


class Report(BaseModel):
    schema_version: str = SCHEMA_VERSION
    detector_version: str
    created_at: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    verdict: Verdict
    probability: Optional[float] = None  # calibrated P(face swap) for the call
    thresholds: Thresholds
    summary: str
    video: VideoMeta
    tracks: list[TrackReport] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    # when this call's verdict is less reliable than the dev-set figures say (several participants, small faces)
    caveats: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    error: Optional[str] = None

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Report":
        return cls.model_validate_json(text)
