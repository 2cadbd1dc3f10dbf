"""The check interface's own machinery: signal windows and per-frame storage."""
import tracemalloc

import numpy as np
import pytest

from detector.checks.base import CheckContext, CheckSignal, FaceObservation, TrackCheck


class _Counting(TrackCheck):
    name = "counting"
    title = "Counting"
    explanation = "test check"

    def update(self, obs: FaceObservation) -> None:  # pragma: no cover - fed through emit directly
        pass


def test_a_window_is_the_half_open_interval_of_an_increasing_signal():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.choice([0.1, 0.1, 0.2, 0.5], size=400))
    sig = CheckSignal("x", times, rng.normal(size=400), {"extra": rng.normal(size=400)})
    for start, end in [(times[10], times[50]), (0.0, 1e9), (times[-1] + 1, times[-1] + 5), (3.05, 7.3), (5.0, 5.0)]:
        sel = (times >= start) & (times < end)
        w = sig.window(start, end)
        np.testing.assert_array_equal(w.times, times[sel])
        np.testing.assert_array_equal(w.values, sig.values[sel])
        np.testing.assert_array_equal(w.extra["extra"], sig.extra["extra"][sel])


def test_per_frame_values_cost_about_eight_bytes_each():
    # a 2-hour call at 10 analysed frames/s is 72,000 values per column per participant;
    # Python float lists would hold ~32 bytes a value (16 bytes x 2 columns x 100k = 6.4 MB here)
    check = _Counting(CheckContext())
    tracemalloc.start()
    for i in range(100_000):
        check.emit(i * 0.1, i * 0.5 if i % 7 else None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2.5e6, peak
    sig = check.finalize()
    assert sig.times.dtype == np.float64 and len(sig.times) == 100_000
    assert np.isnan(sig.values[0]) and sig.values[1] == 0.5
    # the columns were handed over, not copied: the check starts afresh and the signal keeps its values
    check.emit(1e4, 1.0)
    assert check.finalize().times.tolist() == [1e4]
    assert len(sig.times) == 100_000 and sig.times[-1] == 99_999 * 0.1


def test_extra_columns_given_to_emit_are_handed_over_aligned_and_cannot_change_name():
    check = _Counting(CheckContext())
    for i in range(5):
        check.emit(0.1 * i, None if i == 2 else float(i), yaw=10.0 * i)
    sig = check.finalize()
    np.testing.assert_array_equal(sig.extra["yaw"], 10.0 * np.arange(5))
    assert len(sig.extra["yaw"]) == len(sig.values) and np.isnan(sig.values[2])
    check.emit(0.5, 1.0, yaw=50.0)  # the next hand-over starts empty, with the same column
    np.testing.assert_array_equal(check.finalize().extra["yaw"], [50.0])
    with pytest.raises(ValueError):
        check.emit(0.6, 1.0, pitch=1.0)
