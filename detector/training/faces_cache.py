"""Landmark genuine face photos once and cache their aligned crops under /tmp.

The photos are third-party research data: the cache lives outside the
repository (``/tmp`` by default) and is never committed. Landmarking is the
slow step (MediaPipe Face Mesh in still-image mode, tens of ms per photo), so
it is done once per photo folder and reused by every training/eval run.

Crops use :func:`detector.faces.regions.align_face` with one bilinear warp,
the crops the inference pipeline made until session 10 (the shipped ``sbi``
model and the research probes were trained on them); scans now anti-alias
faces larger than the crop (``ScanOptions.crop_antialias``), so a model
retrained from this cache would need ``antialias=True`` here, and a new cache
name. The landmarks are stored in crop coordinates so the self-blend mask can
be drawn directly on the crop.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import cv2
import numpy as np

from detector.faces.regions import align_face, transform_points

log = logging.getLogger(__name__)

#: Dev-manifest groups whose *genuine* clips the shipped model was trained on
#: (fixed before any dev evaluation; never their fakes). Photos alone leave a
#: large photo-to-video domain gap, so half of the DeepFaceLive source
#: speakers, the LivePortrait driving clips and the FF++ actors clips (groups
#: without fakes) add real video frames. Every dev number is reported with
#: these groups excluded (sbi_eval does so by default).
TRAIN_VIDEO_GROUPS = (
    "dfl-src00", "dfl-src04", "dfl-src06", "dfl-src09", "dfl-src14", "dfl-src18", "dfl-src23", "dfl-src26",
    "dfl-src30", "dfl-src33", "dfl-src37", "dfl-src45",
    "lp-d0", "lp-d10", "lp-d12", "lp-d14", "lp-d19", "lp-d6",
    "ffpp-actor-01", "ffpp-actor-07", "ffpp-actor-09", "ffpp-actor-18",
)

#: pixels of constant padding before landmarking: UTKFace crops put the chin
#: at the bottom edge, and Face Mesh misses faces that touch the border.
PAD = 60
CROP = 112


def cache_path(faces_dir: Path, cache_dir: Path) -> Path:
    key = hashlib.sha1(str(faces_dir.resolve()).encode()).hexdigest()[:10]
    return cache_dir / f"sbi_faces_{key}_{CROP}.npz"


def _landmark_photos(paths: list[Path]) -> tuple[list[str], np.ndarray, np.ndarray]:
    os.environ.setdefault("GLOG_minloglevel", "2")
    from mediapipe.python.solutions import face_mesh as mp_face_mesh

    names, crops, points = [], [], []
    # Still-image mode: every photo is a different person, tracking between
    # them would carry a previous face's mesh onto the next photo.
    with mp_face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                               min_detection_confidence=0.5) as mesh:
        for i, p in enumerate(paths):
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            padded = cv2.copyMakeBorder(rgb, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            res = mesh.process(padded)
            if not res.multi_face_landmarks:
                continue
            h, w = padded.shape[:2]
            pts = np.array([(q.x * w - PAD, q.y * h - PAD, q.z * w) for q in res.multi_face_landmarks[0].landmark],
                           dtype=np.float32)
            # Align on the *unpadded* photo: align_face reflects at the border,
            # which looks like continuing hair/skin rather than a black frame.
            crop, m = align_face(rgb, pts, CROP)
            names.append(p.name)
            crops.append(crop)
            points.append(transform_points(pts, m))
            if (i + 1) % 500 == 0:
                log.info("landmarked %d/%d photos (%d faces)", i + 1, len(paths), len(names))
    return names, np.stack(crops), np.stack(points).astype(np.float32)


def load_face_crops(faces_dir: Path, cache_dir: Path = Path("/tmp/detector_cache"),
                    limit: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names, aligned crops (N,112,112,3) uint8 RGB and crop-space landmarks (N,478,2).

    Photos where Face Mesh finds no face are dropped. ``limit`` (for quick
    experiments and tests) bypasses the cache.
    """
    faces_dir = Path(faces_dir)
    paths = sorted(faces_dir.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no .jpg photos in {faces_dir}")
    if limit is not None:
        return _landmark_photos(paths[:limit])
    cache_dir.mkdir(parents=True, exist_ok=True)
    cp = cache_path(faces_dir, cache_dir)
    if cp.exists():
        z = np.load(cp, allow_pickle=False)
        return [str(n) for n in z["names"]], z["crops"], z["points"]
    log.info("landmarking %d photos from %s (cached to %s)", len(paths), faces_dir, cp)
    names, crops, points = _landmark_photos(paths)
    tmp = cp.with_suffix(".tmp.npz")
    np.savez(tmp, names=np.array(names), crops=crops, points=points)
    tmp.replace(cp)
    return names, crops, points


def split_names(names: list[str], val_fraction: float = 0.1) -> np.ndarray:
    """Boolean held-out mask, a deterministic function of each file name.

    Hashing the name (not a shuffled index) keeps the split stable when the
    photo set or the landmarking success changes, so the accuracy test and the
    training run always agree on which photos were never trained on.
    """
    def bucket(n: str) -> float:
        return int(hashlib.md5(n.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    return np.array([bucket(n) < val_fraction for n in names], dtype=bool)


def largest_face_crops(video_path: str, fps: float, size: int = CROP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, aligned crops, crop-space landmarks) of the largest face in each sampled frame.

    A fresh detector per clip (its tracking state must not leak across
    clips), the same video-mode landmarks inference uses; it searches for new
    faces on every frame (no timestamps given), where a scan does once a second,
    which leaves the largest face's landmarks the same while it is tracked.
    """
    from fractions import Fraction

    from detector.faces.landmarks import LandmarkOptions, create_landmark_detector
    from detector.video import open_video

    times, crops, points = [], [], []
    with create_landmark_detector(LandmarkOptions()) as det, open_video(video_path) as src:
        for frame in src.frames(rate=Fraction(fps).limit_denominator(1000)):
            faces = det.detect(frame.image)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.height)
            crop, m = align_face(frame.image, face.points, size)
            times.append(frame.seconds)
            crops.append(crop)
            points.append(transform_points(face.points, m))
    return (np.asarray(times, dtype=np.float64),
            np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
            np.stack(points).astype(np.float32) if points else np.zeros((0, 478, 2), np.float32))


def cached_largest_face_crops(video_path: str, fps: float, cache_dir: Path | None
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`largest_face_crops`, cached on disk by path, mtime, size and fps (``None``: no cache)."""
    cp = None
    if cache_dir is not None:
        st = os.stat(video_path)
        key = hashlib.sha1(f"{video_path}|{st.st_mtime_ns}|{st.st_size}|{fps}".encode()).hexdigest()[:16]
        cp = cache_dir / f"video_crops_{key}.npz"
        if cp.exists():
            z = np.load(cp)
            return z["times"], z["crops"], z["points"]
    t, c, p = largest_face_crops(video_path, fps)
    if cp is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cp.with_suffix(".tmp.npz")
        np.savez(tmp, times=t, crops=c, points=p)
        tmp.replace(cp)  # atomic: a killed run never leaves a half-written cache file
    return t, c, p


def video_face_crops(video_path: str, fps: float, cache_dir: Path = Path("/tmp/detector_cache")
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops and crop-space landmarks of the largest face of a *genuine* clip.

    Uses the default (video-mode) landmark detector, exactly as inference
    does, so landmark jitter and alignment match what the model will see.
    Only ever call this on real clips: the model must never train on fakes.
    """
    _, c, p = cached_largest_face_crops(video_path, fps, cache_dir)
    return c, p


if __name__ == "__main__":  # pragma: no cover - manual cache warm-up
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=Path, required=True)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    a = ap.parse_args()
    n, c, _ = load_face_crops(a.faces, a.cache_dir)
    print(f"{len(n)} faces cached, held-out {int(split_names(n).sum())}")
