"""Shared fixtures: synthetic recordings made by the project's own generator."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GLOG_minloglevel", "2")

REPO = Path(__file__).resolve().parents[1]
DEV_MANIFEST = REPO.parent / "shared" / "data" / "dev" / "manifest.csv"


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="session")
def genuine_clip(synth_dir) -> Path:
    from detector.synth import render_call

    return render_call(synth_dir / "genuine.mp4", seconds=3.0, fps=15, size=(480, 360), swap=False, seed=3)


@pytest.fixture(scope="session")
def swap_clip(synth_dir) -> Path:
    from detector.synth import render_call

    return render_call(synth_dir / "swap.mp4", seconds=3.0, fps=15, size=(480, 360), swap=True, seed=3)


@pytest.fixture(scope="session")
def no_face_clip(synth_dir) -> Path:
    """A valid video with no face in it."""
    import av
    import numpy as np

    path = synth_dir / "noface.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=15)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(45):
            img = np.full((240, 320, 3), 90 + i, np.uint8) + rng.integers(0, 8, (240, 320, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _write_live_matroska(path: Path, audio_codec: str) -> Path:
    """A complete 10 s VP9 Matroska/WebM file with silent audio, written as a live recorder writes it: to a pipe,
    so its header declares no duration."""
    import io
    from fractions import Fraction

    import av
    import numpy as np

    class Pipe(io.RawIOBase):
        def __init__(self, f):
            self.f = f

        def writable(self):
            return True

        def seekable(self):
            return False

        def write(self, b):
            self.f.write(b)
            return len(b)

    pcm = audio_codec.startswith("pcm")
    with open(path, "wb") as raw, av.open(Pipe(raw), "w", format="matroska" if pcm else "webm") as c:
        vs = c.add_stream("libvpx-vp9", rate=10)
        vs.width, vs.height, vs.pix_fmt, vs.time_base = 160, 120, "yuv420p", Fraction(1, 10)
        au = c.add_stream(audio_codec, rate=48000)
        au.layout = "mono"
        rng = np.random.default_rng(0)
        for i in range(100):
            img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 10)
            for pk in vs.encode(vf):
                c.mux(pk)
            for j in range(5):
                fr = (av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono") if pcm
                      else av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono"))
                fr.sample_rate, fr.pts = 48000, (i * 5 + j) * 960
                for pk in au.encode(fr):
                    c.mux(pk)
        for st in (vs, au):
            for pk in st.encode():
                c.mux(pk)
    return path


@pytest.fixture(scope="session")
def live_mkv(synth_dir) -> Path:
    """VP9 + PCM written live: FFmpeg guesses a duration from the PCM bitrate (21.2 s with the FFmpeg tested)."""
    return _write_live_matroska(synth_dir / "live.mkv", "pcm_s16le")


@pytest.fixture(scope="session")
def live_webm(synth_dir) -> Path:
    """VP9 + Opus written live, as a browser's MediaRecorder writes a call: no duration, and none guessed."""
    return _write_live_matroska(synth_dir / "live.webm", "libopus")
