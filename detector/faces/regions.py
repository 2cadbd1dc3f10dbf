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


def align_face(image_rgb: np.ndarray, points: np.ndarray, size: int = 112,
               antialias: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``size`` x ``size`` RGB crop and the 2x3 matrix that made it (image pixels -> crop).

    A bilinear warp reads 4 pixels per output pixel whatever the scale, so a face larger than the crop comes out
    aliased: the same face filmed at two sizes gives crops of different sharpness and grain. With ``antialias``
    the face's region is first shrunk by area averaging to the crop's scale, and only the small remaining
    rotation and scale go through the bilinear warp, so a crop's detail depends on the face, not on its size in
    the frame (down to the crop's own resolution).
    """
    m = alignment_matrix(points, size)
    if antialias:
        return _antialiased_crop(image_rgb, m, size), m
    crop = cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return crop, m


def _antialiased_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale >= 1.0:  # the crop enlarges the face: nothing to alias
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # the crop's footprint in the image, with a margin for the bilinear taps
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    h, w = image.shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h or x1 - x0 > 2 * w or y1 - y0 > 2 * h:
        # the footprint misses the image, or reflects more than once: the plain warp handles that rare case
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # what lies outside the image is reflected about the image's own edge, as the plain warp's BORDER_REFLECT
    # does: take the rows/columns the reflection reads too, pad, then cut the footprint
    (lx, hx), (ly, hy) = _reflect_source(x0, x1, w), _reflect_source(y0, y1, h)
    roi = image[ly:hy, lx:hx]
    pad_t, pad_b, pad_l, pad_r = max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0)
    if pad_t or pad_b or pad_l or pad_r:
        roi = cv2.copyMakeBorder(roi, pad_t, pad_b, pad_l, pad_r, borderType=cv2.BORDER_REFLECT)
    roi = roi[y0 - (ly - pad_t):y1 - (ly - pad_t), x0 - (lx - pad_l):x1 - (lx - pad_l)]
    rh, rw = roi.shape[:2]
    sw, sh = max(1, int(round(rw * scale))), max(1, int(round(rh * scale)))
    small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = sw / rw, sh / rh
    # crop = A @ p_image + b; resize maps pixel centres, p_roi = (p_small + 0.5) / f - 0.5, and p_image = (x0, y0) + p_roi
    a = m[:, :2] @ np.diag([1.0 / fx, 1.0 / fy])
    b = m[:, :2] @ np.array([x0 + 0.5 / fx - 0.5, y0 + 0.5 / fy - 0.5], dtype=np.float64) + m[:, 2]
    m_small = np.hstack([a, b[:, None]])
    return cv2.warpAffine(small, m_small, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _reflect_source(lo: int, hi: int, n: int) -> tuple[int, int]:
    """Index range [a, b) of an axis of length ``n`` that [lo, hi) reads, once reflected at the axis's ends."""
    a = max(0, min(lo, 2 * n - hi))
    b = min(n, max(hi, -lo))
    return a, b


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    xy = points[:, :2].astype(np.float64)
    return (xy @ m[:, :2].T + m[:, 2]).astype(np.float32)


def hull_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of the points as a uint8 {0,1} mask."""
    mask = np.zeros(shape, dtype=np.uint8)
    hull = cv2.convexHull(points_xy.astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask
