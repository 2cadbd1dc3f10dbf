"""Checks on appearance over time: identity jumps and behaviour at hard poses.

When a live swap drops out for a few frames (a hand crosses the face, the
head turns far, the swapper loses its alignment) the real face shows
through: the track's appearance jumps away from its usual look and back.
Genuine faces change appearance smoothly.
"""
from __future__ import annotations

import cv2
import numpy as np

from detector.checks.base import CheckSignal, FaceObservation, TrackCheck

# Descriptor resolution: coarse enough to ignore expression detail and noise,
# fine enough to tell two people apart.
_DESC = 16


def appearance_descriptor(obs: FaceObservation) -> np.ndarray:
    """Normalised low-resolution colour descriptor of the aligned inner face."""
    d = getattr(obs, "_desc", None)
    if d is None:
        c = obs.crop[20:100, 24:88]  # eyes to mouth in the aligned template
        small = cv2.resize(c, (_DESC, _DESC), interpolation=cv2.INTER_AREA).astype(np.float32)
        small -= small.mean(axis=(0, 1))
        d = small.ravel() / (np.linalg.norm(small) + 1e-6)
        obs._desc = d  # type: ignore[attr-defined]
    return d


def yaw_proxy(points: np.ndarray) -> float:
    """Signed head yaw proxy from the nose tip's position between the cheeks (-1..1)."""
    left, right, nose = points[234, 0], points[454, 0], points[1, 0]
    width = max(right - left, 1e-3)
    return float(2 * (nose - left) / width - 1)


class AppearanceJumpCheck(TrackCheck):
    """Distance of each frame's face from the track's running appearance."""

    name = "identity"
    title = "Appearance jumps"
    explanation = "the face's appearance jumps away from its usual look for a moment, as when a swap drops out"

    def __init__(self, context):
        super().__init__(context)
        self._mean: np.ndarray | None = None

    def update(self, obs: FaceObservation) -> None:
        d = appearance_descriptor(obs)
        if self._mean is None:
            self._mean = d.copy()
            self.emit(obs.seconds, None)
            return
        dist = float(1.0 - np.dot(d, self._mean) / (np.linalg.norm(self._mean) + 1e-6))
        # slow running mean: follows lighting changes, not a sudden jump
        self._mean = 0.95 * self._mean + 0.05 * d
        self.emit(obs.seconds, dist)

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 5:
            return {"identity.median": np.nan, "identity.spikes": np.nan}
        med = np.median(v)
        return {"identity.median": float(med),
                "identity.spikes": float(np.percentile(v, 95) / (med + 1e-3))}


class HardPoseCheck(TrackCheck):
    """Face texture stability at large yaw vs near-frontal.

    Swappers are trained mostly on frontal faces and fail at profile views
    and occlusions: appearance becomes unstable exactly there. The signal is
    the frame-to-frame appearance change weighted by how far the head is
    turned; the summary compares turned moments with frontal ones.
    """

    name = "hard_pose"
    title = "Behaviour at profile/occlusion"
    explanation = "the face becomes unstable when the head turns or something covers it, where swappers fail"

    def update(self, obs: FaceObservation) -> None:
        d = appearance_descriptor(obs)
        prev = self.previous(obs, d)
        yaw = abs(yaw_proxy(obs.face.points))
        self.emit(obs.seconds, None if prev is None else float(1.0 - np.dot(d, prev)), yaw=yaw)

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values
        yaw = signal.extra.get("yaw")
        ok = np.isfinite(v)
        if yaw is None or ok.sum() < 6 or len(yaw) != len(v):
            return {"hard_pose.ratio": np.nan}
        v, yaw = v[ok], yaw[ok]
        turned = yaw >= np.percentile(yaw, 75)
        if turned.sum() < 2 or (~turned).sum() < 2:
            return {"hard_pose.ratio": np.nan}
        return {"hard_pose.ratio": float(np.log((np.median(v[turned]) + 1e-4) / (np.median(v[~turned]) + 1e-4)))}
