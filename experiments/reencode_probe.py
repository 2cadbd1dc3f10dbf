"""Does the verdict survive a recording being re-encoded? (ships nothing)

Interview recordings reach us after another encoder has had them: the meeting platform's cloud recording, a
browser's MediaRecorder (VP8/VP9 in webm), a screen recorder at a lower resolution, a re-upload. The dev clips all
come from one encoder setting per source, so grouped CV on them says nothing about that. This probe re-encodes
every dev clip, genuine and fake alike, under a few settings fixed before measuring, and scores each version with
the fusion under the eval's grouped folds (6 folds of the linked groups, assignments 0-2, each fold's model
calibrated from an inner CV on its own training clips, as ``detector eval`` does):

- ``h264_crf23``: H.264 at CRF 23, same size (a plain generation of re-encoding, the control);
- ``h264_crf32``: H.264 at CRF 32, same size (a low-bandwidth cloud recording);
- ``h264_scale070``: 0.7 of the size at CRF 23 (a smaller recording window: faces 52 to 247 px high, median 117);
- ``vp9``: VP9 at constant quality 40 in webm (a browser capture);
- ``h264_scale050``, ``h264_scale085``: 0.5 and 0.85 of the size at CRF 23, added after the four above were
  measured, so that augmentation can be tested on a size it was not fitted with.

``shift`` prints how far each check's features move between each clip and its copies, in units of the features'
spread over the genuine originals.

Two arms:

- ``orig``: each fold's model is fitted on the original clips of its training groups only (what ships), and
  scores the held-out groups' clips in every version. The threshold for "likely face-swapped" is the one chosen
  on the out-of-fold scores of the originals (at most 10% of genuine clips), as the shipped model's is.
- ``augmented``: each fold's model is fitted on the originals and the ``--train-variants`` copies of its training
  groups' clips (the versions of a clip share its group, so none leaks into the held-out fold); with
  ``--version-weight`` each copy weighs that fraction of its original, in the fit and in the calibration.
- ``sizecal``: the ranking is fitted on the originals, and the calibration ``sigmoid(a*logit + b*log face px + c)``
  on the inner out-of-fold logits of the originals and the ``--train-variants`` copies; ``sizecal_orig`` fits that
  calibration on the originals alone.

Commands (the re-encoded copies and their feature caches stay under /tmp: they are cut from third-party clips)::

    python experiments/reencode_probe.py make                   # writes /tmp/reenc/<variant>/...
    python experiments/reencode_probe.py score --orig-cache runs/eval-linked/features.jsonl \
        --variants h264_crf23 h264_crf32 h264_scale070 vp9
    python experiments/reencode_probe.py score --orig-cache runs/eval-linked/features.jsonl \
        --variants h264_crf23 h264_crf32 h264_scale050 h264_scale070 h264_scale085 vp9 \
        --train-variants h264_crf32 h264_scale050 h264_scale085 vp9 [--arms ...] [--version-weight 0.25]
    python experiments/reencode_probe.py shift --orig-cache runs/eval-linked/features.jsonl
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import (CALIBRATION_SEEDS, DEFAULT_LINK_NOTE, _fit_on, calibrated_fold_model,  # noqa: E402
                                 extract_features, feature_matrix, group_folds, link_groups, read_manifest,
                                 split_seen, threshold_for_fpr, window_matrix)
from detector.fusion.augment import RECIPES, copy_path, make_copies  # noqa: E402
from detector.fusion.logistic import (balanced_weights, bound_blocks, clip_balanced_weights,  # noqa: E402
                                      fit_logistic, roc_auc)
from detector.fusion.train import L2, block_masks, fusion_feature_names, fusion_penalty  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"
ROOT = Path("/tmp/reenc")
#: name -> recipe, fixed before any was measured; h264_scale050 and h264_scale085 were added after the other four
#: were measured, to test augmentation on a size it was not fitted with. Since session 11 the recipes and the
#: encoder live in detector.fusion.augment, which train-fusion and eval use; its encoder runs on the source's
#: time base (the probe's own, until then, ran on 1 / the average rate, so copies made before session 11 differ
#: from a fresh `make` by x264's rate control, not by recipe)
VARIANTS = RECIPES


ARMS = ["orig", "augmented", "sizecal", "sizecal_orig"]
ORIG_CACHE_HELP = ("features.jsonl of a detector eval run that cropped the same way: since session 10 the default "
                   "eval anti-aliases (pass --antialias here); with --no-crop-antialias it does not")


def variant_path(variant: str, source: str) -> Path:
    return copy_path(ROOT, variant, source)


def cmd_make(a: argparse.Namespace) -> None:
    def progress(n: int, total: int, path: str, error: str | None) -> None:
        if error or n % 24 == 0 or n == total:
            print(f"{n}/{total} {path}" + (f" ({error})" if error else ""), flush=True)

    make_copies(read_manifest(MANIFEST), ROOT, a.variants, workers=a.workers, progress=progress)


def _size_calibrated(x, y, groups, usable, version, size, windows, blocks, test, calibrated):
    """Ranking fitted on the training groups' originals; calibration ``sigmoid(a*logit + b*log face px + c)``
    fitted on inner out-of-fold logits of the training groups' clips in the versions ``calibrated`` marks
    (the augmented arm's, or the originals only)."""
    outer_train = ~test & usable
    train = outer_train & (version == 0)
    model = _fit_on(x, y, train, L2, windows, blocks)
    inner_groups = groups[train]  # one per original clip, so folds balance clips as the eval's inner CV does
    acc, cnt = np.zeros(len(y)), np.zeros(len(y))
    for seed in CALIBRATION_SEEDS:
        for f in group_folds(list(inner_groups), 6, seed):
            held = np.isin(groups, inner_groups[f]) & outer_train
            m = _fit_on(x, y, train & ~held, L2, windows, blocks)
            acc[held] += m.decision(x[held])
            cnt[held] += 1
    cal_rows = outer_train & (cnt > 0) & np.isfinite(size) & calibrated
    feats = np.stack([acc / np.maximum(cnt, 1), size], axis=1)
    cal = fit_logistic(feats[cal_rows], y[cal_rows], l2=1e-3, sample_weight=balanced_weights(y[cal_rows]))
    t = np.stack([model.decision(x[test]), np.where(np.isfinite(size[test]), size[test], np.nanmean(size))], axis=1)
    return cal.predict_proba(t)


def _fit_weighted(x, y, train, windows, blocks, clip_weight, l2=L2):
    """:func:`detector.evaluation._fit_on` on timeline windows, each clip's weight times ``clip_weight``."""
    xw, yw, iw = windows
    sel = np.isin(iw, np.flatnonzero(train))
    w = clip_balanced_weights(yw[sel], iw[sel]) * clip_weight[iw[sel]]
    w *= len(w) / w.sum()  # mean 1, as in the eval (whose penalty grows with the versions, see the caller)
    return bound_blocks(fit_logistic(xw[sel], yw[sel], l2=l2, sample_weight=w), xw[sel], blocks)


def _down_weighted(x, y, groups, version, windows, blocks, train, test, clip_weight, l2=L2):
    """Augmented arm with the versions' weight scaled: fitted and Platt-calibrated (inner grouped CV over
    the training groups, every fitted version scored) with the same weights."""
    model = _fit_weighted(x, y, train, windows, blocks, clip_weight, l2)
    inner_groups = groups[train & (version == 0)]
    acc, cnt = np.zeros(len(y)), np.zeros(len(y))
    for seed in CALIBRATION_SEEDS:
        for f in group_folds(list(inner_groups), 6, seed):
            held = np.isin(groups, inner_groups[f]) & train
            acc[held] += _fit_weighted(x, y, train & ~held, windows, blocks, clip_weight, l2).decision(x[held])
            cnt[held] += 1
    rows = train & (cnt > 0)
    # Platt weighted like the fit, so the originals count as much in the calibration as in the ranking
    # (fit_platt takes no weights; fit_logistic on the one logit column is the same model, its input
    # standardised and clipped at +-5 sd)
    lw = clip_weight[rows] * balanced_weights(y[rows])
    cal = fit_logistic((acc / np.maximum(cnt, 1))[rows, None], y[rows], l2=1e-3, sample_weight=lw * len(lw) / lw.sum())
    return cal.predict_proba(model.decision(x[test])[:, None])


def _options(a: argparse.Namespace) -> ScanOptions:
    return ScanOptions(use_fusion=False, crop_antialias=a.antialias)


def _version_cache(a: argparse.Namespace, variant: str) -> Path:
    if a.version_cache is not None:
        return a.version_cache
    return ROOT / variant / ("features_antialias.jsonl" if a.antialias else "features.jsonl")


def _version_rows(rows, variant):
    return [replace(r, path=str(variant_path(variant, r.path))) for r in rows]


def cmd_score(a: argparse.Namespace) -> None:
    rows, _ = split_seen(read_manifest(MANIFEST))
    rows = link_groups(rows, a.link_note)
    options = _options(a)
    versions = ["original"] + a.variants
    clips = extract_features(rows, options, workers=a.workers, cache=a.orig_cache)
    for v in a.variants:
        clips += extract_features(_version_rows(rows, v), options, workers=a.workers, cache=_version_cache(a, v))
    n = len(rows)
    version = np.repeat(np.arange(len(versions)), n)
    names = fusion_feature_names(clips[:n])
    x, y, usable = feature_matrix(clips, names)
    windows, blocks = window_matrix(clips, names), block_masks(names)
    groups = np.array([c.row.group for c in clips])
    dfl = np.array([c.row.source == "DeepFaceLive" for c in clips])
    size = np.array([(c.main_track() or {"features": {}})["features"].get("track.log_face_px") or np.nan
                     for c in clips], dtype=float)
    copies = [versions.index(v) for v in (a.train_variants or a.variants)]
    fitted = {"orig": [0], "sizecal": [0], "sizecal_orig": [0], "augmented": [0] + copies}
    for arm in a.arms:
        acc, cnt = np.zeros(len(y)), np.zeros(len(y))
        for seed in range(3):
            for test0 in group_folds(list(groups[:n]), 6, seed):
                test = np.isin(groups, groups[:n][test0])
                train = ~test & usable & np.isin(version, fitted[arm])
                if arm.startswith("sizecal"):
                    cal_versions = [0] + copies if arm == "sizecal" else [0]
                    acc[test] += _size_calibrated(x, y, groups, usable, version, size, windows, blocks, test,
                                                  np.isin(version, cal_versions))
                    cnt[test] += 1
                    continue
                # the penalty grows with the versions fitted on, as the shipped fusion's (session 12)
                l2 = L2 if a.flat_penalty else fusion_penalty(len(fitted[arm]))
                if arm == "augmented" and a.version_weight != 1.0:
                    acc[test] += _down_weighted(x, y, groups, version, windows, blocks, train, test,
                                                np.where(version == 0, 1.0, a.version_weight), l2)
                    cnt[test] += 1
                    continue
                model = calibrated_fold_model(x, y, groups, train, 6, l2, windows, blocks)
                acc[test] += model.predict_proba(x[test])
                cnt[test] += 1
        p = np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)
        p[~usable] = np.nan
        p0 = p[:n]
        high = threshold_for_fpr(p0[y[:n] == 0], 0.10)
        cal = ", size-aware calibration" if arm.startswith("sizecal") else ""
        print(f"\narm {arm}: model fitted on {', '.join(versions[i] for i in fitted[arm])}{cal}; "
              f"threshold from the originals' out-of-fold scores: {high:.3f}")
        print(f"{'version':15s} {'scored':>6s} {'AUC':>6s} {'DFL':>6s} {'FPR':>6s} {'TPR':>6s} "
              f"{'mean P real':>11s} {'mean P fake':>11s} {'dP real':>8s} {'dP fake':>8s} {'flips':>5s}")
        for vi, v in enumerate(versions):
            s = slice(vi * n, (vi + 1) * n)
            pv, yv, dv = p[s], y[s], dfl[s]
            ok = np.isfinite(pv)
            both = ok & np.isfinite(p0)
            d = pv - p0
            flips = int(((pv >= high) != (p0 >= high))[both].sum())
            print(f"{v:15s} {int(ok.sum()):6d} {roc_auc(yv, pv):6.3f} {roc_auc(yv[dv], pv[dv]):6.3f} "
                  f"{np.mean(pv[ok & (yv == 0)] >= high):6.3f} {np.mean(pv[ok & (yv == 1)] >= high):6.3f} "
                  f"{np.nanmean(pv[yv == 0]):11.3f} {np.nanmean(pv[yv == 1]):11.3f} "
                  f"{np.nanmean(d[both & (yv == 0)]):8.3f} {np.nanmean(d[both & (yv == 1)]):8.3f} {flips:5d}")


def cmd_shift(a: argparse.Namespace) -> None:
    rows, _ = split_seen(read_manifest(MANIFEST))
    options = _options(a)
    base = extract_features(rows, options, cache=a.orig_cache)
    names = fusion_feature_names(base)
    x0, y, _ = feature_matrix(base, names)
    spread = np.nanstd(x0[y == 0], axis=0) + 1e-12
    checks = sorted({n.split(".")[0] for n in names})
    for v in a.variants:
        x, _, _ = feature_matrix(extract_features(_version_rows(rows, v), options, cache=_version_cache(a, v)), names)
        moved = np.abs(np.nanmean(x - x0, axis=0) / spread)  # mean shift of each feature, in genuine spreads
        per_check = {c: moved[[n.split(".")[0] == c for n in names]] for c in checks}
        print(f"{v:15s} " + "  ".join(f"{c} {m.mean():.2f} (max {m.max():.2f})" for c, m in per_check.items()))


def main() -> None:
    global ROOT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    m.add_argument("--workers", type=int, default=2)
    s = sub.add_parser("score")
    s.add_argument("--orig-cache", type=Path, required=True, help=ORIG_CACHE_HELP)
    s.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    s.add_argument("--arms", nargs="+", default=["orig", "augmented"], choices=ARMS)
    s.add_argument("--train-variants", nargs="+", default=None, choices=list(VARIANTS),
                   help="versions the augmented arm is fitted on besides the originals (default: every scored one)")
    s.add_argument("--version-weight", type=float, default=1.0,
                   help="augmented arm: each re-encoded clip's weight relative to its original's")
    s.add_argument("--link-note", default=DEFAULT_LINK_NOTE)
    s.add_argument("--flat-penalty", action="store_true",
                   help="keep the penalty at L2 in the augmented arm, as sessions 9-11 did")
    s.add_argument("--workers", type=int, default=2)
    d = sub.add_parser("shift")
    d.add_argument("--orig-cache", type=Path, required=True, help=ORIG_CACHE_HELP)
    d.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    for p in (s, d):
        p.add_argument("--antialias", action="store_true",
                       help="extract with ScanOptions.crop_antialias (own caches: features_antialias.jsonl, and "
                            "--orig-cache should name another file than the default run's)")
        p.add_argument("--version-cache", type=Path, default=None,
                       help="one feature cache for every version (e.g. a detector eval run's features.jsonl, whose "
                            "copies --root names) instead of ROOT/VARIANT/features*.jsonl")
    for p in (m, s, d):
        p.add_argument("--root", type=Path, default=Path("/tmp/reenc"),
                       help="where the copies are (default /tmp/reenc; a detector eval run keeps its own in OUT/copies)")
    a = ap.parse_args()
    ROOT = a.root.resolve()
    {"make": cmd_make, "score": cmd_score, "shift": cmd_shift}[a.cmd](a)


if __name__ == "__main__":
    main()
