"""``detector batch``: score a call archive, resumably, locally or on Dask.

Exit codes follow ``detector scan``: 0 every recording analysed, 3 some
recordings failed (their rows are in the output), 4 workers cannot load the
models, 5 bad options or the output is in use by another batch, 2 usage
(including an output that cannot be written), 130 interrupted (everything finished so far is kept; re-run to resume).
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import List, Optional

import typer

EXIT_FAILURES = 3
EXIT_INTERRUPTED = 130


def _err(msg: str, code: int) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _sigterm_as_interrupt() -> None:
    # `kill` (and a cluster scheduler's preemption) gets the same clean stop as Ctrl-C
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        pass


class _Progress:
    """Progress bar with ETA on stderr (rich), fed by the runner's callback."""

    def __init__(self, enabled: bool):
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.bar = Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("ok {task.fields[ok]} failed {task.fields[failed]} "
                                       "skipped {task.fields[skipped]}"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.task = None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def update(self, stats, outcome) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task("batch", total=stats.candidates, ok=0, failed=0, skipped=0)
        self.bar.update(self.task, completed=stats.finished, ok=stats.ok, failed=stats.failed,
                        skipped=stats.already_done + stats.not_recordings)


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch(paths: Optional[List[Path]] = typer.Argument(None, help="Files or folders (walked recursively)."),
              out: Path = typer.Option(..., "--out", help="Output JSONL; appended to and resumed from."),
              workers: int = typer.Option(2, "--workers", "-j", help="Local worker processes."),
              csv_path: Optional[Path] = typer.Option(None, "--csv", help="Also write a ranked CSV."),
              html_dir: Optional[Path] = typer.Option(None, "--html-dir", help="Write one HTML report per recording."),
              from_list: Optional[Path] = typer.Option(None, "--from-list",
                                                       help="File with one path or file:// URL per line."),
              scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                                      help="Run on a Dask cluster, e.g. tcp://host:8786."),
              dask: Optional[str] = typer.Option(None, "--dask",
                                                 help="'local': run on a Dask LocalCluster of --workers processes."),
              fps: float = typer.Option(10.0, help="Frames analysed per second of video."),
              max_faces: int = typer.Option(4, help="Most faces tracked per frame."),
              gallery: int = typer.Option(0, help="Gallery views: also search an N x N grid of windows for small "
                                                  "faces (2 for up to 4 tiles, 3 for up to 9)."),
              speaker_view: bool = typer.Option(False, "--speaker-view",
                                                help="Active-speaker recordings (the picture cuts between "
                                                     "participants' cameras): end tracks at cuts and join each "
                                                     "participant's turns by appearance."),
              auto_speaker_view: bool = typer.Option(False, "--auto-speaker-view",
                                                     help="Scan a recording again as with --speaker-view when a "
                                                          "participant's track was carried across a cut between "
                                                          "cameras (archives that mix layouts); other recordings "
                                                          "are scanned once, as by default. --timeout covers "
                                                          "both scans."),
              retry_failed: bool = typer.Option(False, "--retry-failed",
                                                help="Retry recordings that failed as corrupt/undecodable before."),
              timeout: float = typer.Option(0.0, "--timeout",
                                            help="Seconds per recording before it is given up (0: no limit)."),
              worker_log: Optional[str] = typer.Option(None, "--worker-log",
                                                       help="Local workers' stderr (default OUT.workers.log; "
                                                            "'-' for the terminal)."),
              top: int = typer.Option(10, min=0, help="How many of the most suspicious calls the summary lists."),
              progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
              quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on stdout."),
              analyzer: str = typer.Option("detector.api:Analyzer", "--analyzer", hidden=True,
                                           help="module:callable building the analyzer (testing)."),
              ) -> None:
        """Scan a whole archive of recordings into one resumable JSONL file."""
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from detector.batch.discover import WalkStats, read_path_list, walk
        from detector.batch.resume import ResultStore, read_output
        from detector.batch.runner import BatchAbortedError, BatchStats, LocalBackend, run_batch
        from detector.batch.summary import render_summary, summarize, write_csv, write_html, write_missing_html
        from detector.errors import ConfigError, DetectorError
        from detector.options import ScanOptions

        if not paths and from_list is None:
            _err("give folders/files to scan, or --from-list FILE", 2)
        if dask not in (None, "local"):
            _err("--dask takes 'local' (use --scheduler ADDRESS for a running cluster)", 2)
        if timeout < 0:
            _err("--timeout must be >= 0", 2)
        if dask and scheduler:
            _err("use either --dask local or --scheduler, not both", 2)
        # every file the run writes is checked before it scans for hours (exit 2, as `scan` does): a CSV or log
        # path that fails at the end, or in each worker as it starts, would cost the run or blame the recordings
        from detector.cli import usable_folder, usable_output

        log_path = None if worker_log == "-" else (worker_log or f"{out}.workers.log")
        usable_output(out, "--out")
        usable_output(csv_path, "--csv")
        if log_path is not None and not (scheduler or dask):  # only local workers write it
            usable_output(Path(log_path), "--worker-log")
        usable_folder(html_dir, "--html-dir")
        try:
            options = ScanOptions(analysis_fps=fps, max_faces=max_faces, gallery_grid=gallery,
                                  shot_cuts=speaker_view, speaker_view_auto=auto_speaker_view).validate()
            walk_stats = WalkStats()
            seen: set[str] = set()  # one set for both walks: a file given as an argument and listed is one file
            candidates = list(walk(paths or [], walk_stats, seen))
            if from_list is not None:
                listed = read_path_list(from_list)
                if scheduler:
                    # remote workers may see a filesystem this client does not: they decide
                    candidates.extend(listed)
                else:
                    # -> "not found" rows, named like every other row by their absolute path
                    candidates.extend(os.path.abspath(p) for p in listed if not os.path.exists(p))
                    candidates.extend(walk([p for p in listed if os.path.exists(p)], walk_stats, seen))
            if scheduler or dask:
                from detector.batch.dask_runner import DaskBackend

                backend = DaskBackend(scheduler=scheduler, local_workers=workers)
            else:
                # worker processes' native log lines go next to the output, not over the progress bar
                backend = LocalBackend(workers, log_path=log_path)
        except DetectorError as exc:
            _err(str(exc), 5)

        stats = BatchStats(skipped_reasons=dict(walk_stats.skipped))
        html_ok = [html_dir is not None]

        def on_record(o) -> None:
            if not html_ok[0] or o.status != "ok":
                return
            try:
                write_html(json.loads(o.line), html_dir)
            except ImportError as exc:
                html_ok[0] = False
                typer.secho(f"warning: HTML reports unavailable ({exc}); JSONL/CSV still written",
                            fg=typer.colors.YELLOW, err=True)
            except Exception as exc:  # one report failing to render must not stop the batch
                typer.secho(f"warning: HTML for {o.path} failed: {exc}", fg=typer.colors.YELLOW, err=True)

        _sigterm_as_interrupt()
        try:
            with ResultStore(out) as store, _Progress(progress) as bar:
                stats = run_batch(candidates, store, options, backend, factory=analyzer,
                                  retry_failed=retry_failed, stats=stats, on_progress=bar.update,
                                  on_record=on_record, timeout_s=timeout or None)
        except BatchAbortedError as exc:
            _err(str(exc), 4 if exc.code == "model_error" else 1)
        except ConfigError as exc:
            _err(str(exc), 5)
        except DetectorError as exc:
            _err(str(exc), 1)
        except OSError as exc:  # the output became unwritable after the checks above (disk full, folder gone)
            _err(f"could not write --out {out}: {exc.strerror or exc}", 2)

        rows = read_output(out).rows
        score_key = options.result_key()  # the key the run wrote its rows under
        late_error = None
        if csv_path is not None:
            try:
                write_csv(rows, csv_path, score_key)
            except OSError as exc:  # the rows are safe in --out; say so and still print the summary
                late_error = f"could not write --csv {csv_path}: {exc.strerror or exc} (the rows are in {out})"
        if html_dir is not None and html_ok[0]:
            try:
                _, html_errors = write_missing_html(rows, html_dir, score_key)
            except ImportError:
                html_errors = []  # already warned
            for e in html_errors:
                typer.secho(f"warning: HTML report failed: {e}", fg=typer.colors.YELLOW, err=True)
        if not quiet:
            from detector.cli import say

            say(render_summary(stats, summarize(rows, score_key, top), str(out), top))
        if late_error:
            _err(late_error, 2)
        if stats.interrupted:
            typer.secho("interrupted: finished work is saved; run the same command again to resume",
                        fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(EXIT_INTERRUPTED)
        if stats.failed:
            raise typer.Exit(EXIT_FAILURES)
