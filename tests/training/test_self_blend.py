"""Self-blend augmentation: shapes, locality of the blend, determinism (no torch, no shared data)."""
from __future__ import annotations

import numpy as np
import pytest

from detector.faces.regions import FACE_OVAL
from detector.training.self_blend import blend_mask, global_augment, jpeg, make_pair, self_blend


def synthetic_face(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A procedurally drawn face-like 112x112 crop and 478 landmarks in crop coordinates.

    Face-oval landmarks lie on the drawn skin ellipse, the others inside it,
    which is all the blend mask needs.
    """
    import cv2

    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(90, 25, (112, 112, 3)), 0, 255).astype(np.uint8)  # textured background
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    cx, cy, ax, ay = 56, 54, 30 + int(rng.integers(-3, 4)), 38 + int(rng.integers(-3, 4))
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [230, 170, 140]))
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, skin, -1)
    for dx in (-12, 12):  # eyes, brows
        cv2.ellipse(img, (cx + dx, cy - 8), (6, 3), 0, 0, 360, (250, 250, 250), -1)
        cv2.circle(img, (cx + dx, cy - 8), 2, (40, 30, 20), -1)
        cv2.line(img, (cx + dx - 7, cy - 16), (cx + dx + 7, cy - 17), (60, 40, 30), 2)
    cv2.line(img, (cx, cy - 4), (cx - 3, cy + 8), (120, 80, 60), 1)  # nose
    cv2.ellipse(img, (cx, cy + 20), (10, 4), 0, 0, 180, (150, 50, 60), -1)  # mouth
    noise = rng.normal(0, 4, img.shape)  # skin texture
    img = np.clip(img.astype(np.float64) + noise, 0, 255).astype(np.uint8)

    pts = np.zeros((478, 2), dtype=np.float32)
    inner = rng.uniform(-0.8, 0.8, (478, 2))
    inner[np.hypot(inner[:, 0], inner[:, 1]) > 0.8] *= 0.5
    pts[:] = np.c_[cx + inner[:, 0] * ax, cy + inner[:, 1] * ay]
    ang = np.linspace(-np.pi / 2, 1.5 * np.pi, len(FACE_OVAL), endpoint=False)
    pts[FACE_OVAL] = np.c_[cx + ax * np.cos(ang), cy + ay * np.sin(ang)]
    return img, pts


def test_blend_shape_dtype_and_locality():
    crop, pts = synthetic_face()
    for seed in range(20):
        out, mask = self_blend(crop, pts, np.random.default_rng(seed))
        assert out.shape == crop.shape and out.dtype == np.uint8
        assert mask.shape == crop.shape[:2] and mask.dtype == np.float32
        assert 0.0 <= mask.min() and mask.max() <= 1.0
        # outside the mask the target is untouched, bit for bit
        assert np.array_equal(out[mask == 0], crop[mask == 0])
        # the blend really changes the face
        changed = np.any(out != crop, axis=2)
        assert changed.sum() > 200
        assert np.all(mask[changed] > 0)


def test_mask_covers_the_face_not_the_corners():
    crop, pts = synthetic_face(1)
    for seed in range(10):
        m = blend_mask(pts, (112, 112), np.random.default_rng(seed))
        assert m[54, 56] > 0.3  # face centre
        assert m[0, 0] == 0 and m[0, 111] == 0 and m[111, 0] == 0 and m[111, 111] == 0


def test_deterministic_with_seed():
    crop, pts = synthetic_face(2)
    a = self_blend(crop, pts, np.random.default_rng(7))
    b = self_blend(crop, pts, np.random.default_rng(7))
    c = self_blend(crop, pts, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    r1, f1 = make_pair(crop, pts, np.random.default_rng(3))
    r2, f2 = make_pair(crop, pts, np.random.default_rng(3))
    assert np.array_equal(r1, r2) and np.array_equal(f1, f2)


def test_global_augment_keeps_shape():
    crop, _ = synthetic_face(3)
    rng = np.random.default_rng(0)
    for strong in (True, False):
        for _ in range(10):
            out = global_augment(crop, rng, strong)
            assert out.shape == crop.shape and out.dtype == np.uint8
    assert jpeg(crop, 30).shape == crop.shape


def test_rejects_bad_input():
    crop, pts = synthetic_face()
    with pytest.raises(ValueError):
        self_blend(crop.astype(np.float32), pts, np.random.default_rng(0))
