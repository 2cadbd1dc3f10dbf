"""The interviewer web app: upload, live progress, report, history.

``create_app(settings, analyzer_factory=None)`` builds a FastAPI app whose
lifespan owns the job store and the worker pool. Tests pass a fake
``analyzer_factory`` so the job machinery runs without models.

Pages are server-rendered (Jinja2) with one small script for uploading and
polling; nothing is fetched from outside the server, so the app works on an
isolated machine and under a strict Content-Security-Policy.
"""
from __future__ import annotations

import hmac
import logging
import os
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from detector.errors import ConfigError
from detector.report.html import VERDICT_TONE, WebLinks, render_html
from detector.report.model import Report, Verdict
from detector.web.settings import WebSettings
from detector.web.store import Job, JobStore
from detector.web.uploads import UploadRejected, is_job_id, receive_upload, remove_orphans, upload_path
from detector.web.worker import AnalyzerFactory, WorkerPool

log = logging.getLogger("detector.web")

_FLAGS = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False, "no": False}

COOKIE = "detector_token"
TOKEN_HEADER = "x-detector-token"
_STATIC_DIR = Path(__file__).with_name("static")
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def default_analyzer_factory(settings: WebSettings) -> AnalyzerFactory:
    def make():
        # MediaPipe/TFLite log from C++ to stderr; keep the server log readable
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from detector.api import Analyzer

        return Analyzer(settings.scan_options)

    return make


def _templates() -> Environment:
    env = Environment(loader=ChoiceLoader([PackageLoader("detector.web", "templates"),
                                           PackageLoader("detector.report", "templates")]),
                      autoescape=select_autoescape(("html", "j2", "html.j2")), trim_blocks=True, lstrip_blocks=True)
    return env


def _verdict_label(value: Optional[str]) -> Optional[str]:
    try:
        return Verdict(value).label if value else None
    except ValueError:
        return value


def _tone(value: Optional[str]) -> str:
    try:
        return VERDICT_TONE[Verdict(value)] if value else "neutral"
    except ValueError:
        return "neutral"


def _download_stem(name: str, ascii_only: bool = True) -> str:
    # the ASCII stem is the plain ``filename`` every client reads; the Unicode one (``filename*``) keeps a name such
    # as "Interview Zoë" or "面接" recognisable where the browser supports it (all current ones do)
    unsafe = r"[^A-Za-z0-9._-]+" if ascii_only else r'[\x00-\x1f\x7f/\\:*?"<>|\s]+'
    stem = re.sub(unsafe, "_", name.rsplit(".", 1)[0]).strip("._") or "recording"
    # at most 80 characters and 200 bytes of UTF-8: file systems cap a name at 255 bytes, not characters
    return stem[:80].encode("utf-8")[:200].decode("utf-8", "ignore")


def _attachment(original_name: str, suffix: str) -> dict[str, str]:
    """Content-Disposition for a download named after the uploaded recording (RFC 6266 with RFC 5987)."""
    plain = _download_stem(original_name) + suffix
    full = _download_stem(original_name, ascii_only=False) + suffix
    return {"Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"}


class _SecurityHeaders:
    """Pure ASGI middleware (does not buffer bodies, so streamed uploads stay streamed)."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                     b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                     b"form-action 'self'; base-uri 'none'"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _AuthRequired(Exception):
    pass


class _LoginRedirect(Exception):
    def __init__(self, target: str, token: str):
        super().__init__(target)
        self.target = target
        self.token = token


def create_app(settings: WebSettings | None = None, analyzer_factory: AnalyzerFactory | None = None) -> FastAPI:
    settings = (settings or WebSettings()).validate()
    factory = analyzer_factory or default_analyzer_factory(settings)
    templates = _templates()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for d in (settings.data_dir, settings.uploads_dir, settings.incoming_dir):
            d.mkdir(parents=True, exist_ok=True)
        lock = _lock_data_dir(settings.data_dir)
        pool = None
        try:
            store = JobStore(settings.db_path)
            requeued, failed = store.recover_interrupted(settings.max_attempts)
            if requeued or failed:
                log.warning("after restart: resumed %d interrupted job(s), marked %d failed",
                            len(requeued), len(failed))
            remove_orphans(settings.incoming_dir, settings.uploads_dir, store.ids())
            for job in store.list(limit=10_000, active_only=True):  # a queued job needs its file
                if not upload_path(settings.uploads_dir, job.id).is_file():
                    store.fail(job.id, "missing_file", "the uploaded file is no longer on disk")
            pool = WorkerPool(store, settings.uploads_dir, factory, settings.workers)
            state["store"], state["pool"] = store, pool
            pool.start()
            yield
        finally:
            if pool is not None:
                pool.stop()
            lock.close()

    app = FastAPI(title="detector", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=_STATIC_DIR), name="static")
    app.state.settings = settings
    app.state.jobs = state

    def store() -> JobStore:
        return state["store"]

    def pool() -> WorkerPool:
        return state["pool"]

    # -- access control -------------------------------------------------------

    def _token_ok(candidate: Optional[str]) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), settings.token.encode())

    def authorised(request: Request) -> bool:
        if settings.token is None:
            return True
        bearer = request.headers.get("authorization", "")
        candidates = [request.headers.get(TOKEN_HEADER), request.cookies.get(COOKIE),
                      bearer[7:] if bearer.lower().startswith("bearer ") else None,
                      request.query_params.get("token")]
        return any(_token_ok(c) for c in candidates)

    def guard(request: Request) -> None:
        if not authorised(request):
            raise _AuthRequired()
        token = request.query_params.get("token")
        if settings.token is not None and token and request.method == "GET" and not request.url.path.startswith("/api/"):
            # a shared page link like /?token=... logs the browser in, then the token leaves the address bar
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            raise _LoginRedirect(request.url.path + (f"?{rest}" if rest else ""), token)
        if request.method in _UNSAFE:
            # cookies ride along on cross-site requests; a foreign Origin must not delete or upload
            origin = request.headers.get("origin")
            if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
                raise HTTPException(403, "cross-origin request refused")

    @app.exception_handler(_AuthRequired)
    async def _auth_required(request: Request, exc: _AuthRequired):
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": "unauthorized", "detail": "a valid access token is required"}, 401,
                                headers={"WWW-Authenticate": "Bearer"})
        html = templates.get_template("login.html.j2").render(next=request.url.path, error=None)
        return HTMLResponse(html, 401)

    @app.exception_handler(_LoginRedirect)
    async def _login_redirect(request: Request, exc: _LoginRedirect):
        return _with_cookie(RedirectResponse(exc.target, 303), exc.token)

    def _error_response(request: Request, status: int, detail: str, headers: dict | None = None) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": _code_for(status), "detail": detail}, status, headers=headers)
        html = templates.get_template("message.html.j2").render(title=f"{status}", message=detail)
        return HTMLResponse(html, status, headers=headers)

    # Starlette's class, not FastAPI's subclass: the router's own 404 and 405 get the API's error shape too
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error_response(request, exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError):
        # e.g. ?limit=abc: one readable line, in the same shape as every other error
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
                             for e in exc.errors())
        return _error_response(request, 422, problems or "invalid request")

    def _with_cookie(response: Response, token: str) -> Response:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 24 * 3600)
        return response

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(next: str = "/"):
        return templates.get_template("login.html.j2").render(next=_local_path(next), error=None)

    @app.post("/login")
    async def login(request: Request):
        form = await request.form()
        token, nxt = str(form.get("token", "")), _local_path(str(form.get("next", "/")))
        if settings.token is None or _token_ok(token):
            return _with_cookie(RedirectResponse(nxt, 303), token) if settings.token else RedirectResponse(nxt, 303)
        html = templates.get_template("login.html.j2").render(next=nxt, error="That token is not valid.")
        return HTMLResponse(html, 401)

    # -- JSON API -------------------------------------------------------------

    def job_json(job: Job, now: float | None = None) -> dict:
        now = now or time.time()
        eta = job.eta_seconds(now)
        return {
            "id": job.id, "name": job.original_name, "size_bytes": job.size_bytes, "duration_s": job.duration_s,
            "state": job.state, "progress": round(job.progress, 4), "percent": int(job.progress * 100),
            "message": job.message, "eta_s": None if eta is None else round(eta, 1),
            "queue_position": store().queue_position(job), "attempts": job.attempts,
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
            "verdict": job.verdict, "verdict_label": _verdict_label(job.verdict), "tone": _tone(job.verdict),
            "probability": job.probability, "speaker_view": job.speaker_view,
            "error": None if job.error_code is None else {"code": job.error_code, "message": job.error_message},
            "urls": {"page": f"/jobs/{job.id}", "report_json": f"/jobs/{job.id}/report.json",
                     "report_html": f"/jobs/{job.id}/report.html", "api": f"/api/jobs/{job.id}"},
        }

    def job_or_404(job_id: str) -> Job:
        job = store().get(job_id) if is_job_id(job_id) else None
        if job is None:
            raise HTTPException(404, "no such recording")
        return job

    def report_or_404(job: Job) -> Report:
        text = store().report_json(job.id)
        if text is None:
            raise HTTPException(409 if job.active else 404, "the report is not ready" if job.active
                                else "this recording has no report")
        return Report.from_json(text)

    @app.get("/api/health")
    async def health():
        p = pool()
        return {"ok": p.startup_error is None, "workers": p.size, "workers_alive": p.alive,
                "analysis_error": p.startup_error, "queued": store().count_queued(),
                "max_upload_bytes": settings.max_upload_bytes}

    def speaker_view_param(value: Optional[str]) -> bool:
        """``?speaker_view=1|0`` (also true/false, on/off); absent: the server's ``--speaker-view`` setting."""
        if value is None:
            return settings.scan_options.shot_cuts
        flag = _FLAGS.get(value.strip().lower())
        if flag is None:
            raise HTTPException(400, "speaker_view must be 1 or 0")
        return flag

    @app.post("/api/jobs", status_code=201, dependencies=[Depends(guard)])
    async def create_job(request: Request):
        # read before the body, so a bad value is refused without storing anything
        speaker_view = speaker_view_param(request.query_params.get("speaker_view"))
        if store().count_queued() >= settings.max_queued:
            return JSONResponse({"error": "queue_full", "detail": "too many recordings are waiting; try again later"},
                                503, headers={"Retry-After": "60"})
        try:
            received = await receive_upload(request.headers, request.stream(), settings.incoming_dir,
                                            settings.uploads_dir, settings.max_upload_bytes)
        except UploadRejected as exc:
            return JSONResponse({"error": exc.code, "detail": exc.message}, exc.status)
        except ClientDisconnect:
            # the uploader went away (a closed tab, a lost link): nothing was stored and nothing is wrong here,
            # so one log line rather than an ASGI error with a traceback; nobody reads the answer
            log.info("an upload was abandoned by its client; nothing stored")
            return Response(status_code=400)
        try:
            job = store().add(received.job_id, received.original_name, received.size_bytes, received.duration_s,
                              speaker_view=speaker_view)
        except BaseException:
            upload_path(settings.uploads_dir, received.job_id).unlink(missing_ok=True)
            raise
        pool().notify()
        return JSONResponse(job_json(job), 201, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs", dependencies=[Depends(guard)])
    async def list_jobs(active: bool = False, limit: int = 200):
        now = time.time()
        return {"jobs": [job_json(j, now) for j in store().list(limit=max(1, min(limit, 1000)), active_only=active)],
                "analysis_error": pool().startup_error}

    @app.get("/api/jobs/{job_id}", dependencies=[Depends(guard)])
    async def get_job(job_id: str):
        return job_json(job_or_404(job_id))

    @app.get("/api/jobs/{job_id}/report", dependencies=[Depends(guard)])
    async def get_report(job_id: str):
        job = job_or_404(job_id)
        report_or_404(job)
        return Response(store().report_json(job.id), media_type="application/json")

    @app.delete("/api/jobs/{job_id}", status_code=204, dependencies=[Depends(guard)])
    async def delete_job(job_id: str):
        job = job_or_404(job_id)
        if job.state == "running":
            await run_in_threadpool(pool().cancel, job.id)
        store().delete(job.id)
        upload_path(settings.uploads_dir, job.id).unlink(missing_ok=True)
        return Response(status_code=204)

    @app.post("/api/jobs/{job_id}/retry", dependencies=[Depends(guard)])
    async def retry_job(job_id: str):
        job = job_or_404(job_id)
        if job.state != "failed":
            raise HTTPException(409, "only a failed analysis can be retried")
        if not upload_path(settings.uploads_dir, job.id).is_file():
            raise HTTPException(410, "the uploaded file is gone; upload it again")
        store().reset_attempts(job.id)
        store().requeue(job.id, keep_place=False)  # asked for now: behind the uploads waiting now
        pool().notify()
        return job_json(store().get(job.id))

    @app.post("/api/jobs/{job_id}/rescan", dependencies=[Depends(guard)])
    async def rescan_job(job_id: str, speaker_view: Optional[str] = None):
        """Analyse a finished or failed recording again, e.g. as an active-speaker recording after its report
        warned that a track was carried across cuts between cameras."""
        job = job_or_404(job_id)
        flag = speaker_view_param(speaker_view)
        if job.active:
            raise HTTPException(409, "the recording is still being analysed")
        if not upload_path(settings.uploads_dir, job.id).is_file():
            raise HTTPException(410, "the uploaded file is gone; upload it again")
        if pool().startup_error:  # no worker could run it: keep the report the user has
            raise HTTPException(503, f"the analysis cannot run on this server: {pool().startup_error}")
        if store().count_queued() >= settings.max_queued:
            raise HTTPException(503, "too many recordings are waiting; try again later")
        if not store().rescan(job.id, flag):  # it became active or was deleted in between
            job_or_404(job_id)
            raise HTTPException(409, "the recording is still being analysed")
        pool().notify()
        return job_json(store().get(job.id))

    # -- pages ----------------------------------------------------------------

    def page(name: str, **ctx) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**ctx))

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(guard)])
    async def home():
        now = time.time()
        jobs = store().list(limit=500)
        return page("index.html.j2", jobs=[job_json(j, now) for j in jobs], settings=settings,
                    max_upload_mb=settings.max_upload_bytes / (1024 * 1024), analysis_error=pool().startup_error,
                    fmt_size=_fmt_size, fmt_date=_fmt_date)

    @app.get("/jobs/{job_id}", response_class=HTMLResponse, dependencies=[Depends(guard)])
    async def job_page(job_id: str):
        job = job_or_404(job_id)
        if job.state == "done":
            report = report_or_404(job)
            # a report that warns of a track carried across cuts offers the scan that ends tracks there
            # (the same condition as the report's caveat: a carried track, and a participant reported)
            crossed = bool(report.video.cuts_crossed_s and report.tracks and not report.settings.get("shot_cuts"))
            rescan = f"/api/jobs/{job.id}/rescan?speaker_view=1" if crossed else None
            notice = (f"Scanning this recording again failed ({job.error_message}); this is the earlier report."
                      if job.error_message else None)
            links = WebLinks(home_url="/", json_url=f"/jobs/{job.id}/report.json",
                             html_url=f"/jobs/{job.id}/report.html", delete_url=f"/api/jobs/{job.id}",
                             speaker_view_url=rescan, notice=notice, original_name=job.original_name)
            return HTMLResponse(render_html(report, web=links))
        return page("job.html.j2", job=job_json(job), analysis_error=pool().startup_error, fmt_size=_fmt_size)

    @app.get("/jobs/{job_id}/report.json", dependencies=[Depends(guard)])
    async def download_json(job_id: str):
        job = job_or_404(job_id)
        report_or_404(job)
        return Response(store().report_json(job.id), media_type="application/json",
                        headers=_attachment(job.original_name, ".report.json"))

    @app.get("/jobs/{job_id}/report.html", dependencies=[Depends(guard)])
    async def download_html(job_id: str):
        job = job_or_404(job_id)
        report = report_or_404(job)
        return HTMLResponse(render_html(report), headers=_attachment(job.original_name, ".report.html"))

    @app.get("/favicon.ico")
    async def favicon():
        return PlainTextResponse("", 204)

    return app


def _lock_data_dir(data_dir: Path):
    """Hold an exclusive lock on the data dir for the server's lifetime.

    Start-up recovery treats every 'running' row as orphaned; that is only
    true if no other server works on the same data dir, so a second one is
    refused instead of stealing the first one's jobs.
    """
    import fcntl

    handle = open(data_dir / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(f"another detector server is already using {data_dir}; "
                          f"stop it or choose another --data-dir") from None
    return handle


def _code_for(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
            409: "conflict", 410: "gone", 413: "too_large", 415: "unsupported_media",
            422: "bad_request"}.get(status, "error")


def _local_path(target: str) -> str:
    # only same-site paths after login: no open redirect to another host
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _fmt_size(n: Optional[float]) -> str:
    if n is None:
        return ""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _fmt_date(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else ""
