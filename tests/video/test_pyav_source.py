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
