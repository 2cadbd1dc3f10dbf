"""Does a face-*recognition* network see the swap? Inner vs outer identity on the dev clips (experiment, ships nothing).

A face swap pastes one person's inner face (eyes, brows, nose, mouth) into
another person's head. Identity-consistency detectors (ICT, Dong et al. 2022)
compare the identity of the inner face with that of its surroundings. The one
face-recognition network installable here ships inside the
``face_recognition_models`` wheel: dlib's ResNet
(``dlib_face_recognition_resnet_model_v1.dat``, CC0), 128-d embeddings of a
150x150 face chip. Running it needs ``dlib-bin``, which is not a project
dependency (inference runs ONNX only and this network has not been
converted), so this is a probe::

    pip install dlib-bin face_recognition_models
    python experiments/dlib_identity_probe.py --manifest ../shared/data/dev/manifest.csv \\
        --scores runs/eval/scores.csv

Per clip, on the largest face every third 15 fps frame (crops come from the
cache ``detector.training.faces_cache`` fills, landmarking what is missing),
it embeds three versions of dlib's own face chip: the whole chip, the inner
face only (outside the dilated hull of the inner landmarks set to grey) and the
outer face only (the hull set to grey). It prints each identity statistic's
video-level AUC (< 0.5: lower in fakes), how many footage groups with both
labels have the fakes lower than their own originals, and, given the
``scores.csv`` of a ``detector eval`` run, the grouped-CV AUC of a logistic
model on [that run's out-of-fold logit, identity features], which is how much
the identity features would add to the shipped fusion.

Measured on the dev set (72 clips, 2026-11-22): the inner-outer embedding
distance has AUC 0.329 (DeepFaceLive 0.298): fakes are *closer*, the
opposite of the ICT hypothesis, probably because DeepFaceLive's mask covers
most of the outer region too; lower in 18 of 26 paired groups. Stacked on
the fused out-of-fold logit of ``runs/eval`` (calibrated fusion): 0.707 ->
0.721 (DFL 0.671 -> 0.694), within this set's noise.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from detector.evaluation import balanced_weights, group_folds
from detector.faces import regions
from detector.fusion.logistic import fit_logistic, roc_auc
from detector.training.faces_cache import cached_largest_face_crops
from detector.training.sbi_eval import read_manifest

INNER = np.array(regions.INNER)
OVAL = np.array(regions.FACE_OVAL)


def load_dlib():
    import importlib.util

    import dlib

    # located without importing the package, whose __init__ needs the retired pkg_resources
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs `pip install dlib-bin face_recognition_models`")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    return (dlib, dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat")))


def chip_variants(dlib, predictor, crop: np.ndarray, points: np.ndarray) -> list[np.ndarray]:
    """dlib's 150 px chip of an aligned crop: whole, inner face only, outer face only."""
    big = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_CUBIC)
    p = points * (224.0 / crop.shape[0])
    x0, y0 = p[OVAL].min(0)
    x1, y1 = p[OVAL].max(0)
    shape = predictor(big, dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
    chip = dlib.get_face_chip(big, shape, size=150, padding=0.25)
    # map the Face Mesh points into the chip through the 5 dlib points found in both
    src = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float32)
    in_chip = predictor(chip, dlib.rectangle(0, 0, 149, 149))
    dst = np.array([[in_chip.part(i).x, in_chip.part(i).y] for i in range(5)], np.float32)
    m, _ = cv2.estimateAffinePartial2D(src, dst)
    q = p @ m[:, :2].T + m[:, 2]
    mask = np.zeros((150, 150), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(q[INNER].astype(np.int32)), 255)
    inside = cv2.dilate(mask, np.ones((9, 9), np.uint8))[..., None] > 0
    grey = np.full_like(chip, 128)
    return [chip, np.where(inside, chip, grey), np.where(inside, grey, chip)]


def clip_statistics(emb: np.ndarray) -> dict[str, float]:
    """emb: (n, 3, 128) whole / inner / outer embeddings of one clip's sampled crops."""
    whole, inner, outer = emb[:, 0], emb[:, 1], emb[:, 2]
    return {
        "inner_outer_distance": float(np.median(np.linalg.norm(inner - outer, axis=1))),
        "whole_outer_distance": float(np.median(np.linalg.norm(whole - outer, axis=1))),
        "whole_step": float(np.median(np.linalg.norm(np.diff(whole, axis=0), axis=1))) if len(whole) > 1 else np.nan,
        "whole_spread": float(np.median(np.linalg.norm(whole - np.median(whole, 0), axis=1))),
    }


def stacked_auc(y: np.ndarray, groups: list[str], x: np.ndarray, subset: np.ndarray, seeds=range(10)
                ) -> tuple[float, float]:
    """Grouped-CV AUC of a logistic model on ``x``: overall and on ``subset``, from the same out-of-fold scores."""
    overall, sub = [], []
    for seed in seeds:
        out = np.zeros(len(y))
        for test in group_folds(groups, 6, seed):
            m = fit_logistic(x[~test], y[~test], l2=1.0, sample_weight=balanced_weights(y[~test]))
            out[test] = m.decision(x[test])
        overall.append(roc_auc(y, out))
        sub.append(roc_auc(y[subset], out[subset]))
    return float(np.mean(overall)), float(np.mean(sub))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--scores", type=Path, help="scores.csv of a `detector eval` run to stack on")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/detector_cache"))
    a = ap.parse_args()
    dlib, predictor, net = load_dlib()
    rows = read_manifest(a.manifest)
    stats = []
    for r in rows:
        _, crops, points = cached_largest_face_crops(r["abspath"], 15.0, a.cache_dir)
        emb = [[np.array(net.compute_face_descriptor(np.ascontiguousarray(v)))
                for v in chip_variants(dlib, predictor, crops[j], points[j])] for j in range(0, len(crops), 5)]
        stats.append(clip_statistics(np.array(emb).reshape(-1, 3, 128)))
    y = np.array([r["label"] == "fake" for r in rows]).astype(int)
    dfl = np.array([r["source"] == "DeepFaceLive" for r in rows])
    groups = [r["group"] for r in rows]
    ga = np.array(groups)
    for k in stats[0]:
        v = np.array([s[k] for s in stats])
        paired = [v[(ga == g) & (y == 1)].mean() < v[(ga == g) & (y == 0)].mean()
                  for g in sorted(set(groups)) if len(set(y[ga == g])) == 2]
        print(f"{k:22s} AUC {roc_auc(y, v):.3f}  DFL {roc_auc(y[dfl], v[dfl]):.3f}  "
              f"fakes lower than their originals in {sum(paired)}/{len(paired)} groups")
    if a.scores:
        by_path = {row["path"]: float(row["score"]) for row in csv.DictReader(open(a.scores)) if row["score"]}
        p = np.clip(np.array([by_path.get(r["path"], np.nan) for r in rows]), 1e-6, 1 - 1e-6)
        logit = np.log(p / (1 - p))
        ok = np.isfinite(logit)
        ident = np.array([[s["inner_outer_distance"]] for s in stats])
        g_ok = [g for g, o in zip(groups, ok) if o]
        for name, x in (("fused logit alone", logit[:, None]),
                        ("+ inner_outer_distance", np.hstack([logit[:, None], ident]))):
            auc, auc_dfl = stacked_auc(y[ok], g_ok, x[ok], dfl[ok])
            print(f"{name:24s} grouped-CV AUC {auc:.3f}  DFL {auc_dfl:.3f}")

if __name__ == "__main__":
    main()
