"""Where bundled model files live.

Models are committed under ``models/`` at the repository root (the package
is installed in editable mode, see README). ``DETECTOR_MODELS_DIR``
overrides the location, e.g. for a cluster image that copies them elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path


def models_dir() -> Path:
    env = os.environ.get("DETECTOR_MODELS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "models"
