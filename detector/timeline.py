"""A track's timeline, cut while the call streams: sliding windows, their features, the track's features.

Windows are ``window_s`` long and start every ``hop_s`` seconds from the
track's first face (:func:`window_spans`). Each window's features are every
check's :meth:`~detector.checks.base.TrackCheck.summarize` of that stretch
of its signal, and a track's features are the mean of its windows' features:
the fusion is fitted on windows, so it reads a whole track in the same units
(measured under grouped CV on the dev set: AUC 0.723 against 0.730 for
summarising the whole signal at once, the same within noise).

Why cut while streaming: keeping a track's signals until the call ends costs
memory in proportion to its length (one float per analysed frame per
measured column, plus the face network's vectors: ~26 MB per participant for
a 2-hour call). :class:`TrackTimeline` asks the checks for what they recorded
(``finalize``) whenever a window is complete, cuts every complete window and
drops every sample older than the next window's start, so a track holds at
most about one window of samples, whatever the call's length. Windows in
which the track's face was not seen at all (it left the picture for a
while) are skipped: there is nothing to judge there. Each window's
features go through a *reducer* (the scan's fusion turns them into a
probability and per-check suspicion) and only its result is kept.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from detector.checks import CheckSignal, TrackCheck

#: turns one window's features into what the timeline keeps of it
WindowReducer = Callable[[dict[str, float]], Any]

#: per-track feature of the face size, computed by the timeline itself
FACE_SIZE_FEATURE = "track.log_face_px"


def keep_features(features: dict[str, float]) -> dict[str, float]:
    """The default reducer: keep the window's features (training and evaluation need them)."""
    return features


@dataclass
class TimelineWindow:
    start: float
    end: float
    #: what the reducer made of the window's features (by default the features themselves)
    value: Any


def window_spans(first: float, last: float, window: float, hop: float) -> list[tuple[float, float]]:
    """The sliding windows over a track seen from ``first`` to ``last`` (one short window for a short track).

    The streaming :class:`TrackTimeline` cuts exactly these spans (its ``finish``
    cuts the last ones from this list); tests compare the two.
    """
    # ``first + window > last`` is the very comparison TrackTimeline.advance makes (``last - first < window``
    # can disagree with it in floating point, e.g. 4.1 - 0.1 < 4.0)
    if first + window > last:
        return [(first, last + 1e-6)]
    out, t = [], first
    while t + window <= last + hop * 0.5:
        out.append((t, min(t + window, last + 1e-6)))
        t += hop
    return out


class FeatureMean:
    """Running mean of feature dicts, per feature over its finite values (NaN where a feature never was)."""

    def __init__(self) -> None:
        self._names: list[str] | None = None
        self._sum: np.ndarray | None = None
        self._count: np.ndarray | None = None

    def add(self, features: dict[str, float]) -> None:
        if self._names is None:
            self._names = list(features)
            self._sum = np.zeros(len(self._names))
            self._count = np.zeros(len(self._names))
        v = np.array([features.get(n, np.nan) for n in self._names], dtype=np.float64)
        ok = np.isfinite(v)
        self._sum[ok] += v[ok]
        self._count[ok] += 1

    def merge(self, other: "FeatureMean") -> None:
        """Add another mean's windows to this one (the features of both, NaN-aware as :meth:`add`)."""
        if other._names is None:
            return
        if self._names is None:
            self._names, self._sum, self._count = list(other._names), other._sum.copy(), other._count.copy()
            return
        index = {n: i for i, n in enumerate(self._names)}
        new = [n for n in other._names if n not in index]
        if new:
            self._names += new
            self._sum = np.concatenate([self._sum, np.zeros(len(new))])
            self._count = np.concatenate([self._count, np.zeros(len(new))])
            index.update({n: len(index) + k for k, n in enumerate(new)})
        at = np.array([index[n] for n in other._names])
        self._sum[at] += other._sum
        self._count[at] += other._count

    def result(self) -> dict[str, float]:
        if self._names is None:
            return {}
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._count > 0, self._sum / np.maximum(self._count, 1), np.nan)
        return dict(zip(self._names, mean.tolist()))


def _frozen(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False  # windows are views of it: a summary that wrote in place would corrupt the next window
    return x


def _concat(a: CheckSignal | None, b: CheckSignal) -> CheckSignal:
    if a is None or len(a.times) == 0:
        return b
    if len(b.times) == 0:
        return a
    if a.extra.keys() != b.extra.keys():
        raise ValueError(f"check {b.name!r} handed over extra columns {sorted(b.extra)} after {sorted(a.extra)}")
    return CheckSignal(b.name, _frozen(np.concatenate([a.times, b.times])),
                       _frozen(np.concatenate([a.values, b.values])),
                       {k: _frozen(np.concatenate([a.extra[k], v])) for k, v in b.extra.items()})


def _drop_before(sig: CheckSignal, start: float) -> CheckSignal:
    i = int(np.searchsorted(sig.times, start, side="left"))
    if i == 0:
        return sig
    return CheckSignal(sig.name, sig.times[i:], sig.values[i:], {k: v[i:] for k, v in sig.extra.items()})


class TrackTimeline:
    """Cuts one track's timeline windows as soon as they are complete and keeps only what they still need.

    Call :meth:`advance` with each frame's time *before* the checks see that
    frame, and :meth:`finish` once the call has ended. ``windows`` then holds
    every window's reduced value and :meth:`features` the track's features.
    """

    def __init__(self, window_s: float, hop_s: float, reducer: WindowReducer = keep_features):
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.reducer = reducer
        self.windows: list[TimelineWindow] = []
        self._mean = FeatureMean()
        self._signals: dict[str, CheckSignal] = {}
        self._summarizers: dict[str, type[TrackCheck]] = {}
        # face times and heights of the samples still needed, and the whole track's height histogram
        # (lists: appended every frame, never more than about one window long, so no array is reallocated per frame)
        self._times: list[float] = []
        self._heights: list[float] = []
        self._height_counts: Counter[int] = Counter()  # 1-pixel bins: a noise track of 2 frames costs 2 entries
        self.frames = 0
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self._next_start: float | None = None  # start of the first window not cut yet
        # set by absorb: the other participants' turns in between are no time this one was seen
        self._turns_duration: float | None = None

    @property
    def duration(self) -> float:
        """Seconds from first to last sighting; for joined turns (:meth:`absorb`), the sum of the turns' own."""
        if self._turns_duration is not None:
            return self._turns_duration
        return 0.0 if self.first_seen is None else self.last_seen - self.first_seen

    def median_face_px(self) -> float:
        """Median face height over the whole track, to the nearest pixel (NaN before any frame)."""
        if self.frames == 0:
            return float("nan")
        bins = sorted(self._height_counts)
        cum = np.cumsum([self._height_counts[b] for b in bins])
        lo = bins[int(np.searchsorted(cum, (self.frames + 1) // 2))]
        hi = bins[int(np.searchsorted(cum, self.frames // 2 + 1))]
        return (lo + hi) / 2.0

    def advance(self, seconds: float, face_height: float, checks: dict[str, TrackCheck]) -> None:
        """A frame of this track at ``seconds``: cut the windows that end at or before it, then record it."""
        if self._next_start is not None and seconds >= self._next_start + self.window_s:
            self._collect(checks)
            while seconds >= self._next_start + self.window_s:
                self._cut(self._next_start, self._next_start + self.window_s)
                self._next_start += self.hop_s
            self._trim()
        if self.first_seen is None:
            self.first_seen = self._next_start = seconds
        self.last_seen = seconds
        self.frames += 1
        self._times.append(seconds)
        self._heights.append(face_height)
        self._height_counts[max(int(round(face_height)), 0)] += 1

    def finish(self, checks: dict[str, TrackCheck]) -> None:
        """The call has ended: cut the windows left, by the same rule as :func:`window_spans`."""
        if self.first_seen is None:
            return
        self._collect(checks)
        # the spans advance has not cut yet; both step from first_seen by += hop_s, so the starts compare exactly
        for start, end in window_spans(self.first_seen, self.last_seen, self.window_s, self.hop_s):
            if start >= self._next_start:
                self._cut(start, end)
        self._signals, self._times, self._heights = {}, [], []

    def absorb(self, other: "TrackTimeline") -> None:
        """Take in another finished timeline of the same participant (another turn on screen; both finished).

        The windows stay as each was cut, so no window spans the time between the turns, and the track's
        features become the mean over both timelines' windows, as if one track had been seen in both.
        """
        if other.first_seen is None:
            return
        self._turns_duration = self.duration + other.duration
        self.windows = sorted(self.windows + other.windows, key=lambda w: (w.start, w.end))
        self._mean.merge(other._mean)
        self._height_counts.update(other._height_counts)
        self.frames += other.frames
        if self.first_seen is None:
            self.first_seen, self.last_seen = other.first_seen, other.last_seen
        else:
            self.first_seen = min(self.first_seen, other.first_seen)
            self.last_seen = max(self.last_seen, other.last_seen)

    def features(self) -> dict[str, float]:
        """The track's features: the mean of its windows' (after :meth:`finish`)."""
        return self._mean.result()

    def _collect(self, checks: dict[str, TrackCheck]) -> None:
        for name, check in checks.items():
            self._summarizers[name] = type(check)
            self._signals[name] = _concat(self._signals.get(name), check.finalize())

    def _cut(self, start: float, end: float) -> None:
        i, j = bisect_left(self._times, start), bisect_left(self._times, end)
        if j == i:
            return  # the face was away for the whole window: nothing to judge there
        feats: dict[str, float] = {}
        for name, sig in self._signals.items():
            feats.update(self._summarizers[name].summarize(sig.window(start, end)))
        feats[FACE_SIZE_FEATURE] = float(np.log(max(np.median(self._heights[i:j]), 1.0)))
        self._mean.add(feats)
        self.windows.append(TimelineWindow(start, end, self.reducer(feats)))

    def _trim(self) -> None:
        start = self._next_start
        self._signals = {n: _drop_before(s, start) for n, s in self._signals.items()}
        i = bisect_left(self._times, start)
        del self._times[:i], self._heights[:i]
