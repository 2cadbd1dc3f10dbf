"""Turn a :class:`CallAnalysis` into the versioned :class:`Report`.

This is where fusion, verdict bands, the timeline, segments and evidence
are decided; every renderer only reads the result.
"""
from __future__ import annotations

import base64
import math
import os

import numpy as np

from detector import __version__
from detector.analysis import CallAnalysis, TrackData
from detector.checks import CHECKS
from detector.fusion.model import FusionModel, WindowScore
from detector.report.model import (CheckResult, Evidence, Report, Segment, Thresholds, TimelinePoint,
                                   TrackReport, Verdict, VideoMeta)
from detector.video.source import VideoInfo

# Tracks seen in fewer frames than this are detector noise (a face-like
# poster, a flicker of the detector) and are not reported at all.
_NOISE_FRAMES = 3


def fmt_time(seconds: float, round_up: bool = False) -> str:
    """``m:ss`` or ``h:mm:ss``; whole seconds down, or up with ``round_up`` (the end of a span)."""
    seconds = max(0.0, seconds)
    whole = math.ceil(seconds - 1e-6) if round_up else int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


def fmt_end(seconds: float) -> str:
    """The end of a span, rounded up, so that the span shown covers the one measured (0.0-0.9 s is 0:00-0:01)."""
    return fmt_time(seconds, round_up=True)


def fmt_span(start: float, end: float) -> str:
    return f"{fmt_time(start)}-{fmt_end(end)}"


def _top_check(suspicion: dict[str, float]) -> str | None:
    return max(suspicion, key=suspicion.get) if suspicion else None


def _explain(check: str | None) -> str:
    if check is None or check not in CHECKS:
        return "the fused checks find this stretch unusual for genuine footage"
    return CHECKS[check].explanation


class _TrackOutcome:
    def __init__(self, report: TrackReport, windows: list[tuple[float, float, float, dict]], data: TrackData):
        self.report = report
        self.windows = windows  # (start, end, p, suspicion)
        self.data = data


def _window_score(value, fusion: FusionModel) -> WindowScore:
    """A window as the scan's reducer scored it, or scored now (an analysis that kept the window's features)."""
    if isinstance(value, WindowScore):
        return value
    if isinstance(value, dict):
        return fusion.score_window(value)
    raise ValueError(f"timeline window holds {type(value).__name__}, neither a WindowScore nor features; "
                     "analyse with the fusion's score_window (or the default reducer) to build a report")


def _track_outcome(analysis: CallAnalysis, td: TrackData, fusion: FusionModel | None) -> _TrackOutcome:
    opts = analysis.options
    feats = analysis.track_features(td)
    sufficient = td.duration >= opts.min_track_seconds and td.frames >= opts.min_track_frames
    # a track too short to score gets no bars either: the calibration behind them is for scored tracks, and a red
    # bar beside "insufficient evidence" reads as an accusation the tool does not make
    suspicion = fusion.suspicion(feats) if fusion is not None and sufficient else {}
    checks = []
    for name in analysis.check_names:
        cls = CHECKS[name]
        own = cls.reported({k: v for k, v in feats.items() if k.startswith(name + ".")})
        f = {k: (None if not np.isfinite(v) else round(float(v), 6)) for k, v in own.items()}
        s = suspicion.get(name)
        checks.append(CheckResult(name=name, title=cls.title, explanation=cls.explanation,
                                  suspicion=None if s is None else round(s, 4), features=f))
    prob, note, windows, timeline = None, None, [], []
    if not sufficient:
        verdict = Verdict.insufficient_evidence
        note = (f"face seen for {td.duration:.1f} s in {td.frames} analysed frames; "
                f"at least {opts.min_track_seconds:.0f} s and {opts.min_track_frames} frames are needed")
    elif fusion is None:
        verdict = Verdict.inconclusive
        note = "fusion model disabled: features only"
    else:
        prob = float(fusion.predict([feats])[0])
        verdict = Verdict(fusion.band(prob))
        for w in td.windows:
            score = _window_score(w.value, fusion)
            windows.append((w.start, w.end, score.probability, score.suspicion))
            timeline.append(TimelinePoint(start_s=round(w.start, 3), end_s=round(w.end, 3),
                                          probability=round(score.probability, 4)))
    rep = TrackReport(track_id=td.track_id, first_seen_s=round(td.first_seen, 3), last_seen_s=round(td.last_seen, 3),
                      observed_frames=td.frames, median_face_px=round(td.timeline.median_face_px(), 1),
                      verdict=verdict, probability=None if prob is None else round(prob, 4), checks=checks,
                      timeline=timeline, note=note)
    return _TrackOutcome(rep, windows, td)


def _segments(outcomes: list[_TrackOutcome], high: float) -> list[Segment]:
    segs: list[Segment] = []
    for o in outcomes:
        cur = None
        for a, b, p, sus in o.windows:
            if p >= high:
                if cur is not None and a <= cur["end"]:
                    cur["end"] = b
                    if p > cur["p"]:
                        cur["p"], cur["sus"] = p, sus
                else:
                    if cur is not None:
                        segs.append(cur)
                    cur = {"track": o.report.track_id, "start": a, "end": b, "p": p, "sus": sus}
        if cur is not None:
            segs.append(cur)
    out = []
    for s in segs:
        top = _top_check(s["sus"])
        out.append(Segment(track_id=s["track"], start_s=round(s["start"], 3), end_s=round(s["end"], 3),
                           probability=round(s["p"], 4), top_check=top, explanation=_explain(top)))
    return sorted(out, key=lambda s: -s.probability)


def _evidence(outcomes: list[_TrackOutcome], count: int, min_gap: float) -> list[Evidence]:
    cands = [(p, a, b, sus, o) for o in outcomes for a, b, p, sus in o.windows]
    cands.sort(key=lambda c: -c[0])
    chosen: list[Evidence] = []
    for p, a, b, sus, o in cands:
        if len(chosen) >= count:
            break
        thumb = o.data.thumbnails.nearest((a + b) / 2)
        if thumb is None:
            continue
        if any(e.track_id == o.report.track_id and abs(e.time_s - thumb.seconds) < min_gap for e in chosen):
            continue
        top = _top_check(sus)
        chosen.append(Evidence(track_id=o.report.track_id, time_s=round(thumb.seconds, 3), probability=round(p, 4),
                               check=top, explanation=_explain(top), bbox=thumb.bbox,
                               thumbnail_jpeg_b64=base64.b64encode(thumb.jpeg).decode("ascii")))
    return sorted(chosen, key=lambda e: e.time_s)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _merge_caveat(cuts_crossed: int) -> str:
    times = _times(cuts_crossed)
    return (f"The whole picture changed at once while a participant was on screen, as at a cut between cameras, "
            f"and their track was carried across such a change {times}. In recordings that show only the active "
            "speaker, two people may then have been merged into one participant, which averages their evidence "
            "and can hide a swapped face. Scan it again as an active-speaker recording, which ends tracks at cuts "
            "(--speaker-view on the command line, ScanOptions.shot_cuts in the library; the web app offers it).")


def _rescan_caveat(cuts_crossed: int) -> str:
    return (f"A first scan carried a participant's track across a cut between cameras {_times(cuts_crossed)}, so this report is "
            "of a second scan as an active-speaker recording (--auto-speaker-view): every cut ends a track and "
            "turns that look alike are joined, so one person whose picture changes between turns may be listed "
            "twice, and turns too short to judge are not judged.")


def _settings_caveat(differences: list[str]) -> str:
    return ("This scan measured or judged faces otherwise than the features the fusion model was fitted on: "
            + "; ".join(differences) + ". Its probabilities and verdicts are calibrated for the model's settings, "
            "so here they may be off in either direction. Scan with the model's settings (fusion.json's "
            "feature_settings), or fit a model on features measured this way with `detector train-fusion` (it "
            "takes --fps and --checks, and measures with this version of the analysis).")


def _reported_duration(info: VideoInfo, analysis: CallAnalysis) -> float | None:
    """The recording's length for the report: its declared duration; where a Matroska/WebM file declares none (one
    written live, such as a browser's MediaRecorder recording) or FFmpeg only guessed one from the bitrate (21.2 s
    for the complete 10 s file the tests write), the span its frames were decoded over, since the file's element
    sizes show whether decoding reached its end (:mod:`detector.video.matroska`). Nothing vouches for the end of
    other files that declare nothing (a raw H.264 stream), and a file that did not decode to its end has no known
    length: None."""
    if info.duration is not None and not info.duration_estimated:
        return round(float(info.duration), 3)
    matroska = "matroska" in info.container or "webm" in info.container
    if not matroska or analysis.truncated or analysis.decoded_seconds is None:
        return None
    return round(analysis.decoded_seconds, 3)


def _truncation_caveat(decoded_s: float | None, duration_s: float | None) -> str:
    # the figures only where they show the shortfall: a file that stopped decoding on damaged data near its end,
    # or whose header under-declares, would read "98%" or "104%"
    if decoded_s is not None and duration_s and decoded_s < 0.95 * duration_s:
        part = (f"video frames could be decoded for only {fmt_time(decoded_s)} of the {fmt_time(duration_s)} its "
                f"header declares ({decoded_s / duration_s:.0%})")
    else:
        part = "the file ends partway through, or decoding stopped on damaged data"
    return (f"The video stops early or the file is damaged: {part}. The verdict covers only what was decoded, so "
            "a face swap in the rest would go unseen; if the recording should go on, scan a complete copy.")


def caveats(tracks: list[TrackReport], small_face_px: float | None, cuts_crossed: int = 0,
            rescanned_after: int = 0, setting_differences: list[str] | None = None, truncated: bool = False,
            decoded_s: float | None = None, duration_s: float | None = None) -> list[str]:
    """When the call's verdict deserves less trust than the per-participant dev figures suggest.

    The first two were measured (README, "How good"): each further judged
    participant is another chance for a genuine face to cross the threshold,
    since a call takes its most suspicious one; and scores rise for faces
    smaller than those the fusion was calibrated on. Both are about false
    alarms, so a call whose participants are all "likely genuine" gets neither.
    ``small_face_px`` is the fusion's training faces' 5th percentile height
    (None: the model does not say, no warning). The third is about misses, so
    it is given whatever the verdict: ``cuts_crossed`` is how many cuts
    between cameras a track was carried across (a scan without
    ``shot_cuts``), where two people's faces may have been averaged into one
    participant. ``rescanned_after`` is how many cuts a first scan carried a track across when this report is of
    the second scan those caused (``ScanOptions.speaker_view_auto``); that is said whatever the verdict too, so
    that a batch table's caveats column names the recordings analysed that way. ``setting_differences``
    (:meth:`FusionModel.setting_differences`) names the settings in which the scan measured faces otherwise than
    the model's training features; any probability can be off then, so when a participant was scored it comes
    first, whatever the verdict. ``truncated`` (with the seconds decoded and the declared duration, when known)
    says the file ended early or was damaged: the verdict covers only what was decoded, which is about misses, so
    it is said whatever the verdict.
    """
    judged = [t for t in tracks if t.probability is not None]
    out = [_settings_caveat(setting_differences)] if setting_differences and judged else []
    out += [_truncation_caveat(decoded_s, duration_s)] if truncated else []
    out += [_rescan_caveat(rescanned_after)] if rescanned_after else []
    out += [_merge_caveat(cuts_crossed)] if cuts_crossed and tracks else []
    doubted = [t for t in judged if t.verdict != Verdict.likely_genuine]
    if not doubted:
        return out
    if len(judged) >= 2:
        out.append(f"{len(judged)} participants were judged and the call takes the most suspicious, so a genuine "
                   "call with several people is called face-swapped more often than one with a single face; "
                   "read each participant's own verdict.")
    small = [t for t in doubted if small_face_px is not None and t.median_face_px < small_face_px]
    if small:
        who = ", ".join(f"participant {t.track_id + 1} (~{t.median_face_px:.0f} px)" for t in small)
        out.append(f"Small face: {who} {'is' if len(small) == 1 else 'are'} smaller than 95% of the faces the "
                   f"model was calibrated on ({small_face_px:.0f} px high); smaller faces score higher, so a "
                   "suspicious score is more likely a false alarm.")
    return out


_SMALL_FACE_SEARCHED = "the frame was also searched in 2x2 windows for small faces"


def summarize(verdict: Verdict, prob: float | None, tracks: list[TrackReport], segments: list[Segment],
              cuts: int = 0, rescanned: bool = False, small_face_search: bool = False) -> str:
    if verdict == Verdict.no_face:
        return ("No face was found in the recording, so nothing could be checked"
                + (f" ({_SMALL_FACE_SEARCHED})." if small_face_search else "."))
    if verdict == Verdict.insufficient_evidence:
        return ("Faces were seen too briefly to judge; no verdict is given"
                + (f" ({_SMALL_FACE_SEARCHED})." if small_face_search else "."))
    head = f"{verdict.label} (probability of a face swap {prob:.0%})." if prob is not None else f"{verdict.label}."
    judged = [t for t in tracks if t.probability is not None]
    if not judged:
        return head
    worst = max(judged, key=lambda t: t.probability)
    parts = [head, f"{len(judged)} participant(s) analysed; the most suspicious is participant {worst.track_id + 1}."]
    if small_face_search:
        parts.append("No face could be scored in the whole frame, so it was searched again in 2x2 windows, where "
                     "faces too small for the whole-frame search were found.")
    if rescanned:
        parts.append("A face was carried across a cut between cameras, so the recording was analysed again as an "
                     "active-speaker recording.")
    if cuts:
        parts.append(f"The picture cuts between cameras {cuts} time{'s' if cuts > 1 else ''}; turns that look "
                     "alike were joined into one participant, so one person whose picture changed between turns may "
                     "be listed twice.")
    if segments:
        s = segments[0]
        parts.append(f"Strongest moment {fmt_span(s.start_s, s.end_s)}: {s.explanation}.")
    return " ".join(parts)


def build_report(analysis: CallAnalysis, fusion: FusionModel | None, sha256: str | None = None,
                 crossed_first: list[float] | None = None, small_face_search: bool = False) -> Report:
    """The report of one analysis.

    ``crossed_first``: the cuts a first analysis without ``shot_cuts`` carried a track across, when ``analysis``
    is the second one, with ``shot_cuts``, that this caused (``ScanOptions.speaker_view_auto``). The report lists
    them as ``video.cuts_crossed_s`` with ``video.speaker_view_auto`` set, and says so in its summary and caveats.
    ``small_face_search``: ``analysis`` is the search in windows that an earlier scan scoring nobody caused
    (``ScanOptions.small_face_search``); marked ``video.small_face_search`` and said in the summary.
    """
    info, opts = analysis.info, analysis.options
    if crossed_first and not opts.shot_cuts:
        raise ValueError("crossed_first describes a first pass; the analysis given must be the one with shot_cuts")
    outcomes = [_track_outcome(analysis, td, fusion) for td in analysis.tracks if td.frames >= _NOISE_FRAMES]
    judged = [o.report for o in outcomes if o.report.probability is not None]
    if not outcomes:
        verdict, prob = Verdict.no_face, None
    elif not any(o.report.verdict != Verdict.insufficient_evidence for o in outcomes):
        verdict, prob = Verdict.insufficient_evidence, None
    elif not judged:
        verdict, prob = Verdict.inconclusive, None
    else:
        # a call is as suspicious as its most suspicious participant
        prob = max(t.probability for t in judged)
        verdict = Verdict(fusion.band(prob))
    segments = _segments(outcomes, fusion.segment_high) if fusion is not None else []
    evidence = _evidence(outcomes, opts.evidence_count, opts.window_s / 2) if fusion is not None else []
    tracks = [o.report for o in outcomes]
    video = VideoMeta(
        path=info.path, file_name=os.path.basename(info.path), sha256=sha256, size_bytes=info.size_bytes,
        container=info.container, codec=info.codec, width=info.width, height=info.height, rotation=info.rotation,
        duration_s=_reported_duration(info, analysis),
        average_fps=None if info.average_rate is None else round(float(info.average_rate), 3),
        analysed_frames=analysis.analysed_frames, decoded_frames=analysis.decoded_frames,
        undecoded_frames=analysis.undecoded_frames,
        analysis_fps=opts.analysis_fps, truncated=analysis.truncated,
        decoded_s=None if analysis.decoded_seconds is None else round(analysis.decoded_seconds, 3),
        shot_cuts_s=[round(c, 3) for c in analysis.shot_cuts],
        cuts_crossed_s=[round(c, 3) for c in (crossed_first or analysis.cuts_crossed)],
        speaker_view_auto=bool(crossed_first), small_face_search=small_face_search)
    thresholds = (Thresholds(low=fusion.low, high=fusion.high, segment=fusion.segment_high) if fusion is not None
                  else Thresholds(low=0.5, high=0.5))
    return Report(detector_version=__version__, verdict=verdict, probability=None if prob is None else round(prob, 4),
                  thresholds=thresholds, video=video,
                  # the summary's sentence on cuts describes joining turns, which only the option does
                  summary=summarize(verdict, prob, tracks, segments, len(analysis.shot_cuts) if opts.shot_cuts else 0,
                                    rescanned=bool(crossed_first), small_face_search=small_face_search),
                  tracks=tracks, segments=segments, evidence=evidence,
                  caveats=caveats(tracks, fusion.small_face_px if fusion is not None else None,
                                  len(analysis.cuts_crossed), len(crossed_first or []),
                                  fusion.setting_differences(opts, max(info.width, info.height))
                                  if fusion is not None else None,
                                  truncated=video.truncated, decoded_s=video.decoded_s, duration_s=video.duration_s),
                  settings=opts.to_dict(),
                  timings_s={k: round(v, 3) for k, v in analysis.timings.items()})
