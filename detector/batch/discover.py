"""Finding the recordings in an archive, by content and never by extension.

Two stages, so that a folder of mostly documents is walked cheaply:

1. :func:`walk` (in the process that lists the folders) drops what cannot be a
   recording from its first bytes alone: files under 1 KB, images, PDFs,
   archives, executables, plain text. Reading 2 KB per file is cheap enough
   to do for every file in a large share.
2. :func:`classify` (in the worker, next to the decoding) probes the content
   with FFmpeg. A file whose header says "video container" but that FFmpeg
   cannot open is a *broken recording* (a truncated upload, a corrupt file)
   and gets a failed row; a file with no such header that FFmpeg cannot read
   is simply *not a recording* and is only counted.

Extensions are ignored on purpose: exported call archives are full of
``.bin``/``.dat`` names, and a renamed file must not dodge the scan.
"""
from __future__ import annotations

import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from detector.errors import ConfigError, InputError, UnopenableFileError

MIN_SIZE = 1024  # nothing under 1 KB holds a second of video
SNIFF_BYTES = 2048

# Still-image codecs: FFmpeg happily "opens" a JPEG or an MP3's cover art as a
# one-frame video stream. A single frame of one of these is not a call.
STILL_CODECS = frozenset({"mjpeg", "png", "bmp", "gif", "webp", "tiff", "jpeg2000", "apng", "heif", "av1_still"})
IMAGE_CONTAINERS = frozenset({"image2", "gif", "apng", "webp", "ico", "tiff", "bmp"})
# FFmpeg's text-art demuxers ("bin", "tty", ...) accept almost any bytes and
# render them as a picture of characters: random data "probes" as video.
TEXT_ART = frozenset({"bin", "tty", "xbin", "idf", "adf", "ansi", "bintext"})


@dataclass(frozen=True)
class Sniff:
    kind: str  # "video": a video container header; "other": known not a video; "unknown"
    what: str  # short description, shown in counts


def sniff(head: bytes) -> Sniff:
    """Classify a file from its first bytes."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            return Sniff("other", "audio (m4a)")
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"hevc"):
            return Sniff("other", "image (heif/avif)")
        return Sniff("video", "mp4/mov")
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return Sniff("video", "quicktime")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Sniff("video", "matroska/webm")
    if head.startswith(b"RIFF") and len(head) >= 12:
        fourcc = head[8:12]
        if fourcc.startswith(b"AVI"):
            return Sniff("video", "avi")
        return Sniff("other", f"riff {fourcc.decode('latin-1').strip()}")
    if head.startswith(b"FLV\x01"):
        return Sniff("video", "flv")
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return Sniff("video", "asf/wmv")
    if head.startswith(b"\x00\x00\x01\xba") or head.startswith(b"\x00\x00\x01\xb3"):
        return Sniff("video", "mpeg-ps")
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return Sniff("video", "mpeg-ts")
    for magic, what in _NOT_VIDEO:
        if head.startswith(magic):
            return Sniff("other", what)
    if _looks_like_text(head):
        return Sniff("other", "text")
    return Sniff("unknown", "unknown")


_NOT_VIDEO = (
    (b"\x89PNG", "image (png)"), (b"\xff\xd8\xff", "image (jpeg)"), (b"GIF8", "image (gif)"),
    (b"II*\x00", "image (tiff)"), (b"MM\x00*", "image (tiff)"), (b"%PDF", "pdf"),
    (b"PK\x03\x04", "zip/office"), (b"PK\x05\x06", "zip"), (b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf", "7z"),
    (b"Rar!", "rar"), (b"\x7fELF", "executable"), (b"MZ", "executable"), (b"ID3", "audio (mp3)"),
    (b"fLaC", "audio (flac)"), (b"SQLite format 3", "sqlite"), (b"\xd0\xcf\x11\xe0", "office (ole)"),
)


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multibyte char cut at the sniff boundary
            return False
        text = head[:exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return printable >= 0.95 * max(1, len(text))


def read_head(path: str, n: int = SNIFF_BYTES) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


@dataclass
class WalkStats:
    files_seen: int = 0
    candidates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def prefilter(path: str, stats: WalkStats) -> bool:
    """Cheap content check; True when the file may be a recording."""
    try:
        st = os.stat(path)
        if st.st_size < MIN_SIZE:
            stats.skip("smaller than 1 KB")
            return False
        kind = sniff(read_head(path))
    except OSError:
        # unreadable here: let the worker try and report it, rather than hide it
        return True
    if kind.kind == "other":
        stats.skip(kind.what)
        return False
    return True


def walk(paths: Iterable[str | os.PathLike], stats: WalkStats | None = None,
         seen: set[str] | None = None) -> Iterator[str]:
    """Yield candidate recordings under ``paths`` (files or folders), each once.

    Directory symlinks are not followed (archive shares often contain loops);
    file symlinks are, and duplicates are dropped by real path. ``seen`` (real
    paths) may be shared by several walks of one run, so each file is met once.
    """
    stats = stats if stats is not None else WalkStats()
    seen = seen if seen is not None else set()

    def emit(p: str) -> Iterator[str]:
        stats.files_seen += 1
        real = os.path.realpath(p)
        if real in seen:
            stats.skip("duplicate path")
            return
        seen.add(real)
        if prefilter(p, stats):
            stats.candidates += 1
            yield os.path.abspath(p)

    for root in paths:
        root = os.fspath(root)
        if os.path.isdir(root):
            # an unreadable folder is reported in the counts, not silently passed over
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False,
                                                        onerror=lambda e: stats.skip("unreadable folder")):
                dirnames.sort()
                for name in sorted(filenames):
                    p = os.path.join(dirpath, name)
                    if os.path.isfile(p):
                        yield from emit(p)
                    elif os.path.islink(p) and not os.path.exists(p):
                        stats.skip("broken link")  # counted, not silently passed over
        elif os.path.isfile(root):
            yield from emit(root)
        else:
            raise ConfigError(f"no such file or folder: {root}")


def read_path_list(list_file: str | os.PathLike) -> list[str]:
    """Paths from a list file: one path or ``file://`` URL per line.

    Blank lines and ``#`` comments are ignored. Relative paths are relative to
    the list file's folder (a list shipped with its archive stays valid).
    Other URL schemes are refused rather than silently skipped.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise ConfigError(f"list file not found: {list_file}")
    out = []
    for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        parsed = urllib.parse.urlparse(entry)
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ConfigError(f"{list_file}:{n}: file URL with a remote host is not supported: {entry}")
            entry = urllib.request.url2pathname(parsed.path)
        elif parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
            raise ConfigError(f"{list_file}:{n}: unsupported URL scheme {parsed.scheme!r} (use a path or file://)")
        p = Path(entry)
        out.append(os.path.normpath(p if p.is_absolute() else list_file.parent / p))
    return out


@dataclass
class Classification:
    kind: str  # "recording" | "broken" | "not_recording"
    reason: str = ""
    code: str | None = None  # error code for "broken"
    info: object | None = None  # VideoInfo for "recording"
    size_bytes: int | None = None


def classify(path: str) -> Classification:
    """Decide, from the content, whether ``path`` is a recording to analyse."""
    from detector.video import probe

    try:
        size = os.path.getsize(path)
        head = read_head(path)
    except FileNotFoundError:
        return Classification("broken", "file not found", code="bad_input")
    except OSError as exc:
        return Classification("broken", f"cannot read: {exc.strerror or exc}", code="bad_input")
    if size < MIN_SIZE:
        return Classification("not_recording", "smaller than 1 KB", size_bytes=size)
    s = sniff(head)
    if s.kind == "other":
        return Classification("not_recording", s.what, size_bytes=size)
    try:
        info = probe(path)
    except InputError as exc:
        if s.kind == "video":
            # the header says "video" but FFmpeg cannot open it: truncated
            # upload, missing index, damaged file. That is a finding, not noise,
            # and a damaged recording, not something that is no video
            code = "corrupt_video" if isinstance(exc, UnopenableFileError) else exc.code
            return Classification("broken", str(exc), code=code, size_bytes=size)
        return Classification("not_recording", "not readable as video", size_bytes=size)
    except Exception as exc:  # FFmpeg/PyAV raising something untyped on hostile input
        if s.kind == "video":
            return Classification("broken", f"probe failed: {exc!r}", code="corrupt_video", size_bytes=size)
        return Classification("not_recording", "not readable as video", size_bytes=size)
    if info.container in TEXT_ART or info.codec in TEXT_ART or info.codec in ("xbin", "idf", "ansi"):
        return Classification("not_recording", "not readable as video", size_bytes=size)
    if s.kind == "unknown" and not info.duration:
        # no known header and no duration: whatever FFmpeg guessed, it is not a call recording
        return Classification("not_recording", "not readable as video", size_bytes=size)
    if info.container in IMAGE_CONTAINERS or info.container.endswith("_pipe"):
        return Classification("not_recording", f"image ({info.container})", size_bytes=size)
    if info.codec in STILL_CODECS and (info.frame_count or 0) <= 1:
        return Classification("not_recording", f"still picture ({info.codec})", size_bytes=size)
    return Classification("recording", info=info, size_bytes=size)
