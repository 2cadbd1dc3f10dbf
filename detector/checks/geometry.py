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

    def update(self, obs: FaceObservation) -> None:
        pts = obs.face.points[:, :2].astype(np.float64)
        prev = self.previous(obs, pts)
        if prev is None:
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


def _eye_aspect(p: np.ndarray, a: int, b: int, c: int, d: int, e: int, f: int) -> float:
    """Eye openness: mean lid distance over eye width (Soukupova and Cech 2016)."""
    return float((np.linalg.norm(p[b] - p[f]) + np.linalg.norm(p[c] - p[e])) / (2 * np.linalg.norm(p[a] - p[d]) + 1e-6))


class ExpressionDynamicsCheck(TrackCheck):
    """How eyes, mouth and gaze move: swapped faces show damped, symmetric expressions.

    A face-swap decoder re-synthesises the eyes and mouth from a compressed
    code and the swapper smooths it over time: the two eyes blink and squint
    more alike than real eyes do, mouth motion loses its quick changes, and
    the irises move less. Measured per frame from the landmarks: left/right
    eye-openness asymmetry, mouth opening and horizontal iris position.
    """

    name = "expression"
    title = "Expression dynamics"
    explanation = "eyes, mouth and gaze move in a damped, overly symmetric way, as a re-synthesised face does"
    direction = -1

    def update(self, obs: FaceObservation) -> None:
        p = obs.face.points[:, :2].astype(np.float64)
        left = _eye_aspect(p, 33, 160, 158, 133, 153, 144)
        right = _eye_aspect(p, 362, 385, 387, 263, 373, 380)
        mouth = float(np.linalg.norm(p[13] - p[14]) / (np.linalg.norm(p[61] - p[291]) + 1e-6))
        iris = np.nan
        if len(p) >= 478:  # iris centre relative to the eye corners, in eye widths
            w = np.linalg.norm(p[33] - p[133]) + 1e-6
            iris = float((p[468, 0] - (p[33, 0] + p[133, 0]) / 2) / w)
        self.emit(obs.seconds, abs(left - right), mouth=mouth, iris=iris)

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        mouth = signal.extra.get("mouth", np.zeros(0))
        iris = signal.extra.get("iris", np.zeros(0))
        iris = iris[np.isfinite(iris)]
        out = {"expression.eye_asymmetry": np.nan, "expression.mouth_jerk": np.nan, "expression.iris_spread": np.nan}
        if v.size >= 5:
            out["expression.eye_asymmetry"] = float(np.median(v))
        if mouth.size >= 6:
            vel = np.median(np.abs(np.diff(mouth)))
            out["expression.mouth_jerk"] = float(np.median(np.abs(np.diff(mouth, 2))) / (vel + 1e-4))
        if iris.size >= 5:
            out["expression.iris_spread"] = float(np.std(iris))
        return out
