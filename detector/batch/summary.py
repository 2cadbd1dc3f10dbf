"""What a batch produced, for people: summary, ranked CSV, HTML reports.

Everything here reads the output JSONL (all runs, not just the last one), so
a resumed batch summarises the whole archive. Rows scored with other
settings (another ``score_key``) are left out and counted, since their
probabilities are not comparable.
"""
from __future__ import annotations

import csv
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from detector.batch.records import row_fields
from detector.batch.runner import BatchStats

VERDICT_ORDER = ("likely_face_swapped", "inconclusive", "likely_genuine", "insufficient_evidence", "no_face",
                 "failed")
# later columns are appended, so that tables read by column position keep their columns. cuts_crossed: cuts
# between cameras that the default scan carried a track across (two people may share it); scanned_again: 1 where
# the row's report is of a second scan as an active-speaker recording (--auto-speaker-view)
CSV_COLUMNS = ("rank", "path", "verdict", "probability", "duration_s", "sha256", "status", "error_code", "error",
               "caveats", "cuts_crossed", "scanned_again")


def latest_rows(rows: list[dict], score_key: str) -> tuple[list[dict], int]:
    """The last row per path for ``score_key`` (a retried failure is replaced by its success).

    Returns ``(rows, n_other)`` where ``n_other`` counts rows of other settings.
    """
    by_path: dict[str, dict] = {}
    other = 0
    for row in rows:
        if row.get("score_key") != score_key:
            other += 1
            continue
        by_path[row.get("path")] = row
    return list(by_path.values()), other


def rank_key(f: dict) -> tuple:
    # scored calls by probability, then unscored verdicts, failures last
    failed = f["status"] != "ok"
    p = f["probability"]
    return (failed, p is None, -(p or 0.0), VERDICT_ORDER.index(f["verdict"]) if f["verdict"] in VERDICT_ORDER
            else len(VERDICT_ORDER), f["path"] or "")


def ranked(rows: list[dict]) -> list[dict]:
    return sorted((row_fields(r) for r in rows), key=rank_key)


@dataclass
class ArchiveSummary:
    recordings: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    most_suspicious: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    other_settings_rows: int = 0
    video_seconds: float = 0.0
    #: reports of a default scan that carried a track across a cut between cameras (two people may be merged)
    merged_across_cuts: int = 0
    #: reports of a second scan as an active-speaker recording (--auto-speaker-view)
    rescanned_speaker_view: int = 0


def summarize(rows: list[dict], score_key: str, top: int = 10) -> ArchiveSummary:
    latest, other = latest_rows(rows, score_key)
    flat = ranked(latest)
    s = ArchiveSummary(recordings=len(flat), other_settings_rows=other)
    for f in flat:
        s.verdicts[f["verdict"]] = s.verdicts.get(f["verdict"], 0) + 1
        s.video_seconds += f["duration_s"] or 0.0
        if f["speaker_view_auto"]:
            s.rescanned_speaker_view += 1
        elif f["cuts_crossed"]:
            s.merged_across_cuts += 1
    s.most_suspicious = [f for f in flat if f["status"] == "ok" and f["probability"] is not None][:top]
    s.failures = [f for f in flat if f["status"] != "ok"]
    return s


def _atomic_write(path: Path, text: str) -> None:
    # readers (a dashboard tailing the folder) never see half a file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(rows: list[dict], path: str | os.PathLike, score_key: str) -> int:
    """Ranked CSV, most suspicious first. Returns the number of data rows."""
    import io

    latest, _ = latest_rows(rows, score_key)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    flat = ranked(latest)
    for i, f in enumerate(flat, 1):
        p = f["probability"]
        w.writerow([i, f["path"], f["verdict"], "" if p is None else f"{p:.4f}",
                    "" if f["duration_s"] is None else f"{f['duration_s']:.2f}", f["sha256"] or "", f["status"],
                    f["error_code"] or "", f["error"] or "", " | ".join(f["caveats"]),
                    f["cuts_crossed"] if f["status"] == "ok" else "",
                    int(f["speaker_view_auto"]) if f["status"] == "ok" else ""])
    _atomic_write(Path(path), buf.getvalue())
    return len(flat)


def html_name(path: str, sha256: str | None) -> str:
    """One file per recording; the hash prefix keeps same-named calls from different folders apart."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:80] or "recording"
    return f"{stem}-{(sha256 or 'nohash')[:12]}.html"


def write_html(row: dict, html_dir: str | os.PathLike, overwrite: bool = True) -> Path | None:
    """Render one ok row's report to ``html_dir``; None for failed rows."""
    if row.get("status") != "ok" or not row.get("report"):
        return None
    target = Path(html_dir) / html_name(row["path"], row.get("sha256"))
    if target.exists() and not overwrite:
        return target
    from detector.report.html import render_html  # lazy: heavy template machinery
    from detector.report.model import Report

    _atomic_write(target, render_html(Report.model_validate(row["report"])))
    return target


def write_missing_html(rows: list[dict], html_dir: str | os.PathLike, score_key: str) -> tuple[int, list[str]]:
    """HTML for rows (from any run) whose report page is not there yet.

    Returns ``(written, errors)``; one report that fails to render does not
    stop the others. ImportError (no HTML renderer installed) propagates.
    """
    latest, _ = latest_rows(rows, score_key)
    n, errors = 0, []
    for row in latest:
        if row.get("status") == "ok":
            target = Path(html_dir) / html_name(row["path"], row.get("sha256"))
            if not target.exists():
                try:
                    write_html(row, html_dir)
                    n += 1
                except ImportError:
                    raise
                except Exception as exc:
                    errors.append(f"{row['path']}: {exc}")
    return n, errors


def _fmt_p(p: float | None) -> str:
    return "  -  " if p is None else f"{p:.3f}"


def render_summary(stats: BatchStats, archive: ArchiveSummary, output: str, top: int = 10) -> str:
    """Plain-text end-of-run summary (the CLI prints it)."""
    rate = stats.ok / stats.elapsed_s * 60 if stats.elapsed_s > 0 else 0.0
    lines = [f"batch {'INTERRUPTED' if stats.interrupted else 'done'} in {stats.elapsed_s:.1f}s: "
             f"{stats.ok} analysed, {stats.failed} failed, {stats.already_done} already in {output}, "
             f"{sum(stats.skipped_reasons.values())} files skipped"]
    if stats.ok:
        lines.append(f"  throughput: {rate:.1f} recordings/min, "
                     f"{stats.video_seconds / stats.elapsed_s:.2f} video-seconds per second")
    if stats.skipped_reasons:
        lines.append("  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.skipped_reasons.items(),
                                                                               key=lambda kv: -kv[1])))
    if stats.torn_bytes_repaired:
        lines.append(f"  repaired the output: cut a torn last line of {stats.torn_bytes_repaired} bytes")
    if stats.bad_lines:
        lines.append(f"  ignored {stats.bad_lines} unreadable line(s) in the output")
    lines.append(f"archive ({archive.recordings} recordings, {archive.video_seconds / 60:.1f} min of video):")
    for v in VERDICT_ORDER:
        if archive.verdicts.get(v):
            lines.append(f"  {v:<22} {archive.verdicts[v]}")
    if archive.other_settings_rows:
        lines.append(f"  ({archive.other_settings_rows} rows scored with other settings not counted)")
    if archive.rescanned_speaker_view:
        lines.append(f"  {archive.rescanned_speaker_view} scanned a second time as active-speaker recordings "
                     "(--auto-speaker-view; their caveats say so)")
    if archive.merged_across_cuts:
        lines.append(f"  {archive.merged_across_cuts} carried a participant's track across a cut between cameras: "
                     "two people may be merged in one participant; run again with --auto-speaker-view")
    if archive.most_suspicious:
        lines.append(f"most suspicious (top {min(top, len(archive.most_suspicious))}):")
        for f in archive.most_suspicious[:top]:
            lines.append(f"  P={_fmt_p(f['probability'])}  {f['verdict']:<20} {f['path']}")
    if archive.failures:
        lines.append(f"failures ({len(archive.failures)}):")
        for f in archive.failures[:50]:
            lines.append(f"  {f['error_code'] or 'error'}: {f['path']}: {f['error']}")
        if len(archive.failures) > 50:
            lines.append(f"  ... and {len(archive.failures) - 50} more (see the CSV/JSONL)")
    return "\n".join(lines)
