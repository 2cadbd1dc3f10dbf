"""Pretrained face-appearance features: MediaPipe's Face Mesh CNN, read out by the fusion.

No ImageNet or face-recognition weights can be installed here, but the
mediapipe wheel ships one pretrained face CNN, its 468-landmark network
(Apache-2.0). ``models/face_mesh_features.onnx`` is that network converted
op by op (:mod:`detector.training.face_mesh_onnx`); it returns 448 pooled
activations of four intermediate layers per 192x192 face crop. Layers that
locate landmarks on skin, eyes and lips also encode fine texture and shading,
which is where a rendered, resampled face differs from a filmed one.

This check only *measures*: per sampled crop it runs the network on two
views (:data:`VIEWS`), the whole aligned crop and its central 70% enlarged to
the same input size, and records both 448-value vectors plus the network's
own face-presence logit. A swapper renders the inner face; the second view
gives that region about twice the input pixels and leaves out most of the
hair, ears and background the swap does not touch. Which directions of that
space mean "swapped" is learned by the fusion model (``detector
train-fusion``) under grouped cross-validation, so the evaluation stays out of
fold. Measured on the dev clips with a linear read-out, the whole-crop vector
alone reaches a grouped-CV AUC of about 0.71 (``experiments/backbone_probe.py``)
and both views 0.75 (``experiments/pooling_probe.py --views``); the whole
fusion moved from 0.724 to 0.766 (see ``experiments/README.md``, session 7,
for how the view was chosen and how far to trust that gain).

The network reads the pipeline's 112 px aligned crop, enlarged to its 192 px
input, although most faces are larger than that in the frame. That is
deliberate: a 192 px crop cut from the frame made the fusion about 0.05 AUC
worse under grouped CV, and an 80 px one scored about the same as 112 px
(0.782 against 0.783; ``experiments/face_cnn_crop_probe.py``, session 13). A
reading, not tested: the extra detail is mostly the recording's own, which
differs more between footages than the swap does.

The track summary is the mean vector (``face_cnn.v000`` ... ``v895``: the
whole crop's 448 values, then the inner view's) plus the median face logit
(``face_cnn.face_logit``, whole crop); reports show only the latter, the
vector is a model input rather than something a person reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from detector.checks.base import CheckContext, CheckSignal, SampledCropCheck
from detector.errors import ModelError
from detector.onnx_session import open_session
from detector.paths import models_dir

INPUT_SIZE = 192
#: pooled values the network returns per crop
FEATURE_COUNT = 448
#: the views of each sampled crop the check reads, as central fractions of the aligned crop's side: the
#: whole crop, and the inner face enlarged (see the module docstring)
VIEWS: tuple[float, ...] = (1.0, 0.7)
#: values the check records per sampled crop: one pooled vector per view
VECTOR_LENGTH = FEATURE_COUNT * len(VIEWS)
#: feature-name prefix of the pooled vector inside the check's namespace
VECTOR_KEY = "v"


def _default_model_path() -> Path:
    return models_dir() / "face_mesh_features.onnx"


def vector_feature_names(prefix: str) -> list[str]:
    """Names of the check's vector: ``v000``-``v447`` the whole crop, ``v448``-``v895`` the inner-face view."""
    return [f"{prefix}.{VECTOR_KEY}{i:03d}" for i in range(VECTOR_LENGTH)]


@dataclass
class FaceMeshFeaturesOptions:
    model_path: Path = field(default_factory=_default_model_path)
    #: one session serves every track of a worker and workers run in
    #: parallel, so one thread each avoids oversubscription
    intra_op_threads: int = 1
    #: crops per session call. Measured: one crop at a time is as fast per crop
    #: as 16 (4.8 vs 5.5 ms) and its activations take ~2 MB of arena instead of ~69
    batch_size: int = 1


class FaceMeshFeatures:
    """ONNX Runtime wrapper of the converted Face Mesh network.

    Raises :class:`ModelError` when the file is missing, unreadable or lacks
    the ``input[N,3,192,192] -> features[N,448], face_flag[N,1]`` signature.
    """

    def __init__(self, options: FaceMeshFeaturesOptions | None = None):
        self.options = options or FaceMeshFeaturesOptions()
        path = Path(self.options.model_path)
        if not path.is_file():
            raise ModelError(f"Face Mesh feature model not found at {path} (set DETECTOR_MODELS_DIR or rebuild it "
                             "with `python -m detector.training.face_mesh_onnx`)")
        self._session = open_session(path, "Face Mesh feature model", self.options.intra_op_threads)
        inputs = self._session.get_inputs()
        outputs = {o.name: list(o.shape) for o in self._session.get_outputs()}
        if (len(inputs) != 1 or inputs[0].name != "input" or inputs[0].type != "tensor(float)"
                or list(inputs[0].shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE]
                or outputs.get("features", [])[1:] != [FEATURE_COUNT] or "face_flag" not in outputs):
            self._session = None
            raise ModelError(f"{path} does not have the Face Mesh feature signature input[N,3,{INPUT_SIZE},"
                             f"{INPUT_SIZE}] -> features[N,{FEATURE_COUNT}], face_flag[N,1]; got inputs "
                             f"{[(i.name, i.shape) for i in inputs]}, outputs {outputs}")

    @staticmethod
    def preprocess(crops: np.ndarray, crop_fraction: float = 1.0) -> np.ndarray:
        """(N,h,w,3) uint8 RGB crops -> (N,3,192,192) float32 in [0,1].

        ``crop_fraction`` < 1 keeps only the central part of each crop (that
        fraction of its side) before resizing.
        """
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
        crops = np.asarray(crops)
        if crop_fraction != 1.0:
            h, w = crops.shape[1:3]
            ch, cw = max(1, int(round(h * crop_fraction))), max(1, int(round(w * crop_fraction)))
            y0, x0 = (h - ch) // 2, (w - cw) // 2
            crops = crops[:, y0:y0 + ch, x0:x0 + cw]
        x = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for c in crops])
        return np.ascontiguousarray(x.astype(np.float32).transpose(0, 3, 1, 2) * (1.0 / 255.0))

    def predict(self, crops: np.ndarray, crop_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(features (N,448) float32, face logits (N,)) for (N,h,w,3) uint8 RGB face crops.

        ``crop_fraction`` < 1 reads only the central part of each crop (see :meth:`preprocess`).
        """
        if self._session is None:
            raise ModelError("Face Mesh feature model is closed")
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"expected (N,h,w,3) RGB crops, got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, FEATURE_COUNT), np.float32), np.zeros(0, np.float32)
        feats, flags = [], []
        bs = max(1, int(self.options.batch_size))
        for i in range(0, len(crops), bs):
            f, flag = self._session.run(["features", "face_flag"], {"input": self.preprocess(crops[i:i + bs], crop_fraction)})
            feats.append(f)
            flags.append(flag.reshape(-1))
        return np.concatenate(feats).astype(np.float32), np.concatenate(flags).astype(np.float32)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "FaceMeshFeatures":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaceAppearanceCheck(SampledCropCheck):
    """Pooled Face Mesh CNN activations per sampled crop (``context.models["face_mesh_features"]``)."""

    name: ClassVar[str] = "face_cnn"
    title: ClassVar[str] = "Face appearance (pretrained face network)"
    explanation: ClassVar[str] = ("the texture and shading a pretrained face network sees on this face resemble "
                                  "the swapped faces it was calibrated on more than genuine ones")
    direction: ClassVar[int] = 1
    shared_model: ClassVar[str | None] = "face_mesh_features"

    #: seconds between sampled crops: 2 per second, two views each, in float16
    #: is ~3.6 kB per second of face, kept only until the timeline window they
    #: fall in is cut (a few seconds); at ~5 ms per view it costs ~2% of a core
    min_interval: float = 0.5

    def __init__(self, context: CheckContext, min_interval: float | None = None):
        super().__init__(context, min_interval)
        # float16 bytes, VECTOR_LENGTH values a crop: no per-crop numpy object overhead on a long call
        self._vectors = bytearray()

    @classmethod
    def open_model(cls, intra_op_threads: int = 1) -> FaceMeshFeatures:
        return FaceMeshFeatures(FaceMeshFeaturesOptions(intra_op_threads=intra_op_threads))

    def score_batch(self, times: list[float], crops: np.ndarray) -> None:
        feats, flags = self.model.predict(crops, VIEWS[0])  # the face logit is read on the whole crop
        feats = np.concatenate([feats] + [self.model.predict(crops, f)[0] for f in VIEWS[1:]], axis=1)
        for t, f, flag in zip(times, feats, flags):
            self.emit(t, float(flag))
            self._vectors += f.astype(np.float16).tobytes()  # means are taken in float64

    def finalize(self) -> CheckSignal:
        signal = super().finalize()  # flushes the last batch first
        # handed over without a copy, as the base class does with its columns
        vectors = np.frombuffer(self._vectors, dtype=np.float16).reshape(-1, VECTOR_LENGTH)
        vectors.flags.writeable = False
        signal.extra["vectors"] = vectors
        self._vectors = bytearray()
        return signal

    @classmethod
    def summarize(cls, signal: CheckSignal) -> dict[str, float]:
        """Mean pooled vector (``face_cnn.v000``...) and median face logit; NaN when nothing was measured."""
        vectors = signal.extra.get("vectors")
        names = vector_feature_names(cls.name)
        flags = signal.values[np.isfinite(signal.values)]
        out = {f"{cls.name}.face_logit": float(np.median(flags)) if flags.size else np.nan}
        if vectors is None or len(vectors) == 0:
            out.update(dict.fromkeys(names, np.nan))
        else:
            # accumulate in float64 without a float64 copy of a long track's vectors
            out.update(zip(names, vectors.mean(0, dtype=np.float64).tolist()))
        return out

    @classmethod
    def reported(cls, features: dict[str, float]) -> dict[str, float]:
        """Only the face logit: the pooled activations are a model input, not a reading for people."""
        return {k: v for k, v in features.items() if not k.startswith(f"{cls.name}.{VECTOR_KEY}")}
