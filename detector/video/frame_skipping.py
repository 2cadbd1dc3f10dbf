"""Leave undecoded the H.264 frames that nothing will look at.

A scan analyses 10 frames a second of a 25-60 fps recording, yet every frame used to be decoded: a frame that
another frame is predicted from has to be, but about half the frames of a typical H.264 recording are
*non-reference* (B-frames whose slices all have ``nal_ref_idc`` 0), and no other frame reads their pixels. Such a
frame that the analysis clock will not pick can go to the decoder not at all, and every other frame decodes to the
same pixels, bit for bit (FFmpeg's own ``skip_frame=NONREF`` rests on the same fact, but it drops *every*
non-reference frame, picked ones too).

Which frames the clock picks is decided on presentation times, while packets arrive in decode order: a frame's
decision depends on the frames shown before it, which can arrive up to the decoder's reorder depth after it (at
most 16 frames in H.264). :class:`UnreferencedFrameSkipper` therefore holds a few packets back, runs a copy of the
scan's :class:`~detector.video.source.RateSampler` over their presentation times in order, and lets a packet go
undecoded only when that copy rejects its time and its NAL units say no frame refers to it. A sampler never
changes its state on a time it rejects, so leaving such frames out changes no later decision.

The copy predicts; the scan's own sampler still decides on the frames actually decoded. Nothing is skipped before
the decoder gives out its first frame, and the copy restarts on that frame's time (a file cut from a longer stream
starts with frames the decoder cannot decode). Where the two could still disagree (a packet without a timestamp,
the decoder dropping a frame the copy counted, frames given out of time order, as AVI's decode-order timestamps
make them; AVI is not planned at all), skipping stops for the rest of the file. What that cannot undo: on a stream
reordered beyond the lookahead, one analysed frame may be taken a frame later than a full decode would take it;
and on damaged data FFmpeg's concealment of a broken frame can draw on a non-reference frame that was not decoded,
so a damaged stretch may look slightly different.
"""
from __future__ import annotations

import heapq
from collections import deque
from fractions import Fraction
from typing import Callable, Iterable, Iterator

from detector.video.source import RateSampler

#: packets held back before one is released, so that the frames shown before it have been demuxed when it is
#: judged. H.264 bounds reordering (at most 16 frames decoded before a frame are shown after it) but not how many
#: frames shown before a frame may be decoded after it; a stream that goes beyond this is caught when such a late
#: time arrives (skipping stops), possibly after one frame was judged on incomplete knowledge
LOOKAHEAD_PACKETS = 16

# H.264 NAL unit types: a non-IDR coded slice, and the units that can share an access unit with it without
# affecting later pictures (SEI, access unit delimiter, filler). Anything else (IDR slices, parameter sets that
# later frames would use, data partitions, extensions) keeps the packet decoded.
_NAL_SLICE = 1
_NAL_HARMLESS = frozenset({6, 9, 12})


def h264_nal_length_size(extradata: bytes | None) -> int:
    """Bytes in each NAL unit's length prefix for an ``avcC`` stream (MP4, MOV, Matroska, FLV), or 0 for an
    Annex B stream (MPEG-TS, raw H.264), whose NAL units are separated by start codes."""
    if extradata and len(extradata) >= 7 and extradata[0] == 1:
        return (extradata[4] & 3) + 1
    return 0


def _nal_headers(data: bytes | memoryview, nal_length_size: int) -> list[int] | None:
    """The first byte (``forbidden_zero_bit``, ``nal_ref_idc``, ``nal_unit_type``) of each NAL unit, or None when
    the packet is not laid out as the stream's format says (length prefixes that do not add up to the packet, no
    start code at the front): a misread header could call a reference frame unreferenced."""
    headers = []
    if nal_length_size:
        i, n = 0, len(data)
        while i + nal_length_size < n:
            size = int.from_bytes(data[i:i + nal_length_size], "big")
            headers.append(data[i + nal_length_size])
            i += nal_length_size + size
        return headers if i == n else None
    raw = bytes(data)
    if not (raw.startswith(b"\x00\x00\x01") or raw.startswith(b"\x00\x00\x00\x01")):
        return None
    i = raw.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(raw):
        headers.append(raw[i + 3])
        i = raw.find(b"\x00\x00\x01", i + 3)
    return headers


def is_unreferenced_h264(data: bytes | memoryview, nal_length_size: int) -> bool:
    """True when this H.264 access unit is a picture no other picture is predicted from: it holds at least one
    coded slice, every slice has ``nal_ref_idc`` 0, and nothing else but SEI, delimiters and filler."""
    headers = _nal_headers(data, nal_length_size)
    if not headers:
        return False
    slices = 0
    for header in headers:
        kind = header & 0x1F
        if header & 0x80:  # forbidden_zero_bit set: not a NAL unit header as the format says
            return False
        if kind == _NAL_SLICE:
            if header & 0x60:  # nal_ref_idc != 0: later pictures may be predicted from it
                return False
            slices += 1
        elif kind not in _NAL_HARMLESS:
            return False
    return slices > 0


class UnreferencedFrameSkipper:
    """Plans, packet by packet, which frames of an H.264 stream sampled at ``rate`` need not be decoded.

    :meth:`packets` passes the demuxed packets through with a flag saying whether to decode each; the caller feeds
    the scan's own sampling decisions back through :meth:`observe` (every frame the decoder gives out, in order) and
    calls :meth:`stop` when it drops one as out of order. Nothing is skipped before the decoder has given out its
    first frame: a file that starts mid-stream loses frames the decoder cannot decode (before the first keyframe, an
    open GOP's leading B-frames), and the clock starts on the first frame it does give out, so the shadow sampler is
    restarted there. Undecoded frames count towards the recording (``skipped``, ``skipped_length``,
    ``skipped_first``, ``skipped_last``, ``skipped_last_length``, ``skipped_end``) only once a frame shown after them
    has come out of the decoder: where decoding stops early, frames after the last one given out are not counted.
    """

    def __init__(self, rate: Fraction | float, time_base: Fraction, nal_length_size: int,
                 frame_length: Callable[[object], Fraction] | None = None):
        self._rate = rate
        self._shadow = RateSampler(rate)
        self._tb = Fraction(time_base)
        self._nal_length_size = nal_length_size
        # how long an undecoded frame is shown, read off its packet: the caller's rule for decoded frames
        # (PyAVSource._frame_length), else the packet's own duration
        self._frame_length = frame_length or (lambda packet: Fraction(packet.duration or 0) * self._tb)
        self._pending: list[int] = []  # presentation times demuxed and not yet run through the shadow sampler
        self._decided: dict[int, bool] = {}  # time -> the shadow sampler keeps it (for packets not yet released)
        self._predicted: deque[tuple[int, bool]] = deque()  # decisions in presentation order, awaiting the frame
        self._last_judged: int | None = None
        self._started = False  # the decoder has given out a frame: skipping may begin
        self._undecoded: list[tuple[int, Fraction]] = []  # heap of (time, length) of frames left undecoded
        self.active = True
        self.skipped = 0
        self.skipped_length = Fraction(0)
        self.skipped_first: Fraction | None = None
        self.skipped_last: Fraction | None = None
        self.skipped_last_length = Fraction(0)
        self.skipped_end: Fraction | None = None

    def stop(self) -> None:
        """Decode every frame from here on (the frames' times can no longer be followed)."""
        self.active = False
        self._pending.clear()
        self._decided.clear()
        self._predicted.clear()

    def _take_in(self, packet) -> None:
        if not self.active or not packet.size or packet.is_discard:
            return  # the flushing packet; or one whose frame the decoder drops (before an edit list's start)
        if packet.pts is None:
            self.stop()  # the shadow sampler could not follow the frames' times
            return
        heapq.heappush(self._pending, packet.pts)

    def _judge(self, t: int) -> bool:
        """Run the shadow sampler on time ``t``; False when ``t`` comes after a later time was judged."""
        if self._last_judged is not None and t <= self._last_judged:
            return False
        self._last_judged = t
        kept = self._shadow.keep(t * self._tb)
        self._decided[t] = kept
        self._predicted.append((t, kept))
        return True

    def _release(self, packet) -> tuple[object, bool]:
        if not self.active or not packet.size or packet.is_discard or packet.pts is None:
            return packet, True
        while self._pending and self._pending[0] <= packet.pts:
            if not self._judge(heapq.heappop(self._pending)):
                self.stop()  # a frame shown earlier than one already judged arrived too late: cannot follow
                return packet, True
        kept = self._decided.pop(packet.pts, True)
        if kept or not self._started or not is_unreferenced_h264(memoryview(packet), self._nal_length_size):
            return packet, True
        heapq.heappush(self._undecoded, (packet.pts, self._frame_length(packet)))
        return packet, False

    def packets(self, demuxed: Iterable) -> Iterator[tuple[object, bool]]:
        """(packet, decode it) for every demuxed packet, in demux order, a few packets behind. A demuxer error
        is raised after the packets already read have been handed on."""
        held: deque = deque()
        source = iter(demuxed)
        while True:
            try:
                packet = next(source)
            except StopIteration:
                break
            except Exception:
                # a demuxer error (a damaged file): what was read still gets decoded before the error reaches the
                # caller
                while held:
                    yield self._release(held.popleft())
                raise
            self._take_in(packet)
            held.append(packet)
            if len(held) > LOOKAHEAD_PACKETS:
                yield self._release(held.popleft())
        while held:
            yield self._release(held.popleft())

    def _restart_at(self, pts: int) -> None:
        """The decoder's first frame is at ``pts``: judge again from there, as the scan's clock starts there.
        Nothing was skipped before, so only decisions for packets not yet released change."""
        judged = [t for t, _ in self._predicted if t >= pts]
        unreleased = {t for t in self._decided if t >= pts}  # frames before the first one: decode as they come
        self._predicted.clear()
        self._shadow = RateSampler(self._rate)
        self._last_judged = None
        for t in judged:
            self._judge(t)
        self._decided = {t: kept for t, kept in self._decided.items() if t in unreleased}
        self._started = True

    def _count_undecoded_before(self, pts: int) -> None:
        """Count the undecoded frames shown before ``pts``, a frame the decoder gave out."""
        while self._undecoded and self._undecoded[0][0] < pts:
            t, length = heapq.heappop(self._undecoded)
            time = t * self._tb
            self.skipped += 1
            self.skipped_length += length
            if self.skipped_first is None or time < self.skipped_first:
                self.skipped_first = time
            if self.skipped_last is None or time > self.skipped_last:
                self.skipped_last, self.skipped_last_length = time, length
            if self.skipped_end is None or time + length > self.skipped_end:
                self.skipped_end = time + length

    def observe(self, pts: int | None, kept: bool) -> None:
        """The scan's sampler kept (or not) the decoded frame at ``pts`` (in time-base units), the next frame the
        decoder gave out. Skipping stops at the first frame it judges otherwise than the shadow sampler did, or
        when a frame the shadow sampler kept never came out of the decoder."""
        if pts is None:
            self.stop()
            return
        self._count_undecoded_before(pts)
        if not self.active:
            return
        if not self._started:
            self._restart_at(pts)  # (a first frame at a time no packet had stops skipping below)
        while self._predicted and self._predicted[0][0] < pts:
            _, predicted = self._predicted.popleft()
            if predicted:  # a frame it counted on never came (dropped by the decoder, or out of order)
                self.stop()
                return
        if self._predicted and self._predicted[0][0] == pts:
            _, predicted = self._predicted.popleft()
            if predicted != kept:
                self.stop()
        elif kept:  # the decoder gave a frame whose time the shadow sampler has not judged: cannot follow it
            self.stop()

    def skipped_before(self, pts: int) -> int:
        """How many undecoded frames are shown before ``pts``, the frame last passed to :meth:`observe` (for a
        decoded frame's index among all frames)."""
        self._count_undecoded_before(pts)
        return self.skipped
