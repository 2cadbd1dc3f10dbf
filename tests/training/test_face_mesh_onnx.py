"""The committed Face Mesh ONNX feature model: interface, correctness without a TFLite runtime, reproducibility.

The committed-model tests need only onnx + onnxruntime + mediapipe; the converter
tests need the optional ``tflite`` parser (``train`` extra) and skip without it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from detector.training.face_mesh_onnx import (  # noqa: E402
    FEATURE_LAYERS, ConversionError, _Converter, convert, default_tflite_path)

MODEL = Path(__file__).resolve().parents[2] / "models" / "face_mesh_features.onnx"


def _session(model_bytes: bytes) -> "ort.InferenceSession":
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def sess():
    return _session(MODEL.read_bytes())


def _random_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, 192, 192), dtype=np.float32)


# ---- a. committed model: interface ---------------------------------------------------------------

def test_committed_model_interface(sess):
    assert MODEL.stat().st_size < 20e6
    (inp,) = sess.get_inputs()
    assert inp.name == "input" and inp.type == "tensor(float)"
    assert inp.shape[1:] == [3, 192, 192] and not isinstance(inp.shape[0], int)  # dynamic batch
    outs = {o.name: o.shape for o in sess.get_outputs()}
    assert list(outs) == ["features", "landmarks", "face_flag"]
    assert outs["features"][1:] == [448] and outs["landmarks"][1:] == [1404] and outs["face_flag"][1:] == [1]

    x = _random_batch(3)
    feats, lms, flags = sess.run(None, {"input": x})
    assert feats.shape == (3, 448) and lms.shape == (3, 1404) and flags.shape == (3, 1)
    assert np.isfinite(feats).all() and np.isfinite(lms).all() and np.isfinite(flags).all()
    one_by_one = [sess.run(None, {"input": x[i:i + 1]}) for i in range(3)]
    for k, batched in enumerate((feats, lms, flags)):
        np.testing.assert_allclose(batched, np.concatenate([r[k] for r in one_by_one]), rtol=1e-5, atol=1e-5)


def test_committed_model_names_its_source_and_it_is_the_installed_wheels_file():
    model = onnx.load(str(MODEL))
    props = {p.key: p.value for p in model.metadata_props}
    assert "Apache-2.0" in props["license"]
    assert props["source_sha256"] == hashlib.sha256(default_tflite_path().read_bytes()).hexdigest()
    assert props["mediapipe_version"]


def test_features_are_the_documented_pooling_of_the_prelu_layers():
    """features = [mean, std of p_re_lu_6 | mean, std of p_re_lu_9 | mean p_re_lu_12 | mean p_re_lu_14]."""
    model = onnx.load(str(MODEL))
    for name, _ in FEATURE_LAYERS:  # ONNX activations keep their TFLite names: expose them
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    s = _session(model.SerializeToString())
    res = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input": _random_batch(2, seed=1)})))
    expected = []
    for name, with_std in FEATURE_LAYERS:
        a = res[name].astype(np.float64)  # NCHW
        expected.append(a.mean((2, 3)))
        if with_std:
            expected.append(a.std((2, 3)))  # population std (ddof=0)
    expected = np.concatenate(expected, axis=1)
    assert expected.shape == (2, 448)
    np.testing.assert_allclose(res["features"], expected, rtol=1e-4, atol=1e-5)


# ---- b. correctness without TFLite: landmarks land on the face MediaPipe finds ------------------

def test_landmarks_match_mediapipe_and_face_flag_separates_face_from_noise(sess):
    import cv2

    from detector.synth import load_portrait, portrait_landmarks

    img = load_portrait()
    ref = portrait_landmarks(img)[:468]  # MediaPipe Face Mesh (static image mode), image pixels
    (x0, y0), (x1, y1) = ref.min(0), ref.max(0)
    box = float(max(x1 - x0, y1 - y0))
    cx, cy, scale = (x0 + x1) / 2, (y0 + y1) / 2, 192 / (1.5 * box)  # square 1.5x the landmark box -> 192 px
    m = np.float32([[scale, 0, 96 - cx * scale], [0, scale, 96 - cy * scale]])
    crop = cv2.warpAffine(img, m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(0).random((192, 192, 3), dtype=np.float32)
    x = np.stack([crop.astype(np.float32) / 255.0, noise]).transpose(0, 3, 1, 2)

    _, lms, flags = sess.run(None, {"input": np.ascontiguousarray(x)})
    pts = lms[0].reshape(468, 3)[:, :2]  # x, y in 192-crop pixels
    back = (pts - m[:, 2]) / scale  # inverse of the crop transform
    err = np.linalg.norm(back - ref, axis=1).mean()
    assert err < 0.04 * box, f"mean landmark error {err:.1f} px for a {box:.0f} px face"
    # face_flag is a raw logit (MediaPipe applies a sigmoid): positive = face
    assert flags[0, 0] > 2.0, flags[0, 0]
    assert flags[1, 0] < -2.0, flags[1, 0]


# ---- c. converter (needs the optional tflite parser) ---------------------------------------------

def test_converter_reproduces_the_committed_model():
    pytest.importorskip("tflite")
    fresh = convert(default_tflite_path())
    x = _random_batch(2, seed=2)
    got = _session(fresh.SerializeToString()).run(None, {"input": x})
    want = _session(MODEL.read_bytes()).run(None, {"input": x})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_converter_fails_loudly_on_an_unsupported_op(monkeypatch):
    pytest.importorskip("tflite")
    monkeypatch.delattr(_Converter, "op_max_pool_2d")
    with pytest.raises(ConversionError, match="unsupported TFLite operator MAX_POOL_2D"):
        convert(default_tflite_path())
