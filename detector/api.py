"""Library entry points: :class:`Analyzer` (models loaded once) and :func:`scan`."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace

from detector.analysis import CallAnalysis, ProgressCallback, analyse_video, landmark_options, selected_checks
from detector.checks import CHECKS, CheckContext
from detector.errors import ConfigError, InputError
from detector.faces import create_landmark_detector
from detector.fusion.model import FusionModel, FusionOptions
from detector.options import ScanOptions
from detector.report.build import build_report
from detector.report.model import Report, Verdict


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


#: the progress label of a second pass (ScanOptions.speaker_view_auto)
SECOND_PASS_LABEL = "analysing again as an active-speaker recording"
#: the progress label of a search for faces too small for the whole-frame detector (ScanOptions.small_face_search)
SMALL_FACE_PASS_LABEL = "no face scored: searching the frame again in 2x2 windows"
#: the window grid of that search (two tiles side by side, a face under a tenth of a 720p frame's width)
SMALL_FACE_GRID = 2


def _next_pass(progress: ProgressCallback | None, label: str) -> ProgressCallback | None:
    """The progress callback of another pass over the recording: from 0 to 1 again, under its own label."""
    if progress is None:
        return None
    progress(0.0, label)
    return lambda frac, _stage: progress(frac, label)


def _drop_window(features: dict[str, float]) -> None:
    """Window reducer without fusion: a report without a fusion model has no timeline to keep."""
    return None


class Analyzer:
    """Scans recordings; holds the models so a worker loads them once.

    Raises :class:`~detector.errors.ModelError` at construction when a model
    file is missing or the landmark backend cannot load, :class:`~detector.errors.InputError` subclasses from
    :meth:`scan` for files that cannot be analysed. Use as a context manager
    or call :meth:`close`.
    """

    def __init__(self, options: ScanOptions | None = None):
        self.options = (options or ScanOptions()).validate()
        checks = selected_checks(self.options)
        self.context = CheckContext()
        self.fusion: FusionModel | None = None
        try:
            for name in checks:  # learned checks share one model (one ONNX session) per worker
                cls = CHECKS[name]
                if cls.shared_model and cls.shared_model not in self.context.models:
                    self.context.models[cls.shared_model] = cls.open_model(self.options.onnx_threads)
            if self.options.use_fusion:
                self.fusion = FusionModel(FusionOptions(intra_op_threads=self.options.onnx_threads))
                if self.fusion.crop_method != self.options.crop_method():
                    # the pixel-reading checks (all but jitter, pose and expression) read the aligned crop: features
                    # of the other cropping would be scored by a model that never saw their like
                    raise ConfigError(f"the fusion model was fitted on features with crop_antialias="
                                      f"{self.fusion.crop_antialias} ({self.fusion.crop_method or 'plain warp'}), "
                                      f"this scan would crop with crop_antialias={self.options.crop_antialias} "
                                      f"({self.options.crop_method() or 'plain warp'}): set ScanOptions."
                                      f"crop_antialias to match, or refit the model (`detector train-fusion` crops "
                                      f"as the defaults do)")
                if self.fusion.checks_read and not self.fusion.checks_read & set(checks):
                    # every feature would be imputed: the probability would be the model's intercept, the same
                    # number for every recording, shown as if it were a finding
                    raise ConfigError(f"none of the checks this scan runs ({', '.join(checks) or 'none'}) is one the "
                                      f"fusion model reads ({', '.join(sorted(self.fusion.checks_read))}), so no "
                                      f"recording could be scored: add at least one of those, e.g. '+sbi' to add "
                                      f"a check to the default set")
            # Load the landmark backend once now (importing mediapipe is most of the ~0.7 s start-up): a
            # broken install fails here, before any file is read, and the first scan costs what the others do.
            # Each scan still opens its own detector, so no tracking state crosses recordings.
            create_landmark_detector(landmark_options(self.options)).close()
        except BaseException:
            self.close()  # no session is left open when one model fails to load
            raise

    def analyse(self, path: str | os.PathLike, progress: ProgressCallback | None = None,
                should_stop=None) -> CallAnalysis:
        """Measure every check on every track, without fusing (used by training and eval).

        Keeps every timeline window's features (hundreds of floats per window
        of each track), so its memory grows with the recording's length;
        :meth:`scan` keeps only each window's score.
        """
        return analyse_video(os.fspath(path), self.options, self.context, progress, should_stop)

    def scan(self, path: str | os.PathLike, progress: ProgressCallback | None = None, should_stop=None,
             shot_cuts: bool | None = None) -> Report:
        """Scan one recording. ``shot_cuts`` overrides ``options.shot_cuts`` for this recording only (the web app
        asks per upload whether it is an active-speaker recording); None keeps the analyzer's setting.

        With ``options.speaker_view_auto``, a scan without ``shot_cuts`` whose track was carried across a cut between
        cameras is run a second time with ``shot_cuts`` (decoding the file again), and the second report is
        returned, marked ``video.speaker_view_auto``; ``progress`` then runs from 0 to 1 a second time, under
        its own label. ``should_stop`` is asked in both passes: a time limit covers both.
        """
        path = os.fspath(path)
        options = self.options if shot_cuts is None else replace(self.options, shot_cuts=bool(shot_cuts))
        if os.path.isdir(path):
            raise InputError(f"is a directory, not a recording: {path}")
        if not os.path.exists(path):
            raise InputError(f"no such file: {path}")
        if not os.path.isfile(path):  # a device (/dev/null), a pipe or a socket: nothing to seek in
            raise InputError(f"not a regular file: {path}")
        t0 = time.perf_counter()
        sha = file_sha256(path) if self.options.hash_file else None
        # the scan keeps only the fusion's verdict on each timeline window, not its features
        reducer = self.fusion.score_window if self.fusion is not None else _drop_window
        analysis = analyse_video(path, options, self.context, progress, should_stop, reducer)
        crossed, first_pass = None, None
        if options.speaker_view_auto and not options.shot_cuts and analysis.cuts_crossed:
            # two people may sit in one track: scanning with cuts ending tracks keeps them apart (measured on
            # composed calls: experiments/README.md, sessions 14 and 16)
            crossed, first_pass = list(analysis.cuts_crossed), analysis.timings.get("analysis")
            analysis = None  # the first pass's tracks are not held while the second one runs
            options = replace(options, shot_cuts=True)
            analysis = analyse_video(path, options, self.context, _next_pass(progress, SECOND_PASS_LABEL),
                                     should_stop, reducer)
        report = build_report(analysis, self.fusion, sha256=sha, crossed_first=crossed)
        if (options.small_face_search and options.gallery_grid < SMALL_FACE_GRID and report.probability is None
                and report.verdict in (Verdict.no_face, Verdict.insufficient_evidence)):
            # Face Mesh's detector sees the whole frame at 128 px, so a face under about a tenth of the frame's
            # width (two people side by side, a small window in a wide recording) is found late or never: search
            # the frame in windows as a gallery scan does. Recordings that scored a participant never pay for this
            previous = (first_pass or 0.0) + analysis.timings.get("analysis", 0.0)
            analysis = None
            options = replace(options, gallery_grid=SMALL_FACE_GRID)
            analysis = analyse_video(path, options, self.context, _next_pass(progress, SMALL_FACE_PASS_LABEL),
                                     should_stop, reducer)
            report = build_report(analysis, self.fusion, sha256=sha, crossed_first=crossed, small_face_search=True)
            first_pass = previous
        if first_pass is not None:
            report.timings_s["first_pass"] = round(first_pass, 3)
        report.timings_s["total"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(1.0, "done")
        return report

    def close(self) -> None:
        for m in self.context.models.values():
            m.close()
        self.context.models.clear()
        if self.fusion is not None:
            self.fusion.close()

    def __enter__(self) -> "Analyzer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scan(path: str | os.PathLike, options: ScanOptions | None = None,
         progress: ProgressCallback | None = None) -> Report:
    """Scan one recording and return its :class:`Report`."""
    with Analyzer(options) as analyzer:
        return analyzer.scan(path, progress)
