"""Feature extraction over a labelled manifest, grouped cross-validation and metrics.

Shared by ``detector eval`` and ``detector train-fusion``. Clips that share
footage share a ``group``; folds never split a group, so no number here is
measured on footage the model was fitted on. Groups whose fakes render the same
face, as the manifest's notes name it, are merged as well (:func:`link_groups`),
so no number is measured on such a face identity the model was fitted on either.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from detector.errors import ConfigError, DetectorError
from detector.fusion.logistic import (LogisticModel, balanced_weights, bound_blocks, clip_balanced_weights,
                                      fit_logistic, fit_platt, roc_auc)
from detector.options import ScanOptions

#: a clip's main track (the one training and evaluation read) has at least this much face time, seconds: a scan's
#: default ``min_track_seconds``, so by default the fusion never scores tracks shorter than those it was fitted on
MAIN_TRACK_MIN_S = ScanOptions.min_track_seconds


@dataclass
class ManifestRow:
    path: str  # absolute
    rel_path: str  # as written in the manifest
    label: str  # real | fake
    source: str = ""
    method: str = ""
    group: str = ""
    note: str = ""


@dataclass
class ClipFeatures:
    row: ManifestRow
    tracks: list[dict] = field(default_factory=list)  # {track_id, duration, frames, features}
    error: str | None = None

    @property
    def y(self) -> int:
        return int(self.row.label == "fake")

    def main_track(self, min_seconds: float | None = None) -> dict | None:
        """The track with the most face time (the interviewee in a 1:1 recording)."""
        min_seconds = MAIN_TRACK_MIN_S if min_seconds is None else min_seconds
        ok = [t for t in self.tracks if t["duration"] >= min_seconds]
        return max(ok, key=lambda t: t["frames"]) if ok else None


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"manifest is a folder, not a CSV file: {path}")
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    rows = []
    first_line: dict[str, int] = {}
    # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark, which would otherwise stick to 'path'
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"manifest {path} lacks columns {sorted(missing)}")
        for r in reader:
            label = (r.get("label") or "").strip().lower()
            if label not in ("real", "fake"):
                raise ConfigError(f"manifest {path}: label must be real|fake, got {label!r} for {r['path']}")
            resolved = str((path.parent / r["path"]).resolve())
            if resolved in first_line:
                # counted twice, one clip would weigh double in every AUC and rate
                raise ConfigError(f"manifest {path} lists {r['path']} twice (lines {first_line[resolved]} and "
                                  f"{reader.line_num}); each clip must appear once")
            first_line[resolved] = reader.line_num
            rows.append(ManifestRow(path=resolved, rel_path=r["path"], label=label,
                                    source=r.get("source", ""), method=r.get("method", ""),
                                    group=r.get("group") or r["path"], note=(r.get("note") or "").strip()))
    if not rows:
        raise ConfigError(f"manifest {path} has a header but no clips")
    return rows


#: fewest footage groups (after linking) that grouped cross-validation is run on: with fewer, most folds hold
#: one class or none to fit on, and an AUC over what is left says nothing
MIN_CV_GROUPS = 3


def require_cv_data(rows: list[ManifestRow]) -> None:
    """Refuse (:class:`ConfigError`) a manifest grouped cross-validation cannot measure anything on."""
    labels = {r.label for r in rows}
    if len(labels) < 2:
        raise ConfigError(f"grouped cross-validation needs both real and fake clips; every clip of this manifest is "
                          f"{next(iter(labels)) if labels else 'excluded'}")
    groups = {r.group for r in rows}
    if len(groups) < MIN_CV_GROUPS:
        raise ConfigError(f"grouped cross-validation needs clips from at least {MIN_CV_GROUPS} footage groups "
                          f"(clips sharing footage, or a face, are never split); this manifest has {len(groups)}")


#: manifest notes that name the face a fake renders: the dev set writes "celeb model NAME"
#: on each DeepFaceLive fake, and several footage groups share one celebrity model
DEFAULT_LINK_NOTE = "celeb model"


def link_groups(rows: list[ManifestRow], note_prefix: str = DEFAULT_LINK_NOTE) -> list[ManifestRow]:
    """The rows with footage groups merged where their clips share a note starting with ``note_prefix``.

    Why: a fusion fitted on one fake that renders a given face can learn that
    face's *identity*, and then recognise another fake rendering it in a
    different footage group by who it shows, not by the swap. Grouped CV that
    splits such groups would credit the model for memorising faces, which says
    nothing about recordings of faces it never saw. Merging is transitive
    (union-find): groups A and B sharing one face and B and C another become one
    group, named by its footage groups joined with ``+`` (a name that would
    clash with another footage group's is a :class:`ConfigError`). An empty
    prefix leaves the footage groups as they are.
    """
    if not note_prefix:
        return list(rows)
    roots = linked_roots([r.group for r in rows], [r.note for r in rows], note_prefix)
    members: dict[str, set[str]] = {}
    for r, root in zip(rows, roots):
        members.setdefault(root, set()).add(r.group)
    footage = {r.group for r in rows}
    names = {root: "+".join(sorted(m)) for root, m in members.items()}
    for root, m in members.items():
        if len(m) > 1 and names[root] in footage:
            raise ConfigError(f"linking footage groups {sorted(m)} would name them {names[root]!r}, which is the name "
                              "of another footage group: rename that group")
    return [replace(r, group=names[root]) for r, root in zip(rows, roots)]


def linked_roots(groups: list[str], notes: list[str], note_prefix: str) -> list[str]:
    """Union-find root of each row's group ("group:G" or "note:N"), groups linked by notes with ``note_prefix``.

    The roots' names (not only which rows share one) decide how grouped folds
    fall, so the probes that used them before :func:`link_groups` existed keep
    them to stay reproducible.
    """
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for group, note in zip(groups, notes):
        g = find("group:" + group)
        if note_prefix and note.startswith(note_prefix):
            parent[g] = find("note:" + note)
    return [find("group:" + g) for g in groups]


def seen_groups(models: Path | None = None, checks: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Footage groups a shipped model was trained on, by model: ``{"sbi_face": [...]}``.

    A learned model may have seen the genuine clips of some dev groups; any
    number measured on those groups would flatter it, and fusion weights
    fitted on them would be biased. Model metadata (``models/*.json``) lists
    them under ``training_groups``; evaluation and fusion training leave
    them out.
    """
    from detector.paths import models_dir

    from detector.checks import CHECKS, DEFAULT_CHECKS

    names = DEFAULT_CHECKS if checks is None else tuple(checks)
    files = {CHECKS[n].model_metadata for n in names if n in CHECKS and CHECKS[n].model_metadata}
    out: dict[str, list[str]] = {}
    for meta in sorted(Path(models or models_dir()).glob("*.json")):
        if meta.name not in files:
            continue
        try:
            groups = json.loads(meta.read_text()).get("training_groups")
        except (ValueError, AttributeError):
            continue
        if groups:
            out[meta.stem] = list(groups)
    return out


def split_seen(rows: list[ManifestRow], models: Path | None = None,
               checks: Iterable[str] | None = None) -> tuple[list[ManifestRow], list[ManifestRow]]:
    """(rows usable for fitting and measuring, rows from footage a model of the selected checks was trained on)."""
    seen = {g for groups in seen_groups(models, checks).values() for g in groups}
    return [r for r in rows if r.group not in seen], [r for r in rows if r.group in seen]


# -- feature extraction (one Analyzer per worker process) -------------------
_worker_analyzer = None


def _init_worker(options_dict: dict) -> None:
    global _worker_analyzer
    from detector.api import Analyzer

    opts = ScanOptions(**{**options_dict, "use_fusion": False})
    _worker_analyzer = Analyzer(opts)


def _extract_one(row: ManifestRow) -> ClipFeatures:
    try:
        analysis = _worker_analyzer.analyse(row.path)
        def clean(f: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if not math.isfinite(v) else v) for k, v in f.items()}

        tracks = [{"track_id": t.track_id, "duration": t.duration, "frames": t.frames,
                   "features": clean(analysis.track_features(t)),
                   "windows": [clean(w.value) for w in t.windows]}
                  for t in analysis.tracks if t.frames >= 3]
        return ClipFeatures(row, tracks)
    except DetectorError as exc:
        return ClipFeatures(row, [], f"{exc.code}: {exc}")


def _file_identity(path: str) -> list[int] | None:
    """[size, modification time in ns] of a clip's file, or None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def extract_features(rows: list[ManifestRow], options: ScanOptions, workers: int = 1,
                     cache: Path | None = None,
                     progress: Callable[[int, int, ClipFeatures], None] | None = None) -> list[ClipFeatures]:
    """Features of every clip, reusing ``cache`` (a JSONL file) for clips already done with these settings."""
    key = options.score_key()
    done: dict[str, ClipFeatures] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: recompute that clip
            # a clip that failed is tried again (the file may have been restored), and one whose file changed
            # since (another size or modification time) is extracted again; lines from before the file's
            # identity was recorded are trusted as they were
            if d.get("key") == key and not d.get("error") and d.get("file") in (None, _file_identity(d["row"]["path"])):
                done[d["row"]["path"]] = ClipFeatures(ManifestRow(**d["row"]), d["tracks"], d.get("error"))
    todo = [r for r in rows if r.path not in done]
    if todo and workers > 1:
        # a worker that cannot start (bad options, a model that will not load) would be replaced by the pool
        # forever: find out here, once, with the error the user should see
        from detector.api import Analyzer

        Analyzer(ScanOptions(**{**asdict(options), "use_fusion": False})).close()
    out_f = open(cache, "a") if cache is not None else None
    try:
        results: Iterable[ClipFeatures]
        if workers <= 1:
            _init_worker(asdict(options))
            results = (_extract_one(r) for r in todo)
            pool = None
        else:
            pool = mp.get_context("spawn").Pool(workers, _init_worker, (asdict(options),))
            results = pool.imap_unordered(_extract_one, todo)
        n = len(rows) - len(todo)
        for cf in results:
            done[cf.row.path] = cf
            n += 1
            if out_f is not None:
                out_f.write(json.dumps({"key": key, "row": asdict(cf.row), "file": _file_identity(cf.row.path),
                                        "tracks": cf.tracks, "error": cf.error}) + "\n")
                out_f.flush()
            if progress is not None:
                progress(n, len(rows), cf)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if out_f is not None:
            out_f.close()
    # the manifest, not the cache, says what a clip is: a cached row keeps the label and
    # group it was first extracted with, and either may have changed (or been linked) since
    return [replace(done[r.path], row=r) for r in rows]


# -- grouped cross-validation ------------------------------------------------
def feature_matrix(clips: list[ClipFeatures], names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, usable) from each clip's main track; unusable clips get NaN rows."""
    x = np.full((len(clips), len(names)), np.nan)
    usable = np.zeros(len(clips), dtype=bool)
    for i, c in enumerate(clips):
        t = c.main_track()
        if t is None:
            continue
        usable[i] = True
        for j, n in enumerate(names):
            v = t["features"].get(n)
            if v is not None:
                x[i, j] = v
    y = np.array([c.y for c in clips])
    return x, y, usable


def window_matrix(clips: list[ClipFeatures], names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, clip index) with one row per timeline window of each clip's main track."""
    rows, ys, idx = [], [], []
    for i, c in enumerate(clips):
        t = c.main_track()
        if t is None:
            continue
        for w in t.get("windows", []):
            rows.append([np.nan if w.get(n) is None else w[n] for n in names])
            ys.append(c.y)
            idx.append(i)
    return (np.array(rows, dtype=np.float64).reshape(-1, len(names)), np.array(ys, dtype=int),
            np.array(idx, dtype=int))


def group_folds(groups: list[str], k: int, seed: int = 0) -> list[np.ndarray]:
    """Assign whole groups to k folds, balancing clip counts."""
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    sizes = {g: groups.count(g) for g in uniq}
    folds: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for g in sorted(uniq, key=lambda g: -sizes[g]):
        i = int(np.argmin(load))
        folds[i].append(g)
        load[i] += sizes[g]
    ga = np.array(groups)
    return [np.isin(ga, f) for f in folds]


Windows = tuple[np.ndarray, np.ndarray, np.ndarray]
#: fold assignments whose out-of-fold logits (averaged) a calibration is fitted on: the same for the
#: shipped model and for each fold of an evaluation, so the evaluation measures the shipped procedure
CALIBRATION_SEEDS = (0, 1, 2)


def _fit_on(x: np.ndarray, y: np.ndarray, train: np.ndarray, l2: float, windows: Windows | None,
            blocks: list[np.ndarray] | None) -> LogisticModel:
    """Fusion fitted on the clips in mask ``train``: on their timeline windows when given, else on the clips."""
    if windows is not None:
        xw, yw, iw = windows
        sel = np.isin(iw, np.flatnonzero(train))
        xt, yt = xw[sel], yw[sel]
        # each clip weighs the same whatever its length (its windows share the weight)
        weight = clip_balanced_weights(yt, iw[sel])
    else:
        xt, yt = x[train], y[train]
        weight = balanced_weights(yt)
    return bound_blocks(fit_logistic(xt, yt, l2=l2, sample_weight=weight), xt, blocks or [])


def _training_folds(y: np.ndarray, groups: list[str], usable: np.ndarray, k: int, seeds: Iterable[int]
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(test, train) masks of every grouped fold of every seed whose training part holds both classes."""
    for seed in seeds:
        for test in group_folds(groups, k, seed):
            train = ~test & usable
            if len(set(y[train])) == 2:
                yield test, train


def _fold_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per-row mean over the folds that scored the row; NaN where none did."""
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def cross_validated_logits(x: np.ndarray, y: np.ndarray, groups: list[str], usable: np.ndarray,
                           k: int = 6, l2: float = 4.0, seeds: Iterable[int] = (0, 1, 2),
                           windows: Windows | None = None, blocks: list[np.ndarray] | None = None) -> np.ndarray:
    """Out-of-fold *uncalibrated* fusion logits, averaged over several fold assignments (NaN: unusable)."""
    acc = np.zeros(len(y))
    n = np.zeros(len(y))
    for test, train in _training_folds(y, groups, usable, k, seeds):
        acc[test] += _fit_on(x, y, train, l2, windows, blocks).decision(x[test])
        n[test] += 1
    out = _fold_mean(acc, n)
    out[~usable] = np.nan
    return out


def cross_validated_scores(x: np.ndarray, y: np.ndarray, groups: list[str], usable: np.ndarray,
                           k: int = 6, l2: float = 4.0, seeds: Iterable[int] = (0, 1, 2),
                           windows: Windows | None = None,
                           blocks: list[np.ndarray] | None = None, calibrate: bool = True,
                           window_scores: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold probabilities (averaged over several fold assignments).

    With ``windows`` (from :func:`window_matrix`), each fold's model is fitted
    on the timeline windows of its training clips and scores the test clips'
    track features (the mean of their windows'), as :func:`fit_final` does for the shipped model.
    ``blocks`` (feature masks) are bounded to their training fold's range
    (:func:`~detector.fusion.logistic.bound_blocks`), as in the shipped model.

    With ``calibrate``, each fold also calibrates its model as :func:`fit_final`
    does, from an inner grouped CV over the fold's own training clips only, so
    the calibration is as out-of-fold as the ranking.

    ``window_scores`` (one slot per row of ``windows``), when given, is filled
    with each test window's out-of-fold probability: what the timeline shows.
    """
    if window_scores is not None and windows is None:
        raise ValueError("window_scores needs windows")
    acc = np.zeros(len(y))
    n = np.zeros(len(y))
    wacc = np.zeros(len(windows[1])) if windows is not None else None
    wn = np.zeros_like(wacc) if wacc is not None else None
    for test, train in _training_folds(y, groups, usable, k, seeds):
        model = (calibrated_fold_model(x, y, groups, train, k, l2, windows, blocks) if calibrate
                 else _fit_on(x, y, train, l2, windows, blocks))
        acc[test] += model.predict_proba(x[test])
        n[test] += 1
        if window_scores is not None:
            sel = np.isin(windows[2], np.flatnonzero(test))
            wacc[sel] += model.predict_proba(windows[0][sel])
            wn[sel] += 1
    out = _fold_mean(acc, n)
    out[~usable] = np.nan
    if window_scores is not None:
        window_scores[:] = _fold_mean(wacc, wn)
    return out


def calibrated_fold_model(x: np.ndarray, y: np.ndarray, groups: list[str] | np.ndarray, train: np.ndarray,
                          k: int = 6, l2: float = 4.0, windows: Windows | None = None,
                          blocks: list[np.ndarray] | None = None) -> LogisticModel:
    """One fold's model of :func:`cross_validated_scores`: the fusion fitted on the clips in mask ``train`` and
    Platt-calibrated on an inner grouped CV over those clips only, so it may score any clip outside ``train``
    (the probes under ``experiments/`` score re-encoded copies and gallery tiles with it)."""
    model = _fit_on(x, y, train, l2, windows, blocks)
    idx = np.flatnonzero(train)
    inner = _inner_logits(x, y, np.asarray(groups), idx, k, l2, windows, blocks)
    return model.rescaled(*fit_platt(inner, y[idx]))


def _worst_window(window_scores: np.ndarray, owners: np.ndarray, n_clips: int) -> np.ndarray:
    """Each clip's highest scored window (NaN for a clip without one): what decides whether it has a segment."""
    window_scores, owners = np.asarray(window_scores, dtype=np.float64), np.asarray(owners, dtype=int)
    scored = np.isfinite(window_scores)
    worst = np.full(n_clips, -np.inf)
    np.maximum.at(worst, owners[scored], window_scores[scored])
    worst[np.isneginf(worst)] = np.nan
    return worst


def segment_rates(y: np.ndarray, window_scores: np.ndarray, owners: np.ndarray, high: float) -> dict:
    """How often the timeline flags a stretch: clips with any window at or above ``high``, per class.

    On genuine clips this is the rate of calls an interviewer would see a
    "suspicious segment" on although nobody swapped a face.
    """
    worst = _worst_window(window_scores, owners, len(y))
    has = np.isfinite(worst)  # clips without a scored window are left out, not counted as unflagged
    out = {}
    for key, cls in (("genuine_clips_with_segment", 0), ("fake_clips_with_segment", 1)):
        sel = has & (np.asarray(y) == cls)
        out[key] = float((worst[sel] >= high).mean()) if sel.any() else float("nan")
    return out


def segment_threshold(y: np.ndarray, window_scores: np.ndarray, owners: np.ndarray, high: float,
                      max_rate: float) -> float:
    """Lowest window probability that flags a segment in at most ``max_rate`` of genuine clips.

    A 4 s window is a noisier look than a whole track (the mean of its
    windows), so the verdict threshold ``high`` flags more genuine calls on
    the timeline than in the verdict. This threshold is chosen on out-of-fold
    window scores the way ``high`` is on clip scores, and never sits below
    ``high``: a segment is at least as suspicious as a "likely face-swapped" call.
    """
    worst = _worst_window(window_scores, owners, len(y))
    genuine = worst[(np.asarray(y) == 0) & np.isfinite(worst)]
    return max(float(high), threshold_for_fpr(genuine, max_rate)) if genuine.size else float(high)


def _inner_logits(x: np.ndarray, y: np.ndarray, groups: np.ndarray, idx: np.ndarray, k: int, l2: float,
                  windows: Windows | None, blocks: list[np.ndarray] | None) -> np.ndarray:
    """Out-of-fold logits of clips ``idx`` from models fitted on other clips of ``idx`` only (one fold assignment)."""
    sub_windows = None
    if windows is not None:
        xw, yw, iw = windows
        sel = np.isin(iw, idx)
        # renumber window owners into positions within idx
        sub_windows = (xw[sel], yw[sel], np.searchsorted(idx, iw[sel]))
    k_inner = min(k, len(set(groups[idx].tolist())))
    return cross_validated_logits(x[idx], y[idx], list(groups[idx]), np.ones(len(idx), bool), k=k_inner, l2=l2,
                                  seeds=CALIBRATION_SEEDS, windows=sub_windows, blocks=blocks)


def fit_final(x: np.ndarray, y: np.ndarray, groups: list[str], usable: np.ndarray, l2: float = 4.0,
              windows: Windows | None = None,
              blocks: list[np.ndarray] | None = None) -> tuple[LogisticModel, tuple[float, float]]:
    """The shipped model and its Platt calibration ``(slope, offset)``, already folded into the model.

    Fitted on every timeline window when given (see :func:`cross_validated_scores`).
    Logits of a model scored on the clips it was fitted on are overconfident,
    so the calibration is fitted on grouped out-of-fold logits instead.
    """
    model = _fit_on(x, y, usable, l2, windows, blocks)
    calibration = fit_platt(cross_validated_logits(x, y, groups, usable, l2=l2, seeds=CALIBRATION_SEEDS,
                                                   windows=windows, blocks=blocks), y)
    return model.rescaled(*calibration), calibration


# -- metrics -------------------------------------------------------------------
def threshold_for_fpr(scores_genuine: np.ndarray, max_fpr: float) -> float:
    """Smallest threshold whose false-positive rate on genuine clips is <= max_fpr."""
    s = np.sort(scores_genuine[np.isfinite(scores_genuine)])
    if s.size == 0:
        return 0.5
    allowed = int(math.floor(max_fpr * s.size))
    # threshold just above the (allowed+1)-th highest genuine score
    idx = s.size - allowed - 1
    return float(min(1.0, s[idx] + 1e-6)) if idx >= 0 else float(s[0])


def group_bootstrap_auc(y: np.ndarray, scores: np.ndarray, groups: list[str], reps: int = 1000,
                        seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Interval of the ROC AUC when whole groups (footage groups, linked by shared faces) are resampled.

    With a few dozen groups one clip more or less moves the AUC by several
    points; this says how far, resampling groups (not clips) because clips of
    one group are not independent evidence. NaN when a class is missing.
    """
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(scores)
    ga = np.asarray(groups)[ok]
    y, scores = y[ok], scores[ok]
    uniq = sorted(set(ga.tolist()))
    if len(set(y.tolist())) < 2 or len(uniq) < 2:
        return float("nan"), float("nan")
    members = [np.flatnonzero(ga == g) for g in uniq]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(reps):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
        a = roc_auc(y[idx], scores[idx])
        if np.isfinite(a):
            aucs.append(a)
    if not aucs:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(aucs, tail)), float(np.percentile(aucs, 100 - tail))


def metrics(clips: list[ClipFeatures], scores: np.ndarray, high: float, low: float,
            per_check: dict[str, np.ndarray] | None = None) -> dict:
    y = np.array([c.y for c in clips])
    ok = np.isfinite(scores)
    out: dict = {"clips": len(clips), "scored": int(ok.sum()), "auc": roc_auc(y, scores),
                 "auc_interval_95": group_bootstrap_auc(y, scores, [c.row.group for c in clips])}
    for key in ("source", "method"):
        vals = sorted({getattr(c.row, key) for c in clips})
        out[f"auc_by_{key}"] = {}
        for v in vals:
            sel = np.array([getattr(c.row, key) == v for c in clips])
            if key == "method":
                # a method's fakes against every genuine clip of the same source
                srcs = {c.row.source for c in clips if getattr(c.row, key) == v}
                sel = sel | np.array([c.row.source in srcs and c.y == 0 for c in clips])
            out[f"auc_by_{key}"][v] = roc_auc(y[sel], scores[sel])
            if key == "source":
                out.setdefault("auc_interval_95_by_source", {})[v] = group_bootstrap_auc(
                    y[sel], scores[sel], [c.row.group for c, s_ in zip(clips, sel) if s_])
    pred = scores >= high
    # sources with genuine clips only have no AUC: their false-positive rate is what matters
    out["fpr_by_source"] = {}
    for v in sorted({c.row.source for c in clips}):
        sel = np.array([c.row.source == v and c.y == 0 for c in clips]) & ok
        if sel.any():
            out["fpr_by_source"][v] = float((pred & sel).sum() / sel.sum())
    gen = ok & (y == 0)
    fk = ok & (y == 1)
    out["threshold_high"] = high
    out["threshold_low"] = low
    out["accuracy_at_high"] = float(((pred == (y == 1)) & ok).sum() / max(ok.sum(), 1))
    out["fpr_at_high"] = float((pred & gen).sum() / max(gen.sum(), 1))
    out["tpr_at_high"] = float((pred & fk).sum() / max(fk.sum(), 1))
    out.update(calibration_metrics(y[ok], scores[ok]))
    if per_check:
        out["check_auc"] = {k: roc_auc(y, v) for k, v in per_check.items()}
    return out


def calibration_metrics(y: np.ndarray, p: np.ndarray, bins: int = 5) -> dict:
    """How far probabilities can be taken at their word: log loss, Brier score and a reliability table.

    Each class is weighted equally, matching the even prior odds the fusion is
    calibrated to (see :func:`~detector.fusion.logistic.fit_platt`); a constant
    0.5 scores log loss 0.693 and Brier 0.25. The table lists, per probability
    bin, how many clips fell in it, their mean probability and the fraction
    of them that were fakes (counts are raw, not weighted).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    if len(set(y.tolist())) < 2:
        return {"log_loss": float("nan"), "brier": float("nan"), "reliability": []}
    w = balanced_weights(y)
    log_loss = float(np.sum(w * -(y * np.log(p) + (1 - y) * np.log(1 - p))) / w.sum())
    brier = float(np.sum(w * (p - y) ** 2) / w.sum())
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (p >= lo) & ((p < hi) if i < bins - 1 else (p <= hi))
        table.append({"from": float(lo), "to": float(hi), "clips": int(sel.sum()),
                      "mean_probability": float(p[sel].mean()) if sel.any() else None,
                      "fraction_fake": float(y[sel].mean()) if sel.any() else None})
    return {"log_loss": log_loss, "brier": brier, "reliability": table}
