"""Probe: would the fusion do better with the face_cnn block compressed or penalised on its own? (ships nothing)

The fusion fits one logistic model on 16 hand-made features and the 448 pooled ``face_cnn`` activations,
with one L2 penalty (4) for all. With ~72 clips that block dominates the parameter count, so two standard
remedies are measured on the cached features of a ``detector eval`` run, under the folds ``detector eval``
uses (6 folds by footage group, fold assignments 0-2 averaged, windows weighted per clip):

- a PCA of the block fitted inside each training fold (on its windows, labels unused), keeping K components;
- separate penalties for the hand-made features and the block.

Reported is the out-of-fold AUC *before* calibration (calibration cannot change a ranking), overall and on
the DeepFaceLive clips. The baseline here skips the block bounding the shipped fit applies, so it differs a
little from the eval's own uncalibrated AUC.

With ``--leave-one-out`` it instead refits with the shipped penalty leaving each check out in turn (and the four
weakest hand-made checks together), to see how much of the ranking each contributes.

    python experiments/fusion_block_probe.py [--cache runs/eval-stream/features.jsonl] [--leave-one-out]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.evaluation import (_fold_mean, _training_folds, extract_features, feature_matrix,  # noqa: E402
                                 read_manifest, split_seen, window_matrix)
from detector.fusion.logistic import LogisticModel, _newton, clip_balanced_weights, roc_auc  # noqa: E402
from detector.fusion.train import fusion_feature_names  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def fit_with_penalties(x: np.ndarray, y: np.ndarray, penalties: np.ndarray, weight: np.ndarray) -> LogisticModel:
    """:func:`detector.fusion.logistic.fit_logistic` with one L2 penalty per feature."""
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in x.T])
    xf = np.where(np.isfinite(x), x, mean)
    scale = xf.std(axis=0)
    scale[scale < 1e-9] = 1.0
    a = np.hstack([np.clip((xf - mean) / scale, -5, 5), np.ones((len(x), 1))])
    beta = _newton(a, y.astype(float), weight, np.r_[penalties, 0.0], iterations=100, tolerance=1e-8)
    return LogisticModel(mean=mean, scale=scale, coef=beta[:-1], intercept=float(beta[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("runs/eval-stream/features.jsonl"))
    ap.add_argument("--leave-one-out", action="store_true", help="leave each check out in turn instead")
    a = ap.parse_args()
    rows, _ = split_seen(read_manifest(MANIFEST))
    clips = extract_features(rows, ScanOptions(use_fusion=False), workers=1, cache=a.cache)
    y = np.array([c.y for c in clips])
    groups = [c.row.group for c in clips]
    dfl = np.array([c.row.source == "DeepFaceLive" for c in clips])
    names = fusion_feature_names(clips)
    xs, _, usable = feature_matrix(clips, names)
    xw, yw, iw = window_matrix(clips, names)
    block = np.array([n.startswith("face_cnn.v") for n in names])

    checks = np.array([n.split(".")[0] for n in names])

    def run(k: int | None = None, l2_hand: float = 4.0, l2_block: float = 4.0, without: tuple[str, ...] = ()) -> str:
        keep = ~np.isin(checks, without)
        total, count = np.zeros(len(y)), np.zeros(len(y))
        for test, train in _training_folds(y, groups, usable, 6, (0, 1, 2)):
            sel = np.isin(iw, np.flatnonzero(train))
            fit_x, score_x = xw[sel], xs
            if without:
                fit_x, score_x = fit_x[:, keep], score_x[:, keep]
            if k is not None:
                c = fit_x[:, block]
                mu = np.nanmean(c, 0)
                sd = np.where(np.isfinite(c), c, mu).std(0) + 1e-9
                proj = np.linalg.svd((np.where(np.isfinite(c), c, mu) - mu) / sd, full_matrices=False)[2][:k].T

                def reduce(m: np.ndarray) -> np.ndarray:
                    b = m[:, block]
                    return np.hstack([m[:, ~block], ((np.where(np.isfinite(b), b, mu) - mu) / sd) @ proj])
                fit_x, score_x = reduce(fit_x), reduce(xs)
            n_block = k if k is not None else int(block.sum())
            penalties = np.r_[np.full(int((~block).sum()), l2_hand), np.full(n_block, l2_block)]
            if k is None:  # keep the original column order
                penalties = np.where(block, l2_block, l2_hand)[keep]
            model = fit_with_penalties(fit_x, yw[sel], penalties, clip_balanced_weights(yw[sel], iw[sel]))
            total[test] += model.decision(score_x[test])
            count[test] += 1
        s = _fold_mean(total, count)
        ok = np.isfinite(s)
        return f"AUC {roc_auc(y[ok], s[ok]):.3f}  DFL {roc_auc(y[ok & dfl], s[ok & dfl]):.3f}"

    print(f"{len(clips)} clips, {int((~block).sum())} hand-made features + {int(block.sum())} face_cnn activations")
    print("one penalty (4), full block:", run())
    if a.leave_one_out:
        for check in sorted(set(checks)):
            print(f"without {check}:", run(without=(check,)))
        print("without sharpness, identity, texture_flicker, hard_pose:",
              run(without=("sharpness", "identity", "texture_flicker", "hard_pose")))
        return
    for k in (4, 8, 16, 32, 64):
        print(f"PCA of the block to {k:2d} components:", run(k=k))
    for l2_hand, l2_block in [(1, 4), (2, 4), (4, 2), (4, 8), (4, 16), (1, 16), (8, 4), (16, 4)]:
        print(f"penalty hand-made {l2_hand:2d}, block {l2_block:2d}:", run(l2_hand=l2_hand, l2_block=l2_block))


if __name__ == "__main__":
    main()
