"""The versioned report model and its builders/renderers."""
from detector.report.model import SCHEMA_VERSION, Report, Verdict

__all__ = ["SCHEMA_VERSION", "Report", "Verdict"]
