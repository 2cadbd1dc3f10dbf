"""Each hand-made check on synthetic observations with a known effect."""

import numpy as np
import pytest

from detector.checks import CHECKS, CheckContext, CheckSignal, FaceObservation
from detector.faces import FaceLandmarks, create_landmark_detector
from detector.faces.regions import align_face
from detector.video import open_video


@pytest.fixture(scope="module")
def observations(genuine_clip):
    obs = []
    with open_video(genuine_clip) as src, create_landmark_detector() as det:
        for f in src.frames(rate=10):
            faces = det.detect(f.image)
            if faces:
                crop, m = align_face(f.image, faces[0].points)
                obs.append(FaceObservation(0, f.pts, f.image, faces[0], crop, m))
    assert len(obs) >= 20
    return obs


def _run(name, observations):
    check = CHECKS[name](CheckContext())
    for o in observations:
        check.update(o)
    sig = check.finalize()
    return sig, CHECKS[name].summarize(sig)


@pytest.mark.parametrize("name", [n for n, c in CHECKS.items() if not c.shared_model])  # learned: own tests
def test_every_check_produces_a_signal_and_finite_features(name, observations):
    sig, feats = _run(name, observations)
    assert len(sig.times) == len(sig.values)
    assert np.isfinite(sig.values).sum() >= 10
    assert feats and all(k.startswith(name + ".") for k in feats)
    assert all(np.isfinite(v) for v in feats.values()), feats
    # windows summarise with the same feature names
    assert set(CHECKS[name].summarize(sig.window(0.0, 2.0))) == set(feats)


def _perturbed(observations, fn):
    out = []
    rng = np.random.default_rng(0)
    for o in observations:
        pts, crop = fn(o.face.points.copy(), o.crop.copy(), rng)
        out.append(FaceObservation(0, o.pts, o.image, FaceLandmarks(pts), crop, o.crop_matrix))
    return out


def test_jitter_rises_when_inner_landmarks_shake(observations):
    from detector.faces.regions import INNER

    def shake(pts, crop, rng):
        pts[INNER, :2] += rng.normal(0, 1.5, (len(INNER), 2))
        return pts, crop

    base = _run("jitter", observations)[1]["jitter.median"]
    shaken = _run("jitter", _perturbed(observations, shake))[1]["jitter.median"]
    assert shaken > base + 0.5


def test_boundary_flicker_rises_with_colour_flicker_inside_the_face(observations):
    def flick(pts, crop, rng):
        c = crop.astype(np.float32)
        c[30:90, 30:82] *= rng.uniform(0.85, 1.15, 3)  # per-frame colour error inside the face only
        return pts, np.clip(c, 0, 255).astype(np.uint8)

    base = _run("boundary", observations)[1]["boundary.flicker"]
    flicker = _run("boundary", _perturbed(observations, flick))[1]["boundary.flicker"]
    assert flicker > base


def test_sharpness_drops_when_the_face_is_blurred(observations):
    import cv2

    def blur(pts, crop, rng):
        c = crop.copy()
        c[25:100, 25:87] = cv2.GaussianBlur(crop, (0, 0), 2.0)[25:100, 25:87]
        return pts, c

    base = _run("sharpness", observations)[1]["sharpness.median"]
    blurred = _run("sharpness", _perturbed(observations, blur))[1]["sharpness.median"]
    assert blurred < base - 0.1


def test_identity_spikes_when_another_face_shows_through(observations):
    def dropout(pts, crop, rng, state={"i": 0}):
        state["i"] += 1
        if state["i"] % 10 == 0:
            crop = crop[:, ::-1].copy()  # mirrored face for one frame: a different appearance
            crop = np.roll(crop, 9, axis=0)
        return pts, crop

    base = _run("identity", observations)[1]["identity.spikes"]
    spiky = _run("identity", _perturbed(observations, dropout))[1]["identity.spikes"]
    assert spiky > base * 1.5


def test_pose_disagreement_rises_when_inner_face_turns_alone(observations):
    from detector.faces.regions import INNER

    def twist(pts, crop, rng, state={"i": 0}):
        state["i"] += 1
        a = np.radians(6 * np.sin(state["i"] / 3))
        c = pts[INNER, :2].mean(0)
        r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        pts[INNER, :2] = (pts[INNER, :2] - c) @ r.T + c
        return pts, crop

    base = _run("pose", observations)[1]["pose.median"]
    twisted = _run("pose", _perturbed(observations, twist))[1]["pose.median"]
    assert twisted > base + 1.0


def test_summaries_are_nan_on_too_little_data():
    # temporal checks need several samples; learned checks read single crops
    for name, cls in CHECKS.items():
        if cls.shared_model:
            continue
        feats = cls.summarize(CheckSignal(name, np.array([0.0]), np.array([1.0])))
        assert all(not np.isfinite(v) for v in feats.values())


def test_expression_asymmetry_rises_when_one_eye_closes_alone(observations):
    upper, lower = [160, 158], [153, 144]  # left-eye lids

    def squint(pts, crop, rng, state={"i": 0}):
        state["i"] += 1
        k = 0.5 * (1 + np.sin(state["i"] / 2))
        mid = (pts[upper, 1] + pts[lower, 1]) / 2
        pts[upper, 1] = mid + (pts[upper, 1] - mid) * (1 - 0.8 * k)
        pts[lower, 1] = mid + (pts[lower, 1] - mid) * (1 - 0.8 * k)
        return pts, crop

    base = _run("expression", observations)[1]["expression.eye_asymmetry"]
    winks = _run("expression", _perturbed(observations, squint))[1]["expression.eye_asymmetry"]
    assert winks > base + 0.02
