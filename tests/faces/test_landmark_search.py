"""The landmark stage's schedule for looking for new faces (LandmarkOptions.new_face_search_s)."""
import numpy as np
import pytest

from detector.errors import ConfigError, ModelError
from detector.faces import LandmarkOptions, MediaPipeFaceMesh
from detector.faces import landmarks as landmarks_module
from detector.video import open_video


@pytest.fixture(scope="module")
def face_frames(genuine_clip):
    with open_video(genuine_clip) as src:
        return [(f.seconds, f.image) for f in src.frames(rate=10)][:30]


def _run(frames, interval, max_faces=4):
    with MediaPipeFaceMesh(LandmarkOptions(max_faces=max_faces, new_face_search_s=interval)) as mesh:
        found = [mesh.detect(image, seconds) for seconds, image in frames]
        return found, mesh.searches


def test_searching_every_frame_is_mediapipe_face_mesh_exactly(face_frames):
    from mediapipe.python.solutions import face_mesh

    from detector.faces.landmarks import landmark_array

    got, searches = _run(face_frames, None)
    assert searches == len(face_frames)
    with face_mesh.FaceMesh(max_num_faces=4, refine_landmarks=True) as mesh:
        for (_, image), faces in zip(face_frames, got):
            h, w = image.shape[:2]
            want = [(landmark_array(l).astype(np.float64) * (w, h, w)).astype(np.float32)
                    for l in mesh.process(image).multi_face_landmarks or []]
            assert len(faces) == len(want) == 1
            np.testing.assert_array_equal(faces[0].points, want[0])


def test_a_tracked_face_is_searched_past_once_a_second_and_its_landmarks_do_not_change(face_frames):
    every, _ = _run(face_frames, None)
    spaced, searches = _run(face_frames, 1.0)
    # 3 s of frames at 10 fps with the face tracked throughout: the detector runs at 0, 1 and 2 s
    assert searches == 3
    for a, b in zip(every, spaced):
        assert len(a) == len(b) == 1
        np.testing.assert_array_equal(a[0].points, b[0].points)
    # a timestamp that goes back (another recording through the same detector) searches at once
    with MediaPipeFaceMesh(LandmarkOptions(new_face_search_s=1.0)) as mesh:
        for seconds, image in face_frames[10:15] + face_frames[:2]:
            mesh.detect(image, seconds)
        assert mesh.searches == 2


def test_without_a_face_every_frame_is_searched(face_frames):
    blank = [(i / 10, np.full((240, 320, 3), 128, np.uint8)) for i in range(12)]
    found, searches = _run(blank + face_frames[:3], 1.0)
    assert searches == 13  # every blank frame, then the one that finds the face; not the next two
    assert [len(f) for f in found] == [0] * 12 + [1, 1, 1]


def test_a_face_that_comes_into_view_while_another_is_tracked_is_found_at_the_next_search(face_frames):
    """A second participant appears 1.25 s in: searched for every frame it is found at once; once a second,
    at the first search after it appeared (2.0 s), never later than that."""
    with MediaPipeFaceMesh() as mesh:
        x0, _, x1, _ = mesh.detect(face_frames[0][1])[0].bbox
    left = max(0, int(x0 + x1) // 2 - 160)  # a 320 px wide strip around the face: two fit in one 640 px frame

    def two_up(seconds, image):
        strip = image[:, left:left + 320]
        right = strip if seconds >= 1.25 else np.full_like(strip, 128)
        return seconds, np.ascontiguousarray(np.concatenate([strip, right], axis=1))

    frames = [two_up(s, im) for s, im in face_frames]
    every, _ = _run(frames, None)
    spaced, _ = _run(frames, 1.0)
    first_two = [next(s for (s, _), f in zip(frames, run) if len(f) == 2) for run in (every, spaced)]
    assert first_two[0] == pytest.approx(1.3, abs=0.06)
    assert first_two[1] == pytest.approx(2.0, abs=0.06)


def test_a_face_lost_beside_a_tracked_one_is_searched_for_on_every_frame(face_frames):
    """Two participants; the right one is hidden from 1.2 to 1.35 s (a hand over the face). Searched for once a
    second only, it would be found again at 2.0 s; as a lost face it is searched for at once, found at 1.4 s as
    with MediaPipe's every-frame search."""
    with MediaPipeFaceMesh() as mesh:
        x0, _, x1, _ = mesh.detect(face_frames[0][1])[0].bbox
    left = max(0, int(x0 + x1) // 2 - 160)

    def two_up(seconds, image):
        strip = image[:, left:left + 320]
        right = np.full_like(strip, 128) if 1.2 <= seconds < 1.35 else strip
        return seconds, np.ascontiguousarray(np.concatenate([strip, right], axis=1))

    frames = [two_up(s, im) for s, im in face_frames]
    every, _ = _run(frames, None)
    spaced, searches = _run(frames, 1.0)
    counts = [[len(f) for f in run] for run in (every, spaced)]
    assert counts[0] == counts[1]
    back = next(s for (s, _), n in zip(frames, counts[1]) if s > 1.2 and n == 2)
    assert back == pytest.approx(1.4, abs=0.04)
    assert searches < len(frames) // 2  # and otherwise still once a second
    with MediaPipeFaceMesh(LandmarkOptions(new_face_search_s=1.0)) as mesh:
        for seconds, image in frames:
            mesh.detect(image, seconds)
        # what it remembers of earlier frames stays bounded by time, however long the call
        assert 0 < len(mesh._recent) <= 2.0 * 10 + 2


def test_settings_are_checked():
    with pytest.raises(ConfigError):
        MediaPipeFaceMesh(LandmarkOptions(new_face_search_s=0.0))


def test_a_face_mesh_graph_without_the_detector_gate_is_a_model_error(monkeypatch, tmp_path):
    from mediapipe.framework import calculator_pb2

    graph = calculator_pb2.CalculatorGraphConfig()
    graph.input_stream.append("image")
    (tmp_path / "front.binarypb").write_bytes(graph.SerializeToString())
    monkeypatch.setattr(landmarks_module, "_FRONT_GRAPH", ("..", "..", "..", "..", str(tmp_path / "front.binarypb")))
    with pytest.raises(ModelError, match="no detector gate"):
        MediaPipeFaceMesh()
