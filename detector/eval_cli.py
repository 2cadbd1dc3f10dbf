"""``detector eval``: score a labelled manifest and measure accuracy.

By default the fusion is re-fitted inside grouped cross-validation folds on
the features just extracted, so that every score in ``scores.csv`` comes from
a model that never saw that clip's footage group, nor a face the manifest's
notes say a fake in it renders (groups sharing such a note are linked, see
:func:`detector.evaluation.link_groups`): evaluating the shipped
model on the manifest it was trained on would be in-sample. As
``train-fusion`` does, each fold's fusion is fitted on its training clips and
on re-encoded copies of them (:mod:`detector.fusion.augment`, made under
``OUT/copies`` unless told otherwise); every number is measured on the
manifest's own clips, and the copies' out-of-fold scores are reported per
recipe beside them. ``--no-cv`` scores with the shipped model, which is right
for a manifest of recordings the model has never seen (no copies are made).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np

from detector.errors import ConfigError
from detector.evaluation import (DEFAULT_LINK_NOTE, MAIN_TRACK_MIN_S, ClipFeatures, cross_validated_scores,
                                 feature_matrix, link_groups, metrics, read_manifest, require_cv_data, split_seen,
                                 window_matrix)
from detector.fusion.augment import TRAINING_COPIES, copy_metrics
from detector.fusion.logistic import roc_auc
from detector.fusion.model import FusionModel
from detector.fusion.train import (CopyProgress, block_masks, cross_validate_fusion, fusion_feature_names,
                                   fusion_penalty, is_reported, training_clips, versions_per_clip)
from detector.options import ScanOptions


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"


def _interval(iv) -> str:
    if not iv or not all(np.isfinite(iv)):
        return ""
    return f"  (95% interval resampling groups: {iv[0]:.3f}-{iv[1]:.3f})"


def _unscored_reason(clip: ClipFeatures) -> str:
    """Why a clip that was read gave no score."""
    if not clip.tracks:
        return "no_face: no face was found"
    if clip.main_track() is None:
        return f"insufficient_evidence: no face track of at least {MAIN_TRACK_MIN_S:g} s"
    return "not_scored: no fold could fit on both classes without this clip's group"


def _json_safe(value):
    """``value`` with every non-finite float (and numpy float) replaced by None."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def run_eval(manifest: Path, out: Path, workers: int = 2, fps: float = 10.0, cv: bool = True,
             checks: tuple[str, ...] | None = None, link_note: str = DEFAULT_LINK_NOTE,
             progress: Callable[[int, int, ClipFeatures], None] | None = None, crop_antialias: bool = True,
             copies: tuple[str, ...] = TRAINING_COPIES, copies_dir: Path | None = None,
             copy_progress: CopyProgress | None = None, speaker_view: bool = False) -> str:
    rows, seen = split_seen(read_manifest(manifest), checks=checks)
    if not rows:
        raise ConfigError("every clip of the manifest belongs to footage a shipped model was trained on")
    footage_groups = len({r.group for r in rows})
    rows = link_groups(rows, link_note)
    if cv:
        require_cv_data(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = ScanOptions(analysis_fps=fps, use_fusion=False, checks=checks, crop_antialias=crop_antialias,
                          shot_cuts=speaker_view)
    fusion = FusionModel()
    try:
        if not cv and fusion.crop_method != options.crop_method():
            raise ConfigError(f"the shipped fusion model was fitted with crop_antialias={fusion.crop_antialias}; "
                              "--no-cv can only score features cropped the same way")
        differences = [] if cv else fusion.setting_differences(options)
        if differences:
            # measured accuracy of a model on features it was not fitted on would describe neither
            raise ConfigError("the shipped fusion model was fitted on features measured otherwise: "
                              + "; ".join(differences) + ". --no-cv can only score features measured the same way")
        if not cv:
            copies = ()  # nothing is fitted, so nothing is fitted on copies
        tc = training_clips(rows, options, workers=workers, cache=out / "features.jsonl", copies=copies,
                            copies_dir=Path(copies_dir) if copies_dir is not None else out / "copies",
                            progress=progress, copy_progress=copy_progress)
        clips, orig = tc.clips, tc.original
        y = np.array([c.y for c in clips])
        # every check's features: what grouped CV fuses, and what each check's own AUC reads a subset of
        all_names = fusion_feature_names(clips)
        xs, _, usable_all = feature_matrix(clips, all_names)
        windows = None
        copy_scores: dict = {}
        if cv:
            names, x = all_names, xs
            # the very procedure train-fusion reports
            fcv = cross_validate_fusion(clips, names, x, y, usable_all, orig)
            scores, auc_uncalibrated, segments = fcv.scores, fcv.auc_uncalibrated, fcv.segments
            low, high, windows = fcv.low, fcv.high, fcv.windows
            segment_high = fcv.segment_high
            copy_scores = copy_metrics(y, scores, tc.version, tc.versions, high)
            mode = "grouped cross-validation (fusion refitted per fold; thresholds from out-of-fold scores)"
            if copies:
                mode += f"; fitted also on re-encoded copies ({', '.join(copies)}), measured on the originals"
        else:
            names = fusion.feature_names
            scores = np.full(len(clips), np.nan)
            for i, c in enumerate(clips):
                # call-level score: the most suspicious sufficiently long track
                tracks = [t for t in c.tracks if t["duration"] >= options.min_track_seconds
                          and t["frames"] >= options.min_track_frames]
                if tracks:
                    scores[i] = float(fusion.predict([{k: v for k, v in t["features"].items() if v is not None}
                                                      for t in tracks]).max())
            x, _, _ = feature_matrix(clips, names)
            low, high = fusion.low, fusion.high
            mode = "shipped fusion model (in-sample if this manifest was used to train it)"
            auc_uncalibrated = float("nan")
            segments = {}
            segment_high = fusion.segment_high
        per_check = {n: x[:, j] for j, n in enumerate(names) if is_reported(n)}
        # each check's own AUC: its features alone, fused the same way under grouped CV
        xw, yw, iw = windows if windows is not None else window_matrix(clips, all_names)
        own: dict[str, float] = {}
        l2 = fusion_penalty(versions_per_clip(orig))  # as the fusion's own (copies do not weaken it)
        for check in sorted({n.split(".")[0] for n in all_names}):
            cols = [j for j, n in enumerate(all_names) if n.split(".")[0] == check]
            # ranking only: calibration would cost ~7x the fits and cannot improve a single fold's AUC
            oof = cross_validated_scores(xs[:, cols], y, [c.row.group for c in clips], usable_all, l2=l2,
                                         windows=(xw[:, cols], yw, iw), blocks=block_masks([all_names[j] for j in cols]),
                                         calibrate=False)
            own[check] = roc_auc(y[orig], oof[orig])
    finally:
        fusion.close()
    # from here on, the manifest's own clips only
    clips, scores, y = tc.originals, scores[orig], y[orig]
    per_check = {k: v[orig] for k, v in per_check.items()}
    m = metrics(clips, scores, high, low, per_check=per_check)
    m["auc_uncalibrated"] = auc_uncalibrated
    m["crop_antialias"] = crop_antialias
    m["shot_cuts"] = speaker_view
    m["copies"] = copy_scores
    m.update(segments)
    m["segment_threshold"] = segment_high
    m["check_own_auc"] = own
    m["l2"] = l2
    m["mode"] = mode
    m["cv_groups"] = len({c.row.group for c in clips})
    m["footage_groups"] = footage_groups
    m["link_note"] = link_note
    m["excluded_seen_clips"] = [r.rel_path for r in seen]
    m["errors"] = {c.row.rel_path: c.error for c in clips if c.error}
    # clips that decoded but gave no score: every face track too short (or no face at all)
    m["errors"].update({c.row.rel_path: _unscored_reason(c) for c, s in zip(clips, scores)
                        if not c.error and not np.isfinite(s)})
    m["copy_errors"] = {c.row.rel_path: c.error for c, o in zip(tc.clips, orig) if not o and c.error}
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "score"])
        for c, s in zip(clips, scores):
            w.writerow([c.row.rel_path, c.row.label, "" if not np.isfinite(s) else f"{s:.6f}"])
    # strict JSON: NaN (an AUC of a source with one class, say) is written as null, which every parser reads
    (out / "metrics.json").write_text(json.dumps(_json_safe(m), indent=2, default=float, allow_nan=False))
    linked = (f" (from {footage_groups} footage groups, linked where they share a note '{link_note}...')"
              if link_note else " (footage groups; none linked)")
    lines = [f"mode: {mode}", f"clips: {m['clips']}, scored: {m['scored']}"
             + (f" (left out {len(seen)} clips whose footage trained a shipped model)" if seen else "")
             + f"; {m['cv_groups']} CV groups{linked}",
             f"ROC AUC (video level): {_fmt(m['auc'])}{_interval(m['auc_interval_95'])}"]
    if np.isfinite(m["auc_uncalibrated"]):
        lines.append(f"  same folds before calibration: {_fmt(m['auc_uncalibrated'])}")
    lines += [f"  source {k}: {_fmt(v)}{_interval(m['auc_interval_95_by_source'].get(k))}"
              for k, v in m["auc_by_source"].items()]
    lines += [f"  method {k}: {_fmt(v)}" for k, v in m["auc_by_method"].items()]
    lines.append(f"at 'likely face-swapped' threshold {high:.3f}: accuracy {_fmt(m['accuracy_at_high'])}, "
                 f"FPR {_fmt(m['fpr_at_high'])}, TPR {_fmt(m['tpr_at_high'])}")
    lines += [f"  FPR on genuine clips of {k}: {_fmt(v)}" for k, v in m["fpr_by_source"].items()]
    if segments:
        lines.append(f"timeline: clips with a window at or above {segment_high:.3f} (a 'suspicious segment'): genuine "
                     f"{_fmt(m['genuine_clips_with_segment'])}, fake {_fmt(m['fake_clips_with_segment'])}")
    if copy_scores:
        lines.append("re-encoded copies, out of fold at the same threshold (AUC, FPR, TPR, mean rise of genuine P):")
        lines += [f"  {k}: {_fmt(v['auc'])}, {_fmt(v['fpr_at_high'])}, {_fmt(v['tpr_at_high'])}, "
                  f"{v['genuine_p_rise']:+.3f}" for k, v in copy_scores.items()]
    lines.append(f"calibration (classes weighted equally; constant 0.5 scores 0.693 / 0.250): "
                 f"log loss {_fmt(m['log_loss'])}, Brier {_fmt(m['brier'])}")
    lines += [f"  P {b['from']:.1f}-{b['to']:.1f}: {b['clips']} clips"
              + (f", mean P {b['mean_probability']:.2f}, fraction fake {b['fraction_fake']:.2f}" if b["clips"] else "")
              for b in m["reliability"]]
    lines.append("each check alone (its features fused under grouped CV):")
    lines += [f"  {k}: {_fmt(v)}" for k, v in m["check_own_auc"].items()]
    lines.append("per-feature AUC (< 0.5: lower is more suspicious):")
    lines += [f"  {k}: {_fmt(v)}" for k, v in m["check_auc"].items()]
    if m["copy_errors"]:
        lines.append(f"copies unscored: {len(m['copy_errors'])} (first: "
                     f"{next(iter(m['copy_errors']))}: {next(iter(m['copy_errors'].values()))})")
    if m["errors"]:
        lines.append(f"unscored: {len(m['errors'])}")
        lines += [f"  {k}: {v}" for k, v in m["errors"].items()]
    lines.append(f"wrote {out / 'scores.csv'} and {out / 'metrics.json'}")
    return "\n".join(lines)
