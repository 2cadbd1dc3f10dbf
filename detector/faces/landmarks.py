"""Landmark stage: one small interface, backends listed in a registry.

The default backend is MediaPipe Face Mesh from ``mediapipe==0.10.21``, the
last release that still ships the Face Mesh graph and weights inside the
wheel (0.10.30+ needs a ``.task`` file downloaded at run time, which this
project never does). Anything that returns 468/478 Face-Mesh-topology points
in pixel coordinates can be plugged in through :data:`LANDMARK_BACKENDS`.
"""
from __future__ import annotations

import abc
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from detector.errors import ConfigError, ModelError

log = logging.getLogger(__name__)


@dataclass
class FaceLandmarks:
    """One face in one frame."""

    points: np.ndarray = field(repr=False)  # (N, 3) float32: x, y in pixels; z in pixels (relative depth)
    score: float = 1.0

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the landmark hull, in pixels."""
        xy = self.points[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def height(self) -> float:
        b = self.bbox
        return b[3] - b[1]


@dataclass
class LandmarkOptions:
    max_faces: int = 4  # raise for gallery views with more tiles
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    backend: str = "mediapipe-facemesh"
    # gallery views: also search an n x n grid of overlapping windows, because
    # Face Mesh's detector (128 px input over the whole frame) misses the small
    # faces of a 3x3 call grid. 0 = whole frame only.
    gallery_grid: int = 0
    # While fewer faces than max_faces are tracked, MediaPipe runs its face detector on every frame to look for
    # more; that is about a quarter of the landmark stage's time on a one-person call. With a value, the detector
    # runs on a frame when a face was lost (fewer faces are tracked than in some frame of the last
    # LOST_FACE_SEARCH_S seconds, or none at all), or when this many seconds (of the frames' own timestamps) have
    # passed since it last ran. So a lost face is looked for on every frame, while a face that comes into view
    # beside a tracked one is found up to this long (plus one analysed frame) late.
    # None: on every frame (MediaPipe's own schedule, and what detect() without a time does).
    new_face_search_s: float | None = None


class LandmarkDetector(abc.ABC):
    """Finds faces and their Face Mesh landmarks in one RGB frame."""

    @abc.abstractmethod
    def detect(self, image_rgb: np.ndarray, seconds: float | None = None) -> list[FaceLandmarks]:
        """Return every face found in ``image_rgb`` (HxWx3 uint8).

        ``seconds`` is the frame's timestamp, for backends that schedule work by time (see
        :attr:`LandmarkOptions.new_face_search_s`); a backend may ignore it.
        """

    def close(self) -> None:
        pass

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Wire layout of one NormalizedLandmark holding exactly x, y and z (proto2 optional floats):
# a length-delimited field-1 entry (0x0A, 15) wrapping three fixed32 fields (tags 0x0D, 0x15, 0x1D).
_RECORD = 17
_TAG_COLUMNS = {0: 0x0A, 1: 15, 2: 0x0D, 7: 0x15, 12: 0x1D}
_FLOAT_COLUMNS = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def landmark_array(landmarks) -> np.ndarray:
    """(N, 3) float32 normalised x, y, z of a MediaPipe ``NormalizedLandmarkList``.

    Reading 478 protobuf messages field by field takes about 0.5 ms of Python
    per face and holds the GIL, which the decode and check threads need at the
    same time. Face Mesh landmarks carry only x, y and z, so their serialised
    form is a fixed 17-byte record each and is read in one NumPy view; any
    other layout (visibility or presence set, a field missing) takes the
    field-by-field path, so the result never depends on which path ran.
    """
    n = len(landmarks.landmark)
    xyz = plain_xyz_records(landmarks.SerializeToString(), n)
    if xyz is not None:
        return xyz
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark], dtype=np.float32)


def plain_xyz_records(serialised: bytes, n: int) -> np.ndarray | None:
    """(n, 3) float32 from ``n`` serialised x/y/z-only landmark records; None for any other layout."""
    raw = np.frombuffer(serialised, dtype=np.uint8)
    if raw.size != n * _RECORD:
        return None
    rec = raw.reshape(n, _RECORD)
    if not all((rec[:, col] == val).all() for col, val in _TAG_COLUMNS.items()):
        return None
    return np.ascontiguousarray(rec[:, _FLOAT_COLUMNS]).view("<f4").reshape(n, 3)  # a fresh array, no copy needed


# Face Mesh's front-end graph as the wheel ships it, and the two settings mediapipe.solutions.face_mesh.FaceMesh
# passes into it (node paths as that module spells them, mediapipe 0.10.21)
_FRONT_GRAPH = ("modules", "face_landmark", "face_landmark_front_cpu.binarypb")
_DETECTION_SCORE = ("facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
                    "TensorsToDetectionsCalculator.min_score_thresh")
_TRACKING_SCORE = "facelandmarkcpu__ThresholdingCalculator.threshold"
#: input stream added to the graph: True lets this frame through to the face detector
SEARCH_STREAM = "search_new_faces"
#: how long after a face was lost the detector runs on every frame to find it again: as long as
#: detector.faces.tracking keeps a lost track live (TrackerOptions.max_gap_s)
LOST_FACE_SEARCH_S = 2.0


def gated_front_graph():
    """Face Mesh's front-end graph with one more gate before its face detector.

    The shipped graph sends a frame to the detector whenever fewer faces than ``num_faces`` were tracked in the
    previous frame (its gate ``DISALLOW:prev_has_enough_faces``). The added ``GateCalculator`` also needs a True
    packet on :data:`SEARCH_STREAM`, so the caller decides on which of those frames the detector runs. Nothing else
    changes: the faces it tracks from the previous frame's landmarks are found exactly as before.
    """
    import mediapipe
    from mediapipe.framework import calculator_pb2

    graph = calculator_pb2.CalculatorGraphConfig()
    graph.ParseFromString(Path(mediapipe.__file__).parent.joinpath(*_FRONT_GRAPH).read_bytes())
    readers, gates = [], []
    for node in graph.node:
        if node.calculator == "GateCalculator" and "DISALLOW:prev_has_enough_faces" in node.input_stream:
            gates.append(node)
        for i, stream in enumerate(node.input_stream):
            tag, _, name = stream.rpartition(":")
            if name == "gated_image":  # the detector and the image size its loop reads
                node.input_stream[i] = f"{tag}:detect_image" if tag else "detect_image"
                readers.append(node.calculator)
    if len(gates) != 1 or sorted(readers) != ["FaceDetectionShortRangeCpu", "ImagePropertiesCalculator"]:
        raise ModelError("this mediapipe's Face Mesh graph has no detector gate to extend as expected "
                         f"(gates {len(gates)}, readers {readers}; need mediapipe==0.10.21)")
    gate = graph.node.add()
    gate.calculator = "GateCalculator"
    gate.input_stream.extend(["gated_image", f"ALLOW:{SEARCH_STREAM}"])
    gate.output_stream.append("detect_image")
    graph.input_stream.append(SEARCH_STREAM)
    return graph


class MediaPipeFaceMesh(LandmarkDetector):
    """MediaPipe Face Mesh (legacy ``solutions`` graph), 478 points with irises.

    Runs in video mode: after the first detection the mesh tracks faces from
    frame to frame and only re-runs the face detector when a track is lost,
    which is several times faster than detecting every frame. While fewer
    faces than ``max_faces`` are tracked, MediaPipe would run the detector on
    every frame to look for more; :attr:`LandmarkOptions.new_face_search_s`
    spaces those searches out (see :func:`gated_front_graph`).
    """

    def __init__(self, options: LandmarkOptions | None = None):
        self.options = options or LandmarkOptions()
        if self.options.new_face_search_s is not None and not self.options.new_face_search_s > 0:
            raise ConfigError("new_face_search_s must be positive (or None: every frame)")
        # mediapipe's glog lines go to stderr; keep the library quiet.
        os.environ.setdefault("GLOG_minloglevel", "2")
        try:
            from mediapipe.python.solution_base import PacketDataType, SolutionBase
        except Exception as exc:  # pragma: no cover - depends on install
            raise ModelError(
                "MediaPipe Face Mesh is not available; install mediapipe==0.10.21 "
                f"(later releases ship no face model): {exc}"
            ) from exc
        try:
            self._mesh = SolutionBase(
                graph_config=gated_front_graph(),
                side_inputs={"num_faces": self.options.max_faces, "with_attention": True,
                             "use_prev_landmarks": True},
                calculator_params={_DETECTION_SCORE: self.options.min_detection_confidence,
                                   _TRACKING_SCORE: self.options.min_tracking_confidence},
                outputs=["multi_face_landmarks"],
                stream_type_hints={SEARCH_STREAM: PacketDataType.BOOL},
            )
        except ModelError:
            raise
        except Exception as exc:  # a graph or model file missing from a broken install
            raise ModelError(f"MediaPipe Face Mesh could not start: {exc}") from exc
        self._tracked = 0  # faces found in the previous frame: the graph tracks exactly these
        self._searched_at: float | None = None  # timestamp of the last frame the detector could run on
        self._recent: deque[tuple[float, int]] = deque()  # (timestamp, faces found) of the last LOST_FACE_SEARCH_S
        #: frames handed to the face detector (those with fewer faces tracked than max_faces and a search due)
        self.searches = 0

    def _search_due(self, seconds: float | None) -> bool:
        if self._tracked >= self.options.max_faces:
            return False  # the graph's own gate keeps the detector off anyway
        interval = self.options.new_face_search_s
        if interval is None or seconds is None:
            return True
        lost = self._tracked == 0 or any(n > self._tracked for _, n in self._recent)
        due = lost or self._searched_at is None or seconds - self._searched_at >= interval - 1e-6
        if due:
            self._searched_at = seconds
        return due

    def detect(self, image_rgb: np.ndarray, seconds: float | None = None) -> list[FaceLandmarks]:
        if self._mesh is None:
            raise ModelError("this Face Mesh was closed")
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"need an HxWx3 RGB image, got shape {image_rgb.shape}")
        h, w = image_rgb.shape[:2]
        if seconds is not None and self._recent and seconds < self._recent[-1][0]:  # time went back: another video
            self._recent.clear()
            self._searched_at = None
        search = self._search_due(seconds)
        self.searches += search
        result = self._mesh.process({"image": image_rgb, SEARCH_STREAM: search})
        faces: list[FaceLandmarks] = []
        for lms in result.multi_face_landmarks or []:
            # scaled in float64 then rounded once, as the per-field path did
            pts = (landmark_array(lms).astype(np.float64) * (w, h, w)).astype(np.float32)
            faces.append(FaceLandmarks(points=pts))
        self._tracked = len(faces)
        if seconds is not None:
            self._recent.append((seconds, len(faces)))
            while seconds - self._recent[0][0] > LOST_FACE_SEARCH_S:  # at most 2 s of frames, however long the call
                self._recent.popleft()
        return faces

    def close(self) -> None:
        mesh, self._mesh = getattr(self, "_mesh", None), None
        if mesh is not None:
            mesh.close()


class TiledFaceMesh(LandmarkDetector):
    """Face Mesh on the whole frame plus an n x n grid of overlapping windows.

    Each window is its own video-mode Face Mesh (its crop is a stable
    "camera"), so tracking inside tiles stays cheap. Faces seen by several
    windows are merged by centre distance; landmarks are mapped back to
    whole-frame pixels.
    """

    def __init__(self, options: LandmarkOptions | None = None):
        from dataclasses import replace

        self.options = options or LandmarkOptions()
        n = max(1, self.options.gallery_grid)
        self._grid = n
        self._whole = MediaPipeFaceMesh(replace(self.options, gallery_grid=0))
        per_window = max(1, min(self.options.max_faces, 2))
        self._windows = [MediaPipeFaceMesh(replace(self.options, gallery_grid=0, max_faces=per_window))
                         for _ in range(n * n)]

    def _boxes(self, w: int, h: int) -> list[tuple[int, int, int, int]]:
        n = self._grid
        # windows a quarter wider than one tile, so a face on a tile border is whole in one of them
        ww, wh = int(w / n * 1.25), int(h / n * 1.25)
        out = []
        for r in range(n):
            for c in range(n):
                x0 = int(min(max(0, c * w / n - (ww - w / n) / 2), w - ww))
                y0 = int(min(max(0, r * h / n - (wh - h / n) / 2), h - wh))
                out.append((x0, y0, ww, wh))
        return out

    def detect(self, image_rgb: np.ndarray, seconds: float | None = None) -> list[FaceLandmarks]:
        h, w = image_rgb.shape[:2]
        faces = list(self._whole.detect(image_rgb, seconds))
        for det, (x0, y0, ww, wh) in zip(self._windows, self._boxes(w, h)):
            for f in det.detect(np.ascontiguousarray(image_rgb[y0:y0 + wh, x0:x0 + ww]), seconds):
                f.points[:, 0] += x0
                f.points[:, 1] += y0
                faces.append(f)
        return _merge_duplicates(faces)

    def close(self) -> None:
        for d in [self._whole, *self._windows]:
            d.close()


def _merge_duplicates(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    """Keep one of several detections of the same face (the largest, i.e. least cut off)."""
    kept: list[FaceLandmarks] = []
    for f in sorted(faces, key=lambda f: -f.height):
        c = f.points[:, :2].mean(axis=0)
        if all(np.linalg.norm(c - k.points[:, :2].mean(axis=0)) > 0.35 * max(k.height, 1.0) for k in kept):
            kept.append(f)
    return kept


def _mediapipe_backend(options: LandmarkOptions) -> LandmarkDetector:
    return TiledFaceMesh(options) if options.gallery_grid > 1 else MediaPipeFaceMesh(options)


#: Explicit registry of landmark backends (name -> constructor from options).
LANDMARK_BACKENDS: dict[str, Callable[[LandmarkOptions], LandmarkDetector]] = {
    "mediapipe-facemesh": _mediapipe_backend,
}


def create_landmark_detector(options: LandmarkOptions | None = None) -> LandmarkDetector:
    options = options or LandmarkOptions()
    try:
        factory = LANDMARK_BACKENDS[options.backend]
    except KeyError:
        raise ModelError(f"unknown landmark backend {options.backend!r}; have {sorted(LANDMARK_BACKENDS)}") from None
    return factory(options)
