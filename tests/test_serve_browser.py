"""The service's web page in a real browser: Debian's chromium, headless, driven by Playwright (the
system browser, nothing downloaded), against a real `partsight serve`. An image is parsed and coloured
in the page with per-part toggles, a clip becomes a job whose annotated video, downloads and reps
table appear, and the (fake) camera streams over the WebSocket. A screenshot of the page is saved
(to $PARTSIGHT_SERVE_SCREENSHOT when set)."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from _serve import clip_cut, running_server

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # a test-pattern camera, allowed without asking
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system chromium (apt-get install chromium)")]

CANVAS_SUM = "(() => { const c = document.getElementById('overlay'); " \
             "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; " \
             "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7; return s; })()"


def wait_until(page, expression: str, timeout_s: float) -> None:
    """Polls a JavaScript expression until it is truthy (page.evaluate: Playwright's
    wait_for_function would evaluate a string, which the page's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"not true within {timeout_s:.0f} s: {expression}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server():
    with running_server() as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 1000})
        context.grant_permissions(["camera"], origin=server.url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url)
        page.wait_for_selector("#model option", state="attached")
        yield page
        browser.close()
        assert not errors, errors


def test_image_is_coloured_in_the_page_with_part_toggles(page, media_dir, tmp_path):
    from _serve import frame_png

    png, _ = frame_png(media_dir / "cg-mannequin-squat.mp4", 20)
    (tmp_path / "squat.png").write_bytes(png)
    page.set_input_files("#file", str(tmp_path / "squat.png"))
    page.wait_for_selector("#overlay:not([hidden])", timeout=180_000)
    page.wait_for_selector("#people table")
    assert "1 person" in page.inner_text("#people caption")
    coloured = page.evaluate(CANVAS_SUM)
    page.click("#parts-none")
    plain = page.evaluate(CANVAS_SUM)
    page.check("input[name=torso_front]")
    torso = page.evaluate(CANVAS_SUM)
    assert len({coloured, plain, torso}) == 3
    page.click("#parts-all")
    page.fill("#opacity", "0.6")
    assert page.evaluate(CANVAS_SUM) == coloured


def test_clip_becomes_a_job_with_video_downloads_and_reps(page, media_dir, tmp_path):
    clip = clip_cut(media_dir / "faults" / "squat30.mp4", tmp_path / "squat-clip.mp4", 12)
    page.select_option("#exercise", "squat")
    page.click("#controls details summary")
    page.select_option("#pose", "parser")
    page.fill("#frames", "12")
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#job:not([hidden])")
    page.wait_for_selector("#reps-table", timeout=300_000)
    assert page.inner_text("#job-state").startswith("done: 12 of 12 frames")
    assert page.get_attribute("#job-progress", "value") == "100"
    assert page.inner_text("#reps-table caption").startswith("squat:")
    assert page.locator("#reps table").count() == 2
    wait_until(page, "document.getElementById('result-video').readyState >= 2", 60)
    size = page.evaluate("[document.getElementById('result-video').videoWidth, "
                         "document.getElementById('result-video').videoHeight]")
    assert size == [192, 424]  # the annotated MP4 decodes in the browser
    assert page.locator("#downloads a").count() == 3
    screenshot = tmp_path / "serve.png"
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("PARTSIGHT_SERVE_SCREENSHOT"):
        target = Path(os.environ["PARTSIGHT_SERVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, target)


def test_camera_streams_over_the_websocket(page):
    page.select_option("#exercise", "squat")
    page.click("#camera")
    wait_until(page, "Number(document.getElementById('live-stats').dataset.results || 0) >= 3", 180)
    assert "results/s" in page.inner_text("#live-stats")
    assert page.is_visible("#overlay")
    assert "live count" in page.inner_text("#reps caption")
    page.click("#camera")
    assert page.inner_text("#camera") == "Use my camera"
