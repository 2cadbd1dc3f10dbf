"""Short human-readable summary of a report, for the terminal."""
from __future__ import annotations

from detector.report.build import fmt_span
from detector.report.model import Report


def render_text(report: Report, max_segments: int = 3) -> str:
    v = report.video
    lines = [f"{v.file_name}: {report.verdict.label.upper()}"
             + (f"  P(face swap) = {report.probability:.2f}" if report.probability is not None else "")]
    lines.append(f"  {report.summary}")
    lines.append(f"  bands: < {report.thresholds.low:.2f} likely genuine, >= {report.thresholds.high:.2f} likely "
                 f"face-swapped; {v.analysed_frames} frames analysed at {v.analysis_fps:g} fps"
                 + (" (file truncated: analysed what could be decoded)" if v.truncated else ""))
    lines += [f"  caution: {c}" for c in report.caveats]
    for t in report.tracks:
        p = f"P={t.probability:.2f}" if t.probability is not None else "no score"
        lines.append(f"  participant {t.track_id + 1}: {fmt_span(t.first_seen_s, t.last_seen_s)}, "
                     f"face ~{t.median_face_px:.0f} px, {p}, {t.verdict.label.lower()}")
        if t.note:
            lines.append(f"    note: {t.note}")
        ranked = sorted((c for c in t.checks if c.suspicion is not None), key=lambda c: -c.suspicion)[:3]
        if ranked:
            lines.append("    most unusual checks: " + ", ".join(f"{c.title} {c.suspicion:.2f}" for c in ranked))
    for s in report.segments[:max_segments]:
        lines.append(f"  suspicious {fmt_span(s.start_s, s.end_s)} (participant {s.track_id + 1}, "
                     f"P={s.probability:.2f}): {s.explanation}")
    return "\n".join(lines)
