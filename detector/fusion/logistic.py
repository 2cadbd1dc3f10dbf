"""L2-regularised logistic regression, its ONNX export and ROC AUC.

Written out in numpy (a few dozen lines) rather than pulling scikit-learn
and skl2onnx into the runtime: the fusion model is tiny, and its ONNX graph
(impute, standardise, linear, sigmoid) is easy to build by hand and to read.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class LogisticModel:
    mean: np.ndarray  # imputation value and centre, per feature
    scale: np.ndarray  # standard deviation, per feature
    coef: np.ndarray  # weights on standardised features
    intercept: float
    #: (feature mask, low, high): a block of many features (a CNN's pooled
    #: activations) whose summed contribution to the logit is clipped to the
    #: range it spanned in training. Clipping each feature at +-5 sd is not
    #: enough there: hundreds of clipped features can still add up to a logit
    #: no training clip came near, and footage unlike the training set would
    #: then be decided by that block alone.
    blocks: list[tuple[np.ndarray, float, float]] = field(default_factory=list)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(x), x, self.mean)
        return np.clip((x - self.mean) / self.scale, -5, 5)  # one wild feature must not decide a call alone

    def decision(self, x: np.ndarray) -> np.ndarray:
        z = self.standardise(x)
        d = z @ self.coef + self.intercept
        for mask, lo, hi in self.blocks:
            part = z[..., mask] @ self.coef[mask]
            d = d + (np.clip(part, lo, hi) - part)
        return d

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def rescaled(self, slope: float, offset: float) -> "LogisticModel":
        """The model whose logit is ``slope * logit + offset`` (Platt calibration folded into the weights).

        ``slope`` must be positive, so ranking is unchanged; block bounds
        scale with it because clipping commutes with a positive scale.
        """
        if not slope > 0:
            raise ValueError(f"calibration slope must be positive, got {slope}")
        return replace(self, coef=self.coef * slope, intercept=float(self.intercept * slope + offset),
                       blocks=[(m, lo * slope, hi * slope) for m, lo, hi in self.blocks])


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, z) as :func:`fit_logistic` standardises training rows ``x``: NaNs imputed with the column
    mean, each column scaled to unit spread (a constant one left as is), then clipped at +-5 sd."""
    x = np.asarray(x, dtype=np.float64)
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in x.T])
    xf = np.where(np.isfinite(x), x, mean)
    scale = xf.std(axis=0)
    scale[scale < 1e-9] = 1.0
    return mean, scale, np.clip((xf - mean) / scale, -5, 5)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, sample_weight: np.ndarray | None = None,
                 iterations: int = 100) -> LogisticModel:
    """Newton-Raphson fit; NaNs are imputed with the column mean."""
    y = np.asarray(y, dtype=np.float64)
    w_s = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    mean, scale, z = standardisation(x)
    a = np.hstack([z, np.ones((len(z), 1))])
    reg = np.full(a.shape[1], l2)
    reg[-1] = 0.0  # no penalty on the intercept
    beta = _newton(a, y, w_s, reg, iterations=iterations, tolerance=1e-8)
    return LogisticModel(mean=mean, scale=scale, coef=beta[:-1], intercept=float(beta[-1]))


#: smallest calibration slope: a fusion with no out-of-fold signal gets nearly
#: constant probabilities, but keeps its ranking (a slope of 0 would tie every call)
MIN_SLOPE = 1e-3
#: fewest out-of-fold logits a calibration is fitted on (fewer: the model is left as fitted)
MIN_CALIBRATION_CLIPS = 10


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (slope, offset) so that ``sigmoid(slope * logit + offset)`` is calibrated.

    Fitted on *out-of-fold* logits (in-sample ones are overconfident, which
    is what this corrects), with the two classes weighted equally: the
    probability it yields assumes even prior odds, i.e. it is the likelihood
    ratio of the evidence expressed as a probability.
    """
    d = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(d)
    d, y = d[ok], y[ok]
    if len(d) < MIN_CALIBRATION_CLIPS or len(set(y.tolist())) < 2:
        return 1.0, 0.0  # too little to calibrate on: leave the model as fitted
    w = balanced_weights(y)
    a = np.stack([d, np.ones_like(d)], axis=1)
    beta = _newton(a, y, w, np.array([1e-3, 0.0]))  # a whisker of ridge keeps separated folds finite
    if beta[0] >= MIN_SLOPE:
        return float(beta[0]), float(beta[1])
    # the logits point the wrong way (or nowhere): fix the slope at the floor and refit the offset
    # alone, which lands near P = 0.5 instead of wherever the backwards fit put it
    offset = _newton(a[:, 1:], y, w, np.zeros(1), base=MIN_SLOPE * d)[0]
    return MIN_SLOPE, float(offset)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Sample weights that give both classes the same total weight."""
    pos = max(int(y.sum()), 1)
    neg = max(int((1 - y).sum()), 1)
    return np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * neg))


def clip_balanced_weights(y: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Sample weights for rows that are windows of clips: each clip, then each class, weighs the same.

    ``owners`` names each row's clip. A clip's windows share its weight, so a
    35 s clip does not count five times a 7 s one: the clips, not their
    windows, are the independent looks at footage. Then both classes get
    the same total, as in :func:`balanced_weights`. Weights average 1, so a
    penalty means the same as with unweighted rows. (:func:`fit_logistic`
    still standardises over rows, so a long clip weighs more in the
    imputation mean and the +-5 sd clipping range than in the fit.)
    """
    y = np.asarray(y)
    owners = np.asarray(owners)
    if len(y) != len(owners):
        raise ValueError(f"{len(y)} rows but {len(owners)} owners")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if len(y) == 0:
        return np.zeros(0)
    _, inverse, counts = np.unique(owners, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    for c in (0, 1):
        total = w[y == c].sum()
        if total > 0:
            w[y == c] *= 0.5 / total
    return w * len(y) / w.sum()


def _newton(a: np.ndarray, y: np.ndarray, w: np.ndarray, reg: np.ndarray, base: np.ndarray | float = 0.0,
            iterations: int = 100, tolerance: float = 1e-10) -> np.ndarray:
    """Weighted, ridge-penalised logistic fit of ``y`` on ``base + a @ beta`` by Newton-Raphson.

    ``reg`` is one penalty per coefficient, or a whole penalty matrix (``beta' reg beta``, a generalised ridge).
    """
    beta = np.zeros(a.shape[1])
    matrix = reg.ndim == 2
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(base + a @ beta)))
        g = a.T @ (w * (p - y)) + (reg @ beta if matrix else reg * beta)
        h = (a * (w * p * (1 - p))[:, None]).T @ a + (reg if matrix else np.diag(reg)) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < tolerance:
            break
    return beta


def bound_blocks(model: LogisticModel, x: np.ndarray, masks: list[np.ndarray]) -> LogisticModel:
    """``model`` with each block's contribution clipped to its range on the training rows ``x``."""
    z = model.standardise(np.asarray(x, dtype=np.float64))
    blocks = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.any() and len(z):
            part = z[:, mask] @ model.coef[mask]
            blocks.append((mask, float(part.min()), float(part.max())))
    return replace(model, blocks=blocks)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney ROC AUC with ties counted half; NaN if one class is absent."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    ok = np.isfinite(s)
    y, s = y[ok], s[ok]
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def to_onnx(model: LogisticModel, feature_count: int):
    """ONNX graph: input ``features`` (N, F) float32 -> ``probability`` (N, 1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = np.float32
    inits = [
        numpy_helper.from_array(model.mean.astype(f32).reshape(1, -1), "mean"),
        numpy_helper.from_array(model.scale.astype(f32).reshape(1, -1), "scale"),
        numpy_helper.from_array(model.coef.astype(f32).reshape(-1, 1), "coef"),
        numpy_helper.from_array(np.array([model.intercept], dtype=f32), "intercept"),
        numpy_helper.from_array(np.array(-5.0, dtype=f32), "lo"),
        numpy_helper.from_array(np.array(5.0, dtype=f32), "hi"),
    ]
    nodes = [
        helper.make_node("IsNaN", ["features"], ["nan_mask"]),
        helper.make_node("Where", ["nan_mask", "mean", "features"], ["imputed"]),
        helper.make_node("Sub", ["imputed", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["z_raw"]),
        helper.make_node("Clip", ["z_raw", "lo", "hi"], ["z"]),
        helper.make_node("MatMul", ["z", "coef"], ["lin_0"]),
    ]
    # each bounded block: its own weights (zero elsewhere), clipped, replacing its unclipped share
    main = model.coef.astype(f32).copy()
    for k, (mask, lo, hi) in enumerate(model.blocks):
        main[mask] = 0.0
        inits += [numpy_helper.from_array(np.where(mask, model.coef, 0.0).astype(f32).reshape(-1, 1), f"coef_b{k}"),
                  numpy_helper.from_array(np.array(lo, dtype=f32), f"lo_b{k}"),
                  numpy_helper.from_array(np.array(hi, dtype=f32), f"hi_b{k}")]
        nodes += [helper.make_node("MatMul", ["z", f"coef_b{k}"], [f"part_b{k}"]),
                  helper.make_node("Clip", [f"part_b{k}", f"lo_b{k}", f"hi_b{k}"], [f"clipped_b{k}"]),
                  helper.make_node("Add", [f"lin_{k}", f"clipped_b{k}"], [f"lin_{k + 1}"])]
    inits[2] = numpy_helper.from_array(main.reshape(-1, 1), "coef")
    nodes += [
        helper.make_node("Add", [f"lin_{len(model.blocks)}", "intercept"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "detector_fusion",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", feature_count])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="detector")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m
