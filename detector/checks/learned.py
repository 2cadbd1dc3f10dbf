"""Learned artifact check: a small CNN trained on self-blended genuine faces.

The model (``models/sbi_face.onnx``, trained by
:mod:`detector.training.sbi_train`) never saw a deepfake: it was trained to
tell genuine face crops from the same crops with a perturbed copy of the face
blended back in (Self-Blended Images, Shiohara & Yamasaki, CVPR 2022). It
therefore responds to the generic traces every face swap leaves where the
rendered face meets the original frame (colour, sharpness and resampling
mismatch along a soft seam) rather than to one swapper's look.

The check samples the track's aligned 112x112 crops (computed once by the
pipeline) at most every ``min_interval`` seconds, buffers them and runs the
shared ONNX session in batches; it emits one logit per sampled crop at that
crop's time. Only numpy and onnxruntime are needed at inference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from detector.checks.base import CheckSignal, SampledCropCheck
from detector.paths import models_dir
from detector.errors import ModelError
from detector.onnx_session import open_session

CROP_SIZE = 112
#: per-channel normalisation of the model input: x = (rgb / 255 - MEAN) / STD
MEAN = np.array([0.5, 0.5, 0.5], dtype=np.float32)
STD = np.array([0.25, 0.25, 0.25], dtype=np.float32)
#: top-k used by the ``sbi.topk`` feature (mean of the k highest crop logits)
TOP_K = 5


def default_models_dir() -> Path:
    """``$DETECTOR_MODELS_DIR`` if set, else ``<repo>/models`` (see :mod:`detector.paths`)."""
    return models_dir()


def _default_model_path() -> Path:
    return default_models_dir() / "sbi_face.onnx"


@dataclass
class SBIModelOptions:
    model_path: Path = field(default_factory=_default_model_path)
    #: threads per session: one session serves every track of a worker, and
    #: workers run in parallel, so one thread each avoids oversubscription
    intra_op_threads: int = 1
    batch_size: int = 16


def preprocess(crops: np.ndarray) -> np.ndarray:
    """(N,112,112,3) uint8 RGB -> (N,3,112,112) float32 normalised model input."""
    x = crops.astype(np.float32) * (1.0 / 255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class SBIModel:
    """ONNX Runtime wrapper of the self-blend face model. Thread-compatible, not thread-safe to close."""

    def __init__(self, options: SBIModelOptions | None = None):
        self.options = options or SBIModelOptions()
        path = Path(self.options.model_path)
        if not path.is_file():
            raise ModelError(f"self-blend face model not found at {path} (set DETECTOR_MODELS_DIR or "
                             "train one with `python -m detector.training.sbi_train`)")
        self._session = open_session(path, "self-blend face model", self.options.intra_op_threads)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape = list(inputs[0].shape) if inputs else []
        if (len(inputs) != 1 or inputs[0].name != "input" or inputs[0].type != "tensor(float)"
                or len(shape) != 4 or shape[1:] != [3, CROP_SIZE, CROP_SIZE]
                or len(outputs) != 1 or outputs[0].name != "logit"):
            self._session = None
            raise ModelError(f"{path} does not have the self-blend model signature "
                             f"input[N,3,{CROP_SIZE},{CROP_SIZE}] float -> logit[N,1]; got inputs "
                             f"{[(i.name, i.shape, i.type) for i in inputs]}, outputs {[o.name for o in outputs]}")

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Fake logits (N,) float32 for (N,112,112,3) uint8 RGB aligned crops (larger = more likely blended)."""
        if self._session is None:
            raise ModelError("self-blend face model is closed")
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise ValueError(f"expected (N,{CROP_SIZE},{CROP_SIZE},3) crops, got {crops.shape}")
        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        out = []
        bs = max(1, int(self.options.batch_size))
        for i in range(0, len(crops), bs):
            (logit,) = self._session.run(["logit"], {"input": preprocess(crops[i:i + bs])})
            out.append(np.asarray(logit, dtype=np.float32).reshape(-1))
        return np.concatenate(out)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "SBIModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def summarize_values(v: np.ndarray, prefix: str = "sbi") -> dict[str, float]:
    """Track/window features of per-crop logits; NaN when nothing was measured."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    keys = ("mean", "median", "p75", "p90", "topk", "frac_pos")
    if v.size == 0:
        return {f"{prefix}.{k}": np.nan for k in keys}
    k = min(TOP_K, v.size)
    return {
        f"{prefix}.mean": float(v.mean()),
        f"{prefix}.median": float(np.median(v)),
        f"{prefix}.p75": float(np.percentile(v, 75)),
        f"{prefix}.p90": float(np.percentile(v, 90)),
        f"{prefix}.topk": float(np.sort(v)[-k:].mean()),
        f"{prefix}.frac_pos": float((v > 0).mean()),
    }


class LearnedArtifactCheck(SampledCropCheck):
    """Per-crop blend-seam logits from the shared :class:`SBIModel` (``context.models["sbi"]``)."""

    name: ClassVar[str] = "sbi"
    title: ClassVar[str] = "Face blending seam (learned)"
    explanation: ClassVar[str] = ("a model trained on self-blended faces sees a blending seam around the face, "
                                  "as left when a swapped face is pasted into the frame")
    direction: ClassVar[int] = 1
    model_metadata: ClassVar[str | None] = "sbi_face.json"
    shared_model: ClassVar[str | None] = "sbi"

    #: seconds between sampled crops: neighbouring frames carry nearly the same
    #: evidence; at ~1.5 ms per crop, 2 crops/s costs well under 1% of one core
    min_interval: float = 0.5

    @classmethod
    def open_model(cls, intra_op_threads: int = 1) -> SBIModel:
        return SBIModel(SBIModelOptions(intra_op_threads=intra_op_threads))

    def score_batch(self, times: list[float], crops: np.ndarray) -> None:
        for t, v in zip(times, self.model.predict(crops)):
            self.emit(t, float(v))

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        """``sbi.mean`` (default score), median, p75, p90, top-k mean and share of positive crops."""
        return summarize_values(signal.values, cls.name)
