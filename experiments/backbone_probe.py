"""Does a *pretrained* face CNN carry face-swap evidence on the dev clips? (experiment, ships nothing)

No pretrained ImageNet or face-recognition weights can be downloaded here. One
pretrained face CNN does ship inside a wheel we already depend on: MediaPipe's
Face Mesh network (``mediapipe/modules/face_landmark/face_landmark.tflite``,
Apache-2.0, 192x192 input). This script runs it on aligned face crops, pools
four of its intermediate layers into one 448-value vector per crop, and asks
two questions with linear heads:

1. **supervised linear probe**: fitted on the dev set's own real and fake clips
   (mean vector per clip), grouped cross-validation with groups merged by
   shared swap identity (as ``detector.training.supervised_probe`` does);
2. **self-blended linear head**: fitted only on genuine photos and their
   self-blends (``detector.training.self_blend``), then scored on the dev
   clips (mean of per-crop logits): the SBI recipe of issue 5 on a pretrained
   backbone, never seeing a fake.

It needs the TFLite interpreter (``ai-edge-litert``, not a project
dependency: inference runs ONNX only), so it runs in a venv of its own. It
reads crops from the cache that ``python -m detector.training.supervised_probe``
(15 fps) and ``detector.training.sbi_train`` fill under /tmp/detector_cache,
landmarking what is missing::

    python3.11 -m venv /tmp/lvenv && /tmp/lvenv/bin/pip install ai-edge-litert -e .
    /tmp/lvenv/bin/python experiments/backbone_probe.py --manifest ../shared/data/dev/manifest.csv
"""
from __future__ import annotations

import argparse
import csv
import glob
import sys
from pathlib import Path

import cv2
import numpy as np

from detector.evaluation import group_folds
from detector.fusion.logistic import fit_logistic
from detector.training.faces_cache import cached_largest_face_crops, split_names
from detector.training.sbi_eval import read_manifest, roc_auc
from detector.training.self_blend import make_pair
from detector.training.supervised_probe import merged_groups

# activations after the PReLU of four stages (48, 24, 12 and 6 px grids)
LAYERS = {"p_re_lu_6": True, "p_re_lu_9": True, "p_re_lu_12": False, "p_re_lu_14": False}  # name: also pool std


class Backbone:
    def __init__(self, tflite: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(str(tflite), experimental_preserve_all_tensors=True, num_threads=2)
        self.it.allocate_tensors()
        by_name = {d["name"]: d["index"] for d in self.it.get_tensor_details()}
        self.layers = [(by_name[n], std) for n, std in LAYERS.items()]
        self.input = self.it.get_input_details()[0]["index"]

    def features(self, crops: np.ndarray) -> np.ndarray:
        out = []
        for im in crops:
            x = cv2.resize(im, (192, 192), interpolation=cv2.INTER_LINEAR).astype(np.float32)[None] / 255.0
            self.it.set_tensor(self.input, x)
            self.it.invoke()
            f = []
            for idx, std in self.layers:
                a = self.it.get_tensor(idx)[0]
                f.append(a.mean((0, 1)))
                if std:
                    f.append(a.std((0, 1)))
            out.append(np.concatenate(f))
        return np.asarray(out, np.float32)


def rankdata(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x, kind="mergesort"), kind="mergesort").astype(float)


def main(argv: list[str] | None = None) -> int:
    import mediapipe  # noqa: F401  (only to locate the wheel's model file)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--every", type=int, default=3, help="use every n-th cached crop")
    ap.add_argument("--photos", type=int, default=3000, help="genuine photos for the self-blended head")
    ap.add_argument("--fusion-scores", type=Path,
                    help="scores.csv of `detector eval` (out-of-fold): also print the AUC of the rank average with it")
    ap.add_argument("--no-self-blend", action="store_true", help="skip the self-blended head")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    ap.add_argument("--tflite", type=Path,
                    default=Path(mediapipe.__file__).parent / "modules/face_landmark/face_landmark.tflite")
    a = ap.parse_args(argv)
    net = Backbone(a.tflite)

    rows = read_manifest(a.manifest)
    feats = [net.features(cached_largest_face_crops(r["abspath"], a.fps, a.cache_dir)[1][::a.every]) for r in rows]
    y = np.array([r["label"] == "fake" for r in rows])
    subsets = {"overall": np.ones(len(rows), bool),
               "DeepFaceLive": np.array([r["source"] == "DeepFaceLive" for r in rows])}
    has = np.array([len(f) > 0 for f in feats])

    def report(title: str, s: np.ndarray) -> None:
        print(title + "  " + "  ".join(f"{k} {roc_auc(s[m & has & y], s[m & has & ~y]):.3f}" for k, m in subsets.items()))

    # 1. supervised linear probe on clip means, grouped CV (3 fold assignments averaged)
    groups = merged_groups(rows, "celeb model")
    x = np.stack([f.mean(0) if len(f) else np.zeros(feats[has.argmax()].shape[1], np.float32) for f in feats])
    for l2 in (1.0, 10.0, 100.0):
        s = np.zeros(len(rows))
        for seed in range(3):
            for test in group_folds(groups, 5, seed):
                train = ~test & has  # fit_logistic standardises on the training fold itself
                s[test] += fit_logistic(x[train], y[train].astype(float), l2=l2).decision(x[test])
        report(f"supervised linear probe (dev real+fake, grouped CV, l2={l2:g}):", s)
        if a.fusion_scores:
            with open(a.fusion_scores, newline="") as f:
                fused = {r["path"]: float(r["score"]) if r["score"] else np.nan for r in csv.DictReader(f)}
            other = np.array([fused.get(r["path"], np.nan) for r in rows])
            both = has & np.isfinite(other)
            avg = np.full(len(rows), np.nan)
            avg[both] = rankdata(s[both]) + rankdata(other[both])
            report("  rank average with the fusion's out-of-fold scores:", avg)

    # 2. head fitted on genuine photos vs their self-blends only
    if a.no_self_blend:
        return 0
    cache = sorted(glob.glob(str(a.cache_dir / "sbi_faces_*_112.npz")))
    if not cache:
        print("no photo crop cache (run detector.training.sbi_train once); skipping the self-blended head")
        return 0
    z = np.load(cache[0])
    names = [str(n) for n in z["names"]]
    rng = np.random.default_rng(0)
    held = split_names(names)
    train_idx = rng.permutation(np.where(~held)[0])[:a.photos]
    test_idx = np.where(held)[0][:400]

    def pairs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        real, fake = zip(*(make_pair(z["crops"][i], z["points"][i][:, :2], rng) for i in idx))
        xs = net.features(np.concatenate([np.stack(real), np.stack(fake)]))
        return xs, np.r_[np.zeros(len(idx)), np.ones(len(idx))]

    xtr, ytr = pairs(train_idx)
    xte, yte = pairs(test_idx)
    for l2 in (1.0, 10.0):
        m = fit_logistic(xtr, ytr, l2=l2)
        print(f"self-blended head, l2={l2:g}: held-out photos (genuine vs self-blend) "
              f"{roc_auc(m.decision(xte)[yte == 1], m.decision(xte)[yte == 0]):.3f}")
        s = np.full(len(rows), np.nan)
        s[has] = [m.decision(f).mean() for f in feats if len(f)]
        report("  dev videos, never trained on a fake:", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
