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
