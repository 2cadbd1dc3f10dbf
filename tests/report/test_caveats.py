"""Caveats: when a call's verdict deserves less trust than the per-participant dev figures."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from detector.report.build import caveats
from detector.report.model import Report, TrackReport, Verdict
from detector.report.text import render_text


def _track(track_id: int, probability: float | None, face_px: float = 160.0,
           verdict: Verdict = Verdict.inconclusive) -> TrackReport:
    verdict = verdict if probability is not None else Verdict.insufficient_evidence
    return TrackReport(track_id=track_id, first_seen_s=0.0, last_seen_s=10.0, observed_frames=100,
                       median_face_px=face_px, verdict=verdict, probability=probability)


def test_one_participant_with_a_face_of_ordinary_size_needs_no_caveat():
    assert caveats([_track(0, 0.8)], small_face_px=112.0) == []


def test_several_judged_participants_are_flagged_but_unjudged_ones_do_not_count():
    two = caveats([_track(0, 0.8), _track(1, 0.2)], small_face_px=None)
    assert len(two) == 1 and two[0].startswith("2 participants were judged")
    # a face seen too briefly gets no score, so it is no extra chance of a false alarm
    assert caveats([_track(0, 0.8), _track(1, None)], small_face_px=None) == []


def test_a_judged_face_smaller_than_the_training_faces_is_named():
    out = caveats([_track(0, 0.8, face_px=70.0), _track(1, None, face_px=40.0)], small_face_px=112.0)
    assert len(out) == 1
    assert "participant 1 (~70 px)" in out[0] and "participant 2" not in out[0] and "112 px" in out[0]
    # at the threshold is not below it; and a model that does not record its faces' sizes warns of nothing
    assert caveats([_track(0, 0.8, face_px=112.0)], small_face_px=112.0) == []
    assert caveats([_track(0, 0.8, face_px=70.0)], small_face_px=None) == []


def test_several_small_faces_are_named_together():
    out = caveats([_track(0, 0.8, face_px=70.0), _track(1, 0.6, face_px=60.0)], small_face_px=112.0)
    assert len(out) == 2 and "participant 1 (~70 px), participant 2 (~60 px) are smaller" in out[1]


def test_a_call_whose_participants_are_all_likely_genuine_needs_no_caveat():
    genuine = [_track(i, 0.1, face_px=50.0, verdict=Verdict.likely_genuine) for i in range(3)]
    assert caveats(genuine, small_face_px=112.0) == []
    # one doubtful participant brings both back, but only the doubtful small face is named
    out = caveats(genuine + [_track(3, 0.6, face_px=60.0)], small_face_px=112.0)
    assert out[0].startswith("4 participants") and "participant 4 (~60 px) is smaller" in out[1]
    assert "participant 1" not in out[1]


def test_caveats_reach_json_text_and_html(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "_web_fakes_for_caveats", Path(__file__).resolve().parents[1] / "web" / "web_fakes.py")
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    from detector.report.html import render_html

    report = fakes.fake_report(str(fakes.write_tiny_video(tmp_path / "call.mp4")))
    # optional field: a report written before it existed still loads
    older = json.loads(report.to_json())
    del older["caveats"]
    assert Report.from_json(json.dumps(older)).caveats == []
    report = report.model_copy(update={"caveats": ["Small face: participant 1 (~70 px) is small."]})
    assert Report.from_json(report.to_json()).caveats == report.caveats
    assert "caution: Small face: participant 1" in render_text(report)
    assert "<strong>Caution:</strong> Small face: participant 1" in render_html(report)


def test_a_track_carried_across_cuts_is_warned_of_whatever_the_verdict():
    genuine = [_track(0, 0.05, verdict=Verdict.likely_genuine)]
    out = caveats(genuine, small_face_px=112.0, cuts_crossed=4)
    assert len(out) == 1 and "4 times" in out[0] and "--speaker-view" in out[0]
    assert "once" in caveats(genuine, small_face_px=112.0, cuts_crossed=1)[0]
    assert caveats(genuine, small_face_px=112.0, cuts_crossed=0) == []
    assert caveats([], small_face_px=112.0, cuts_crossed=2) == []  # no participant: nothing to merge


def test_a_second_scan_as_an_active_speaker_recording_is_said_whatever_the_verdict():
    # even when nothing could be judged after the cuts ended the tracks
    for tracks in ([_track(0, 0.1, verdict=Verdict.likely_genuine)], [_track(0, None)], []):
        out = caveats(tracks, small_face_px=None, rescanned_after=2)
        assert len(out) == 1 and "second scan as an active-speaker recording" in out[0] and "2 times" in out[0]
    assert not any("second scan" in c for c in caveats([_track(0, 0.1)], small_face_px=None))


def test_settings_other_than_the_models_are_warned_of_first_whatever_the_verdict():
    differences = ["analysis_fps 5 (the model's: 10)", "window_s 6 (the model's: 4)"]
    for tracks in ([_track(0, 0.05, verdict=Verdict.likely_genuine)],
                   [_track(0, 0.8, face_px=60.0), _track(1, 0.7)]):
        out = caveats(tracks, small_face_px=112.0, setting_differences=differences)
        assert "analysis_fps 5 (the model's: 10); window_s 6 (the model's: 4)." in out[0]
        assert "Scan with the model's settings" in out[0] and "`detector train-fusion` (it takes --fps" in out[0]
    assert len(out) == 3  # the two caveats of that call as well
    assert caveats([_track(0, 0.05, verdict=Verdict.likely_genuine)], small_face_px=None,
                   setting_differences=[]) == []
    # no face, or none seen long enough to score: no probability to doubt
    assert caveats([], small_face_px=None, setting_differences=differences) == []
    assert caveats([_track(0, None)], small_face_px=None, setting_differences=differences) == []


def test_a_truncated_file_is_flagged_whatever_the_verdict():
    genuine = _track(0, 0.1, verdict=Verdict.likely_genuine)
    out = caveats([genuine], small_face_px=112.0, truncated=True, decoded_s=274.5, duration_s=610.0)
    assert len(out) == 1
    assert "4:34 of the 10:10" in out[0] and "(45%)" in out[0] and "covers only what was decoded" in out[0]
    # stopped on damaged data, with no declared duration to compare, or near the end: said without figures
    for decoded_s, duration_s in ((30.0, None), (598.0, 610.0), (640.0, 610.0)):
        (damaged,) = caveats([genuine], small_face_px=112.0, truncated=True, decoded_s=decoded_s,
                             duration_s=duration_s)
        assert "damaged data" in damaged and "%" not in damaged
    # no face at all in what was decoded is still only that part of the file
    assert len(caveats([], small_face_px=None, truncated=True, decoded_s=3.0, duration_s=9.0)) == 1
    assert caveats([genuine], small_face_px=112.0, truncated=False, decoded_s=610.0, duration_s=610.0) == []
