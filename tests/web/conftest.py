"""Fixtures of the web tests (helpers live in web_fakes.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from web_fakes import write_tiny_video


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory) -> Path:
    return write_tiny_video(tmp_path_factory.mktemp("media") / "interview.mp4")
