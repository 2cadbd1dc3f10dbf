"""Does a new per-clip feature add to the fused score? (experiment, ships nothing)

Stacks a candidate feature on the out-of-fold fused logit of a ``detector eval``
run and reports grouped-CV AUC of: the fused logit refitted alone (the baseline;
a refit, so it differs a little from the eval's own AUC), the feature alone,
and both. The procedure is :func:`detector.evaluation.cross_validated_logits`
(6 folds by footage group, fold assignments 0-2 averaged, L2 = 1), the same
folds ``detector eval`` uses. A feature that only re-measures what the fusion
already sees scores well alone and adds nothing stacked.

``--features`` is a JSON object ``{clip path as in the manifest: {name: value}}``,
as written by ``experiments/flow_probe.py`` and ``experiments/face_mesh_sbi.py score --json``::

    python experiments/stack_probe.py --manifest ../shared/data/dev/manifest.csv \\
        --scores runs/eval-stream/scores.csv --features /tmp/flow_feats_15.0.json --names resid_std --log
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from detector.evaluation import cross_validated_logits
from detector.fusion.logistic import roc_auc


def stacked(rows: list[dict], scores: dict[str, float], features: dict[str, dict], names: list[str],
            log: bool) -> dict[str, tuple[float, float]]:
    """{"fused", "feature", "fused+feature"}: (AUC overall, AUC DeepFaceLive), out of fold."""
    y = np.array([r["label"] == "fake" for r in rows], dtype=int)
    groups = [r["group"] for r in rows]
    dfl = np.array([r["source"] == "DeepFaceLive" for r in rows])
    p = np.clip(np.array([scores.get(r["path"], np.nan) for r in rows], dtype=float), 1e-6, 1 - 1e-6)
    fused = np.log(p / (1 - p))
    f = np.array([[(features.get(r["path"]) or {}).get(n, np.nan) for n in names] for r in rows], dtype=float)
    f = np.where(np.isfinite(f), f, np.nanmean(f, axis=0))  # a clip the probe could not measure gets the mean
    if log:
        f = np.log(np.maximum(f, 0) + 1e-3)
    usable = np.isfinite(fused)
    out = {}
    for name, x in (("fused", fused[:, None]), ("feature", f), ("fused+feature", np.column_stack([fused, f]))):
        lg = cross_validated_logits(np.nan_to_num(x), y, groups, usable, l2=1.0)
        ok = np.isfinite(lg)
        out[name] = (roc_auc(y[ok], lg[ok]), roc_auc(y[ok & dfl], lg[ok & dfl]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--scores", type=Path, required=True, help="scores.csv of a `detector eval` run")
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--names", nargs="+", required=True, help="feature names to stack (together)")
    ap.add_argument("--log", action="store_true", help="log-transform the features (positive magnitudes)")
    a = ap.parse_args(argv)
    rows = list(csv.DictReader(open(a.manifest, newline="")))
    scores = {r["path"]: float(r["score"]) for r in csv.DictReader(open(a.scores, newline="")) if r["score"]}
    res = stacked(rows, scores, json.loads(a.features.read_text()), a.names, a.log)
    for name, (auc, auc_dfl) in res.items():
        print(f"{name:14s} grouped-CV AUC {auc:.3f}  DeepFaceLive {auc_dfl:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
