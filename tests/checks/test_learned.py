"""The self-blend face model and its check (onnxruntime only; torch is not needed)."""
from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from detector.checks.base import CheckContext, FaceObservation
from detector.checks.learned import LearnedArtifactCheck, SBIModel, SBIModelOptions, default_models_dir
from detector.errors import ModelError
from detector.training.sbi_eval import roc_auc
from detector.training.self_blend import global_augment, self_blend

MODEL = default_models_dir() / "sbi_face.onnx"
FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces" / "utkface_adults"


def _synthetic_face(seed: int):
    # the procedural face of the self-blend tests, loaded by path (test dirs are not packages)
    spec = importlib.util.spec_from_file_location(
        "_self_blend_tests", Path(__file__).resolve().parents[1] / "training" / "test_self_blend.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.synthetic_face(seed)


@pytest.fixture(scope="module")
def model():
    with SBIModel() as m:
        yield m


def test_model_file_is_small():
    assert MODEL.is_file()
    assert MODEL.stat().st_size < 20e6


def test_predict_shapes_and_batching(model):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (21, 112, 112, 3), dtype=np.uint8)
    out = model.predict(crops)
    assert out.shape == (21,) and out.dtype == np.float32 and np.all(np.isfinite(out))
    with SBIModel(SBIModelOptions(batch_size=4)) as small:
        np.testing.assert_allclose(small.predict(crops), out, rtol=1e-4, atol=1e-4)
    assert model.predict(crops[0]).shape == (1,)
    assert model.predict(crops[:0]).shape == (0,)
    with pytest.raises(ValueError):
        model.predict(crops[:, :64])


def test_missing_file_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        SBIModel(SBIModelOptions(model_path=tmp_path / "nope.onnx"))


def test_unreadable_file_raises_model_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelError, match="cannot load"):
        SBIModel(SBIModelOptions(model_path=bad))


def test_wrong_signature_raises_model_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "wrong.onnx"
    onnx.save(m, str(path))
    with pytest.raises(ModelError, match="signature"):
        SBIModel(SBIModelOptions(model_path=path))


def test_env_var_overrides_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DETECTOR_MODELS_DIR", str(tmp_path))
    assert SBIModelOptions().model_path == tmp_path / "sbi_face.onnx"
    with pytest.raises(ModelError):
        SBIModel()


def test_check_samples_batches_and_summarizes(model):
    crop, _ = _synthetic_face(0)
    ctx = CheckContext(models={"sbi": model})
    check = LearnedArtifactCheck(ctx)
    check.flush_every = 3  # force several batched flushes plus the final one
    for i in range(20):  # 4 fps for 5 s
        pts = Fraction(i, 4)
        check.update(FaceObservation(track_id=0, pts=pts, image=crop, face=None, crop=crop))
    check.update(FaceObservation(track_id=0, pts=Fraction(6), image=crop, face=None, crop=None))  # no crop: skipped
    sig = check.finalize()
    np.testing.assert_allclose(sig.times, np.arange(0, 5, 0.5))  # every 0.5 s
    expected = model.predict(crop[None])[0]
    np.testing.assert_allclose(sig.values, expected, rtol=1e-4, atol=1e-4)
    feats = LearnedArtifactCheck.summarize(sig)
    assert set(feats) >= {"sbi.mean", "sbi.median", "sbi.p75", "sbi.topk"}
    assert feats["sbi.mean"] == pytest.approx(float(expected), abs=1e-4)
    empty = LearnedArtifactCheck.summarize(sig.window(100, 200))
    assert all(np.isnan(v) for v in empty.values())


def test_check_needs_shared_model():
    with pytest.raises(ModelError):
        LearnedArtifactCheck(CheckContext())


@pytest.mark.xfail(strict=False, reason=(
    "known limitation (models/sbi_face.md): the shipped model is out of its domain on procedurally drawn "
    "faces - it scores them as strongly blended already (logit ~7) and self-blending, which mostly smooths "
    "the drawn texture, lowers the score (AUC ~0.2). The real behavioural check is test_heldout_utkface_auc."))
def test_blended_synthetic_faces_score_higher(model):
    """Behaviour without third-party data: self-blends of drawn faces look more blended than the originals."""
    rng = np.random.default_rng(123)
    clean, blended = [], []
    for seed in range(48):
        crop, pts = _synthetic_face(seed)
        fake, _ = self_blend(crop, pts, rng)
        clean.append(global_augment(crop, rng, strong=False))
        blended.append(global_augment(fake, rng, strong=False))
    s_clean, s_fake = model.predict(np.stack(clean)), model.predict(np.stack(blended))
    assert roc_auc(s_fake, s_clean) > 0.75
    assert np.median(s_fake) > np.median(s_clean)


@pytest.mark.accuracy
def test_heldout_utkface_auc(model):
    """Genuine vs self-blended held-out UTKFace photos (never trained on): AUC floor just under the measured value."""
    if not FACES.is_dir():
        pytest.skip(f"{FACES} not available")
    from detector.training.faces_cache import _landmark_photos, split_names

    paths = sorted(FACES.glob("*.jpg"))
    held = split_names([p.name for p in paths])
    paths = [p for p, h in zip(paths, held) if h][:200]
    _, crops, points = _landmark_photos(paths)
    assert len(crops) >= 150
    rng = np.random.default_rng(2024)
    clean, blended = [], []
    for c, p in zip(crops, points):
        fake, _ = self_blend(c, p, rng)
        clean.append(global_augment(c, rng, strong=True))
        blended.append(global_augment(fake, rng, strong=True))
    auc = roc_auc(model.predict(np.stack(blended)), model.predict(np.stack(clean)))
    assert auc > ACCURACY_FLOOR, auc


#: measured 0.907 (200 held-out photos, seed 2024, strong augmentation) for the shipped model, minus a margin
ACCURACY_FLOOR = 0.88
