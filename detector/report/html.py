"""Self-contained HTML rendering of a :class:`Report`.

One template (``templates/report.html.j2``) serves both the file written by
``detector scan --html`` and the report page of the web app; the web app
only passes :class:`WebLinks` so the same page gains navigation and
download links. Everything is inline -- CSS, the SVG timeline, thumbnails as
data URIs -- so the file can be mailed or archived and opens offline.

Geometry of the timeline is computed here, not in the template, so the
template stays declarative and the numbers are testable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from detector.report.build import fmt_end, fmt_span, fmt_time
from detector.report.model import Report, TrackReport, Verdict

# one colour per participant, distinguishable for common colour-vision deficiencies
TRACK_COLOURS = ("#2563eb", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4d7c0f", "#9333ea", "#0f766e")

VERDICT_TONE = {
    Verdict.likely_genuine: "ok",
    Verdict.inconclusive: "warn",
    Verdict.likely_face_swapped: "bad",
    Verdict.no_face: "neutral",
    Verdict.insufficient_evidence: "neutral",
    Verdict.failed: "neutral",
}

# timeline canvas, in SVG user units (the SVG scales to the page width)
_W, _H = 960, 250
_LEFT, _RIGHT, _TOP = 48, 16, 12
_PLOT_H = 150
_LANE_H = 14  # presence lane per participant under the plot
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass
class WebLinks:
    """Extra navigation when the report is shown inside the web app."""

    home_url: str
    json_url: str
    html_url: str
    delete_url: Optional[str] = None
    retry_url: Optional[str] = None
    #: POST here to analyse the recording again with tracks ending at cuts (shown when the report warns of a merge)
    speaker_view_url: Optional[str] = None
    #: a line above the report (a re-scan that failed and left this, the earlier report)
    notice: Optional[str] = None
    original_name: Optional[str] = None
    static_url: str = "/static"


@dataclass
class _Line:
    colour: str
    label: str
    points: str  # SVG polyline points
    dots: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass
class _Rect:
    x: float
    y: float
    w: float
    h: float
    title: str
    colour: str = ""


@dataclass
class TimelineView:
    width: int
    height: int
    plot_top: float
    plot_bottom: float
    left: float
    right: float
    lines: list[_Line] = field(default_factory=list)
    segments: list[_Rect] = field(default_factory=list)
    lanes: list[_Rect] = field(default_factory=list)
    lane_labels: list[tuple[float, str, str]] = field(default_factory=list)  # y, label, colour
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    bands: list[_Rect] = field(default_factory=list)  # verdict bands behind the lines
    markers: list[tuple[float, float, int, str]] = field(default_factory=list)  # x, y, evidence no., tooltip
    axis_y: float = 0.0
    empty: bool = True


def _tick_step(span: float) -> int:
    return next((s for s in _TICK_STEPS if span / s <= 8), _TICK_STEPS[-1])


def call_span(report: Report) -> float:
    """Length of the x axis: the video duration, or the last face seen when the container does not say."""
    candidates = [report.video.duration_s or 0.0]
    candidates += [t.last_seen_s for t in report.tracks]
    candidates += [p.end_s for t in report.tracks for p in t.timeline]
    return max(max(candidates), 1.0)


def track_colour(index: int) -> str:
    return TRACK_COLOURS[index % len(TRACK_COLOURS)]


def on_screen(track: TrackReport) -> list[tuple[float, float]]:
    """When a participant was on screen: their timeline windows joined where they touch, else first to last seen.

    In an active-speaker recording a participant's turns alternate with the others', and one bar from first to
    last sighting would claim they were on screen all along.
    """
    spans: list[list[float]] = []
    for p in sorted(track.timeline, key=lambda p: p.start_s):
        if spans and p.start_s <= spans[-1][1] + 1e-6:
            spans[-1][1] = max(spans[-1][1], p.end_s)
        else:
            spans.append([p.start_s, p.end_s])
    if not spans:
        return [(track.first_seen_s, track.last_seen_s)]
    return [(a, min(b, track.last_seen_s)) for a, b in spans]


def build_timeline(report: Report) -> TimelineView:
    span = call_span(report)
    lanes_h = _LANE_H * max(len(report.tracks), 1)
    height = _TOP + _PLOT_H + 10 + lanes_h + 26
    right = _W - _RIGHT
    plot_top, plot_bottom = _TOP, _TOP + _PLOT_H
    view = TimelineView(width=_W, height=height, plot_top=plot_top, plot_bottom=plot_bottom, left=_LEFT, right=right)

    def x(t: float) -> float:
        return round(_LEFT + (right - _LEFT) * min(max(t, 0.0), span) / span, 1)

    def y(p: float) -> float:
        return round(plot_bottom - _PLOT_H * min(max(p, 0.0), 1.0), 1)

    low, high = report.thresholds.low, report.thresholds.high
    view.bands = [
        _Rect(_LEFT, y(1.0), right - _LEFT, y(high) - y(1.0), "likely face-swapped band", "bad"),
        _Rect(_LEFT, y(high), right - _LEFT, y(low) - y(high), "inconclusive band", "warn"),
        _Rect(_LEFT, y(low), right - _LEFT, y(0.0) - y(low), "likely genuine band", "ok"),
    ]
    # the timeline's own segment threshold (reports from before session 7 have none: segments used ``high``)
    segment = report.thresholds.segment
    view.y_ticks = [(y(v), f"{v:.0%}") for v in sorted({0.0, low, high, 1.0} | ({segment} if segment else set()))]
    step = _tick_step(span)
    view.x_ticks = [(x(float(t)), fmt_time(t)) for t in range(0, int(span) + 1, step)]
    for s in report.segments:
        view.segments.append(_Rect(x(s.start_s), plot_top, max(x(s.end_s) - x(s.start_s), 2.0), _PLOT_H,
                                   f"flagged {fmt_span(s.start_s, s.end_s)}, participant {s.track_id + 1}, "
                                   f"P={s.probability:.0%}: {s.explanation}"))
    lane_top = plot_bottom + 10
    for i, t in enumerate(report.tracks):
        colour = track_colour(i)
        label = f"Participant {t.track_id + 1}"
        ly = lane_top + i * _LANE_H
        for a, b in on_screen(t):
            view.lanes.append(_Rect(x(a), ly + 3, max(x(b) - x(a), 2.0), _LANE_H - 6,
                                    f"{label} on screen {fmt_span(a, b)}", colour))
        view.lane_labels.append((ly + _LANE_H / 2 + 4, f"P{t.track_id + 1}", colour))
        pts = [(x((p.start_s + p.end_s) / 2), y(p.probability), p) for p in t.timeline if p.probability is not None]
        if not pts:
            continue
        if len(pts) == 1:  # one window: draw it as a flat stretch so it is visible
            _, py, p = pts[0]
            pts = [(x(p.start_s), py, p), (x(p.end_s), py, p)]
        view.lines.append(_Line(colour, label, " ".join(f"{px},{py}" for px, py, _ in pts),
                                [(px, py, f"{label}, {fmt_span(p.start_s, p.end_s)}: "
                                          f"P={p.probability:.0%}") for px, py, p in pts]))
    tracks_by_id = {t.track_id: t for t in report.tracks}
    for n, e in enumerate(report.evidence, start=1):
        p = _line_value(tracks_by_id.get(e.track_id), e.time_s)
        if p is None:
            p = e.probability if e.probability is not None else (tracks_by_id.get(e.track_id) or _NO_TRACK).probability
        view.markers.append((x(e.time_s), y(p if p is not None else 0.0), n,
                             f"evidence {n}: participant {e.track_id + 1} at {fmt_time(e.time_s)}"))
    view.axis_y = lane_top + lanes_h + 14
    view.empty = not view.lines
    return view


def _line_value(track: Optional[TrackReport], t: float) -> Optional[float]:
    """Height of a participant's drawn line at time ``t`` (None without one).

    An evidence frame is the thumbnail nearest its window's middle, not the middle itself, so its marker placed at
    the window's probability would float beside the line; it goes on the line, where a reader looks for it.
    """
    if track is None:
        return None
    pts = sorted(((p.start_s + p.end_s) / 2, p.probability) for p in track.timeline if p.probability is not None)
    if not pts:
        return None
    return float(np.interp(t, [c for c, _ in pts], [v for _, v in pts]))


class _NoTrack:
    probability = None


_NO_TRACK = _NoTrack()


@dataclass
class TrackView:
    report: TrackReport
    colour: str
    tone: str
    checks: list  # CheckResult, most suspicious first, unmeasured last; empty when none was measured


def track_views(report: Report) -> list[TrackView]:
    out = []
    for i, t in enumerate(report.tracks):
        ranked = sorted(t.checks, key=lambda c: (c.suspicion is None, -(c.suspicion or 0.0)))
        if t.verdict == Verdict.insufficient_evidence or all(c.suspicion is None for c in ranked):
            # no bars for a track too short to score (reports from before session 23 still carry suspicion there),
            # nor when nothing was rated: a column of empty bars says nothing
            ranked = []
        out.append(TrackView(t, track_colour(i), VERDICT_TONE[t.verdict], ranked))
    return out


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _size(n: Optional[int]) -> str:
    if n is None:
        return "n/a"
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _when(iso: str) -> str:
    """'2026-01-02T10:00:00+00:00' -> '2026-01-02 10:00 UTC' (other offsets kept as given)."""
    text = iso.replace("T", " ")
    if text.endswith("+00:00") and len(text) == 25:
        return text[:16] + " UTC"
    return text


@lru_cache(maxsize=1)
def template_environment() -> Environment:
    env = Environment(loader=PackageLoader("detector.report", "templates"),
                      autoescape=select_autoescape(("html", "j2", "html.j2")),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt_time"] = fmt_time
    env.filters["fmt_end"] = fmt_end
    env.filters["pct"] = _pct
    env.filters["size"] = _size
    env.filters["when"] = _when
    return env


def report_context(report: Report, web: Optional[WebLinks] = None) -> dict:
    return {
        "report": report,
        "tone": VERDICT_TONE[report.verdict],
        "timeline": build_timeline(report),
        "tracks": track_views(report),
        "web": web,
        "title_name": (web.original_name if web and web.original_name else report.video.file_name),
    }


def render_html(report: Report, web: Optional[WebLinks] = None) -> str:
    """The report as one HTML document; self-contained unless ``web`` links are given."""
    return template_environment().get_template("report.html.j2").render(**report_context(report, web))
