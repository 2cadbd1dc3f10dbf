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
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from detector.errors import ModelError

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


class LandmarkDetector(abc.ABC):
    """Finds faces and their Face Mesh landmarks in one RGB frame."""

    @abc.abstractmethod
    def detect(self, image_rgb: np.ndarray) -> list[FaceLandmarks]:
        """Return every face found in ``image_rgb`` (HxWx3 uint8)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MediaPipeFaceMesh(LandmarkDetector):
    """MediaPipe Face Mesh (legacy ``solutions`` API), 478 points with irises.

    Runs in video mode: after the first detection the mesh tracks faces from
    frame to frame and only re-runs the face detector when a track is lost,
    which is several times faster than detecting every frame.
    """

    def __init__(self, options: LandmarkOptions | None = None):
        self.options = options or LandmarkOptions()
        # mediapipe's glog lines go to stderr; keep the library quiet.
        os.environ.setdefault("GLOG_minloglevel", "2")
        try:
            from mediapipe.python.solutions import face_mesh as mp_face_mesh
        except Exception as exc:  # pragma: no cover - depends on install
            raise ModelError(
                "MediaPipe Face Mesh is not available; install mediapipe==0.10.21 "
                f"(later releases ship no face model): {exc}"
            ) from exc
        self._mesh = mp_face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=self.options.max_faces,
            refine_landmarks=True,
            min_detection_confidence=self.options.min_detection_confidence,
            min_tracking_confidence=self.options.min_tracking_confidence,
        )

    def detect(self, image_rgb: np.ndarray) -> list[FaceLandmarks]:
        h, w = image_rgb.shape[:2]
        result = self._mesh.process(image_rgb)
        faces: list[FaceLandmarks] = []
        for lms in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
            faces.append(FaceLandmarks(points=pts))
        return faces

    def close(self) -> None:
        mesh, self._mesh = getattr(self, "_mesh", None), None
        if mesh is not None:
            mesh.close()


#: Explicit registry of landmark backends (name -> constructor from options).
LANDMARK_BACKENDS: dict[str, Callable[[LandmarkOptions], LandmarkDetector]] = {
    "mediapipe-facemesh": MediaPipeFaceMesh,
}


def create_landmark_detector(options: LandmarkOptions | None = None) -> LandmarkDetector:
    options = options or LandmarkOptions()
    try:
        factory = LANDMARK_BACKENDS[options.backend]
    except KeyError:
        raise ModelError(f"unknown landmark backend {options.backend!r}; have {sorted(LANDMARK_BACKENDS)}") from None
    return factory(options)
