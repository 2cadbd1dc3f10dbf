"""One way to open an onnxruntime session for every model the detector runs.

Every model wrapper (learned checks, fusion) is created once per worker and
serves all its tracks; workers run in parallel, so each session's threads
are capped by the caller (``ScanOptions.onnx_threads``) to avoid
oversubscribing the cores. Load failures become :class:`ModelError` with the
file and the model's human name in the message.
"""
from __future__ import annotations

from pathlib import Path

from detector.errors import ModelError


def open_session(path: Path, what: str, intra_op_threads: int = 1):
    """An ``onnxruntime.InferenceSession`` on CPU for ``path``; ``what`` names the model in errors."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} not found at {path} (set DETECTOR_MODELS_DIR to the folder holding it)")
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(intra_op_threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"cannot load {what} {path}: {exc}") from exc
