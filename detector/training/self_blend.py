"""Self-blended images (SBI): pseudo-fakes made from one genuine face.

After Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images"
(CVPR 2022). A face swapper renders a new face and pastes it into the
original frame through a soft mask; whatever the swapper, the pasted region
differs from its surroundings in colour, sharpness, resampling and
compression, and the soft mask leaves a seam. SBI reproduces exactly those
generic traces by blending a *perturbed copy of the same face* back into
itself, so a classifier trained on (genuine, self-blended) pairs learns the
seam and not one swapper's identity or texture.

Everything works on the aligned 112x112 RGB crop of
:func:`detector.faces.regions.align_face` with landmarks in crop coordinates;
only numpy and OpenCV are used so the augmentation is importable (and
testable) without torch.

Two branches:

* :func:`self_blend` -> pseudo-fake: source = perturbed copy, blended into the
  untouched target through a deformed, blurred hull mask. Pixels where the
  mask is zero are left bit-identical to the input.
* :func:`global_augment` -> applied afterwards to *both* classes (the real
  crop and the blended one): colour, flip, rescale and JPEG, as the footage
  we analyse is small (50-150 px faces) and heavily compressed. Because both
  classes receive the same distribution of global changes, the only thing
  that separates them is the blend.
"""
from __future__ import annotations

import cv2
import numpy as np

from detector.faces.regions import FACE_OVAL

__all__ = ["blend_mask", "global_augment", "perturb_source", "self_blend", "jpeg"]


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (RGB in, RGB out)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - encoder failure on a valid uint8 image does not happen
        return img
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _resize_down_up(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    sw, sh = max(8, int(round(w * factor))), max(8, int(round(h * factor)))
    interp = [cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC]
    small = cv2.resize(img, (sw, sh), interpolation=interp[rng.integers(3)])
    return cv2.resize(small, (w, h), interpolation=[cv2.INTER_LINEAR, cv2.INTER_CUBIC][rng.integers(2)])


def _colour(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """RGB shift, HSV shift and brightness/contrast, scaled by ``strength``."""
    f = img.astype(np.float32)
    if rng.random() < 0.7:
        f += rng.uniform(-20, 20, size=3).astype(np.float32) * strength
    if rng.random() < 0.7:
        hsv = cv2.cvtColor(np.clip(f, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6) * strength) % 180
        hsv[..., 1] = hsv[..., 1] * (1 + rng.uniform(-0.25, 0.25) * strength)
        hsv[..., 2] = hsv[..., 2] * (1 + rng.uniform(-0.15, 0.15) * strength)
        f = cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < 0.7:
        contrast = 1 + rng.uniform(-0.2, 0.2) * strength
        brightness = rng.uniform(-20, 20) * strength
        f = (f - 128) * contrast + 128 + brightness
    return np.clip(f, 0, 255).astype(np.uint8)


def _sharpness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        sigma = rng.uniform(0.4, 1.5)
        return cv2.GaussianBlur(img, (0, 0), sigma)
    amount = rng.uniform(0.3, 1.2)
    blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.6))
    return cv2.addWeighted(img, 1 + amount, blur, -amount, 0)


def perturb_source(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The "rendered face": a copy of the crop that differs in low-level statistics.

    Each perturbation is applied with some probability, so the model sees
    seams caused by colour alone, by sharpness alone, by resampling alone and
    by combinations (a single cue must be enough to flag a blend).
    """
    src = img
    applied = False
    if rng.random() < 0.6:
        src = _colour(src, rng, strength=rng.uniform(0.3, 1.0))
        applied = True
    if rng.random() < 0.5:
        src = _sharpness(src, rng)
        applied = True
    if rng.random() < 0.5:
        # a swapper renders the face at 128-256 px, then it is warped into the
        # frame; at our crop scale that is a down-then-up resampling
        src = _resize_down_up(src, rng.uniform(0.35, 0.9), rng)
        applied = True
    if rng.random() < 0.3:
        src = jpeg(src, int(rng.integers(40, 95)))
        applied = True
    if not applied:  # never a no-op blend: that would be a "fake" identical to the real
        src = _colour(src, rng, strength=rng.uniform(0.5, 1.0))
    if rng.random() < 0.5:
        # small misregistration between the rendered face and the frame
        h, w = src.shape[:2]
        s = rng.uniform(0.96, 1.04)
        tx, ty = rng.uniform(-2.5, 2.5, size=2)
        m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], dtype=np.float32)
        src = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return src


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = mask.shape
    alpha = rng.uniform(2.0, 7.0)  # displacement in pixels
    sigma = rng.uniform(6.0, 12.0)  # smoothness of the field
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dx *= alpha / (np.abs(dx).max() + 1e-6)
    dy *= alpha / (np.abs(dy).max() + 1e-6)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, gx + dx, gy + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def blend_mask(points_xy: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Soft blending mask in [0, 1] (float32, ``shape``) from crop-space landmarks.

    Hull of all landmarks or of the face oval (a swapper's mask covers the
    face up to roughly the oval, sometimes only the inner face), elastically
    deformed, eroded or dilated, blurred and scaled by a blend ratio.
    """
    h, w = shape
    pts = points_xy[:, :2]
    choice = rng.random()
    if choice < 0.5:
        sel = pts[FACE_OVAL]
    elif choice < 0.8:
        sel = pts
    else:
        # inner face only: shrink the oval towards its centre (DFL "face" masks)
        oval = pts[FACE_OVAL]
        c = oval.mean(axis=0)
        sel = c + (oval - c) * rng.uniform(0.7, 0.9)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(sel).astype(np.int32)), 255)
    m = _elastic(mask.astype(np.float32) / 255.0, rng)
    k = int(rng.integers(1, 8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    if rng.random() < 0.5:
        m = cv2.erode(m, kernel)
    else:
        m = cv2.dilate(m, kernel)
    m = cv2.GaussianBlur(m, (0, 0), rng.uniform(1.0, 6.0))
    # a faint but sharp edge and a wide feathered one are both realistic;
    # ratios < 1 mimic swappers that mix some of the original face back in
    ratio = float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))
    m = np.clip(m, 0.0, 1.0) * ratio
    m[m < 1e-3] = 0.0  # exact zeros: outside the mask the target stays untouched
    return m.astype(np.float32)


def self_blend(crop: np.ndarray, points_xy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-fake of one aligned crop. Returns ``(blended uint8 HxWx3, mask float32 HxW)``.

    Where ``mask == 0`` the output equals ``crop`` exactly.
    """
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 crop, got {crop.dtype} {crop.shape}")
    src = perturb_source(crop, rng)
    mask = blend_mask(points_xy, crop.shape[:2], rng)
    m3 = mask[..., None]
    out = m3 * src.astype(np.float32) + (1.0 - m3) * crop.astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[mask == 0] = crop[mask == 0]
    return out, mask


def global_augment(img: np.ndarray, rng: np.random.Generator, strong: bool = True) -> np.ndarray:
    """The augmentation both classes get, after any blending.

    Mimics how the analysed footage reaches the model: a 50-150 px face in a
    compressed call recording, resampled to the 112 px crop. ``strong=False``
    keeps only a mild version (for the clean held-out check).
    """
    out = img
    if rng.random() < 0.5:
        out = out[:, ::-1].copy()
    if rng.random() < 0.5:
        out = _colour(out, rng, strength=0.5)
    if not strong:
        return out
    if rng.random() < 0.7:
        # face width in the crop is ~80 px; 0.45-1.0 covers 36-80 px faces
        out = _resize_down_up(out, rng.uniform(0.45, 1.0), rng)
    if rng.random() < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.9))
    if rng.random() < 0.15:
        noise = rng.normal(0, rng.uniform(1, 4), out.shape).astype(np.float32)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out


def make_pair(crop: np.ndarray, points_xy: np.ndarray, rng: np.random.Generator,
              strong: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(real, fake) training views of one crop, each with its own global augmentation."""
    fake, _ = self_blend(crop, points_xy, rng)
    return global_augment(crop, rng, strong), global_augment(fake, rng, strong)
