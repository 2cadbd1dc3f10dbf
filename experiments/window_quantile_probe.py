"""Probe: score a clip by a quantile of its windows' fused scores instead of its mean features (ships nothing).

The shipped fusion scores a track by its features' mean over the 4 s timeline windows (for a logistic model
that is the mean of the windows' logits). A face swap that slips only at moments (an occlusion, a turn of the
head) might show in the call's worst windows rather than in its mean, so this reads the out-of-fold window
scores of the shipped procedure (the eval's folds: 6 by linked footage group, fold assignments 0-2 averaged,
fitted on the originals and their re-encoded copies, before calibration) and aggregates each clip's windows by
their median, 75th and 90th percentile and maximum. It also writes each clip's spread of window logits
(standard deviation) as a feature file for ``experiments/stack_probe.py``.

Uses the feature cache of an eval run; nothing is re-extracted if the cache holds every clip and copy::

    python experiments/window_quantile_probe.py --cache runs/eval-gate2/features.jsonl \\
        --copies-dir runs/eval-aug/copies --spread-json /tmp/window_spread.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.evaluation import (DEFAULT_LINK_NOTE, cross_validated_scores, feature_matrix,  # noqa: E402
                                 link_groups, read_manifest, split_seen)
from detector.fusion.augment import TRAINING_COPIES  # noqa: E402
from detector.fusion.logistic import roc_auc  # noqa: E402
from detector.fusion.train import (block_masks, fusion_feature_names, fusion_penalty, training_clips,  # noqa: E402
                                   versions_per_clip, window_matrix)
from detector.options import ScanOptions  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def per_clip(values: np.ndarray, owners: np.ndarray, n: int, reduce) -> np.ndarray:
    out = np.full(n, np.nan)
    for i in range(n):
        v = values[owners == i]
        v = v[np.isfinite(v)]
        if len(v):
            out[i] = reduce(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--cache", type=Path, required=True, help="features.jsonl of a `detector eval` run")
    ap.add_argument("--copies-dir", type=Path, required=True)
    ap.add_argument("--spread-json", type=Path, help="write {manifest path: {'spread': std of window logits}}")
    a = ap.parse_args(argv)

    rows, _ = split_seen(read_manifest(a.manifest))
    rows = link_groups(rows, DEFAULT_LINK_NOTE)
    tc = training_clips(rows, ScanOptions(analysis_fps=10.0, use_fusion=False), workers=2, cache=a.cache,
                        copies=TRAINING_COPIES, copies_dir=a.copies_dir)
    clips, orig = tc.clips, tc.original
    y = np.array([c.y for c in clips])
    names = fusion_feature_names(clips)
    x, _, usable = feature_matrix(clips, names)
    windows = window_matrix(clips, names)
    window_p = np.full(len(windows[1]), np.nan)
    track = cross_validated_scores(x, y, [c.row.group for c in clips], usable,
                                   l2=fusion_penalty(versions_per_clip(orig)), windows=windows,
                                   blocks=block_masks(names), window_scores=window_p, calibrate=False)
    source = np.array([c.row.source for c in clips])
    window_logit = np.log(window_p / (1 - window_p))
    owners, n = windows[2], len(clips)

    def show(label: str, s: np.ndarray) -> None:
        ok = orig & np.isfinite(s)
        parts = [f"all {roc_auc(y[ok], s[ok]):.3f}"]
        for src, short in (("DeepFaceLive", "DFL"), ("FaceForensics++ c40", "FF++")):
            sel = ok & (source == src)
            parts.append(f"{short} {roc_auc(y[sel], s[sel]):.3f}")
        print(f"{label:>28}: " + "  ".join(parts), flush=True)

    show("track mean features (shipped)", track)
    show("mean of window logits", per_clip(window_logit, owners, n, np.mean))
    for q in (0.5, 0.75, 0.9, 1.0):
        show(f"window logit quantile {q:g}", per_clip(window_logit, owners, n, lambda v, q=q: np.quantile(v, q)))
    spread = per_clip(window_logit, owners, n, np.std)
    show("spread of window logits", spread)
    if a.spread_json:
        out = {c.row.rel_path: {"spread": float(s)} for c, s, o in zip(clips, spread, orig) if o and np.isfinite(s)}
        a.spread_json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
