"""The converted Face Mesh feature model, its check, and how the fusion reads the pooled vector."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from detector.checks import CHECKS, DEFAULT_CHECKS
from detector.checks.base import CheckContext, FaceObservation
from detector.checks.embedding import (FEATURE_COUNT, VECTOR_LENGTH, VIEWS, FaceAppearanceCheck, FaceMeshFeatures,
                                       FaceMeshFeaturesOptions, vector_feature_names)
from detector.errors import ModelError
from detector.fusion.logistic import LogisticModel
from detector.fusion.model import FusionModel
from detector.fusion.train import block_references, is_reported
from detector.paths import models_dir


@pytest.fixture(scope="module")
def model():
    with FaceMeshFeatures() as m:
        yield m


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def _observe(check: FaceAppearanceCheck, times: list[float], crops: np.ndarray) -> None:
    for t, c in zip(times, crops):
        check.update(FaceObservation(track_id=0, pts=Fraction(t).limit_denominator(1000), image=c,
                                     face=None, crop=c))  # type: ignore[arg-type]


def test_check_is_registered_and_on_by_default():
    assert CHECKS["face_cnn"] is FaceAppearanceCheck
    assert "face_cnn" in DEFAULT_CHECKS and "sbi" not in DEFAULT_CHECKS


def test_predict_shapes_batching_and_errors(model, tmp_path):
    crops = _crops(19)
    feats, flags = model.predict(crops)
    assert feats.shape == (19, FEATURE_COUNT) and flags.shape == (19,)
    assert np.isfinite(feats).all() and np.isfinite(flags).all()
    with FaceMeshFeatures(FaceMeshFeaturesOptions(batch_size=5)) as small:
        np.testing.assert_allclose(small.predict(crops)[0], feats, rtol=1e-4, atol=1e-5)
    assert model.predict(crops[0])[0].shape == (1, FEATURE_COUNT)
    assert model.predict(crops[:0])[0].shape == (0, FEATURE_COUNT)
    with pytest.raises(ValueError):
        model.predict(crops[..., :2])
    with pytest.raises(ModelError, match="not found"):
        FaceMeshFeatures(FaceMeshFeaturesOptions(model_path=tmp_path / "nope.onnx"))
    with pytest.raises(ModelError, match="signature"):  # a real ONNX model, but not this one
        FaceMeshFeatures(FaceMeshFeaturesOptions(model_path=models_dir() / "sbi_face.onnx"))
    closed = FaceMeshFeatures()
    closed.close()
    with pytest.raises(ModelError, match="closed"):
        closed.predict(crops[:1])


def test_check_samples_twice_a_second_and_summarises_the_mean_vector(model):
    check = FaceAppearanceCheck(CheckContext(models={"face_mesh_features": model}))
    times = [i / 10 for i in range(40)]  # 10 fps for 4 s -> 8 sampled crops
    crops = _crops(40, seed=1)
    _observe(check, times, crops)
    signal = check.finalize()
    np.testing.assert_allclose(signal.times, times[::5])
    feats, flags = model.predict(crops[::5])
    # the whole crop's vector, then the inner-face view's; the face logit is the whole crop's
    feats = np.concatenate([feats] + [model.predict(crops[::5], f)[0] for f in VIEWS[1:]], axis=1)
    np.testing.assert_allclose(signal.values, flags, rtol=1e-5, atol=1e-5)
    summary = FaceAppearanceCheck.summarize(signal)
    names = vector_feature_names("face_cnn")
    assert VIEWS[0] == 1.0 and len(VIEWS) == 2 and VECTOR_LENGTH == 2 * FEATURE_COUNT
    assert len(names) == VECTOR_LENGTH and names[-1] == "face_cnn.v895"
    assert len(summary) == VECTOR_LENGTH + 1
    # kept in float16 until summarised (memory of long calls): means agree to float16 precision
    np.testing.assert_allclose([summary[n] for n in names], feats.mean(0), rtol=2e-3, atol=1e-3)
    assert summary["face_cnn.face_logit"] == pytest.approx(float(np.median(flags)), abs=1e-5)
    # a window keeps the vectors of its own crops only
    window = FaceAppearanceCheck.summarize(signal.window(0.0, 2.0))
    np.testing.assert_allclose([window[n] for n in names], feats[:4].mean(0), rtol=2e-3, atol=1e-3)
    # the pooled activations are model inputs: reports show the face logit only
    assert FaceAppearanceCheck.reported(summary) == {"face_cnn.face_logit": summary["face_cnn.face_logit"]}
    assert not is_reported("face_cnn.v000") and is_reported("face_cnn.face_logit") and is_reported("jitter.median")


def test_a_view_reads_the_central_part_of_the_crop(model):
    crops = _crops(3, seed=2)
    x = FaceMeshFeatures.preprocess(crops, 0.7)
    # the central 78 px (70% of 112, rounded) resized to the input, as a crop cut by hand would be
    np.testing.assert_array_equal(x, FaceMeshFeatures.preprocess(crops[:, 17:95, 17:95]))
    np.testing.assert_array_equal(FaceMeshFeatures.preprocess(crops, 1.0), FaceMeshFeatures.preprocess(crops))
    inner, _ = model.predict(crops, 0.7)
    np.testing.assert_allclose(inner, model.predict(crops[:, 17:95, 17:95])[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(inner, model.predict(crops)[0], atol=1e-3)
    for bad in (0.0, -0.5, 1.15):
        with pytest.raises(ValueError, match="crop_fraction"):
            FaceMeshFeatures.preprocess(crops, bad)


def test_no_crop_no_evidence(model):
    check = FaceAppearanceCheck(CheckContext(models={"face_mesh_features": model}))
    summary = FaceAppearanceCheck.summarize(check.finalize())
    assert all(np.isnan(v) for v in summary.values())
    with pytest.raises(ModelError, match="context.models"):
        FaceAppearanceCheck(CheckContext())


def test_block_suspicion_follows_the_block_share_of_the_fused_logit(tmp_path):
    names = ["jitter.median"] + vector_feature_names("face_cnn")[:3]
    rng = np.random.default_rng(0)
    genuine = rng.normal(size=(200, 4))
    model = LogisticModel(mean=np.zeros(4), scale=np.ones(4), coef=np.array([0.5, 1.0, -1.0, 0.0]), intercept=0.0)
    blocks = block_references(model, names, genuine)
    assert list(blocks) == ["face_cnn"] and blocks["face_cnn"]["features"] == names[1:]
    fusion = FusionModel()  # shipped model, its block read the same way
    b = fusion.meta["blocks"]["face_cnn"]
    coef, mean, scale = (np.asarray(b[k]) for k in ("coef", "mean", "scale"))
    # a track whose block share is the genuine clips' median, then one a small step further along the
    # block's weights (a step t standardised units along sign(coef) moves the share by t * sum|coef|)
    median_share = b["genuine_quantiles"][len(b["genuine_quantiles"]) // 2]
    t = median_share / np.abs(coef).sum()
    track = dict(zip(b["features"], mean + t * scale * np.sign(coef)))
    # the check's largest share (here the block's, 0.5) read through the check's own distribution on genuine clips
    q = fusion.meta["check_quantiles"]["face_cnn"]
    low = fusion.suspicion(track)["face_cnn"]
    assert low == pytest.approx(np.interp(0.5, q, np.linspace(0, 1, len(q))), abs=0.01)
    pushed = dict(zip(b["features"], mean + (t + 0.2) * scale * np.sign(coef)))
    high = fusion.suspicion(pushed)["face_cnn"]
    assert low < high <= 1.0
    assert "face_cnn" not in fusion.suspicion({"jitter.median": 0.0})  # no vector, no reading
    # the face logit keeps its own reading: the check reports the larger of the two
    extreme = dict(track, **{"face_cnn.face_logit": 1e6})
    alone = fusion.suspicion({"face_cnn.face_logit": 1e6}).get("face_cnn", 0.0)
    assert fusion.suspicion(extreme)["face_cnn"] >= max(alone, low)
    fusion.close()
