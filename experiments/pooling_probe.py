"""Probe: would another pooling of the face_cnn network's layers carry more evidence? (ships nothing)

``models/face_mesh_features.onnx`` pools four PReLU layers of MediaPipe's Face Mesh network into 448 values per
crop: spatial means, plus spatial std for the two early layers. Blending seams sit at the face's edge and
rendering flaws can be local, so this compares, with the same linear probe, the shipped pooling against
``region`` (means over the inner half of each map and over the ring around it), ``max`` (spatial max) and
``std_all`` (spatial std of all four layers), alone and added to the shipped vector. Crops: the aligned largest
face at 2 per second (every 5th of the 10 fps cache under /tmp/detector_cache), averaged per clip; probe: a
logistic read-out under grouped CV with groups merged by shared DeepFaceLive celebrity model (27 groups, 5 folds,
3 fold assignments), as ``experiments/backbone_probe.py`` does. Prints overall/DeepFaceLive AUC per penalty.

``--views`` instead compares *framings* with the shipped pooling: the central fraction of the aligned crop the
network sees (1.15, i.e. padded, then 1.0, 0.85, 0.7, 0.6, 0.5) and the whole crop plus its central 70% read
together (what the ``face_cnn`` check does since session 7). ``--flip`` reads those two shipped views plain, averaged
with the mirrored crop's (test-time flip), and reduced over time by the median instead of the mean. With ``--photos`` (the genuine-photo pack of
``experiments/ae_render_probe.py pack``) it also prints, without any label, how well each framing suits the network:
its median face-presence logit and its landmarks' error against MediaPipe's on 600 photos::

    python experiments/pooling_probe.py
    python experiments/pooling_probe.py --views [--photos .aedata/photos.npz]
    python experiments/pooling_probe.py --flip
"""
import argparse
import csv
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.checks.embedding import FaceMeshFeatures  # noqa: E402
from detector.evaluation import group_folds  # noqa: E402
from detector.fusion.logistic import fit_logistic, roc_auc  # noqa: E402
from detector.paths import models_dir  # noqa: E402
from detector.training.faces_cache import cached_largest_face_crops  # noqa: E402
from detector.training.supervised_probe import merged_groups  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"
LAYERS = ["p_re_lu_6", "p_re_lu_9", "p_re_lu_12", "p_re_lu_14"]
FRACTIONS = (1.15, 1.0, 0.85, 0.7, 0.6, 0.5)


def framed(crops: np.ndarray, fraction: float) -> np.ndarray:
    """The central ``fraction`` of each crop's side; above 1, the crop padded by reflection."""
    side = crops.shape[1]
    s = int(round(side * fraction))
    if fraction <= 1:
        o = (side - s) // 2
        return crops[:, o:o + s, o:o + s]
    pad = (s - side) // 2
    return np.stack([cv2.copyMakeBorder(c, pad, pad, pad, pad, cv2.BORDER_REFLECT) for c in crops])


def pools(maps: list[np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {}
    for fm in maps:
        n, c, h, w = fm.shape
        yy, xx = np.mgrid[:h, :w]
        inner = (np.abs(yy - (h - 1) / 2) < h / 4) & (np.abs(xx - (w - 1) / 2) < w / 4)
        out.setdefault("region", []).append(np.concatenate([fm[:, :, inner].mean(2), fm[:, :, ~inner].mean(2)], 1))
        out.setdefault("max", []).append(fm.reshape(n, c, -1).max(2))
        out.setdefault("std_all", []).append(fm.reshape(n, c, -1).std(2))
    return {k: np.concatenate(v, 1) for k, v in out.items()}


def session() -> ort.InferenceSession:
    m = onnx.load(str(models_dir() / "face_mesh_features.onnx"))
    for name in LAYERS:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(m.SerializeToString(), so)


def dev_crops() -> Iterator[tuple[dict, np.ndarray]]:
    """Each dev clip's manifest row and its aligned largest-face crops at 2 per second (clips without a face skipped)."""
    for r in csv.DictReader(open(MANIFEST)):
        _, c, _ = cached_largest_face_crops(str(MANIFEST.parent / r["path"]), 10.0, Path("/tmp/detector_cache"))
        if len(c):
            yield r, c[::5]


def clip_vectors(sess: ort.InferenceSession, views: bool, flip: bool = False
                 ) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    rows = list(csv.DictReader(open(MANIFEST)))
    x: dict[str, dict[str, np.ndarray]] = {}
    for r, c in dev_crops():
        if flip:
            d = {}
            for f in (1.0, 0.7):
                plain = sess.run(["features"], {"input": FaceMeshFeatures.preprocess(framed(c, f))})[0]
                mirror = sess.run(["features"], {"input": FaceMeshFeatures.preprocess(framed(c[:, :, ::-1], f))})[0]
                d[f"fraction {f}"] = plain
                d[f"flip {f}"] = (plain + mirror) / 2
                d[f"median {f}"] = plain  # reduced over time by the median below
        elif views:
            d = {f"fraction {f}": sess.run(["features"], {"input": FaceMeshFeatures.preprocess(framed(c, f))})[0]
                 for f in FRACTIONS}
        else:
            res = sess.run(None, {"input": FaceMeshFeatures.preprocess(c)})
            d = pools(res[3:])
            d["shipped"] = res[0]
        for k, v in d.items():
            x.setdefault(k, {})[r["path"]] = np.median(v, 0) if k.startswith("median") else v.mean(0)
    return [r for r in rows if r["path"] in next(iter(x.values()))], x


def framing_fit(sess: ort.InferenceSession, photos: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ae_render_probe import _decode

    z = np.load(photos)
    crops, pts = _decode(z)[:600], z["points"].astype(np.float32)[:600]
    iod = np.linalg.norm(pts[:, 33] - pts[:, 263], axis=1)
    for f in FRACTIONS:
        c = framed(crops, f)
        lm, flag = sess.run(["landmarks", "face_flag"], {"input": FaceMeshFeatures.preprocess(c)})
        offset = (crops.shape[1] - c.shape[1]) // 2
        lm = lm.reshape(-1, 468, 3)[:, :, :2] * (c.shape[1] / 192) + offset  # back to the crop's pixels
        err = np.linalg.norm(lm - pts[:, :468], axis=2).mean(1) / iod
        print(f"fraction {f}: median face logit {np.median(flag):6.2f}, median landmark error {np.median(err):.3f} "
              "inter-ocular distances")


def read_out(v: np.ndarray, y: np.ndarray, dfl: np.ndarray, groups: list[str]) -> str:
    """Out-of-fold AUC overall/DeepFaceLive of a logistic read-out of ``v`` (5 grouped folds, 3 assignments)."""
    res = []
    for l2 in (1.0, 10.0, 100.0):
        s = np.zeros(len(y))
        for seed in range(3):
            for test in group_folds(groups, 5, seed):
                s[test] += fit_logistic(v[~test], y[~test].astype(float), l2=l2).decision(v[test])
        res.append(f"l2={l2:g}: {roc_auc(y, s):.3f}/{roc_auc(y[dfl], s[dfl]):.3f}")
    return "  ".join(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", action="store_true", help="compare framings instead of poolings")
    ap.add_argument("--flip", action="store_true",
                    help="whole + 0.7 views: plain, averaged with the mirrored crop, and median over time")
    ap.add_argument("--photos", type=Path, default=None, help="with --views: genuine-photo pack for the framing fit")
    a = ap.parse_args()
    sess = session()
    if a.views and a.photos:
        framing_fit(sess, a.photos)
    kept, x = clip_vectors(sess, a.views, a.flip)
    y = np.array([r["label"] == "fake" for r in kept])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in kept])
    groups = merged_groups(kept, "celeb model")
    print(len(kept), "clips", len(set(groups)), "merged groups; AUC overall/DeepFaceLive")

    def probe(keys: list[str]) -> str:
        v = np.hstack([np.stack([x[k][r["path"]] for r in kept]) for k in keys])
        return f"{' + '.join(keys):28s} dims {v.shape[1]:4d}  " + read_out(v, y, dfl, groups)

    combos = ([["fraction 1.0", "fraction 0.7"], ["flip 1.0", "flip 0.7"], ["median 1.0", "median 0.7"]] if a.flip
              else [[f"fraction {f}"] for f in FRACTIONS] + [["fraction 1.0", "fraction 0.7"]] if a.views else
              [["shipped"], ["region"], ["max"], ["std_all"], ["shipped", "region"], ["shipped", "max"]])
    for keys in combos:
        print(probe(keys))


if __name__ == "__main__":
    main()
