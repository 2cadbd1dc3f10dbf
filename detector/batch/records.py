"""The one JSONL row schema of ``detector batch``.

Every line of the output file is one :class:`BatchRecord`, whether the
recording was analysed or not, so that a reader (a SIEM import, a notebook,
the resume logic) never has to guess which shape a line has::

    {"record_version": "1", "status": "ok" | "failed",
     "path": "...", "sha256": "<hex>" | null, "score_key": "<16 hex>",
     "size_bytes": 123 | null, "error_code": null | "corrupt_video" | ...,
     "error": null | "human-readable reason",
     "finished_at": "<ISO 8601 UTC>", "elapsed_s": 1.23, "worker": "host:pid",
     "report": { ...the same Report as `detector scan --json`... } | null}

``status == "ok"`` always carries a ``report``; ``status == "failed"`` never
does and always carries ``error_code`` and ``error``. Files that are not
recordings at all (a PDF, a photo, a text file) get no line: they are counted
in the summary only, so the output stays a list of calls.
"""
from __future__ import annotations

import datetime as _dt
from typing import Literal, Optional

from pydantic import BaseModel

from detector.report.model import Report

RECORD_VERSION = "1"

#: error codes that describe the *file* (it will fail the same way next time),
#: so a re-run does not retry them unless asked to. Anything else (a crashed
#: worker, a bug, a model that was missing) is retried on the next run.
PERMANENT_ERRORS = frozenset({"bad_input", "not_a_video", "corrupt_video"})


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record_key(sha256: str | None, score_key: str) -> str | None:
    """What makes two rows "the same work": file content plus score-affecting settings."""
    if not sha256:
        return None
    return f"{sha256}:{score_key}"


class BatchRecord(BaseModel):
    record_version: str = RECORD_VERSION
    status: Literal["ok", "failed"]
    path: str
    sha256: Optional[str] = None
    score_key: str
    size_bytes: Optional[int] = None
    error_code: Optional[str] = None
    error: Optional[str] = None
    finished_at: str
    elapsed_s: Optional[float] = None
    worker: Optional[str] = None
    report: Optional[Report] = None

    @property
    def key(self) -> str | None:
        return record_key(self.sha256, self.score_key)

    def to_line(self) -> str:
        """One JSON line, newline included (never contains an inner newline)."""
        return self.model_dump_json() + "\n"

    @classmethod
    def ok(cls, path: str, sha256: str, score_key: str, report: Report, size_bytes: int | None = None,
           elapsed_s: float | None = None, worker: str | None = None) -> "BatchRecord":
        return cls(status="ok", path=path, sha256=sha256, score_key=score_key, size_bytes=size_bytes,
                   finished_at=utc_now(), elapsed_s=elapsed_s, worker=worker, report=report)

    @classmethod
    def failed(cls, path: str, score_key: str, code: str, error: str, sha256: str | None = None,
               size_bytes: int | None = None, elapsed_s: float | None = None,
               worker: str | None = None) -> "BatchRecord":
        return cls(status="failed", path=path, sha256=sha256, score_key=score_key, size_bytes=size_bytes,
                   error_code=code, error=error, finished_at=utc_now(), elapsed_s=elapsed_s, worker=worker)


def row_fields(row: dict) -> dict:
    """The flat fields a summary or CSV needs, read from a raw row dict.

    Works on ``json.loads`` output so that summarising a large archive does
    not validate every report (with its thumbnails) into pydantic objects.
    """
    rep = row.get("report") or {}
    video = rep.get("video") or {}
    return {
        "path": row.get("path"),
        "status": row.get("status"),
        "verdict": rep.get("verdict") if row.get("status") == "ok" else "failed",
        "probability": rep.get("probability"),
        "duration_s": video.get("duration_s"),
        "sha256": row.get("sha256"),
        "error_code": row.get("error_code"),
        "error": row.get("error"),
        "score_key": row.get("score_key"),
        "truncated": bool(video.get("truncated")),
        "caveats": list(rep.get("caveats") or []),
        # active-speaker layout: cuts a default scan carried a track across (two people may be merged), and
        # whether the report is of a second scan that --auto-speaker-view made because of them
        "cuts_crossed": len(video.get("cuts_crossed_s") or []),
        "speaker_view_auto": bool(video.get("speaker_view_auto")),
    }
