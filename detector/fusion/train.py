"""Reproducible refit of the fusion model: ``detector train-fusion MANIFEST``.

1. Every check's track features are extracted from every clip (cached), and
   from re-encoded copies of each clip (:mod:`detector.fusion.augment`),
   which the fusion is fitted on as well; every reported number is measured
   on the original clips.
2. Grouped cross-validation (whole footage groups per fold, groups whose
   fakes render the same face linked into one, three fold assignments)
   gives out-of-fold probabilities, each fold calibrated by an
   inner grouped CV of its own: the honest AUC and calibration, and the
   verdict thresholds (``high`` keeps genuine false positives <= 10%).
3. The final logistic model is fitted on all clips and their copies, calibrated on grouped
   out-of-fold logits (Platt scaling folded into its weights) and written as
   ONNX with its metadata and a model card.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from detector.checks import CHECKS
from detector.evaluation import (DEFAULT_LINK_NOTE, MAIN_TRACK_MIN_S, ClipFeatures, Windows, cross_validated_scores,
                                 extract_features, feature_matrix, fit_final, link_groups, metrics, read_manifest,
                                 require_cv_data, segment_rates, segment_threshold, split_seen, threshold_for_fpr,
                                 window_matrix)
from detector.fusion.augment import RECIPES, TRAINING_COPIES, copy_metrics, make_copies
from detector.fusion.logistic import LogisticModel, roc_auc, to_onnx
from detector.fusion.model import _parse_block, _parse_reference, raw_check_suspicion
from detector.options import ScanOptions
from detector.paths import models_dir
from detector.timeline import FACE_SIZE_FEATURE

# Features that describe the footage rather than the face swap (face size
# tracks the dataset a clip came from, not whether it is fake) stay out.
EXCLUDED_PREFIXES = ("track.",)
MAX_FPR = 0.10
#: L2 penalty of the fusion fitted on the clips alone (session 6 compared 2, 4 and 8); see :func:`fusion_penalty`
L2 = 4.0


def fusion_penalty(versions: int) -> float:
    """The fusion's L2 penalty when every clip is fitted in ``versions`` versions (itself and its re-encoded copies).

    Row weights average 1 (:func:`~detector.fusion.logistic.clip_balanced_weights`), so each copy
    adds data against the same penalty: four copies of every clip would leave the fit five times
    less regularised than on the clips alone. A copy is another look at the same footage, not
    independent evidence, so the penalty grows with the versions and keeps its strength.
    """
    if versions < 1:
        raise ValueError(f"versions must be at least 1, got {versions}")
    return L2 * versions


def versions_per_clip(original: np.ndarray) -> int:
    """How many versions of each clip (1 + its copies) a training set holds; every clip must have as many."""
    original = np.asarray(original, dtype=bool)
    n = int(original.sum())
    if n == 0 or len(original) % n:
        raise ValueError(f"{len(original)} clips are not the same number of versions of {n} originals")
    return len(original) // n


def fusion_feature_names(clips: list[ClipFeatures]) -> list[str]:
    names = sorted({k for c in clips for t in c.tracks for k in t["features"]})
    names = [n for n in names if not n.startswith(EXCLUDED_PREFIXES) and n.split(".")[0] in CHECKS]
    return names


def is_reported(name: str) -> bool:
    """Whether a feature is something a person reads (not one of a learned check's raw model inputs)."""
    return bool(CHECKS[name.split(".")[0]].reported({name: 0.0}))


def block_masks(names: list[str]) -> list[np.ndarray]:
    """One feature mask per check whose features are raw model inputs (bounded together in the fusion)."""
    raw = [n.split(".")[0] if not is_reported(n) else None for n in names]
    return [np.array([c == check for c in raw]) for check in sorted({c for c in raw if c})]


def block_references(model: LogisticModel, names: list[str], genuine: np.ndarray) -> dict[str, dict]:
    """For each block of raw model inputs (:func:`block_masks`): its share of the fused logit on genuine clips.

    A pooled CNN activation means nothing on its own, so such a check's
    suspicion is read from its whole block of weights instead: how far this
    track's partial logit sits above genuine footage's (see
    :meth:`FusionModel.suspicion`).
    """
    blocks: dict[str, dict] = {}
    for mask in block_masks(names):
        part = LogisticModel(model.mean[mask], model.scale[mask], model.coef[mask], 0.0)
        values = part.decision(genuine[:, mask])
        bound = next(([lo, hi] for m, lo, hi in model.blocks if np.array_equal(m, mask)), None)
        features = [n for n, m in zip(names, mask) if m]
        blocks[features[0].split(".")[0]] = {
            "features": features, "mean": part.mean.tolist(), "scale": part.scale.tolist(),
            "coef": part.coef.tolist(), "genuine_quantiles": np.quantile(values, np.linspace(0, 1, 21)).tolist(),
            "logit_bounds": bound}
    return blocks


def check_quantiles(names: list[str], genuine: np.ndarray, reference: dict[str, dict],
                    blocks: dict[str, dict]) -> dict[str, list[float]]:
    """Per check, 21 quantiles of its largest share (:func:`~detector.fusion.model.raw_check_suspicion`) over the
    genuine training clips, so that a report's per-check suspicion reads as a share of genuine footage whatever
    the number of features the check has (the largest of two uniform shares is 0.71 or more half the time)."""
    parsed_blocks = {c: _parse_block(b, names) for c, b in blocks.items()}
    raw = raw_check_suspicion(np.asarray(genuine, dtype=np.float64), names, _parse_reference(reference), parsed_blocks)
    return {check: np.quantile(v[np.isfinite(v)], np.linspace(0, 1, 21)).tolist()
            for check, v in raw.items() if np.isfinite(v).sum() >= 5}


def training_face_heights(clips: list[ClipFeatures], usable: np.ndarray) -> dict[str, float]:
    """5th, 50th and 95th percentile face height (px) of the clips a model learns from; {} when none has one.

    A report warns for a face below the 5th percentile, since smaller faces score higher
    (``experiments/reencode_probe.py``).
    """
    sizes = np.exp([t["features"][FACE_SIZE_FEATURE] for c, ok in zip(clips, usable) if ok
                    for t in [c.main_track()] if t is not None and t["features"].get(FACE_SIZE_FEATURE) is not None])
    if not sizes.size:
        return {}
    return {k: float(np.quantile(sizes, q)) for k, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95))}


def thresholds_from_oof(y: np.ndarray, oof: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(oof)
    high = threshold_for_fpr(oof[ok & (y == 0)], MAX_FPR)
    fakes = oof[ok & (y == 1)]
    low = float(np.quantile(fakes, 0.10)) if fakes.size else 0.3
    low = float(np.clip(min(low, high - 0.05), 0.05, high))
    return low, high


@dataclass
class TrainingClips:
    """The clips a fusion is fitted on: the manifest's, then each recipe's copies of them in the same order."""

    clips: list[ClipFeatures]
    version: np.ndarray  # per clip: 0 for an original, i for a copy by versions[i]
    versions: list[str]  # "original", then the recipes

    @property
    def original(self) -> np.ndarray:
        return self.version == 0

    @property
    def originals(self) -> list[ClipFeatures]:
        return [c for c, o in zip(self.clips, self.original) if o]


CopyProgress = Callable[[int, int, str, "str | None"], None]


def training_clips(rows: list, options: ScanOptions, workers: int = 2, cache: Path | None = None,
                   copies: tuple[str, ...] = TRAINING_COPIES, copies_dir: Path | None = None,
                   progress: Callable[[int, int, ClipFeatures], None] | None = None,
                   copy_progress: CopyProgress | None = None) -> TrainingClips:
    """Features of the manifest's clips and of their re-encoded copies (made under ``copies_dir`` if missing).

    ``copies=()`` extracts the originals only. The copies' features go to the
    same ``cache`` (keyed by file path), so a second run re-encodes and
    extracts nothing it already has.
    """
    clips = extract_features(rows, options, workers=workers, cache=cache, progress=progress)
    version = [0] * len(clips)
    if copies:
        if copies_dir is None:
            raise ValueError("copies need a copies_dir")
        copy_rows = make_copies(rows, copies_dir, copies, workers=workers, progress=copy_progress)
        made = [r for r in copy_rows if Path(r.path).is_file()]
        # a copy that could not be made is unusable this time, and not cached as such: the next run retries it
        done = {c.row.path: c for c in extract_features(made, options, workers=workers, cache=cache,
                                                          progress=progress)}
        clips += [done.get(r.path) or ClipFeatures(r, [], "copy_failed: the re-encoded copy could not be made")
                  for r in copy_rows]
        version += [1 + i for i in range(len(copies)) for _ in rows]
    return TrainingClips(clips, np.array(version), ["original", *copies])


@dataclass
class FusionCV:
    """What grouped cross-validation of the fusion measured: one procedure for `train-fusion` and `eval`."""

    scores: np.ndarray  # calibrated out-of-fold probability per clip (NaN: no usable track)
    auc_uncalibrated: float  # the same folds before calibration
    low: float
    high: float
    segment_high: float  # window probability that makes a timeline segment (>= high)
    segments: dict[str, float]  # share of clips per class with an out-of-fold window >= segment_high
    windows: Windows
    blocks: list[np.ndarray]
    original: np.ndarray  # which clips are the manifest's own (the rest are re-encoded copies)
    window_scores: np.ndarray  # out-of-fold probability per row of windows; NaN for a copy's windows
    l2: float  # the penalty every fit used (fusion_penalty of the versions per clip)


def cross_validate_fusion(clips: list[ClipFeatures], names: list[str], x: np.ndarray, y: np.ndarray,
                          usable: np.ndarray, original: np.ndarray | None = None) -> FusionCV:
    """Fusion fitted on the timeline windows of each fold's training clips, calibrated and thresholded out of fold.

    With ``original`` (a mask; the rest of the clips are re-encoded copies, see
    :func:`training_clips`), each fold is fitted and calibrated on the originals
    and copies of its training groups and scores the held-out groups' clips in
    every version; thresholds and segment rates come from the originals alone.
    A copy shares its clip's group, and every clip has the same number of
    copies, so the folds hold the same groups as without copies. The penalty
    grows with the number of versions (:func:`fusion_penalty`).
    """
    original = np.ones(len(clips), dtype=bool) if original is None else np.asarray(original, dtype=bool)
    l2 = fusion_penalty(versions_per_clip(original))
    groups = [c.row.group for c in clips]
    # fitted on timeline windows: many noisy looks at each clip steady the weights, and the
    # model then scores windows (timeline) and tracks (verdict; a track's features are the
    # mean of its windows', see detector.timeline) in the same units
    windows, blocks = window_matrix(clips, names), block_masks(names)
    window_scores = np.full(len(windows[1]), np.nan)
    scores = cross_validated_scores(x, y, groups, usable, l2=l2, windows=windows, blocks=blocks,
                                    window_scores=window_scores)
    # calibration keeps each fold's ranking, but pooling folds that were calibrated apart
    # can move the AUC either way; both are reported
    uncalibrated = cross_validated_scores(x, y, groups, usable, l2=l2, windows=windows, blocks=blocks,
                                          calibrate=False)
    auc_uncalibrated = roc_auc(y[original], uncalibrated[original])
    low, high = thresholds_from_oof(y[original], scores[original])
    # the timeline's threshold and rates from the originals' windows only (a copy's are NaN here)
    window_scores = np.where(original[windows[2]], window_scores, np.nan)
    segment_high = segment_threshold(y, window_scores, windows[2], high, MAX_FPR)
    return FusionCV(scores, auc_uncalibrated, low, high, segment_high,
                    segment_rates(y, window_scores, windows[2], segment_high), windows, blocks, original,
                    window_scores, l2)


def train(manifest: Path, out: Path | None = None, workers: int = 2, fps: float = 10.0,
          cache: Path | None = None, checks: tuple[str, ...] | None = None, link_note: str = DEFAULT_LINK_NOTE,
          progress: Callable[[int, int, ClipFeatures], None] | None = None,
          copies: tuple[str, ...] = TRAINING_COPIES, copies_dir: Path | None = None,
          copy_progress: CopyProgress | None = None) -> str:
    """Refit the fusion on ``manifest`` and write it to ``out`` (ONNX, ``.json`` metadata, ``.md`` model card).

    ``copies`` names the re-encoding recipes (:data:`~detector.fusion.augment.RECIPES`)
    whose copies of each clip the fusion is also fitted on (``()``: none). They
    are made under ``copies_dir``; without one, beside ``cache`` (``copies/``),
    or in a temporary directory removed afterwards when there is no cache either.
    """
    out = Path(out) if out is not None else models_dir() / "fusion.onnx"
    options = ScanOptions(analysis_fps=fps, use_fusion=False, checks=checks)
    rows, seen = split_seen(read_manifest(manifest), checks=checks)
    rows = link_groups(rows, link_note)  # after split_seen, which names footage groups
    require_cv_data(rows)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="detector-copies-") as tmp:
        if copies_dir is None:
            copies_dir = cache.parent / "copies" if cache is not None else Path(tmp)
        tc = training_clips(rows, options, workers=workers, cache=cache, copies=copies, copies_dir=copies_dir,
                            progress=progress, copy_progress=copy_progress)
    clips, orig = tc.clips, tc.original
    names = fusion_feature_names(clips)
    x, y, usable = feature_matrix(clips, names)
    groups = [c.row.group for c in clips]
    cv = cross_validate_fusion(clips, names, x, y, usable, orig)
    low, high = cv.low, cv.high
    # every number below is the originals': copies only widen what the fusion is fitted on
    ok = usable & orig
    per_feature = {n: roc_auc(y[ok], x[ok, j]) for j, n in enumerate(names) if is_reported(n)}
    m = metrics(tc.originals, cv.scores[orig], high, low,
                per_check={n: x[orig, j] for j, n in enumerate(names) if is_reported(n)})
    m.update(cv.segments)
    m["segment_threshold"] = cv.segment_high
    m["auc_uncalibrated"] = cv.auc_uncalibrated
    m["copies"] = copy_metrics(y, cv.scores, tc.version, tc.versions, high)
    model, (slope, offset) = fit_final(x, y, groups, usable, l2=cv.l2, windows=cv.windows, blocks=cv.blocks)

    import onnx

    graph = to_onnx(model, len(names))
    genuine = x[ok & (y == 0)]
    blocks = block_references(model, names, genuine)
    reference = {}
    for j, n in enumerate(names):
        col = genuine[:, j][np.isfinite(genuine[:, j])]
        if col.size >= 5 and is_reported(n):
            reference[n] = {"genuine_quantiles": np.quantile(col, np.linspace(0, 1, 21)).tolist(),
                            "sign": int(np.sign(model.coef[j]))}
    meta = {
        "feature_names": names,
        "face_px": training_face_heights(tc.originals, usable[orig]),
        # the features depend on how faces were cropped: a scan must crop the same way (checked by Analyzer)
        "crop_antialias": options.crop_antialias,
        "crop": options.crop_method(),
        # "segment": the window probability that makes a timeline segment (see segment_threshold)
        "thresholds": {"low": low, "high": high, "segment": cv.segment_high},
        "reference": reference,
        "blocks": blocks,
        "check_quantiles": check_quantiles(names, genuine, reference, blocks),
        "coefficients": dict(zip(names, model.coef.tolist())),
        "intercept": model.intercept,
        "l2": cv.l2,
        "calibration": {"method": "Platt scaling of grouped out-of-fold logits, classes weighted equally",
                        "slope": slope, "offset": offset},
        "trained_on": str(manifest),
        # re-encoded copies of every clip the fusion was fitted on besides the clips (detector.fusion.augment)
        "copies": {"recipes": {r: RECIPES[r].description for r in copies},
                   "usable": int((usable & ~orig).sum()),
                   "made": sum(1 for c, o in zip(clips, orig) if not o and not (c.error or "").startswith("copy_failed"))},
        "clips": int(orig.sum()),
        "excluded_seen_clips": len(seen),
        "excluded_groups": sorted({r.group for r in seen}),
        # CV groups: footage groups, linked where their fakes share a note starting with this
        "link_note": link_note,
        "cv_groups": len(set(groups)),
        "usable_clips": int(ok.sum()),
        "analysis_fps": fps,
        # what the features measure: a scan with other settings is scored with a caveat (FusionModel)
        "feature_settings": {**options.feature_settings(), "min_track_seconds": MAIN_TRACK_MIN_S},
        "checks": list(checks) if checks else None,
        "score_key": options.score_key(),
        "cv_metrics": m,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    card = model_card(meta, per_feature)
    _write_model_files(out, graph, json.dumps(meta, indent=2, default=float), card)
    return card


def _write_model_files(out: Path, graph, meta_json: str, card: str) -> None:
    """Write the ONNX model, its metadata and its card together: each goes to a temporary file first and all three
    are moved into place only when all are written, so a failure never leaves a new model beside old metadata."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    targets = [out, out.with_suffix(".json"), out.with_suffix(".md")]
    temps = [t.with_name(f".{t.name}.tmp") for t in targets]
    try:
        onnx.save(graph, str(temps[0]))
        temps[1].write_text(meta_json)
        temps[2].write_text(card)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def model_card(meta: dict, per_feature: dict[str, float]) -> str:
    m = meta["cv_metrics"]
    shrunk = any(RECIPES[r].scale < 1 for r in meta.get("copies", {}).get("recipes", {}) if r in RECIPES)
    lines = [
        "# Fusion model card (`fusion.onnx`)",
        "",
        "Logistic regression (L2, class-balanced) over the temporal checks' features -> calibrated "
        "probability that a participant's face is swapped. Fitted on the features of every 4 s timeline window "
        "(2 s hop) of each clip's main track, each clip weighing the same whatever its length (its windows share "
        "its weight; the clips, not their windows, are the independent looks at footage); applied to each window "
        "for the timeline and, for the verdict, to the "
        "track's features, which are the mean of its windows' features (cut while the call streams, so memory does "
        "not grow with its length). A call takes its most suspicious participant.",
        *(["", f"L2 penalty {meta['l2']:g} on the standardised weights: {L2:g} per version of each clip (the clip "
           "and each of its re-encoded copies), since a copy is another look at the same footage, not new evidence, "
           "and must not weaken the regularisation.", ""] if "l2" in meta else [""]),
        f"Calibration: the fitted logit is multiplied by {meta['calibration']['slope']:.3f} and shifted by "
        f"{meta['calibration']['offset']:+.3f} (Platt scaling fitted on grouped out-of-fold logits: a model scored "
        "on its own training clips is overconfident). Both classes are weighted equally, so a probability assumes "
        "even prior odds: P / (1 - P) is the likelihood ratio of the evidence. Where swaps are rarer than genuine "
        "calls, multiply that ratio by the prior odds.",
        "",
        f"- Trained on: `{meta['trained_on']}` ({meta['clips']} clips, {meta['usable_clips']} with a usable face track); "
        "labels only, no clip-specific tuning.",
        f"- Left out: {meta['excluded_seen_clips']} clips of {len(meta['excluded_groups'])} footage groups whose genuine "
        "clips trained a learned model (their scores would be flattering); they are in no number below.",
        f"- Analysis rate: {meta['analysis_fps']} fps. Created {meta['created']}.",
        *([f"- Face heights of the training clips (each clip's main track: the geometric mean over its 4 s windows "
           f"of their median landmark height; reports compare a track's median height with these): 5th "
           f"percentile {meta['face_px']['p05']:.0f} px, median {meta['face_px']['p50']:.0f} px, 95th "
           f"{meta['face_px']['p95']:.0f} px. Scores rise for smaller faces (measured on shrunk copies of the dev "
           "clips by `experiments/reencode_probe.py`, see `experiments/README.md`)"
           + (", less so since the fusion is also fitted on smaller copies (below)" if shrunk else "")
           + ", so reports add a caveat for a face below the 5th percentile."] if meta.get("face_px") else []),
        *([f"- Also fitted on {meta['copies']['usable']} usable re-encoded copies ({meta['copies']['made']} made) of "
           "the training clips, one per recipe and clip, labelled as their clip and in its group: "
           + "; ".join(f"`{k}`, {v}" for k, v in meta["copies"]["recipes"].items())
           + ". They teach the fusion what re-encoding and a smaller picture do to genuine faces "
           "(`detector/fusion/augment.py`); every number below is measured on the original clips, and the copies' "
           "own out-of-fold scores are listed after them."] if meta.get("copies", {}).get("recipes") else []),
        f"- Face crops: {'anti-aliased (a face larger than the 112 px crop blurred to its scale before the warp)' if meta.get('crop_antialias') else 'one bilinear warp'}"
        f" (`ScanOptions.crop_antialias={bool(meta.get('crop_antialias'))}`); scans must crop the same way.",
        f"- Reproduce: `detector train-fusion {meta['trained_on']}`"
        + (f" --checks {','.join(meta['checks'])}" if meta.get("checks") else "")
        + ("" if meta.get("copies", {}).get("recipes") else " --no-copies") + " (default check set: "
        "every hand-made check and the pretrained `face_cnn` features; the self-blend `sbi` check is opt-in"
        + ("; the copies are made and extracted too, about 5x the extraction time of the clips alone"
           if meta.get("copies", {}).get("recipes") else "") + ")",
        "- Graph: impute NaN with the training mean -> standardise -> clip to +-5 sd -> linear (each block of raw "
        "CNN activations contributes its weighted sum clipped to its range on the training windows) -> sigmoid.",
        "",
        f"## Grouped cross-validation ({min(6, meta['cv_groups'])} folds by group, 3 fold assignments averaged)",
        "",
        f"Groups: {meta['cv_groups']}. Clips sharing footage share a group"
        + (f", and footage groups whose fakes share a manifest note starting with '{meta['link_note']}' (the face "
           "the swap renders) are linked into one, so no fold is scored on a face so named that it was fitted on"
           if meta.get("link_note") else "") + ".",
        "",
        f"- Video-level ROC AUC: **{m['auc']:.3f}** (95% interval resampling whole groups: "
        f"{m['auc_interval_95'][0]:.3f}-{m['auc_interval_95'][1]:.3f}); the same folds before calibration: "
        f"{m['auc_uncalibrated']:.3f} (each fold's calibration keeps its ranking, pooling calibrated folds "
        "moves the AUC a little)",
    ]
    for k, v in m["auc_by_source"].items():
        if np.isfinite(v):
            lines.append(f"- AUC, {k}: {v:.3f}")
    for k, v in m["auc_by_method"].items():
        if np.isfinite(v):
            lines.append(f"- AUC, method {k} (vs genuine clips of the same source): {v:.3f}")
    for k, v in m["fpr_by_source"].items():
        lines.append(f"- False-positive rate at the 'likely face-swapped' threshold, genuine {k} clips: {v:.3f}")
    lines += [
        f"- Thresholds: likely face-swapped >= {m['threshold_high']:.3f} (chosen so out-of-fold genuine FPR <= 10%), "
        f"likely genuine < {m['threshold_low']:.3f}",
        f"- At the 'likely face-swapped' threshold: accuracy {m['accuracy_at_high']:.3f}, FPR {m['fpr_at_high']:.3f}, "
        f"TPR {m['tpr_at_high']:.3f}",
        f"- Timeline: a 4 s window at or above {m['segment_threshold']:.3f} is a 'suspicious segment' in the report "
        f"(chosen like the verdict threshold, so that out of fold at most {MAX_FPR:.0%} of genuine clips have one, "
        "and never below it); out-of-fold, on the same window scores it was chosen on, "
        f"{m['genuine_clips_with_segment']:.3f} of genuine clips and {m['fake_clips_with_segment']:.3f} of fakes "
        "have one",
        f"- Calibration of the out-of-fold probabilities (classes weighted equally; a constant 0.5 scores 0.693 and "
        f"0.250): log loss {m['log_loss']:.3f}, Brier score {m['brier']:.3f}",
        "",
        "| out-of-fold probability | clips | mean probability | fraction fake |",
        "|---|---|---|---|",
        *[f"| {b['from']:.1f}-{b['to']:.1f} | {b['clips']} | "
          + ("n/a | n/a |" if not b["clips"] else f"{b['mean_probability']:.2f} | {b['fraction_fake']:.2f} |")
          for b in m["reliability"]],
        *(["", "Re-encoded copies, scored out of fold (by models that saw no version of their clip), at the same "
           "threshold:", "",
           "| recipe | clips scored | AUC | FPR | TPR | mean rise of genuine clips' P over their original's |",
           "|---|---|---|---|---|---|",
           *[f"| `{k}` | {v['scored']} | {v['auc']:.3f} | {v['fpr_at_high']:.3f} | {v['tpr_at_high']:.3f} | "
             f"{v['genuine_p_rise']:+.3f} |" for k, v in m["copies"].items()]] if m.get("copies") else []),
        "",
        "## Features (single-feature AUC on the original clips; < 0.5 means lower values are more suspicious)",
        "",
        "| feature | AUC | weight (standardised) |",
        "|---|---|---|",
    ]
    for n in meta["feature_names"]:
        if n in per_feature:
            lines.append(f"| `{n}` | {per_feature[n]:.3f} | {meta['coefficients'][n]:+.3f} |")
    for check, block in meta["blocks"].items():
        coef = np.asarray(block["coef"])
        lines.append(f"| `{block['features'][0]}` ... `{block['features'][-1]}` ({len(coef)} pooled CNN activations"
                     f" of `{check}`; not read one by one) | n/a | L2 norm {np.linalg.norm(coef):.3f}; their summed "
                     f"share of the logit is clipped to {block['logit_bounds'][0]:+.2f} .. "
                     f"{block['logit_bounds'][1]:+.2f}, its range on the training windows |")
    lines += ["", "## Limits", "",
              "The dev set is small (tens of clips, few footage groups) and its faces are small and heavily "
              "compressed; treat the numbers as indicative. Thresholds are set from out-of-fold scores. The checks "
              "and this fusion design were chosen while looking at these dev numbers, so even cross-validated "
              "figures are optimistic for unseen recordings."]
    return "\n".join(lines) + "\n"
