"""A real RTSP camera on 127.0.0.1 (gst-rtsp-server, see _rtsp_server.py) that dies, hangs and
comes back: the source reconnects, the pipeline and window live on, the recording stays valid
and marks the gap, and the stream's credentials never show."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import pytest
from conftest import engine_threads, open_window, wait_for_frames

from realtime.cli import main
from realtime.config import PipelineConfig
from realtime.pipeline import Pipeline
from realtime.reconnect import Backoff
from realtime.recorder import pick_video_codec
from realtime.sources import open_source

HERE = Path(__file__).resolve().parent
SERVER = HERE / "_rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-gi lives there, not in the venv
INSTALL_HINT = ("apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
                "gstreamer1.0-plugins-good (.ci/run does)")
USER, PASSWORD = "coach", "s3cret-pw"


def _server_missing() -> str | None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no {SYSTEM_PYTHON}; {INSTALL_HINT}"
    check = subprocess.run([SYSTEM_PYTHON, str(SERVER), "--check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        reason = (check.stderr.strip().splitlines() or ["?"])[-1]
        return f"the GStreamer RTSP server cannot run ({reason}); {INSTALL_HINT}"
    return None


_MISSING = _server_missing()
pytestmark = [pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
              pytest.mark.usefixtures("engine_threads_joined")]


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory, single_clip) -> Path:
    """The real clip as an IP camera sends it: H.264, 240x426, 30 fps, a keyframe a second, 20 s long."""
    if pick_video_codec() != "libx264":
        pytest.fail("this PyAV has no libx264 encoder to make the H.264 camera stream")
    path = tmp_path_factory.mktemp("camera") / "camera.mp4"
    with av.open(str(single_clip)) as source:
        frames = [cv2.resize(f.to_ndarray(format="rgb24"), (240, 426)) for f in source.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 240, 426, "yuv420p"
        stream.options = {"g": "30", "bf": "0", "preset": "veryfast"}
        for _ in range(6):
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


class RtspCamera:
    """The server process; `kill` and `start` again on the same port, `freeze`/`thaw` to hang it."""

    def __init__(self, clip: Path, credentials: tuple[str, str] | None = None) -> None:
        self.clip = clip
        self.credentials = credentials
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._process: subprocess.Popen | None = None

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}/clip"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), str(self.clip), *(self.credentials or ())],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._process.stdout.readline().strip()
        if line != "ready":
            self._process.kill()
            raise RuntimeError(f"the RTSP server did not start: {line} {self._process.stderr.read()}")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
            self._process.kill()
        if self._process is not None:
            self._process.wait(10)

    def freeze(self) -> None:
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._process.send_signal(signal.SIGCONT)


@pytest.fixture
def camera(camera_clip):
    server = RtspCamera(camera_clip)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def locked_camera(camera_clip):
    server = RtspCamera(camera_clip, credentials=(USER, PASSWORD))
    server.start()
    yield server
    server.kill()


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _attempt(status: str) -> int:
    """The reconnection attempt a source's status names."""
    return int(re.search(r"\(attempt (\d+)\)$", status).group(1))


def _delay_s(status: str) -> float:
    return float(re.search(r"reconnecting in ([\d.]+) s", status).group(1))


def test_killed_camera_reconnects_and_the_recording_marks_the_gap(camera, tmp_path):
    video, metrics = tmp_path / "cam.mp4", tmp_path / "cam.jsonl"
    pipeline = Pipeline(PipelineConfig(source=camera.url(), device="cpu", max_people=1))
    arrivals: list[tuple[float, int]] = []
    pipeline.subscribe(lambda r: arrivals.append((time.monotonic(), r.frame.index)))
    recorder = pipeline.start_recording(video, metrics_path=metrics)
    pipeline.start()
    try:
        assert _wait_for(lambda: len(arrivals) >= 15, 30), "no frames from the camera"
        camera.kill()
        assert _wait_for(lambda: pipeline.source_status is not None, 15), "the outage was not noticed"
        assert "reconnecting in" in pipeline.source_status
        time.sleep(2.0)
        assert "partsight-inference" in engine_threads() and "partsight-capture" in engine_threads()
        assert pipeline.error is None
        during_outage = len(arrivals)
        camera.start()
        back = _attempt(pipeline.source_status)  # the try under way, or waited for, as the camera came back
        statuses = [pipeline.source_status]
        assert _wait_for(lambda: statuses.append(pipeline.source_status) or len(arrivals) > during_outage, 30), \
            pipeline.source_status
        assert _wait_for(lambda: len(arrivals) >= during_outage + 15, 30)
        assert pipeline.source_status is None and pipeline.source.reconnections == 1
    finally:
        pipeline.stop()
    tries = [status for status in statuses if status is not None]
    print(f"the camera came back during attempt {back}; reconnected at attempt {_attempt(tries[-1])}")
    assert _attempt(tries[-1]) <= back + 1, "the first try after the camera came back (or the one under way) reconnects"
    assert all(_delay_s(status) <= Backoff().max_s for status in tries), "the backoff is capped"

    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    gaps = [line for line in lines if line.get("event") == "gap"]
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    assert gap["to_pts_s"] - gap["from_pts_s"] >= 2.0 and camera.url() in gap["reason"]
    frames = [line for line in lines if "index" in line]
    position = lines.index(gap)
    assert lines[position - 1]["pts_s"] == gap["from_pts_s"] and lines[position + 1]["pts_s"] == gap["to_pts_s"]
    assert [f["index"] for f in frames] == sorted({f["index"] for f in frames}), "indices run on, never repeat"
    with av.open(str(video)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == recorder.frames_written == len(frames)
    assert all(b > a for a, b in zip(times, times[1:]))
    assert max(b - a for a, b in zip(times, times[1:])) >= 2.0, "the outage shows as a jump in time"


def test_a_hung_camera_times_out_instead_of_blocking_the_thread(camera):
    source = open_source(camera.url(), timeout_s=4.0)
    source.start()
    try:
        assert source.read(10) is not None
        camera.freeze()  # the socket stays open, nothing arrives
        assert _wait_for(lambda: source.status is not None, 30), "a read hung"
        noticed = source.status
        camera.thaw()
        assert _wait_for(lambda: source.read(0.5) is not None and source.status is None, 30)
        assert source.reconnections == 1
    finally:
        camera.kill()
        source.stop()
    print(f"the hung camera: {noticed}")
    assert "no answer in time" in noticed and _attempt(noticed) == 1, "the read timed out, and only that ended it"


def test_a_camera_hung_for_longer_than_the_read_timeout_is_given_up_on_and_the_gap_covers_the_hang(camera):
    """A camera that hangs for 1.5 times the read timeout is given up on (a read gives up after
    timeout_s, as README says: FFmpeg's first timed-out read still hands over the frame it held
    back, so each read waits half of it) and reconnected once it answers; the gap then runs from
    the last frame before the hang to the first after, over at least the time it hung."""
    timeout_s = 4.0
    source = open_source(camera.url(), timeout_s=timeout_s)
    source.start()
    try:
        assert _wait_for(lambda: source.read(0.5) is not None and source.frames_read >= 15, 30), "no frames"
        camera.freeze()  # the socket stays open, nothing arrives
        frozen_s = time.monotonic()
        while time.monotonic() < frozen_s + 1.5 * timeout_s:
            source.read(0.1)
        camera.thaw()
        hung_s = time.monotonic() - frozen_s
        gap = None
        deadline = time.monotonic() + 20  # a hang guard
        while gap is None and time.monotonic() < deadline:
            frame = source.read(0.5)
            gap = frame.gap if frame is not None else None
    finally:
        camera.kill()
        source.stop()
    assert gap is not None, f"a camera silent for {hung_s:.1f} s (read timeout {timeout_s} s) was not given up on"
    assert "no answer in time" in gap.reason
    print(f"hung {hung_s:.2f} s, gap {gap.from_pts_s:.2f} -> {gap.to_pts_s:.2f} s")
    assert gap.to_pts_s - gap.from_pts_s >= hung_s


@pytest.mark.parametrize("command", [["pose-quality"], ["eval", "flicker"]], ids=["pose-quality", "eval-flicker"])
def test_a_measure_of_a_live_camera_without_frames_is_refused_in_one_line(camera, command):
    """A measure over a clip (`pose-quality`, `eval flicker`) on a live camera would run with no
    end: refused as --loop without --frames is."""
    run = subprocess.run([sys.executable, str(HERE.parent / "main.py"), *command, camera.url(), "--pose", "parser",
                          "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)  # a hang guard: it ran on until stopped
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert run.stderr == f"partsight: error: {camera.url()} needs --frames: a live source never ends (see " \
                         f"'partsight {' '.join(command)} --help')\n"


@pytest.mark.parametrize(("options", "noted"), [(["--loop", "--realtime"], "--loop and --realtime apply"),
                                               (["--realtime"], "--realtime applies")])
def test_file_options_on_a_live_camera_are_noted_as_fps_on_a_video_is(camera, tmp_path, options, noted):
    run = subprocess.run([sys.executable, str(HERE.parent / "main.py"), "process", camera.url(), "-o",
                          str(tmp_path / "cam.mp4"), "--frames", "3", *options, "--pose", "parser", "--person-mask",
                          "parser", "--max-people", "1", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if line.startswith("partsight: note:")]
    assert notes == [f"partsight: note: {noted} to files; {camera.url()} is live: its frames are taken as they come, "
                     "newest first, with no end to start again from"]


def test_stop_while_reconnecting_is_immediate(camera):
    source = open_source(camera.url(), timeout_s=2.0)
    source.start()
    assert source.read(10) is not None
    camera.kill()
    assert _wait_for(lambda: "reconnecting in 2.0 s" in (source.status or ""), 15)
    source.stop(timeout_s=1.0)
    assert "partsight-capture" not in engine_threads(), "stop() waited out the 2 s backoff"
    assert source.error is None


def test_stream_credentials_never_appear_in_outputs_logs_or_errors(locked_camera, tmp_path, caplog):
    out = tmp_path / "out"
    env = {**os.environ, "PARTSIGHT_PROGRESS": "1"}
    env.pop("PARTSIGHT_DEBUG", None)
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "main.py"), "process", locked_camera.url((USER, PASSWORD)),
         "-o", str(out / "cam.mp4"), "--metrics", str(out / "cam.jsonl"), "--frames", "20", "--device", "cpu"],
        capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    assert "audio: none (the source has no sound track, or is live)" in run.stdout + run.stderr  # not "no times"
    wrong = subprocess.run(
        [sys.executable, str(HERE.parent / "main.py"), "process", locked_camera.url((USER, "wrong-" + PASSWORD)),
         "-o", str(out / "denied.mp4"), "--device", "cpu"],
        capture_output=True, text=True, timeout=180, env=env)
    assert wrong.returncode == 1 and wrong.stderr.count("partsight: error:") == 1, wrong.stderr
    assert "Traceback" not in wrong.stderr and "the user name or password was not accepted" in wrong.stderr
    bare = subprocess.run(
        [sys.executable, str(HERE.parent / "main.py"), "process", locked_camera.url(), "-o", str(out / "bare.mp4"),
         "--device", "cpu"], capture_output=True, text=True, timeout=180, env=env)
    assert bare.returncode == 1 and "it asks for a user name and password: add them to the address, before " \
        "the host" in bare.stderr, bare.stderr

    caplog.set_level(logging.DEBUG)
    source = open_source(locked_camera.url((USER, PASSWORD)), timeout_s=2.0)
    source.start()
    try:
        assert source.read(10) is not None
        locked_camera.kill()
        assert _wait_for(lambda: source.status is not None, 15)
        status = source.status
        locked_camera.start()
        gap = None
        deadline = time.monotonic() + 15
        while gap is None and time.monotonic() < deadline:
            frame = source.read(0.5)
            gap = frame.gap if frame is not None else None
    finally:
        source.stop()
    assert gap is not None

    shown = [run.stdout, run.stderr, wrong.stdout, wrong.stderr, caplog.text, status, gap.reason, source.info.name,
             (out / "cam.jsonl").read_text(), *(str(p) for p in tmp_path.rglob("*"))]
    assert "127.0.0.1" in caplog.text and "***@" in caplog.text, "the log names the camera, without its password"
    for text in shown:
        assert PASSWORD not in text


@pytest.mark.parametrize(("password", "typed"), [("p@ss:w0rd", "p@ss:w0rd"), ("s3cr/et", "s3cr/et"),
                                                 ("p@ss:w0rd", "p%40ss%3Aw0rd"), ("s3cr/et", "s3cr%2Fet"),
                                                 ("p ace'[x]", "p ace'[x]"), ("p ace'[x]", "p%20ace%27%5Bx%5D")])
def test_the_fault_camera_with_awkward_passwords_leaks_nothing(media_dir, tmp_path, password, typed):
    """faults/camera.mp4 behind a real RTSP server whose password holds '@', ':' or '/', typed in
    the URL as it is or %-escaped (as a URL's user-info should be: then the camera must open):
    whether the URL works or not, no part of the password, in either form, is shown, logged or
    written."""
    server = RtspCamera(media_dir / "faults" / "camera.mp4", credentials=("coach", password))
    server.start()
    log_file = tmp_path / "partsight.log"
    try:
        run = subprocess.run(
            [sys.executable, str(HERE.parent / "main.py"), "process", server.url(("coach", typed)),
             "-o", str(tmp_path / "cam.mp4"), "--metrics", str(tmp_path / "cam.jsonl"), "--frames", "5",
             "--exercise", "squat", "--summary", str(tmp_path / "cam.summary.json"), "--device", "cpu"],
            capture_output=True, text=True, timeout=180, env={**os.environ, "PARTSIGHT_LOG_FILE": str(log_file)})
    finally:
        server.kill()
    if "%" in typed:
        assert run.returncode == 0, run.stderr
        assert len((tmp_path / "cam.jsonl").read_text().splitlines()) == 5
    written = [path.read_text(errors="replace") for path in tmp_path.rglob("*")
               if path.suffix in (".log", ".jsonl", ".json")]
    for text in (run.stdout, run.stderr, *written, *(str(p) for p in tmp_path.rglob("*"))):
        for secret in (password, typed, password.split("@")[-1], password.split("/")[0], "coach"):
            assert secret not in text


def test_credentials_for_a_missing_camera_stay_out_of_the_cli_error(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/clip"
    assert main(["process", url, "-o", str(tmp_path / "x.mp4"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("partsight: error: cannot open rtsp://***@127.0.0.1") and PASSWORD not in err
    assert not list(tmp_path.iterdir()), "no empty output is left behind"


def test_the_window_lives_through_a_camera_outage(locked_camera, qtbot, tmp_path):
    window = open_window(qtbot, tmp_path, max_people=1)
    try:
        picker = window.source_panel.source_picker
        picker.set_stream_url(locked_camera.url((USER, PASSWORD)))  # as typed into the picker
        wait_for_frames(qtbot, window, 5)
        window.recording_panel.toggle_recording()
        locked_camera.kill()
        qtbot.waitUntil(lambda: window.banner.isVisible() and "reconnecting" in window.banner.text(), timeout=15000)
        window.refresh_state()
        assert window.status_panel.field("state") == "reconnecting…" and not window.stalled
        outage_text = window.banner.text()
        shown = window.frames_shown
        locked_camera.start()
        wait_for_frames(qtbot, window, shown + 5)
        qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=15000)
        recording = window.recording_panel.recording_path
        window.recording_panel.toggle_recording()
        title = window.windowTitle()
    finally:
        window.close()
    assert "127.0.0.1" in title
    for text in (title, outage_text, str(recording)):
        assert PASSWORD not in text
    gap_lines = [line for line in recording.with_suffix(".jsonl").read_text().splitlines() if '"event":"gap"' in line]
    assert len(gap_lines) == 1 and PASSWORD not in gap_lines[0]
