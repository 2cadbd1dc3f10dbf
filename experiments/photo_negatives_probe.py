"""Probe: do genuine photos, degraded to call-like faces, help the face_cnn read-out as extra negatives? (ships nothing)

The ``face_cnn`` read-out is fitted on 72 dev clips, so it sees a few dozen genuine faces; between recordings its
features vary more than the swap changes them. Thousands of genuine photos (``../shared/data/faces``, genuine
only) could pin down how genuine faces vary, if they are first made to look like call footage: each aligned crop
is shrunk to a 40-112 px face, JPEG-compressed at quality 20-60 and enlarged back, then read in the shipped two
views (whole crop + central 70%). The probe of ``experiments/pooling_probe.py`` (dev clips at 2 crops/s, clip
means, logistic read-out, grouped CV with groups merged by shared DeepFaceLive celebrity model) is re-run with the
photos added to every training fold as genuine rows, weighing together ``w`` times the fold's genuine clips; the
dev clips are still scored out of fold. Needs the photo pack of ``experiments/ae_render_probe.py pack``::

    python experiments/photo_negatives_probe.py --photos .aedata/photos.npz
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ae_render_probe import _decode  # noqa: E402
from pooling_probe import clip_vectors, framed, session  # noqa: E402

from detector.checks.embedding import FaceMeshFeatures  # noqa: E402
from detector.evaluation import group_folds  # noqa: E402
from detector.fusion.logistic import fit_logistic, roc_auc  # noqa: E402
from detector.training.supervised_probe import merged_groups  # noqa: E402


def degraded(crops: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each crop as a small, JPEG-compressed face enlarged back to its side, as call footage shows it."""
    rng = np.random.default_rng(seed)
    side = crops.shape[1]
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        s = int(rng.integers(40, side + 1))
        small = cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 61))])
        small = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        out[i] = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=3000)
    a = ap.parse_args()
    sess = session()
    crops = degraded(_decode(np.load(a.photos))[:a.limit])
    photo = np.hstack([np.concatenate([sess.run(["features"], {"input": FaceMeshFeatures.preprocess(
        framed(crops[i:i + 256], f))})[0] for i in range(0, len(crops), 256)]) for f in (1.0, 0.7)])
    kept, x = clip_vectors(sess, views=True)
    v = np.hstack([np.stack([x[k][r["path"]] for r in kept]) for k in ("fraction 1.0", "fraction 0.7")])
    y = np.array([r["label"] == "fake" for r in kept])
    dfl = np.array([r["source"] == "DeepFaceLive" for r in kept])
    groups = merged_groups(kept, "celeb model")
    print(len(kept), "clips,", len(photo), "degraded photos; AUC overall/DeepFaceLive")
    for w in (0.0, 0.25, 1.0, 4.0):
        res = []
        for l2 in (1.0, 10.0, 100.0):
            s = np.zeros(len(kept))
            for seed in range(3):
                for test in group_folds(groups, 5, seed):
                    tr = ~test
                    n_real = int((~y[tr]).sum())
                    xs = np.vstack([v[tr], photo]) if w else v[tr]
                    ys = np.concatenate([y[tr], np.zeros(len(photo))]) if w else y[tr]
                    sw = (np.concatenate([np.ones(tr.sum()), np.full(len(photo), w * n_real / len(photo))])
                          if w else None)
                    s[test] += fit_logistic(xs, ys.astype(float), l2=l2, sample_weight=sw).decision(v[test])
            res.append(f"l2={l2:g}: {roc_auc(y, s):.3f}/{roc_auc(y[dfl], s[dfl]):.3f}")
        print(f"photo weight {w:<5g}", "  ".join(res))


if __name__ == "__main__":
    main()
