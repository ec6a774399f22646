"""A real HTTP MJPEG camera on 127.0.0.1 (multipart/x-mixed-replace JPEGs, no timestamps) is
timed as its frames arrive, not at FFmpeg's guessed 25 fps."""
from __future__ import annotations

import http.server
import json
import threading
import time

import cv2
import pytest

from realtime.cli import main
from realtime.sources import open_source

CAMERA_FPS = 10


class _Camera(http.server.BaseHTTPRequestHandler):
    jpegs: list[bytes] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        started_s, sent = time.monotonic(), 0
        while not self.server.stopping.is_set():
            jpeg = self.jpegs[sent % len(self.jpegs)]
            try:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n"
                                 % (len(jpeg), jpeg))
            except OSError:
                return  # the reader hung up
            sent += 1
            self.server.stopping.wait(max(0.0, started_s + sent / CAMERA_FPS - time.monotonic()))


class _CameraServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass


@pytest.fixture
def mjpeg_camera(media_dir):
    capture = cv2.VideoCapture(str(media_dir / "faults" / "squat30.mp4"))
    jpegs = []
    while (read := capture.read())[0]:
        jpegs.append(cv2.imencode(".jpg", read[1])[1].tobytes())
    capture.release()
    server = _CameraServer(("127.0.0.1", 0), type("Camera", (_Camera,), {"jpegs": jpegs}))
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def _read(source, count: int) -> list:
    """Up to `count` frames read from the started `source` (fewer only if it stalls for 30 s)."""
    frames = []
    deadline = time.monotonic() + 30  # a hang guard
    while len(frames) < count and time.monotonic() < deadline:
        if (frame := source.read(0.5)) is not None:
            frames.append(frame)
    return frames


def test_an_mjpeg_camera_is_timed_by_the_arrival_of_its_frames(mjpeg_camera):
    source = open_source(mjpeg_camera, timeout_s=5.0)
    source.start()
    try:
        frames = _read(source, 20)
    finally:
        source.stop()
    assert source.info.live and len(frames) == 20, f"{len(frames)} frames read"
    span_s = frames[-1].pts_s - frames[0].pts_s
    print(f"20 frames of a {CAMERA_FPS}-fps camera span {span_s:.2f} s")
    # 19 steps of 0.1 s: 1.9 s; FFmpeg's 25-fps guess gave 0.76 s
    assert span_s >= 1.5


def test_an_mjpeg_cameras_rate_is_the_one_its_frames_arrive_at(mjpeg_camera):
    """The camera states no rate (FFmpeg would assume 25): unknown until a few frames came, then
    the rate they arrive at: the frames' steps over the seconds their arrival times span (the
    first at 0 s), which the frames read show once the last one delivered is read."""
    source = open_source(mjpeg_camera, timeout_s=5.0)
    info = source.start()
    try:
        assert info.fps is None
        frames = _read(source, 20)
    finally:
        source.stop()
    while (frame := source.read(0)) is not None:  # delivered before the stop, not yet read
        frames.append(frame)
    assert len(frames) >= 20, f"{len(frames)} frames read"
    last = frames[-1]
    assert last.index == source.frames_read - 1 and not any(frame.gap for frame in frames)
    measured = source.fps
    print(f"a {CAMERA_FPS}-fps camera measured at {measured:.2f} fps over {last.index} steps, {source.dropped} dropped")
    assert measured == pytest.approx(last.index / last.pts_s, rel=1e-9)
    assert 6 <= measured <= 16, "not FFmpeg's guessed 25"


def test_bench_reports_an_mjpeg_cameras_arrival_rate(mjpeg_camera, capsys):
    assert main(["bench", mjpeg_camera, "--size", "160x120", "--frames", "10", "--warmup", "2", "--max-people", "1",
                 "--pose", "parser", "--person-mask", "parser", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    print(report["fps"], report["source_fps"], report["dropped"])
    assert 6 <= report["source_fps"] <= 16, "the camera's 10 fps as they arrive, not FFmpeg's guessed 25"


def test_a_summary_gives_an_mjpeg_cameras_arrival_rate(mjpeg_camera, tmp_path):
    """`process --summary`'s source rate is the one its times use: the frames' arrival rate, not
    null (the camera states none) nor FFmpeg's guessed 25."""
    summary = tmp_path / "summary.json"
    assert main(["process", mjpeg_camera, "--frames", "12", "--size", "160x120", "--exercise", "squat",
                 "--max-people", "1", "--pose", "parser", "--person-mask", "parser", "--device", "cpu",
                 "-o", str(tmp_path / "camera.mp4"), "--summary", str(summary)]) == 0
    fps = json.loads(summary.read_text())["source"]["fps"]
    print(f"summary fps {fps}")
    assert 6 <= fps <= 16
