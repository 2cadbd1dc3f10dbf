"""Hard cuts between shots, so that a face after a cut is not taken for the face before it.

Most meeting recorders film the *active speaker*: the whole picture switches
from one participant's camera to another's as they take turns. The face
before and after such a switch sits in about the same place, so the tracker,
which associates faces by position, would join two people into one track:
the report would count one participant, mix two faces' evidence into one
probability (diluting a swapped face with a genuine one) and read every
switch as an appearance jump. A switch changes the whole picture at once,
which a head turning or a hand in front of the face does not, so it is
found the way PySceneDetect's content detector finds cuts: the mean change of
hue, saturation and brightness between consecutive analysed frames, on a
small copy of the frame, above a threshold. A recorder that *dissolves* from
one camera to the other spreads that change over several analysed frames; a
gradual switch is found when a frame differs from one shortly before it by
the same threshold and every frame between them is a blend of the two (see
:meth:`ShotCutDetector.update_small`).

A false cut (a camera pan, the lights going off) only splits a track; the
appearance linking after the analysis (:mod:`detector.faces.linking`) joins
the parts of one person again. A missed cut joins two people, as before.

Ending tracks at cuts is an option (``ScanOptions.shot_cuts``, the CLI's
``--speaker-view``), since joining can count one person twice. A scan without
it still finds the cuts, and :class:`CutCrossings` records those that a track
was carried across, so that the report can warn that two people may have
been merged into one participant.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

#: the frame is compared at this size: enough to see the picture change, too small for noise or a moving face
_COMPARE_SIZE = (64, 36)
#: cosine above which a dissolve found soon after another changes the picture onward, the same way (is its rest):
#: a switch back changes it the opposite way (cosine near -1). The rest of composed 1 s dissolves measured 0.66 to
#: 0.98 (their incoming picture moves), switches back -0.89 and -0.96 (experiments/README.md, session 17)
_SAME_DIRECTION = 0.0


@dataclass
class ShotCutOptions:
    #: mean absolute change of H, S and V (0-255 scale, averaged over the three) that makes a cut. PySceneDetect's
    #: default is 27 at the recording's frame rate; see ``experiments/README.md`` (session 14) for the changes
    #: measured between analysed frames of the dev clips (no cut) and at composed speaker switches
    threshold: float = 40.0
    #: a second cut sooner than this after the last one is ignored (a flash, a fade between two layouts)
    min_shot_s: float = 0.5
    #: a gradual switch (a cross-fade between cameras) is looked for over at most this span; 0 turns it off
    fade_max_s: float = 1.0
    #: how far a frame inside a cross-fade may be from the blend of its two ends: the RMS of the residual, as a
    #: fraction of the RMS of the change between the ends (see experiments/README.md, session 17)
    fade_residual: float = 0.25
    #: no step between consecutive frames of a cross-fade may carry more than this share of its change: a dissolve
    #: spreads it, while a hard cut just under ``threshold`` after a still shot makes it in one step (added after
    #: the first measurement, see experiments/README.md, session 17)
    fade_max_step: float = 0.6

    def validate(self) -> None:
        if not self.threshold > 0:
            raise ValueError("shot cut threshold must be positive")
        if self.min_shot_s < 0:
            raise ValueError("min_shot_s must be >= 0")
        if self.fade_max_s < 0:
            raise ValueError("fade_max_s must be >= 0")
        if not 0 < self.fade_residual < 1:
            raise ValueError("fade_residual must be between 0 and 1")
        if not 0 < self.fade_max_step <= 1:
            raise ValueError("fade_max_step must be in (0, 1]")


@dataclass(frozen=True)
class SmallFrame:
    """The small copies of one analysed frame the cut detector compares: HSV for the change, RGB for blends."""

    rgb: np.ndarray  # float32, _COMPARE_SIZE
    hsv: np.ndarray  # uint8, the same pixels in OpenCV's HSV


def content_change(previous_hsv: np.ndarray, current_hsv: np.ndarray) -> float:
    """Mean absolute change of the three HSV channels between two small frames (0-255 scale)."""
    diff = cv2.absdiff(previous_hsv, current_hsv)
    # hue is circular (OpenCV's 8-bit hue runs 0-179): a change of 170 is a change of 10 (uint8 is enough: the
    # difference is at most 179); every scan runs this per analysed frame, hence cv2.mean rather than numpy
    hue = diff[..., 0]
    diff[..., 0] = np.minimum(hue, 180 - hue)
    h, s, v, _ = cv2.mean(diff)
    return (h * (255.0 / 90.0) + s + v) / 3.0


class ShotCutDetector:
    """Feed every analysed frame in order; :meth:`update` says whether a cut came just before it."""

    def __init__(self, options: ShotCutOptions | None = None):
        self.options = options or ShotCutOptions()
        self.options.validate()
        self._previous: SmallFrame | None = None
        self._recent: deque[tuple[float, SmallFrame]] = deque()  # frames of the last fade_max_s, oldest first
        self._last_cut: float | None = None
        # the last dissolve found: when, and the direction of its change (unit vector of the small RGB copies)
        self._dissolve: tuple[float, np.ndarray] | None = None
        self.cuts: list[float] = []
        #: the cuts found as gradual switches (also in :attr:`cuts`)
        self.gradual: list[float] = []

    @staticmethod
    def small(image_rgb: np.ndarray) -> SmallFrame:
        """The small copies frames are compared on.

        Every scan makes one per analysed frame, so it must be cheap: one pixel in four each way is picked
        (nearest neighbour) before the area average, so each cell of the copy averages 25 or more samples of
        its part of the frame instead of all of them. For a 720p frame that takes about 0.23 ms instead of
        1.3 ms (the full area average cost a scan about 7% of its speed on this 2-core machine).
        """
        h, w = image_rgb.shape[:2]
        cw, ch = _COMPARE_SIZE
        if w >= 4 * cw and h >= 4 * ch:
            image_rgb = cv2.resize(image_rgb, (w // 4, h // 4), interpolation=cv2.INTER_NEAREST)
        small = cv2.resize(image_rgb, _COMPARE_SIZE, interpolation=cv2.INTER_AREA)
        return SmallFrame(small.astype(np.float32), cv2.cvtColor(small, cv2.COLOR_RGB2HSV))

    def change(self, small: SmallFrame) -> float | None:
        """The content change from the previous frame to this one, and remember this one (None for the first)."""
        prev, self._previous = self._previous, small
        return None if prev is None else content_change(prev.hsv, small.hsv)

    def update(self, seconds: float, image_rgb: np.ndarray) -> bool:
        """Whether the picture cut to another shot between the previous analysed frame and this one."""
        return self.update_small(seconds, self.small(image_rgb))

    def update_small(self, seconds: float, small: SmallFrame) -> bool:
        """:meth:`update` for a frame whose :meth:`small` copies were already made.

        A hard cut: the change from the previous frame reaches the threshold. A gradual one: the change from an
        earlier frame at most ``fade_max_s`` before this one reaches it, and every frame between the two is a blend
        of them, unless that is the rest of the dissolve found last (the same change, started within
        ``fade_max_s`` of it).
        """
        change = self.change(small)
        hard = change is not None and change >= self.options.threshold
        while self._recent and seconds - self._recent[0][0] > self.options.fade_max_s:
            self._recent.popleft()
        found = None if hard else self._blended_from_recent(small)
        gradual = found is not None and not self._continues_last_dissolve(*found)
        if found is not None:
            self._dissolve = (seconds, found[1])
        if hard or found is not None:
            # a frame before a cut cannot start a later dissolve: without this, a fade's first frames would be
            # found again as the start of "another" fade to each steady frame after it
            self._recent.clear()
        self._recent.append((seconds, small))
        if not (hard or gradual):
            return False
        if self._last_cut is not None and seconds - self._last_cut < self.options.min_shot_s:
            return False
        self._last_cut = seconds
        self.cuts.append(seconds)
        if gradual:
            self.gradual.append(seconds)
        return True

    def _blended_from_recent(self, end: SmallFrame) -> tuple[float, np.ndarray] | None:
        """A recent frame that differs from ``end`` by the threshold with every frame between a blend of the two:
        its time and the unit direction of the change; None if there is none."""
        recent = list(self._recent)
        # the nearest start first: in a long fade the switch is placed as soon as enough of it has happened
        for i in range(len(recent) - 2, -1, -1):
            start = recent[i][1]
            if content_change(start.hsv, end.hsv) < self.options.threshold:
                continue
            if is_cross_fade(start.rgb, [m.rgb for _, m in recent[i + 1:]], end.rgb, self.options.fade_residual,
                             self.options.fade_max_step):
                d = (end.rgb - start.rgb).ravel()
                return recent[i][0], d / max(float(np.linalg.norm(d)), 1e-6)
        return None

    def _continues_last_dissolve(self, start_s: float, direction: np.ndarray) -> bool:
        """Whether a dissolve found from ``start_s`` is the rest of the last one: a long dissolve is found part-way
        through, and what is left of it is a blend too, changing the picture the same way. A switch back, or on
        to a third picture, changes it another way."""
        if self._dissolve is None:
            return False
        last_s, last_direction = self._dissolve
        return start_s - last_s <= self.options.fade_max_s and float(direction @ last_direction) > _SAME_DIRECTION


def is_cross_fade(start: np.ndarray, between: list[np.ndarray], end: np.ndarray, max_residual: float,
                  max_step: float = 1.0) -> bool:
    """Whether ``between`` is a dissolve from ``start`` to ``end``: each frame is ``start + a (end - start)`` up to
    ``max_residual`` (RMS, as a fraction of the change's), ``a`` rises from frame to frame, and no step from one
    frame to the next (``start`` and ``end`` included) carries more than ``max_step`` of the change. ``a`` may fall
    back by 0.05 at most (noise). A moving head displaces rather than blends; a hard cut makes its change in one
    step."""
    if not between:
        return False
    d = (end - start).ravel()
    dd = float(d @ d)
    if dd <= 0.0:
        return False
    previous = 0.0
    for m in between:
        r = (m - start).ravel()
        a = float(r @ d) / dd
        if not -0.1 <= a <= 1.1 or a < previous - 0.05 or a - previous > max_step:
            return False
        residual = r - a * d
        if float(residual @ residual) > max_residual ** 2 * dd:
            return False
        previous = a
    return 1.0 - previous <= max_step


class CutCrossings:
    """The cuts that a track was carried across, in a scan that does not end tracks at cuts.

    After a cut the tracker may give the face on screen the id of a track from
    before it (it matches by place). That is harmless when one camera's
    picture merely jumped, and merges two people when the recording switched
    from one participant's camera to another's; this cannot tell the two
    apart, so the report only warns. Call :meth:`cut` with the ids of the
    tracks live when a cut is found, then :meth:`assigned` with the ids
    assigned in each following frame; the first frame with any face settles it.
    """

    def __init__(self) -> None:
        self._pending: tuple[float, frozenset[int]] | None = None
        self.times: list[float] = []

    def cut(self, seconds: float, live_track_ids: list[int]) -> None:
        # with no track live, nothing can be carried across (a cut before the first face, say)
        self._pending = (seconds, frozenset(live_track_ids)) if live_track_ids else None

    def assigned(self, track_ids: list[int]) -> None:
        if self._pending is None or not track_ids:
            return
        seconds, live = self._pending
        self._pending = None
        if live.intersection(track_ids):
            self.times.append(seconds)
