"""Paired group bootstrap of the AUC gain between two ``detector eval`` runs on the same manifest (ships nothing).

Resamples whole groups 2,000 times and reports the gain of run B over run A with its 95% interval and how
often it is zero or negative. Groups are the footage groups linked where their fakes render the same face, as
``detector eval`` groups them since session 8 (``--link-note ''``: footage groups only, as up to session 7)::

    python experiments/paired_gain.py runs/eval-hand-linked/scores.csv runs/eval-linked/scores.csv
    python experiments/paired_gain.py runs/eval-hand-stream/scores.csv runs/eval-views/scores.csv --link-note ''
    python experiments/paired_gain.py runs/eval-s7/scores.csv runs/eval-views/scores.csv --link-note ''
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from detector.evaluation import DEFAULT_LINK_NOTE, link_groups, read_manifest  # noqa: E402
from detector.fusion.logistic import roc_auc  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[2] / "shared/data/dev/manifest.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="scores.csv of the baseline run")
    ap.add_argument("b", type=Path, help="scores.csv of the run compared with it")
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--link-note", default=DEFAULT_LINK_NOTE)
    a = ap.parse_args()
    rows = {r.rel_path: {"label": r.label, "group": r.group}
            for r in link_groups(read_manifest(MANIFEST), a.link_note)}

    def load(p: Path) -> dict[str, float]:
        return {r["path"]: float(r["score"]) for r in csv.DictReader(open(p)) if r["score"]}

    sa, sb = load(a.a), load(a.b)
    keys = [k for k in sa if k in sb]
    y = np.array([rows[k]["label"] == "fake" for k in keys])
    g = np.array([rows[k]["group"] for k in keys])
    s0, s1 = np.array([sa[k] for k in keys]), np.array([sb[k] for k in keys])
    rng = np.random.default_rng(0)
    groups = np.unique(g)
    gains = []
    for _ in range(a.reps):
        idx = np.concatenate([np.flatnonzero(g == x) for x in rng.choice(groups, len(groups))])
        if len(set(y[idx])) == 2:
            gains.append(roc_auc(y[idx], s1[idx]) - roc_auc(y[idx], s0[idx]))
    gains = np.array(gains)
    print(f"{len(keys)} clips: AUC {roc_auc(y, s0):.3f} -> {roc_auc(y, s1):.3f}, gain {roc_auc(y, s1) - roc_auc(y, s0):+.3f}, "
          f"95% {np.percentile(gains, 2.5):+.3f} to {np.percentile(gains, 97.5):+.3f}, "
          f"zero or negative in {np.mean(gains <= 0):.1%} of {len(gains)} resamples")


if __name__ == "__main__":
    main()
