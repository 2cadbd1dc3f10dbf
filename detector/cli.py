"""Command-line interface: a thin layer over the library.

Typed library errors become exit codes and one clear message:
0 success, 2 usage, 3 bad input, 4 model problem, 5 bad options,
1 any other detector error.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from detector.errors import ConfigError, DetectorError, InputError, ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Catch face-swap deepfakes in recorded video interviews.")

EXIT_CODES = ((InputError, 3), (ModelError, 4), (ConfigError, 5), (DetectorError, 1))


def fail(exc: DetectorError) -> None:
    code = next(c for t, c in EXIT_CODES if isinstance(exc, t))
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _quiet_native_logs() -> None:
    """Keep MediaPipe/TFLite's C++ log lines off the terminal.

    absl and glog write straight to file descriptor 2, ignoring Python's
    ``sys.stderr``; their warnings are noise to a user. Point fd 2 at
    /dev/null and give Python a private copy of the real stderr, so our own
    messages (and tracebacks) still show. ``DETECTOR_DEBUG=1`` keeps them all.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("DETECTOR_DEBUG") or getattr(_quiet_native_logs, "done", False):
        return
    if sys.stderr is not sys.__stderr__:  # captured (test runner, embedding app): not ours to rewire
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(real, "w", buffering=1)
        _quiet_native_logs.done = True  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):  # no real fd 2 (e.g. under a test runner): leave it
        pass


def _parse_checks(text: str | None) -> tuple[str, ...] | None:
    """'a,b' -> ('a', 'b'); '+sbi' adds to the default set."""
    if not text:
        return None
    from detector.checks import DEFAULT_CHECKS

    names = tuple(n.strip() for n in text.lstrip("+").split(",") if n.strip())
    return tuple(dict.fromkeys(DEFAULT_CHECKS + names)) if text.startswith("+") else names


CHECKS_HELP = "Checks to run, comma-separated, or '+sbi' to add the learned check to the default set."


# the CLI imports no numpy-heavy module at start-up; tests check this equals detector.evaluation.DEFAULT_LINK_NOTE
DEFAULT_LINK_NOTE = "celeb model"
LINK_NOTE_HELP = ("Link footage groups whose clips carry the same note, among notes starting with this (the dev "
                  "manifest notes each DeepFaceLive fake's face as 'celeb model NAME'), so grouped CV does not score a "
                  "fake on a face named there that it was fitted on. '' links nothing.")


COPIES_HELP = ("Fit the fusion also on re-encoded copies of each clip (H.264 CRF 32, 0.5 and 0.85 of the size, VP9; "
               "about 5x the extraction time). The default, as the shipped model was fitted; --no-copies fits on the "
               "clips alone.")


GALLERY_HELP = "Gallery views: also search an N x N grid of windows for small faces (2 for up to 4 tiles, 3 for 9)."
SPEAKER_VIEW_HELP = ("Active-speaker recordings, where the picture cuts from one participant's camera to another's: "
                     "end every track at a cut and join each participant's turns by appearance. A person whose "
                     "picture changes between turns (a moving camera, other light) may be listed twice.")
AUTO_SPEAKER_VIEW_HELP = ("Scan a recording again as with --speaker-view when a participant's track was carried "
                          "across a cut between cameras (an active-speaker recording; such a recording costs two "
                          "scans). Recordings without such a cut are scanned once, as by default.")


def _folder_problem(folder: Path, made: str = "") -> str | None:
    """Why ``folder`` cannot take new files (it is made if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{made}cannot be made ({exc.strerror or exc})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "cannot be written (permission denied)"
    return None


def _refuse(option: str, path: Path, problem: str | None) -> None:
    if problem:
        typer.secho(f"error: {option} {path}: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


def usable_output(path: Path | None, option: str) -> None:
    """Refuse, before a scan that may take minutes, a report path that could not be written afterwards (exit 2).
    A missing folder is made, as ``batch --out`` makes it."""
    if path is None:
        return
    if path.is_dir():
        problem = "is a folder; give a file name"
    else:
        problem = _folder_problem(path.parent, made="its folder ")
        if problem is None and path.exists() and not os.access(path, os.W_OK):
            problem = "cannot be written (permission denied)"
    _refuse(option, path, problem)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def distinct_outputs(outputs: dict[str, Path | None], inputs: List[Path]) -> None:
    """Refuse (exit 2) a report path that names one of the recordings, which writing it would destroy, or
    that two options share, where one report would silently replace the other."""
    named = [(option, path) for option, path in outputs.items() if path is not None]
    for i, (option, path) in enumerate(named):
        if any(_same_file(path, f) for f in inputs):
            _refuse(option, path, "is one of the recordings to scan; writing the report there would overwrite it")
        for other, other_path in named[:i]:
            if _same_file(path, other_path):
                _refuse(option, path, f"is also given to {other}; give each report its own file")


def remove_stale(path: Path | None, option: str) -> None:
    """Remove an earlier report at an output path this run wrote nothing to (every scan failed), as compilers
    delete a failed build's output: left in place, it would be read as this recording's report."""
    if path is None or not path.is_file():
        return
    try:
        path.unlink()
    except OSError as exc:
        typer.secho(f"warning: {option} {path} still holds an earlier report ({exc.strerror or exc})",
                    fg=typer.colors.YELLOW, err=True)
    else:
        typer.secho(f"note: removed {option} {path}, an earlier report, so that it is not taken for this scan's",
                    err=True)


def usable_folder(path: Path | None, option: str) -> None:
    """Refuse, before the work, a folder of outputs that could not be written (made if missing; exit 2)."""
    if path is None:
        return
    _refuse(option, path, "is a file; give a folder" if path.exists() and not path.is_dir() else _folder_problem(path))


def say(text: str) -> bool:
    """Print to stdout. A reader that went away (``| head -1``) stops the printing, not the work: the reports
    still go to their files and the exit code still says how the scans went. False once stdout is gone."""
    try:
        typer.echo(text)
        return True
    except BrokenPipeError:
        # Python would raise again when it flushes stdout at exit; point it at /dev/null (as the docs advise)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return False


def _write_output(path: Path, text: str, option: str) -> None:
    """Write a report file; a failure now (disk full, the folder gone) is one clear message and exit 2."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.secho(f"error: could not write {option} {path}: {exc.strerror or exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)


def _options(fps: float, max_faces: int, checks: str | None = None, gallery: int = 0, speaker_view: bool = False,
             auto_speaker_view: bool = False):
    from detector.options import ScanOptions

    return ScanOptions(analysis_fps=fps, max_faces=max_faces, checks=_parse_checks(checks), gallery_grid=gallery,
                       shot_cuts=speaker_view, speaker_view_auto=auto_speaker_view)


@app.command()
def scan(files: List[Path] = typer.Argument(..., help="Recordings to scan."),
         json_path: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON; for several files a list of the reports of those that could be scanned (each names its file in video.path; the others are named on stderr)."),
         html_path: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report (one file only)."),
         fps: float = typer.Option(10.0, help="Frames analysed per second of video."),
         max_faces: int = typer.Option(4, help="Most faces tracked per frame (raise for gallery views)."),
         checks: Optional[str] = typer.Option(None, help=CHECKS_HELP),
         gallery: int = typer.Option(0, help=GALLERY_HELP),
         speaker_view: bool = typer.Option(False, "--speaker-view", help=SPEAKER_VIEW_HELP),
         auto_speaker_view: bool = typer.Option(False, "--auto-speaker-view", help=AUTO_SPEAKER_VIEW_HELP),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stdout.")) -> None:
    """Scan recordings and print a verdict per call."""
    _quiet_native_logs()
    from detector.api import Analyzer

    if html_path is not None and len(files) != 1:
        typer.secho("error: --html takes exactly one recording", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    usable_output(json_path, "--json")
    usable_output(html_path, "--html")
    distinct_outputs({"--json": json_path, "--html": html_path}, files)
    from detector.report.text import render_text

    reports, failed, internal = [], 0, 0
    try:
        analyzer = Analyzer(_options(fps, max_faces, checks, gallery, speaker_view, auto_speaker_view))
    except DetectorError as exc:
        fail(exc)
    with analyzer:
        for f in files:
            try:
                report = analyzer.scan(f)
            except InputError as exc:
                failed += 1
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
                continue
            except DetectorError as exc:
                fail(exc)
            except Exception as exc:  # a bug must not cost the other recordings their results
                failed += 1
                internal += 1
                typer.secho(f"error: internal error while analysing {f}: {type(exc).__name__}: {exc}",
                            fg=typer.colors.RED, err=True)
                if os.environ.get("DETECTOR_DEBUG"):
                    raise
                continue
            reports.append(report)
            if not quiet:
                quiet = not say(render_text(report))
    if not reports:
        remove_stale(json_path, "--json")
        remove_stale(html_path, "--html")
    if json_path is not None and reports:
        text = reports[0].to_json() if len(files) == 1 else "[" + ",\n".join(r.to_json() for r in reports) + "]"
        _write_output(json_path, text, "--json")
    if html_path is not None and reports:
        from detector.report.html import render_html

        _write_output(html_path, render_html(reports[0]), "--html")
    if failed:
        raise typer.Exit(1 if internal else 3)


@app.command("eval")
def eval_cmd(manifest: Path = typer.Argument(..., help="CSV with path,label[,source,method,group,note]."),
             out: Path = typer.Option(..., "--out", help="Directory for scores.csv and metrics.json."),
             workers: int = typer.Option(2, help="Worker processes."),
             fps: float = typer.Option(10.0, help="Frames analysed per second of video."),
             cv: bool = typer.Option(True, help="Score by grouped cross-validation of the fusion (honest on "
                                                 "the fusion's own training manifest); --no-cv uses the shipped model."),
             checks: Optional[str] = typer.Option(None, help=CHECKS_HELP),
             link_note: str = typer.Option(DEFAULT_LINK_NOTE, help=LINK_NOTE_HELP),
             crop_antialias: bool = typer.Option(True, help="Anti-aliased face crops (the default); "
                                                            "--no-crop-antialias reproduces features from before "
                                                            "session 10 (cross-validation only)."),
             copies: bool = typer.Option(True, help=COPIES_HELP),
             copies_dir: Optional[Path] = typer.Option(None, help="Where the re-encoded copies go (default "
                                                                  "OUT/copies; copies found there are reused)."),
             speaker_view: bool = typer.Option(False, "--speaker-view", help=SPEAKER_VIEW_HELP)
             ) -> None:
    """Score a labelled manifest and print ROC AUC, accuracy and FPR."""
    _quiet_native_logs()
    from detector.eval_cli import run_eval
    from detector.fusion.augment import TRAINING_COPIES

    usable_folder(out, "--out")
    try:
        text = run_eval(manifest, out, workers=workers, fps=fps, cv=cv, checks=_parse_checks(checks),
                        link_note=link_note, crop_antialias=crop_antialias,
                        copies=TRAINING_COPIES if copies else (), copies_dir=copies_dir,
                        progress=_clip_progress, copy_progress=_copy_progress, speaker_view=speaker_view)
    except DetectorError as exc:
        fail(exc)
    typer.echo(text)


def _clip_progress(n: int, total: int, clip) -> None:
    typer.echo(f"[{n}/{total}] {clip.row.rel_path}" + (f"  ({clip.error})" if clip.error else ""), err=True)


def _copy_progress(n: int, total: int, path: str, error: str | None) -> None:
    typer.echo(f"[copy {n}/{total}] {path}" + (f"  ({error})" if error else ""), err=True)


@app.command("train-fusion")
def train_fusion(manifest: Path = typer.Argument(..., help="Labelled manifest to fit on."),
                 out: Path = typer.Option(None, help="ONNX path (default models/fusion.onnx)."),
                 workers: int = typer.Option(2),
                 fps: float = typer.Option(10.0),
                 cache: Path = typer.Option(Path(".cache/features.jsonl"), help="Feature cache (JSONL)."),
                 checks: Optional[str] = typer.Option(None, help=CHECKS_HELP),
                 link_note: str = typer.Option(DEFAULT_LINK_NOTE, help=LINK_NOTE_HELP),
                 copies: bool = typer.Option(True, help=COPIES_HELP),
                 copies_dir: Optional[Path] = typer.Option(None, help="Where the re-encoded copies go (default: "
                                                                      "copies/ beside the cache; reused).")) -> None:
    """Refit the fusion model with grouped cross-validation; writes ONNX, metadata and model card."""
    _quiet_native_logs()
    from detector.fusion.augment import TRAINING_COPIES
    from detector.fusion.train import train

    usable_output(out, "--out")
    usable_output(cache, "--cache")
    try:
        text = train(manifest, out, workers=workers, fps=fps, cache=cache, checks=_parse_checks(checks),
                     link_note=link_note, copies=TRAINING_COPIES if copies else (), copies_dir=copies_dir,
                     progress=_clip_progress, copy_progress=_copy_progress)
    except DetectorError as exc:
        fail(exc)
    typer.echo(text)


@app.command()
def bench(file: Path = typer.Argument(..., help="Recording to benchmark on."),
          fps: float = typer.Option(10.0, help="Frames analysed per second of video."),
          speaker_view: bool = typer.Option(False, "--speaker-view", help=SPEAKER_VIEW_HELP),
          rounds: int = typer.Option(1, help="Scan the file this many times and add the median and range of the "
                                              "real-time factor and CPU time over the scans.")) -> None:
    """Analysed fps, real-time factor, ratio to decode-only throughput, peak RSS."""
    _quiet_native_logs()
    from detector.bench import run_bench

    try:
        typer.echo(run_bench(file, fps=fps, speaker_view=speaker_view, rounds=rounds))
    except DetectorError as exc:
        fail(exc)


#: sub-apps living in their own packages, listed explicitly (module, what they add)
SUBCOMMANDS = (("detector.web.cli", "serve"), ("detector.batch.cli", "batch"))


def _register_optional() -> None:
    import importlib

    for module, what in SUBCOMMANDS:
        try:
            importlib.import_module(module).register(app)
        except ImportError as exc:  # one broken extra must not take the others (or scan) down
            if os.environ.get("DETECTOR_DEBUG"):
                print(f"'{what}' unavailable: {exc}", file=sys.stderr)


_register_optional()

if __name__ == "__main__":  # pragma: no cover
    app()
