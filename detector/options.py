"""Scan settings. Everything that can change a score lives here, so that a
batch run can key its cache on :meth:`ScanOptions.result_key`."""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from detector.errors import ConfigError

# Bump when a check's arithmetic or how features are summarised changes: cached features and batch results
# computed by an older analysis are then recomputed, not reused.
ANALYSIS_VERSION = "5"

# Bump when a report says something else for the same features and models: a new caveat, another verdict or
# evidence rule, a field that changes what a reader concludes. Batch results (keyed by :meth:`ScanOptions.result_key`)
# made by an older report are then rescanned instead of resumed; cached features are not, since they do not change.
# 2: the caveat for a recording that stops early (session 20), and a live-written Matroska file's length taken from
# its decoded frames rather than FFmpeg's bitrate guess (session 21).
# 3: a scan that scores nobody searches again for small faces (ScanOptions.small_face_search), and an MPEG-TS
# recording's times are counted from its start (session 24).
REPORT_VERSION = "3"


@functools.lru_cache(maxsize=8)
def _models_fingerprint(folder: str, files: tuple[tuple[str, int, int], ...]) -> str:
    """Hash of the model files' bytes; cached by their names, mtimes and sizes, since batch workers ask per recording."""
    h = hashlib.sha256()
    for name, _, _ in files:
        h.update(name.encode())
        h.update(hashlib.sha256((Path(folder) / name).read_bytes()).digest())
    return h.hexdigest()


@dataclass
class ScanOptions:
    analysis_fps: float = 10.0  # frames per second analysed (sampled on true timestamps)
    max_side: int = 1280  # frames larger than this are downscaled before analysis
    max_faces: int = 4  # raise for gallery views with more tiles
    gallery_grid: int = 0  # >1: also search an n x n grid of windows (small faces of gallery views)
    # while a face is tracked, look for further faces (someone joining, a tile lit up) at most this often, in
    # seconds; None: on every analysed frame, as MediaPipe does by itself (the default until session 18). A
    # face that is lost is searched for on every frame either way (detector.faces.landmarks.LandmarkOptions)
    new_face_search_s: float | None = 1.0
    checks: tuple[str, ...] | None = None  # None: detector.checks.DEFAULT_CHECKS
    min_track_seconds: float = 2.0  # less face time than this: insufficient evidence
    min_track_frames: int = 12
    window_s: float = 4.0  # timeline window
    hop_s: float = 2.0
    evidence_count: int = 6
    hash_file: bool = True  # sha256 of the input, for audit trails and batch resume
    use_fusion: bool = True  # False: features only (used to (re)train the fusion)
    queue_size: int = 8  # decoded frames buffered between decode and analysis
    onnx_threads: int = 1
    # a face larger than the aligned crop is blurred to the crop's scale before the warp, which would alias it
    # (the default since session 10; False reproduces earlier features, which the shipped fusion does not fit)
    crop_antialias: bool = True
    # active-speaker recordings: a face after a hard cut (the picture switching cameras) starts a new track, and
    # the tracks of one participant are joined again by appearance (detector.faces.shots, detector.faces.linking).
    # Off by default: on composed speaker-view calls it joined too few turns to pass the rule set for a default
    # (experiments/README.md, session 14)
    shot_cuts: bool = False
    # a scan without shot_cuts whose track is carried across a cut (two people in one place, one after the other:
    # an active-speaker recording) is run again with shot_cuts, and that report is returned. A recording without
    # such a cut is scanned once, exactly as without the setting (Analyzer.scan; Analyzer.analyse ignores it)
    speaker_view_auto: bool = False
    # a scan (without gallery_grid) that scores no participant is run again searching 2x2 windows of the frame as
    # well, for faces too small for the whole-frame detector (two people side by side, a small picture in a wide
    # recording), and that report is returned, marked video.small_face_search. Scored recordings are scanned once
    small_face_search: bool = True

    def validate(self) -> "ScanOptions":
        # a rate is turned into an exact Fraction for the sampling clock: infinity has none
        if not 0 < self.analysis_fps < float("inf"):
            raise ConfigError("analysis_fps must be a positive, finite number")
        if self.max_side < 64:
            raise ConfigError("max_side must be at least 64")
        if self.checks is not None and not tuple(self.checks):
            raise ConfigError("no checks selected: name at least one check (or leave the default set)")
        if not 1 <= self.max_faces <= 16:
            raise ConfigError("max_faces must be between 1 and 16")
        if not 0 <= self.gallery_grid <= 4:
            raise ConfigError("gallery_grid must be between 0 and 4")
        if self.new_face_search_s is not None and (isinstance(self.new_face_search_s, bool)
                                                   or not 0 < self.new_face_search_s < float("inf")):
            raise ConfigError("new_face_search_s must be positive and finite, or None to search on every frame")
        if not 0 < self.hop_s <= self.window_s < float("inf"):
            raise ConfigError("need 0 < hop_s <= window_s, both finite")
        return self

    def crop_method(self) -> str | None:
        """How faces are cropped, as fusion metadata records it: None for the plain bilinear warp."""
        if not self.crop_antialias:
            return None
        from detector.faces.regions import SOURCE_BLUR_PX  # late import, as below

        return f"gaussian, source blur {SOURCE_BLUR_PX} px"

    def score_key(self) -> str:
        """Hash of the settings that affect scores (not of performance knobs)."""
        d = asdict(self)
        for k in ("hash_file", "queue_size", "onnx_threads", "evidence_count"):
            d.pop(k)
        if d["crop_antialias"]:  # the key names how crops are blurred: another blur is other features
            d["crop_antialias"] = self.crop_method()
        else:  # plain-warp features keep the key they had before the setting existed
            d.pop("crop_antialias")
        if d["new_face_search_s"] is None:  # searching every frame, as before the setting existed: the key it had
            d.pop("new_face_search_s")
        else:  # 1 and 1.0 are one schedule
            d["new_face_search_s"] = float(d["new_face_search_s"])
        if not d["shot_cuts"]:  # tracks as they were before cuts were detected: the key they had then
            d.pop("shot_cuts")
        # a setting added later: off, the key it had before; with shot_cuts on it changes nothing, so no key either
        if not d["speaker_view_auto"] or self.shot_cuts:
            d.pop("speaker_view_auto")
        # like speaker_view_auto, it chooses which scan a report is of, not what a scan measures; on (the default)
        # it keeps the key features were cached under before it existed
        if d["small_face_search"]:
            d.pop("small_face_search")
        from detector.checks import DEFAULT_CHECKS  # late import: checks import options indirectly

        d["checks"] = sorted(DEFAULT_CHECKS) if self.checks is None else sorted(self.checks)
        d["analysis_version"] = ANALYSIS_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def result_key(self) -> str:
        """:meth:`score_key` plus the content of the bundled model files (``models/*.onnx`` and ``*.json``) and
        :data:`REPORT_VERSION`.

        A report depends on the models and on how reports are written as well as on the settings: batch runs
        reuse an earlier result only under this key, so retraining the fusion, or a release whose reports warn
        of something older ones did not, re-scores an archive instead of keeping reports the new code would not
        write. (Cached *features*, which neither touches, stay keyed by :meth:`score_key`.)
        """
        from detector.paths import models_dir  # late import, as above

        folder = models_dir()
        files = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                      for p in sorted([*folder.glob("*.onnx"), *folder.glob("*.json")]))
        return hashlib.sha256((self.score_key() + _models_fingerprint(str(folder), files)
                               + f"|report {REPORT_VERSION}").encode()).hexdigest()[:16]

    def feature_settings(self) -> dict:
        """The settings that define what a track's features measure, as fusion metadata records them (with the
        analysis code's version): a fusion model's probabilities are calibrated for features measured this way,
        and a scan that measures otherwise gets a caveat (:meth:`FusionModel.setting_differences`). How faces are
        cropped and which checks run are compared apart (``crop``, the model's feature names). The settings that
        choose which faces are analysed and when they are found (``max_faces``, ``gallery_grid``,
        ``new_face_search_s``, ``shot_cuts``, ``speaker_view_auto``) are not here: they are the modes the tool
        offers for other layouts, and what a gallery tile does to a face's score is measured and caveated
        separately (experiments/README.md, "Genuine gallery-view calls")."""
        return {"analysis_fps": float(self.analysis_fps), "window_s": float(self.window_s),
                "hop_s": float(self.hop_s), "max_side": float(self.max_side), "analysis_version": ANALYSIS_VERSION}

    def to_dict(self) -> dict:
        return asdict(self)
