"""Checks on pixels: sharpness mismatch, blending boundary, temporal texture flicker.

All three work on the aligned 112x112 crop so their cost does not grow with
the recording's resolution, and so that face and surroundings are resampled
identically (a ratio between them then survives any scaling).
"""
from __future__ import annotations

import cv2
import numpy as np

from detector.checks.base import CheckSignal, FaceObservation, TrackCheck
from detector.faces import regions


def crop_masks(obs: FaceObservation) -> dict[str, np.ndarray]:
    """Boolean masks in crop coordinates, cached on the observation."""
    cached = getattr(obs, "_masks", None)
    if cached is not None:
        return cached
    pts = regions.transform_points(obs.face.points, obs.crop_matrix)
    size = obs.crop.shape[:2]
    oval = regions.hull_mask(pts[regions.FACE_OVAL], size)
    inner = regions.hull_mask(pts[regions.INNER], size)
    k = np.ones((5, 5), np.uint8)
    eroded = cv2.erode(oval, k, iterations=2)
    dilated = cv2.dilate(oval, k, iterations=2)
    masks = {
        "oval": oval.astype(bool),
        "inner": inner.astype(bool),
        # skin between the inner features and the oval edge: cheeks, forehead, jaw
        "skin": (eroded.astype(bool) & ~cv2.dilate(inner, k).astype(bool)),
        "edge_in": (oval.astype(bool) & ~eroded.astype(bool)),
        "edge_out": (dilated.astype(bool) & ~oval.astype(bool)),
        "outside": ~cv2.dilate(oval, k, iterations=1).astype(bool),
    }
    obs._masks = masks  # type: ignore[attr-defined]
    return masks


def _gray(obs: FaceObservation) -> np.ndarray:
    g = getattr(obs, "_gray", None)
    if g is None:
        g = cv2.cvtColor(obs.crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
        obs._gray = g  # type: ignore[attr-defined]
    return g


class SharpnessMismatchCheck(TrackCheck):
    """Face detail vs detail of its surroundings.

    Live swappers render the face at 128-256 px and resize it into the frame,
    and their decoders smooth skin: the face ends up with less (or, when
    downscaled, more) fine detail than the hair and background around it.
    """

    name = "sharpness"
    title = "Face/surroundings sharpness"
    explanation = "the face is blurrier or sharper than the hair and background around it, as when a rendered face is resized into the frame"

    def update(self, obs: FaceObservation) -> None:
        m = crop_masks(obs)
        lap = np.abs(cv2.Laplacian(_gray(obs), cv2.CV_32F, ksize=3))
        face = m["skin"] | m["inner"]
        if face.sum() < 50 or m["outside"].sum() < 50:
            self.emit(obs.seconds, None)
            return
        # log ratio of mean absolute Laplacian: scale-free, symmetric
        self.emit(obs.seconds, float(np.log((lap[face].mean() + 1.0) / (lap[m["outside"]].mean() + 1.0))))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 3:
            return {"sharpness.median": np.nan, "sharpness.flicker": np.nan}
        return {"sharpness.median": float(np.median(v)),
                "sharpness.flicker": float(np.median(np.abs(np.diff(v))))}


class BoundaryCheck(TrackCheck):
    """Colour step across the blending boundary and how much it flickers.

    A swapped face is colour-matched to the frame once per frame by the
    swapper; the match is never exact, so the step in colour between the
    face's inner skin and the band at its edge changes from frame to frame
    more than lighting on a real face does.
    """

    name = "boundary"
    title = "Blending boundary colour"
    explanation = "the colour step at the edge of the face flickers from frame to frame, as a pasted face's colour correction does"

    def update(self, obs: FaceObservation) -> None:
        m = crop_masks(obs)
        if m["skin"].sum() < 30 or m["edge_in"].sum() < 30:
            self.emit(obs.seconds, None)
            return
        lab = getattr(obs, "_lab", None)
        if lab is None:
            lab = cv2.cvtColor(obs.crop, cv2.COLOR_RGB2LAB).astype(np.float32)
            obs._lab = lab  # type: ignore[attr-defined]
        skin = lab[m["skin"]].mean(axis=0)
        edge = lab[m["edge_in"]].mean(axis=0)
        # a/b chroma step only: luminance steps come from shading on any face
        self.emit(obs.seconds, float(np.linalg.norm((skin - edge)[1:])))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 4:
            return {"boundary.step": np.nan, "boundary.flicker": np.nan}
        d = np.abs(np.diff(v))
        return {"boundary.step": float(np.median(v)), "boundary.flicker": float(np.median(d) / (np.median(v) + 1.0))}


class TemporalTextureCheck(TrackCheck):
    """Frame-to-frame texture change inside the face vs outside it.

    On a genuine recording sensor noise and compression change the face and
    its surroundings alike between frames. A swapper re-renders the face
    every frame (and often smooths it over time), so the face's fine texture
    changes at a different rate from everything around it.
    """

    name = "texture_flicker"
    title = "Face texture stability"
    explanation = "fine texture on the face changes from frame to frame at a different rate than the surroundings"

    def update(self, obs: FaceObservation) -> None:
        g = _gray(obs)
        # high-pass so that lighting and small misalignment matter less than texture
        hp = g - cv2.GaussianBlur(g, (0, 0), 1.5)
        prev = self.previous(obs, hp)
        if prev is None:
            self.emit(obs.seconds, None)
            return
        m = crop_masks(obs)
        d = np.abs(hp - prev)
        face = m["skin"]
        out = m["outside"]
        if face.sum() < 50 or out.sum() < 50:
            self.emit(obs.seconds, None)
            return
        self.emit(obs.seconds, float(np.log((d[face].mean() + 0.5) / (d[out].mean() + 0.5))))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        v = signal.values[np.isfinite(signal.values)]
        if v.size < 3:
            return {"texture_flicker.median": np.nan}
        return {"texture_flicker.median": float(np.median(v))}
