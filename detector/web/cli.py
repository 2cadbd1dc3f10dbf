"""``detector serve``: the web app on one command, SQLite under --data-dir."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional

import typer

from detector.web.settings import TOKEN_ENV


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 shares it on the network)."),
              port: int = typer.Option(8000, help="TCP port."),
              data_dir: Path = typer.Option(Path("detector-data"), "--data-dir",
                                            help="Where uploads and the SQLite job database live."),
              max_upload_mb: int = typer.Option(2048, "--max-upload-mb", help="Largest accepted upload, in MiB."),
              workers: int = typer.Option(1, help="Recordings analysed at the same time (each loads its own models)."),
              fps: float = typer.Option(10.0, help="Frames analysed per second of video."),
              max_faces: int = typer.Option(4, help="Most faces tracked per frame (9 for 3x3 gallery views)."),
              gallery: int = typer.Option(0, help="Also search an N x N grid of windows for the small faces of "
                                                  "gallery-view recordings (2 or 3)."),
              speaker_view: bool = typer.Option(False, "--speaker-view",
                                                help="Active-speaker recordings (the picture cuts between "
                                                     "participants' cameras): end tracks at cuts and join each "
                                                     "participant's turns by appearance. The default for "
                                                     "uploads: each can change it (the upload page's box, or "
                                                     "?speaker_view=1|0 on POST /api/jobs)."),
              auto_speaker_view: bool = typer.Option(False, "--auto-speaker-view",
                                                     help="Scan an upload again as an active-speaker recording "
                                                          "when its first scan carried a face's track across a cut "
                                                          "between cameras (two people may share that track). "
                                                          "Uploads marked as active-speaker recordings are scanned "
                                                          "that way at once."),
              token: Optional[str] = typer.Option(None, "--token", envvar=TOKEN_ENV,
                                                  help=f"Access token required from browsers and API clients "
                                                       f"(also read from ${TOKEN_ENV}).")) -> None:
        """Start the interviewer web app: upload recordings, follow the analysis, read the reports."""
        import uvicorn

        from detector.errors import DetectorError
        from detector.options import ScanOptions
        from detector.web.app import create_app
        from detector.web.settings import WebSettings

        settings = WebSettings(data_dir=data_dir, max_upload_bytes=max_upload_mb * 1024 * 1024, workers=workers,
                               token=token or None, scan_options=ScanOptions(analysis_fps=fps, max_faces=max_faces,
                                                                         gallery_grid=gallery,
                                                                         shot_cuts=speaker_view,
                                                                         speaker_view_auto=auto_speaker_view))
        try:
            web_app = create_app(settings)
        except DetectorError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(5)
        if not _is_loopback(host) and settings.token is None:
            typer.secho(f"warning: listening on {host} without --token; anyone who can reach this port can upload "
                        f"and read reports", fg=typer.colors.YELLOW, err=True)
        shown = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        typer.echo(f"detector web app on {shown}  (data in {data_dir.resolve()}; Ctrl+C to stop)", err=True)
        # one server process: the analysis workers are threads inside it and share its job store
        uvicorn.run(web_app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
