"""End to end through the library API on synthetic recordings, and bad input."""
import json

import numpy as np

import pytest

from detector import Analyzer, InputError, NotAVideoError, Report, ScanOptions, Verdict, scan
from detector.errors import ConfigError


@pytest.fixture(scope="module")
def analyzer():
    with Analyzer(ScanOptions()) as a:
        yield a


def test_scan_returns_a_full_report(analyzer, swap_clip):
    progress = []
    r = analyzer.scan(swap_clip, progress=lambda f, m: progress.append(f))
    assert r.verdict in (Verdict.likely_genuine, Verdict.inconclusive, Verdict.likely_face_swapped)
    assert 0.0 <= r.probability <= 1.0
    assert len(r.tracks) == 1
    t = r.tracks[0]
    assert t.probability is not None and t.timeline
    assert {c.name for c in t.checks} >= {"sharpness", "boundary", "jitter", "pose", "identity"}
    assert r.video.analysed_frames == pytest.approx(30, abs=2)
    assert r.video.sha256 and len(r.video.sha256) == 64
    assert r.evidence and r.evidence[0].thumbnail_jpeg_b64
    assert progress[-1] == 1.0 and progress == sorted(progress)
    # the report round-trips through JSON unchanged
    assert Report.from_json(r.to_json()) == r
    assert json.loads(r.to_json())["schema_version"] == "1.0"


def test_frames_left_undecoded_change_nothing_a_report_says(analyzer, swap_clip, monkeypatch):
    # the scan leaves undecoded the non-reference frames its clock skips; decoding every frame gives the same report
    import functools

    import detector.analysis as analysis
    from detector.video import PyAVSource

    skipping = analyzer.scan(swap_clip)
    monkeypatch.setattr(analysis, "PyAVSource", functools.partial(PyAVSource, skip_unreferenced=False))
    full = analyzer.scan(swap_clip)
    assert skipping.video.undecoded_frames > 0 and full.video.undecoded_frames == 0
    assert skipping.video.decoded_frames == full.video.decoded_frames == 45

    def comparable(report):
        d = report.model_dump(mode="json")
        for key in ("timings_s", "created_at"):
            d.pop(key)
        d["video"].pop("undecoded_frames")
        return d

    assert comparable(skipping) == comparable(full)


def test_call_probability_is_its_most_suspicious_participant(analyzer, genuine_clip):
    r = analyzer.scan(genuine_clip)
    assert r.probability == max(t.probability for t in r.tracks if t.probability is not None)


def test_no_face_gives_explicit_verdict_and_no_score(analyzer, no_face_clip):
    r = analyzer.scan(no_face_clip)
    assert r.verdict == Verdict.no_face
    assert r.probability is None and r.tracks == []


def test_face_for_one_second_is_insufficient_evidence(tmp_path):
    from detector.synth import render_call

    p = render_call(tmp_path / "short.mp4", seconds=1.0, fps=15, size=(480, 360), seed=5)
    r = scan(p)
    assert r.verdict == Verdict.insufficient_evidence
    assert r.probability is None
    # a track too short to score gets no per-check bars (their calibration is for scored tracks), features stay
    assert r.tracks and all(c.suspicion is None for t in r.tracks for c in t.checks)
    assert any(v is not None for t in r.tracks for c in t.checks for v in c.features.values())


def _centred_in(src, dst, width: int, height: int):
    """``src`` re-encoded in the middle of a grey ``width`` x ``height`` frame (its faces stay as many pixels)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in inp.decode(video=0):
            a = frame.to_ndarray(format="rgb24")
            canvas = np.full((height, width, 3), 128, np.uint8)
            y0, x0 = (height - a.shape[0]) // 2, (width - a.shape[1]) // 2
            canvas[y0:y0 + a.shape[0], x0:x0 + a.shape[1]] = a
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def test_a_face_too_small_for_the_whole_frame_search_is_found_by_searching_windows(analyzer, genuine_clip,
                                                                                   no_face_clip, tmp_path):
    from detector.api import SMALL_FACE_PASS_LABEL

    # the genuine call's ~100 px face in a 1280x720 frame: under a tenth of the width the whole-frame detector
    # (128 px) finds it not at all or too late
    wide = _centred_in(genuine_clip, tmp_path / "wide.mp4", 1280, 720)
    with Analyzer(ScanOptions(small_face_search=False)) as once:
        first = once.scan(wide)
    assert first.probability is None and first.verdict in (Verdict.no_face, Verdict.insufficient_evidence)
    assert not first.video.small_face_search
    labels = []
    r = analyzer.scan(wide, progress=lambda f, m: labels.append(m))
    assert r.probability is not None and r.tracks[0].probability is not None
    assert r.video.small_face_search and r.settings["gallery_grid"] == 2
    assert "searched again in 2x2 windows" in r.summary and "first_pass" in r.timings_s
    assert SMALL_FACE_PASS_LABEL in labels and labels[-1] == "done"
    # a recording whose faces the whole frame scores is scanned once, and says nothing of it
    labels.clear()
    plain = analyzer.scan(genuine_clip, progress=lambda f, m: labels.append(m))
    assert not plain.video.small_face_search and plain.settings["gallery_grid"] == 0
    assert SMALL_FACE_PASS_LABEL not in labels and "first_pass" not in plain.timings_s
    with Analyzer(ScanOptions(use_fusion=False)) as unfused:  # features only: nobody is scored, nobody was missed
        assert not unfused.scan(genuine_clip).video.small_face_search
    # nothing found in the windows either: the second scan's no-face verdict says where it looked
    blank = analyzer.scan(no_face_clip)
    assert blank.verdict == Verdict.no_face and blank.video.small_face_search
    assert "also searched in 2x2 windows" in blank.summary


def test_a_device_file_is_not_a_recording(analyzer):
    with pytest.raises(InputError, match="not a regular file"):
        analyzer.scan("/dev/null")


def test_bad_inputs_raise_typed_errors(tmp_path, analyzer):
    with pytest.raises(InputError, match="no such file"):
        analyzer.scan(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="is a directory"):
        analyzer.scan(tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(NotAVideoError, match="the file is empty"):
        analyzer.scan(empty)
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(NotAVideoError):
        analyzer.scan(junk)
    audio_only = tmp_path / "audio.mp4"
    import av
    import numpy as np

    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(NotAVideoError, match="no video stream"):
        analyzer.scan(audio_only)


def test_a_recording_cut_off_mid_call_is_scanned_as_far_as_it_goes_and_says_so(analyzer, tmp_path):
    from detector.synth import render_call

    whole = render_call(tmp_path / "call.webm", seconds=8, fps=10, size=(320, 240), seed=4, codec="libvpx-vp9")
    data = whole.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    r = analyzer.scan(cut)
    v = r.video
    assert v.truncated and v.duration_s == pytest.approx(8.0, abs=0.15)
    assert 1.0 < v.decoded_s < 6.0
    assert v.analysed_frames == pytest.approx(v.decoded_s * 10, abs=2)
    assert any(c.startswith("The video stops early") and "of the 0:08" in c for c in r.caveats)
    assert json.loads(r.to_json())["video"]["decoded_s"] == v.decoded_s
    full = analyzer.scan(whole)
    assert not full.video.truncated and full.video.decoded_s == pytest.approx(full.video.duration_s, abs=0.01)
    assert not any(c.startswith("The video stops early") for c in full.caveats)


def test_a_live_written_matroska_file_reports_the_length_decoded_not_ffmpegs_guess(analyzer, live_mkv, tmp_path):
    from detector.video import open_video

    with open_video(live_mkv) as src:
        assume = src.info
    if assume.duration is None:
        pytest.skip("this FFmpeg build guesses no duration for a live-written Matroska file")
    assert assume.duration_estimated and float(assume.duration) > 11  # the guess the report must not repeat
    r = analyzer.scan(live_mkv)
    assert r.video.duration_s == pytest.approx(10.0, abs=0.15) and r.video.decoded_s == r.video.duration_s
    assert not r.video.truncated and not any(c.startswith("The video stops early") for c in r.caveats)
    cut = tmp_path / "cut-live.mkv"  # cut off as well: the file ends inside a block, so it says so; the guess is
    cut.write_bytes(live_mkv.read_bytes()[: live_mkv.stat().st_size // 2])  # no length, and none is made up
    r = analyzer.scan(cut)
    assert r.video.truncated and r.video.duration_s is None and 4.0 < r.video.decoded_s < 6.0
    stops = [c for c in r.caveats if c.startswith("The video stops early")]
    assert len(stops) == 1 and "header declares" not in stops[0]  # no figures against a duration it lacks


def test_a_browser_recording_that_declares_no_duration_reports_the_length_decoded(analyzer, live_webm, tmp_path):
    # VP9 + Opus written live, as MediaRecorder writes a call: no duration at all, and FFmpeg guesses none
    r = analyzer.scan(live_webm)
    assert r.video.duration_s == pytest.approx(10.0, abs=0.15) and r.video.decoded_s == r.video.duration_s
    assert not r.video.truncated
    cut = tmp_path / "cut-live.webm"
    cut.write_bytes(live_webm.read_bytes()[: live_webm.stat().st_size * 3 // 4])
    r = analyzer.scan(cut)
    assert r.video.truncated and r.video.duration_s is None and 5.0 < r.video.decoded_s < 9.0


def test_a_raw_stream_that_declares_nothing_gets_no_made_up_length(analyzer, tmp_path):
    # a raw H.264 stream: no container, no duration, no element sizes to vouch for its end (FFmpeg even assumes
    # 25 fps for these 10 fps frames), so the report gives no length rather than the span decoded
    import av
    from fractions import Fraction

    path = tmp_path / "call.h264"
    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(50):
            vf = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 10)
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    r = analyzer.scan(path)
    assert r.video.duration_s is None and r.video.decoded_s > 0


def test_progress_runs_from_the_first_frame_of_a_recording_that_starts_late(analyzer, tmp_path):
    import av
    from fractions import Fraction

    path = tmp_path / "late.ts"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt, s.time_base = 160, 120, "yuv420p", Fraction(1, 10)
        for i in range(50):  # 5 s of frames from 1:00:00 on
            vf = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")
            vf.pts, vf.time_base = 36000 + i, Fraction(1, 10)
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    progress = []
    r = analyzer.scan(path, progress=lambda f, m: progress.append(f))
    assert r.video.duration_s == pytest.approx(5.0, abs=0.1) and not r.video.truncated
    analysing = progress[:-1]  # the last call says the report is done
    assert analysing[0] < 0.05 and 0.9 <= analysing[-1] <= 1.0 and len(analysing) > 20


def test_a_transport_streams_times_are_counted_from_its_start_as_players_count_them(analyzer, genuine_clip,
                                                                                    tmp_path):
    import av

    # the genuine call re-muxed into MPEG-TS on a broadcast clock that starts an hour in
    path = tmp_path / "late.ts"
    with av.open(str(genuine_clip)) as inp, av.open(str(path), "w") as out:
        src = inp.streams.video[0]
        dst = out.add_stream_from_template(src)
        for packet in inp.demux(src):
            if packet.dts is None:
                continue
            shift = round(3600 / packet.time_base)
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = dst
            out.mux(packet)
    r = analyzer.scan(path)
    assert r.video.duration_s == pytest.approx(3.0, abs=0.15)
    track = r.tracks[0]
    assert track.first_seen_s < 0.2 and track.last_seen_s <= r.video.duration_s
    assert r.evidence and all(0 <= e.time_s <= r.video.duration_s for e in r.evidence)
    assert all(0 <= w.start_s and w.end_s <= r.video.duration_s + 0.1 for w in track.timeline)


def test_invalid_options_are_config_errors():
    for fps in (0, -3.0, float("nan"), float("inf")):  # inf has no exact Fraction for the sampling clock
        with pytest.raises(ConfigError, match="analysis_fps"):
            Analyzer(ScanOptions(analysis_fps=fps))
    for window in (float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="window_s"):
            ScanOptions(window_s=window).validate()
    with pytest.raises(ConfigError):
        Analyzer(ScanOptions(checks=("nonexistent",)))
    for bad in (0, -1.0, True, float("inf"), float("nan")):
        with pytest.raises(ConfigError):
            Analyzer(ScanOptions(new_face_search_s=bad))


def test_a_scan_running_none_of_the_checks_the_fusion_reads_is_refused():
    # its every probability would be the model's intercept, the same for any recording
    with pytest.raises(ConfigError, match="none of the checks this scan runs"):
        Analyzer(ScanOptions(checks=("sbi",)))
    for options in (ScanOptions(checks=()), ScanOptions(checks=(), use_fusion=False)):  # eval, train-fusion too
        with pytest.raises(ConfigError, match="no checks selected"):
            Analyzer(options)
    # features only (train-fusion, eval) need no fusion; one check the model reads is enough to score
    for options in (ScanOptions(checks=("sbi",), use_fusion=False), ScanOptions(checks=("boundary", "sbi"))):
        with Analyzer(options) as analyzer:
            assert set(analyzer.options.checks) >= {"sbi"}


def test_score_key_ignores_performance_knobs():
    a, b = ScanOptions(), ScanOptions(queue_size=2, onnx_threads=2, hash_file=False)
    assert a.score_key() == b.score_key()
    assert a.score_key() != ScanOptions(analysis_fps=5).score_key()
    assert a.score_key() != ScanOptions(crop_antialias=False).score_key()  # other crops, other features
    # searching for new faces on every frame (as before the setting existed) keeps the key it had then: the
    # key of session 12-17's features (runs/eval-pen); another schedule can find other faces, so another key
    assert ScanOptions(use_fusion=False, new_face_search_s=None).score_key() == "ffb7610eeac0c118"
    other = {ScanOptions(new_face_search_s=v).score_key() for v in (None, 2.0)}
    assert len(other) == 2 and a.score_key() not in other
    assert ScanOptions(new_face_search_s=1).score_key() == a.score_key()  # 1 and 1.0 are one schedule


def test_result_key_changes_with_the_model_files_but_the_feature_key_does_not(tmp_path, monkeypatch):
    import shutil

    from detector.paths import models_dir

    for p in models_dir().glob("fusion.*"):
        shutil.copy(p, tmp_path / p.name)
    opts = ScanOptions()
    monkeypatch.setenv("DETECTOR_MODELS_DIR", str(tmp_path))
    before, features_before = opts.result_key(), opts.score_key()
    assert before == ScanOptions(queue_size=2).result_key()  # performance knobs still do not count
    meta = json.loads((tmp_path / "fusion.json").read_text())
    meta["thresholds"]["high"] += 0.01  # a retrained model, as far as the verdicts go
    (tmp_path / "fusion.json").write_text(json.dumps(meta))
    assert opts.result_key() != before and opts.score_key() == features_before
    assert ScanOptions(analysis_fps=5).result_key() != opts.result_key()


def test_result_key_changes_with_the_report_version_but_the_feature_key_does_not(monkeypatch):
    import detector.options as options_module

    opts = ScanOptions()
    before, features_before = opts.result_key(), opts.score_key()
    monkeypatch.setattr(options_module, "REPORT_VERSION", "older")  # reports written by another release
    assert opts.result_key() != before and opts.score_key() == features_before


def test_scanning_with_other_crops_than_the_fusion_was_fitted_on_is_a_config_error(tmp_path, monkeypatch):
    from detector.paths import models_dir

    for p in models_dir().iterdir():
        if p.suffix in (".onnx", ".json"):
            (tmp_path / p.name).symlink_to(p)
    monkeypatch.setenv("DETECTOR_MODELS_DIR", str(tmp_path))
    assert ScanOptions().crop_antialias  # the default, and what the shipped fusion was fitted on
    with pytest.raises(ConfigError, match="crop_antialias=True"):
        Analyzer(ScanOptions(crop_antialias=False))
    shipped = json.loads((models_dir() / "fusion.json").read_text())
    (tmp_path / "fusion.json").unlink()

    def with_meta(**changes):
        meta = {k: v for k, v in shipped.items() if k not in ("crop_antialias", "crop")}
        meta.update(changes)
        (tmp_path / "fusion.json").write_text(json.dumps(meta))

    # a model from before the setting (no record of it) was fitted on plain-warp crops
    with_meta()
    with pytest.raises(ConfigError, match="crop_antialias=False"):
        Analyzer(ScanOptions())
    Analyzer(ScanOptions(crop_antialias=False)).close()
    # anti-aliased some other way (another blur, or not recorded): not the features this code makes either
    for other in ({"crop_antialias": True, "crop": "gaussian, source blur 0.8 px"}, {"crop_antialias": True}):
        with_meta(**other)
        for options in (ScanOptions(), ScanOptions(crop_antialias=False)):
            with pytest.raises(ConfigError, match="crop_antialias"):
                Analyzer(options)
    with_meta(crop_antialias=True, crop=ScanOptions().crop_method())
    Analyzer(ScanOptions()).close()
    Analyzer(ScanOptions(use_fusion=False)).close()  # features only: no model to disagree with


def test_the_scan_crops_faces_as_its_options_say(genuine_clip, monkeypatch):
    from detector import analysis

    seen = []
    real = analysis.align_face

    def recording(image, points, **kw):
        seen.append(kw.get("antialias", False))
        return real(image, points, **kw)

    monkeypatch.setattr(analysis, "align_face", recording)
    for antialias in (True, False):
        seen.clear()
        with Analyzer(ScanOptions(use_fusion=False, crop_antialias=antialias, checks=("sharpness",))) as a:
            a.analyse(genuine_clip)
        assert seen and set(seen) == {antialias}


def test_the_scan_hands_face_mesh_each_frames_time_and_its_search_interval(genuine_clip, monkeypatch):
    from detector.faces import landmarks

    meshes = []

    def recording(options):
        meshes.append(landmarks.MediaPipeFaceMesh(options))
        real_detect = meshes[-1].detect
        meshes[-1].times = []

        def detect(image, seconds=None):
            meshes[-1].times.append(seconds)
            return real_detect(image, seconds)

        meshes[-1].detect = detect
        return meshes[-1]

    monkeypatch.setitem(landmarks.LANDMARK_BACKENDS, "mediapipe-facemesh", recording)
    with Analyzer(ScanOptions(use_fusion=False, checks=("sharpness",))) as a:
        analysis = a.analyse(genuine_clip)
    mesh = meshes[-1]
    assert mesh.options.new_face_search_s == 1.0
    assert len(mesh.times) == analysis.analysed_frames == 30  # 3 s at 10 fps, each with its timestamp
    assert mesh.times == sorted(mesh.times) and mesh.times[0] == 0.0 and mesh.times[-1] == pytest.approx(2.9, abs=0.04)
    assert mesh.searches == 3  # one face tracked throughout: the detector looked for more at 0, 1 and 2 s


def test_learned_check_runs_in_the_pipeline_when_enabled(swap_clip):
    from detector.checks import DEFAULT_CHECKS

    assert "sbi" not in DEFAULT_CHECKS
    with Analyzer(ScanOptions(checks=DEFAULT_CHECKS + ("sbi",))) as a:
        assert "sbi" in a.context.models
        analysis = a.analyse(swap_clip)
    windows = analysis.tracks[0].windows
    # a 3 s clip is one short timeline window; the crops in it gave a finite mean logit
    assert len(windows) == 1 and np.isfinite(windows[0].value["sbi.mean"])
    feats = analysis.track_features(analysis.tracks[0])
    assert feats["sbi.mean"] == windows[0].value["sbi.mean"]


def test_cancelling_stops_the_scan_and_leaves_no_worker_thread(analyzer, genuine_clip):
    import threading

    from detector.analysis import Cancelled

    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled):
        analyzer.scan(genuine_clip, should_stop=stop_after_five)
    names = [t.name for t in threading.enumerate()]
    assert "detector-checks" not in names and "detector-decode" not in names


def test_a_model_that_fails_to_load_leaves_no_session_open(monkeypatch):
    from detector import api
    from detector.checks.embedding import FaceAppearanceCheck
    from detector.errors import ModelError

    opened = []

    class Recorder:
        closed = False

        def close(self):
            self.closed = True

    monkeypatch.setattr(FaceAppearanceCheck, "open_model", classmethod(lambda cls, threads=1: opened.append(Recorder())
                                                                       or opened[-1]))

    def no_fusion(*a, **k):
        raise ModelError("fusion model not found (simulated)")

    monkeypatch.setattr(api, "FusionModel", no_fusion)
    with pytest.raises(ModelError, match="simulated"):
        Analyzer(ScanOptions())
    assert opened and all(m.closed for m in opened)


def test_timeline_segments_use_the_fusion_segment_threshold(swap_clip):
    with Analyzer(ScanOptions()) as a:
        shipped = a.fusion.segment_high
        assert a.fusion.high <= shipped <= 1.0  # the retrained model carries its own, never below the verdict's
        a.fusion.segment_high = 0.0  # every window is a segment
        everything = a.scan(swap_clip)
        a.fusion.segment_high = 1.01  # no window can be
        nothing = a.scan(swap_clip)
    assert everything.thresholds.segment == 0.0 and nothing.thresholds.segment == 1.01
    assert not nothing.segments
    # overlapping flagged windows merge: one segment over the whole timeline
    tl = everything.tracks[0].timeline
    assert [(s.start_s, s.end_s) for s in everything.segments] == [(tl[0].start_s, tl[-1].end_s)]


def test_reports_caution_about_faces_smaller_than_the_fusion_was_fitted_on(swap_clip):
    with Analyzer(ScanOptions()) as a:
        assert a.fusion.small_face_px is not None  # the shipped model records its training faces' sizes
        a.fusion.low = 0.0  # no participant is "likely genuine", so a caution about false alarms applies
        a.fusion.small_face_px = 1.0  # no face is smaller than that
        plain = a.scan(swap_clip)
        a.fusion.small_face_px = 10_000.0  # every face is
        small = a.scan(swap_clip)
    assert plain.tracks[0].probability is not None and plain.verdict != Verdict.likely_genuine
    assert not any(c.startswith("Small face") for c in plain.caveats)
    assert [c for c in small.caveats if c.startswith("Small face: participant 1 (")]


def test_default_options_keep_the_shipped_fusions_feature_key():
    # the shipped fusion was fitted on features under this key; a new option that changed it would make every
    # cached feature (and batch result) stale without a refit
    import json

    from detector import ScanOptions
    from detector.paths import models_dir

    meta = json.loads((models_dir() / "fusion.json").read_text())
    assert ScanOptions(use_fusion=False).score_key() == meta["score_key"]
    assert ScanOptions(use_fusion=False, shot_cuts=True).score_key() != meta["score_key"]
    assert ScanOptions(use_fusion=False, small_face_search=False).score_key() != meta["score_key"]


def test_a_scan_with_other_feature_settings_than_the_models_says_so(analyzer, swap_clip):
    default = analyzer.scan(swap_clip)
    assert not any("fusion model was fitted on" in c for c in default.caveats)
    with Analyzer(ScanOptions(analysis_fps=5)) as a:
        slow = a.scan(swap_clip)
    assert slow.tracks and slow.video.analysis_fps == 5
    assert "analysis_fps 5 (the model's: 10)" in slow.caveats[0]
    # a higher frame-size cap changes nothing on a recording smaller than both caps
    with Analyzer(ScanOptions(max_side=1920)) as a:
        assert not any("fusion model was fitted on" in c for c in a.scan(swap_clip).caveats)
