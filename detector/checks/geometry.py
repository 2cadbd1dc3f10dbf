"""Checks on landmark geometry: jitter after rigid motion, inner vs whole-face pose.

Both use only landmark coordinates, so they are cheap and independent of
image quality. Face Mesh landmarks of a genuine face move as one rigid head
plus expression; a live swapper re-renders the inner face from its own
(temporally smoothed) alignment, which changes how the inner features move
relative to the head and to the face contour.
"""
from __future__ import annotations

import numpy as np

from detector.checks.base import CheckSignal, FaceObservation, TrackCheck
from detector.faces import regions

_INNER = np.array(regions.INNER)
_RIGID = np.array(regions.RIGID)
_OVAL = np.array(regions.FACE_OVAL)


def _similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform (Umeyama) mapping src to dst."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    e = np.diag([1.0, d])
    r = u @ e @ vt
    var = (s0 ** 2).sum() / len(src)
    scale = (sig * np.diag(e)).sum() / max(var, 1e-9)
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def _kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation best aligning centred, scale-normalised point set a onto b."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    a /= np.linalg.norm(a) + 1e-9
    b /= np.linalg.norm(b) + 1e-9
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


class LandmarkJitterCheck(TrackCheck):
    """Jitter of the inner features once rigid head motion is removed.

    The head's motion is fitted on rigid anchor points; what the inner points
    still move, relative to face size and to how much the head moved, is
    jitter. Live swappers smooth the face over time, so their inner features
    jitter less than a real face's landmarks do.
    """

    name = "jitter"
    title = "Landmark jitter"
    explanation = "the inner face moves unnaturally smoothly (or jerkily) relative to the head, as a temporally smoothed swap does"
    direction = -1

    def __init__(self, context):
        super().__init__(context)
        self._prev: np.ndarray | None = None
        self._prev_t = -1.0

    def update(self, obs: FaceObservation) -> None:
        pts = obs.face.points[:, :2].astype(np.float64)
        prev, self._prev = self._prev, pts
        gap = obs.seconds - self._prev_t
        self._prev_t = obs.seconds
        if prev is None or gap > 0.5:
            self.emit(obs.seconds, None)
            return
        size = max(obs.face.height, 1.0)
        m = _similarity_fit(prev[_RIGID], pts[_RIGID])
        moved = prev @ m[:, :2].T + m[:, 2]
        resid = np.linalg.norm(pts[_INNER] - moved[_INNER], axis=1)
        self.emit(obs.seconds, float(np.log(np.median(resid) / size + 1e-4)))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 3:
            return {"jitter.median": np.nan, "jitter.p90": np.nan}
        return {"jitter.median": float(np.median(v)), "jitter.p90": float(np.percentile(v, 90))}


class PoseConsistencyCheck(TrackCheck):
    """Head pose from the inner face vs from the face contour (Yang, Li and Lyu 2019).

    Each frame's inner points and contour points (x, y and Face Mesh depth)
    are rotated onto the track's own reference shape; on a real head both
    rotations agree, while a swapped inner face sits on the original contour
    and drifts from it when the head turns.
    """

    name = "pose"
    title = "Inner-face vs contour pose"
    explanation = "the head pose of the inner face disagrees with the pose of the face contour"

    def __init__(self, context):
        super().__init__(context)
        self._ref: np.ndarray | None = None

    def update(self, obs: FaceObservation) -> None:
        p = obs.face.points.astype(np.float64)
        if self._ref is None:
            self._ref = p.copy()
            self.emit(obs.seconds, None)
            return
        r_in = _kabsch(p[_INNER], self._ref[_INNER])
        r_ov = _kabsch(p[_OVAL], self._ref[_OVAL])
        rel = r_in @ r_ov.T
        angle = np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1.0, 1.0)))
        self.emit(obs.seconds, float(angle))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 3:
            return {"pose.median": np.nan, "pose.flicker": np.nan}
        return {"pose.median": float(np.median(v)), "pose.flicker": float(np.median(np.abs(np.diff(v))))}
