"""Probe: does the face_cnn embedding of a swapped face change more smoothly over time? (ships nothing)

Live swappers smooth the rendered face over time (the dev fakes' landmarks jitter less than their own
originals', and the non-rigid optical flow inside the face is lower in 24 of 25 DeepFaceLive pairs; see
README.md here). This probe asks the same of the shipped ``face_cnn`` features: it runs
``models/face_mesh_features.onnx`` on aligned crops of the largest face sampled at ``FPS`` (default 10) and
scores per clip, on features divided by their spread over all crops,

- ``step``: the median distance between consecutive crops' vectors (log);
- ``disp``: the median distance of a crop's vector from the clip's mean vector (log);
- ``step_over_slow``: ``step`` over the median distance between vectors one second apart (log), which
  should drop when high-frequency change is smoothed away whatever the head's motion;
- ``step_over_disp``: ``step`` over ``disp`` (log).

    python experiments/cnn_temporal_probe.py [FPS]      # writes /tmp/cnn_temporal_<FPS>.json
    python experiments/stack_probe.py --manifest ../shared/data/dev/manifest.csv \\
        --scores runs/eval-stream/scores.csv --features /tmp/cnn_temporal_10.0.json --names step

Crops come from (and fill) the cache under /tmp/detector_cache; the dev clips stay outside the repository.
"""
from __future__ import annotations

import csv
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"
CACHE = Path("/tmp/detector_cache")


def _crops(args: tuple[dict, float]):
    from detector.training.faces_cache import cached_largest_face_crops

    row, fps = args
    return cached_largest_face_crops(str(MANIFEST.parent / row["path"]), fps, CACHE)


def temporal_features(times: np.ndarray, z: np.ndarray, fps: float) -> dict[str, float | None]:
    """The four features of one clip from its per-crop vectors ``z`` (already divided by their spread)."""
    step = np.linalg.norm(np.diff(z, axis=0), axis=1)
    consecutive = np.diff(times) < 1.5 / fps  # a lost face must not count as one big step
    disp = np.linalg.norm(z - z.mean(0), axis=1)
    lag = int(round(fps))
    slow = np.linalg.norm(z[lag:] - z[:-lag], axis=1) if len(z) > lag else np.array([np.nan])
    if not consecutive.any():
        return {"step": None, "disp": float(np.log(np.median(disp))), "step_over_slow": None, "step_over_disp": None}
    s = float(np.median(step[consecutive]))
    return {"step": float(np.log(s)), "disp": float(np.log(np.median(disp))),
            "step_over_slow": float(np.log(s / np.median(slow))), "step_over_disp": float(np.log(s / np.median(disp)))}


def main() -> None:
    from detector.checks.embedding import FaceMeshFeatures, FaceMeshFeaturesOptions
    from detector.fusion.logistic import roc_auc

    fps = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    rows = list(csv.DictReader(open(MANIFEST)))
    vectors = {}
    with ProcessPoolExecutor(2) as ex, FaceMeshFeatures(FaceMeshFeaturesOptions()) as model:
        for row, (times, crops, _) in zip(rows, ex.map(_crops, [(r, fps) for r in rows])):
            if len(times) >= 10:
                vectors[row["path"]] = (times, model.predict(crops)[0].astype(np.float64))
    spread = np.concatenate([v for _, v in vectors.values()]).std(0) + 1e-6
    feats = {k: temporal_features(t, v / spread, fps) for k, (t, v) in vectors.items()}
    dest = Path(f"/tmp/cnn_temporal_{fps}.json")
    dest.write_text(json.dumps(feats))
    kept = [r for r in rows if r["path"] in feats]
    y = np.array([r["label"] == "fake" for r in kept])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in kept])
    groups = [r["group"] for r in kept]
    print(f"{len(kept)} clips at {fps:g} crops/s -> {dest}")
    for name in ["step", "disp", "step_over_slow", "step_over_disp"]:
        v = np.array([np.nan if feats[r["path"]][name] is None else feats[r["path"]][name] for r in kept])
        ok = np.isfinite(v)
        below = pairs = 0
        for g in set(groups):
            idx = [j for j, gg in enumerate(groups) if gg == g and dfl[j] and ok[j]]
            fake, orig = [v[j] for j in idx if y[j]], [v[j] for j in idx if not y[j]]
            if fake and orig:
                pairs += 1
                below += np.mean(fake) < np.mean(orig)
        print(f"{name:15s} AUC {roc_auc(y[ok], v[ok]):.3f}  DFL {roc_auc(y[ok & dfl], v[ok & dfl]):.3f}  "
              f"fake<original in {below}/{pairs} DFL pairs")


if __name__ == "__main__":
    main()
