"""Typed exceptions raised by the library.

The library never exits or prints; callers (the CLI, the web app, the batch
runner) map these to exit codes, HTTP statuses or failure rows.
"""
from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error the detector raises on purpose."""

    #: short machine-readable reason, used in batch rows and JSON errors
    code = "error"


class InputError(DetectorError):
    """The input cannot be analysed (missing, not a video, corrupt)."""

    code = "bad_input"


class NotAVideoError(InputError):
    """The file is readable but holds no decodable video stream."""

    code = "not_a_video"


class UnopenableFileError(NotAVideoError):
    """FFmpeg cannot open the file at all: it is not a video, or a video damaged or cut off before the index it
    needs (an MP4 whose index is at the end). A caller that knows the file claims to be a video (its first bytes
    name a video container, as the batch runner checks) can count it as a broken recording."""


class CorruptVideoError(InputError):
    """The container opened but decoding failed before any usable frame."""

    code = "corrupt_video"


class ModelError(DetectorError):
    """A model file is missing, unreadable or has an unexpected signature."""

    code = "model_error"


class ConfigError(DetectorError):
    """Options are invalid (for example an analysis rate of zero)."""

    code = "bad_options"
