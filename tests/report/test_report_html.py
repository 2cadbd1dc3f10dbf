"""The self-contained HTML report: one template for the CLI and the web app."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector.report.html import WebLinks, build_timeline, render_html
from detector.report.model import Report, Verdict


def _web_fakes():
    # the web tests' fake report and tiny video, loaded by path (test dirs are not packages)
    spec = importlib.util.spec_from_file_location(
        "_web_fakes_for_report", Path(__file__).resolve().parents[1] / "web" / "web_fakes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FAKES = _web_fakes()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    video = FAKES.write_tiny_video(tmp_path_factory.mktemp("media") / "call.mp4")
    return FAKES.fake_report(str(video))


def test_self_contained_and_complete(report):
    html = render_html(report)
    assert html.startswith("<!doctype html>")
    # nothing fetched from anywhere: no external src/href, no scripts, no stylesheet links
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html
    assert "Likely face-swapped" in html and "82%" in html
    assert html.count('class="segment"') == 1
    assert html.count("data:image/jpeg;base64,") == 1
    assert 'id="evidence-1"' in html and 'href="#evidence-1"' in html
    assert "blending edges around the face" in html
    assert "Participant 1" in html and "Blending artefacts" in html and "not measurable" in html


def test_web_links_only_in_web_mode(report):
    html = render_html(report, web=WebLinks(home_url="/", json_url="/j.json", html_url="/h.html",
                                            delete_url="/api/jobs/x", original_name="Interview <A&B>.mp4"))
    assert 'href="/j.json"' in html and 'href="/h.html"' in html and "/static/app.js" in html
    assert "Interview &lt;A&amp;B&gt;.mp4" in html and "<A&B>" not in html


def test_timeline_geometry(report):
    tl = build_timeline(report)
    assert len(tl.lines) == 1 and len(tl.segments) == 1 and len(tl.markers) == 1
    xs = [float(p.split(",")[0]) for p in tl.lines[0].points.split()]
    ys = [float(p.split(",")[1]) for p in tl.lines[0].points.split()]
    assert xs == sorted(xs) and all(tl.left <= x <= tl.right for x in xs)
    # higher probability is drawn higher (smaller y)
    assert ys[0] > ys[-1] and all(tl.plot_top <= y <= tl.plot_bottom for y in ys)
    seg = tl.segments[0]
    assert seg.x + seg.w <= tl.right + 0.5 and seg.x >= xs[0]


def test_evidence_markers_sit_on_their_participants_line(report):
    # the evidence frame falls between two window centres: its marker is on the drawn line, not at its window's
    # probability beside it
    moved = report.model_copy(deep=True)
    duration = moved.video.duration_s
    moved.evidence[0].time_s = duration * 0.625
    tl = build_timeline(moved)
    (mx, my, _, _), = tl.markers
    pts = [tuple(map(float, p.split(","))) for p in tl.lines[0].points.split()]
    (x0, y0), (x1, y1) = next((a, b) for a, b in zip(pts, pts[1:]) if a[0] <= mx <= b[0])
    assert my == pytest.approx(y0 + (y1 - y0) * (mx - x0) / (x1 - x0), abs=0.3)
    assert my != pytest.approx(build_timeline(report).markers[0][1], abs=0.3)  # not the window's own height


def test_evidence_below_the_threshold_is_not_called_suspicious(tmp_path):
    video = FAKES.write_tiny_video(tmp_path / "calm.mp4")
    flagged = render_html(FAKES.fake_report(str(video), probability=0.82))
    assert "the most suspicious moments" in flagged and "None of these reached" not in flagged
    calm = FAKES.fake_report(str(video), probability=0.5)  # under the 0.7 threshold: nothing was flagged
    html = render_html(calm)
    assert "the highest-scoring moments" in html and "the most suspicious moments" not in html
    assert "None of these reached the level at which the timeline flags a moment (70%)" in html
    # a moment above the verdict's band (0.7) but under the timeline's own threshold is not flagged...
    calm.evidence[0].probability = 0.75
    calm.thresholds.segment = 0.8
    assert "None of these reached the level at which the timeline flags a moment (80%)" in render_html(calm)
    calm.thresholds.segment = None  # (older reports: the band's threshold flagged)
    assert "the most suspicious moments" in render_html(calm)
    # ...but a call judged face-swapped never has its evidence called "not a finding"
    swapped = FAKES.fake_report(str(video), probability=0.72)
    swapped.evidence[0].probability, swapped.thresholds.segment = 0.75, 0.8
    assert "the most suspicious moments" in render_html(swapped) and "None of these" not in render_html(swapped)
    calm.evidence[0].probability = None  # a report that does not say: no claim either way
    assert "None of these reached" not in render_html(calm)


def test_reports_without_scores_render(report):
    empty = report.model_copy(update={"verdict": Verdict.no_face, "probability": None, "tracks": [], "segments": [],
                                      "evidence": [], "summary": "No face was found."})
    html = render_html(empty)
    assert "No face found" in html and "n/a" in html and "No face was tracked" in html
    assert "No participant was seen long enough" in html
    brief = report.model_copy(deep=True)
    brief.tracks[0].timeline = []
    brief.tracks[0].probability = None
    brief.tracks[0].note = "face seen for 1.0 s"
    brief.segments, brief.evidence = [], []
    brief.tracks[0].verdict = Verdict.insufficient_evidence
    # a report from before session 23 still gave such a track suspicion (0.9 here), stored and re-rendered later
    brief_html = render_html(Report.from_json(brief.to_json()))
    assert "face seen for 1.0 s" in brief_html
    assert '<ul class="checks">' not in brief_html and "No check bars: this participant was not scored" in brief_html
    assert '<ul class="checks">' in render_html(report)
    # a scored participant whose checks the model does not rate one by one (--checks sbi) is not called unscored
    unrated = report.model_copy(deep=True)
    for c in unrated.tracks[0].checks:
        c.suspicion = None
    unrated_html = render_html(unrated)
    assert '<ul class="checks">' not in unrated_html and "not scored" not in unrated_html
    assert "the model rates none of the checks run here one by one" in unrated_html
    assert "<svg" in render_html(Report.from_json(report.to_json()))


def test_scan_html_from_the_cli(tmp_path, monkeypatch, report):
    import detector.api
    from detector.cli import app

    class StandInAnalyzer:
        def __init__(self, options=None):
            pass

        def scan(self, path, progress=None, should_stop=None):
            return FAKES.fake_report(str(path))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(detector.api, "Analyzer", StandInAnalyzer)
    video = FAKES.write_tiny_video(tmp_path / "cand.mp4")
    out, js = tmp_path / "report.html", tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scan", str(video), "--html", str(out), "--json", str(js), "--quiet"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "<svg" in text and "Likely face-swapped" in text and "<script" not in text
    # one model, one template: the HTML is exactly the rendering of the JSON report
    assert text == render_html(Report.from_json(js.read_text()))


def test_presence_lane_follows_a_participants_turns():
    from detector.report.html import on_screen
    from detector.report.model import TimelinePoint, TrackReport

    def track(points):
        return TrackReport(track_id=0, first_seen_s=0.0, last_seen_s=20.0, observed_frames=100, median_face_px=150.0,
                           verdict=Verdict.inconclusive, probability=0.5,
                           timeline=[TimelinePoint(start_s=a, end_s=b, probability=0.5) for a, b in points])

    # two turns (0-6 s as two overlapping windows, then 12-15 s): two bars, not one from 0 to 20 s
    assert on_screen(track([(0, 4), (2, 6), (12, 15)])) == [(0, 6), (12, 15)]
    assert on_screen(track([])) == [(0.0, 20.0)]  # no timeline (no fusion): first to last sighting


def test_spans_are_shown_covering_what_was_measured(report):
    from detector.report.build import fmt_span, fmt_time
    from detector.report.text import render_text

    # a span's start is rounded down and its end up: a face seen 0.0-0.9 s is not "0:00-0:00"
    assert fmt_span(0.0, 0.9) == "0:00-0:01" and fmt_span(5.0, 8.9) == "0:05-0:09"
    assert fmt_span(14.0, 18.0) == "0:14-0:18" and fmt_span(3599.2, 3600.5) == "59:59-1:00:01"
    assert fmt_span(0.0, 0.1 * 3 * 10) == "0:00-0:03"  # 3.0000000000000004 s (sums of frame steps) is 3 s, not 4
    assert fmt_time(8.9) == "0:08"  # a moment (evidence, a tick) stays rounded down, where a player seeks to it
    seg = report.segments[0].model_copy(update={"start_s": 5.0, "end_s": 8.9})
    track = report.tracks[0].model_copy(update={"first_seen_s": 0.0, "last_seen_s": 0.9})
    shown = report.model_copy(update={"segments": [seg], "tracks": [track, *report.tracks[1:]]})
    text, html = render_text(shown), render_html(shown)
    assert "0:05-0:09" in text and "0:00-0:01" in text
    assert "0:05&ndash;0:09" in html and "0:00&ndash;0:01" in html
