"""Fixtures for the batch tests: small real videos, junk files, the fake analyzer."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from batch_fakes import cut_in_half, write_mp4  # noqa: E402


@pytest.fixture(autouse=True)
def _fake_importable(monkeypatch, tmp_path):
    # spawned pool workers and Dask worker processes import the fake by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_ANALYZER_LOG", str(tmp_path / "fake.log"))


@pytest.fixture(scope="session")
def video_src(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    write_mp4(d / "base.mp4", seconds=1.5, seed=1)
    write_mp4(d / "other.mp4", seconds=1.0, seed=2)
    write_mp4(d / "third.mp4", seconds=1.2, seed=3)
    return d


@pytest.fixture
def archive(tmp_path, video_src) -> Path:
    """A folder like a real share: calls in subfolders, a renamed call, junk, a broken upload."""
    a = tmp_path / "archive"
    (a / "2024" / "q1").mkdir(parents=True)
    (a / "misc").mkdir()
    shutil.copy(video_src / "base.mp4", a / "2024" / "q1" / "call_p0.91.mp4")
    shutil.copy(video_src / "other.mp4", a / "2024" / "call_p0.12.mp4")
    shutil.copy(video_src / "third.mp4", a / "misc" / "recording_p0.55.dat")  # extension lies: still a call
    cut_in_half(video_src / "base.mp4", a / "2024" / "q1" / "truncated_upload.mp4")
    (a / "misc" / "notes.mp4").write_text("meeting notes\n" * 200)  # extension lies: not a call
    (a / "misc" / "tiny.bin").write_bytes(b"\x00" * 100)
    (a / "misc" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(4000))
    (a / "misc" / "random.bin").write_bytes(os.urandom(8000))  # unknown header: probed, not a video
    return a
