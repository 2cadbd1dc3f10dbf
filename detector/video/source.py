"""The abstract video input every stage reads from.

Time is carried as exact presentation timestamps (``fractions.Fraction``
seconds), never as a frame index divided by a rounded frame rate: interview
recordings from Zoom, Meet, Teams or browser capture are usually variable
frame rate, and a frame index drifts from wall-clock time within minutes.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What probing a recording tells before decoding it."""

    path: str
    container: str
    codec: str
    width: int  # display width, after rotation
    height: int  # display height, after rotation
    rotation: int  # degrees clockwise applied to decoded frames to display them
    duration: Fraction | None  # seconds, None when the container does not say
    average_rate: Fraction | None  # frames per second, informational only
    frame_count: int | None  # as declared by the container, may be absent/wrong
    size_bytes: int
    #: ``duration`` is FFmpeg's guess from the bitrate (a Matroska/WebM file written live declares none), so it
    #: may be seconds off: the decoded span (:attr:`PyAVSource.decoded_seconds`) is then the length to report.
    #: A header's own duration, even from a format whose durations are not trusted to find cuts, is not a guess
    duration_estimated: bool = False


@dataclass
class Frame:
    """One decoded frame, already rotated for display, in RGB."""

    index: int  # position among *all* the stream's frames as the decoder gives them out (shown order), those
    # a scan had no need to decode counted
    pts: Fraction  # presentation time in seconds, from the stream's time base, counted as a player counts it
    # (an MPEG-TS stream's clock less its start; see PyAVSource.origin)
    image: np.ndarray = field(repr=False)  # HxWx3 uint8 RGB

    @property
    def seconds(self) -> float:
        return float(self.pts)


class VideoSource(abc.ABC):
    """Abstract, streaming video input.

    Subclasses yield frames one by one so a two-hour call is never held in
    memory. Use as a context manager so file handles are released.
    """

    @property
    @abc.abstractmethod
    def info(self) -> VideoInfo:
        """Probe result for this source."""

    @abc.abstractmethod
    def frames(self, rate: Fraction | float | None = None) -> Iterator[Frame]:
        """Yield frames in presentation order.

        ``rate`` (frames per second) samples the stream on a regular clock of
        true timestamps: the first frame at or after each tick is returned, so a
        variable-frame-rate recording is sampled evenly in time. ``None`` yields
        every frame.
        """

    def close(self) -> None:  # pragma: no cover - trivial default
        """Release resources. Safe to call twice."""

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RateSampler:
    """Decides which timestamps to keep when sampling at a fixed rate.

    Works on exact timestamps: a frame is kept when it is the first at or
    after the next tick, and the next tick is then advanced past it. Dropped
    or duplicated frames in VFR streams therefore never shift later ticks.
    """

    def __init__(self, rate: Fraction | float | None):
        if rate is not None and rate <= 0:
            from detector.errors import ConfigError

            raise ConfigError(f"analysis rate must be positive, got {rate}")
        self.period = None if rate is None else 1 / Fraction(rate).limit_denominator(1000)
        self._next: Fraction | None = None

    def keep(self, pts: Fraction) -> bool:
        if self.period is None:
            return True
        if self._next is None:
            self._next = pts
        if pts + Fraction(1, 100000) < self._next:
            return False
        # advance to the first tick strictly after this frame
        steps = (pts - self._next) // self.period + 1
        self._next += steps * self.period
        return True
