"""Re-encoded copies of the training clips, so the fusion learns what re-encoding does to genuine faces.

Interview recordings reach the detector after another encoder has had them: a
meeting platform's cloud recording at a low bit rate, a browser's VP8/VP9
capture, a smaller recording window. Every dev clip comes from one encoder
setting per source, so a fusion fitted on them alone reads the extra softness
of a re-encoded or smaller genuine face as a swap: on re-encoded and shrunk
copies of the dev clips its false-positive rate rose from 8% to 11-16%
(``experiments/reencode_probe.py``). Fitting it on each training clip *and* a
few re-encoded copies of it (labelled as the clip is) teaches it which
differences re-encoding makes; measured under grouped CV that held the
false-positive rate at or below 10.5% on every version, including two recipes
it was not fitted on (``experiments/README.md``, sessions 10 and 11).

A copy shares its original's group, so grouped cross-validation never fits on
a copy of a clip it scores. The recipes were fixed before any was measured.
Copies are cut from the manifest's clips: they go to a directory the caller
names (``detector eval`` writes them under its output directory), never into
the repository.
"""
from __future__ import annotations

import hashlib
import itertools
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable

import av
import numpy as np

from detector.errors import ConfigError, CorruptVideoError, InputError, NotAVideoError
from detector.fusion.logistic import roc_auc
from detector.video.pyav_source import _apply_rotation, _rotation_of, timed_frames


@dataclass(frozen=True)
class ReencodeRecipe:
    """How one copy is made: an FFmpeg encoder, its container, a size factor and the encoder's options."""

    codec: str
    suffix: str  # container, by file extension
    scale: float  # of the displayed width and height
    options: tuple[tuple[str, str], ...]
    description: str
    mirror: bool = False  # flip every frame left to right (the same footage lit and posed the other way round)


#: every recipe: the first six fixed before any was measured (``experiments/reencode_probe.py`` scores them);
#: ``h264_mirror`` added in session 16 and not fitted on (``experiments/README.md``, "Mirrored copies")
RECIPES: dict[str, ReencodeRecipe] = {
    "h264_crf23": ReencodeRecipe("libx264", ".mp4", 1.0, (("crf", "23"), ("preset", "veryfast")),
                                 "H.264 at CRF 23, same size (one more generation of re-encoding)"),
    "h264_crf32": ReencodeRecipe("libx264", ".mp4", 1.0, (("crf", "32"), ("preset", "veryfast")),
                                 "H.264 at CRF 32, same size (a low-bandwidth cloud recording)"),
    "h264_scale070": ReencodeRecipe("libx264", ".mp4", 0.7, (("crf", "23"), ("preset", "veryfast")),
                                    "0.7 of the size, H.264 at CRF 23 (a smaller recording window)"),
    "h264_scale050": ReencodeRecipe("libx264", ".mp4", 0.5, (("crf", "23"), ("preset", "veryfast")),
                                    "half the size, H.264 at CRF 23"),
    "h264_scale085": ReencodeRecipe("libx264", ".mp4", 0.85, (("crf", "23"), ("preset", "veryfast")),
                                    "0.85 of the size, H.264 at CRF 23"),
    "vp9": ReencodeRecipe("libvpx-vp9", ".webm", 1.0,
                          (("crf", "40"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8")),
                          "VP9 at constant quality 40 in WebM (a browser capture)"),
    # near-transparent CRF 18, so that the copy differs from its clip by the mirroring rather than by
    # another encoder generation (CRF 23 is held out of fitting as a test of unseen re-encoding)
    "h264_mirror": ReencodeRecipe("libx264", ".mp4", 1.0, (("crf", "18"), ("preset", "veryfast")),
                                  "mirrored left to right, H.264 at CRF 18, same size", mirror=True),
}

#: the recipes the fusion is fitted on; CRF 23 and 0.7 of the size stay out, so probes can test on
#: versions the fusion never saw
TRAINING_COPIES: tuple[str, ...] = ("h264_crf32", "h264_scale050", "h264_scale085", "vp9")


def check_recipes(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or :class:`ConfigError` naming the unknown ones."""
    names = tuple(names)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise ConfigError(f"unknown re-encoding recipe(s) {unknown}; known: {sorted(RECIPES)}")
    return names


def copy_path(root: str | os.PathLike, recipe: str, source: str | os.PathLike) -> Path:
    """Where the copy of the recording at ``source`` made by ``recipe`` lives under ``root``.

    Named by a hash of the source's resolved path and of the recipe's settings,
    then the source's whole file name (``x.mp4`` -> ``ab12.../x.mp4.webm``):
    clips of one name in different folders, or with different extensions, or
    from different manifests sharing ``root``, never share a copy, a copy made
    under other settings is never taken for this one, and a second run finds
    the copies of the first.
    """
    r = RECIPES[recipe]
    src = Path(source).resolve()
    # a mirrored recipe adds to the key; the others keep theirs, so copies already made are found again
    settings = f"{src}\n{recipe}\n{r.codec}\n{r.scale}\n{r.options}" + ("\nmirror" if r.mirror else "")
    key = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return Path(root) / recipe / key / (src.name + r.suffix)


def reencode(src: str | os.PathLike, dst: str | os.PathLike, recipe: str) -> Path:
    """Decode ``src`` and encode every frame again by ``recipe`` into ``dst``; returns ``dst``.

    Each frame keeps its presentation timestamp in the source's time base, so a
    variable-frame-rate recording stays one; a frame without a timestamp gets
    the previous one plus a frame at the declared rate, and broken packets are
    skipped, as :class:`~detector.video.pyav_source.PyAVSource` reads them. A
    rotated recording is turned upright first (the copy carries no rotation
    tag), then mirrored if the recipe says so. The copy is written under a temporary name and renamed when
    complete, so an interrupted run never leaves a partial file that a later
    run would take as done.

    Raises :class:`~detector.errors.InputError` (or its :class:`NotAVideoError`)
    when ``src`` is missing or has no video stream, :class:`CorruptVideoError`
    when nothing in it decodes or encoding or writing the copy fails,
    :class:`ConfigError` when this PyAV build lacks the recipe's encoder, and
    ``OSError`` when ``dst``'s folder cannot be made.
    """
    r = RECIPES[check_recipes([recipe])[0]]
    if not Path(src).is_file():
        raise InputError(f"no such file: {src}")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.stem + ".partial" + dst.suffix)
    try:
        with av.open(str(src)) as inp:
            if not inp.streams.video:
                raise NotAVideoError(f"no video stream in {src}")
            sin = inp.streams.video[0]
            tb = sin.time_base or Fraction(1, 90000)  # a raw stream may declare none
            # the frames and times a scan reads (broken packets skipped; the rest, if truncated, copied as read)
            frames = timed_frames(inp, sin, SimpleNamespace(decode_errors=0, truncated=False, decoded_frames=0))
            first = next(frames, None)
            if first is None:
                raise CorruptVideoError(f"no decodable video frame in {src}")
            rotation = _rotation_of(sin, first[1])
            width, height = sin.codec_context.width, sin.codec_context.height
            if rotation in (90, 270):
                width, height = height, width
            # even sizes: yuv420p needs them
            w = max(2, int(round(width * r.scale / 2)) * 2)
            h = max(2, int(round(height * r.scale / 2)) * 2)
            with av.open(str(partial), "w") as out:
                try:
                    sout = out.add_stream(r.codec, rate=sin.average_rate or Fraction(30), options=dict(r.options))
                except ValueError as exc:  # av.codec.codec.UnknownCodecError
                    raise ConfigError(f"recipe {recipe} needs the {r.codec} encoder, which this PyAV build "
                                      f"lacks: {exc}") from exc
                sout.width, sout.height, sout.pix_fmt = w, h, "yuv420p"
                # the encoder's clock is the source's too: at its default (1 / the average rate) the stamps of
                # a variable-frame-rate recording would round onto one tick and be refused
                sout.time_base = sout.codec_context.time_base = tb
                last = None
                for _, frame, seconds in itertools.chain([first], frames):
                    pts = round(seconds / tb)
                    if last is not None and pts <= last:
                        continue  # two times within one tick of the source's clock: encoders need them increasing
                    last = pts
                    if rotation or r.mirror:
                        upright = _apply_rotation(frame.to_ndarray(format="rgb24"), rotation)
                        if r.mirror:
                            upright = np.ascontiguousarray(upright[:, ::-1])
                        frame2 = av.VideoFrame.from_ndarray(upright, format="rgb24").reformat(
                            width=w, height=h, format="yuv420p")
                    else:
                        frame2 = frame.reformat(width=w, height=h, format="yuv420p")
                    frame2.pts, frame2.time_base = pts, tb
                    for packet in sout.encode(frame2):
                        out.mux(packet)
                for packet in sout.encode():
                    out.mux(packet)
        os.replace(partial, dst)
    except av.error.FFmpegError as exc:
        raise CorruptVideoError(f"could not re-encode {src} into {dst.name} ({recipe}): {exc}") from exc
    finally:
        if partial.exists():
            partial.unlink()
    return dst


def _make_one(job: tuple[str, str, str]) -> tuple[str, str | None]:
    """(copy path, error or None); a clip that cannot be re-encoded leaves no copy, and its row scores as unusable."""
    src, dst, recipe = job
    try:
        reencode(src, dst, recipe)
        return dst, None
    except (InputError, ConfigError, OSError) as exc:
        return dst, f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"


def make_copies(rows: list, root: str | os.PathLike, recipes: Iterable[str] = TRAINING_COPIES, workers: int = 1,
                progress: Callable[[int, int, str, str | None], None] | None = None) -> list:
    """One manifest row per clip and recipe, pointing at its copy under ``root`` (made unless it exists).

    ``rows`` are :class:`~detector.evaluation.ManifestRow`; each copy's row keeps
    its clip's label, source, method, group and note, and its ``rel_path`` reads
    ``RECIPE/PATH``. Rows come recipe by recipe, clips in ``rows`` order, and
    every clip gets its row even when its copy could not be made (its file is
    then missing, and the caller scores the row as unusable), so every group
    holds the same number of copies per clip and grouped folds fall as they
    do on the originals alone. Two rows for one source and recipe get one copy.
    """
    recipes = check_recipes(recipes)
    root = Path(root).resolve()  # rows hold absolute paths, as the manifest's do, so caches outlive the cwd
    copies = [replace(r, path=str(copy_path(root, name, r.path)), rel_path=f"{name}/{r.rel_path}")
              for name in recipes for r in rows]
    sources = [r.path for name in recipes for r in rows]
    # one job per copy file: a source listed twice must not have two encoders writing one file
    jobs = list({c.path: (src, c.path, c.rel_path.split("/", 1)[0]) for src, c in zip(sources, copies)
                 if not Path(c.path).is_file()}.values())
    total = len({c.path for c in copies})
    if jobs:
        done = total - len(jobs)
        if workers <= 1:
            results = map(_make_one, jobs)
            pool = None
        else:
            # spawn, not fork: the caller may already hold onnxruntime's threads
            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
            results = pool.map(_make_one, jobs)
        try:
            for path, error in results:
                done += 1
                if progress is not None:
                    progress(done, total, path, error)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return copies


def copy_metrics(y: np.ndarray, scores: np.ndarray, version: np.ndarray, names: list[str], high: float) -> dict:
    """Per recipe: AUC, false- and true-positive rate at ``high``, and the mean rise of genuine clips' P.

    ``version`` gives each row's recipe index into ``names`` (0: the originals,
    which must come first, copies in the same clip order after them). Scores are
    the out-of-fold probabilities of the eval, so a copy is scored by a model
    that never saw its clip nor any copy of it.
    """
    y, scores, version = np.asarray(y), np.asarray(scores, dtype=np.float64), np.asarray(version)
    n = int((version == 0).sum())
    base = scores[:n]
    out = {}
    for v, name in enumerate(names):
        if v == 0:
            continue
        sel = version == v
        yv, sv = y[sel], scores[sel]
        ok = np.isfinite(sv)
        both = ok & np.isfinite(base) & (yv == 0)
        gen, fake = ok & (yv == 0), ok & (yv == 1)
        out[name] = {
            "scored": int(ok.sum()),
            "auc": roc_auc(yv, sv),
            "fpr_at_high": float((sv[gen] >= high).mean()) if gen.any() else float("nan"),
            "tpr_at_high": float((sv[fake] >= high).mean()) if fake.any() else float("nan"),
            "genuine_p_rise": float((sv[both] - base[both]).mean()) if both.any() else float("nan"),
        }
    return out
