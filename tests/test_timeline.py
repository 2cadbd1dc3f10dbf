"""The streaming timeline cuts the same windows as the batch rule and keeps only about one window of samples."""
import numpy as np
import pytest

from detector.checks.base import CheckContext, CheckSignal, FaceObservation, TrackCheck
from detector.timeline import FeatureMean, TrackTimeline, window_spans


class _Recording(TrackCheck):
    """Emits whatever the test feeds it, with one extra column; summarises to sums a test can recompute."""

    name = "recording"
    title = "Recording"
    explanation = "test check"

    def __init__(self, context):
        super().__init__(context)
        self.finalize_calls = 0

    def update(self, obs: FaceObservation) -> None:  # pragma: no cover - the test calls feed()
        pass

    def feed(self, seconds: float, value: float) -> None:
        self.emit(seconds, value, double=2.0 * value)

    def finalize(self) -> CheckSignal:
        self.finalize_calls += 1
        return super().finalize()

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        return {"recording.sum": float(v.sum()) if v.size else np.nan,
                "recording.n": float(len(signal.times)),
                "recording.extra_sum": float(signal.extra["double"].sum()) if len(signal.times) else np.nan}


def _stream(times, values, heights, window=4.0, hop=2.0):
    check = _Recording(CheckContext())
    tl = TrackTimeline(window, hop)
    held = 0
    for t, v, h in zip(times, values, heights):
        tl.advance(t, h, {"recording": check})  # before the check sees the frame, as the analysis does
        check.feed(t, v)
        held = max(held, len(tl._times), *(len(s.times) for s in tl._signals.values()))
    tl.finish({"recording": check})
    return tl, check, held


def _irregular_times(n, seed):
    # variable frame rate, with a 9 s loss of the face in the middle
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.08, 0.1, 0.1, 0.12, 0.3], size=n))
    t[n // 2:] += 9.0
    return 3.0 + t


@pytest.mark.parametrize("seed,window,hop", [(0, 4.0, 2.0), (1, 4.0, 4.0), (2, 3.0, 0.5)])
def test_streamed_windows_match_the_batch_rule_on_the_whole_signal(seed, window, hop):
    times = _irregular_times(300, seed)
    values = np.random.default_rng(seed).normal(size=len(times))
    values[::17] = np.nan
    heights = np.linspace(80, 120, len(times))
    tl, _, _ = _stream(times, values, heights, window, hop)

    whole = CheckSignal("recording", times, values, {"double": 2.0 * values})
    expected = []
    for a, b in window_spans(times[0], times[-1], window, hop):
        part = whole.window(a, b)
        if len(part.times):  # the timeline skips windows in which the face was never seen
            feats = _Recording.summarize(part)
            sel = (times >= a) & (times < b)
            feats["track.log_face_px"] = float(np.log(np.median(heights[sel])))
            expected.append((a, b, feats))
    assert len(expected) < len(window_spans(times[0], times[-1], window, hop))  # the loss left empty windows
    assert [(w.start, w.end) for w in tl.windows] == [(a, b) for a, b, _ in expected]
    for w, (_, _, feats) in zip(tl.windows, expected):
        assert w.value.keys() == feats.keys()
        np.testing.assert_allclose([w.value[k] for k in feats], list(feats.values()), rtol=1e-12, equal_nan=True)


def test_a_track_just_under_one_window_long_is_cut_the_same_way_streamed_and_batched():
    # 4.1 - 0.1 < 4.0 in floating point although 0.1 + 4.0 == 4.1: both rules must make the same comparison
    times = np.round(np.arange(1, 42) * 0.1, 10)
    tl, _, _ = _stream(times, np.ones(len(times)), np.full(len(times), 70.0))
    assert [(w.start, w.end) for w in tl.windows] == window_spans(times[0], times[-1], 4.0, 2.0)
    assert tl.features()["recording.n"] == sum(w.value["recording.n"] for w in tl.windows) / len(tl.windows)


def test_track_features_are_the_mean_of_every_windows_features():
    times = np.arange(0, 20, 0.1)
    values = times ** 2  # every window sums to something else
    values[50:70] = np.nan  # and one feature is missing in some windows' samples only
    tl, _, _ = _stream(times, values, np.full(len(times), 100.0))
    sums = np.array([w.value["recording.sum"] for w in tl.windows])
    assert len(set(sums.round(6))) == len(sums) > 5
    assert tl.features()["recording.sum"] == pytest.approx(float(np.nanmean(sums)), rel=1e-12)
    # the extra column's sum is NaN in the windows that hold a NaN sample: those windows are left out of its mean
    extra = np.array([w.value["recording.extra_sum"] for w in tl.windows])
    assert 0 < np.isnan(extra).sum() < len(extra)
    assert tl.features()["recording.extra_sum"] == pytest.approx(float(np.nanmean(extra)), rel=1e-12)


def test_a_track_holds_about_one_window_of_samples_however_long_it_runs():
    times = np.arange(0, 600, 0.1)  # 10 minutes at 10 analysed frames/s
    tl, check, held = _stream(times, np.sin(times), np.full(len(times), 100.0))
    # 4 s windows every 2 s: at most one window plus one hop of samples (+ rounding) is ever kept
    assert held <= 61, held
    assert len(tl.windows) == len(window_spans(0.0, times[-1], 4.0, 2.0)) == 299
    assert check.finalize_calls == 299  # once per hop, then once at the end
    assert tl.frames == len(times) and tl.first_seen == 0.0 and tl.last_seen == times[-1]


def test_a_short_track_is_one_short_window_and_its_features_are_that_windows():
    times = np.arange(0, 1.5, 0.1)
    tl, _, _ = _stream(times, np.ones(len(times)), np.full(len(times), 50.0))
    assert [(w.start, w.end) for w in tl.windows] == [(0.0, times[-1] + 1e-6)]
    assert tl.features() == tl.windows[0].value
    assert tl.features()["recording.n"] == len(times)


def test_the_reducer_decides_what_each_window_keeps():
    seen = []
    tl = TrackTimeline(4.0, 2.0, reducer=lambda f: seen.append(f) or round(f["recording.sum"], 6))
    check = _Recording(CheckContext())
    for t in np.arange(0, 10, 0.1):
        tl.advance(t, 90.0, {"recording": check})
        check.feed(t, 1.0)
    tl.finish({"recording": check})
    assert [w.value for w in tl.windows] == [40.0, 40.0, 40.0, 40.0]  # 40 frames of 1.0 per 4 s window
    # the track's features still come from the full features, not from what the reducer kept
    assert tl.features()["recording.sum"] == 40.0 and len(seen) == 4


def test_feature_mean_averages_each_feature_over_its_finite_values():
    m = FeatureMean()
    assert m.result() == {}
    m.add({"a": 1.0, "b": np.nan, "c": np.nan})
    m.add({"a": 3.0, "b": 2.0, "c": np.inf})
    out = m.result()
    assert out["a"] == 2.0 and out["b"] == 2.0 and np.isnan(out["c"])


def test_median_face_size_to_the_nearest_pixel():
    tl = TrackTimeline(4.0, 2.0)
    check = _Recording(CheckContext())
    for i, h in enumerate([100.2, 80.0, 130.6, 99.6]):
        tl.advance(i * 0.1, h, {"recording": check})
    assert tl.median_face_px() == 100.0  # (100 + 100) / 2: the two middle heights round to 100
    tl.advance(0.5, 200.0, {"recording": check})
    assert tl.median_face_px() == 100.0
    assert np.isnan(TrackTimeline(4.0, 2.0).median_face_px())
