"""Video-level validation of the self-blend face model on the dev clips.

``python -m detector.training.sbi_eval --manifest ../shared/data/dev/manifest.csv``

For every clip: sample frames (4 fps by default), landmark them with the
default detector, keep the largest face, align it exactly as the pipeline
does, feed the crops through :class:`detector.checks.learned.LearnedArtifactCheck`
(the production check, so sampling and batching are the same code) and
summarise the track with its ``summarize``. Prints the video-level ROC AUC
(fake vs real) of every summary feature, overall and per source, plus the
model's cost per crop on one thread.

This is validation only: nothing is fitted on the dev clips. Aligned crops
are cached under ``/tmp`` (never in the repository, the clips are
third-party) so re-evaluating a new model does not re-run landmarks.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from detector.checks.base import CheckContext, FaceObservation
from detector.checks.learned import LearnedArtifactCheck, SBIModel, SBIModelOptions, default_models_dir
from detector.fusion.logistic import roc_auc as _roc_auc
from detector.training.faces_cache import TRAIN_VIDEO_GROUPS, cached_largest_face_crops

log = logging.getLogger(__name__)


def roc_auc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """ROC AUC of positive against negative scores (ties count one half, non-finite dropped)."""
    pos = np.asarray(scores_pos, dtype=np.float64).ravel()
    neg = np.asarray(scores_neg, dtype=np.float64).ravel()
    return _roc_auc(np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)], np.r_[pos, neg])


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["abspath"] = str((path.parent / r["path"]).resolve())
    return rows


def clip_crops(video_path: str, fps: float, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(times (N,), crops (N,112,112,3)) of the largest face at ``fps``, cached (shared with training)."""
    t, c, _ = cached_largest_face_crops(video_path, fps, cache_dir)
    return t, c


def score_clip(model: SBIModel, times: np.ndarray, crops: np.ndarray, min_interval: float) -> dict[str, float]:
    """Run the production check over one clip's crops and summarise the track."""
    check = LearnedArtifactCheck(CheckContext(models={"sbi": model}), min_interval=min_interval)
    for t, c in zip(times, crops):
        obs = FaceObservation(track_id=0, pts=Fraction(float(t)).limit_denominator(100000), image=c,
                              face=None, crop=c)  # type: ignore[arg-type]
        check.update(obs)
    return LearnedArtifactCheck.summarize(check.finalize())


def ms_per_crop(model_path: Path, n: int = 64, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall ms per crop on one intra-op thread, batch 16."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
    with SBIModel(SBIModelOptions(model_path=model_path, intra_op_threads=1, batch_size=16)) as m:
        m.predict(crops[:16])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            m.predict(crops)
            best = min(best, (time.perf_counter() - t0) / n * 1000.0)
    return best


def evaluate(manifest: Path, model_path: Path, fps: float, min_interval: float, cache_dir: Path | None,
             exclude_groups: set[str]) -> dict[str, dict[str, float]]:
    rows = [r for r in read_manifest(manifest) if r["group"] not in exclude_groups]
    feats: list[dict[str, float]] = []
    with SBIModel(SBIModelOptions(model_path=model_path)) as model:
        for r in rows:
            times, crops = clip_crops(r["abspath"], fps, cache_dir)
            f = score_clip(model, times, crops, min_interval)
            f["n_crops"] = float(len(crops))
            feats.append(f)
            log.info("%-55s %-5s n=%3d mean=%+.2f", r["path"], r["label"], len(crops), f["sbi.mean"])
    labels = np.array([r["label"] == "fake" for r in rows])
    # DeepFaceLive fakes are judged against DeepFaceLive reals, FF++ fakes
    # against all FF++ reals (the actors clips are the same c40 footage)
    subsets = {
        "overall": np.ones(len(rows), bool),
        "DeepFaceLive": np.array([r["source"] == "DeepFaceLive" for r in rows]),
        "FF++": np.array([r["source"].startswith("FaceForensics++") for r in rows]),
    }
    keys = [k for k in feats[0] if k.startswith("sbi.")]
    result: dict[str, dict[str, float]] = {}
    for name, sel in subsets.items():
        result[name] = {}
        for k in keys:
            v = np.array([f[k] for f in feats])
            result[name][k] = roc_auc(v[sel & labels], v[sel & ~labels])
        result[name]["n_fake"] = float((sel & labels).sum())
        result[name]["n_real"] = float((sel & ~labels).sum())
    result["_per_clip"] = {r["path"]: f["sbi.mean"] for r, f in zip(rows, feats)}
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detector.training.sbi_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=default_models_dir() / "sbi_face.onnx")
    ap.add_argument("--fps", type=float, default=4.0, help="frames per second to landmark (default 4)")
    ap.add_argument("--min-interval", type=float, default=None,
                    help="check sampling interval in s (default: 1/fps, i.e. every landmarked frame)")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"),
                    help="where aligned dev crops are cached ('' disables)")
    ap.add_argument("--exclude-groups", default=",".join(TRAIN_VIDEO_GROUPS),
                    help="comma-separated manifest groups to leave out (default: the groups whose real clips "
                         "the shipped model trained on; '' for all)")
    ap.add_argument("--per-clip", action="store_true", help="print every clip's mean logit")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.per_clip else logging.WARNING, format="%(message)s")
    os.environ.setdefault("GLOG_minloglevel", "2")
    cache = Path(a.cache_dir) if str(a.cache_dir) else None
    min_interval = a.min_interval if a.min_interval is not None else 1.0 / a.fps
    t0 = time.time()
    res = evaluate(a.manifest, a.model, a.fps, min_interval, cache,
                   {g for g in a.exclude_groups.split(",") if g})
    per_clip = res.pop("_per_clip")
    print(f"model {a.model}  fps={a.fps} min_interval={min_interval:.3f}s  ({time.time() - t0:.0f}s)")
    keys = [k for k in res["overall"] if k.startswith("sbi.")]
    print(f"{'subset':14s} {'fake':>4s} {'real':>4s} " + " ".join(f"{k:>12s}" for k in keys))
    for name, r in res.items():
        print(f"{name:14s} {int(r['n_fake']):4d} {int(r['n_real']):4d} "
              + " ".join(f"{r[k]:12.3f}" for k in keys))
    if a.per_clip:
        for p, v in per_clip.items():
            print(f"  {v:+7.3f}  {p}")
    print(f"model cost: {ms_per_crop(a.model):.2f} ms per crop (1 thread, batch 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
