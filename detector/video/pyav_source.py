"""PyAV (FFmpeg) implementation of :class:`VideoSource`.

PyAV is used rather than ``cv2.VideoCapture`` because it exposes the true
presentation timestamps, the stream time base and the display-matrix rotation,
and fails with typed errors on broken input instead of silently returning
empty frames.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from detector.errors import CorruptVideoError, InputError, NotAVideoError, UnopenableFileError
from detector.video.frame_skipping import UnreferencedFrameSkipper, h264_nal_length_size
from detector.video.matroska import ends_inside_an_element
from detector.video.source import Frame, RateSampler, VideoInfo, VideoSource

# How many consecutive undecodable packets we tolerate before calling the
# rest of the file truncated. Real recordings have the odd broken packet.
_MAX_DECODE_ERRORS = 25

# A file whose frames stop this far short of the duration its header declares
# counts as truncated (an upload cut off, a recording whose writer died): the
# demuxer just meets the end of the file and says nothing. The margin is wide
# because a container's duration can cover its longest stream, and audio often
# outlasts video by a fraction of a second to a second or so.
_SHORTFALL_MIN_S = 2.0
_SHORTFALL_FRACTION = 0.05
# Formats whose headers declare the video's duration (FFmpeg's names, matched as substrings), as opposed to a
# duration FFmpeg guesses from the bitrate, which would make every complete file look cut off or overlong.
# Matroska/WebM are judged apart (see PyAVSource._declared_span).
_DECLARING_FORMATS = ("mov,mp4", "avi", "mpegts")


def _rotation_of(stream, first_frame=None) -> int:
    """Degrees counter-clockwise to turn a decoded frame for display."""
    angle = None
    if first_frame is not None:
        try:
            angle = first_frame.rotation
        except Exception:  # older PyAV: no display-matrix accessor
            angle = None
    if not angle:
        tag = stream.metadata.get("rotate") if stream.metadata else None
        if tag:
            # the legacy 'rotate' tag is clockwise
            angle = -int(float(tag))
    angle = int(round((angle or 0) / 90.0)) * 90 % 360
    return angle


def _apply_rotation(img: np.ndarray, angle_ccw: int) -> np.ndarray:
    if angle_ccw == 0:
        return img
    if angle_ccw == 90:
        return np.ascontiguousarray(np.rot90(img, 1))
    if angle_ccw == 180:
        return np.ascontiguousarray(img[::-1, ::-1])
    return np.ascontiguousarray(np.rot90(img, -1))


def _stream_length(stream) -> Fraction | None:
    """The video stream's own declared length in seconds (MP4, MOV, TS), or None."""
    if stream.duration is None or stream.time_base is None:
        return None
    return Fraction(stream.duration) * stream.time_base


def _tagged_duration(stream, container_metadata=None) -> tuple[Fraction | None, bool]:
    """A Matroska/WebM track's duration tag ("HH:MM:SS.nnnnnnnnn"; ``DURATION``, or ``DURATION-eng`` from older
    mkvmerge), and whether it is a length: mkvmerge's statistics tags (marked by ``_STATISTICS_WRITING_APP``) hold
    one, FFmpeg's muxer the end time; ``container_metadata`` (the file's) names the writing app. (None, False)
    when there is none."""
    meta = {str(k).upper(): v for k, v in (stream.metadata or {}).items()}
    # the plain key first: a file remuxed by FFmpeg keeps the old mkvmerge ``DURATION-eng`` beside FFmpeg's own
    tag = meta.get("DURATION") or next((v for k, v in meta.items() if k.startswith("DURATION-")), None)
    try:
        h, m, sec = str(tag).strip().split(":")
        value = int(h) * 3600 + int(m) * 60 + Fraction(sec)
    except (ValueError, ZeroDivisionError):
        return None, False
    # FFmpeg copies the statistics marker when it remuxes a mkvmerge file but writes its own DURATION as the end,
    # so the marker says "length" only in a file FFmpeg did not write (its writing app reads "Lavf...")
    writer = str((container_metadata or {}).get("encoder") or (container_metadata or {}).get("ENCODER") or "")
    is_length = any(k.startswith("_STATISTICS_WRITING_APP") for k in meta) and not writer.startswith("Lavf")
    return (value, is_length) if value > 0 else (None, False)


def decode_tolerantly(container, stream, stats, skipper: UnreferencedFrameSkipper | None = None
                      ) -> Iterator[av.VideoFrame]:
    """Decode every frame of ``stream``, skipping broken packets.

    ``stats`` (any object with ``decode_errors`` and ``truncated``, e.g. a
    :class:`PyAVSource`) counts the packets skipped; after more than
    ``_MAX_DECODE_ERRORS`` in a row the rest counts as truncated and decoding stops.
    With a ``skipper``, the frames it finds no use for are not decoded at all.
    """
    errors_in_row = 0
    demuxed = container.demux(stream)
    planned = ((packet, True) for packet in demuxed) if skipper is None else skipper.packets(demuxed)
    try:
        for packet, decode in planned:
            if not decode:
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                stats.decode_errors += 1
                errors_in_row += 1
                if errors_in_row > _MAX_DECODE_ERRORS:
                    stats.truncated = True
                    yield from _drain(stream)
                    return
                continue
            errors_in_row = 0
            yield from frames
    except av.error.FFmpegError:
        # a demuxer failure mid-file: the frames the decoder still holds are given out before the error
        yield from _drain(stream)
        raise


def _drain(stream) -> list[av.VideoFrame]:
    """The frames a decoder still holds when decoding stops early (it keeps a few for reordering and threads)."""
    try:
        return list(stream.codec_context.decode(None))
    except av.error.FFmpegError:
        return []


def timed_frames(container, stream, stats, skipper: UnreferencedFrameSkipper | None = None
                 ) -> Iterator[tuple[int, av.VideoFrame, Fraction]]:
    """(index in the order the decoder gives frames out, frame as decoded, presentation time in seconds) of every
    frame kept.

    A frame without a timestamp gets the previous one's plus a frame at the
    declared rate; a frame whose time does not follow the previous one's
    (B-frame reordering glitches, duplicated stamps) is dropped, so times only
    increase. ``stats`` is as for :func:`decode_tolerantly`, and its
    ``decoded_frames`` counts every frame decoded, kept or not, and ``skipper`` is as for
    :func:`decode_tolerantly` (the index then counts decoded frames only). Frames are
    neither rotated nor resized: :meth:`PyAVSource.frames` does that, and the
    training re-encoder (``detector.fusion.augment``) wants them as decoded.
    """
    tb = stream.time_base
    last_pts: Fraction | None = None
    for index, vf in enumerate(decode_tolerantly(container, stream, stats, skipper)):
        stats.decoded_frames = index + 1
        if vf.pts is None:
            # no timestamp: extrapolate from the previous one at the declared rate
            step = 1 / (stream.average_rate or Fraction(30))
            pts = (last_pts + step) if last_pts is not None else Fraction(0)
        else:
            pts = Fraction(vf.pts) * (vf.time_base or tb)
        if last_pts is not None and pts <= last_pts:
            # B-frame reordering glitches or duplicated stamps: keep order monotone
            if skipper is not None:
                skipper.stop()  # the frames' order is not their times': the plan cannot follow
            continue
        last_pts = pts
        yield index, vf, pts


class PyAVSource(VideoSource):
    """Streams RGB frames with exact timestamps from any FFmpeg-readable file.

    ``max_side`` downscales frames whose longer side exceeds it (faces in a
    1080p call are still far above the landmark model's input size), which
    keeps colour conversion and per-frame checks cheap.
    """

    def __init__(self, path: str | os.PathLike, max_side: int | None = 1280, threads: int = 0,
                 skip_unreferenced: bool = True):
        self.path = os.fspath(path)
        self.max_side = max_side
        # sampling at a rate, leave undecoded the H.264 frames the clock does not pick and no frame is predicted
        # from (detector.video.frame_skipping): the frames analysed are the same, bit for bit
        self.skip_unreferenced = skip_unreferenced
        if not os.path.exists(self.path):
            raise InputError(f"no such file: {self.path}")
        if os.path.isdir(self.path):
            raise InputError(f"is a directory, not a recording: {self.path}")
        if os.path.getsize(self.path) == 0:
            raise NotAVideoError(f"the file is empty: {self.path}")
        try:
            self._container = av.open(self.path, mode="r")
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            # a missing index (moov atom) looks the same as a non-video to FFmpeg
            raise UnopenableFileError(f"cannot read {self.path} as a video (not a video, or truncated/corrupt): "
                                 f"{getattr(exc, 'strerror', None) or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise NotAVideoError(f"no video stream in {self.path}")
        self._stream = self._container.streams.video[0]
        # FFmpeg frame threading: decoding is the one stage that scales with
        # cores for free. threads=0 lets FFmpeg choose.
        self._stream.thread_type = "AUTO"
        if threads:
            self._stream.codec_context.thread_count = threads
        self._rotation: int | None = None
        self._info: VideoInfo | None = None
        fmt = self._container.format.name or ""
        # frames' durations are the sample table's steps between decode times (MP4, MOV and their kin)
        self._sample_durations = "mp4" in fmt
        self._matroska = "matroska" in fmt or "webm" in fmt
        #: subtracted from every frame's time: MPEG transport and program streams carry a broadcast clock that
        #: starts anywhere (an hour in, a recorder's 1.4 s mux delay), and players count from the file's start, so
        #: the report's times are those a player shows. MP4/MOV and Matroska timelines start at 0 by definition, and
        #: an MP4 whose first frame comes later holds an empty edit that players show as such: kept as they are
        self.origin = Fraction(0)
        if fmt in ("mpegts", "mpeg") and self._container.start_time is not None:
            self.origin = Fraction(self._container.start_time, av.time_base)
        self.truncated = False  # set when decoding stopped early on errors, or the frames ended well before the
        # duration the header declares (see _SHORTFALL_MIN_S)
        self.decode_errors = 0
        #: every frame the last frames() pass went through, kept or not: those decoded, and the
        #: ``undecoded_frames`` it had no need to decode
        self.decoded_frames = 0
        self.undecoded_frames = 0
        #: seconds of the recording the last frames() pass decoded: from the declared start to the end of the last
        #: frame (None before a pass, or when no frame was decoded)
        self.decoded_seconds: Fraction | None = None

    # -- probing -----------------------------------------------------------
    def _probe_rotation(self) -> int:
        if self._rotation is None:
            first = None
            try:
                with av.open(self.path) as c:
                    for first in c.decode(video=0):
                        break
            except av.error.FFmpegError:
                first = None
            self._rotation = _rotation_of(self._stream, first)
        return self._rotation

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            s = self._stream
            cc = s.codec_context
            rot = self._probe_rotation()
            w, h = int(cc.width or 0), int(cc.height or 0)
            if rot in (90, 270):
                w, h = h, w
            span = self._declared_span()
            duration = None if span is None or span[1] <= span[0] else span[1] - span[0]
            if w == 0 or h == 0:
                raise NotAVideoError(f"video stream has no picture size: {self.path}")
            self._info = VideoInfo(
                path=self.path,
                container=self._container.format.name,
                codec=cc.name,
                width=w,
                height=h,
                rotation=rot,
                duration=duration,
                average_rate=s.average_rate,
                frame_count=s.frames or None,
                size_bytes=os.path.getsize(self.path),
                # in Matroska only FFmpeg's bitrate guess is untrusted (elsewhere an untrusted duration is the
                # header's own, e.g. FLV's or MXF's, and stays the recording's)
                duration_estimated=duration is not None and self._matroska and not span[2],
            )
        return self._info

    def _target_size(self) -> tuple[int, int] | None:
        cc = self._stream.codec_context
        w, h = cc.width, cc.height
        if not self.max_side or max(w, h) <= self.max_side:
            return None
        scale = self.max_side / max(w, h)
        # even sizes keep swscale on its fast path
        return max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)

    def _declared_span(self) -> tuple[Fraction, Fraction, bool] | None:
        """(start, end, trusted) in seconds of the video as the header declares them, or None when it declares no
        duration. ``trusted`` is False where the duration may be FFmpeg's own guess, which is not evidence that
        frames are missing.

        The stream's own duration where the format declares one (MP4, MOV, AVI; MPEG-TS, where FFmpeg reads it off
        the timestamps at the file's end), as a length from the stream's start. Matroska and WebM declare none per
        track: there the video track's ``DURATION`` tag is used, else the segment's duration, which covers every
        stream. FFmpeg's muxer writes both as the *end* on the segment's timeline, which starts at 0 (a file whose
        frames run 1:00:00-1:00:10 declares 1:00:10), while mkvmerge's statistics tags hold a length. A Matroska
        file written live declares no duration at all, and FFmpeg then guesses one from the bitrate and gives it to
        every stream, so an untagged Matroska stream that has a duration is not trusted. Other formats' durations
        may be guesses too (a raw elementary stream's, from its bitrate), so only ``_DECLARING_FORMATS`` are.
        """
        s, c = self._stream, self._container
        start = Fraction(s.start_time or 0) * s.time_base if s.time_base is not None else Fraction(0)
        length = _stream_length(s)
        if self._matroska:
            tagged, is_length = _tagged_duration(s, c.metadata)
            if tagged is not None:
                # a tag at or before the video's start cannot be its end: it is a length whoever wrote it
                return start, (start + tagged if is_length or tagged <= start else tagged), True
            if length is not None:  # FFmpeg's guess (or the segment's duration handed to the stream)
                return start, start + length, False
            if c.duration is not None:
                return start, Fraction(c.duration, av.time_base), True
            return None
        declaring = any(name in (c.format.name or "") for name in _DECLARING_FORMATS)
        if length is not None:
            return start, start + length, declaring
        if c.duration is not None:
            c_start = Fraction(c.start_time, av.time_base) if c.start_time is not None else start
            return c_start, c_start + Fraction(c.duration, av.time_base), declaring
        return None

    def _note_shortfall(self, first: Fraction, end: Fraction) -> None:
        """Set ``decoded_seconds`` from the first frame's time to ``end``, where the decoded frames stop being
        shown, and ``truncated`` when that is well short of a trusted declared end."""
        span = self._declared_span()
        # frames that start outside the declared span (FFmpeg did not probe far enough to find where the video
        # starts, e.g. video from 1:00:00 behind audio from 0) say nothing about a shortfall
        consistent = span is not None and span[0] <= first < span[1]
        self.decoded_seconds = end - (span[0] if consistent else first)
        if not consistent or not span[2]:
            return
        if span[1] - end > max(Fraction(_SHORTFALL_MIN_S), _SHORTFALL_FRACTION * (span[1] - span[0])):
            self.truncated = True

    def _frame_length(self, vf: av.VideoFrame | av.Packet) -> Fraction:
        """How long a frame is shown: its own duration where the file stores one (a variable-frame-rate
        recording can hold its last frame for seconds, and its declared duration includes that), else one frame at
        the stream's average rate. Read off a decoded frame, or off the packet of one left undecoded."""
        tb = vf.time_base or self._stream.time_base
        own = getattr(vf, "duration", None)
        if own and tb is not None and own > 0:
            return Fraction(own) * tb
        return 1 / self._stream.average_rate if self._stream.average_rate else Fraction(0)

    def _ends_inside_an_element(self) -> bool:
        """A Matroska/WebM file that ends inside one of its own elements was cut off, however much of it
        decoded: FFmpeg stops at its last whole block without an error, and a file written live declares no
        duration to fall short of (see :mod:`detector.video.matroska`)."""
        try:
            return ends_inside_an_element(self.path)
        except OSError:  # the file went away or cannot be read again: nothing to judge
            return False

    # -- decoding ----------------------------------------------------------
    def _decoded(self) -> Iterator[av.VideoFrame]:
        """Decode every frame, tolerating a few broken packets."""
        return decode_tolerantly(self._container, self._stream, self)

    def timestamps(self) -> Iterator[Fraction]:
        """Decode-only pass yielding timestamps; used by ``bench`` as the baseline."""
        for vf in self._decoded():
            if vf.pts is not None:
                yield Fraction(vf.pts) * vf.time_base

    def _frame_skipper(self, rate: Fraction | float | None) -> UnreferencedFrameSkipper | None:
        """A planner of frames to leave undecoded, for an H.264 stream sampled at a rate (other codecs: none)."""
        s = self._stream
        if not self.skip_unreferenced or rate is None or s.codec_context.name != "h264" or s.time_base is None:
            return None
        if "avi" in (self._container.format.name or ""):
            return None  # AVI stamps packets in decode order: frames come out of the decoder out of time order
        return UnreferencedFrameSkipper(rate, s.time_base, h264_nal_length_size(s.codec_context.extradata),
                                        frame_length=self._frame_length)

    def frames(self, rate: Fraction | float | None = None) -> Iterator[Frame]:
        sampler = RateSampler(rate)
        skipper = self._frame_skipper(rate)
        rot = self._probe_rotation()
        size = self._target_size()
        index = -1
        produced = 0
        first = last = furthest = None
        last_length = total = Fraction(0)
        self.decoded_seconds = None
        self.undecoded_frames = 0
        try:
            for index, vf, pts in timed_frames(self._container, self._stream, self, skipper):
                if first is None:
                    first = pts
                length = self._frame_length(vf)
                last, last_length = pts, length  # timed_frames yields rising timestamps
                shown_until = pts + length
                furthest = shown_until if furthest is None or shown_until > furthest else furthest
                total += length
                kept = sampler.keep(pts)
                if skipper is not None:
                    skipper.observe(vf.pts, kept)
                if not kept:
                    continue
                if size is not None:
                    img = vf.to_ndarray(format="rgb24", width=size[0], height=size[1])
                else:
                    img = vf.to_ndarray(format="rgb24")
                produced += 1
                # the frame's position among all the stream's frames, the undecoded ones shown before it included
                position = index + (skipper.skipped_before(vf.pts) if skipper is not None and vf.pts is not None
                                    else 0)
                yield Frame(index=position, pts=pts - self.origin, image=_apply_rotation(img, rot))
        except av.error.FFmpegError as exc:  # demuxer failure mid-file
            self.truncated = True
            if produced == 0:
                raise CorruptVideoError(f"could not decode {self.path}: {exc}") from exc
        if skipper is not None and skipper.skipped:
            # the frames left undecoded are still the recording's: they count towards its length and frame count
            self.undecoded_frames = skipper.skipped
            self.decoded_frames += skipper.skipped
            total += skipper.skipped_length
            if first is None or skipper.skipped_first < first:
                first = skipper.skipped_first
            if last is None or skipper.skipped_last > last:
                last, last_length = skipper.skipped_last, skipper.skipped_last_length
            if furthest is None or skipper.skipped_end > furthest:
                furthest = skipper.skipped_end
        if first is not None:
            # Where the decoded frames stop being shown. In MP4/MOV a frame's own duration is its sample's, the
            # step to the next sample in *decode* order, so with B-frames a long one lands on another frame than
            # the one shown before the pause: a held tail on a B-frame shown before the last, a mid-call pause (the
            # camera stalled) on the frame decoded before it, which is shown after it. Their sum is the decode
            # timeline's span whatever the order, so it counts either once. Elsewhere durations are nominal
            # (Matroska's default duration, one frame at the declared rate, even over a pause or at twice that
            # rate), so a sum could overshoot, and the furthest any frame is shown is the measure.
            end = furthest
            if self._sample_durations:  # never short of the last frame shown, should a frame have been dropped
                end = max(last + last_length, first + total)
            self._note_shortfall(first, end)
            if not self.truncated and self._matroska and self._ends_inside_an_element():
                self.truncated = True
        if produced == 0 and index < 0:
            raise CorruptVideoError(f"no decodable video frame in {self.path}")

    def close(self) -> None:
        c, self._container = getattr(self, "_container", None), None
        if c is not None:
            c.close()


def open_video(path: str | os.PathLike, max_side: int | None = 1280) -> PyAVSource:
    """Open a recording with the default backend."""
    return PyAVSource(path, max_side=max_side)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Probe a file's content (not its extension); raises InputError subclasses."""
    with PyAVSource(path) as src:
        return src.info
