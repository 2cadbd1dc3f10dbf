"""Session 13's second probe: the face network also reads the frame beside the face, as a reference (ships nothing).

The crop-size probe (``face_cnn_crop_probe.py``) found that the more of the recording's fine detail the network
sees, the worse its read-out judges unseen footage, which suggests that much of what its pooled features carry is
the recording (camera noise, the encoder's blocks and smoothing), not the face. A swapper changes the face and
leaves the rest of the frame alone. So this gives the fusion a reference from the same frames: for every sampled
crop the network also reads a *context* crop, cut with the same alignment (scale and rotation) but shifted sideways
by 1.25 crop widths, to the side of the face that lies further inside the frame (the wall, the room, the shoulder
beside the head), anti-aliased the same way. Its 448 pooled values join the check's vector (``face_cnn.v896`` to
``v1343``, in the same bounded block), so the fusion can weigh the face's features against the recording's::

    python experiments/face_cnn_context_probe.py --out runs/eval-ctx --copies-dir runs/eval-aug/copies
    python experiments/fold_assignment_spread.py --cache runs/eval-ctx/features.jsonl --copies-dir runs/eval-aug/copies

The rule it was judged by and the results are in ``experiments/README.md``. The feature cache's key does not know
about the context crop, so use an ``--out`` of its own. The patched ``update`` cuts the context crop for every
analysed frame, not only the sampled ones (same features, about five times the crop work), so the probe is no
measure of speed.

``--geometry`` measures instead, on one frame a second of every clip (first 10 s), how much of each context crop's
footprint lies inside the frame (the rest is filled by reflecting the frame, as every aligned crop's border is) and
how high the face is in the pipeline's 112 px crop::

    python experiments/face_cnn_context_probe.py --geometry
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import detector.checks.embedding as embedding  # noqa: E402
from detector.checks.base import FaceObservation, SampledCropCheck  # noqa: E402
from detector.checks.embedding import VIEWS, FaceAppearanceCheck  # noqa: E402
from detector.eval_cli import run_eval  # noqa: E402
from detector.faces.regions import _antialiased_crop, alignment_matrix  # noqa: E402

#: tells the eval's ``spawn`` workers (which re-run this module's top level) to install the probe too
ENV = "FACE_CNN_CONTEXT_PROBE"
CROP = 112
#: the context crop's shift, in crop widths: its near edge then lies 0.75 crop widths (about 1.3 face widths)
#: from the face's centre, past the ear
SHIFT = 1.25


def context_matrix(points: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """The face's alignment shifted sideways, to the side whose shifted centre lies further inside the frame."""
    m = alignment_matrix(points, CROP)
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    h, w = image_shape[:2]
    best, best_room = None, -np.inf
    for sign in (1.0, -1.0):
        cx, cy = inv @ np.array([CROP / 2 + sign * SHIFT * CROP, CROP / 2, 1.0])
        room = min(cx, w - cx, cy, h - cy)  # distance of the context crop's centre to the frame's edge
        if room > best_room:
            best_room = room
            best = m.copy()
            best[0, 2] -= sign * SHIFT * CROP  # crop x' = x - shift: the crop now shows what lay beside it
    return best


def inside_share(m: np.ndarray, shape: tuple[int, ...], n: int = 16) -> float:
    """Share of the crop ``m`` cuts (``CROP`` px) whose pixels map inside an image of ``shape``."""
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    g = (np.arange(n) + 0.5) * CROP / n
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) @ inv[:, :2].T + inv[:, 2]
    h, w = shape[:2]
    return float(np.mean((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)))


def geometry(manifest: Path) -> str:
    """Per source: the context footprint's share inside the frame, and the face's height in the 112 px crop."""
    from collections import defaultdict

    from detector.analysis import landmark_options
    from detector.evaluation import read_manifest
    from detector.faces.landmarks import create_landmark_detector
    from detector.options import ScanOptions
    from detector.video import PyAVSource

    share, in_crop = defaultdict(list), defaultdict(list)
    with create_landmark_detector(landmark_options(ScanOptions())) as det:
        for row in read_manifest(manifest):
            s, hs = [], []
            with PyAVSource(row.path, max_side=ScanOptions().max_side) as src:
                for frame in src.frames(1):
                    if frame.seconds >= 10:
                        break
                    faces = det.detect(frame.image, seconds=frame.seconds)
                    if faces:
                        f = max(faces, key=lambda x: x.height)
                        m = alignment_matrix(f.points, CROP)
                        s.append(inside_share(context_matrix(f.points, frame.image.shape), frame.image.shape))
                        hs.append(f.height * float(np.sqrt(abs(np.linalg.det(m[:, :2])))))
            if s:
                share[row.source].append(float(np.median(s)))
                in_crop[row.source].append(float(np.median(hs)))
    lines = []
    for src in sorted(share):
        v = np.array(share[src])
        lines.append(f"{src}: {len(v)} clips; context inside the frame: median {np.median(v):.2f}, "
                     f"under half in {int(np.sum(v < 0.5))}; face height in the 112 px crop: median "
                     f"{np.median(in_crop[src]):.1f} px")
    allh = np.concatenate([np.array(v) for v in in_crop.values()])
    lines.append(f"all clips: face height in the 112 px crop median {np.median(allh):.1f} px "
                 f"(range {allh.min():.1f}-{allh.max():.1f})")
    return "\n".join(lines)


def install() -> None:
    embedding.VECTOR_LENGTH = embedding.FEATURE_COUNT * (len(VIEWS) + 1)

    def update(self: FaceAppearanceCheck, obs: FaceObservation) -> None:
        if obs.crop is not None and obs.face is not None:
            ctx = _antialiased_crop(obs.image, context_matrix(obs.face.points, obs.image.shape), CROP)
            obs = dataclasses.replace(obs, crop=np.concatenate([obs.crop, ctx], axis=1))  # (112, 224, 3)
        SampledCropCheck.update(self, obs)

    def score_batch(self: FaceAppearanceCheck, times: list[float], crops: np.ndarray) -> None:
        face, ctx = crops[:, :, :CROP], crops[:, :, CROP:]
        feats, flags = self.model.predict(face, VIEWS[0])
        feats = np.concatenate([feats] + [self.model.predict(face, f)[0] for f in VIEWS[1:]]
                               + [self.model.predict(ctx, 1.0)[0]], axis=1)
        for t, f, flag in zip(times, feats, flags):
            self.emit(t, float(flag))
            self._vectors += f.astype(np.float16).tobytes()

    FaceAppearanceCheck.update = update  # type: ignore[method-assign]
    FaceAppearanceCheck.score_batch = score_batch  # type: ignore[method-assign]


if os.environ.get(ENV):
    install()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=Path("../shared/data/dev/manifest.csv"))
    ap.add_argument("--out", type=Path, help="the eval's output folder (required unless --geometry)")
    ap.add_argument("--geometry", action="store_true", help="measure where the context crops fall; no eval")
    ap.add_argument("--copies-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.geometry:
        print(geometry(a.manifest))
        return
    if a.out is None:
        ap.error("--out is required")
    if not os.environ.get(ENV):
        os.environ[ENV] = "1"
        install()
    print(run_eval(a.manifest, a.out, workers=a.workers, copies_dir=a.copies_dir))


if __name__ == "__main__":
    main()
