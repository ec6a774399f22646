"""The service's web page in a real browser: Debian's chromium, headless, driven by Playwright (the
system browser, nothing downloaded), against a real `partsight serve`. An image is parsed and coloured
in the page with per-part toggles; a clip becomes a job whose plain video plays under a canvas that
colours the label map of the frame on screen, with the same toggles and opacity (read back from the
canvas's pixels), and whose downloads and reps table appear; the (fake) camera streams over the
WebSocket. Screenshots of the page are saved in the test's tmp folder (and the video one to
$PARTSIGHT_SERVE_SCREENSHOT when set)."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from _serve import clip_cut, decode_png, running_server

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


OVERLAY_RGBA = "(() => { const c = document.getElementById('overlay'); " \
               "return [c.height, c.width, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; })()"
# records every frame index the overlay shows, in order
WATCH_FRAMES = "(() => { const o = document.getElementById('overlay'); window.shownFrames = []; " \
               "new MutationObserver(() => window.shownFrames.push(Number(o.dataset.frame)))" \
               ".observe(o, { attributes: true, attributeFilter: ['data-frame'] }); return true; })()"
VIDEO = "document.getElementById('result-video')"


def overlay_rgba(page) -> np.ndarray:
    """The overlay canvas's pixels: H x W x 4 RGBA (unpremultiplied, as getImageData gives them)."""
    height, width, data = page.evaluate(OVERLAY_RGBA)
    return np.array(data, np.int16).reshape(height, width, 4)


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
    # the people sources whose weights are here, the parser's own people first (the server's default)
    assert page.eval_on_selector_all("#people-source option", "options => options.map((o) => o.value)") == [
        "parser", "bodypix", "bodypix-s8"]
    assert page.input_value("#people-source") == "parser"
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


def test_a_picture_the_browser_cannot_read_says_so(page, tmp_path):
    """A file named and typed as an image that is not one (or a format the browser cannot read)
    is not sent off as a video: the page says what to send instead."""
    (tmp_path / "bad.jpg").write_text("not a picture")
    page.set_input_files("#file", str(tmp_path / "bad.jpg"))
    page.wait_for_selector("#message:not([hidden])")
    assert "bad.jpg: this browser cannot read the picture" in page.inner_text("#message")
    assert page.is_hidden("#job")

def test_clip_becomes_a_job_with_video_downloads_and_reps(page, server, media_dir, tmp_path):
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
    wait_until(page, f"{VIDEO}.readyState >= 2", 60)
    assert page.evaluate(f"[{VIDEO}.videoWidth, {VIDEO}.videoHeight]") == [192, 424]  # the plain MP4 decodes
    assert page.locator("#downloads a").count() == 3
    metrics_path = page.get_attribute("#downloads a[href$='/metrics']", "href")
    job = metrics_path.removesuffix("/metrics")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        lines = [json.loads(line) for line in client.get(metrics_path).text.splitlines()]
        labels = decode_png(client.get(f"{job}/labels/5").content)
        bodypix = next(m for m in client.get("/v1/models").json() if m["name"] == "bodypix")
    palette = np.array(bodypix["palette"])
    assert [line["index"] for line in lines] == list(range(12))

    # the overlay follows the playing video, frame by frame
    wait_until(page, "document.getElementById('overlay').dataset.frame === '0'", 60)
    assert page.is_visible("#overlay") and page.is_visible("#view-settings")
    page.evaluate(WATCH_FRAMES)
    page.evaluate(f"(() => {{ {VIDEO}.muted = true; {VIDEO}.playbackRate = 0.25; {VIDEO}.play(); }})()")
    wait_until(page, f"{VIDEO}.ended", 60)
    shown = page.evaluate("window.shownFrames")
    assert len(set(shown)) >= 4 and shown == sorted(shown) and shown[-1] == 11, shown
    # paused on frame 5 (its time in the JSONL): its label map, coloured at the opacity
    page.evaluate(f"{VIDEO}.currentTime = {lines[5]['pts_s'] + 0.005}")
    wait_until(page, "document.getElementById('overlay').dataset.frame === '5'", 30)
    page.uncheck("#skeleton")
    torso = labels == bodypix["labels"].index("torso_front")
    parts = labels > 0
    assert torso.sum() > 500
    coloured = overlay_rgba(page)
    assert coloured.shape[:2] == labels.shape
    assert np.array_equal(coloured[..., 3], np.where(parts, 153, 0))  # 0.6 opacity: alpha 153 on every part
    assert np.abs(coloured[parts][:, :3] - palette[labels[parts]]).max() <= 2  # each part in its colour
    page.uncheck("input[name=torso_front]")
    untorso = overlay_rgba(page)
    assert not untorso[torso].any() and np.array_equal(untorso[~torso], coloured[~torso])
    page.fill("#opacity", "1")
    opaque = overlay_rgba(page)
    shown_parts = parts & ~torso
    assert np.array_equal(opaque[..., 3], np.where(shown_parts, 255, 0))
    assert np.array_equal(opaque[shown_parts][:, :3], palette[labels[shown_parts]])
    page.check("input[name=torso_front]")
    page.fill("#opacity", "0.6")
    assert np.array_equal(overlay_rgba(page), coloured)
    page.check("#skeleton")
    assert not np.array_equal(overlay_rgba(page), coloured)  # the frame's skeleton from its JSONL line

    screenshot = tmp_path / "serve-video.png"
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
