"""End-to-end tests in a real headless browser (Debian's chromium via Playwright).

Playwright must not download its own browser: we launch /usr/bin/chromium.
Screenshots go to ``$DETECTOR_SCREENSHOT_DIR`` (default: ``out/screenshots``
at the repository root, git-ignored) so a person can look at them.
"""
from __future__ import annotations

import base64
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from web_fakes import FakeAnalyzer
from detector.web.app import create_app
from detector.web.settings import WebSettings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("DETECTOR_SCREENSHOT_DIR", REPO / "out" / "screenshots"))

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "the 'playwright' Python package is not installed (pip install playwright; no browser download needed)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)


class LiveServer:
    """The app served by uvicorn in a thread, on a free local port."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture()
def browser_page():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page, errors
        browser.close()


def _drop_file(page, selector: str, path: Path) -> None:
    """Drop a file on an element through a real DataTransfer (what a drag from the desktop delivers)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "video/mp4" }));
            return dt;
        }""", [path.name, data])
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _upload_and_open_report(page, server: LiveServer, video: Path, timeout_ms: int):
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Check a recorded interview"
    page.set_input_files("#file-input", str(video))
    link = page.locator("#upload-list a", has_text="follow progress")
    link.wait_for(timeout=60_000)
    link.click()
    page.wait_for_selector("#report", timeout=timeout_ms)  # the job page turns into the report when done


def test_upload_progress_report_and_delete_in_browser(tmp_path, tiny_video, browser_page):
    """The UI flows with a fake analyzer: fast, no models needed."""
    page, errors = browser_page
    gate = threading.Event()
    app = create_app(WebSettings(data_dir=tmp_path / "data"), analyzer_factory=lambda: FakeAnalyzer(gate=gate))
    with LiveServer(app) as server:
        page.goto(server.url + "/")
        _drop_file(page, "#upload-form", tiny_video)  # drag and drop, as an interviewer would
        page.locator("#upload-list a", has_text="follow progress").click()
        # held at 50 %: the job page shows live state and percent
        expect(page.locator("#job-percent")).to_have_text("50%", timeout=15_000)
        assert page.locator("#job-state").inner_text() == "Analysing"
        page.screenshot(path=str(SCREENSHOTS / "fake-progress.png"), full_page=True)
        gate.set()
        page.wait_for_selector("#report", timeout=15_000)
        assert page.locator("#verdict").inner_text() == "Likely face-swapped"
        assert page.locator("#timeline polyline").count() == 1
        assert page.locator("#timeline rect.segment").count() == 1
        assert page.locator(".evidence figure img").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "fake-report.png"), full_page=True)

        page.goto(server.url + "/")
        row = page.locator("#history tbody tr")
        assert row.count() == 1 and "Likely face-swapped" in row.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "fake-history.png"), full_page=True)
        page.once("dialog", lambda d: d.accept())
        row.locator("button", has_text="Delete").click()
        page.wait_for_selector("#history-empty:not([hidden])", timeout=10_000)
        assert list((tmp_path / "data" / "uploads").iterdir()) == []
    assert errors == []


def test_not_a_video_shows_clear_error_in_browser(tmp_path, browser_page):
    page, errors = browser_page
    bogus = tmp_path / "slides.mp4"
    bogus.write_bytes(b"%PDF-1.4 definitely not a video\n" * 50)
    app = create_app(WebSettings(data_dir=tmp_path / "data"), analyzer_factory=FakeAnalyzer)
    with LiveServer(app) as server:
        page.goto(server.url + "/")
        page.set_input_files("#file-input", str(bogus))
        item = page.locator(".upload-item.error")
        item.wait_for(timeout=15_000)
        assert "Not accepted: not a recording that can be analysed" in item.inner_text()
        assert page.locator("#history tbody tr").count() == 0


def _real_sample() -> Path | None:
    samples = sorted((REPO / "samples").glob("*.mp4"))
    return samples[0] if samples else None


def test_real_sample_end_to_end_in_browser(tmp_path, browser_page):
    """The real analyzer on a bundled sample: upload, wait, read the report."""
    from detector.paths import models_dir
    from detector.report.model import Verdict

    sample = _real_sample()
    if sample is None:
        pytest.skip("no bundled sample: samples/*.mp4 is missing")
    if not (models_dir() / "fusion.onnx").exists():
        pytest.skip(f"the fusion model is missing: {models_dir() / 'fusion.onnx'}")
    page, errors = browser_page
    app = create_app(WebSettings(data_dir=tmp_path / "data"))
    with LiveServer(app) as server:
        _upload_and_open_report(page, server, sample, timeout_ms=240_000)
        verdict = page.locator("#verdict").inner_text()
        # the page shows what the analysis stored: same verdict and calibrated probability as the JSON report
        job_id = page.url.rstrip("/").rsplit("/", 1)[-1]
        stored = page.request.get(f"{server.url}/api/jobs/{job_id}/report").json()
        assert verdict == Verdict(stored["verdict"]).label
        if stored["probability"] is not None:
            assert page.locator("#probability").inner_text() == f"{stored['probability']:.0%}"
        assert page.locator(".participant").count() == len(stored["tracks"])
        assert page.locator("#timeline").is_visible()
        report = page.locator("#report")
        if report.get_attribute("data-verdict") in ("likely_genuine", "inconclusive", "likely_face_swapped"):
            assert page.locator("#timeline polyline").count() >= 1
            assert page.locator(".evidence figure img").count() >= 1
            assert page.locator(".evidence figcaption").first.inner_text().strip() != ""
        page.screenshot(path=str(SCREENSHOTS / "real-report.png"), full_page=True)
        page.goto(server.url + "/")
        assert verdict in page.locator("#history tbody tr").first.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "real-history.png"), full_page=True)
    assert errors == []
