"""How much does the grouping, and the luck of the fold assignment, move the fusion's cross-validated AUC? (ships nothing)

``detector eval`` averages 3 fold assignments of 6 grouped folds. This refits the same fusion (windows weighted
per clip, the shipped penalty, blocks bounded) on the cached features of an eval run under 12 fold assignments,
in blocks of 3, and prints the out-of-fold AUC *before* calibration (the ranking; calibration is left out because
its inner CV makes each fold 19 fits) overall and on DeepFaceLive, for two groupings of the same clips:

- footage groups only (the manifest's ``group``), as ``detector eval`` did up to session 7;
- footage groups linked where their fakes render the same face (``--link-note``, default ``celeb model``), as it
  does since session 8 (:func:`detector.evaluation.link_groups`).

The spread between blocks is what the fold assignment alone does to a reported number::

    python experiments/fold_assignment_spread.py --cache runs/eval-linked/features.jsonl
    python experiments/fold_assignment_spread.py --cache runs/eval-hand-linked/features.jsonl \\
        --checks sharpness,boundary,texture_flicker,jitter,pose,expression,identity,hard_pose

Since session 11 the fusion is also fitted on re-encoded copies of its training clips; ``--copies-dir`` (an eval
run's ``OUT/copies``, whose features its cache holds) fits on them too, and scores the originals only::

    python experiments/fold_assignment_spread.py --cache runs/eval-aug/features.jsonl --copies-dir runs/eval-aug/copies

with the penalty grown with the copies as the fusion does since session 12 (``--flat-penalty``: session 11's fit).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import (DEFAULT_LINK_NOTE, cross_validated_scores, extract_features,  # noqa: E402
                                 feature_matrix, link_groups, read_manifest, split_seen, window_matrix)
from detector.fusion.logistic import roc_auc  # noqa: E402
from detector.fusion.augment import TRAINING_COPIES  # noqa: E402
from detector.fusion.train import L2, block_masks, fusion_feature_names, fusion_penalty, training_clips  # noqa: E402
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="features.jsonl of a detector eval run")
    ap.add_argument("--checks", default=None, help="the checks that eval run used (default: the default set)")
    ap.add_argument("--fuse", default=None,
                    help="fit the fusion on these checks' features only (comma-separated), read from the same cache")
    ap.add_argument("--link-note", default=DEFAULT_LINK_NOTE)
    ap.add_argument("--assignments", type=int, default=12)
    ap.add_argument("--copies-dir", type=Path, default=None,
                    help="fit on the re-encoded copies there too (made if missing), as detector eval does")
    ap.add_argument("--copies", default=",".join(TRAINING_COPIES),
                    help="the recipes fitted on with --copies-dir (comma-separated; default: the fusion's own)")
    ap.add_argument("--flat-penalty", action="store_true",
                    help="keep the penalty at L2 with copies, as session 11 did (since session 12 it grows with them)")
    a = ap.parse_args()
    if a.assignments < 3 or a.assignments % 3:
        ap.error("--assignments must be a positive multiple of 3")
    checks = tuple(a.checks.split(",")) if a.checks else None
    rows, _ = split_seen(read_manifest(MANIFEST), checks=checks)
    options = ScanOptions(use_fusion=False, checks=checks)
    if a.copies_dir is not None:
        tc = training_clips(rows, options, workers=2, cache=a.cache, copies=tuple(a.copies.split(",")),
                            copies_dir=a.copies_dir)
        clips, versions = tc.clips, len(tc.versions)
    else:
        clips, versions = extract_features(rows, options, workers=1, cache=a.cache), 1
    n = len(rows)
    l2 = L2 if a.flat_penalty else fusion_penalty(versions)
    names = fusion_feature_names(clips)
    if a.fuse:  # a subset of the cached run's checks, without re-extracting (a different --checks would)
        names = [n for n in names if n.split(".")[0] in a.fuse.split(",")]
    x, y, usable = feature_matrix(clips, names)
    dfl = np.array([c.row.source == "DeepFaceLive" for c in clips])
    windows, blocks = window_matrix(clips, names), block_masks(names)
    for label, grouped in (("footage groups", rows), (f"linked by '{a.link_note}'", link_groups(rows, a.link_note))):
        groups = [r.group for r in grouped] * versions  # a copy is in its clip's group
        parts, total = [], []
        for start in range(0, a.assignments, 3):
            s = cross_validated_scores(x, y, groups, usable, l2=l2, windows=windows, blocks=blocks, calibrate=False,
                                       seeds=range(start, start + 3))[:n]  # the originals: copies are not reported
            total.append(s)
            parts.append(f"{roc_auc(y[:n], s):.3f}/{roc_auc(y[:n][dfl[:n]], s[dfl[:n]]):.3f}")
        s = np.mean(total, axis=0)
        print(f"{label:28s} {len(set(groups))} groups; AUC/DFL per 3 assignments: {'  '.join(parts)};  "
              f"all {a.assignments}: {roc_auc(y[:n], s):.3f}/{roc_auc(y[:n][dfl[:n]], s[dfl[:n]]):.3f}")


if __name__ == "__main__":
    main()
