"""Optical flow inside the aligned face crop: is a live swap's inner face stiller? (experiment, ships nothing)

Live swappers smooth the pasted face over time. In the pipeline's aligned 112 px
crops (15 fps, from the crop cache of ``detector.training.faces_cache``), this
probe measures Farneback flow between consecutive crops and, per pair, the
median motion of the inner face (eyes, brows, nose, lips), of the band inside
the face oval and of the band just outside it, plus the non-rigid residual
inside the inner face (mean distance of its flow from its median), and averages
them over each clip. For each feature it prints the AUC over all dev clips and on DeepFaceLive, and how often
a DeepFaceLive fake scores below a genuine clip of its own footage group. Run it from
the repository root::

    python experiments/flow_probe.py 15            # writes /tmp/flow_feats_15.0.json
    python experiments/stack_probe.py --manifest ../shared/data/dev/manifest.csv \
        --scores runs/eval-stream/scores.csv --features /tmp/flow_feats_15.0.json --names resid_std --log

Measured in session 6 (experiments/README.md, "Dropped hand-made features").
"""
import json
import os
import sys
os.environ["GLOG_minloglevel"] = "2"
from pathlib import Path
from multiprocessing import get_context
import cv2
import numpy as np
from detector.training.sbi_eval import read_manifest, roc_auc
from detector.training.faces_cache import cached_largest_face_crops
from detector.faces.regions import FACE_OVAL, INNER

FPS = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0


def masks(pts, shape=(112, 112)):
    oval = np.zeros(shape, np.uint8)
    cv2.fillPoly(oval, [np.round(pts[FACE_OVAL]).astype(np.int32)], 1)
    inner = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(np.round(pts[INNER]).astype(np.int32)), 1)
    er = cv2.erode(oval, np.ones((9, 9), np.uint8))
    contour = (oval > 0) & (er == 0) & (inner == 0)
    dil = cv2.dilate(oval, np.ones((13, 13), np.uint8))
    out = (dil > 0) & (oval == 0)
    return inner > 0, contour, out


def clip_features(job):
    path, = job
    t, c, p = cached_largest_face_crops(path, FPS, Path("/tmp/detector_cache"))
    rows = []
    for i in range(1, len(t)):
        if t[i] - t[i - 1] > 1.5 / FPS:
            continue
        a = cv2.cvtColor(c[i - 1], cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(c[i], cv2.COLOR_RGB2GRAY)
        f = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 11, 3, 5, 1.1, 0)
        mi, mc, mo = masks(p[i])
        if mi.sum() < 20 or mc.sum() < 20 or mo.sum() < 20:
            continue
        ui, uc, uo = (np.median(f[m], 0) for m in (mi, mc, mo))
        # non-rigid residual inside the inner face
        ri = np.linalg.norm(f[mi] - ui, axis=1).mean()
        ro = np.linalg.norm(f[mo] - uo, axis=1).mean()
        rc = np.linalg.norm(f[mc] - uc, axis=1).mean()
        rows.append([np.linalg.norm(ui - uc), np.linalg.norm(ui - uo), np.linalg.norm(uc - uo),
                     np.linalg.norm(ui), np.linalg.norm(uo), ri, ro, rc])
    if len(rows) < 5:
        return None
    r = np.array(rows)
    motion = r[:, 4] + 0.05
    return {"ic": r[:, 0].mean(), "io": r[:, 1].mean(), "co": r[:, 2].mean(), "inner": r[:, 3].mean(),
            "out": r[:, 4].mean(), "resid": r[:, 5].mean(),
            "ic_rel": (r[:, 0] / motion).mean(), "io_rel": (r[:, 1] / motion).mean(),
            "ic_over_co": r[:, 0].mean() / (r[:, 2].mean() + 1e-3), "io_over_co": r[:, 1].mean() / (r[:, 2].mean() + 1e-3),
            "ic_p90": np.percentile(r[:, 0], 90), "resid_std": r[:, 5].std(),
            "resid_out": r[:, 6].mean(), "resid_c": r[:, 7].mean(),
            "ri_over_ro": r[:, 5].mean() / (r[:, 6].mean() + 1e-3), "ri_over_rc": r[:, 5].mean() / (r[:, 7].mean() + 1e-3),
            "ri_std_over_ro_std": r[:, 5].std() / (r[:, 6].std() + 1e-3),
            "ri_p90_over_ro_p90": np.percentile(r[:, 5], 90) / (np.percentile(r[:, 6], 90) + 1e-3)}


if __name__ == "__main__":
    rows = read_manifest(Path("../shared/data/dev/manifest.csv"))
    with get_context("spawn").Pool(2) as pool:
        feats = pool.map(clip_features, [(r["abspath"],) for r in rows])
    y = np.array([r["label"] == "fake" for r in rows])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in rows])
    ok = np.array([f is not None for f in feats])
    # {clip path: {feature: value}}, the format experiments/stack_probe.py reads
    json.dump({r["path"]: f for r, f in zip(rows, feats)}, open(f"/tmp/flow_feats_{FPS}.json", "w"), default=float)
    for k in feats[np.argmax(ok)]:
        v = np.array([f[k] if f else np.nan for f in feats])
        below = [v[i] < v[j] for i in np.flatnonzero(ok & y & dfl) for j in np.flatnonzero(ok & ~y & dfl)
                 if rows[i]["group"] == rows[j]["group"]]
        print(f"{k:20s} AUC {roc_auc(v[ok & y], v[ok & ~y]):.3f}  DFL {roc_auc(v[ok & y & dfl], v[ok & ~y & dfl]):.3f}"
              f"  fake below its original in {sum(below)}/{len(below)} pairs")
