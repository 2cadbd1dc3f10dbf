import hashlib
from fractions import Fraction

import numpy as np
import pytest

from detector.video import PyAVSource, RateSampler
from detector.video.frame_skipping import (LOOKAHEAD_PACKETS, UnreferencedFrameSkipper, h264_nal_length_size,
                                           is_unreferenced_h264)

# NAL unit header bytes: forbidden bit, nal_ref_idc (2 bits), nal_unit_type (5 bits)
NONREF_SLICE, REF_SLICE, IDR, SEI, SPS, AUD = 0x01, 0x21, 0x65, 0x06, 0x67, 0x09


def avcc(*headers, length_size=4, payload=b"\xaa\xbb"):
    return b"".join((1 + len(payload)).to_bytes(length_size, "big") + bytes([h]) + payload for h in headers)


def annexb(*headers, payload=b"\xaa\xbb"):
    return b"".join(b"\x00\x00\x00\x01" + bytes([h]) + payload for h in headers)


def test_nal_length_size_is_read_from_avcc_extradata():
    assert h264_nal_length_size(bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0])) == 4
    assert h264_nal_length_size(bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1, 0])) == 2
    assert h264_nal_length_size(None) == 0
    assert h264_nal_length_size(b"\x00\x00\x00\x01\x67\x64") == 0  # Annex B parameter sets


@pytest.mark.parametrize("headers, expected", [
    ((NONREF_SLICE,), True),
    ((AUD, SEI, NONREF_SLICE, NONREF_SLICE), True),  # delimiter, SEI and a picture in two slices
    ((REF_SLICE,), False),
    ((NONREF_SLICE, REF_SLICE), False),  # one slice used for reference makes the picture a reference
    ((IDR,), False),
    ((SPS, NONREF_SLICE), False),  # a parameter set later frames may use
    ((SEI,), False),  # no picture at all
    ((0x81,), False),  # forbidden bit set: not a NAL header
    ((0x02,), False),  # data partition A: not judged
])
def test_a_picture_is_unreferenced_only_when_every_unit_says_so(headers, expected):
    assert is_unreferenced_h264(avcc(*headers), 4) is expected
    assert is_unreferenced_h264(avcc(*headers, length_size=2), 2) is expected
    assert is_unreferenced_h264(annexb(*headers), 0) is expected


def test_a_packet_not_laid_out_as_its_format_says_is_never_unreferenced():
    good = avcc(NONREF_SLICE)
    assert not is_unreferenced_h264(good[:-1], 4)  # a length that runs past the packet
    assert not is_unreferenced_h264(good + b"\x00", 4)  # bytes left over
    assert is_unreferenced_h264(annexb(NONREF_SLICE)[1:] + b"\x00", 0)  # 3-byte start code, trailing zero: fine

    assert not is_unreferenced_h264(b"\x12" + annexb(NONREF_SLICE), 0)  # ... but one must open the packet
    assert not is_unreferenced_h264(annexb(NONREF_SLICE), 4)  # start codes read as lengths
    assert not is_unreferenced_h264(b"", 4) and not is_unreferenced_h264(b"", 0)


class FakePacket(bytes):
    """The parts of ``av.Packet`` the skipper reads, over the packet's bytes."""

    def __new__(cls, pts, unreferenced, duration=1, discard=False):
        p = super().__new__(cls, avcc(NONREF_SLICE if unreferenced else REF_SLICE))
        p.pts, p.duration, p.is_discard, p.time_base = pts, duration, discard, None
        p.size = len(p)
        return p


def gop_packets(n_gops, pattern=(0, 3, 1, 2)):
    """Packets in decode order of ``n_gops`` groups like I/P b b (``pattern`` gives presentation offsets in decode
    order; offsets other than the first two are unreferenced B-frames), 1 unit of time a frame."""
    out = []
    for g in range(n_gops):
        base = g * (len(pattern) - 1)
        for k, off in enumerate(pattern):
            if g and k == 0:
                continue  # the previous group's P-frame opens this one
            out.append(FakePacket(base + off, unreferenced=k >= 2))
    return out


def plan(skipper, packets, first_frame=0, count_all=True):
    """Run the planner as a scan does: the decoder gives out its first frame, at ``first_frame``, once that
    frame's packet has gone in, and (at the end) every frame after it."""
    out, started = [], False
    for packet, decode in skipper.packets(iter(packets)):
        out.append((packet, decode))
        if not started and packet.pts == first_frame:
            skipper.observe(first_frame, True)
            started = True
    if count_all:
        skipper.skipped_before(10 ** 9)
    return out


def expected_skips(packets, rate, tb):
    sampler = RateSampler(rate)
    kept = {p.pts for p in sorted(packets, key=lambda p: p.pts) if sampler.keep(p.pts * tb)}
    return {p.pts for p in packets if p.size and not kept.__contains__(p.pts) and is_unreferenced_h264(p, 4)}


@pytest.mark.parametrize("rate", [Fraction(10), Fraction(15, 2), Fraction(30)])
def test_the_skipper_leaves_out_exactly_the_unreferenced_frames_the_clock_does_not_pick(rate):
    tb = Fraction(1, 30)
    packets = gop_packets(40)
    skipper = UnreferencedFrameSkipper(rate, tb, 4)
    planned = plan(skipper, packets)
    assert [p for p, _ in planned] == packets  # every packet, in demux order
    skipped = {p.pts for p, decode in planned if not decode}
    assert skipped == expected_skips(packets, rate, tb)
    if rate == 30:
        assert not skipped  # every frame is analysed
    else:
        assert skipped and skipper.skipped == len(skipped)
        assert skipper.skipped_length == Fraction(len(skipped), 30)
        assert skipper.skipped_first == min(skipped) * tb and skipper.skipped_last == max(skipped) * tb
        assert skipper.skipped_end == (max(skipped) + 1) * tb


def test_frames_shown_before_one_but_demuxed_up_to_the_lookahead_after_it_are_judged_first():
    # a deep B-pyramid: the frame shown first after the P-frame is demuxed last of its group
    tb = Fraction(1, 30)
    pattern = (0, 9) + tuple(range(8, 0, -1))
    packets = gop_packets(10, pattern)
    assert len(pattern) < LOOKAHEAD_PACKETS
    skipper = UnreferencedFrameSkipper(Fraction(10), tb, 4)
    skipped = {p.pts for p, decode in plan(skipper, packets) if not decode}
    assert skipped == expected_skips(packets, Fraction(10), tb) and skipped


def test_nothing_is_skipped_before_the_decoder_gives_out_a_frame():
    packets = gop_packets(20)
    assert all(d for _, d in UnreferencedFrameSkipper(Fraction(10), Fraction(1, 30), 4).packets(iter(packets)))


def test_the_clock_restarts_on_the_first_frame_the_decoder_gives_out():
    # a recording cut from a longer stream at an open GOP's keyframe (shown at 3): the leading B-frames shown
    # before it (1, 2) cannot be decoded, and the scan's clock starts at 3, not at 1
    tb = Fraction(1, 30)
    packets = [FakePacket(3, False), FakePacket(1, True), FakePacket(2, True)] + [
        FakePacket(p.pts + 3, p[4] & 0x60 == 0) for p in gop_packets(20)[1:]]
    rate = Fraction(15, 2)  # one frame in four: starting at 1 or at 3 picks other frames
    skipped = {p.pts for p, d in plan(UnreferencedFrameSkipper(rate, tb, 4), packets, first_frame=3) if not d}
    assert skipped == expected_skips([p for p in packets if p.pts >= 3], rate, tb)
    assert skipped != expected_skips(packets, rate, tb) - {1, 2}


@pytest.mark.parametrize("trouble", ["no timestamp", "same timestamp twice"])
def test_skipping_stops_where_the_frames_times_cannot_be_followed(trouble):
    tb = Fraction(1, 30)
    packets = gop_packets(20)
    packets[30] = FakePacket(None if trouble == "no timestamp" else packets[29].pts, unreferenced=True)
    planned = plan(UnreferencedFrameSkipper(Fraction(10), tb, 4), packets)
    skipped_at = [i for i, (_, decode) in enumerate(planned) if not decode]
    assert skipped_at and max(skipped_at) < 30


def test_a_frame_shown_before_frames_already_judged_stops_skipping():
    # beyond the lookahead: a stream whose reordering is deeper than H.264 allows cannot be followed
    tb = Fraction(1, 30)
    packets = gop_packets(20)
    late = FakePacket(packets[5].pts - Fraction(1, 2), unreferenced=True)  # shown between two early frames
    packets.insert(5 + LOOKAHEAD_PACKETS + 8, late)
    planned = plan(UnreferencedFrameSkipper(Fraction(10), tb, 4), packets)
    at = next(i for i, (p, _) in enumerate(planned) if p is late)
    assert planned[at][1] and all(d for _, d in planned[at:])
    assert any(not d for _, d in planned[:at])


def test_discarded_packets_are_decoded_and_not_judged():
    # packets before an MP4 edit list's start: the decoder drops their frames, so the clock never sees them
    tb = Fraction(1, 30)
    packets = [FakePacket(-4 + k, unreferenced=k > 0, discard=True) for k in range(4)] + gop_packets(20)
    planned = plan(UnreferencedFrameSkipper(Fraction(10), tb, 4), packets)
    assert all(decode for _, decode in planned[:4])
    skipped = {p.pts for p, d in planned if not d}
    assert skipped == expected_skips(packets[4:], Fraction(10), tb)
    assert skipped != expected_skips(packets, Fraction(10), tb)  # judging them would have moved the clock


def test_packets_read_before_a_demuxer_error_are_handed_on_before_it():
    packets = gop_packets(10)

    def failing():
        yield from packets[:20]
        raise OSError("demuxer failed")

    got = []
    with pytest.raises(OSError):
        for packet, _ in UnreferencedFrameSkipper(Fraction(10), Fraction(1, 30), 4).packets(failing()):
            got.append(packet)
    assert got == packets[:20]


def test_a_sampling_decision_unlike_the_prediction_stops_skipping():
    tb = Fraction(1, 30)
    packets = gop_packets(20)
    skipper = UnreferencedFrameSkipper(Fraction(10), tb, 4)
    planned = skipper.packets(iter(packets))
    next(planned)
    skipper.observe(0, True)  # the decoder's first frame
    head = [next(planned) for _ in range(10)]
    assert any(not d for _, d in head)
    assert skipper.active
    skipper.observe(3, False)  # the prediction kept pts 3: the scan's own clock disagrees
    assert not skipper.active
    assert all(d for _, d in planned)


def test_a_predicted_frame_that_never_comes_stops_skipping():
    tb = Fraction(1, 30)
    skipper = UnreferencedFrameSkipper(Fraction(10), tb, 4)
    planned = skipper.packets(iter(gop_packets(20)))
    [next(planned) for _ in range(10)]
    skipper.observe(0, True)
    skipper.observe(4, False)  # the kept frame at 3 never came out of the decoder
    assert not skipper.active
    assert all(d for _, d in planned)


def test_a_kept_frame_whose_time_was_never_judged_stops_skipping():
    skipper = UnreferencedFrameSkipper(Fraction(10), Fraction(1, 30), 4)
    planned = skipper.packets(iter(gop_packets(20)))
    [next(planned) for _ in range(10)]
    skipper.observe(0, True)
    skipper.observe(Fraction(1, 2), False)  # a time it has not judged, not kept: nothing to follow
    assert skipper.active
    skipper.observe(Fraction(3, 2), True)  # kept: the scan's clock runs on frames it cannot see
    assert not skipper.active


def test_undecoded_frames_count_once_a_frame_shown_after_them_comes_out():
    skipper = UnreferencedFrameSkipper(Fraction(10), Fraction(1, 30), 4)
    skipped = sorted(p.pts for p, d in plan(skipper, gop_packets(5), count_all=False) if not d)
    assert skipped and skipper.skipped == 0  # only the first frame came out of the decoder
    assert skipper.skipped_before(6) == sum(t < 6 for t in skipped) == skipper.skipped
    assert skipper.skipped_length == Fraction(skipper.skipped, 30)
    assert skipper.skipped_before(6) == skipper.skipped  # counted once
    assert skipper.skipped_before(100) == len(skipped)


# -- real files ------------------------------------------------------------------------------------------------

def _encode(path, images, times, time_base, rate, options):
    """Encode RGB ``images`` shown at ``times`` (``time_base`` units) with libx264 and ``options``."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.height, s.width = images[0].shape[:2]
        s.pix_fmt, s.time_base = "yuv420p", time_base
        s.codec_context.options = dict(options)
        for img, t in zip(images, times):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = t, time_base
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def _write_h264(path, times, time_base, rate, b_frames=3):
    """160x120 frames, a noisy one every fourth so the encoder makes real B-frames, shown at ``times``."""
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) if i % 4 == 0
              else np.full((120, 160, 3), (i * 7) % 255, np.uint8) for i in range(len(times))]
    return _encode(path, images, times, time_base, rate, {"bf": str(b_frames)})


def _scan(path, rate, skip):
    with PyAVSource(path, skip_unreferenced=skip) as src:
        frames = [(f.index, f.pts, hashlib.md5(f.image.tobytes()).hexdigest()) for f in src.frames(rate)]
        return frames, src.decoded_seconds, src.truncated, src.decoded_frames, src.undecoded_frames


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "ts"])  # length-prefixed NAL units, and start codes in MPEG-TS
def test_a_scan_analyses_the_same_frames_bit_for_bit_without_decoding_them_all(tmp_path, suffix):
    p = _write_h264(tmp_path / f"call.{suffix}", range(150), Fraction(1, 30), 30)
    full, skipping = _scan(p, 10, False), _scan(p, 10, True)
    assert full[0] == skipping[0] and len(full[0]) == 50
    assert full[1:4] == skipping[1:4]  # decoded span, truncation, frames in the stream (150)
    assert full[3] == 150 and full[4] == 0
    assert 30 <= skipping[4] < 100  # about half the frames are B-frames, and a third of those are analysed


def test_a_variable_frame_rate_pause_is_sampled_the_same(tmp_path):
    times = [i * 1000 for i in range(45)] + [945000 + i * 1000 for i in range(46)]
    p = _write_h264(tmp_path / "pause.mp4", times, Fraction(1, 15000), 15)
    full, skipping = _scan(p, 5, False), _scan(p, 5, True)
    assert full[:4] == skipping[:4] and skipping[4] > 0


def test_every_frame_wanted_or_another_codec_decodes_every_frame(tmp_path):
    p = _write_h264(tmp_path / "call.mp4", range(60), Fraction(1, 30), 30)
    assert _scan(p, None, True)[4] == 0
    import av

    q = tmp_path / "call.webm"
    with av.open(str(q), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=30)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(30):
            for pk in s.encode(av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    assert _scan(q, 10, True)[4] == 0


def test_a_damaged_recording_still_scans_in_time_order(tmp_path):
    p = _write_h264(tmp_path / "call.mp4", range(300), Fraction(1, 30), 30)
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(3)
    for at in rng.integers(len(data) // 4, len(data) * 3 // 4, 40):
        data[at] ^= 0xFF
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    frames = _scan(bad, 10, True)[0]
    times = [t for _, t, _ in frames]
    assert len(times) > 50 and times == sorted(set(times))


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_an_undecoded_frame_shown_last_counts_to_the_end_of_its_showing(tmp_path, monkeypatch, suffix):
    # the length decoded covers the frames left undecoded: here one, as a stub reports it, shown at 4 s after
    # the 2 s of frames decoded (in MP4 the end of the last frame shown, elsewhere the furthest any frame shows)
    from types import SimpleNamespace

    p = _write_h264(tmp_path / f"call.{suffix}", range(60), Fraction(1, 30), 30)
    stub = SimpleNamespace(skipped=1, skipped_length=Fraction(1, 30), skipped_first=Fraction(4),
                           skipped_last=Fraction(4), skipped_last_length=Fraction(1, 30), skipped_end=Fraction(121, 30),
                           observe=lambda pts, kept: None, skipped_before=lambda pts: 0, packets=lambda d: ((x, True) for x in d))
    monkeypatch.setattr(PyAVSource, "_frame_skipper", lambda self, rate: stub)
    with PyAVSource(p) as src:
        list(src.frames(10))
        assert src.decoded_seconds == Fraction(121, 30) and src.decoded_frames == 61 and src.undecoded_frames == 1


def test_the_scans_own_clock_has_the_last_word(tmp_path, monkeypatch):
    # should the scan's sampler judge a frame otherwise than the skipper predicted, skipping stops there
    import detector.video.pyav_source as pyav_source

    p = _write_h264(tmp_path / "call.mp4", range(300), Fraction(1, 30), 30)
    normal = _scan(p, 10, True)

    class Contrary(RateSampler):
        def keep(self, pts):
            return False if pts == 1 else super().keep(pts)  # refuses the frame at 1 s, which the skipper expects

    monkeypatch.setattr(pyav_source, "RateSampler", Contrary)
    contrary = _scan(p, 10, True)
    assert 0 < contrary[4] < normal[4] * 0.5  # it stopped skipping about 1 s into 10 s
    assert contrary[3] == normal[3] == 300


# -- files a full decode and a planned one must read alike (from a review's reproductions) ------------------------

def _write_moving(path, n=300, options=None):
    """192x144 frames of a panning texture with a cut every 37 frames, through libx264 with ``options``."""
    rng = np.random.default_rng(0)
    base, images = rng.integers(0, 255, (288, 384, 3), dtype=np.uint8), []
    for i in range(n):
        x, y = (i * 3) % 192, (i * 2) % 144
        images.append(base[y:y + 144, x:x + 192].copy())
        if i % 37 == 0:
            base = rng.integers(0, 255, (288, 384, 3), dtype=np.uint8)
    return _encode(path, images, range(n), Fraction(1, 30), 30, options or {"bf": "3"})


def _cut(src, dst, start):
    """Stream-copy the packets from the ``start``-th in decode order on: a recording cut from a longer stream."""
    import av

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s = i.streams.video[0]
        t = o.add_stream_from_template(s)
        for k, p in enumerate(p for p in i.demux(s) if p.size):
            if k >= start:
                p.stream = t
                o.mux(p)
    return dst


def _scan_threads(path, rate, skip, threads):
    with PyAVSource(path, skip_unreferenced=skip, threads=threads) as src:
        frames = [(f.index, f.pts, hashlib.md5(f.image.tobytes()).hexdigest()) for f in src.frames(rate)]
        return frames, src.decoded_seconds, src.truncated, src.decoded_frames, src.undecoded_frames


OPEN_GOP = {"bf": "3", "g": "30", "x264-params": "open-gop=1:keyint=30:min-keyint=30:scenecut=0:b-adapt=0:"
                                                 "b-pyramid=normal"}


@pytest.mark.parametrize("suffix", ["ts", "mkv"])
@pytest.mark.parametrize("start", [29, 35])  # at an open GOP's keyframe (its leading B-frames undecodable); mid-GOP
@pytest.mark.parametrize("threads", [1, 16])
def test_a_recording_cut_from_a_longer_stream_is_read_alike(tmp_path, suffix, start, threads):
    src = _write_moving(tmp_path / f"stream.{suffix}", options=OPEN_GOP)
    cut = _cut(src, tmp_path / f"cut.{suffix}", start)
    full, planned = _scan_threads(cut, 10, False, threads), _scan_threads(cut, 10, True, threads)
    assert full[:4] == planned[:4] and planned[4] > 0


def test_avi_stamps_in_decode_order_so_every_frame_is_decoded(tmp_path):
    p = _write_moving(tmp_path / "call.avi", options={"bf": "3", "x264-params": "b-pyramid=normal"})
    full, planned = _scan_threads(p, 10, False, 0), _scan_threads(p, 10, True, 0)
    assert full[:4] == planned[:4] and planned[4] == 0


def test_decoding_that_gives_up_on_damaged_data_is_read_alike(tmp_path):
    # every packet from the 102nd on overwritten with noise (the index intact): decoding gives up after 25 in a row,
    # and the frames the decoder still holds are given out either way
    import av

    p = _write_moving(tmp_path / "call.mp4", options={"bf": "5", "x264-params": "b-pyramid=normal"})
    data = bytearray(p.read_bytes())
    rng = np.random.default_rng(0)
    with av.open(str(p)) as c:
        for k, pk in enumerate(pk for pk in c.demux(video=0) if pk.size):
            if k >= 102:
                data[pk.pos:pk.pos + pk.size] = rng.integers(0, 256, pk.size, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.mp4"
    bad.write_bytes(bytes(data))
    full, planned = _scan_threads(bad, 10, False, 1), _scan_threads(bad, 10, True, 1)
    assert full[:4] == planned[:4] and full[2] and planned[4] > 0
    assert full[0][-1][1] > 3.3  # the held frames came out: the analysed frames reach the last decodable ones


@pytest.mark.parametrize("after", [96, 100, 103])
def test_a_demuxer_failure_mid_file_is_read_alike(tmp_path, after):
    import av

    p = _write_moving(tmp_path / "call.mp4", options={"bf": "5", "x264-params": "b-pyramid=normal"})

    def scan(skip):
        with PyAVSource(p, skip_unreferenced=skip, threads=1) as src:
            real = src._container

            class Failing:
                def __getattr__(self, name):
                    return getattr(real, name)

                def demux(self, *a, **k):
                    for i, packet in enumerate(real.demux(*a, **k)):
                        if i == after:
                            raise av.error.InvalidDataError(1094995529, "simulated demuxer failure", "x")
                        yield packet

            src._container = Failing()
            try:
                frames = [(f.index, f.pts, hashlib.md5(f.image.tobytes()).hexdigest()) for f in src.frames(10)]
            finally:
                src._container = real
            return frames, src.decoded_seconds, src.truncated, src.decoded_frames

    full, planned = scan(False), scan(True)
    assert full == planned and full[2]


def test_frames_given_out_of_time_order_stop_the_plan(tmp_path, monkeypatch):
    # planned as if it were any container (AVI itself is never planned): the decoder gives its frames out of time
    # order, which timed_frames drops, and the plan stops there
    p = _write_moving(tmp_path / "call.avi", options={"bf": "3", "x264-params": "b-pyramid=normal"})

    def any_container(self, rate):
        s = self._stream
        return UnreferencedFrameSkipper(rate, s.time_base, h264_nal_length_size(s.codec_context.extradata),
                                        frame_length=self._frame_length)

    full = _scan_threads(p, 10, False, 0)
    monkeypatch.setattr(PyAVSource, "_frame_skipper", any_container)
    assert _scan_threads(p, 10, True, 0)[:4] == full[:4]


def test_a_first_frame_at_no_packets_time_stops_the_plan():
    skipper = UnreferencedFrameSkipper(Fraction(10), Fraction(1, 30), 4)
    planned = skipper.packets(iter(gop_packets(20)))
    next(planned)
    skipper.observe(Fraction(1, 2), True)  # the decoder's first frame has a time no packet had
    assert not skipper.active and all(d for _, d in planned)
