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


#: blur (Gaussian sigma, in pixels) assumed of a camera's own pixels: an anti-aliased crop of a face is blurred to
#: what the same camera would have recorded of it at the crop's scale (see :func:`align_face`)
SOURCE_BLUR_PX = 0.5


def align_face(image_rgb: np.ndarray, points: np.ndarray, size: int = 112,
               antialias: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``size`` x ``size`` RGB crop and the 2x3 matrix that made it (image pixels -> crop).

    A bilinear warp reads 4 pixels per output pixel whatever the scale, so a face larger than the crop comes out
    aliased: grainy with false detail, while the same face filmed at the crop's size comes out smooth. With
    ``antialias`` the face's region is first blurred by a Gaussian of sigma ``SOURCE_BLUR_PX * sqrt(d**2 - 1)``
    (``d`` = how many image pixels one crop pixel spans): the blur that turns a camera's pixels into pixels ``d``
    times larger, as if the face had been filmed at the crop's size. Then the same warp cuts the crop. The blur
    grows smoothly from nothing at ``d = 1`` and does not depend on where the face sits on the pixel grid, so the
    crop changes smoothly as a face moves or grows.
    """
    m = alignment_matrix(points, size)
    if antialias:
        return _antialiased_crop(image_rgb, m, size), m
    crop = cv2.warpAffine(image_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return crop, m


def antialias_sigma(m: np.ndarray) -> float:
    """Gaussian sigma (image pixels) :func:`align_face` blurs with before the warp ``m``; 0 if it does not shrink."""
    d = 1.0 / max(float(np.sqrt(abs(np.linalg.det(m[:, :2])))), 1e-9)
    return SOURCE_BLUR_PX * float(np.sqrt(d * d - 1.0)) if d > 1.0 else 0.0


def _antialiased_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    sigma = antialias_sigma(m)
    if sigma == 0.0:  # the crop does not shrink the face: nothing to alias
        return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # blur only the crop's footprint in the image, with a margin for the kernel and the bilinear taps
    margin = int(np.ceil(3.0 * sigma)) + 2
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64) @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    h, w = image.shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h or x1 - x0 > 2 * w or y1 - y0 > 2 * h:
        # a footprint off the frame or larger than it (not a face Face Mesh found): blur the whole frame
        blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        return cv2.warpAffine(blurred, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # what lies outside the image is reflected about the image's own edge, as the plain warp's BORDER_REFLECT
    # does: take the rows/columns the reflection reads too, pad, then cut the footprint
    (lx, hx), (ly, hy) = _reflect_source(x0, x1, w), _reflect_source(y0, y1, h)
    roi = image[ly:hy, lx:hx]
    pad_t, pad_b, pad_l, pad_r = max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0)
    if pad_t or pad_b or pad_l or pad_r:
        roi = cv2.copyMakeBorder(roi, pad_t, pad_b, pad_l, pad_r, borderType=cv2.BORDER_REFLECT)
    roi = roi[y0 - (ly - pad_t):y1 - (ly - pad_t), x0 - (lx - pad_l):x1 - (lx - pad_l)]
    roi = cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    # the footprint starts at the whole pixel (x0, y0): the same matrix, moved by that many pixels
    m_roi = m.astype(np.float64).copy()
    m_roi[:, 2] += m_roi[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(roi, m_roi, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


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
