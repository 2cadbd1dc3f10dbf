"""Named Face Mesh landmark index sets and the aligned face crop.

The crop is shared by every learned model (training and inference must use
the exact same geometry) and by the evidence thumbnails.
"""
from __future__ import annotations

import numpy as np
import cv2

# Face oval, in order around the face (MediaPipe FACEMESH_FACE_OVAL).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
# Inner face: eyes, brows, nose and mouth, the part a swapper re-renders most.
LEFT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
RIGHT_EYE = [362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398]
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
NOSE = [1, 2, 98, 327, 168, 6, 197, 195, 5, 4, 45, 275]
BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
INNER = sorted(set(LEFT_EYE + RIGHT_EYE + LIPS + NOSE + BROWS))
# Rigid-ish anchors (forehead, nose bridge, eye corners, cheekbones) for head motion.
RIGID = [10, 151, 9, 8, 168, 6, 197, 195, 33, 133, 362, 263, 234, 454, 127, 356]

# 5-point alignment: eye centres (corner means), nose tip, mouth corners.
_EYE_L = (33, 133)
_EYE_R = (362, 263)
_NOSE = 1
_MOUTH = (61, 291)

# ArcFace 112x112 template, loosened (x0.75 about the centre, shifted up 6 px)
# so the whole face oval *and* a band of surrounding skin/hair/background is
# inside the crop: the blending boundary must be visible to the models.
_ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)
TEMPLATE_112 = ((_ARCFACE - 56.0) * 0.75 + 56.0 - np.array([0.0, 6.0], dtype=np.float32)).astype(np.float32)


def five_points(points: np.ndarray) -> np.ndarray:
    p = points[:, :2]
    return np.stack([
        p[list(_EYE_L)].mean(axis=0), p[list(_EYE_R)].mean(axis=0), p[_NOSE],
        p[_MOUTH[0]], p[_MOUTH[1]],
    ]).astype(np.float32)


def alignment_matrix(points: np.ndarray, size: int = 112) -> np.ndarray:
    """2x3 similarity transform from image pixels to the aligned crop."""
    dst = TEMPLATE_112 * (size / 112.0)
    m, _ = cv2.estimateAffinePartial2D(five_points(points), dst, method=cv2.LMEDS)
    if m is None:  # degenerate landmarks; fall back to a bbox fit
        src = five_points(points)
        s = np.linalg.norm(dst[1] - dst[0]) / max(np.linalg.norm(src[1] - src[0]), 1e-3)
        t = dst.mean(axis=0) - s * src.mean(axis=0)
        m = np.array([[s, 0, t[0]], [0, s, t[1]]], dtype=np.float64)
    return m


def align_face(image_rgb: np.ndarray, points: np.ndarray, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``size`` x ``size`` RGB crop and the 2x3 matrix that made it."""
    m = alignment_matrix(points, size)
    crop = cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return crop, m


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    xy = points[:, :2].astype(np.float64)
    return (xy @ m[:, :2].T + m[:, 2]).astype(np.float32)


def hull_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of the points as a uint8 {0,1} mask."""
    mask = np.zeros(shape, dtype=np.uint8)
    hull = cv2.convexHull(points_xy.astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask
