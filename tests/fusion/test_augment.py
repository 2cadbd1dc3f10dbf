"""Re-encoded training copies (detector.fusion.augment) and how grouped CV fits on them."""
from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from detector.errors import ConfigError, CorruptVideoError, InputError
from detector.evaluation import ClipFeatures, ManifestRow, feature_matrix
from detector.fusion.augment import (RECIPES, TRAINING_COPIES, check_recipes, copy_metrics, copy_path, make_copies,
                                     reencode)
from detector.synth import render_call
from detector.video.pyav_source import open_video, probe


def _timestamps(path) -> list[Fraction]:
    with open_video(path, max_side=None) as src:
        return [f.pts for f in src.frames()]


@pytest.mark.parametrize("recipe", TRAINING_COPIES)
def test_each_training_copy_keeps_every_frame_and_its_timestamp_at_its_size(tmp_path, recipe):
    src = render_call(tmp_path / "vfr.mp4", seconds=1.0, fps=20, size=(320, 240), vfr=True, seed=4)
    dst = reencode(src, tmp_path / "out" / f"copy{RECIPES[recipe].suffix}", recipe)
    info = probe(dst)
    scale = RECIPES[recipe].scale
    assert (info.width, info.height) == (int(round(320 * scale / 2)) * 2, int(round(240 * scale / 2)) * 2)
    assert info.codec == {"libx264": "h264", "libvpx-vp9": "vp9"}[RECIPES[recipe].codec]
    before, after = _timestamps(src), _timestamps(dst)
    # a variable frame rate stays variable: the same stamps (to the container's clock, 1 ms in WebM)
    assert len(after) == len(before)
    assert max(abs(float(a - b)) for a, b in zip(before, after)) <= 0.001
    assert len({round(float(b - a), 3) for a, b in zip(after, after[1:])}) >= 2
    assert not list(dst.parent.glob("*.partial*"))


def test_a_rotated_recording_is_copied_upright(tmp_path):
    src = render_call(tmp_path / "rot.mp4", seconds=0.5, fps=10, size=(320, 240), rotation=90, seed=2)
    dst = reencode(src, tmp_path / "rot_copy.mp4", "h264_crf23")
    info = probe(dst)
    assert info.rotation == 0 and (info.width, info.height) == (320, 240)
    with open_video(src, max_side=None) as a, open_video(dst, max_side=None) as b:
        shown, copied = next(iter(a.frames())).image, next(iter(b.frames())).image
    assert copied.shape == shown.shape
    # the same picture the reader displays, not the stored (sideways) one
    assert np.abs(copied.astype(int) - shown.astype(int)).mean() < 6


def test_the_mirrored_copy_is_the_displayed_picture_flipped_left_to_right(tmp_path):
    src = render_call(tmp_path / "rot.mp4", seconds=0.5, fps=10, size=(320, 240), rotation=90, seed=3)
    dst = reencode(src, tmp_path / "mirror.mp4", "h264_mirror")
    with open_video(src, max_side=None) as a, open_video(dst, max_side=None) as b:
        shown, copied = next(iter(a.frames())).image, next(iter(b.frames())).image
    assert copied.shape == shown.shape
    flipped = np.abs(copied.astype(int) - shown[:, ::-1].astype(int)).mean()
    assert flipped < 6 < np.abs(copied.astype(int) - shown.astype(int)).mean()
    # its own copy path: a mirrored copy is never taken for a plain one of the same clip
    assert copy_path(tmp_path, "h264_mirror", src).parent.name != copy_path(tmp_path, "h264_crf23", src).parent.name


def test_bad_input_is_a_typed_error_and_leaves_no_file(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(CorruptVideoError):
        reencode(bad, tmp_path / "c" / "notes.mp4", "h264_crf32")
    assert not list((tmp_path / "c").glob("*"))
    with pytest.raises(InputError, match="no such file"):
        reencode(tmp_path / "gone.mp4", tmp_path / "c" / "gone.mp4", "h264_crf32")
    with pytest.raises(ConfigError, match="unknown re-encoding recipe"):
        check_recipes(["h264_crf32", "h265_magic"])


def test_a_raw_stream_without_timestamps_is_copied_as_the_reader_reads_it(tmp_path):
    raw = tmp_path / "raw.h264"  # an elementary stream: no container, no frame timestamps
    with av.open(str(raw), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(12):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), 20 * i, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    read = _timestamps(raw)
    copied = _timestamps(reencode(raw, tmp_path / "raw.mp4", "h264_crf32"))
    assert len(read) == 12 and copied == read  # the reader's extrapolated stamps, frame for frame


def test_an_encoder_failing_mid_copy_leaves_no_partial_file(tmp_path, monkeypatch):
    from detector.fusion import augment

    src = render_call(tmp_path / "s.mp4", seconds=0.5, fps=10, size=(160, 120), seed=1)
    real_mux = av.container.OutputContainer.mux
    calls = {"n": 0}

    def failing_mux(self, packet):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_mux(self, packet)  # opens the file and writes the first packet
        assert (tmp_path / "c" / "s.partial.mp4").exists()  # written under its temporary name...
        raise av.error.FFmpegError(5, "disk trouble")

    monkeypatch.setattr(av.container.OutputContainer, "mux", failing_mux)
    with pytest.raises(CorruptVideoError, match="disk trouble"):
        augment.reencode(src, tmp_path / "c" / "s.mp4", "h264_crf23")
    assert calls["n"] == 2 and not list((tmp_path / "c").glob("*"))  # ...and removed on failure
    monkeypatch.undo()
    monkeypatch.setitem(augment.RECIPES, "no_such_codec",
                        augment.ReencodeRecipe("no_such_encoder", ".mp4", 1.0, (), "a missing encoder"))
    with pytest.raises(ConfigError, match="no_such_encoder"):
        augment.reencode(src, tmp_path / "c" / "s.mp4", "no_such_codec")


def test_copy_paths_never_collide_and_stay_under_their_root(tmp_path):
    a = copy_path(tmp_path, "vp9", tmp_path / "clips/a/x.mp4")
    assert a.name == "x.mp4.webm" and a.parent.parent == tmp_path / "vp9"
    assert copy_path(tmp_path, "vp9", tmp_path / "clips/a/../a/x.mp4") == a  # the same file, however written
    others = [copy_path(tmp_path, "vp9", tmp_path / p) for p in ("clips/b/x.mp4", "clips/a/x.mkv", "other/x.mp4")]
    others.append(copy_path(tmp_path, "h264_crf32", tmp_path / "clips/a/x.mp4"))
    assert len({a, *others}) == 5
    for p in ("../../etc/x.mp4", "/abs/x.mp4"):
        assert tmp_path in copy_path(tmp_path, "vp9", p).parents


def test_clips_of_one_name_get_their_own_copies(tmp_path):
    import av

    real = render_call(tmp_path / "a" / "x.mp4", seconds=0.5, fps=10, size=(160, 120), seed=1)
    fake = render_call(tmp_path / "b" / "x.mp4", seconds=1.0, fps=10, size=(160, 120), seed=2)
    rows = [ManifestRow(str(real), "a/x.mp4", "real", group="G1"), ManifestRow(str(fake), "b/x.mp4", "fake", group="G2")]
    copies = make_copies(rows, tmp_path / "copies", ("h264_crf32",), workers=2)
    def count(path) -> int:
        with av.open(str(path)) as f:
            return sum(1 for _ in f.decode(video=0))

    sizes = [count(real), count(fake)]
    assert sizes[0] != sizes[1] and [count(c.path) for c in copies] == sizes  # each copy holds its own clip


def test_make_copies_gives_every_clip_a_row_per_recipe_and_reuses_what_exists(tmp_path, monkeypatch):
    good = render_call(tmp_path / "g.mp4", seconds=0.5, fps=10, size=(160, 120), seed=1)
    bad = tmp_path / "b.mp4"
    bad.write_bytes(b"\x00" * 100)
    rows = [ManifestRow(str(good), "clips/g.mp4", "real", group="G1", note="n"),
            ManifestRow(str(bad), "clips/b.mp4", "fake", group="G2")]
    seen = []
    copies = make_copies(rows, tmp_path / "copies", ("h264_crf32", "vp9"),
                         progress=lambda n, total, path, err: seen.append((n, total, err)))
    # recipe by recipe, clips in manifest order, each keeping its clip's label, group and note
    assert [c.rel_path for c in copies] == ["h264_crf32/clips/g.mp4", "h264_crf32/clips/b.mp4",
                                            "vp9/clips/g.mp4", "vp9/clips/b.mp4"]
    assert [(c.label, c.group) for c in copies] == [("real", "G1"), ("fake", "G2")] * 2 and copies[0].note == "n"
    # the broken clip gets its rows (so groups keep equal copy counts) but no file, and the error is reported
    assert [bool(err) for _, _, err in seen] == [False, True, False, True] and seen[-1][:2] == (4, 4)
    assert [os.path.isfile(c.path) for c in copies] == [True, False, True, False]
    made = {c.path: os.stat(c.path).st_mtime_ns for c in copies if c.rel_path.endswith("g.mp4")}

    def no_reencode(*a, **k):
        raise AssertionError("an existing copy was made again")

    monkeypatch.setattr("detector.fusion.augment.reencode", no_reencode)
    with pytest.raises(AssertionError):  # the missing copies are retried...
        make_copies(rows, tmp_path / "copies", ("h264_crf32", "vp9"))
    # ...and the existing ones left alone
    assert make_copies(rows[:1], tmp_path / "copies", ("h264_crf32", "vp9")) == [copies[0], copies[2]]
    assert {p: os.stat(p).st_mtime_ns for p in made} == made


def _clip(i: int, fake: int, group: str, shift: float, rng) -> ClipFeatures:
    wins = [{"jitter.x": float(fake + shift + rng.normal(0, 0.8)), "jitter.y": float(rng.normal())} for _ in range(4)]
    feats = {k: float(np.mean([w[k] for w in wins])) for k in ("jitter.x", "jitter.y")}
    row = ManifestRow(f"/{i}", f"{i}", "fake" if fake else "real", source="s", group=group)
    return ClipFeatures(row, [{"duration": 8.0, "frames": 80, "features": feats, "windows": wins}])


def _with_copies(n: int = 36, copies: int = 2, shift: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    originals = [_clip(i, i % 2, f"g{i // 3}", 0.0, rng) for i in range(n)]
    # a copy reads higher on "jitter.x" than its clip, as a re-encoded genuine face reads smoother
    out = list(originals)
    for v in range(copies):
        for c in originals:
            cc = _clip(0, c.y, c.row.group, shift * (v + 1), rng)
            out.append(replace(cc, row=replace(c.row, path=c.row.path + f"@{v}", rel_path=f"v{v}/{c.row.rel_path}")))
    version = np.repeat(np.arange(copies + 1), n)
    return out, version


def test_copies_leave_the_folds_and_what_is_reported_to_the_originals(monkeypatch, count_out_of_fold_scorings):
    import detector.evaluation as ev
    from detector.evaluation import segment_rates
    from detector.fusion.logistic import roc_auc
    from detector.fusion.train import L2, cross_validate_fusion, fusion_penalty, thresholds_from_oof

    clips, version = _with_copies()
    n = int((version == 0).sum())
    names = ["jitter.x", "jitter.y"]
    x, y, usable = feature_matrix(clips, names)
    groups = np.array([c.row.group for c in clips])
    # folds over originals plus copies hold the same groups as over the originals alone
    for seed in range(3):
        with_copies = [set(groups[f]) for f in ev.group_folds(list(groups), 6, seed)]
        alone = [set(groups[:n][f]) for f in ev.group_folds(list(groups[:n]), 6, seed)]
        assert with_copies == alone
    # no model fits on any version of a clip whose group it then scores (outer fits and their inner calibration)
    events: list[tuple[str, set]] = []
    real_fit, real_proba = ev._fit_on, ev.LogisticModel.predict_proba

    def groups_of(rows) -> set:
        # inner calibration folds fit on renumbered sub-arrays, so clips are found by their (unique) features;
        # a window row is not found, and is scored by the model that has just scored its clip
        return {groups[hit[0]] for r in np.asarray(rows) for hit in [np.flatnonzero((x == r).all(axis=1))]
                if hit.size}

    penalties: list[float] = []

    def fit_spy(x_, y_, train, l2, windows, blocks):
        events.append(("fit", groups_of(x_[train])))
        penalties.append(l2)
        return real_fit(x_, y_, train, l2, windows, blocks)

    def proba_spy(self, rows):
        found = groups_of(rows)
        if found:
            events.append(("score", found))
        return real_proba(self, rows)

    monkeypatch.setattr(ev, "_fit_on", fit_spy)
    monkeypatch.setattr(ev.LogisticModel, "predict_proba", proba_spy)
    cv = cross_validate_fusion(clips, names, x, y, usable, version == 0)
    monkeypatch.undo()
    # a calibrated pass, then an uncalibrated one (no inner fits), each of 3 fold assignments of 6 folds
    assert count_out_of_fold_scorings(events, calibrated=False) == 2 * 3 * 6
    # every clip, copies too, is scored out of fold; the thresholds are the originals'
    assert np.isfinite(cv.scores).all() and cv.original.sum() == n
    assert (cv.low, cv.high) == thresholds_from_oof(y[:n], cv.scores[:n])
    # the timeline's threshold and rates come from the originals' windows alone
    owned = cv.original[cv.windows[2]]
    assert np.isnan(cv.window_scores[~owned]).all() and np.isfinite(cv.window_scores[owned]).all()
    assert cv.segments == segment_rates(y, cv.window_scores, cv.windows[2], cv.segment_high)
    # every fit (outer folds, their inner calibration, the uncalibrated pass) used the penalty for the clips'
    # versions (the original and its copies)
    assert cv.l2 == L2 * (1 + int(version.max())) == fusion_penalty(len(clips) // n)
    assert penalties and set(penalties) == {cv.l2}
    uncalibrated = ev.cross_validated_scores(x, y, list(groups), usable, l2=cv.l2, windows=cv.windows, blocks=cv.blocks,
                                             calibrate=False)
    assert cv.auc_uncalibrated == roc_auc(y[:n], uncalibrated[:n]) != roc_auc(y, uncalibrated)


def test_fitting_on_copies_lowers_what_a_shifted_genuine_copy_scores():
    from detector.evaluation import calibrated_fold_model, window_matrix
    from detector.fusion.train import L2

    clips, version = _with_copies(n=48, copies=1, shift=1.0, seed=1)
    names = ["jitter.x", "jitter.y"]
    x, y, usable = feature_matrix(clips, names)
    groups = [c.row.group for c in clips]
    windows = window_matrix(clips, names)
    test_groups = {f"g{i}" for i in range(4)}
    test = np.array([g in test_groups for g in groups])
    alone = calibrated_fold_model(x, y, groups, ~test & (version == 0), 6, L2, windows, None)
    both = calibrated_fold_model(x, y, groups, ~test, 6, L2, windows, None)
    held_copies = test & (version == 1) & (y == 0)
    assert held_copies.sum() >= 4
    assert both.predict_proba(x[held_copies]).mean() < alone.predict_proba(x[held_copies]).mean() - 0.05


def test_penalty_keeps_its_strength_with_copies():
    from detector.fusion.logistic import fit_logistic
    from detector.fusion.train import L2, fusion_penalty, versions_per_clip

    assert fusion_penalty(1) == L2 and fusion_penalty(5) == 5 * L2
    with pytest.raises(ValueError):
        fusion_penalty(0)
    assert versions_per_clip(np.array([True, True, False, False, False, False])) == 3
    for uneven in (np.array([True, True, False]), np.zeros(4, bool)):
        with pytest.raises(ValueError):
            versions_per_clip(uneven)
    # why: k identical copies of every row fitted at k times the penalty give the model of the rows alone,
    # whereas at the same penalty the copies would count as k times the evidence
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] + rng.normal(size=40) > 0).astype(int)
    alone = fit_logistic(x, y, l2=fusion_penalty(1))
    copied = fit_logistic(np.tile(x, (4, 1)), np.tile(y, 4), l2=fusion_penalty(4))
    weaker = fit_logistic(np.tile(x, (4, 1)), np.tile(y, 4), l2=fusion_penalty(1))
    assert np.allclose(copied.coef, alone.coef, atol=1e-6)
    assert np.abs(weaker.coef).sum() > np.abs(alone.coef).sum() * 1.05


def test_copy_metrics_per_recipe():
    y = np.array([0, 0, 1, 1] * 3)
    scores = np.array([0.1, 0.2, 0.8, 0.9,   # originals
                       0.3, 0.6, 0.7, 0.95,  # copy A: one genuine clip over 0.5, AUC 1
                       np.nan, 0.2, 0.1, 0.9])  # copy B: one unscored, one fake missed
    version = np.repeat([0, 1, 2], 4)
    m = copy_metrics(y, scores, version, ["original", "A", "B"], high=0.5)
    assert set(m) == {"A", "B"}
    assert m["A"]["scored"] == 4 and m["A"]["auc"] == 1.0 and m["A"]["fpr_at_high"] == 0.5
    assert m["A"]["tpr_at_high"] == 1.0 and m["A"]["genuine_p_rise"] == pytest.approx(0.3)
    assert m["B"]["scored"] == 3 and m["B"]["fpr_at_high"] == 0.0 and m["B"]["tpr_at_high"] == 0.5
    assert m["B"]["genuine_p_rise"] == pytest.approx(0.0)  # only the scored genuine copy counts


def test_train_fusion_fits_on_copies_and_describes_the_originals(tmp_path, monkeypatch):
    import json

    import detector.fusion.train as tr

    man = tmp_path / "m.csv"
    man.write_text("path,label,source,method,group,note\n"
                   + "".join(f"c{i}.mp4,{'fake' if i % 2 else 'real'},s,m,g{i // 3},\n" for i in range(36)))
    rng = np.random.default_rng(5)

    extracted = []

    def fake_extract(rows, options, workers=1, cache=None, progress=None):
        extracted.append(len(rows))
        out = []
        for r in rows:
            copy = r.rel_path.count("/") > 0  # "RECIPE/c1.mp4"
            c = _clip(0, int(r.label == "fake"), r.group, 0.8 if copy else 0.0, rng)
            # copies are smaller pictures: their faces must not move the model's record of training face sizes
            c.tracks[0]["features"]["track.log_face_px"] = float(np.log(60.0 if copy else 150.0))
            out.append(replace(c, row=r))
        return out

    made = []

    def fake_make(rows, root, recipes, workers=1, progress=None):
        made.append(root)
        out = [replace(r, path=f"{root}/{name}/{r.rel_path}", rel_path=f"{name}/{r.rel_path}")
               for name in recipes for r in rows]
        for c in out[:-1]:  # the last copy could not be made
            Path(c.path).parent.mkdir(parents=True, exist_ok=True)
            Path(c.path).touch()
        return out

    monkeypatch.setattr(tr, "extract_features", fake_extract)
    monkeypatch.setattr(tr, "make_copies", fake_make)
    card = tr.train(man, tmp_path / "fusion.onnx", copies=("h264_crf32", "vp9"), cache=tmp_path / "c" / "f.jsonl")
    meta = json.loads((tmp_path / "fusion.json").read_text())
    assert made == [tmp_path / "c" / "copies"]  # beside the cache, so a second run finds them
    assert meta["clips"] == 36 and meta["usable_clips"] == 36 and meta["cv_metrics"]["clips"] == 36
    assert meta["copies"]["made"] == meta["copies"]["usable"] == 71
    assert meta["feature_settings"]["analysis_fps"] == 10.0 and meta["feature_settings"]["min_track_seconds"] == 2.0
    assert extracted[-1] == 71  # the missing copy was not extracted (nor cached as failed: the next run retries it)
    assert list(meta["copies"]["recipes"]) == ["h264_crf32", "vp9"]
    assert set(meta["cv_metrics"]["copies"]) == {"h264_crf32", "vp9"}
    assert meta["face_px"]["p05"] == pytest.approx(150.0)
    assert "re-encoded copies" in card and "| `vp9` | 35 |" in card
    # without copies: no copies made, none recorded
    made.clear()
    tr.train(man, tmp_path / "plain.onnx", copies=(), cache=None)
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert made == [] and plain["copies"]["recipes"] == {} and plain["cv_metrics"]["copies"] == {}
