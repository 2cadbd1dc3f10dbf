"""Probe: does fitting the fusion also on within-footage fake/genuine pairs rank unseen footage better? (ships nothing)

Out of fold, the shipped fusion ranks a DeepFaceLive fake above its own original in 22 of 24 footage pairs, yet
genuine clips of different footage span most of the score range: the AUC is lost *between* footages. This refits
the shipped fusion (windows weighted per clip, the shipped penalty, blocks bounded) with extra rows: for every
fake and genuine clip of the same manifest ``group`` and the same version (the original, or one re-encoding
recipe) in a fold's training part, the difference of their standardised clip features, without intercept,
labelled 1, and its negation labelled 0 (a pairwise ranking loss on pairs that differ only by the swap). The pair
rows together weigh ``alpha`` times the window rows; each footage group's pairs share its part equally.
``alpha = 0`` is the shipped fit (it must reproduce ``fold_assignment_spread.py`` with the same penalty); ``inf``
fits the pairs alone. The penalty is the shipped one (grown with the copies since session 12; ``--flat-penalty``:
session 11's, which the rule's run used).
The pair rows add weight under the same penalty, so ``alpha = 1`` also halves the penalty's relative strength;
``--scale-penalty`` multiplies the penalty by ``1 + alpha`` to keep it.

Folds, grouping (linked by the ``celeb model`` note) and scoring as ``fold_assignment_spread.py``: 6 grouped folds,
12 assignments in blocks of 3, out-of-fold AUC of the originals before calibration, overall and on DeepFaceLive::

    python experiments/paired_fusion_probe.py --cache runs/eval-aug/features.jsonl --copies-dir runs/eval-aug/copies \
        --flat-penalty
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import (_fold_mean, _training_folds, extract_features, feature_matrix,  # noqa: E402
                                 link_groups, read_manifest, split_seen, window_matrix)
from detector.fusion.augment import TRAINING_COPIES  # noqa: E402
from detector.fusion.logistic import (LogisticModel, _newton, bound_blocks, clip_balanced_weights,  # noqa: E402
                                      roc_auc)
from detector.fusion.train import L2, block_masks, fusion_feature_names, fusion_penalty, training_clips  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def within_footage_pairs(y: np.ndarray, footage: list[str], version: np.ndarray, train: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fake index, genuine index, weight) of every fake/genuine pair of one footage group and version in ``train``.

    Each footage group's pairs (over all its versions) share one unit of weight.
    """
    cells: dict[tuple[str, int], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i in np.flatnonzero(train):
        cells[(footage[i], int(version[i]))][int(y[i] == 0)].append(int(i))
    per_group: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (g, _), (fakes, reals) in cells.items():
        per_group[g] += [(f, r) for f in fakes for r in reals]
    fi, ri, w = [], [], []
    for pairs in per_group.values():
        for f, r in pairs:
            fi.append(f)
            ri.append(r)
            w.append(1.0 / len(pairs))
    return np.array(fi, dtype=int), np.array(ri, dtype=int), np.array(w)


def fit_paired(x: np.ndarray, y: np.ndarray, footage: list[str], version: np.ndarray, train: np.ndarray,
               windows, blocks: list[np.ndarray], alpha: float, l2: float = L2) -> LogisticModel:
    """The shipped window fit (``alpha = 0``) with within-footage pair rows added."""
    xw, yw, iw = windows
    sel = np.isin(iw, np.flatnonzero(train))
    xt, yt = xw[sel], yw[sel].astype(float)
    weight = clip_balanced_weights(yt, iw[sel])
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in xt.T])
    scale = np.where(np.isfinite(xt), xt, mean).std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticModel(mean=mean, scale=scale, coef=np.zeros(len(mean)), intercept=0.0)
    zw = model.standardise(xt)
    a = [np.hstack([zw, np.ones((len(zw), 1))])]
    target, w = [yt], [weight]
    if math.isinf(alpha):
        a, target, w = [], [], []
    if alpha > 0:
        fi, ri, pw = within_footage_pairs(y, footage, version, train)
        zc = model.standardise(x)
        d = np.hstack([zc[fi] - zc[ri], np.zeros((len(fi), 1))])
        pw = pw / pw.sum() * len(xt) * (1.0 if math.isinf(alpha) else alpha) / 2  # two rows per pair
        a += [d, -d]
        target += [np.ones(len(fi)), np.zeros(len(fi))]
        w += [pw, pw]
    reg = np.full(len(mean) + 1, l2)
    reg[-1] = 0.0
    beta = _newton(np.vstack(a), np.concatenate(target), np.concatenate(w), reg, iterations=100, tolerance=1e-8)
    fitted = LogisticModel(mean=mean, scale=scale, coef=beta[:-1], intercept=float(beta[-1]))
    return bound_blocks(fitted, xt, blocks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="features.jsonl of a detector eval run")
    ap.add_argument("--copies-dir", type=Path, default=None, help="fit on the re-encoded copies there too")
    ap.add_argument("--assignments", type=int, default=12)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 1.0, 0.25, 4.0, math.inf])
    ap.add_argument("--l2", type=float, default=None,
                    help="the penalty (default: the shipped one, grown with the copies as the fusion's)")
    ap.add_argument("--flat-penalty", action="store_true",
                    help="with copies, the penalty L2 as session 11 fitted it (the rule's run, session 12)")
    ap.add_argument("--scale-penalty", action="store_true",
                    help="multiply the penalty by 1 + alpha, so that the pair rows' added weight does not also "
                         "weaken it")
    a = ap.parse_args()
    rows, _ = split_seen(read_manifest(MANIFEST))
    options = ScanOptions(use_fusion=False)
    if a.copies_dir is not None:
        tc = training_clips(rows, options, workers=2, cache=a.cache, copies=TRAINING_COPIES, copies_dir=a.copies_dir)
        clips, version, versions = tc.clips, tc.version, len(tc.versions)
    else:
        clips = extract_features(rows, options, workers=1, cache=a.cache)
        version, versions = np.zeros(len(clips), dtype=int), 1
    n = len(rows)
    base_l2 = a.l2 if a.l2 is not None else L2 if a.flat_penalty else fusion_penalty(versions)
    names = fusion_feature_names(clips)
    x, y, usable = feature_matrix(clips, names)
    dfl = np.array([c.row.source == "DeepFaceLive" for c in clips])[:n]
    footage = [c.row.group for c in clips]
    linked = [r.group for r in link_groups(rows)] * versions  # a copy is in its clip's group
    windows, blocks = window_matrix(clips, names), block_masks(names)
    for alpha in a.alphas:
        parts, total = [], []
        for start in range(0, a.assignments, 3):
            acc, cnt = np.zeros(len(y)), np.zeros(len(y))
            for test, train in _training_folds(y, linked, usable, 6, range(start, start + 3)):
                l2 = base_l2 * (1 + alpha) if a.scale_penalty and not math.isinf(alpha) else base_l2
                model = fit_paired(x, y, footage, version, train, windows, blocks, alpha, l2)
                acc[test] += model.predict_proba(x[test])
                cnt[test] += 1
            s = _fold_mean(acc, cnt)[:n]
            s[~usable[:n]] = np.nan  # as cross_validated_scores does
            total.append(s)
            parts.append(f"{roc_auc(y[:n], s):.3f}/{roc_auc(y[:n][dfl], s[dfl]):.3f}")
        s = np.mean(total, axis=0)
        print(f"alpha {alpha:<5}: AUC/DFL per 3 assignments: {'  '.join(parts)};  all {a.assignments}: "
              f"{roc_auc(y[:n], s):.3f}/{roc_auc(y[:n][dfl], s[dfl]):.3f}", flush=True)


if __name__ == "__main__":
    main()
