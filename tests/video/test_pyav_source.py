import math
from fractions import Fraction

import numpy as np
import pytest

from detector.errors import ConfigError, CorruptVideoError, InputError, NotAVideoError
from detector.synth import render_call
from detector.video import PyAVSource, RateSampler, open_video, probe


def test_sampler_keeps_first_frame_at_or_after_each_tick():
    s = RateSampler(10)
    stamps = [Fraction(i, 30) for i in range(31)]
    kept = [t for t in stamps if s.keep(t)]
    assert kept == [Fraction(i, 10) for i in range(11)]


def test_sampler_on_variable_frame_rate_keeps_even_spacing():
    s = RateSampler(5)
    # irregular capture: gaps of 10..90 ms
    rng = np.random.default_rng(1)
    t, stamps = Fraction(0), []
    for _ in range(300):
        stamps.append(t)
        t += Fraction(int(rng.integers(10, 90)), 1000)
    kept = [x for x in stamps if s.keep(x)]
    # each kept frame is the first one at or after its own tick of a fixed 200 ms grid
    ticks = [math.floor(k / Fraction(1, 5)) for k in kept]
    assert len(set(ticks)) == len(ticks)
    for k in kept:
        tick = Fraction(math.floor(k / Fraction(1, 5)), 5)
        earlier = [x for x in stamps if tick <= x < k]
        assert not earlier
    # the grid is covered: one frame per 200 ms of stream time (no drift)
    assert abs(len(kept) - float(stamps[-1]) * 5) <= 2


def test_sampler_rejects_nonpositive_rate():
    with pytest.raises(ConfigError):
        RateSampler(0)


def test_true_timestamps_on_vfr_file(tmp_path):
    p = render_call(tmp_path / "vfr.mp4", seconds=1.5, fps=20, size=(320, 240), vfr=True, seed=2)
    with open_video(p) as src:
        frames = list(src.frames())
    pts = np.array([float(f.pts) for f in frames])
    gaps = np.diff(pts)
    assert (gaps > 0).all()
    # the generator's intervals are 25, 50 or 100 ms: a constant-rate reader would see one value only
    assert len(set(np.round(gaps, 3))) >= 2
    assert pts[-1] == pytest.approx(1.5, abs=0.15)


def test_rotation_metadata_is_applied(tmp_path):
    p = render_call(tmp_path / "rot.mp4", seconds=0.5, fps=10, size=(320, 240), rotation=90, seed=2)
    info = probe(p)
    assert info.rotation == 90
    assert (info.width, info.height) == (320, 240)
    with open_video(p) as src:
        img = next(iter(src.frames())).image
    assert img.shape[:2] == (240, 320)  # displayed upright, landscape as rendered


def test_analysis_rate_sampling_and_downscale(genuine_clip):
    with PyAVSource(genuine_clip, max_side=240) as src:
        frames = list(src.frames(rate=5))
        assert frames[0].image.shape == (180, 240, 3)  # 480x360 scaled to a longer side of 240, upright
        assert src.decoded_frames == 45
    assert len(frames) == 15
    assert float(frames[1].pts - frames[0].pts) == pytest.approx(0.2, abs=1e-6)


def test_missing_file(tmp_path):
    with pytest.raises(InputError):
        PyAVSource(tmp_path / "nope.mp4")


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video at all\n" * 50)
    with pytest.raises(NotAVideoError):
        probe(p)


def test_truncated_file_gives_partial_frames_or_clear_error(genuine_clip, tmp_path):
    data = genuine_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        with open_video(cut) as src:
            frames = list(src.frames())
    except InputError:
        return  # a clear typed error is acceptable
    assert len(frames) < 45


def _write_clip(path, seconds, fps=10, codec="libx264", audio_seconds=None, start_s=0, container_options=None):
    """A small clip of changing grey frames, with a silent audio track of ``audio_seconds`` when given, whose
    first frame is at ``start_s``."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = 160, 120, "yuv420p"
        vs.time_base = Fraction(1, fps)
        au = None
        if audio_seconds:
            au = c.add_stream("libopus" if str(path).endswith(".webm") else "aac", rate=48000)
            au.layout = "mono"
        for i in range(int(seconds * fps)):
            vf = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 7) % 255, np.uint8), format="rgb24")
            vf.pts, vf.time_base = round(start_s * fps) + i, Fraction(1, fps)
            for pk in vs.encode(vf):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
        if au is not None:
            fmt = "flt" if str(path).endswith(".webm") else "fltp"
            for i in range(int(audio_seconds * 48000 / 960)):
                fr = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format=fmt, layout="mono")
                fr.sample_rate, fr.pts = 48000, i * 960
                for pk in au.encode(fr):
                    c.mux(pk)
            for pk in au.encode():
                c.mux(pk)
    return path


def test_older_mkvmerge_tags_are_read_too():
    from types import SimpleNamespace

    from detector.video.pyav_source import _tagged_duration

    tags = {"DURATION-eng": "00:01:05.500000000", "_STATISTICS_WRITING_APP-eng": "mkvmerge v9.0.1"}
    assert _tagged_duration(SimpleNamespace(metadata=tags)) == (Fraction(131, 2), True)
    # remuxed by FFmpeg: its own DURATION (an end time) beside the stale one, and FFmpeg as the writing app
    stale = {**tags, "DURATION": "00:00:10.000000000"}
    assert _tagged_duration(SimpleNamespace(metadata=stale), {"ENCODER": "Lavf62.12.102"}) == (10, False)
    assert _tagged_duration(SimpleNamespace(metadata={"DURATION": "00:00:07.250000000"})) == (Fraction(29, 4), False)
    assert _tagged_duration(SimpleNamespace(metadata={"DURATION": "00:00:00.000000000"})) == (None, False)
    assert _tagged_duration(SimpleNamespace(metadata={"DURATION": "soon"})) == (None, False)


@pytest.mark.parametrize("suffix,codec,options", [
    ("webm", "libvpx-vp9", {}),                    # WebM (browser capture)
    ("mp4", "libx264", {"movflags": "faststart"}),  # MP4 with its index at the front
])
def test_a_file_cut_off_mid_stream_counts_as_truncated(tmp_path, suffix, codec, options):
    # cut off, such a file still opens and its frames just stop, with no decode error; only its header's
    # duration tells that most of the call is missing
    whole = _write_clip(tmp_path / f"call.{suffix}", seconds=8, codec=codec, container_options=options)
    with open_video(whole) as src:
        frames = list(src.frames(rate=5))
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(float(src.info.duration), abs=0.01)
    data = whole.read_bytes()
    media = max(data.find(b"mdat"), 0)  # an MP4's index comes first: keep it and 40% of the media after it
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: media + (len(data) - media) * 2 // 5])
    with open_video(cut) as src:
        kept = list(src.frames(rate=5))
        assert src.info.duration == pytest.approx(8.0, abs=0.05)  # the header still says 8 s
        assert src.truncated
        assert 0.5 < float(src.decoded_seconds) < 5.0
        assert float(src.decoded_seconds) == pytest.approx(float(kept[-1].pts) + 0.1, abs=0.15)
    assert 0 < len(kept) < len(frames)


@pytest.mark.parametrize("suffix", ["mkv", "webm", "mp4"])
def test_audio_outlasting_the_video_is_not_truncation(tmp_path, suffix):
    # 2 s of video, 5 s of audio: the container's duration covers the audio, the video track's its own 2 s
    p = _write_clip(tmp_path / f"av.{suffix}", seconds=2, audio_seconds=5,
                    codec="libvpx-vp9" if suffix == "webm" else "libx264")
    with open_video(p) as src:
        assert float(src.info.duration) == pytest.approx(2.0, abs=0.05)
        list(src.frames(rate=5))
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("suffix", ["mkv", "mp4", "ts"])
def test_a_recording_that_starts_late_keeps_its_times_and_its_length(tmp_path, suffix):
    # frames from 1:00 on (an MPEG-TS capture, a clip cut out of a longer stream): a Matroska file declares where
    # it ends on its segment's timeline (1:05), an MP4 or TS file how long it lasts (5 s); either way the
    # recording is 5 s long and complete
    p = _write_clip(tmp_path / f"late.{suffix}", seconds=5, start_s=60)
    with open_video(p) as src:
        assert float(src.info.duration) == pytest.approx(5.0, abs=0.05)
        frames = list(src.frames(rate=5))
        # true presentation times are kept, counted as players count them: MPEG-TS's broadcast clock from the
        # file's start (which may be anywhere), MP4's and Matroska's timeline as they are (a later start is an edit)
        assert float(frames[0].pts) == pytest.approx(0.0 if suffix == "ts" else 60.0, abs=0.05)
        assert float(frames[-1].pts - frames[0].pts) == pytest.approx(4.8, abs=0.05)
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(5.0, abs=0.05)
    # the same judged from the container's duration alone (a Matroska file without track tags; another container
    # whose stream declares no length)
    import detector.video.pyav_source as pyav_source

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pyav_source, "_stream_length", lambda stream: None)
        mp.setattr(pyav_source, "_tagged_duration", lambda stream, container_metadata=None: (None, False))
        with open_video(p) as src:
            assert float(src.info.duration) == pytest.approx(5.0, abs=0.05)
            list(src.frames(rate=5))
            assert not src.truncated
    if suffix == "mkv":
        # cut off, its header still says it ends at 1:05, while its frames stop near 1:02
        data = p.read_bytes()
        cut = tmp_path / "late_cut.mkv"
        cut.write_bytes(data[: len(data) // 2])
        with open_video(cut) as src:
            list(src.frames(rate=5))
            assert src.truncated and float(src.decoded_seconds) < 4.0


def _h264_packets(c, times, time_base, rate, b_frames=0, noisy_every=0):
    """Encode 160x120 grey frames (noise every ``noisy_every``-th, for real B-frames) shown at ``times`` (in
    ``time_base`` units) into a new H.264 stream of container ``c``; returns the packets, not yet muxed."""
    import av

    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt, s.time_base = 160, 120, "yuv420p", time_base
    s.codec_context.options = {"bf": str(b_frames)}
    rng = np.random.default_rng(0)
    packets = []
    for i, t in enumerate(times):
        img = (rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) if noisy_every and i % noisy_every == 0
               else np.full((120, 160, 3), (i * 7) % 255, np.uint8))
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts, vf.time_base = t, time_base
        packets += list(s.encode(vf))
    return packets + list(s.encode())


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
@pytest.mark.parametrize("b_frames", [0, 3])
def test_a_last_frame_held_on_screen_is_not_a_shortfall(tmp_path, b_frames, suffix):
    # a screen recording or a frozen camera: 10 s of frames, then the last sample shown for 8 s more, which the
    # file's duration includes; every frame decodes. With B-frames the last sample in decode order is not the last
    # frame shown
    import av

    p = tmp_path / f"held.{suffix}"
    with av.open(str(p), "w") as c:
        packets = _h264_packets(c, range(100), Fraction(1, 10), 10, b_frames, noisy_every=4)
        packets[-1].duration = 80
        for pk in packets:
            c.mux(pk)
    with open_video(p) as src:
        assert float(src.info.duration) > 17.5
        list(src.frames(rate=5))
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(float(src.info.duration), abs=0.15)


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
@pytest.mark.parametrize("b_frames", [0, 3])
def test_a_pause_mid_call_counts_once(tmp_path, b_frames, suffix):
    # the camera stalls for a minute mid-call and a variable-frame-rate recording holds one frame over the pause:
    # its decoded span is the file's length, not longer. With B-frames the long sample duration belongs to the
    # frame decoded before the pause, which is shown after it (decoded_s had read 123 s for this 66 s file)
    import av

    p = tmp_path / f"pause.{suffix}"
    times = [i * 1000 for i in range(45)] + [945000 + i * 1000 for i in range(46)]
    with av.open(str(p), "w") as c:
        for pk in _h264_packets(c, times, Fraction(1, 15000), 15, b_frames):
            c.mux(pk)
    with open_video(p) as src:
        assert float(src.info.duration) == pytest.approx(66.07, abs=0.05)
        seen = [f.seconds for f in src.frames(rate=5)]
        assert any(s > 63 for s in seen) and not any(3 < s < 63 for s in seen)
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(float(src.info.duration), abs=0.1)


def test_matroska_frame_durations_are_not_summed(tmp_path):
    # outside MP4/MOV a frame's duration is nominal, not a step between samples: here each block claims 0.3 s
    # while frames come every 0.1 s, so adding them up would measure 30 s for a 10.2 s file
    import av

    p = tmp_path / "overlap.mkv"
    with av.open(str(p), "w") as c:
        for pk in _h264_packets(c, range(100), Fraction(1, 10), 10):
            pk.duration = 3
            c.mux(pk)
    with open_video(p) as src:
        list(src.frames(rate=5))
        assert float(src.decoded_seconds) == pytest.approx(10.2, abs=0.05) and not src.truncated


def test_a_header_duration_from_a_format_not_trusted_for_cuts_is_not_a_guess(tmp_path):
    # FLV declares its length in onMetaData: not trusted to find a cut, but the recording's length all the same,
    # cut or not (it had been replaced by the decoded span, hiding that a cut FLV was short)
    p = _write_clip(tmp_path / "call.flv", seconds=20, codec="flv")
    cut = tmp_path / "cut.flv"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    for f in (p, cut):
        with open_video(f) as src:
            list(src.frames(rate=5))
            assert float(src.info.duration) == pytest.approx(20.0, abs=0.2) and not src.info.duration_estimated


def test_mp4_frame_durations_summed_never_end_before_the_last_frame_shown(tmp_path, monkeypatch):
    # frames that timed_frames drops (stamps out of order) take their durations with them: the sum then falls
    # short, and the last frame shown is the floor (a complete file would otherwise be called cut off)
    import detector.video.pyav_source as pyav_source

    p = _write_clip(tmp_path / "call.mp4", seconds=10)
    real = pyav_source.timed_frames

    def dropping(container, stream, stats, *rest):
        return ((i, vf, pts) for i, vf, pts in real(container, stream, stats, *rest) if not 10 <= i < 90)

    monkeypatch.setattr(pyav_source, "timed_frames", dropping)
    # every frame decoded: frames dropped behind the back of the planner of undecoded frames would leave it
    # planning for frames that never come
    with PyAVSource(p, skip_unreferenced=False) as src:
        list(src.frames(rate=5))
        assert float(src.decoded_seconds) == pytest.approx(10.0, abs=0.15) and not src.truncated


def test_a_matroska_duration_guessed_from_the_bitrate_is_not_evidence(live_mkv):
    # written live (a pipe, MediaRecorder): no duration in the header, so FFmpeg guesses one from the bitrate of
    # the PCM audio, 21.2 s with the FFmpeg tested, for a complete 10 s file
    p = live_mkv
    with open_video(p) as src:
        list(src.frames(rate=5))
        assert src.info.duration is None or float(src.info.duration) > 11  # the guess, not the 10 s decoded
        assert src.info.duration_estimated == (src.info.duration is not None)  # and it is marked as one
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(10.0, abs=0.15)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_a_matroska_file_cut_inside_a_block_is_truncated_without_a_duration_to_compare(live_mkv, tmp_path, fraction):
    # a live-written file declares no duration, so only its element sizes show the cut; and a cut of under 2 s
    # (the 0.99 one) is below what a shortfall against a declared duration could tell
    data = live_mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with open_video(cut) as src:
        list(src.frames(rate=5))
        assert src.truncated and 0 < float(src.decoded_seconds) < 10.0


def _as_if_written_by_mkvmerge(data: bytes) -> bytes:
    # the file's writing app, which FFmpeg exposes as its ENCODER ("Lavf..." for FFmpeg), renamed in place
    import re

    return re.sub(rb"Lavf[0-9.]+", lambda m: (b"mkvmerge v80" + b"." * len(m.group()))[: len(m.group())], data)


@pytest.mark.parametrize("start_s,marked", [(3, True), (60, False)])
def test_an_mkvmerge_duration_tag_is_a_length(tmp_path, start_s, marked):
    # 5 s of video from 3 s (or 60 s) on: FFmpeg tags the video's end (00:00:08), mkvmerge its length (00:00:05)
    # and marks its statistics tags with _STATISTICS_WRITING_APP; a tag that ends before the video starts can
    # only be a length, marked or not
    import av

    p = tmp_path / "late.mkv"
    with av.open(str(p), "w") as c:
        vs = c.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt, vs.time_base = 160, 120, "yuv420p", Fraction(1, 10)
        if marked:
            vs.metadata["_STATISTICS_WRITING_APP"] = "mkvmerge v80.0"
        for i in range(50):
            vf = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 5, np.uint8), format="rgb24")
            vf.pts, vf.time_base = start_s * 10 + i, Fraction(1, 10)
            for pk in vs.encode(vf):
                c.mux(pk)
        for pk in vs.encode():
            c.mux(pk)
    if marked:
        # as FFmpeg writes it, with the marker that `ffmpeg -c copy` copies from a mkvmerge file: FFmpeg's own
        # DURATION is an end time (00:00:08) whatever the stale statistics say, and it names itself as the writer
        with open_video(p) as src:
            assert src._container.metadata.get("ENCODER", "").startswith("Lavf")
            assert float(src.info.duration) == pytest.approx(5.0, abs=0.05)
            list(src.frames(rate=5))
            assert not src.truncated
    data = p.read_bytes()
    end_tag = f"00:{(start_s + 5) // 60:02d}:{(start_s + 5) % 60:02d}.000000000".encode()
    assert data.count(end_tag) == 1
    p.write_bytes(_as_if_written_by_mkvmerge(data.replace(end_tag, b"00:00:05.000000000")))
    with open_video(p) as src:
        assert float(src.info.duration) == pytest.approx(5.0, abs=0.05)
        list(src.frames(rate=5))
        assert not src.truncated and float(src.decoded_seconds) == pytest.approx(5.0, abs=0.05)


def test_video_starting_beyond_what_ffmpeg_probes_is_measured_from_its_first_frame(tmp_path):
    # MPEG-TS with audio from 0 and video from 1:00:00: FFmpeg reports the video as starting at 0 and lasting
    # about 10 s, so the frames lie outside the declared span and say nothing about a shortfall
    p = _write_clip(tmp_path / "late.ts", seconds=5, start_s=3600, audio_seconds=10)
    with open_video(p) as src:
        frames = list(src.frames(rate=5))
        assert float(frames[0].pts) == pytest.approx(3600.0, abs=0.1)
        assert not src.truncated
        assert float(src.decoded_seconds) == pytest.approx(5.0, abs=0.1)
    # the same in Matroska, cut off: no span to compare with, but the file ends inside an element
    p = _write_clip(tmp_path / "late.mkv", seconds=5, start_s=3600, audio_seconds=10)
    cut = tmp_path / "late_cut.mkv"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size * 9 // 10])  # the video lies after the audio, at the end
    with open_video(cut) as src:
        list(src.frames(rate=5))
        assert src.truncated


def test_a_shortfall_within_the_margin_is_not_truncation(tmp_path, monkeypatch):
    # without the track's own duration (a Matroska file from a muxer that writes no track tags), the segment's
    # covers the audio too: a second of audio after the video's end must not be called a cut-off file, three must
    import detector.video.pyav_source as pyav_source

    monkeypatch.setattr(pyav_source, "_tagged_duration", lambda stream, container_metadata=None: (None, False))
    for audio_s, cut_off in ((3, False), (5, True)):
        p = _write_clip(tmp_path / f"av{audio_s}.mkv", seconds=2, audio_seconds=audio_s)
        with open_video(p) as src:
            assert float(src.info.duration) == pytest.approx(audio_s, abs=0.05)
            list(src.frames(rate=5))
            assert src.truncated is cut_off


def test_garbage_after_header_is_corrupt(genuine_clip, tmp_path):
    data = bytearray(genuine_clip.read_bytes())
    bad = tmp_path / "bad.mp4"
    # keep the container header, destroy every media byte
    bad.write_bytes(bytes(data[:2000]) + bytes(len(data) - 2000))
    with pytest.raises(InputError):
        with open_video(bad) as src:
            frames = list(src.frames())
            if not frames:
                raise CorruptVideoError("no frames")


@pytest.mark.parametrize("suffix,codec", [
    ("webm", "libvpx"),        # VP8 in WebM (browser capture)
    ("webm", "libvpx-vp9"),    # VP9 in WebM (Meet, Chrome recordings)
    ("mkv", "libx264"),        # H.264 in Matroska
    ("mov", "libx264"),        # QuickTime
    ("mp4", "libx265"),        # HEVC (phones, newer Zoom exports)
])
def test_common_call_containers_and_codecs_decode_with_timestamps(tmp_path, suffix, codec):
    import av

    path = tmp_path / f"clip_{codec}.{suffix}"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        if codec == "libx265":
            s.options = {"x265-params": "log-level=error"}
        for i in range(15):
            img = np.full((120, 160, 3), (i * 15) % 255, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = probe(path)
    assert (info.width, info.height) == (160, 120)
    with open_video(path) as src:
        frames = list(src.frames(rate=5))
    assert 6 <= len(frames) <= 8
    assert float(frames[1].pts - frames[0].pts) == pytest.approx(0.2, abs=0.02)
