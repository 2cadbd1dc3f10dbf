"""Runtime wrapper of the fusion model: check features -> calibrated P(face swap).

The ONNX graph (``models/fusion.onnx``) holds the arithmetic; its sidecar
``models/fusion.json`` holds what a report needs around it: the feature
order, the verdict thresholds chosen under grouped cross-validation, and
each feature's distribution on genuine footage, from which a check's
"suspicion" (how far outside genuine footage a track is) is read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.checks import CHECKS, DEFAULT_CHECKS
from detector.errors import ModelError
from detector.fusion.logistic import LogisticModel
from detector.onnx_session import open_session
from detector.options import ScanOptions
from detector.paths import models_dir


@dataclass
class WindowScore:
    """What a scan keeps of one timeline window: the fused probability and each check's suspicion."""

    probability: float
    suspicion: dict[str, float]


@dataclass
class FusionOptions:
    model_path: Path = field(default_factory=lambda: models_dir() / "fusion.onnx")
    intra_op_threads: int = 1


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _setting_value(name, value) -> float | str:
    """A recorded setting: the analysis version as text, every other one a number; anything else is malformed."""
    if name == "analysis_version" and (isinstance(value, str) or _is_number(value)):
        return str(value)
    if name != "analysis_version" and _is_number(value):
        return float(value)
    raise ValueError(f"feature setting {name} is {value!r}, not {'text' if name == 'analysis_version' else 'a number'}")


def _shown(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.10g}"


def _same_setting(a: float | str, b: float | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _quantile_list(values, what: str) -> np.ndarray:
    q = np.asarray(values, dtype=np.float64)
    if q.ndim != 1 or q.size < 2 or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
        raise ValueError(f"{what} must list at least 2 finite rising values")
    return q


def raw_check_suspicion(x: np.ndarray, names: list[str], reference: dict[str, tuple[np.ndarray, int]],
                        blocks: dict[str, dict]) -> dict[str, np.ndarray]:
    """For each check and each row of ``x`` (columns ``names``): the largest share of genuine training clips less
    swap-like than the row on one of the check's features (``reference``: feature -> genuine quantiles and the
    sign it carries in the fused model), or, for a block of raw model inputs, on its share of the fused logit
    (``blocks``, parsed by :func:`_parse_block`). NaN where the row has none of the check's features.
    """
    column = {n: j for j, n in enumerate(names)}
    out: dict[str, np.ndarray] = {}

    def merge(check: str, s: np.ndarray) -> None:
        out[check] = s if check not in out else np.fmax(out[check], s)

    for name, (quantiles, sign) in reference.items():
        j = column.get(name)
        if j is None or sign == 0:
            continue
        v = x[:, j]
        q = np.interp(v, quantiles, np.linspace(0, 1, len(quantiles)))
        merge(name.split(".", 1)[0], np.where(np.isfinite(v), q if sign > 0 else 1 - q, np.nan))
    for check, b in blocks.items():
        # a block of raw model inputs (pooled CNN activations): its share of the fused logit
        raw = x[:, [column[n] for n in b["features"]]]
        part = b["share"].decision(raw)  # imputes and clips as the ONNX graph does
        q = b["genuine_quantiles"]
        merge(check, np.where(np.isfinite(raw).any(axis=1), np.interp(part, q, np.linspace(0, 1, len(q))), np.nan))
    return out


def _parse_reference(reference: dict) -> dict[str, tuple[np.ndarray, int]]:
    """The metadata's ``reference`` (feature -> genuine quantiles and the sign it carries in the fused model) as
    :func:`raw_check_suspicion` reads it."""
    return {k: (np.asarray(v["genuine_quantiles"], dtype=np.float64), int(v["sign"])) for k, v in reference.items()}


def _parse_block(block: dict, feature_names: list[str]) -> dict:
    """One ``blocks`` entry of the metadata, checked (ValueError/KeyError/TypeError when malformed)."""
    features = [str(n) for n in block["features"]]
    arrays = {key: np.asarray(block[key], dtype=np.float64) for key in ("mean", "scale", "coef")}
    for key, a in arrays.items():
        if a.shape != (len(features),):
            raise ValueError(f"block {key} has {a.size} values for {len(features)} features")
    quantiles = np.asarray(block["genuine_quantiles"], dtype=np.float64)
    if quantiles.ndim != 1 or quantiles.size < 2:
        raise ValueError("block genuine_quantiles must list at least 2 values")
    # the block's share of the logit: the fusion's own arithmetic on its columns, without intercept
    out = {"features": features, "genuine_quantiles": quantiles, "share": LogisticModel(**arrays, intercept=0.0)}
    unknown = set(features) - set(feature_names)
    if unknown:
        raise ValueError(f"block features not among the model's: {sorted(unknown)[:3]}")
    return out


class FusionModel:
    """Loads the fusion ONNX model and its metadata.

    Raises :class:`ModelError` when either file is missing or malformed.
    """

    def __init__(self, options: FusionOptions | None = None):
        self.options = options or FusionOptions()
        path = Path(self.options.model_path)
        meta_path = path.with_suffix(".json")
        if not path.is_file() or not meta_path.is_file():
            raise ModelError(f"fusion model not found: {path} (+ {meta_path.name}); run `detector train-fusion`")
        try:
            self.meta = json.loads(meta_path.read_text())
            self.feature_names: list[str] = list(self.meta["feature_names"])
            self.low = float(self.meta["thresholds"]["low"])
            self.high = float(self.meta["thresholds"]["high"])
            # models trained before session 7 flag segments at the verdict threshold
            self.segment_high = float(self.meta["thresholds"].get("segment", self.high))
            self._reference = _parse_reference(self.meta.get("reference", {}))
            self._blocks = {check: _parse_block(b, self.feature_names)
                            for check, b in self.meta.get("blocks", {}).items()}
            # per check, the distribution of its largest share on genuine training clips (models before session 22
            # record none: the largest share is shown as it is)
            self._check_quantiles = {str(k): _quantile_list(v, f"check_quantiles[{k}]")
                                     for k, v in self.meta.get("check_quantiles", {}).items()}
            # height below which a face is smaller than 95% of the training clips' (models before
            # session 9 do not record it: None, and reports then give no small-face caveat)
            face_px = self.meta.get("face_px") or {}
            self.small_face_px: float | None = float(face_px["p05"]) if "p05" in face_px else None
            # how the features it was fitted on cropped faces (models before session 10 record nothing: plain
            # warp, None); one that says only that it anti-aliased matches no cropping this code makes
            self.crop_antialias = bool(self.meta.get("crop_antialias", False))
            self.crop_method: str | None = self.meta.get(
                "crop", "anti-aliased, method not recorded" if self.crop_antialias else None)
            # the settings its features were made with; older models record only the analysis rate, outside this
            # block and unchecked, so a value there that is not a number is left uncompared rather than refused
            recorded = self.meta.get("feature_settings")
            if recorded is None:
                legacy = self.meta.get("analysis_fps")
                recorded = {"analysis_fps": legacy} if _is_number(legacy) else {}
            self.feature_settings: dict[str, float | str] = {
                str(k): _setting_value(k, v) for k, v in dict(recorded).items() if v is not None}
            # the checks whose features it reads: a scan that does not run one leaves them to imputation
            # (a name that is not a check's, which train-fusion never writes, is not a check to ask for)
            self.checks_read: set[str] = {n.split(".", 1)[0] for n in self.feature_names} & set(CHECKS)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"malformed fusion metadata {meta_path}: {exc}") from exc
        self._session = open_session(path, "fusion model", self.options.intra_op_threads)
        shape = self._session.get_inputs()[0].shape
        if len(shape) != 2 or shape[1] != len(self.feature_names):
            raise ModelError(f"fusion model expects {shape[1]} features, metadata lists {len(self.feature_names)}")

    # -- inference ------------------------------------------------------------
    def vectorize(self, features: list[dict[str, float]]) -> np.ndarray:
        x = np.full((len(features), len(self.feature_names)), np.nan, dtype=np.float32)
        for i, f in enumerate(features):
            for j, name in enumerate(self.feature_names):
                v = f.get(name)
                if v is not None:
                    x[i, j] = v
        return x

    def predict(self, features: list[dict[str, float]]) -> np.ndarray:
        """P(face swap) for each feature dict (missing features are imputed)."""
        if not features:
            return np.zeros(0)
        x = self.vectorize(features)
        if self._session is None:
            raise ModelError("fusion model is closed")
        return self._session.run(None, {"features": x})[0][:, 0].astype(np.float64)

    def score_window(self, features: dict[str, float]) -> WindowScore:
        """A timeline window's probability and per-check suspicion (the scan's window reducer)."""
        return WindowScore(float(self.predict([features])[0]), self.suspicion(features))

    def suspicion(self, features: dict[str, float]) -> dict[str, float]:
        """Per-check suspicion in [0, 1]: the share of genuine training clips less swap-like than this one.

        Oriented by the sign each feature carries in the fused model. A check with several features is as
        unusual as its most unusual one, and the largest of several shares is itself large on genuine footage
        (two features: 0.71 or more for half of it), so models that record ``check_quantiles`` map that largest
        share through its own distribution on the genuine training clips: 0.95 then means "more swap-like than
        95% of genuine footage" for every check alike.
        """
        row = np.array([[np.nan if features.get(n) is None else features[n] for n in self.feature_names]],
                       dtype=np.float64)
        raw = raw_check_suspicion(row, self.feature_names, self._reference, self._blocks)
        out: dict[str, float] = {}
        for check, values in raw.items():
            s = float(values[0])
            if not np.isfinite(s):
                continue
            q = self._check_quantiles.get(check)
            out[check] = s if q is None else float(np.interp(s, q, np.linspace(0, 1, len(q))))
        return out

    def setting_differences(self, options: ScanOptions, longest_side: int | None = None) -> list[str]:
        """How a scan with ``options`` measures or judges tracks otherwise than this model's training features:
        one phrase per setting, e.g. ``"analysis_fps 5 (the model's: 10)"``; empty when they match.

        ``longest_side`` is the recording's longer side in pixels, when known: ``max_side`` is then a difference
        only if it shrinks this recording's frames otherwise than the model's did. ``min_track_seconds`` is one only
        if the scan judges shorter tracks than the model was fitted on (a stricter scan judges fewer tracks, each
        like the model's). Checks the scan runs beyond those the model reads change nothing and are not named.
        Settings the metadata does not record (older models) are not compared. The cropping is not here: a scan
        whose cropping differs is refused (:class:`detector.api.Analyzer`).
        """
        mine = {**options.feature_settings(), "min_track_seconds": float(options.min_track_seconds)}
        out = []
        for name, theirs in self.feature_settings.items():
            ours = mine.get(name)
            if ours is None or _same_setting(ours, theirs):
                continue
            if name == "min_track_seconds" and ours > theirs:
                continue
            if name == "max_side" and longest_side is not None and longest_side <= min(ours, theirs):
                continue  # neither would shrink these frames
            out.append(f"{name} {_shown(ours)} (the model's: {_shown(theirs)})")
        run = set(DEFAULT_CHECKS if options.checks is None else options.checks)
        missing = sorted(self.checks_read - run)
        if missing:
            out.append(f"checks not run: {', '.join(missing)} (the model reads them)")
        return out

    def band(self, p: float) -> str:
        if p >= self.high:
            return "likely_face_swapped"
        if p >= self.low:
            return "inconclusive"
        return "likely_genuine"

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "FusionModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
