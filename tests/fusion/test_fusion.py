import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detector.errors import ConfigError, ModelError
from detector.evaluation import cross_validated_scores, group_bootstrap_auc, group_folds, threshold_for_fpr
from detector.fusion.logistic import bound_blocks, fit_logistic, roc_auc, to_onnx
from detector.fusion.model import FusionModel, FusionOptions


def test_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))


def test_logistic_learns_a_separable_signal_and_onnx_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] + rng.normal(0, 0.3, 200) > 0).astype(int)
    x[5, 1] = np.nan  # NaNs are imputed, not propagated
    m = fit_logistic(x, y, l2=1.0)
    assert roc_auc(y, m.predict_proba(x)) > 0.95
    assert m.coef[0] > 0 > m.coef[2]
    import onnx

    path = tmp_path / "f.onnx"
    onnx.save(to_onnx(m, 3), str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"features": x.astype(np.float32)})[0][:, 0]
    np.testing.assert_allclose(got, m.predict_proba(x), atol=1e-5)


def test_group_folds_never_split_a_group():
    groups = [f"g{i % 7}" for i in range(40)]
    folds = group_folds(groups, 4)
    assert np.sum(folds, axis=0).tolist() == [1] * 40  # each clip in exactly one fold
    for f in folds:
        inside = {g for g, sel in zip(groups, f) if sel}
        outside = {g for g, sel in zip(groups, f) if not sel}
        assert not inside & outside


def test_threshold_for_fpr_bounds_false_positives():
    genuine = np.linspace(0, 1, 50)
    t = threshold_for_fpr(genuine, 0.1)
    assert (genuine >= t).mean() <= 0.1


def test_shipped_fusion_model_loads_and_scores():
    with FusionModel() as fm:
        assert 0 < fm.low <= fm.high < 1
        p = fm.predict([{}, {n: 0.0 for n in fm.feature_names}])
        # nothing measured: every feature imputed, the prior alone; all zeros sits far outside
        # the pooled CNN activations' range, so it may saturate but must stay a probability
        assert p.shape == (2,) and 0 < p[0] < 1 and 0 <= p[1] <= 1
        assert fm.band(fm.high) == "likely_face_swapped"
        assert fm.band(fm.low - 1e-6) == "likely_genuine"


def test_missing_or_malformed_fusion_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError):
        FusionModel(FusionOptions(model_path=tmp_path / "none.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    (tmp_path / "bad.json").write_text(json.dumps({"feature_names": ["a"], "thresholds": {"low": 0.2, "high": 0.7}}))
    with pytest.raises(ModelError):
        FusionModel(FusionOptions(model_path=tmp_path / "bad.onnx"))


def test_groups_a_model_was_trained_on_are_left_out(tmp_path):
    from detector.evaluation import ManifestRow, split_seen

    (tmp_path / "sbi_face.json").write_text(json.dumps({"training_groups": ["g1"]}))
    (tmp_path / "other.json").write_text(json.dumps({"feature_names": [], "training_groups": ["g2"]}))
    rows = [ManifestRow("/a", "a", "real", group="g1"), ManifestRow("/b", "b", "fake", group="g2")]
    keep, seen = split_seen(rows, tmp_path, checks=("jitter", "sbi"))
    assert [r.group for r in keep] == ["g2"] and [r.group for r in seen] == ["g1"]
    # without the learned check its training footage is fair game
    keep, seen = split_seen(rows, tmp_path, checks=("jitter",))
    assert len(keep) == 2 and not seen


def test_groups_whose_fakes_share_a_face_are_linked(tmp_path):
    from detector.evaluation import ManifestRow, link_groups, read_manifest

    (tmp_path / "m.csv").write_text(
        "path,label,source,method,group,note\n"
        "a_fake.mp4,fake,DFL,swap,g1,celeb model Alice\n"
        "a.mp4,real,DFL,original,g1,source of a_fake\n"
        "b_fake.mp4,fake,DFL,swap,g2,celeb model Alice\n"
        "c_fake.mp4,fake,DFL,swap,g2,celeb model Bob\n"
        "d_fake.mp4,fake,DFL,swap,g3,celeb model Bob\n"
        "e_fake.mp4,fake,DFL,swap,g4,celeb model Carol\n"
        "f.mp4,real,other,original,g5,\n")
    rows = read_manifest(tmp_path / "m.csv")
    assert rows[1].note == "source of a_fake"
    linked = link_groups(rows)
    # Alice links g1 and g2, Bob links g2 and g3: one group, transitively; Carol's and f's stay alone
    assert [r.group for r in linked] == ["g1+g2+g3"] * 5 + ["g4", "g5"]
    assert [r.path for r in linked] == [r.path for r in rows] and rows[0].group == "g1"  # input untouched
    assert [r.group for r in link_groups(rows, "")] == [r.group for r in rows]
    assert [r.group for r in link_groups(rows, "no such prefix")] == [r.group for r in rows]
    # a note that only shares the prefix links nothing by itself
    solo = [ManifestRow("/x", "x", "fake", group="gx", note="celeb model X"),
            ManifestRow("/y", "y", "fake", group="gy", note="celeb model Y")]
    assert [r.group for r in link_groups(solo)] == ["gx", "gy"]
    # a linked group may not take the name of a footage group that already exists
    clash = [ManifestRow("/p", "p", "fake", group="a", note="celeb model Z"),
             ManifestRow("/q", "q", "fake", group="b", note="celeb model Z"),
             ManifestRow("/r", "r", "real", group="a+b")]
    with pytest.raises(ConfigError, match="a\\+b"):
        link_groups(clash)


def test_cached_features_take_the_manifests_current_label_and_group(tmp_path, monkeypatch):
    import detector.evaluation as ev
    from detector.evaluation import ManifestRow, extract_features
    from detector.options import ScanOptions

    calls = []

    def fake_extract(row):
        calls.append(row.path)
        return ev.ClipFeatures(row, [{"track_id": 0, "duration": 3.0, "frames": 30, "features": {}}])

    monkeypatch.setattr(ev, "_extract_one", fake_extract)
    monkeypatch.setattr(ev, "_init_worker", lambda options: None)
    cache = tmp_path / "features.jsonl"
    opts = ScanOptions(use_fusion=False)
    extract_features([ManifestRow("/a", "a", "real", group="g1")], opts, cache=cache)
    again = extract_features([ManifestRow("/a", "a", "fake", group="g1+g2")], opts, cache=cache)
    assert calls == ["/a"]  # the second run read the cache
    assert again[0].row.group == "g1+g2" and again[0].row.label == "fake"


def test_a_failed_or_changed_clip_is_extracted_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    import detector.evaluation as ev
    from detector.evaluation import ManifestRow, extract_features
    from detector.options import ScanOptions

    calls = []

    def fake_extract(row):
        calls.append(row.path)
        if not Path(row.path).is_file():
            return ev.ClipFeatures(row, [], "bad_input: no such file")
        return ev.ClipFeatures(row, [{"track_id": 0, "duration": 3.0, "frames": 30, "features": {}}])

    monkeypatch.setattr(ev, "_extract_one", fake_extract)
    monkeypatch.setattr(ev, "_init_worker", lambda options: None)
    cache, opts = tmp_path / "features.jsonl", ScanOptions(use_fusion=False)
    kept, restored = tmp_path / "kept.mp4", tmp_path / "restored.mp4"
    kept.write_bytes(b"one")
    rows = [ManifestRow(str(kept), "kept.mp4", "real"), ManifestRow(str(restored), "restored.mp4", "fake")]
    first = extract_features(rows, opts, cache=cache)
    assert first[1].error and calls == [str(kept), str(restored)]
    restored.write_bytes(b"now here")  # the missing clip is put back: tried again, not remembered as missing
    again = extract_features(rows, opts, cache=cache)
    assert calls[2:] == [str(restored)] and again[1].error is None
    kept.write_bytes(b"other content")  # a clip replaced at the same path is extracted again
    extract_features(rows, opts, cache=cache)
    assert calls[3:] == [str(kept)]


def test_manifest_problems_are_named(tmp_path):
    from detector.errors import ConfigError
    from detector.evaluation import ManifestRow, read_manifest, require_cv_data

    bom = tmp_path / "bom.csv"  # a spreadsheet's "CSV UTF-8"
    bom.write_bytes("path,label\r\na.mp4,real\r\n".encode("utf-8-sig"))
    assert [r.rel_path for r in read_manifest(bom)] == ["a.mp4"]
    for text, message in (("path,label\n", "no clips"), ("path,label\na.mp4,real\n./a.mp4,fake\n", "twice")):
        (tmp_path / "m.csv").write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_manifest(tmp_path / "m.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        read_manifest(tmp_path)
    fakes = [ManifestRow(f"/{g}", g, "fake", group=g) for g in "abc"]
    with pytest.raises(ConfigError, match="both real and fake"):
        require_cv_data(fakes)
    with pytest.raises(ConfigError, match=r"at least 3 footage groups .*; this manifest has 2"):
        require_cv_data(fakes[:1] + [ManifestRow("/r", "r", "real", group="b")])
    require_cv_data(fakes[:2] + [ManifestRow("/r", "r", "real", group="c")])


def test_cli_default_link_note_matches_the_library():
    from detector.cli import DEFAULT_LINK_NOTE
    from detector.evaluation import DEFAULT_LINK_NOTE as LIBRARY_DEFAULT

    assert DEFAULT_LINK_NOTE == LIBRARY_DEFAULT


def test_window_trained_cross_validation_scores_every_clip_out_of_fold():
    from detector.evaluation import ClipFeatures, ManifestRow, cross_validated_scores, feature_matrix, window_matrix

    rng = np.random.default_rng(3)
    clips = []
    for i in range(24):
        fake = i % 2
        wins = [{"a.x": float(fake + rng.normal(0, 0.7)), "a.y": float(rng.normal())} for _ in range(5)]
        track = {"duration": 10.0, "frames": 100, "features": {"a.x": float(np.mean([w["a.x"] for w in wins])),
                                                               "a.y": 0.0}, "windows": wins}
        clips.append(ClipFeatures(ManifestRow(f"/{i}", f"{i}", "fake" if fake else "real", group=f"g{i // 2}"),
                                  [track]))
    names = ["a.x", "a.y"]
    x, y, usable = feature_matrix(clips, names)
    xw, yw, iw = window_matrix(clips, names)
    assert xw.shape == (120, 2) and set(iw) == set(range(24))
    window_scores = np.full(len(yw), np.nan)
    oof = cross_validated_scores(x, y, [c.row.group for c in clips], usable, windows=(xw, yw, iw),
                                 window_scores=window_scores)
    assert np.isfinite(oof).all() and roc_auc(y, oof) > 0.9
    # every window is scored by a fold that did not train on its clip, and ranks windows too
    assert np.isfinite(window_scores).all() and roc_auc(yw, window_scores) > 0.8


def test_clip_balanced_weights_give_every_clip_then_every_class_the_same_total():
    from detector.fusion.logistic import clip_balanced_weights

    # owner ids as a fold sees them: a subset of clip numbers, windows not grouped in order
    ids = np.array([40, 7, 23, 91, 12])  # fakes: 40, 7, 23 (6, 2, 1 windows); genuine: 91, 12 (3 each)
    owners = np.repeat(ids, [6, 2, 1, 3, 3])
    y = np.array([1] * 9 + [0] * 6)
    order = np.random.default_rng(0).permutation(len(y))
    owners, y = owners[order], y[order]
    w = clip_balanced_weights(y, owners)
    per_clip = np.array([w[owners == i].sum() for i in ids])
    assert np.allclose(per_clip[:3], per_clip[0]) and np.allclose(per_clip[3:], per_clip[3])
    assert np.isclose(w[y == 1].sum(), w[y == 0].sum()) and np.isclose(w.mean(), 1.0)
    with pytest.raises(ValueError):
        clip_balanced_weights(y, owners[:-1])
    with pytest.raises(ValueError):
        clip_balanced_weights(np.where(y == 1, 2, 0), owners)


def test_one_long_clip_cannot_outvote_the_other_clips_in_the_window_fit():
    # 20 short clips where x separates the classes, and one long genuine clip (an hour of
    # windows) that looks fake on x: weighted by window it would flip the sign of x
    from detector.evaluation import _fit_on

    rng = np.random.default_rng(5)
    y_clip = np.array([0, 1] * 10 + [0])
    x_clip = np.column_stack([y_clip + rng.normal(0, 0.3, 21), rng.normal(0, 1.0, 21)])
    x_clip[20, 0] = 1.5
    counts = np.full(21, 3)
    counts[20] = 1800
    owners = np.repeat(np.arange(21), counts)
    xw = x_clip[owners] + rng.normal(0, 0.05, (len(owners), 2))
    # trained as a fold is: on some of the clips only (two short ones held out)
    train = np.ones(21, bool)
    train[[3, 8]] = False
    model = _fit_on(x_clip, y_clip, train, 4.0, (xw, y_clip[owners], owners), None)
    assert model.coef[0] > 0.5
    assert roc_auc(y_clip[:20], model.decision(x_clip[:20])) > 0.95


def test_segment_rates_count_clips_with_any_window_over_the_threshold():
    from detector.evaluation import segment_rates

    y = np.array([0, 0, 1, 1, 0])
    owners = np.array([0, 0, 1, 1, 2, 3, 3])  # clip 4 has no windows and is not counted
    scores = np.array([0.1, 0.8, 0.2, 0.3, 0.9, 0.6, 0.1])
    assert segment_rates(y, scores, owners, 0.7) == {"genuine_clips_with_segment": 0.5,
                                                     "fake_clips_with_segment": 0.5}
    assert segment_rates(y, scores, owners, 0.5) == {"genuine_clips_with_segment": 0.5,
                                                     "fake_clips_with_segment": 1.0}


def test_a_block_of_many_features_cannot_push_the_logit_past_its_training_range():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12))
    y = (x[:, 0] + x[:, 2:12].sum(1) / 3 + rng.normal(0, 0.5, 300) > 0).astype(int)
    block = np.arange(12) >= 2  # ten "pooled activations"
    m = bound_blocks(fit_logistic(x, y, l2=1.0), x, [block])
    (mask, lo, hi), = m.blocks
    part = m.standardise(x)[:, block] @ m.coef[block]
    assert lo == pytest.approx(part.min()) and hi == pytest.approx(part.max())
    # on the training rows nothing is clipped; far outside them the block's share stops at its range
    unbounded = fit_logistic(x, y, l2=1.0)
    np.testing.assert_allclose(m.decision(x), unbounded.decision(x))
    wild = np.zeros((1, 12))
    wild[0, 2:] = 5 * x[:, 2:].std(0) * np.sign(m.coef[2:])
    assert unbounded.decision(wild)[0] - m.decision(wild)[0] > 1.0
    assert m.decision(wild)[0] == pytest.approx(m.intercept + m.standardise(wild)[0, ~block] @ m.coef[~block] + hi)
    wild[0, 2] = np.nan
    sess = ort.InferenceSession(to_onnx(m, 12).SerializeToString(), providers=["CPUExecutionProvider"])
    both = np.vstack([x[:20], wild]).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"features": both})[0][:, 0], m.predict_proba(both), atol=1e-5)
    # cross-validation bounds each fold's model the same way and still scores every clip
    groups = [f"g{i % 30}" for i in range(300)]
    oof = cross_validated_scores(x, y, groups, np.ones(300, bool), blocks=[block])
    assert np.isfinite(oof).all() and roc_auc(y, oof) > 0.8


def test_a_malformed_block_in_the_metadata_fails_at_load(tmp_path):
    shipped = FusionModel()
    meta = dict(shipped.meta)
    shipped.close()
    import shutil

    shutil.copy(FusionOptions().model_path, tmp_path / "f.onnx")
    block = dict(meta["blocks"]["face_cnn"])
    block["coef"] = block["coef"][:-1]  # one weight short
    meta["blocks"] = {"face_cnn": block}
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="malformed"):
        FusionModel(FusionOptions(model_path=tmp_path / "f.onnx"))
    del meta["blocks"]  # an older model without blocks still loads
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
        assert "face_cnn" not in old.suspicion({})


def test_group_bootstrap_interval_resamples_whole_groups():
    rng = np.random.default_rng(0)
    groups = [f"g{i // 2}" for i in range(80)]
    y = np.array([i % 2 for i in range(80)])
    assert group_bootstrap_auc(y, y + 0.1 * rng.random(80), groups) == (1.0, 1.0)
    lo, hi = group_bootstrap_auc(y, rng.random(80), groups, reps=400)
    assert lo < 0.5 < hi and hi - lo > 0.1
    # one group holding every fake: each resample has all of them or none, never a partial AUC
    y2 = np.array([1] * 10 + [0] * 70)
    s2 = np.r_[np.full(10, 0.9), rng.random(70) * 0.5]
    g2 = ["fakes"] * 10 + [f"r{i}" for i in range(70)]
    assert group_bootstrap_auc(y2, s2, g2, reps=200) == (1.0, 1.0)
    assert all(np.isnan(group_bootstrap_auc(np.ones(10), rng.random(10), [f"g{i}" for i in range(10)])))


def test_platt_scaling_recovers_a_known_miscalibration():
    from detector.fusion.logistic import fit_platt

    rng = np.random.default_rng(7)
    d = rng.normal(0, 6, 4000)  # an overconfident logit: the truth is 0.25 * d - 0.4
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.25 * d - 0.4)))).astype(int)
    slope, offset = fit_platt(d, y)
    assert slope == pytest.approx(0.25, abs=0.04)
    # classes are weighted equally, so the offset absorbs the sample's class imbalance as well
    prior = np.log(y.mean() / (1 - y.mean()))
    assert offset == pytest.approx(-0.4 - prior, abs=0.15)
    # out-of-fold logits that point the wrong way, far from 0: the slope stops at a small positive
    # floor instead of flipping the ranking, and the offset is refitted so that P stays near 0.5
    backwards = 5 + np.abs(rng.normal(size=200)) * np.r_[np.ones(100), -np.ones(100)]
    slope, offset = fit_platt(backwards, np.r_[np.zeros(100), np.ones(100)])
    assert slope == pytest.approx(1e-3)
    p = 1 / (1 + np.exp(-(slope * backwards + offset)))
    assert np.abs(p - 0.5).max() < 0.01
    # too few logits to calibrate on: the model is left as fitted
    assert fit_platt(np.array([-3.0, -2.0, 2.0, 3.0]), np.array([0, 0, 1, 1])) == (1.0, 0.0)


def test_a_rescaled_model_is_the_same_ranking_with_the_calibrated_logit_in_numpy_and_onnx():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8))
    y = (x[:, 0] + x[:, 3:].sum(1) / 2 + rng.normal(0, 0.5, 200) > 0).astype(int)
    block = np.arange(8) >= 3
    m = bound_blocks(fit_logistic(x, y, l2=1.0), x, [block])
    c = m.rescaled(0.3, -0.2)
    wild = np.zeros((1, 8))
    wild[0, 3:] = 6 * np.sign(m.coef[3:])  # past the block's range: the scaled bound must clip it
    both = np.vstack([x, wild])
    np.testing.assert_allclose(c.decision(both), 0.3 * m.decision(both) - 0.2, atol=1e-9)
    sess = ort.InferenceSession(to_onnx(c, 8).SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"features": both.astype(np.float32)})[0][:, 0],
                               c.predict_proba(both), atol=1e-5)
    with pytest.raises(ValueError):
        m.rescaled(0.0, 0.0)


def test_calibrated_cross_validation_tames_an_overconfident_fusion():
    from detector.evaluation import calibration_metrics, fit_final

    rng = np.random.default_rng(5)
    n = 240
    y = np.arange(n) % 2
    # a weak signal in few features plus many noise features: the in-fold fit is overconfident
    x = rng.normal(size=(n, 40))
    x[:, 0] += 0.8 * y
    groups = [f"g{i // 4}" for i in range(n)]
    usable = np.ones(n, bool)
    raw = cross_validated_scores(x, y, groups, usable, l2=0.01, calibrate=False)
    cal = cross_validated_scores(x, y, groups, usable, l2=0.01)
    before, after = calibration_metrics(y, raw), calibration_metrics(y, cal)
    assert before["log_loss"] > 0.75  # worse than saying 0.5 every time
    assert after["log_loss"] < 0.69 and after["brier"] < before["brier"]
    assert sum(b["clips"] for b in after["reliability"]) == n
    model, (slope, offset) = fit_final(x, y, groups, usable, l2=0.01)
    assert 0 < slope < 1  # the shipped model is shrunk towards 0.5, as the folds were
    unscaled = fit_logistic(x, y, l2=0.01, sample_weight=np.ones(n))
    np.testing.assert_allclose(model.decision(x), slope * unscaled.decision(x) + offset, atol=1e-6)


def test_calibration_metrics_of_known_forecasts():
    from detector.evaluation import calibration_metrics

    y = np.array([0, 0, 1, 1])
    m = calibration_metrics(y, np.full(4, 0.5))
    assert m["log_loss"] == pytest.approx(np.log(2)) and m["brier"] == pytest.approx(0.25)
    assert [b["clips"] for b in m["reliability"]] == [0, 0, 4, 0, 0]
    perfect = calibration_metrics(y, np.array([0.0, 0.0, 1.0, 1.0]))
    assert perfect["log_loss"] < 1e-5 and perfect["brier"] < 1e-10
    assert perfect["reliability"][-1]["fraction_fake"] == 1.0  # p = 1 falls in the last bin


def test_nested_calibration_never_fits_on_the_clips_or_windows_it_scores(monkeypatch, count_out_of_fold_scorings):
    import detector.evaluation as ev

    rng = np.random.default_rng(11)
    n = 60
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 3)) + 0.7 * y[:, None]
    groups = [f"g{i // 3}" for i in range(n)]
    # the last column of every clip and window row is its clip's index, so the spies can tell
    # which clips a model was fitted on and scored, whatever renumbering happened on the way
    owners = np.repeat(np.arange(n), 2)
    xw = np.hstack([x[owners] + rng.normal(0, 0.3, (2 * n, 3)), owners[:, None].astype(float)])
    xc = np.hstack([x, np.arange(n)[:, None].astype(float)])
    events: list[tuple[str, set]] = []
    real_fit, real_proba = ev._fit_on, ev.LogisticModel.predict_proba

    def fit_spy(x_, y_, train, l2, windows, blocks):
        sel = np.isin(windows[2], np.flatnonzero(train))
        # renumbered window owners must point at the clip row of the same clip
        assert np.array_equal(x_[windows[2][sel], -1], windows[0][sel, -1])
        events.append(("fit", set(windows[0][sel, -1].astype(int).tolist())))
        return real_fit(x_, y_, train, l2, windows, blocks)

    def proba_spy(self, rows):
        events.append(("score", set(np.asarray(rows)[:, -1].astype(int).tolist())))
        return real_proba(self, rows)

    monkeypatch.setattr(ev, "_fit_on", fit_spy)
    monkeypatch.setattr(ev.LogisticModel, "predict_proba", proba_spy)
    window_scores = np.full(2 * n, np.nan)
    ev.cross_validated_scores(xc, y, groups, np.ones(n, bool), l2=1.0, seeds=(0,),
                              windows=(xw, np.repeat(y, 2), owners), window_scores=window_scores)
    assert np.isfinite(window_scores).all()
    # each outer fold fits its model and its inner calibration folds, then scores its clips and their
    # windows: every fit must be disjoint from the clips scored right after it
    assert count_out_of_fold_scorings(events) == 6


def test_segment_threshold_keeps_genuine_clips_with_a_segment_at_the_target_rate():
    from detector.evaluation import segment_rates, segment_threshold

    rng = np.random.default_rng(3)
    n = 40
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    owners = np.repeat(np.arange(n), 5)  # five windows a clip
    scores = rng.uniform(0.2, 0.7, len(owners)) + 0.25 * (y[owners] == 1)
    scores[7] = np.nan  # an unscored window is ignored
    high = 0.5
    t = segment_threshold(y, scores, owners, high, 0.10)
    rates = segment_rates(y, scores, owners, t)
    assert rates["genuine_clips_with_segment"] <= 0.10
    # the lowest such threshold: just below it, more genuine clips would be flagged
    assert segment_rates(y, scores, owners, t - 1e-5)["genuine_clips_with_segment"] > 0.10
    assert t >= high
    # never below the verdict threshold, even when windows are calm
    assert segment_threshold(y, scores * 0.1, owners, high, 0.10) == high


def test_the_shipped_model_carries_a_segment_threshold_and_older_metadata_falls_back(tmp_path):
    import shutil

    with FusionModel() as shipped:
        meta = dict(shipped.meta)
        # written by train-fusion (not the fallback): at or above the verdict threshold
        assert meta["thresholds"]["segment"] == shipped.segment_high >= shipped.high
    shutil.copy(FusionOptions().model_path, tmp_path / "f.onnx")
    meta["thresholds"] = {k: v for k, v in meta["thresholds"].items() if k != "segment"}
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
        assert old.segment_high == old.high


def test_the_shipped_model_records_its_training_face_heights_and_older_metadata_gives_none(tmp_path):
    import shutil

    with FusionModel() as shipped:
        meta = dict(shipped.meta)
        px = meta["face_px"]
        # written by train-fusion from the training clips: ordered quantiles of plausible face heights
        assert 20 < px["p05"] < px["p50"] < px["p95"] < 2000
        assert shipped.small_face_px == px["p05"]
    shutil.copy(FusionOptions().model_path, tmp_path / "f.onnx")
    del meta["face_px"]
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
        assert old.small_face_px is None


def test_training_face_heights_are_quantiles_of_the_usable_clips_and_empty_without_any():
    from detector.evaluation import ClipFeatures, ManifestRow
    from detector.fusion.train import training_face_heights
    from detector.timeline import FACE_SIZE_FEATURE

    def clip(i, px):
        feats = {} if px is None else {FACE_SIZE_FEATURE: float(np.log(px))}
        return ClipFeatures(ManifestRow(f"/c{i}", f"c{i}", "real", group=f"g{i}"),
                            [{"track_id": 0, "duration": 5.0, "frames": 50, "features": feats}])

    clips = [clip(i, px) for i, px in enumerate([100, 200, 300, None, 5000])]
    usable = np.array([True, True, True, True, False])  # the 5000 px clip is not learned from
    px = training_face_heights(clips, usable)
    assert px["p50"] == pytest.approx(200.0)
    assert 100 < px["p05"] < px["p50"] < px["p95"] < 300
    # no clip with a measured size (features cached before sizes were recorded): no cut-off at all
    assert training_face_heights([clip(0, None), clip(1, None)], np.array([True, True])) == {}
    assert training_face_heights(clips, np.zeros(5, bool)) == {}
    # a clip without a track long enough to be its main one has no size, whatever its flag says
    brief = clip(9, 1000)
    brief.tracks[0]["duration"] = 1.0
    assert training_face_heights(clips[:3] + [brief], np.ones(4, bool))["p50"] == pytest.approx(200.0)


def test_the_shipped_model_records_the_settings_its_features_were_made_with(tmp_path):
    import shutil

    from detector.checks import DEFAULT_CHECKS
    from detector.evaluation import MAIN_TRACK_MIN_S
    from detector.options import ANALYSIS_VERSION, ScanOptions

    with FusionModel() as shipped:
        meta = dict(shipped.meta)
        # written by train-fusion: the default scan measures features as the model's training clips were
        assert meta["feature_settings"] == {**ScanOptions().feature_settings(), "min_track_seconds": MAIN_TRACK_MIN_S}
        assert shipped.feature_settings["analysis_version"] == ANALYSIS_VERSION
        assert shipped.setting_differences(ScanOptions()) == []
        # settings that choose which faces are analysed are not differences, nor checks beyond the model's
        assert shipped.setting_differences(ScanOptions(max_faces=9, gallery_grid=3, shot_cuts=True,
                                                       new_face_search_s=None)) == []
        assert shipped.setting_differences(ScanOptions(checks=tuple(DEFAULT_CHECKS) + ("sbi",))) == []
        assert shipped.setting_differences(ScanOptions(analysis_fps=5)) == ["analysis_fps 5 (the model's: 10)"]
        assert shipped.setting_differences(ScanOptions(analysis_fps=10.0000001)) == [
            "analysis_fps 10.0000001 (the model's: 10)"]
        assert shipped.setting_differences(ScanOptions(window_s=6.0, hop_s=3.0)) == [
            "window_s 6 (the model's: 4)", "hop_s 3 (the model's: 2)"]
        # max_side differs only where it would shrink the recording's frames otherwise
        assert shipped.setting_differences(ScanOptions(max_side=640)) == ["max_side 640 (the model's: 1280)"]
        assert shipped.setting_differences(ScanOptions(max_side=640), longest_side=1280) == [
            "max_side 640 (the model's: 1280)"]
        assert shipped.setting_differences(ScanOptions(max_side=640), longest_side=640) == []
        assert shipped.setting_differences(ScanOptions(max_side=1920), longest_side=1280) == []
        assert shipped.setting_differences(ScanOptions(max_side=1920), longest_side=1600) == [
            "max_side 1920 (the model's: 1280)"]
        # shorter tracks than the model's are judged: a difference; longer ones only: none
        assert shipped.setting_differences(ScanOptions(min_track_seconds=1.0)) == [
            "min_track_seconds 1 (the model's: 2)"]
        assert shipped.setting_differences(ScanOptions(min_track_seconds=3.0)) == []
        assert shipped.setting_differences(ScanOptions(checks=("jitter", "pose"))) == [
            "checks not run: boundary, expression, face_cnn, hard_pose, identity, sharpness, texture_flicker "
            "(the model reads them)"]
        assert "checks not run: boundary" in shipped.setting_differences(ScanOptions(checks=()))[0]
    shutil.copy(FusionOptions().model_path, tmp_path / "f.onnx")

    def load(**changes):
        (tmp_path / "f.json").write_text(json.dumps({**meta, **changes}))
        return FusionModel(FusionOptions(model_path=tmp_path / "f.onnx"))

    # another analysis version: the features of other arithmetic
    with load(feature_settings={**meta["feature_settings"], "analysis_version": "4"}) as old:
        assert old.setting_differences(ScanOptions()) == [f"analysis_version {ANALYSIS_VERSION} (the model's: 4)"]
    # a model from before the record: only its analysis rate is known and compared, if it is a number
    older = {k: v for k, v in meta.items() if k != "feature_settings"}
    (tmp_path / "f.json").write_text(json.dumps(older))
    with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
        assert old.setting_differences(ScanOptions(window_s=6.0, hop_s=3.0)) == []
        assert old.setting_differences(ScanOptions(analysis_fps=5)) == ["analysis_fps 5 (the model's: 10)"]
    for legacy in (None, "ten"):
        (tmp_path / "f.json").write_text(json.dumps({**older, "analysis_fps": legacy}))
        with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
            assert old.setting_differences(ScanOptions(analysis_fps=5)) == []
    # a setting recorded as null is not recorded
    with load(feature_settings={**meta["feature_settings"], "max_side": None}) as partial:
        assert partial.setting_differences(ScanOptions(max_side=640)) == []
    for bad in ({"analysis_fps": True}, {"analysis_fps": [10]}, {"analysis_fps": "ten"}, {"max_side": "1280"},
                {"analysis_version": None, "hop_s": {"s": 2}}):
        with pytest.raises(ModelError):
            load(feature_settings=bad)
    with load(feature_settings={"analysis_version": 4}) as numbered:  # a version written as a number is its text
        assert numbered.setting_differences(ScanOptions()) == [f"analysis_version {ANALYSIS_VERSION} (the model's: 4)"]
    # the checks compared are those the model's feature names come from, not today's default set
    names = list(meta["feature_names"])
    renamed = [("sbi.score" if n == "jitter.median" else n) for n in names]
    assert renamed != names
    with load(feature_names=renamed) as reads_sbi:
        assert reads_sbi.setting_differences(ScanOptions()) == ["checks not run: sbi (the model reads them)"]
        assert reads_sbi.setting_differences(ScanOptions(checks=tuple(DEFAULT_CHECKS) + ("sbi",))) == []
    # a name that is no check's (train-fusion never writes one) is not asked for
    with load(feature_names=[("track.log_face_px" if n == "jitter.median" else n) for n in names]) as odd:
        assert odd.setting_differences(ScanOptions()) == []


def test_a_check_with_several_features_reads_as_a_share_of_genuine_footage_like_a_check_with_one():
    # the largest of a check's per-feature shares runs high on genuine footage (two features: median 0.71); mapped
    # through its own distribution on genuine training clips it is again a share of genuine footage
    from detector.fusion.model import raw_check_suspicion
    from detector.fusion.train import check_quantiles

    rng = np.random.default_rng(0)
    names = ["two.a", "two.b", "one.a", "three.a", "three.b", "three.c"]
    train, fresh = rng.normal(size=(3000, 6)), rng.normal(size=(4000, 6))
    signs = [1, -1, 1, 1, 1, -1]
    reference = {n: {"genuine_quantiles": np.quantile(train[:, j], np.linspace(0, 1, 21)).tolist(), "sign": s}
                 for j, (n, s) in enumerate(zip(names, signs))}
    cq = check_quantiles(names, train, reference, {})
    assert set(cq) == {"two", "one", "three"} and all(len(q) == 21 for q in cq.values())
    parsed = {n: (np.asarray(v["genuine_quantiles"]), v["sign"]) for n, v in reference.items()}
    raw = raw_check_suspicion(fresh, names, parsed, {})
    assert np.median(raw["two"]) == pytest.approx(0.71, abs=0.03)
    assert np.median(raw["three"]) == pytest.approx(0.79, abs=0.03)
    for check in ("two", "one", "three"):
        mapped = np.interp(raw[check], cq[check], np.linspace(0, 1, 21))
        assert np.median(mapped) == pytest.approx(0.5, abs=0.05)
        assert np.mean(mapped >= 0.66) == pytest.approx(0.34, abs=0.05)
    # a feature the row lacks leaves the check to its others; none at all gives no value
    row = fresh[:2].copy()
    row[0, 0] = np.nan
    row[1, :2] = np.nan
    raw2 = raw_check_suspicion(row, names, parsed, {})
    assert raw2["two"][0] == pytest.approx(1 - np.interp(row[0, 1], parsed["two.b"][0], np.linspace(0, 1, 21)))
    assert np.isnan(raw2["two"][1])


def test_the_shipped_model_calibrates_every_checks_suspicion_and_older_metadata_shows_the_largest_share(tmp_path):
    import shutil

    with FusionModel() as shipped:
        meta = json.loads(json.dumps(shipped.meta))
        feats = {n: 0.0 for n in shipped.feature_names}
        calibrated = shipped.suspicion(feats)
    checks = {n.split(".")[0] for n in meta["reference"]} | set(meta["blocks"])
    assert set(meta["check_quantiles"]) == checks
    shutil.copy(FusionOptions().model_path, tmp_path / "f.onnx")
    del meta["check_quantiles"]
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with FusionModel(FusionOptions(model_path=tmp_path / "f.onnx")) as old:
        raw = old.suspicion(feats)
    assert set(raw) == set(calibrated) and raw != calibrated
    for check, q in json.loads(__import__("pathlib").Path(FusionOptions().model_path).with_suffix(".json").read_text())["check_quantiles"].items():
        assert calibrated[check] == pytest.approx(np.interp(raw[check], q, np.linspace(0, 1, len(q))))
    meta["check_quantiles"] = {"jitter": [0.9, 0.1]}  # falling: not quantiles
    (tmp_path / "f.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="malformed"):
        FusionModel(FusionOptions(model_path=tmp_path / "f.onnx"))
