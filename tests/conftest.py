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
