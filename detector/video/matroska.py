"""Does a Matroska/WebM file end inside one of its own elements?

FFmpeg's demuxer reads a Matroska file cut off mid-recording (a crashed recorder, a copy that stopped, a
partial download) up to its last whole block and ends without an error, so a decoder never tells a cut file
from a complete one. The container does: every element states its size, so a file that ends before the
element it is in does is cut. Two cases:

* a writer that could seek back (FFmpeg writing to a file, mkvmerge, OBS) wrote the Segment's size when it
  finished, and a cut file is shorter than that: one read of the header tells;
* a writer that could not (a browser's MediaRecorder, FFmpeg writing to a pipe, a recorder that crashed)
  left the Segment's size, and often each Cluster's, "unknown": then the elements are walked, reading only
  their headers, until one runs past the end of the file (2 s for 600,000 blocks in unknown-size clusters,
  about a 2-hour recording's video and audio, on the project's 2-core machine).

This complements the comparison of the decoded span with the declared duration
(:meth:`detector.video.pyav_source.PyAVSource._note_shortfall`), which a file that declares no duration (live
writers) or a cut of under 2 s escapes. Anything that does not parse as Matroska is not judged.
"""
from __future__ import annotations

import os
from typing import BinaryIO

_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_CLUSTER = 0x1F43B675
# What may follow in a Segment's body: its children, a Cluster's children (an unknown-size Cluster's follow its
# header directly), and the two that may appear anywhere. Anything else (bytes a web upload or a copy left after a
# complete recording, a second file appended) is not judged, so stray trailing bytes are never called a cut.
_WALKABLE = frozenset({
    0x114D9B74, 0x1549A966, 0x1654AE6B, _CLUSTER, 0x1C53BB6B, 0x1043A770, 0x1254C367, 0x1941A469,  # SeekHead, Info,
    # Tracks, Cluster, Cues, Chapters, Tags, Attachments
    0xE7, 0xA3, 0xA0, 0xAB, 0xA7, 0x5854, 0xAF,  # Timestamp, SimpleBlock, BlockGroup, PrevSize, Position,
    # SilentTracks, EncryptedBlock
    0xBF, 0xEC,  # CRC-32, Void
})
# A cap on the elements walked, so that a crafted file of tiny elements cannot hold a scan for long (2 bytes each
# would take minutes): 3 million is five times a 2-hour browser recording's blocks, 12 to 17 s of reading.
_MAX_ELEMENTS = 3_000_000
_UNKNOWN = -1


class _NotMatroska(Exception):
    """The bytes do not parse as EBML where they should: not judged."""


class _EndsInside(Exception):
    """The file ends inside an element (its header or its body)."""


def _read_vint(f: BinaryIO, keep_marker: bool) -> int:
    """The value of an EBML variable-length integer (an id keeps its length marker); a size with every value bit
    set is :data:`_UNKNOWN`."""
    first = f.read(1)
    if not first:
        raise EOFError
    b0 = first[0]
    length = 1
    while length <= 8 and not b0 & (0x80 >> (length - 1)):
        length += 1
    if length > (4 if keep_marker else 8):  # an element id has at most 4 bytes
        raise _NotMatroska("invalid EBML length marker")
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        raise _EndsInside
    value = b0 if keep_marker else b0 & (0xFF >> length)
    for b in rest:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return _UNKNOWN
    return value


def _read_header(f: BinaryIO, allowed: frozenset[int] | None = None) -> tuple[int, int] | None:
    """(element id, body size or _UNKNOWN) at the current position; None exactly at the end of the file. An id
    outside ``allowed`` is not judged, before its size is read."""
    try:
        element_id = _read_vint(f, keep_marker=True)
    except EOFError:
        return None
    if allowed is not None and element_id not in allowed:
        raise _NotMatroska(f"element {element_id:#x} does not belong here")
    try:
        size = _read_vint(f, keep_marker=False)
    except EOFError:
        raise _EndsInside from None
    return element_id, size


def _skip(f: BinaryIO, size: int, file_size: int) -> None:
    if f.tell() + size > file_size:
        raise _EndsInside
    f.seek(size, os.SEEK_CUR)


def _walk_segment(f: BinaryIO, file_size: int) -> None:
    """Walk an unknown-size Segment's elements to the end of the file; raises _EndsInside if one is cut. An
    unknown-size Cluster's children follow its header directly and it lasts until the next Cluster or other
    Segment child starts, so walking on through them reads every element of the file in turn."""
    header = _read_header(f, _WALKABLE)
    walked = 0
    while header is not None:
        element_id, size = header
        walked += 1
        if walked > _MAX_ELEMENTS:
            raise _NotMatroska("more elements than a recording has")
        if size == _UNKNOWN:
            if element_id != _CLUSTER:
                raise _NotMatroska("only a Cluster may have an unknown size here")
        else:
            _skip(f, size, file_size)
        header = _read_header(f, _WALKABLE)


def ends_inside_an_element(path: str | os.PathLike) -> bool:
    """True when the Matroska/WebM file at ``path`` ends inside one of its elements (it was cut off); False
    when it ends on an element boundary, and when it does not parse as Matroska (nothing to judge)."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:  # buffered: each header is a few bytes, and skips within the buffer are cheap
        try:
            header = _read_header(f)
            if header is None or header[0] != _EBML or header[1] == _UNKNOWN:
                return False
            _skip(f, header[1], file_size)
            header = _read_header(f)
            while header is not None and header[0] != _SEGMENT:  # Void or other top-level elements first
                if header[1] == _UNKNOWN:
                    return False
                _skip(f, header[1], file_size)
                header = _read_header(f)
            if header is None:
                return False
            if header[1] != _UNKNOWN:
                return f.tell() + header[1] > file_size
            _walk_segment(f, file_size)
        except _EndsInside:
            return True
        except _NotMatroska:
            return False
    return False
