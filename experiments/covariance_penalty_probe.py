"""Penalise the face network's weights by how much genuine variation they pick up (ships nothing)

The fusion is a logistic model with one L2 penalty on every standardised feature. The 896 ``face_cnn``
activations are strongly correlated, and an equal penalty on every weight makes the cheapest way to move the
logit a direction in which the clips differ most. Between footages the clips differ most in what has nothing to do
with the swap (face size, light, the encoder, who it is): within one footage the fused score orders a fake above
its own original in 22 of 24 DeepFaceLive pairs, yet the originals' scores span most of the range
(``experiments/README.md``, "Within-footage pairs"). A ridge penalty shaped by the covariance of the block *within
each class* (the Tikhonov form of shrinkage LDA) instead charges a weight by how much the logit would vary among
clips of the same class along it, so a direction that only re-measures footage costs more than one that varies
little among genuine clips.

The candidate fit: the same windows, weights, standardisation, penalty size and block bounds as the shipped
fusion (:func:`detector.evaluation._fit_on`), but the penalty on the ``face_cnn`` weights is ``l2 * b' S b``
instead of ``l2 * b'b``, where ``S`` is the covariance of the training clips' standardised track features (the mean
of each clip's windows; originals and copies, each class centred on its own mean, clips weighted equally), shrunk
toward a multiple of the identity by the Ledoit-Wolf formula (no setting to tune). The hand-made features keep
``l2 * b'b``. Both fits are scored on the same 12 fold assignments of the linked groups (6 folds each), ranking
before calibration, as ``fold_assignment_spread.py`` measures the shipped fit::

    python experiments/covariance_penalty_probe.py --cache runs/eval-pen/features.jsonl \\
        --copies-dir runs/eval-aug/copies
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import (DEFAULT_LINK_NOTE, _fit_on, _training_folds, feature_matrix,  # noqa: E402
                                 link_groups, read_manifest, split_seen, window_matrix)
from detector.fusion.augment import TRAINING_COPIES  # noqa: E402
from detector.fusion.logistic import (LogisticModel, _newton, bound_blocks, clip_balanced_weights,  # noqa: E402
                                      roc_auc, standardisation)
from detector.fusion.train import block_masks, fusion_feature_names, fusion_penalty, training_clips  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def ledoit_wolf(rows: np.ndarray) -> tuple[np.ndarray, float]:
    """(shrunk covariance, shrinkage) of centred ``rows`` (Ledoit and Wolf 2004, as scikit-learn computes it)."""
    n, d = rows.shape
    s = rows.T @ rows / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum()
    beta = ((rows ** 2).sum(axis=1) ** 2).sum() / n ** 2 - (s ** 2).sum() / n
    shrink = 0.0 if delta <= 0 else float(min(max(beta, 0.0), delta) / delta)
    return (1 - shrink) * s + shrink * mu * np.eye(d), shrink


def fit_covariance_penalised(x: np.ndarray, y: np.ndarray, train: np.ndarray, l2: float, windows,
                             block: np.ndarray) -> tuple[LogisticModel, float]:
    """The shipped window fit of the clips in ``train``, with the ``block`` weights penalised by ``l2 * S``."""
    xw, yw, iw = windows
    sel = np.isin(iw, np.flatnonzero(train))
    xt, yt, owners = xw[sel], yw[sel], iw[sel]
    weight = clip_balanced_weights(yt, owners)
    mean, scale, z = standardisation(xt)  # exactly as fit_logistic standardises
    # each training clip's track features (the mean of its windows), in the same standardised units
    clips = np.unique(owners)
    zc = np.stack([z[owners == c][:, block].mean(axis=0) for c in clips])
    yc = np.array([yt[owners == c][0] for c in clips])
    centred = zc.copy()
    for label in (0, 1):
        centred[yc == label] -= centred[yc == label].mean(axis=0)
    cov, shrink = ledoit_wolf(centred)
    a = np.hstack([z, np.ones((len(z), 1))])
    idx = np.flatnonzero(block)
    penalty = np.diag(np.r_[np.full(z.shape[1], l2), 0.0])
    penalty[np.ix_(idx, idx)] = l2 * cov
    beta = _newton(a, yt.astype(float), weight, penalty, tolerance=1e-8)
    model = LogisticModel(mean=mean, scale=scale, coef=beta[:-1], intercept=float(beta[-1]))
    return bound_blocks(model, xt, [block]), shrink


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="features.jsonl of a detector eval run")
    ap.add_argument("--copies-dir", type=Path, required=True, help="the eval's re-encoded copies (features cached)")
    ap.add_argument("--link-note", default=DEFAULT_LINK_NOTE)
    ap.add_argument("--assignments", type=int, default=12)
    a = ap.parse_args()
    rows, _ = split_seen(read_manifest(MANIFEST))
    options = ScanOptions(use_fusion=False)
    tc = training_clips(rows, options, workers=2, cache=a.cache, copies=TRAINING_COPIES, copies_dir=a.copies_dir)
    clips, versions = tc.clips, len(tc.versions)
    n = len(rows)
    l2 = fusion_penalty(versions)
    names = fusion_feature_names(clips)
    x, y, usable = feature_matrix(clips, names)
    dfl = np.array([c.row.source == "DeepFaceLive" for c in clips[:n]])
    windows, blocks = window_matrix(clips, names), block_masks(names)
    block = next(b for b, nm in ((b, names[int(np.flatnonzero(b)[0])]) for b in blocks) if nm.startswith("face_cnn"))
    groups = [r.group for r in link_groups(rows, a.link_note)] * versions
    arms = {"shipped L2": [], "within-class covariance L2": []}
    shrinks = []
    t0 = time.time()
    for start in range(0, a.assignments, 3):
        acc = {k: np.zeros(len(y)) for k in arms}
        cnt = np.zeros(len(y))
        for test, train in _training_folds(y, groups, usable, 6, range(start, start + 3)):
            acc["shipped L2"][test] += _fit_on(x, y, train, l2, windows, blocks).predict_proba(x[test])
            model, shrink = fit_covariance_penalised(x, y, train, l2, windows, block)
            shrinks.append(shrink)
            acc["within-class covariance L2"][test] += model.predict_proba(x[test])
            cnt[test] += 1
        for k in arms:
            arms[k].append(np.where(cnt > 0, acc[k] / np.maximum(cnt, 1), np.nan)[:n])
        print(f"assignments {start}-{start + 2} done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    yo = y[:n]
    for k, parts in arms.items():
        per = "  ".join(f"{roc_auc(yo, s):.3f}/{roc_auc(yo[dfl], s[dfl]):.3f}" for s in parts)
        s = np.mean(parts, axis=0)
        print(f"{k:28s} AUC/DFL per 3 assignments: {per};  all {a.assignments}: "
              f"{roc_auc(yo, s):.3f}/{roc_auc(yo[dfl], s[dfl]):.3f}")
    print(f"Ledoit-Wolf shrinkage over {len(shrinks)} folds: median {np.median(shrinks):.3f} "
          f"(range {min(shrinks):.3f}-{max(shrinks):.3f})")


if __name__ == "__main__":
    main()
