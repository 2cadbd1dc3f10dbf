"""Receiving recordings: streamed to disk, size-capped while streaming, probed.

Two request shapes are accepted on the same endpoint:

* a raw body (``Content-Type: application/octet-stream`` or ``video/*``)
  with the file name in ``X-File-Name`` (URL-encoded) -- what the page
  sends, because XMLHttpRequest then reports upload progress for free;
* ``multipart/form-data`` with a ``file`` field -- what ``curl -F`` sends.

Either way bytes go straight from the socket to ``incoming/<id>.part`` in
chunks; nothing holds the file in memory. Only after the body is complete
and FFmpeg has recognised a video stream is the file renamed into
``uploads/<id>``. The client's name is kept for display only; disk paths
are built from the random id alone, so no name can traverse directories.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Optional
from urllib.parse import unquote

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from detector.errors import InputError
from detector.video import probe

log = logging.getLogger("detector.web")

JOB_ID_PATTERN = r"^[0-9a-f]{24}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_WRITE_CHUNK = 1 << 20  # buffer this much before a disk write, to keep writes large and few
MAX_NAME_CHARS = 200


class UploadRejected(Exception):
    """An upload that is refused; carries the HTTP status and a reason code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class ReceivedUpload:
    job_id: str
    original_name: str
    size_bytes: int
    duration_s: Optional[float]


def new_job_id() -> str:
    return secrets.token_hex(12)


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID_RE.match(value))


def upload_path(uploads_dir: Path, job_id: str) -> Path:
    """Where a job's recording lives; refuses anything but a well-formed id."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return uploads_dir / job_id


def display_name(raw: str | None) -> str:
    """A client file name made safe to show: no directories, no control characters, bounded."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return (name or "recording")[:MAX_NAME_CHARS]


class _SizeCappedFile:
    """Buffered writer that raises 413 as soon as the cap is crossed."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        self.max_bytes = max_bytes
        self.size = 0
        self._buffer = bytearray()
        self._file = open(path, "xb")

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadRejected(413, "too_large", f"the file is larger than the limit of {_fmt_bytes(self.max_bytes)}")
        self._buffer += data

    @property
    def wants_flush(self) -> bool:
        return len(self._buffer) >= _WRITE_CHUNK

    def flush(self) -> None:
        if self._buffer:
            self._file.write(self._buffer)
            self._buffer.clear()

    def close(self) -> None:
        self.flush()
        self._file.flush()
        os.fsync(self._file.fileno())  # the upload is acknowledged only once it is on disk
        self._file.close()

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _fmt_bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} GB"


class _MultipartSink:
    """Feeds the ``file`` part of a multipart body into a :class:`_SizeCappedFile`."""

    def __init__(self, boundary: bytes, target: _SizeCappedFile):
        self.target = target
        self.file_name: Optional[str] = None
        self.found = False
        self._in_file = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        # only the first part named "file" is the recording; other fields are ignored
        self._in_file = params.get(b"name") == b"file" and not self.found
        if self._in_file:
            self.found = True
            # browsers and curl escape '"', CR and LF in a form's file name as %22, %0D and %0A (the HTML
            # standard's multipart/form-data encoding); undo exactly those, so the name shown is the file's
            name = params.get(b"filename", b"").decode("utf-8", "replace")
            self.file_name = name.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.target.feed(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def write(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except UploadRejected:
            raise
        except Exception as exc:  # python-multipart raises several parse error types
            raise UploadRejected(400, "bad_request", f"malformed multipart body: {exc}") from exc


async def _flush(write: Callable[[], None]) -> None:
    try:
        await run_in_threadpool(write)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UploadRejected(507, "disk_full", "the server has no room left for this upload") from exc
        raise


async def receive_upload(headers, body: AsyncIterator[bytes], incoming_dir: Path, uploads_dir: Path,
                         max_bytes: int, probe_file: Callable = probe) -> ReceivedUpload:
    """Stream one request body to disk, probe it, and move it into ``uploads_dir``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        # early refusal; the +64 kB leaves room for multipart framing around a file just under the cap
        raise UploadRejected(413, "too_large", f"the file is larger than the limit of {_fmt_bytes(max_bytes)}")
    content_type, params = parse_options_header(headers.get("content-type", ""))
    job_id = new_job_id()
    part = incoming_dir / f"{job_id}.part"
    target = _SizeCappedFile(part, max_bytes)
    try:
        if content_type == b"multipart/form-data":
            boundary = params.get(b"boundary")
            if not boundary:
                raise UploadRejected(400, "bad_request", "multipart body without a boundary")
            sink = _MultipartSink(boundary, target)
            feed = sink.write
        else:
            sink, feed = None, target.feed
        async for chunk in body:
            feed(chunk)
            if target.wants_flush:
                await _flush(target.flush)
        if sink is not None:
            if not sink.found:
                raise UploadRejected(400, "bad_request", "no 'file' field in the form")
            name = sink.file_name
        else:
            name = unquote(headers.get("x-file-name", ""))
        if target.size == 0 and sink is None and not name:
            # a bare POST (a script that forgot the file) is not an empty recording: say what to send. A raw body
            # that names its file (the page's own upload, curl with X-File-Name) is an empty file.
            raise UploadRejected(400, "no_file", "the request carried no file: send the recording as the request "
                                                 "body or as a form field named 'file'")
        if target.size == 0:
            raise UploadRejected(400, "empty_file", "the file is empty")
        await _flush(target.close)
        try:
            info = await run_in_threadpool(probe_file, part)
        except InputError as exc:
            # say why without echoing our disk path back to the client
            reason = str(exc).replace(str(part), "the upload")
            raise UploadRejected(415, exc.code, f"not a recording that can be analysed: {reason}") from exc
        except Exception as exc:
            # probing is FFmpeg on untrusted bytes: any failure means "not usable", never a 500 with a stored file
            log.exception("probing an upload failed unexpectedly")
            raise UploadRejected(415, "unreadable", "not a recording that can be analysed: the file could not be "
                                                   f"read as a video ({type(exc).__name__})") from exc
        final = upload_path(uploads_dir, job_id)
        os.replace(part, final)
    except BaseException:
        # anything unfinished (refusal, client gone, server stopping) leaves no file behind
        target.abort()
        raise
    # a duration FFmpeg guessed from the bitrate is not shown as the recording's; its report gives the decoded one
    duration = (float(info.duration) if getattr(info, "duration", None) and not getattr(info, "duration_estimated", False)
                else None)
    return ReceivedUpload(job_id=job_id, original_name=display_name(name), size_bytes=target.size,
                          duration_s=duration)


def remove_orphans(incoming_dir: Path, uploads_dir: Path, known_ids: set[str]) -> list[Path]:
    """Delete partial uploads and files whose job row does not exist (a crash between steps)."""
    removed = []
    for p in incoming_dir.glob("*.part"):
        p.unlink(missing_ok=True)
        removed.append(p)
    for p in uploads_dir.iterdir():
        if p.is_file() and p.name not in known_ids:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
