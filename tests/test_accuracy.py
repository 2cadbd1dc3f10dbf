"""Accuracy on the labelled dev set (../shared/data/dev), by grouped cross-validation.

Slow (about 10 minutes: it re-encodes every clip four times): marked ``accuracy``. Deselect with ``-m 'not accuracy'``.
The floors sit just under what was measured when the models were committed
(see models/fusion.md); a drop below them means a regression.
"""
import json
from pathlib import Path

import pytest

DEV_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "manifest.csv"

pytestmark = [pytest.mark.accuracy,
              pytest.mark.skipif(not DEV_MANIFEST.is_file(), reason="../shared/data/dev not present")]

# measured with groups whose fakes share a celebrity face linked (27 groups; session 8) and anti-aliased face crops
# (session 10; with plain-warp crops the same eval measured 0.757 / 0.774 / 0.589). The fold assignment alone moves
# these by ~0.04 (experiments/fold_assignment_spread.py: blocks of 3 assignments 0.753-0.792, DFL 0.753-0.793), and
# it depends on the groups' names, so the floors sit under the worst block.
# Since session 11 every fold is fitted on the clips and four re-encoded copies of each (detector.fusion.augment),
# as the shipped fusion is; without the copies the same eval measured 0.776 / 0.793 / 0.575. Over 12 fold
# assignments with copies the worst block of 3 scores 0.757 (DFL 0.764) before calibration (session 12, with the
# penalty grown with the copies; session 11's flat penalty: 0.749, DFL 0.758).
AUC_FLOOR = 0.74  # measured 0.785 with calibrated folds, 0.788 before calibration (models/fusion.md; session 18)
DFL_AUC_FLOOR = 0.74  # measured 0.804
MAX_FPR = 0.12  # measured 0.079; thresholds target 0.10
MAX_LOG_LOSS = 0.60  # measured 0.570 (classes weighted equally); a constant 0.5 scores 0.693
MAX_COPY_FPR = 0.16  # measured 0.079-0.108 on each recipe's copies, out of fold at the originals' threshold


def test_grouped_cv_auc_on_dev_set(tmp_path):
    from detector.eval_cli import run_eval

    run_eval(DEV_MANIFEST, tmp_path, workers=2, cv=True)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["scored"] >= m["clips"] - 2
    assert m["cv_groups"] < m["footage_groups"]  # groups sharing a celebrity face were linked
    assert m["auc"] >= AUC_FLOOR, m
    assert m["auc_by_source"]["DeepFaceLive"] >= DFL_AUC_FLOOR, m
    assert m["fpr_at_high"] <= MAX_FPR, m
    # the probability must stay worth more than a coin toss (before calibration it scored 0.995)
    assert m["log_loss"] <= MAX_LOG_LOSS, m
    # re-encoded and shrunk genuine recordings must not be flagged much more often than the originals
    from detector.fusion.augment import TRAINING_COPIES
    from detector.fusion.train import fusion_penalty

    assert set(m["copies"]) == set(TRAINING_COPIES), m["copies"]
    assert m["l2"] == fusion_penalty(1 + len(TRAINING_COPIES))  # the copies do not weaken the penalty
    for recipe, c in m["copies"].items():
        assert c["scored"] >= m["clips"] - 2, (recipe, c)
        assert c["fpr_at_high"] <= MAX_COPY_FPR, (recipe, c)
