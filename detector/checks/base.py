"""The temporal-check interface.

A check is instantiated once per face track. ``update`` is called for every
analysed frame in which the track's face was seen, in time order;
``finalize`` hands over what the check recorded since its last call, as a
signal over time. The analysis calls it whenever a timeline window is
complete (:mod:`detector.timeline`), so a check holds at most a few seconds
of values however long the call. Signals are summarised into features by
:meth:`TrackCheck.summarize`, applied to each sliding window of the
timeline; a whole track's features are the mean of its windows', so the
verdict and the timeline always agree on what a feature means.
"""
from __future__ import annotations

import abc
from array import array
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, ClassVar

import numpy as np

from detector.errors import ModelError
from detector.faces.landmarks import FaceLandmarks


@dataclass
class FaceObservation:
    """One track's face in one analysed frame."""

    track_id: int
    pts: Fraction
    image: np.ndarray = field(repr=False)  # the whole RGB frame (shared, do not modify)
    face: FaceLandmarks = field(repr=False)
    # aligned 112x112 crop and its 2x3 matrix, computed once by the pipeline
    crop: np.ndarray | None = field(default=None, repr=False)
    crop_matrix: np.ndarray | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return float(self.pts)


@dataclass
class CheckSignal:
    """A check's output for one track: values over time."""

    name: str
    times: np.ndarray  # seconds, float64, increasing
    values: np.ndarray  # float64, same length; NaN where the check could not measure
    # further per-sample columns a check needs to summarise itself (same length)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def window(self, start: float, end: float) -> "CheckSignal":
        # times increase, so a window is a slice: views, no copies, O(log n) per window
        i, j = np.searchsorted(self.times, [start, end], side="left")
        return CheckSignal(self.name, self.times[i:j], self.values[i:j], {k: v[i:j] for k, v in self.extra.items()})


def float_column() -> array:
    """A growable column of float64 values for per-frame measurements.

    8 bytes a value; a list of Python floats costs 32 (pointer plus float
    object), which over a 2-hour call's 72,000 analysed frames and a score of
    columns per participant is tens of megabytes.
    """
    return array("d")


def column_array(column: array) -> np.ndarray:
    """The values of a :func:`float_column` as a float64 array over the same memory (no copy).

    The column must not grow afterwards (Python refuses to resize a buffer
    numpy still views), so checks hand a column over in ``finalize`` and
    start a fresh one: handing over costs no copy.
    """
    out = np.frombuffer(column, dtype=np.float64) if len(column) else np.zeros(0, dtype=np.float64)
    out.flags.writeable = False  # windows are views of it: a summary that wrote in place would corrupt the track
    return out


class TrackCheck(abc.ABC):
    """One temporal-consistency check, one instance per track."""

    #: registry key and feature prefix
    name: ClassVar[str]
    #: human title for reports
    title: ClassVar[str]
    #: one line a person understands, said when this check drives suspicion
    explanation: ClassVar[str]
    #: +1 when larger signal values are more suspicious, -1 when smaller are
    direction: ClassVar[int] = 1
    #: metadata file (under models/) of a learned model this check runs, whose
    #: ``training_groups`` evaluation must leave out when the check is used
    model_metadata: ClassVar[str | None] = None
    #: key in ``CheckContext.models`` of the model this check runs (loaded once
    #: per worker by :meth:`open_model`), or None for checks without a model
    shared_model: ClassVar[str | None] = None

    #: longest gap between analysed frames that still counts as consecutive
    #: (after a longer loss, a frame-to-frame difference means nothing)
    max_pair_gap: ClassVar[float] = 0.5

    def __init__(self, context: "CheckContext"):
        self.context = context
        self._times = float_column()
        self._values = float_column()
        # further per-sample columns given to emit(), by name; fixed by the first sample
        self._extra: dict[str, array] | None = None
        self._prev_item = None
        self._prev_t = -np.inf

    def previous(self, obs: FaceObservation, item):
        """Remember ``item`` for this frame; return the last frame's if it was the one just before, else None."""
        prev, gap = self._prev_item, obs.seconds - self._prev_t
        self._prev_item, self._prev_t = item, obs.seconds
        return prev if gap <= self.max_pair_gap else None

    @abc.abstractmethod
    def update(self, obs: FaceObservation) -> None:
        """Consume one observation (record with :meth:`emit`)."""

    def emit(self, seconds: float, value: float | None, **extra: float) -> None:
        """Record one sample; ``extra`` are further per-sample columns (the same names every time).

        They reach :meth:`summarize` as ``signal.extra[name]``, aligned with the values.
        """
        if self._extra is None:
            self._extra = {k: float_column() for k in extra}
        elif extra.keys() != self._extra.keys():
            raise ValueError(f"check {self.name!r} emitted columns {sorted(extra)} after {sorted(self._extra)}")
        self._times.append(seconds)
        self._values.append(np.nan if value is None else float(value))
        for k, v in extra.items():
            self._extra[k].append(v)

    def finalize(self) -> CheckSignal:
        """Hand over what was recorded since the last call; override to flush batched work first.

        Called every time a timeline window completes and once at the end. The
        check's columns move into the signal without a copy and the check
        starts empty again, so the next call returns only what came after.
        State that spans frames (the previous frame, a running reference)
        stays in the check.
        """
        times, values = column_array(self._times), column_array(self._values)
        self._times, self._values = float_column(), float_column()
        extra = {}
        if self._extra is not None:
            extra = {k: column_array(c) for k, c in self._extra.items()}
            self._extra = {k: float_column() for k in self._extra}
        return CheckSignal(self.name, times, values, extra)

    @classmethod
    def open_model(cls, intra_op_threads: int = 1) -> Any:
        """Load the model named by :attr:`shared_model` (override when it is set)."""
        raise NotImplementedError(f"check {cls.name!r} runs no model")

    @classmethod
    def reported(cls, features: dict[str, float]) -> dict[str, float]:
        """The subset of this check's features a report shows (all, unless they are raw model inputs)."""
        return features

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        """Features of a stretch of signal (one timeline window). NaN when unmeasurable.

        Default: robust level (median) and spread (MAD) of the values.
        """
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 3:
            return {f"{cls.name}.median": np.nan, f"{cls.name}.spread": np.nan}
        med = float(np.median(v))
        return {f"{cls.name}.median": med, f"{cls.name}.spread": float(np.median(np.abs(v - med)))}


class SampledCropCheck(TrackCheck):
    """A learned check: runs the worker's shared model on the track's aligned crops.

    Crops are sampled at most every ``min_interval`` seconds (neighbouring
    frames carry nearly the same evidence) and buffered, so the model runs in
    batches of ``flush_every``; subclasses turn one batch into emitted values.
    """

    min_interval: float = 0.5
    flush_every: int = 16

    def __init__(self, context: "CheckContext", min_interval: float | None = None):
        super().__init__(context)
        if min_interval is not None:
            self.min_interval = float(min_interval)
        try:
            self.model = context.models[self.shared_model]
        except KeyError:
            raise ModelError(f"{type(self).__name__} needs its shared model in "
                             f"context.models[{self.shared_model!r}]") from None
        self._last: float | None = None
        self._buf_crops: list[np.ndarray] = []
        self._buf_times: list[float] = []

    def update(self, obs: FaceObservation) -> None:
        if obs.crop is None:
            return
        t = obs.seconds
        # small tolerance: a 4 fps stream has timestamps like 0.49999 for 0.5 s
        if self._last is not None and t - self._last < self.min_interval - 1e-3:
            return
        self._last = t
        self._buf_crops.append(np.asarray(obs.crop, dtype=np.uint8))
        self._buf_times.append(t)
        if len(self._buf_crops) >= self.flush_every:
            self._flush()

    @abc.abstractmethod
    def score_batch(self, times: list[float], crops: np.ndarray) -> None:
        """Run the model on a batch of sampled crops (N,112,112,3) and :meth:`emit` one value per crop."""

    def _flush(self) -> None:
        if not self._buf_crops:
            return
        self.score_batch(list(self._buf_times), np.stack(self._buf_crops))
        self._buf_crops.clear()
        self._buf_times.clear()

    def finalize(self) -> CheckSignal:
        self._flush()
        return super().finalize()


@dataclass
class CheckContext:
    """Shared, per-worker resources handed to every check instance.

    Learned models live here so that one ONNX session serves all tracks of
    all recordings a worker analyses.
    """

    models: dict[str, Any] = field(default_factory=dict)


#: signature of a registry entry: builds the check for one new track
CheckFactory = Callable[[CheckContext], TrackCheck]
