"""API tests of the web app with a fake analyzer (no models needed)."""
from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from web_fakes import FakeAnalyzer, wait_for
from detector.errors import ModelError
from detector.report.model import Report
from detector.web.app import create_app
from detector.web.settings import WebSettings
from detector.web.store import JobStore


def make_client(tmp_path: Path, analyzer=None, **settings) -> TestClient:
    analyzer = analyzer or FakeAnalyzer()
    app = create_app(WebSettings(data_dir=tmp_path / "data", **settings), analyzer_factory=lambda: analyzer)
    return TestClient(app)


def upload(client: TestClient, path: Path, name: str | None = None, **kw):
    with open(path, "rb") as f:
        return client.post("/api/jobs", content=f.read(),
                           headers={"Content-Type": "application/octet-stream", "X-File-Name": name or path.name}, **kw)


def wait_done(client: TestClient, job_id: str, timeout: float = 10.0) -> dict:
    return wait_for(lambda: (lambda j: j if j["state"] in ("done", "failed") else None)(
        client.get(f"/api/jobs/{job_id}").json()), timeout)


def stored_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "data" / "uploads").iterdir())


def test_upload_analyse_report_and_downloads(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        r = upload(client, tiny_video, name="Candidate Smith.mp4")
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["name"] == "Candidate Smith.mp4" and job["state"] in ("queued", "running")
        # stored under the random id, never the client's name
        assert stored_files(tmp_path) == [job["id"]]
        done = wait_done(client, job["id"])
        assert done["state"] == "done" and done["percent"] == 100
        assert done["verdict"] == "likely_face_swapped" and done["verdict_label"] == "Likely face-swapped"
        report = Report.from_json(client.get(f"/api/jobs/{job['id']}/report").content)
        assert report.video.file_name == "Candidate Smith.mp4"
        assert str(tmp_path) not in report.to_json()  # no server paths leak into the report

        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "Likely face-swapped" in page.text and "<svg" in page.text and 'class="segment"' in page.text
        assert "data:image/jpeg;base64," in page.text and "Download JSON" in page.text

        js = client.get(f"/jobs/{job['id']}/report.json")
        assert js.status_code == 200 and "attachment" in js.headers["content-disposition"]
        assert Report.from_json(js.content).verdict.value == "likely_face_swapped"
        html = client.get(f"/jobs/{job['id']}/report.html")
        assert "attachment" in html.headers["content-disposition"] and "Candidate_Smith.report.html" in \
            html.headers["content-disposition"]
        assert "<svg" in html.text and "app.js" not in html.text  # standalone: no app chrome or scripts

        listing = client.get("/api/jobs").json()["jobs"]
        assert [j["id"] for j in listing] == [job["id"]]
        home = client.get("/", headers={"Accept": "text/html"})
        assert "Candidate Smith.mp4" in home.text and "Likely face-swapped" in home.text


def test_multipart_upload_like_curl(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        r = client.post("/api/jobs", files={"file": ("call.mov", tiny_video.read_bytes(), "video/quicktime")},
                        data={"note": "ignored"})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "call.mov" and r.json()["size_bytes"] == tiny_video.stat().st_size
        assert wait_done(client, r.json()["id"])["state"] == "done"


def test_non_video_is_rejected_by_content_and_leaves_nothing(tmp_path):
    fake = tmp_path / "notes.mp4"  # the extension lies; the content decides
    fake.write_bytes(b"this is not a video, just text " * 100)
    with make_client(tmp_path) as client:
        r = upload(client, fake)
        assert r.status_code == 415
        assert r.json()["error"] == "not_a_video" and "not a recording" in r.json()["detail"]
        assert str(tmp_path) not in r.text
        assert client.get("/api/jobs").json()["jobs"] == []
        assert stored_files(tmp_path) == []
        assert list((tmp_path / "data" / "incoming").iterdir()) == []


def test_download_names_keep_a_non_ascii_recording_name(tmp_path, tiny_video):
    from urllib.parse import quote, unquote

    with make_client(tmp_path) as client:
        job = upload(client, tiny_video, name=quote('面接 Zoë "final".mp4')).json()
        assert wait_done(client, job["id"])["state"] == "done"
        for suffix in (".report.json", ".report.html"):
            header = client.get(f"/jobs/{job['id']}/report{suffix[7:]}").headers["content-disposition"]
            # a client reading RFC 5987 gets the name as uploaded; an old one an ASCII stand-in
            extended = re.search(r"filename\*=UTF-8''([^;\s]+)", header).group(1)
            assert unquote(extended) == "面接_Zoë_final" + suffix
            assert 'filename="Zo_final' + suffix + '"' in header and header.isascii()
    # a long non-ASCII name stays within the 255 bytes file systems allow a name
    from detector.web.app import _download_stem

    assert len(_download_stem("🎥" * 100 + ".mp4", ascii_only=False).encode("utf-8")) <= 200


def test_every_error_has_the_apis_shape(tmp_path):
    with make_client(tmp_path) as client:
        r = client.get("/api/jobs?limit=abc")  # FastAPI's own validation error
        assert r.status_code == 422 and r.json()["error"] == "bad_request" and "limit" in r.json()["detail"]
        r = client.get("/api/nope")  # the router's 404
        assert r.status_code == 404 and r.json() == {"error": "not_found", "detail": "Not Found"}
        r = client.put("/api/jobs")  # the router's 405, with its Allow header
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed" and "POST" in r.headers["allow"]
        page = client.get("/nope", headers={"Accept": "text/html"})  # a person gets the message page
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_a_form_upload_keeps_quotes_in_its_file_name(tmp_path, tiny_video):
    # browsers and curl -F send '"' in a form's file name as %22
    with make_client(tmp_path) as client:
        r = client.post("/api/jobs", files={"file": ('Interview "final" 100%.mp4', tiny_video.read_bytes(),
                                                     "video/mp4")})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == 'Interview "final" 100%.mp4'


def test_an_upload_abandoned_by_its_client_is_one_log_line(tmp_path, tiny_video, caplog):
    import asyncio
    import logging

    body = tiny_video.read_bytes()
    app = create_app(WebSettings(data_dir=tmp_path / "data"), analyzer_factory=lambda: FakeAnalyzer())
    messages = [{"type": "http.request", "body": body[:1000], "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/jobs", "raw_path": b"/api/jobs", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/octet-stream"), (b"x-file-name", b"call.mp4"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    with TestClient(app), caplog.at_level(logging.INFO):  # the client runs the app's start-up
        asyncio.run(app(scope, receive, send))  # raised ClientDisconnect out of the app before
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert "abandoned by its client" in caplog.text
    assert list((tmp_path / "data" / "incoming").iterdir()) == [] and stored_files(tmp_path) == []


def test_empty_upload_is_rejected(tmp_path):
    with make_client(tmp_path) as client:
        r = client.post("/api/jobs", files={"file": ("call.mp4", b"", "video/mp4")})
        assert r.status_code == 400 and r.json()["error"] == "empty_file" and "empty" in r.json()["detail"]
        # a bare POST with no body is a request without a file, not an empty recording
        for headers in ({"Content-Type": "application/octet-stream"}, {}):
            r = client.post("/api/jobs", content=b"", headers=headers)
            assert r.status_code == 400 and r.json()["error"] == "no_file" and "no file" in r.json()["detail"]
        # the page sends a dropped file as a raw body named by X-File-Name: an empty one is an empty file
        r = client.post("/api/jobs", content=b"", headers={"Content-Type": "application/octet-stream",
                                                         "X-File-Name": "call.mp4"})
        assert r.status_code == 400 and r.json()["error"] == "empty_file"
        assert client.get("/api/jobs").json()["jobs"] == []


def test_size_limit_enforced_while_streaming(tmp_path, tiny_video):
    size = tiny_video.stat().st_size
    with make_client(tmp_path, max_upload_bytes=size - 1) as client:
        # declared length over the cap: refused before reading
        assert upload(client, tiny_video).status_code == 413

        # no declared length (chunked): refused once the streamed bytes cross the cap
        def chunks():
            data = tiny_video.read_bytes()
            for i in range(0, len(data), 1000):
                yield data[i:i + 1000]

        r = client.post("/api/jobs", content=chunks(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        assert stored_files(tmp_path) == [] and list((tmp_path / "data" / "incoming").iterdir()) == []
    with make_client(tmp_path, max_upload_bytes=size) as client:  # exactly at the cap is fine
        assert upload(client, tiny_video).status_code == 201


def test_malicious_names_and_ids(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        r = upload(client, tiny_video, name="..%2F..%2Fetc%2Fpasswd%00.mp4")
        assert r.status_code == 201
        assert r.json()["name"] == "passwd.mp4"
        assert stored_files(tmp_path) == [r.json()["id"]]
        r = upload(client, tiny_video, name="%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.mp4")
        wait_done(client, r.json()["id"])
        for url in (f"/jobs/{r.json()['id']}", "/", f"/jobs/{r.json()['id']}/report.html"):
            page = client.get(url, headers={"Accept": "text/html"}).text
            assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;.mp4" in page, url
        for bad in ("../../etc/passwd", "..%2F..%2Fdetector.sqlite3", "ABC", "0" * 23, "%2e%2e"):
            resp = client.get(f"/api/jobs/{bad}")
            assert resp.status_code == 404, bad
            assert client.delete(f"/api/jobs/{bad}").status_code in (404, 405)


def test_delete_removes_file_and_data(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        job = upload(client, tiny_video).json()
        wait_done(client, job["id"])
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert client.get(f"/jobs/{job['id']}/report.json").status_code == 404
        assert stored_files(tmp_path) == []
        assert JobStore(tmp_path / "data" / "detector.sqlite3").ids() == set()


def test_delete_while_running_cancels_the_analysis(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, analyzer=FakeAnalyzer(gate=gate)) as client:
        job = upload(client, tiny_video).json()
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["state"] == "running")
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
        assert client.get(f"/api/jobs/{job['id']}").status_code == 404
        assert stored_files(tmp_path) == []


def test_progress_percent_eta_and_queue_position(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, analyzer=FakeAnalyzer(gate=gate)) as client:
        first = upload(client, tiny_video).json()
        second = upload(client, tiny_video).json()
        running = wait_for(lambda: (lambda j: j if j["state"] == "running" and j["percent"] >= 50 else None)(
            client.get(f"/api/jobs/{first['id']}").json()))
        assert running["eta_s"] is not None and running["eta_s"] >= 0
        waiting = client.get(f"/api/jobs/{second['id']}").json()
        assert waiting["state"] == "queued" and waiting["queue_position"] == 1
        assert {j["id"] for j in client.get("/api/jobs?active=1").json()["jobs"]} == {first["id"], second["id"]}
        gate.set()
        assert wait_done(client, first["id"])["state"] == "done"
        assert wait_done(client, second["id"])["state"] == "done"


def test_report_not_ready_yet(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, analyzer=FakeAnalyzer(gate=gate)) as client:
        job = upload(client, tiny_video).json()
        assert client.get(f"/api/jobs/{job['id']}/report").status_code == 409
        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and 'id="job-bar"' in page.text
        gate.set()


def test_analysis_error_fails_job_with_clear_message_and_retry(tmp_path, tiny_video):
    analyzer = FakeAnalyzer(fail_with=RuntimeError("boom"))
    with make_client(tmp_path, analyzer=analyzer) as client:
        job = upload(client, tiny_video).json()
        failed = wait_done(client, job["id"])
        assert failed["state"] == "failed" and failed["error"]["code"] == "internal_error"
        assert "boom" in failed["error"]["message"]
        assert stored_files(tmp_path) == [job["id"]]  # the upload is kept for a retry
        analyzer.fail_with = None
        assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 200
        assert wait_done(client, job["id"])["state"] == "done"
        assert client.post(f"/api/jobs/{job['id']}/retry").status_code == 409


def test_missing_model_keeps_uploads_queued_and_says_why(tmp_path, tiny_video):
    def broken():
        raise ModelError("fusion model not found: models/fusion.onnx")

    app = create_app(WebSettings(data_dir=tmp_path / "data"), analyzer_factory=broken)
    with TestClient(app) as client:
        wait_for(lambda: client.get("/api/health").json()["analysis_error"])
        health = client.get("/api/health").json()
        assert health["ok"] is False and "fusion.onnx" in health["analysis_error"]
        job = upload(client, tiny_video).json()
        time.sleep(0.2)
        assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "queued"
        assert "Analysis is unavailable" in client.get("/", headers={"Accept": "text/html"}).text
    # restarted with working models: the kept upload is analysed
    with make_client(tmp_path) as client:
        assert wait_done(client, job["id"])["state"] == "done"


def test_restart_resumes_interrupted_job_and_fails_repeat_offenders(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        job = upload(client, tiny_video).json()
        wait_done(client, job["id"])
    store = JobStore(tmp_path / "data" / "detector.sqlite3")
    # simulate a crash mid-analysis: the row says running, nothing is working on it
    with store._write() as db:
        db.execute("UPDATE jobs SET state='running', progress=0.4, attempts=1, report_json=NULL WHERE id=?",
                   (job["id"],))
    (tmp_path / "data" / "incoming" / "deadbeef.part").write_bytes(b"half an upload")
    with make_client(tmp_path) as client:
        assert wait_done(client, job["id"])["state"] == "done"
        assert list((tmp_path / "data" / "incoming").iterdir()) == []  # partial upload cleaned
    with store._write() as db:
        # a first scan (no earlier report) interrupted a second time
        db.execute("UPDATE jobs SET state='running', attempts=2, report_json=NULL WHERE id=?", (job["id"],))
    with make_client(tmp_path) as client:
        j = client.get(f"/api/jobs/{job['id']}").json()
        assert j["state"] == "failed" and j["error"]["code"] == "interrupted"
        assert stored_files(tmp_path) == [job["id"]]  # still there to retry


def test_server_stop_requeues_running_job(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, analyzer=FakeAnalyzer(gate=gate)) as client:
        job = upload(client, tiny_video).json()
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["state"] == "running")
    # lifespan exit stopped the worker mid-job: the job goes back to the queue
    assert JobStore(tmp_path / "data" / "detector.sqlite3").get(job["id"]).state == "queued"
    with make_client(tmp_path) as client:
        assert wait_done(client, job["id"])["state"] == "done"


def test_concurrent_uploads_with_two_workers(tmp_path, tiny_video):
    factory_calls = []

    def factory():
        a = FakeAnalyzer()
        factory_calls.append(a)
        return a

    app = create_app(WebSettings(data_dir=tmp_path / "data", workers=2), analyzer_factory=factory)
    with TestClient(app) as client:
        results = []

        def send():
            results.append(upload(client, tiny_video).status_code)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [201] * 6
        jobs = client.get("/api/jobs").json()["jobs"]
        assert len({j["id"] for j in jobs}) == 6
        for j in jobs:
            assert wait_done(client, j["id"])["state"] == "done"
    assert len(factory_calls) == 2  # one analyzer per worker, reused across jobs
    assert sum(len(a.scanned) for a in factory_calls) == 6
    assert all(a.closed for a in factory_calls)


def test_queue_limit_returns_503(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, analyzer=FakeAnalyzer(gate=gate), max_queued=1) as client:
        upload(client, tiny_video)
        wait_for(lambda: client.get("/api/jobs?active=1").json()["jobs"][0]["state"] == "running")
        assert upload(client, tiny_video).status_code == 201  # queued: 1 waiting
        r = upload(client, tiny_video)
        assert r.status_code == 503 and r.json()["error"] == "queue_full"
        gate.set()


def test_token_protects_api_and_pages(tmp_path, tiny_video, monkeypatch):
    token = "s3cret-token-value"
    with make_client(tmp_path, token=token) as client:
        assert client.get("/api/jobs").status_code == 401
        assert upload(client, tiny_video).status_code == 401
        login = client.get("/", headers={"Accept": "text/html"})
        assert login.status_code == 401 and "Access token required" in login.text
        assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/jobs", headers={"X-Detector-Token": token}).status_code == 200
        assert client.get("/api/jobs", headers={"X-Detector-Token": "wrong-token!"}).status_code == 401
        assert client.get("/api/health").status_code == 200  # liveness probe stays open, reveals no data
        # a shared link logs the browser in and strips the token from the address
        r = client.get(f"/?token={token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/" and "detector_token" in r.headers["set-cookie"]
        assert "httponly" in r.headers["set-cookie"].lower()
        client.cookies.set("detector_token", token)
        assert upload(client, tiny_video).status_code == 201
        client.cookies.clear()
        r = client.post("/login", data={"token": token, "next": "//evil.example/"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert client.post("/login", data={"token": "nope-nope", "next": "/"}).status_code == 401


def test_cross_origin_writes_refused(tmp_path, tiny_video):
    with make_client(tmp_path) as client:
        r = upload(client, tiny_video, )
        job_id = r.json()["id"]
        bad = client.delete(f"/api/jobs/{job_id}", headers={"Origin": "http://evil.example"})
        assert bad.status_code == 403
        assert client.delete(f"/api/jobs/{job_id}", headers={"Origin": "http://testserver"}).status_code == 204


def test_security_headers(tmp_path):
    with make_client(tmp_path) as client:
        r = client.get("/", headers={"Accept": "text/html"})
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/static/../app.py").status_code == 404


def test_speaker_view_asked_per_upload_and_checked(tmp_path, tiny_video):
    analyzer = FakeAnalyzer()
    with make_client(tmp_path, analyzer) as client:
        plain = upload(client, tiny_video).json()
        assert plain["speaker_view"] is False
        wait_done(client, plain["id"])
        asked = upload(client, tiny_video, params={"speaker_view": "1"}).json()
        assert asked["speaker_view"] is True
        wait_done(client, asked["id"])
        assert analyzer.shot_cuts == [False, True]
        bad = upload(client, tiny_video, params={"speaker_view": "maybe"})
        assert bad.status_code == 400 and "speaker_view" in bad.json()["detail"]
        assert len(stored_files(tmp_path)) == 2  # the refused upload left nothing behind
        home = client.get("/", headers={"Accept": "text/html"})
        assert 'id="speaker-view"' in home.text and 'id="speaker-view" checked' not in home.text


def test_server_wide_speaker_view_is_the_uploads_default(tmp_path, tiny_video):
    from detector.options import ScanOptions

    analyzer = FakeAnalyzer()
    with make_client(tmp_path, analyzer, scan_options=ScanOptions(shot_cuts=True)) as client:
        job = upload(client, tiny_video).json()
        assert job["speaker_view"] is True
        wait_done(client, job["id"])
        off = upload(client, tiny_video, params={"speaker_view": "0"}).json()
        wait_done(client, off["id"])
        assert analyzer.shot_cuts == [True, False]
        assert 'id="speaker-view" checked' in client.get("/", headers={"Accept": "text/html"}).text


def test_auto_speaker_view_is_said_on_the_upload_page_and_a_second_pass_restarts_progress(tmp_path, tiny_video):
    from detector.api import SECOND_PASS_LABEL
    from detector.options import ScanOptions

    gate = threading.Event()
    analyzer = FakeAnalyzer(gate=gate, second_pass=True)
    with make_client(tmp_path, analyzer, scan_options=ScanOptions(speaker_view_auto=True)) as client:
        assert "analysed this way a second time" in client.get("/", headers={"Accept": "text/html"}).text
        job = upload(client, tiny_video).json()
        first = wait_for(lambda: (lambda j: j if j["percent"] >= 50 else None)(client.get(f"/api/jobs/{job['id']}").json()))
        assert first["message"] == "analysing"
        gate.set()
        assert wait_done(client, job["id"])["state"] == "done"
        done = JobStore(tmp_path / "data" / "detector.sqlite3").get(job["id"])
        assert done.pass_started_at > done.started_at  # the worker marked the second pass
    assert analyzer.shot_cuts == [False]  # the analyzer's own options decide whether a second pass runs
    messages = []
    store = JobStore(tmp_path / "other.sqlite3")
    store.add("d" * 24, "d.mp4", 1, None)
    store.claim_next()
    store.set_progress = lambda job_id, fraction, message, new_pass=False: messages.append((message, new_pass))
    from detector.web.worker import WorkerPool

    pool = WorkerPool(store, tmp_path, lambda: FakeAnalyzer(second_pass=True))
    (tmp_path / ("d" * 24)).write_bytes(tiny_video.read_bytes())
    pool._scan_one(FakeAnalyzer(second_pass=True), store.get("d" * 24))
    assert messages.count((SECOND_PASS_LABEL, True)) == 1  # written at once, as a new pass, only once


def test_serve_passes_its_scan_options_to_the_app(tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import detector.web.app as web_app
    from detector.cli import app

    seen = {}
    monkeypatch.setattr(web_app, "create_app", lambda settings: seen.setdefault("settings", settings))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--auto-speaker-view", "--fps", "5"])
    assert result.exit_code == 0, result.output
    options = seen["settings"].scan_options
    assert options.speaker_view_auto is True and options.shot_cuts is False and options.analysis_fps == 5.0


def test_a_report_that_warns_of_merged_people_offers_a_speaker_view_rescan(tmp_path, tiny_video):
    analyzer = FakeAnalyzer(cuts_crossed=True)
    with make_client(tmp_path, analyzer) as client:
        job = upload(client, tiny_video).json()
        wait_done(client, job["id"])
        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"}).text
        url = f"/api/jobs/{job['id']}/rescan?speaker_view=1"
        assert f'data-retry="{url}"' in page and "Scan again as an active-speaker recording" in page
        r = client.post(url)
        assert r.status_code == 200, r.text
        assert r.json()["speaker_view"] is True and r.json()["state"] in ("queued", "running")
        done = wait_done(client, job["id"])
        assert done["state"] == "done" and analyzer.shot_cuts == [False, True]
        report = Report.from_json(client.get(f"/api/jobs/{job['id']}/report").content)
        assert report.video.cuts_crossed_s == []  # the new report replaced the old one
        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"}).text
        assert "Scan again as an active-speaker recording" not in page  # nothing left to offer
        assert client.post(f"/api/jobs/{job['id']}/rescan?speaker_view=yes!").status_code == 400
        assert client.post("/api/jobs/" + "f" * 24 + "/rescan").status_code == 404


def test_rescan_refused_while_running_or_when_the_file_is_gone(tmp_path, tiny_video):
    gate = threading.Event()
    with make_client(tmp_path, FakeAnalyzer(gate=gate)) as client:
        job = upload(client, tiny_video).json()
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["state"] == "running")
        assert client.post(f"/api/jobs/{job['id']}/rescan?speaker_view=1").status_code == 409
        gate.set()
        wait_done(client, job["id"])
        (tmp_path / "data" / "uploads" / job["id"]).unlink()
        assert client.post(f"/api/jobs/{job['id']}/rescan?speaker_view=1").status_code == 410
        assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"  # the report is kept


def test_a_failed_rescan_shows_the_earlier_report_with_a_notice(tmp_path, tiny_video):
    from detector.errors import CorruptVideoError

    analyzer = FakeAnalyzer(cuts_crossed=True)
    with make_client(tmp_path, analyzer) as client:
        job = upload(client, tiny_video).json()
        wait_done(client, job["id"])
        analyzer.fail_with = CorruptVideoError("the file broke")
        assert client.post(f"/api/jobs/{job['id']}/rescan?speaker_view=1").status_code == 200
        done = wait_done(client, job["id"])
        assert done["state"] == "done" and done["error"]["message"] == "the file broke"
        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"}).text
        assert "Scanning this recording again failed (the file broke)" in page and "Likely face-swapped" in page


def test_no_rescan_offered_for_a_report_scanned_as_speaker_view(tmp_path, tiny_video):
    analyzer = FakeAnalyzer(cuts_crossed=True)
    with make_client(tmp_path, analyzer) as client:
        job = upload(client, tiny_video, params={"speaker_view": "1"}).json()
        wait_done(client, job["id"])
        store = JobStore(tmp_path / "data" / "detector.sqlite3")
        report = Report.from_json(store.report_json(job["id"]))
        report.video.cuts_crossed_s = [0.5]  # as if crossings were recorded: the report's settings decide
        report.settings = {"shot_cuts": True}
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE jobs SET report_json = ? WHERE id = ?", (report.to_json(), job["id"]))
        page = client.get(f"/jobs/{job['id']}", headers={"Accept": "text/html"}).text
        assert "Likely face-swapped" in page and "Scan again as an active-speaker recording" not in page


def test_jobs_queued_before_speaker_view_was_stored_take_the_servers_setting(tmp_path, tiny_video):
    from detector.options import ScanOptions

    data = tmp_path / "data"
    (data / "uploads").mkdir(parents=True)
    job_id = "c" * 24
    (data / "uploads" / job_id).write_bytes(tiny_video.read_bytes())
    with sqlite3.connect(data / "detector.sqlite3") as db:  # schema 1, one job waiting
        db.executescript("""CREATE TABLE jobs (id TEXT PRIMARY KEY, original_name TEXT NOT NULL,
            size_bytes INTEGER NOT NULL, duration_s REAL, state TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
            started_at REAL, finished_at REAL, verdict TEXT, probability REAL, error_code TEXT,
            error_message TEXT, report_json TEXT);""")
        db.execute("INSERT INTO jobs (id, original_name, size_bytes, state, created_at) VALUES (?, 'w.mp4', 1, "
                   "'queued', 1.0)", (job_id,))
        db.execute("PRAGMA user_version=1")
    analyzer = FakeAnalyzer()
    with make_client(tmp_path, analyzer, scan_options=ScanOptions(shot_cuts=True)) as client:
        assert wait_done(client, job_id)["state"] == "done"
    assert analyzer.shot_cuts == [None]  # None: the analyzer's own setting, the server's --speaker-view


def test_a_duration_ffmpeg_only_guessed_is_not_listed_as_the_recordings(tmp_path, tiny_video, live_mkv):
    with make_client(tmp_path) as client:
        declared = upload(client, tiny_video).json()
        guessed = upload(client, live_mkv).json()
        assert declared["duration_s"] and declared["duration_s"] > 0
        assert guessed["duration_s"] is None  # its header declares none; the report gives the decoded length
        assert wait_done(client, guessed["id"])["state"] == "done"
