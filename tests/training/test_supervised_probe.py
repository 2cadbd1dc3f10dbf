"""The supervised ceiling probe: group merging, its inputs and out-of-fold scoring."""
import numpy as np
import pytest

from detector.training.sbi_eval import roc_auc
from detector.training.supervised_probe import ProbeOptions, merged_groups, out_of_fold_scores, probe_samples


def test_groups_sharing_a_swap_identity_are_merged():
    rows = [
        {"group": "a", "note": "celeb model X"},
        {"group": "a", "note": ""},
        {"group": "b", "note": "celeb model X"},
        {"group": "c", "note": "celeb model Y"},
        {"group": "d", "note": "FaceSwap"},
        {"group": "e", "note": "FaceSwap"},
    ]
    g = merged_groups(rows, "celeb model")
    assert g[0] == g[1] == g[2]  # a and b share celebrity X
    assert len({g[0], g[3], g[4], g[5]}) == 4  # notes without the prefix link nothing
    assert len(set(merged_groups(rows, ""))) == 5  # disabled: the manifest groups as they are
    # the names themselves decide how grouped folds fall, so the probes' logged numbers depend on them
    assert g == ["note:celeb model X"] * 3 + ["note:celeb model Y", "group:d", "group:e"]


def test_diff_samples_only_pair_consecutive_frames():
    crops = np.zeros((4, 20, 20, 3), np.uint8)
    crops[1] = 255
    times = np.array([0.0, 0.1, 0.2, 2.0])  # a detection gap before the last frame
    d = probe_samples(times, crops, "diff", 8, max_gap=0.15)
    assert d.shape == (2, 8, 8, 3)
    assert d[0].min() == pytest.approx(1.0) and d[1].max() == pytest.approx(-1.0)
    f = probe_samples(times, crops, "frame", 8, max_gap=0.15)
    assert f.shape == (4, 8, 8, 3) and f.max() <= 1.0
    with pytest.raises(ValueError):
        probe_samples(times, crops, "flow", 8, max_gap=0.15)


def test_out_of_fold_scores_separate_a_learnable_artifact_on_unseen_groups():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    samples, labels, groups = [], [], []
    for clip in range(12):
        fake = clip % 2 == 1
        x = rng.uniform(0.3, 0.7, (20, 16, 16, 3)).astype(np.float32)
        if fake:  # a bright blended patch in the middle of every crop
            x[:, 5:11, 5:11] += 0.3
        samples.append(x)
        labels.append(fake)
        groups.append(f"g{clip // 2}")  # each group holds one real and one fake clip
    samples.append(np.zeros((0, 16, 16, 3), np.float32))  # a clip without a face
    labels.append(False)
    groups.append("g6")
    labels = np.array(labels)
    scores = out_of_fold_scores(samples, labels, groups, ProbeOptions(input="frame", size=16, epochs=30, folds=3))
    assert np.isnan(scores[-1])
    assert roc_auc(scores[:-1][labels[:-1]], scores[:-1][~labels[:-1]]) > 0.9
