"""detector: catch face-swap deepfakes in recorded video interviews.

Library use::

    from detector import scan
    report = scan("call.mp4")
    print(report.verdict, report.probability)

For many files, keep one :class:`Analyzer` so models load once.
"""
__version__ = "0.1.0"

from detector.api import Analyzer, scan  # noqa: E402
from detector.errors import ConfigError, CorruptVideoError, DetectorError, InputError, ModelError, NotAVideoError  # noqa: E402
from detector.options import ScanOptions  # noqa: E402
from detector.report.model import Report, Verdict  # noqa: E402

__all__ = ["Analyzer", "ConfigError", "CorruptVideoError", "DetectorError", "InputError", "ModelError",
           "NotAVideoError", "Report", "ScanOptions", "Verdict", "__version__", "scan"]
