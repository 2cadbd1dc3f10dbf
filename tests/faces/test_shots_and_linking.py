"""Shot cuts, the tracker's reaction to them, and joining one participant's turns by appearance."""
import numpy as np
import pytest

from detector.analysis import ThumbnailStore
from detector.faces.linking import AppearanceSignature, LinkOptions, link_tracks, signature_distance, surroundings
from detector.faces.shots import CutCrossings, ShotCutDetector, ShotCutOptions, content_change, is_cross_fade
from detector.faces.tracking import FaceTracker
from detector.timeline import FeatureMean, TrackTimeline


def _room(seed: int, h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(40, 220, 3)
    img[h // 2:, : w // 2] = rng.integers(40, 220, 3)  # a shelf, a door: something of the room
    return img


def _noisy(img: np.ndarray, rng: np.random.Generator, shift: int = 0) -> np.ndarray:
    out = np.roll(img, shift, axis=1).astype(np.float64) + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def test_cut_found_between_two_rooms_not_within_one():
    rng = np.random.default_rng(0)
    a, b = _room(1), _room(2)
    det = ShotCutDetector()
    frames = [_noisy(a, rng, s) for s in range(10)] + [_noisy(b, rng, s) for s in range(10)]
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, f)]
    assert cuts == [10]
    assert det.cuts == [pytest.approx(1.0)]


def test_cuts_closer_than_min_shot_are_one():
    rng = np.random.default_rng(0)
    a, b = _room(1), _room(2)
    det = ShotCutDetector(ShotCutOptions(min_shot_s=0.5))
    frames = [a, b, a, a, a, a, a, a, b]  # a one-frame flash of b, then b again 0.7 s after the first cut
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, _noisy(f, rng))]
    assert cuts == [1, 8]


def _dissolve(a: np.ndarray, b: np.ndarray, steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Frames of a cross-fade from ``a`` to ``b`` (both ends excluded), with camera noise."""
    out = []
    for k in range(1, steps):
        w = k / steps
        out.append(_noisy(np.clip((1 - w) * a.astype(np.float64) + w * b, 0, 255).astype(np.uint8), rng))
    return out


def test_a_cross_fade_between_cameras_is_one_cut_inside_it():
    rng = np.random.default_rng(0)
    a, b = _room(1), _room(2)
    frames = [_noisy(a, rng) for _ in range(8)] + _dissolve(a, b, 6, rng) + [_noisy(b, rng) for _ in range(12)]
    det = ShotCutDetector()
    steps = [content_change(ShotCutDetector.small(x).hsv, ShotCutDetector.small(y).hsv)
             for x, y in zip(frames, frames[1:])]
    assert max(steps) < det.options.threshold  # no step of the fade is a hard cut
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, f)]
    assert len(cuts) == 1 and 8 <= cuts[0] <= 13  # found once, inside the dissolve, not again after it
    assert det.gradual == det.cuts
    off = ShotCutDetector(ShotCutOptions(fade_max_s=0))
    assert not any(off.update(i * 0.1, f) for i, f in enumerate(frames))


@pytest.mark.parametrize("steps", [3, 10, 15])
def test_a_dissolve_of_up_to_a_second_or_longer_is_one_cut(steps):
    # a long dissolve is found part-way through; what is left of it is a blend too, and must not be a second cut
    rng = np.random.default_rng(steps)
    a, b = _room(4), _room(5)
    frames = [_noisy(a, rng) for _ in range(8)] + _dissolve(a, b, steps, rng) + [_noisy(b, rng) for _ in range(15)]
    det = ShotCutDetector()
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, f)]
    assert len(cuts) == 1 and 8 <= cuts[0] <= 8 + steps, cuts


def test_a_long_dissolve_to_a_moving_picture_is_one_cut():
    # the incoming camera's picture moves while it fades in, so the rest of the dissolve does not change the picture
    # exactly as its first part did; it still changes it onward
    rng = np.random.default_rng(11)
    a, b = _room(6), _room(7)
    b[10:110, 40:120] = (235, 190, 160)  # a face-like block in the incoming room that moves as it fades in
    frames = [_noisy(a, rng) for _ in range(8)]
    for k in range(1, 15):  # 1.5 s
        w = k / 15
        frames.append(_noisy(np.clip((1 - w) * a.astype(np.float64) + w * np.roll(b, 8 * k, axis=1), 0, 255)
                             .astype(np.uint8), rng))
    frames += [_noisy(np.roll(b, 120, axis=1), rng) for _ in range(12)]
    det = ShotCutDetector()
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, f)]
    assert len(cuts) == 1 and 8 <= cuts[0] <= 23, cuts


def test_a_dissolve_back_soon_after_a_dissolve_is_a_second_cut():
    # a short turn: a dissolves to b, b stays 0.6 s, b dissolves back to a; the second changes the picture the
    # other way, so it is not taken for the rest of the first
    rng = np.random.default_rng(7)
    a, b = _room(1), _room(2)
    frames = ([_noisy(a, rng) for _ in range(8)] + _dissolve(a, b, 4, rng) + [_noisy(b, rng) for _ in range(6)]
              + _dissolve(b, a, 4, rng) + [_noisy(a, rng) for _ in range(8)])
    det = ShotCutDetector()
    cuts = [i for i, f in enumerate(frames) if det.update(i * 0.1, f)]
    assert len(cuts) == 2 and 8 <= cuts[0] <= 12 and 17 <= cuts[1] <= 21, cuts


def test_a_head_moving_across_the_picture_is_not_a_cross_fade():
    # a large face-like block sweeping across the frame changes it by more than the threshold within a second,
    # through frames that are displacements, not blends, of the ends
    rng = np.random.default_rng(1)
    room = _room(3)
    frames = []
    for k in range(12):
        img = room.copy()
        x = 10 + 9 * k
        img[10:110, x:x + 60] = (235, 190, 160)
        frames.append(_noisy(img, rng))
    det = ShotCutDetector()
    first, last = ShotCutDetector.small(frames[0]), ShotCutDetector.small(frames[-1])
    assert content_change(first.hsv, last.hsv) >= det.options.threshold  # a change a cut would make
    assert not any(det.update(i * 0.1, f) for i, f in enumerate(frames))
    between = [ShotCutDetector.small(f).rgb for f in frames[1:-1]]
    assert not is_cross_fade(first.rgb, between, last.rgb, 0.25)
    # the same ends blended are one
    d = last.rgb - first.rgb
    assert is_cross_fade(first.rgb, [first.rgb + w * d for w in (0.2, 0.5, 0.8)], last.rgb, 0.25, 0.6)
    # a still shot that then changes in one step is a (soft) hard cut, not a dissolve
    still = [first.rgb + w * d for w in (0.02, 0.04, 0.06)]
    assert not is_cross_fade(first.rgb, still, last.rgb, 0.25, 0.6)
    assert is_cross_fade(first.rgb, still, last.rgb, 0.25, 1.0)


def test_cut_crossings_count_only_a_track_carried_across():
    crossings = CutCrossings()
    crossings.cut(1.0, [])  # before any face: nothing to carry
    crossings.assigned([0])
    crossings.cut(2.0, [0, 1])
    crossings.assigned([])  # no face in the first frame after the cut: not settled yet
    crossings.assigned([1])  # the first face after it continues track 1
    crossings.cut(3.0, [1])
    crossings.assigned([5])  # a new track: the face after the cut was not taken for one before it
    crossings.cut(4.0, [5])
    crossings.assigned([5, 6])  # the track from before the cut goes on
    crossings.assigned([5])  # settled once: later frames of the same shot add nothing
    assert crossings.times == [2.0, 4.0]


def test_tracker_live_ids_leave_out_tracks_lost_too_long():
    from detector.faces.landmarks import FaceLandmarks

    def face(x: float) -> FaceLandmarks:
        pts = np.zeros((478, 3), np.float32)
        pts[:, 0] = np.linspace(x, x + 60, 478)
        pts[:, 1] = np.linspace(50, 110, 478)
        return FaceLandmarks(points=pts)

    tracker = FaceTracker()
    tracker.update(0.0, [face(10), face(300)])
    tracker.update(1.0, [face(10)])
    assert tracker.live_ids(1.5) == [0, 1]
    assert tracker.live_ids(2.5) == [0]  # track 1 last seen at 0.0, more than max_gap_s (2 s) before


def test_hue_change_is_circular():
    red_low = np.zeros((4, 4, 3), np.uint8)
    red_low[..., 0] = 2
    red_high = red_low.copy()
    red_high[..., 0] = 178  # two steps the other way round the hue circle
    assert content_change(red_low, red_high) == pytest.approx(4 * 255 / 90 / 3)


def test_shot_options_are_checked():
    with pytest.raises(ValueError):
        ShotCutDetector(ShotCutOptions(threshold=0))
    with pytest.raises(ValueError):
        ShotCutDetector(ShotCutOptions(fade_residual=1.5))


def _signature(face_seed: int, room_seed: int, frames: int = 5) -> AppearanceSignature:
    rng = np.random.default_rng(face_seed * 100 + room_seed)
    face = _room(face_seed + 50, 112, 112)
    room = _room(room_seed)
    sig = AppearanceSignature()
    for _ in range(frames):
        sig.add(_noisy(face, rng), _noisy(room, rng), (60.0, 40.0, 100.0, 80.0))
    return sig


def test_one_participants_turns_are_joined_and_two_participants_are_not():
    a1, b1, a2, b2, a3 = (_signature(1, 1), _signature(2, 2), _signature(1, 1), _signature(2, 2), _signature(1, 1))
    spans = [(0, 2.9), (3, 5.9), (6, 8.9), (9, 11.9), (12, 14.9)]
    assert signature_distance(a1, a2) < LinkOptions().max_distance < signature_distance(a1, b1)
    assert link_tracks(spans, [a1, b1, a2, b2, a3]) == [[0, 2, 4], [1, 3]]


def test_tracks_on_screen_together_are_never_joined():
    a, same = _signature(1, 1), _signature(1, 1)
    assert link_tracks([(0, 5), (4, 9)], [a, same]) == [[0], [1]]


def test_a_group_is_not_joined_to_a_track_overlapping_one_of_its_members():
    # all three look alike; 1 and 2 are on screen together, so whichever joins 0, the other stays apart
    sigs = [_signature(1, 1), _signature(1, 1), _signature(1, 1)]
    groups = link_tracks([(0, 2), (5, 9), (3, 6)], sigs, LinkOptions(max_distance=50))
    assert sorted(map(len, groups)) == [1, 2]
    assert not any({1, 2} <= set(g) for g in groups)


def test_same_face_in_another_room_or_another_face_in_the_same_room_stays_apart():
    a = _signature(1, 1)
    assert signature_distance(a, _signature(1, 2)) > LinkOptions().max_distance  # same face, other room
    assert signature_distance(a, _signature(2, 1)) > LinkOptions().max_distance  # other face, same room


def test_joining_does_not_change_the_tracks_own_signatures():
    a, b = _signature(1, 1), _signature(1, 1)
    before = a.face.copy(), a.frames
    link_tracks([(0, 1), (2, 3)], [a, b])
    assert a.frames == before[1] and np.array_equal(a.face, before[0])


def test_surroundings_are_clipped_to_the_frame_and_empty_when_outside():
    img = np.zeros((100, 100, 3), np.uint8)
    assert surroundings(img, (40, 40, 60, 60)).shape == (50, 60, 3)  # a width either side, h/2 above, h below
    assert surroundings(img, (10, 10, 30, 30)).shape == (50, 50, 3)  # clipped at the top and left
    assert surroundings(img, (200, 200, 220, 220)) is None


def test_feature_means_merge_as_if_added_together():
    rows = [{"a": 1.0, "b": np.nan}, {"a": 3.0, "b": 2.0}, {"a": 5.0, "b": np.nan}]
    whole, left, right = FeatureMean(), FeatureMean(), FeatureMean()
    for r in rows:
        whole.add(r)
    left.add(rows[0])
    right.add(rows[1])
    right.add(rows[2])
    left.merge(right)
    merged, expected = left.result(), whole.result()
    assert merged == expected == {"a": 3.0, "b": 2.0}
    extra = FeatureMean()
    extra.add({"c": 7.0})
    left.merge(extra)  # a feature only the other mean has is kept, not dropped
    assert left.result()["c"] == 7.0 and left.result()["a"] == 3.0


def test_timeline_absorbs_another_turn():
    first, second = TrackTimeline(4.0, 2.0), TrackTimeline(4.0, 2.0)
    for tl, t0, v in ((first, 0.0, 1.0), (second, 10.0, 3.0)):
        for i in range(30):
            tl.advance(t0 + i * 0.1, 100.0 + v, {})
        tl.finish({})
    # checks-free timelines cut windows with only the face size; tell the turns apart by it
    assert len(first.windows) == len(second.windows) == 1
    first.absorb(second)
    assert first.frames == 60 and first.first_seen == 0.0 and first.last_seen == pytest.approx(12.9)
    assert [w.start for w in first.windows] == [0.0, 10.0]  # both turns' windows, in time order
    sizes = sorted(w.value["track.log_face_px"] for w in first.windows)
    assert sizes == pytest.approx([np.log(101.0), np.log(103.0)])
    assert first.features()["track.log_face_px"] == pytest.approx((np.log(101.0) + np.log(103.0)) / 2)
    assert first.median_face_px() == 102.0
    # seen for two turns of 2.9 s, not for the 12.9 s from the first sighting to the last
    assert first.duration == pytest.approx(5.8)


def test_thumbnail_stores_merge_in_time_order_within_capacity():
    crop = np.zeros((8, 8, 3), np.uint8)

    def store(times, capacity):
        st = ThumbnailStore(capacity=capacity, interval=0.5)
        for t in times:
            st.offer(t, crop, (0, 0, 1, 1))
        return st

    a = store((0.0, 2.0, 4.0), 8)
    a.merge(store((1.0, 3.0), 8))
    assert [t.seconds for t in a.items] == [0.0, 1.0, 2.0, 3.0, 4.0]  # interleaved in time order
    full = store((2.0, 4.0), 3)
    full.merge(store((1.0, 3.0), 3))
    # four is over capacity: every other one is dropped, as the store thins itself while a call streams
    assert [t.seconds for t in full.items] == [1.0, 3.0] and full.interval == 1.0
