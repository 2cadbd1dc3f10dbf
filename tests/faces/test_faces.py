import numpy as np
import pytest

from detector.errors import ModelError
from detector.faces import FaceLandmarks, FaceTracker, LandmarkOptions, TrackerOptions, create_landmark_detector
from detector.faces.regions import TEMPLATE_112, align_face, five_points
from detector.video import open_video


def _face(cx, cy, size=100.0):
    # a fake 478-point face: a disc of points around (cx, cy)
    ang = np.linspace(0, 2 * np.pi, 478)
    r = np.linspace(0, size / 2, 478)
    pts = np.stack([cx + r * np.cos(ang * 7), cy + r * np.sin(ang * 7), np.zeros(478)], axis=1)
    return FaceLandmarks(points=pts.astype(np.float32))


def test_tracker_keeps_one_track_through_a_short_loss():
    tr = FaceTracker(TrackerOptions(max_gap_s=2.0))
    ids = []
    for i in range(30):
        t = i * 0.1
        faces = [] if 10 <= i < 18 else [_face(200 + i, 150)]  # 0.8 s with the face hidden
        ids += [tid for tid, _ in tr.update(t, faces)]
    assert set(ids) == {0}


def test_tracker_separates_gallery_tiles_and_reattaches_after_long_loss():
    tr = FaceTracker()
    centres = [(100, 100), (400, 100), (100, 350), (400, 350)]
    seen = {}
    for i in range(40):
        faces = [_face(x + np.sin(i) * 3, y) for j, (x, y) in enumerate(centres) if not (j == 2 and 5 <= i < 35)]
        for tid, f in tr.update(i * 0.1, faces):
            seen.setdefault(tid, set()).add(tuple(np.round(f.points[:, :2].mean(0), -2)))
    assert tr.track_count == 4  # tile 3 came back after 3 s in its place: same participant
    assert len(seen) == 4


def test_tracker_starts_new_tracks_after_a_cut():
    tr = FaceTracker()
    ids = []
    for i in range(20):
        if i == 10:
            tr.cut()
        ids.append(tr.update(i * 0.1, [_face(200, 150)])[0][0])
    assert ids == [0] * 10 + [1] * 10  # the same place, but after the cut another track
    assert tr.track_count == 2


def test_tracker_ignores_tiny_faces():
    tr = FaceTracker(TrackerOptions(min_face_px=24))
    assert tr.update(0.0, [_face(50, 50, size=10)]) == []


def test_unknown_backend_is_a_model_error():
    with pytest.raises(ModelError):
        create_landmark_detector(LandmarkOptions(backend="nope"))


def test_face_mesh_finds_the_synthetic_face_and_alignment_hits_template(genuine_clip):
    with open_video(genuine_clip) as src, create_landmark_detector() as det:
        frame = next(iter(src.frames(rate=2)))
        faces = det.detect(frame.image)
    assert len(faces) == 1
    assert faces[0].points.shape == (478, 3)
    crop, m = align_face(frame.image, faces[0].points)
    assert crop.shape == (112, 112, 3)
    p = five_points(faces[0].points)
    mapped = p @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - TEMPLATE_112).max() < 6.0


def test_no_face_in_blank_frame():
    with create_landmark_detector() as det:
        assert det.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def _field_by_field(landmarks) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)


def test_landmark_array_reads_the_wire_format_exactly(genuine_clip):
    from mediapipe.python.solutions import face_mesh

    from detector.faces.landmarks import landmark_array, plain_xyz_records

    with open_video(genuine_clip) as src, face_mesh.FaceMesh(refine_landmarks=True) as mesh:
        frame = next(iter(src.frames(rate=2)))
        lms = mesh.process(frame.image).multi_face_landmarks[0]
    fast = landmark_array(lms)
    assert fast.shape == (478, 3) and fast.dtype == np.float32
    np.testing.assert_array_equal(fast, _field_by_field(lms))
    # Face Mesh output takes the one-view path, not the field-by-field fallback
    assert plain_xyz_records(lms.SerializeToString(), 478) is not None


def test_landmark_array_falls_back_when_the_records_are_not_plain_xyz():
    from mediapipe.framework.formats import landmark_pb2

    from detector.faces.landmarks import landmark_array, plain_xyz_records

    lms = landmark_pb2.NormalizedLandmarkList()
    for i in range(5):
        lms.landmark.add(x=0.1 * i, y=0.2 + i, z=-0.5 * i)
    np.testing.assert_array_equal(landmark_array(lms), _field_by_field(lms))
    assert plain_xyz_records(lms.SerializeToString(), 5) is not None
    lms.landmark[2].visibility = 0.7  # an extra field: the records are no longer 17 bytes each
    lms.landmark[3].ClearField("z")  # and a missing one (reads as 0.0)
    assert plain_xyz_records(lms.SerializeToString(), 5) is None
    got = landmark_array(lms)
    np.testing.assert_array_equal(got, _field_by_field(lms))
    assert got[3, 2] == 0.0 and got[2, 0] == np.float32(0.2)


def test_a_face_mesh_that_cannot_start_is_a_model_error_also_for_the_analyzer(monkeypatch):
    from mediapipe.python import solution_base

    from detector import Analyzer

    def broken(*a, **k):
        raise RuntimeError("calculator graph: model file missing")

    monkeypatch.setattr(solution_base, "SolutionBase", broken)
    with pytest.raises(ModelError, match="could not start"):
        create_landmark_detector()
    with pytest.raises(ModelError, match="could not start"):
        Analyzer()


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(np.radians(angle_deg)) * scale, np.sin(np.radians(angle_deg)) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


def _crop(image, m, antialias):
    import cv2

    from detector.faces.regions import _antialiased_crop

    if antialias:
        return _antialiased_crop(image, m, 112).astype(float)
    return cv2.warpAffine(image, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).astype(float)


def test_antialiased_crop_is_the_plain_warp_of_the_blurred_frame():
    import cv2

    from detector.faces.regions import antialias_sigma

    h, w = 360, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # a linear ramp: blurring leaves it unchanged, so away from the frame's edges both crops agree exactly
    ramp = np.stack([0.3 * xx + 0.2 * yy, 0.1 * xx, 0.4 * yy], -1).astype(np.float32)
    inside = _similarity(0.45, 12, -120, -60)
    assert np.abs(_crop(ramp, inside, True) - _crop(ramp, inside, False)).max() < 1e-3
    # anywhere, also where the footprint crosses the frame's edge or corner: the frame reflected at its edges as
    # the plain warp reflects it, blurred with antialias_sigma, then warped with the same matrix
    rng = np.random.default_rng(1)
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    pad = 400
    padded = cv2.copyMakeBorder(noise, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    for m in (inside, _similarity(0.4, 0, 10, 15), _similarity(0.5, -15, -260, -110), _similarity(0.3, 30, -150, -20)):
        sigma = antialias_sigma(m)
        assert sigma > 0
        ref_m = m.copy()
        ref_m[:, 2] -= m[:, :2] @ np.array([pad, pad])
        reference = cv2.warpAffine(cv2.GaussianBlur(padded, (0, 0), sigma, borderType=cv2.BORDER_REFLECT), ref_m,
                                   (112, 112), flags=cv2.INTER_LINEAR)
        assert np.abs(_crop(noise, m, True) - reference).max() < 1e-2
    # a footprint larger than twice the frame (no face Face Mesh finds): the whole frame blurred, then warped
    huge = _similarity(0.04, 10, 0, 0)
    whole = cv2.warpAffine(cv2.GaussianBlur(noise, (0, 0), antialias_sigma(huge), borderType=cv2.BORDER_REFLECT), huge,
                           (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    assert np.abs(_crop(noise, huge, True) - whole).max() < 1e-3
    assert np.abs(_crop(noise, huge, True) - _crop(noise, huge, False)).mean() > 10  # and blurred it is
    # a crop that enlarges the face is the plain warp itself, and the blur vanishes as the scale reaches 1
    assert np.array_equal(_crop(noise, _similarity(1.5, 5, -300, -200), True),
                          _crop(noise, _similarity(1.5, 5, -300, -200), False))
    assert antialias_sigma(_similarity(1.0, 0, 0, 0)) == 0.0 < antialias_sigma(_similarity(0.99, 0, 0, 0)) < 0.1


def test_antialiased_crop_keeps_a_faces_grain_within_3x_across_sizes_and_changes_smoothly_as_it_moves():
    import cv2

    rng = np.random.default_rng(0)
    # a fine-grained 'face' (pore-scale texture), filmed so that the crop shrinks it 10x ... not at all
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (2400, 2400, 3)).astype(np.float32), (0, 0), 1.0)
    texture = np.clip(128 + (texture - texture.mean()) * (60 / texture.std()), 0, 255).astype(np.uint8)

    def grain(crop):  # high-frequency energy: what a sharpness check or a CNN reads as detail
        return cv2.Laplacian(cv2.cvtColor(crop.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32),
                             cv2.CV_32F).var()

    plain, smooth = [], []
    for scale in (0.1, 0.2, 0.45, 0.75, 0.9, 1.0):
        f = (112 / scale) / 1120  # the texture's central 1120 px fill the crop
        filmed = cv2.resize(texture, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        m = _similarity(scale, 0, -100.3 * scale, -100.7 * scale)
        plain.append(grain(_crop(filmed, m, False)))
        smooth.append(grain(_crop(filmed, m, True)))
    # the bilinear warp point-samples the large faces' grain (aliasing): 50x between the largest and the smallest
    assert max(plain) > 20 * min(plain)
    # blurred first: within a factor of 3 at every size (not flat: the assumed 0.5 px source blur leaves faces 1.2 to
    # 1.4 times the crop grainier than this test's area-averaging 'camera' does; measured 2.5x between extremes)
    assert max(smooth) < 3 * min(smooth)
    # a face drifting by 1/80 px a frame: every step changes the crop by about the same small amount (no jumps
    # where a pixel grid is crossed)
    steps, prev = [], None
    for k in range(120):
        crop = _crop(texture, _similarity(0.45, 0, -500 - 0.0125 * 0.45 * k, -600), True)
        if prev is not None:
            steps.append(np.abs(crop - prev).mean())
        prev = crop
    assert max(steps) < 1.5 * np.median(steps) and max(steps) < 1.0
    # align_face passes the setting through, with the same matrix either way
    pts = np.zeros((478, 3), np.float32)
    pts[[33, 133], :2], pts[[362, 263], :2] = [[350, 400], [390, 400]], [[490, 400], [530, 400]]
    pts[1, :2], pts[[61, 291], :2] = [440, 480], [[380, 540], [500, 540]]
    c1, m1 = align_face(texture, pts, antialias=True)
    c0, m0 = align_face(texture, pts)
    assert np.allclose(m1, m0) and c1.shape == c0.shape == (112, 112, 3) and grain(c1) < grain(c0)
