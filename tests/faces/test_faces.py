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
    from mediapipe.python.solutions import face_mesh

    from detector import Analyzer

    def broken(*a, **k):
        raise RuntimeError("calculator graph: model file missing")

    monkeypatch.setattr(face_mesh, "FaceMesh", broken)
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


def test_antialiased_crop_keeps_the_plain_warps_geometry_and_borders():
    h, w = 360, 640
    yy, xx = np.mgrid[0:h, 0:w]
    smooth = np.stack([128 + 100 * np.sin(xx / 40.0) * np.cos(yy / 55.0), xx * 255.0 / w, yy * 255.0 / h],
                      -1).clip(0, 255).astype(np.uint8)
    # inside the frame, across its corner (reflected), rotated, and enlarging (the plain warp itself)
    for m in (_similarity(0.5, 10, -60, -40), _similarity(0.4, 0, 10, 15), _similarity(0.5, -15, -260, -110),
              _similarity(1.5, 5, -300, -200)):
        assert np.abs(_crop(smooth, m, True) - _crop(smooth, m, False)).mean() < 1.0
    big = _similarity(1.5, 5, -300, -200)
    assert np.array_equal(_crop(smooth, big, True), _crop(smooth, big, False))


def test_antialiased_crop_of_a_large_face_has_the_grain_of_the_same_face_filmed_small():
    import cv2

    rng = np.random.default_rng(0)
    # a fine-grained 'face' (pore-scale texture) filmed at 560 px, and at 112 px (the crop's own size)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (560, 560, 3)).astype(np.float32), (0, 0), 1.0)
    large = np.clip(128 + (texture - texture.mean()) * (60 / texture.std()), 0, 255).astype(np.uint8)
    small = cv2.resize(large, (112, 112), interpolation=cv2.INTER_AREA)

    def grain(crop):  # high-frequency energy: what a sharpness check or a CNN reads as detail
        return cv2.Laplacian(cv2.cvtColor(crop.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32),
                             cv2.CV_32F).var()

    filmed_small = grain(_crop(small, _similarity(1.0, 0, 0, 0), False))
    for m in (_similarity(0.2, 0, 0, 0), _similarity(0.2, 17, 30, -20)):
        # the bilinear warp point-samples the large face's grain (aliasing): several times the small face's
        assert grain(_crop(large, m, False)) > 3 * filmed_small
        # area averaging first: about the grain the small face shows
        assert 0.25 * filmed_small < grain(_crop(large, m, True)) < 1.5 * filmed_small
    # align_face passes the setting through, with the same matrix either way
    pts = np.zeros((478, 3), np.float32)
    pts[[33, 133], :2], pts[[362, 263], :2] = [[150, 200], [190, 200]], [[290, 200], [330, 200]]
    pts[1, :2], pts[[61, 291], :2] = [240, 280], [[180, 340], [300, 340]]
    c1, m1 = align_face(large, pts, antialias=True)
    c0, m0 = align_face(large, pts)
    assert np.allclose(m1, m0) and c1.shape == c0.shape == (112, 112, 3) and grain(c1) < grain(c0)
