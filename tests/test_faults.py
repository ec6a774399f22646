"""Inputs as cameras, phones, editors and web servers hand them over (PARTSIGHT_MEDIA_DIR/faults,
see its README) and other members of the same kinds made here with PyAV: each is processed as a
player shows it — upright, timed from 0, every frame, with its sound — and never leaks credentials."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from _http_files import serve_folder
from conftest import kill_process_after_lines, open_window, wait_for_frames

from realtime.analysis.fitness import HINTS, MIN_PERSON_PX
from realtime.cli import main
from realtime.geometry import frame_display_matrix
from realtime.logs import configure_logging
from realtime.metrics import schema_path
from realtime.sources import SourceError, SourceInfo, keeps_own_rate, natural_key, open_source, redact_url

PASSWORDS = ("p@ss:w0rd", "s3cr/et", "p%40ss", "a:b@c/d%2Fe", "p ace", "t\tab", 'q"uote', "it's", "<a>", "[b]",
             "]b[", "(c)", "\u00e9t\u00e9 \u2603", "a'b\"c <d> [e] (f) @g")


@pytest.fixture(scope="session")
def faults(media_dir):
    return media_dir / "faults"


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", ["rtsp", "http", "rtmp"])
def test_the_whole_user_info_is_redacted(scheme, password):
    url = f"{scheme}://coach:{password}@127.0.0.1:8554/clip"
    for text in (f"cannot open {url}: refused", f"'{url}'", f"({url})", f"{url} and {url}"):
        shown = redact_url(text)
        assert "coach" not in shown and password not in shown and "w0rd" not in shown and "et@" not in shown
        assert shown.count(f"{scheme}://***@127.0.0.1:8554/clip") == text.count("://")
    assert redact_url("rtsp://127.0.0.1/clip") == "rtsp://127.0.0.1/clip"
    assert redact_url(f"rtsp://127.0.0.1/clip\n{url}") == f"rtsp://127.0.0.1/clip\n{scheme}://***@127.0.0.1:8554/clip"


@pytest.mark.parametrize("line_break", ["\n", "\r", "\x0c", "\u2028"])
def test_a_stream_url_holding_a_line_break_is_refused_unshown(line_break, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PARTSIGHT_LOG_FILE", str(tmp_path / "partsight.log"))
    url = f"rtsp://coach:s3cr{line_break}et@127.0.0.1:{_closed_port()}/clip"
    assert main(["process", url, "-o", str(tmp_path / "x.mp4"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"partsight: error: the stream URL holds a line break ({ascii(line_break)}): write it as %")
    log_text = (tmp_path / "partsight.log").read_text() if (tmp_path / "partsight.log").exists() else ""
    for text in (err, log_text):
        assert "s3cr" not in text and "coach" not in text


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_credentials_of_a_camera_that_refuses_stay_out_of_errors_and_logs(scheme, password, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("PARTSIGHT_LOG_FILE", str(tmp_path / "partsight.log"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    assert main(["process", f"{scheme}://coach:{password}@127.0.0.1:{port}/clip", "-o", str(tmp_path / "x.mp4"),
                 "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"partsight: error: cannot open {scheme}://***@127.0.0.1:{port}/clip")
    log_text = (tmp_path / "partsight.log").read_text() if (tmp_path / "partsight.log").exists() else ""
    for text in (captured.out, captured.err, log_text):
        assert password not in text and "coach" not in text
        assert password.replace("%40", "@") not in text  # nor the password decoded


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize(("password", "character", "written"), [("s3cr/et", "/", "%2F"), ("s3cr?et", "?", "%3F"),
                                                                 ("s3cr#et", "#", "%23")])
def test_a_password_holding_a_character_that_ends_the_address_is_named_not_shown(password, character, written,
                                                                                  tmp_path, capsys):
    log_file = configure_logging()  # this process's log file, which main() writes to
    logged_before = log_file.stat().st_size
    port = _closed_port()
    assert main(["process", f"rtsp://coach:{password}@127.0.0.1:{port}/stream", "-o", str(tmp_path / "x.mp4"),
                 "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"partsight: error: cannot open rtsp://***@127.0.0.1:{port}/stream: the password holds "
                          f"'{character}': write it as {written}"), err
    logged = log_file.read_bytes()[logged_before:].decode(errors="replace")
    assert f"cannot open rtsp://***@127.0.0.1:{port}/stream" in logged, "the failure is in the log, FFmpeg's text too"
    for text in (err, logged):
        assert password not in text and "s3cr" not in text and "coach" not in text


@pytest.mark.parametrize(("url", "advice"), [("http://127.0.0.1:{port}/sessions/squat.mp4", "the server is running"),
                                             ("https://127.0.0.1:{port}/clip.MKV?x=1", "the server is running"),
                                             ("http://127.0.0.1:{port}/live", "the camera is on"),
                                             ("rtsp://127.0.0.1:{port}/stream.mp4", "the camera is on")])
def test_nothing_listening_names_a_server_for_a_file_url_and_a_camera_otherwise(url, advice, tmp_path, capsys):
    url = url.format(port=_closed_port())
    assert main(["process", url, "-o", str(tmp_path / "x.mp4"), "--device", "cpu"]) == 1
    assert f"cannot open {url}: nothing answered at that address (connection refused): check the address and that " \
           f"{advice}" in capsys.readouterr().err


class _Listener:
    """A plain TCP server on 127.0.0.1 in a thread, no camera: it accepts each connection and
    holds it open without a word (`close=False`) or closes it at once."""

    def __init__(self, close: bool) -> None:
        self.close = close
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="test-listener")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # stop() closed the server
                return
            if self.close:
                connection.close()
            else:
                self._held.append(connection)

    def stop(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(10)
        for connection in self._held:
            connection.close()


@pytest.mark.parametrize("close", [False, True], ids=["silent", "closing"])
def test_a_server_that_sends_no_video_is_named_as_a_network_problem(close, tmp_path, capsys):
    """A listener that never answers, or closes each connection at once, is said to be a
    network problem in a user's words, with what to check; not 'not a video' (a file's words)."""
    listener = _Listener(close)
    url = f"rtsp://coach:s3cret@127.0.0.1:{listener.port}/stream"
    try:
        if close:
            assert main(["process", url, "-o", str(tmp_path / "x.mp4"), "--device", "cpu"]) == 1
            error = capsys.readouterr().err
        else:
            source = open_source(url, timeout_s=1.0)
            with pytest.raises(SourceError) as raised:
                source.start(open_timeout_s=60)  # a hang guard: the open gives up after 1 s
            error = str(raised.value)
    finally:
        listener.stop()
    said = ("the connection was closed before a video came, or what answered is no RTSP camera: check the address "
            "and that the camera is on" if close
            else "no answer in time: check the address and that the camera is on and reachable")
    assert f"cannot open rtsp://***@127.0.0.1:{listener.port}/stream: {said}" in error, error
    assert "not a video" not in error and "s3cret" not in error


@pytest.mark.parametrize(("url", "host"), [("rtsp://coach:s3cret@camera.invalid/stream", "camera.invalid"),
                                           ("http://nosuchhost.invalid/x.mp4", "nosuchhost.invalid")])
def test_a_host_name_that_is_not_known_is_named(url, host, tmp_path, capsys):
    assert main(["process", url, "-o", str(tmp_path / "x.mp4"), "--device", "cpu"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"partsight: error: cannot open {redact_url(url)}: the host name '{host}' is not known: "
                            "check the address and the network") and error.count("\n") == 1, error


def test_fps_given_for_a_video_file_is_a_note_and_the_file_keeps_its_rate(faults, tmp_path, capsys):
    run = _process(faults / "squat30.mp4", tmp_path, "--fps", "60", "--frames", "3", "--pose", "parser",
                   "--person-mask", "parser", "--max-people", "1")
    assert run["code"] == 0
    assert [line["pts_s"] for line in run["lines"]] == pytest.approx([0, 1 / 30, 2 / 30], abs=1e-5)
    notes = [line for line in capsys.readouterr().err.splitlines() if "--fps" in line]
    assert notes == ["partsight: note: --fps applies to image folders and raw video streams; "
                     f"{faults / 'squat30.mp4'} keeps its own 30 fps"]
    folder = _process(faults / "frames60", tmp_path, "--fps", "60", "--frames", "2", "--pose", "parser",
                      "--person-mask", "parser", "--max-people", "1", name="folder")
    assert folder["code"] == 0 and folder["lines"][1]["pts_s"] == pytest.approx(1 / 60, abs=1e-5)
    assert "--fps applies" not in capsys.readouterr().err, "an image folder is read at --fps: nothing to note"


def _raw_stream(clip: Path, path: Path) -> Path:
    """`clip`'s video as a raw elementary stream without timestamps, as a DVR or `ffmpeg -f h264`
    dumps it: its H.264 packets re-muxed into a .h264 file, or its frames encoded into a .mjpeg."""
    with av.open(str(clip)) as source, av.open(str(path), "w", format=path.suffix[1:]) as out:
        video = source.streams.video[0]
        if path.suffix == ".h264":
            stream = out.add_stream_from_template(video)
            for packet in source.demux(video):
                if packet.dts is not None:
                    packet.stream = stream
                    out.mux(packet)
            return path
        stream = out.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuvj420p"
        for frame in source.decode(video):
            out.mux(stream.encode(frame.reformat(format="yuvj420p")))
        out.mux(stream.encode(None))
    return path


def test_a_raw_h264_stream_is_read_at_fps_every_frame_and_its_reps_timed_by_it(faults, tmp_path, capsys):
    """squat30 dumped to a raw .h264 (no container, no timestamps: FFmpeg would assume 25 fps)
    read with --fps 30: every frame at index/30, the reps at the clip's frames and times."""
    raw = _raw_stream(faults / "squat30.mp4", tmp_path / "squat30.h264")
    run = _squats(raw, tmp_path, "--fps", "30")
    assert [line["index"] for line in run["lines"]] == list(range(151))
    assert [line["pts_s"] for line in run["lines"]] == pytest.approx([i / 30 for i in range(151)], abs=1e-5)
    summary = run["summary"]
    assert summary["reps"] == 2 and summary["source"]["fps"] == 30
    reps = summary["per_rep"]
    assert [rep["turn_frame"] for rep in reps] == pytest.approx([44, 100], abs=3)
    for rep in reps:
        for at in ("start", "turn", "end"):
            assert rep[f"{at}_s"] == pytest.approx(rep[f"{at}_frame"] / 30, abs=1e-3)
    out, err = capsys.readouterr()
    assert f"{raw} has no timestamps (a raw video stream): read as 30 fps (given by --fps)" in out.splitlines()
    assert "--fps applies" not in err and "no timestamps" not in err, err


def test_a_raw_stream_from_a_named_pipe_gives_every_frame_to_the_run(faults, tmp_path, capsys):
    """`ffmpeg -f h264 pipe` into `process pipe --fps 30`: the run reads the pipe alone (a second
    open to ask whether it keeps its rate read 58 of 453 frames away from it)."""
    raw = _raw_stream(faults / "squat30.mp4", tmp_path / "squat30.h264").read_bytes()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with fifo.open("wb") as pipe:  # waits for a reader
                for _ in range(3):
                    for at in range(0, len(raw), 8192):
                        pipe.write(raw[at:at + 8192])
        except BrokenPipeError:
            pass  # the run stopped reading: its frame count says so

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    run = _process(fifo, tmp_path, "--fps", "30", "--pose", "parser", "--person-mask", "parser",
                   "--max-people", "1", "--size", "96x212")
    writer.join(timeout=60)
    if writer.is_alive():  # still waiting for a reader: one that closes at once ends it
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=60)
    assert run["code"] == 0
    assert [line["index"] for line in run["lines"]] == list(range(3 * 151))
    assert "--fps applies" not in capsys.readouterr().err


def test_batch_asks_a_named_pipe_nothing_before_its_run(tmp_path):
    """batch --fps asks each input whether it keeps its own rate: a pipe is not opened for it (the
    open waited for a writer, forever, and would take a writer's frames from the run)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    answers = []
    asking = threading.Thread(target=lambda: answers.append(keeps_own_rate(str(fifo))), daemon=True)
    asking.start()
    asking.join(timeout=10)
    opened = asking.is_alive()
    if opened:  # waiting in open() for a writer: one that closes at once ends it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        asking.join(timeout=10)
    assert not opened, "the pipe was opened"
    assert answers == [True]


def test_a_raw_stream_loops_on_at_its_rate(faults, tmp_path):
    """A raw stream has no index FFmpeg can seek in: --loop reads it again from its start, the
    frames running on at index/fps (it was "cannot be played from 0.00 s: permission denied")."""
    raw = _raw_stream(faults / "squat30.mp4", tmp_path / "squat30.h264")
    run = _process(raw, tmp_path, "--fps", "30", "--loop", "--frames", "155", "--pose", "parser",
                   "--person-mask", "parser", "--max-people", "1", "--size", "96x212")
    assert run["code"] == 0
    assert [line["index"] for line in run["lines"]] == list(range(155))
    assert [line["pts_s"] for line in run["lines"]] == pytest.approx([i / 30 for i in range(155)], abs=1e-5)


@pytest.mark.parametrize(("name", "fps", "rate"), [
    ("squat30.h264", 30, "as its stream header states; --fps overrides it"),  # x264's SPS timing
    ("squat30.mjpeg", 25, "assumed: the stream states no rate; --fps sets it")])
def test_a_raw_stream_without_fps_is_read_at_its_stated_rate_else_ffmpegs_and_says_which_once(
        name, fps, rate, faults, tmp_path, capsys):
    """Without --fps a raw stream is read at the rate its header states (the .h264 was read at 25,
    frame N at N/25, with advice to pass the rate it states), else at FFmpeg's assumed 25: the
    note `process` prints says which; nothing on stderr."""
    raw = _raw_stream(faults / "squat30.mp4", tmp_path / name)
    run = _process(raw, tmp_path, "--frames", "3", "--pose", "parser", "--person-mask", "parser",
                   "--max-people", "1")
    assert run["code"] == 0
    assert [line["pts_s"] for line in run["lines"]] == pytest.approx([0, 1 / fps, 2 / fps], abs=1e-5)
    out, err = capsys.readouterr()
    notes = [line for line in out.splitlines() if "timestamps" in line]
    assert notes == [f"{raw} has no timestamps (a raw video stream): read as {fps} fps ({rate})"]
    assert "timestamps" not in err, err


def _process(source, tmp_path, *args: str, name: str = "out") -> dict:
    """Runs `process SOURCE` in this process; returns its stdout, JSONL frame lines (none when the
    source gave no frame: then no JSONL is made) and summary."""
    out = tmp_path / name
    code = main(["process", str(source), "-o", str(out / "out.mp4"), "--metrics", str(out / "out.jsonl"),
                 "--device", "cpu", *args])
    metrics = out / "out.jsonl"
    lines = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    summary_path = out / "summary.json"
    return {"code": code, "lines": [line for line in lines if "index" in line], "video": out / "out.mp4",
            "summary": json.loads(summary_path.read_text()) if summary_path.exists() else None}


def _squats(source, tmp_path, *args: str, name: str = "out") -> dict:
    run = _process(source, tmp_path, "--exercise", "squat", "--summary", str(tmp_path / name / "summary.json"),
                   *args, name=name)
    assert run["code"] == 0
    return run


def _read_all(source) -> tuple[SourceInfo, list]:
    info = source.start()
    frames = []
    try:
        while not source.finished:
            frame = source.read(2.0)
            if frame is not None:
                frames.append(frame)
        assert source.error is None, source.error
    finally:
        source.stop()
    return info, frames


@pytest.fixture(scope="module")
def http_faults(faults):
    """A real web server on 127.0.0.1 serving the fault files."""
    server, thread = serve_folder(faults)
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_a_file_over_http_is_a_file_every_frame_in_order_to_its_end(http_faults, tmp_path, capsys):
    info, frames = _read_all(open_source(f"{http_faults}/squat30_faststart.mp4"))
    assert not info.live and info.frame_count == 151
    assert [f.index for f in frames] == list(range(151))
    assert frames[0].pts_s == 0 and frames[-1].pts_s == pytest.approx(150 / 30)
    run = _squats(f"{http_faults}/squat30_faststart.mp4", tmp_path)
    assert run["summary"]["reps"] == 2 and len(run["lines"]) == 151


def test_an_mp4_with_its_index_at_the_end_on_a_server_without_range_says_why(http_faults, tmp_path, capsys):
    """squat30.mp4 keeps its index (moov) after the frames, and `python3 -m http.server` answers
    no Range request: FFmpeg reads on to the index and cannot go back. One line says so and what
    to do; nothing claims a frame or an MP4 that was not written."""
    run = _process(f"{http_faults}/squat30.mp4", tmp_path, "--pose", "parser")
    captured = capsys.readouterr()
    assert run["code"] == 1 and run["lines"] == [] and not run["video"].exists()
    assert captured.err == (f"partsight: error: reading {http_faults}/squat30.mp4 failed at frame 0: the MP4's index "
                            "(moov) is at its end and the server does not allow seeking back to the frames (no HTTP "
                            "Range requests); re-encode it with faststart (ffmpeg -i IN -c copy -movflags +faststart "
                            "OUT) or serve it with Range support (no frame was written)\n")
    assert captured.out == ""


def test_a_url_longer_than_a_path_may_be_keeps_its_password(tmp_path, capsys):
    """A URL over PATH_MAX (4096 bytes) with a password: nothing treats it as a path (the
    recorder asked whether it was a folder, and the system's "File name too long" named it,
    password included, with its "//" folded so redaction missed it)."""
    secret = "SECRET" + "k" * 4100
    run = _process(f"rtsp://alice:{secret}@127.0.0.1:1/s", tmp_path)
    captured = capsys.readouterr()
    assert run["code"] == 1 and "SECRET" not in captured.err + captured.out, captured.err[:300]
    assert "rtsp://***@127.0.0.1:1/s" in captured.err, captured.err[:300]


def test_the_same_behind_a_login_asks_the_server_with_the_login(faults, tmp_path, capsys):
    """Whether the server takes Range requests is asked with the URL's user and password (HTTP
    Basic, as FFmpeg sent them): without them the server's 401 said nothing, and the reason was
    left out."""
    server, thread = serve_folder(faults, "hunter2")
    try:
        address = f"127.0.0.1:{server.server_port}"
        run = _process(f"http://coach:hunter2@{address}/squat30.mp4", tmp_path, "--pose", "parser")
    finally:
        server.shutdown()
        thread.join()
    captured = capsys.readouterr()
    assert run["code"] == 1 and "hunter2" not in captured.err + captured.out
    assert captured.err.startswith(f"partsight: error: reading http://***@{address}/squat30.mp4 failed at frame 0: "
                                   "the MP4's index (moov) is at its end and the server does not allow seeking"), \
        captured.err


# (password the server wants, how it is typed in the URL, whether that URL is valid): "@", ":" and
# "/" belong %-escaped in a URL's user-info; typed raw, the URL may not open, but never leaks.
HTTP_PASSWORDS = [("p@ss", "p%40ss", True), ("a:b@c/d", "a%3Ab%40c%2Fd", True), ("p@ss:w0rd", "p@ss:w0rd", True),
                  ("s3cr/et", "s3cr/et", False)]


@pytest.mark.parametrize(("password", "typed", "valid"), HTTP_PASSWORDS)
def test_a_file_behind_an_http_login_is_read_whole_and_its_password_never_shown(password, typed, valid, faults,
                                                                                 tmp_path, capsys, monkeypatch):
    log_file = tmp_path / "partsight.log"
    monkeypatch.setenv("PARTSIGHT_LOG_FILE", str(log_file))
    server, thread = serve_folder(faults, password)
    try:
        url = f"http://coach:{typed}@127.0.0.1:{server.server_port}/squat30_faststart.mp4"
        run = _process(url, tmp_path, "--exercise", "squat", "--summary", str(tmp_path / "out" / "summary.json"),
                       "--max-people", "1")
    finally:
        server.shutdown()
        thread.join()
    captured = capsys.readouterr()
    if valid:
        assert run["code"] == 0 and len(run["lines"]) == 151 and run["summary"]["reps"] == 2
        assert "audio: aac kept" in captured.out
        assert run["summary"]["source"]["name"] == f"http://***@127.0.0.1:{server.server_port}/squat30_faststart.mp4"
    else:
        assert run["code"] == 1 and captured.err.startswith("partsight: error: cannot open http://***@127.0.0.1")
    written = [path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.suffix in (".log", ".jsonl",
                                                                                                   ".json")]
    tails = {secret.rsplit("@", 1)[1] for secret in (password, typed) if "@" in secret}  # what ***@ once left
    for text in (captured.out, captured.err, *written, *(str(path) for path in tmp_path.rglob("*"))):
        for secret in {"coach", password, typed, *(tail for tail in tails if len(tail) > 2)}:
            assert secret not in text, secret


def test_a_concat_list_names_the_entry_that_is_missing_or_outside_its_folder(faults, tmp_path):
    """FFmpeg's concat reader says "permission denied" for an absolute or '..' entry, a URL or a
    name with a space or brackets, whether the file is there or not, and "no such file" for a
    missing one, without naming it."""
    for name in ("a.mp4", "my clip (1).mp4"):
        (tmp_path / name).write_bytes((faults / "squat30.mp4").read_bytes())
    gone = tmp_path / "gone.mp4"
    for entries, reason in (
            (["gone.mp4"], f"its entry 'gone.mp4' is missing (no such file in {tmp_path})"),
            ([str(gone)], f"its entry '{gone}' is missing (no such file)"),
            ([str(tmp_path / "a.mp4")], f"its entry '{tmp_path / 'a.mp4'}' is outside the list's folder"),
            (["../a.mp4"], "its entry '../a.mp4' is outside the list's folder"),
            (["my clip (1).mp4"], "its entry 'my clip (1).mp4' has a name FFmpeg's concat reader refuses"),
            (["http://127.0.0.1:9/a.mp4"], "its entry 'http://127.0.0.1:9/a.mp4' is a URL")):
        listed = tmp_path / "sub" / "list.ffconcat" if entries == ["../a.mp4"] else tmp_path / "list.ffconcat"
        listed.parent.mkdir(exist_ok=True)
        listed.write_text("ffconcat version 1.0\n" + "".join(f"file '{entry}'\n" for entry in entries))
        source = open_source(str(listed))
        with pytest.raises(SourceError) as refused:
            source.start()
        assert str(refused.value).startswith(f"cannot open {listed}: {reason}")
    listed = tmp_path / "list.ffconcat"
    listed.write_text("ffconcat version 1.0\nfile 'a.mp4'\nfile 'gone.mp4'\n")  # one missing after a good one
    source = open_source(str(listed))
    source.start()
    read = 0
    try:
        while not source.finished and source.error is None:
            read += source.read(2.0) is not None
    finally:
        source.stop()
    assert source.error.endswith(f": its entry 'gone.mp4' is missing (no such file in {tmp_path})")
    # every frame of the entry before it, those the decoder's threads still held included (4 were lost)
    assert read == 151 and " at frame 151: " in source.error, (read, source.error)


def test_folders_sort_names_naturally_and_ignore_other_files(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for number in (1, 2, 9, 10, 11, 100):
        cv2.imwrite(str(folder / f"frame{number}.png"), np.full((8, 8, 3), number, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    (folder / "thumbs").mkdir()
    info, frames = _read_all(open_source(str(folder), fps=12.5))
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 9, 10, 11, 100]
    assert [f.pts_s for f in frames] == [i / 12.5 for i in range(6)]
    assert info.frame_count == 6 and "6 images" in info.note and "12.5 fps" in info.note
    assert natural_key("2.jpg") < natural_key("10.jpg") < natural_key("a1.jpg")


def test_an_unpadded_image_sequence_counts_its_squats(faults, tmp_path, capsys):
    run = _squats(faults / "frames_unpadded", tmp_path)
    assert "151 images" in capsys.readouterr().out
    assert run["summary"]["reps"] == 2
    assert run["summary"]["source"]["fps"] == 30 and "default" in run["summary"]["source"]["note"]
    assert "interrupted" not in run["summary"]["source"], "a run to its end"


def _linked_folder(folder: Path, source: Path) -> Path:
    """`folder` holding links to `source`'s images: the real files, with room for a sidecar."""
    folder.mkdir(parents=True)
    for image in source.iterdir():
        (folder / image.name).symlink_to(image)
    return folder


FFPROBE_JSON = {"streams": [{"index": 0, "codec_type": "audio", "r_frame_rate": "0/0"},
                            {"index": 1, "codec_type": "video", "avg_frame_rate": "60/1", "r_frame_rate": "60/1"}]}


def test_an_image_sequence_takes_the_rate_its_export_states(faults, tmp_path, capsys):
    """frames60 beside ffprobe's JSON of the video the frames came from (`ffprobe -show_streams -of json`)."""
    folder = _linked_folder(tmp_path / "frames60", faults / "frames60")
    (folder / "source.json").write_text(json.dumps(FFPROBE_JSON))
    run = _squats(folder, tmp_path, "--frames", "6")
    out = capsys.readouterr().out
    assert f"303 images in name order, read as 60 fps (from {folder / 'source.json'}; --fps overrides it)" in out
    assert run["summary"]["source"]["fps"] == 60 and "source.json" in run["summary"]["source"]["note"]
    assert [line["pts_s"] for line in run["lines"]] == pytest.approx([i / 60 for i in range(6)], abs=1e-6)
    run = _squats(folder, tmp_path, "--frames", "6", "--fps", "30", name="given")
    assert run["summary"]["source"]["fps"] == 30 and "given by --fps" in run["summary"]["source"]["note"]


@pytest.mark.parametrize("sidecar", ["seqinfo.ini", "parent seqinfo.ini", "fps.json", "fraction.json"])
def test_an_image_sequence_reads_its_rate_from_a_sidecar(sidecar, upright, tmp_path):
    """The MOTChallenge layout (seqinfo.ini beside the images, or above them naming their imDir)
    and a JSON sidecar with a top-level rate, a number or a fraction."""
    folder = tmp_path / "sequence" / "img1"
    folder.mkdir(parents=True)
    for i, image in enumerate(upright * 2):
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    expected = {"seqinfo.ini": 25, "parent seqinfo.ini": 14, "fps.json": 12.5, "fraction.json": 30000 / 1001}[sidecar]
    if sidecar == "seqinfo.ini":
        (folder / "seqinfo.ini").write_text("[Sequence]\nname=clip\nframeRate=25\nseqLength=6\n")
    elif sidecar == "parent seqinfo.ini":
        (folder.parent / "seqinfo.ini").write_text("[Sequence]\nname=clip\nimDir=img1\nframeRate=14\n")
    elif sidecar == "fps.json":
        (folder / "meta.json").write_text(json.dumps({"camera": "phone", "fps": 12.5}))
    else:
        (folder / "export.json").write_text(json.dumps({"frame_rate": "30000/1001"}))
    info, frames = _read_all(open_source(str(folder)))
    assert info.fps == pytest.approx(expected) and "--fps overrides it" in info.note
    assert [f.pts_s for f in frames] == pytest.approx([i / expected for i in range(6)])


def test_a_sidecar_for_another_folder_or_without_a_rate_is_not_used_and_a_bad_rate_is_one_line(upright, tmp_path,
                                                                                                capsys):
    folder = tmp_path / "sequence" / "shots"
    folder.mkdir(parents=True)
    for i, image in enumerate(upright):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (folder.parent / "seqinfo.ini").write_text("[Sequence]\nimDir=img1\nframeRate=25\n")  # another folder's
    (folder / "keypoints.json").write_text(json.dumps({"people": [], "version": 1.3}))
    info, _ = _read_all(open_source(str(folder)))
    assert info.fps == 30 and "the default: the folder states no rate; --fps sets it" in info.note
    (folder / "meta.json").write_text(json.dumps({"fps": 0}))
    code = main(["process", str(folder), "-o", str(tmp_path / "out.mp4"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "meta.json gives the frame rate 0, which is not a positive number; fix it or pass --fps" in err


def test_an_image_sequence_at_60_fps_takes_its_rate(faults, tmp_path):
    run = _squats(faults / "frames60", tmp_path, "--fps", "60")
    assert run["summary"]["reps"] == 2 and run["summary"]["source"]["fps"] == 60
    assert run["lines"][-1]["pts_s"] == pytest.approx(302 / 60)
    for rep in run["summary"]["per_rep"]:  # the same squats as the 30 fps clip: about 0.6 s down, 0.6 s up
        assert 0.3 < rep["out_s"] < 0.9 and 0.3 < rep["back_s"] < 0.9


def _clip_frames(path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for _, frame in zip(range(count), container.decode(video=0))]


def _write_clip(path, images, *, sar: Fraction | None = None, matrix: list[int] | None = None, rate: int = 30,
                codec: str = "libx264", fmt: str = "mp4") -> None:
    """An H.264 clip of `images` with an optional sample aspect ratio and display matrix."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if matrix is not None:
            stream.set_display_matrix(matrix)
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _first_frame(spec: str):
    source = open_source(spec)
    source.start()
    try:
        return source.read(10)
    finally:
        source.stop()


@pytest.fixture(scope="module")
def upright(faults) -> list[np.ndarray]:
    """squat30's first frames, upright, with a red block marking the top-left corner."""
    images = _clip_frames(faults / "squat30.mp4", 3)
    for image in images:
        image[:40, :40] = (255, 0, 0)
    return images


ONE = 65536  # 1.0 in the display matrix's 16.16 fixed point
W_ONE = 1 << 30  # 1.0 in its 2.30 third column
# stored = the upright picture as the camera stored it; matrix = what the container says (row vectors:
# [x y 1] M), so that a player turns `stored` back upright
TURNS = {
    "90": (lambda u: np.rot90(u, -1), [0, -ONE, 0, ONE, 0, 0, 0, 0, W_ONE]),
    "270": (lambda u: np.rot90(u, 1), [0, ONE, 0, -ONE, 0, 0, 0, 0, W_ONE]),
    "180": (lambda u: u[::-1, ::-1], [-ONE, 0, 0, 0, -ONE, 0, 0, 0, W_ONE]),
    "hflip": (lambda u: u[:, ::-1], [-ONE, 0, 0, 0, ONE, 0, 0, 0, W_ONE]),
    "vflip": (lambda u: u[::-1], [ONE, 0, 0, 0, -ONE, 0, 0, 0, W_ONE]),
    "transpose": (lambda u: np.swapaxes(u, 0, 1), [0, ONE, 0, ONE, 0, 0, 0, 0, W_ONE]),
    "antitranspose": (lambda u: np.rot90(u, -1)[::-1], [0, -ONE, 0, -ONE, 0, 0, 0, 0, W_ONE]),
}


@pytest.mark.parametrize("turn", sorted(TURNS))
def test_frames_are_turned_upright_by_the_display_matrix(turn, upright, tmp_path):
    store, matrix = TURNS[turn]
    _write_clip(tmp_path / "turned.mp4", [store(image) for image in upright], matrix=matrix)
    frame = _first_frame(str(tmp_path / "turned.mp4"))
    assert frame.image.shape == upright[0].shape and frame.own_size == (192, 424)
    assert np.abs(frame.image.astype(int) - upright[0]).mean() < 4
    assert (frame.image[:40, :40].mean(axis=(0, 1)) > (200, -1, -1)).all() and frame.image[:40, :40, 1].mean() < 40


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """`jpeg` with an EXIF block (APP1) holding only the Orientation tag (0x0112), as a phone writes it."""
    tiff = b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little") \
        + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little") \
        + orientation.to_bytes(2, "little") + b"\x00\x00" + (0).to_bytes(4, "little")
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]


# EXIF orientation -> the picture as a camera stores it, so that a viewer applying it shows `upright`
EXIF_STORED = {1: lambda u: u, 2: lambda u: u[:, ::-1], 3: lambda u: u[::-1, ::-1], 6: lambda u: np.rot90(u, 1),
               8: lambda u: np.rot90(u, -1), 5: lambda u: np.swapaxes(u, 0, 1)}


def test_an_image_sequence_is_turned_upright_by_each_photos_exif_orientation(upright, tmp_path):
    folder = tmp_path / "phone"
    folder.mkdir()
    for i, (orientation, store) in enumerate(sorted(EXIF_STORED.items())):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(store(upright[0])), cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
        (folder / f"IMG_{i}.jpg").write_bytes(_with_exif_orientation(jpeg.tobytes(), orientation))
    info, frames = _read_all(open_source(str(folder)))
    assert len(frames) == len(EXIF_STORED)
    for frame in frames:
        assert frame.own_size == (192, 424) and frame.image.shape == upright[0].shape
        assert np.abs(frame.image.astype(int) - upright[0]).mean() < 6
        assert frame.image[:40, :40, 0].mean() > 200 and frame.image[:40, :40, 1].mean() < 40


def test_anamorphic_pixels_are_made_square(upright, tmp_path):
    squeezed = [cv2.resize(image, (96, 424), interpolation=cv2.INTER_AREA) for image in upright]
    _write_clip(tmp_path / "anamorphic.mp4", squeezed, sar=Fraction(2, 1))
    frame = _first_frame(str(tmp_path / "anamorphic.mp4"))
    assert frame.image.shape == (424, 192, 3) and frame.own_size == (192, 424)
    assert np.abs(frame.image.astype(int) - upright[0]).mean() < 6


def test_a_phone_video_is_parsed_upright_and_counts_its_squats(faults, tmp_path):
    frame = _first_frame(str(faults / "rotated.mp4"))
    assert frame.image.shape == (424, 192, 3)
    assert np.abs(frame.image.astype(int) - _clip_frames(faults / "squat30.mp4", 1)[0]).mean() < 4
    run = _squats(faults / "rotated.mp4", tmp_path)
    assert run["summary"]["reps"] == 2
    assert {tuple(line["frame_size"]) for line in run["lines"]} == {(192, 424)}
    with av.open(str(run["video"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (192, 424)
        assert frame_display_matrix(next(container.decode(stream))) is None


def test_size_of_another_aspect_letterboxes_and_keeps_the_count(faults, tmp_path):
    """`--size 640x480` on the portrait squat30 (192x424) keeps its aspect: black bars left and
    right, not the mannequin stretched 3.3x sideways (then 0 reps and advice to add light)."""
    run = _squats(faults / "squat30.mp4", tmp_path, "--size", "640x480")
    assert [rep["turn_frame"] for rep in run["summary"]["per_rep"]] == pytest.approx([44, 100], abs=3)
    assert {tuple(line["frame_size"]) for line in run["lines"]} == {(192, 424)}
    for line in run["lines"]:
        for x, y, _ in line["keypoints"] or []:
            assert -1 <= x <= 193 and -1 <= y <= 425, "in the frame's own pixels"
    with av.open(str(run["video"])) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 151 and {frame.shape for frame in frames} == {(480, 640, 3)}
    assert frames[100][:, :200].mean() < 12 and frames[100][:, -200:].mean() < 12, "letterboxed: black at the sides"


def test_a_stream_that_changes_size_is_letterboxed_and_reported_in_its_own_pixels(faults, tmp_path, capsys):
    run = _process(faults / "reschange.ts", tmp_path, "--max-people", "1", "--smoothing", "0")
    assert run["code"] == 0 and len(run["lines"]) == 120
    assert [line for line in capsys.readouterr().err.splitlines() if "size changed" in line] == [
        "partsight: warning: the frames' size changed from 192x424 to 320x320: they are letterboxed into the "
        "run's 192x424 with their aspect kept"], "told once, when it happens"
    sizes = [tuple(line["frame_size"]) for line in run["lines"]]
    assert sizes == [(192, 424)] * 60 + [(320, 320)] * 60
    with av.open(str(run["video"])) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 120 and {(f.width, f.height) for f in frames} == {(192, 424)}
    late = frames[90].to_ndarray(format="rgb24")
    assert late[:100].mean() < 12 and late[-100:].mean() < 12, "letterboxed: black above and below"
    for line in run["lines"][60:]:
        for x, y, _ in line["keypoints"] or []:
            assert -1 <= x <= 321 and -1 <= y <= 321


def test_the_pose_is_found_anew_when_the_stream_changes_size(faults, tmp_path):
    """The people tracked before the size change are not carried into the new picture: the first
    squat (before it, turning at frame 44 as in squat30) keeps its own bottom instead of a false,
    folded one right after the change at frame 60. The stream stops at frame 119, as the second
    squat gets back up: that one is not finished."""
    run = _squats(faults / "reschange.ts", tmp_path, "--max-people", "1")
    first = run["summary"]["per_rep"][0]
    assert 40 <= first["turn_frame"] <= 48 and first["min_deg"] > 45, first
    knees = [angle["raw_deg"] for line in run["lines"][60:70] for angle in
             (line["analysis"]["fitness"]["people"]["0"]["angles"][knee] for knee in ("left_knee", "right_knee"))
             if angle["raw_deg"] is not None]
    assert min(knees) > 90, "standing up after the change, not folded"


def test_a_folder_of_mixed_sizes_reports_each_frame_in_its_own_pixels(upright, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, image in enumerate(upright):
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{i}.png"), bgr)
        cv2.imwrite(str(folder / f"{i + 3}.png"), cv2.resize(bgr, (384, 848), interpolation=cv2.INTER_CUBIC))
        cv2.imwrite(str(folder / f"{i + 6}.png"), cv2.copyMakeBorder(bgr, 0, 0, 116, 116, cv2.BORDER_CONSTANT))
    run = _process(folder, tmp_path, "--max-people", "1", "--smoothing", "0")
    lines = run["lines"]
    assert [tuple(line["frame_size"]) for line in lines] == [(192, 424)] * 3 + [(384, 848)] * 3 + [(424, 424)] * 3
    for i in range(3):
        small, large, wide = (np.array(lines[j]["keypoints"]) for j in (i, i + 3, i + 6))
        sure = (small[:, 2] > 0.5) & (large[:, 2] > 0.5) & (wide[:, 2] > 0.5)
        assert sure.sum() >= 8
        assert np.abs(large[sure, :2] / 2 - small[sure, :2]).mean() < 6
        assert np.abs(wide[sure, :2] - (small[sure, :2] + (116, 0))).mean() < 12
    with av.open(str(run["video"])) as container:
        assert {(f.width, f.height) for f in container.decode(video=0)} == {(192, 424)}



def _mp4_times(path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def _assert_one_timeline(run: dict, fps: float) -> None:
    """JSONL times start at 0 and agree with the MP4's frame times to well under a frame."""
    times = [line["pts_s"] for line in run["lines"]]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))
    assert np.allclose(_mp4_times(run["video"]), times, atol=0.25 / fps)


def test_a_stream_that_starts_at_10_s_is_timed_from_0(faults, tmp_path):
    run = _squats(faults / "start10.mp4", tmp_path)
    _assert_one_timeline(run, 30)
    assert run["lines"][-1]["pts_s"] == pytest.approx(5.0) and run["summary"]["reps"] == 2


def test_an_edit_list_hides_the_lead_in_and_the_file_is_not_damaged(faults, tmp_path):
    info, frames = _read_all(open_source(str(faults / "trimmed_copy.mp4")))
    assert info.frame_count == 92 and len(frames) == 92  # 107 in the file, 15 hidden by the edit list
    run = _process(faults / "trimmed_copy.mp4", tmp_path, "--max-people", "1")
    assert run["code"] == 0 and len(run["lines"]) == 92
    _assert_one_timeline(run, 30)
    times = _mp4_times(faults / "trimmed_copy.mp4")  # as FFmpeg shows them, the edit list applied
    assert len(times) == 92 and run["lines"][-1]["pts_s"] == pytest.approx(times[-1] - times[0])


def test_a_ts_stream_starting_late_is_timed_from_0(faults):
    info, frames = _read_all(open_source(str(faults / "reschange.ts")))
    assert [f.pts_s for f in frames] == pytest.approx([i / 30 for i in range(120)])


def test_a_33_bit_timestamp_wrap_is_unwrapped(upright, tmp_path):
    """An MPEG-TS camera stream whose 90 kHz clock passes 2**33 (every 26.5 hours) mid-clip."""
    path = tmp_path / "wrap.ts"
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 192, 424, "yuv420p"
        stream.options = {"bf": "0"}
        start = 2**33 - 45 * 3000  # 1.5 s before the wrap
        for i in range(90):
            frame = av.VideoFrame.from_ndarray(upright[i % 3], format="rgb24")
            frame.pts, frame.time_base = start + i * 3000, Fraction(1, 90000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    info, frames = _read_all(open_source(str(path)))
    assert len(frames) == 90
    assert [f.pts_s for f in frames] == pytest.approx([i / 30 for i in range(90)], abs=1e-3)


def test_a_timestamp_jump_back_continues_the_timeline(upright, tmp_path):
    """Two recordings concatenated as MPEG-TS (`cat a.ts b.ts`): the second restarts its clock."""
    for name in ("a", "b"):
        _write_clip(tmp_path / f"{name}.ts", upright * 10, fmt="mpegts")
    (tmp_path / "ab.ts").write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    info, frames = _read_all(open_source(str(tmp_path / "ab.ts")))
    times = [f.pts_s for f in frames]
    assert len(times) == 60 and times[0] == 0
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3)


@pytest.fixture(scope="module")
def cut_short(faults, tmp_path_factory):
    """squat30.mp4 with its last third cut off: a real shortfall (the index promises 151 frames)."""
    data = (faults / "squat30_faststart.mp4").read_bytes()
    path = tmp_path_factory.mktemp("damaged") / "cut_short.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize("name", ["squat30.mp4", "trimmed_copy.mp4", "start10.mp4", "rotated.mp4"])
def test_files_that_ffmpeg_decodes_cleanly_are_not_damaged(faults, name):
    info, frames = _read_all(open_source(str(faults / name)))
    assert len(frames) == info.frame_count == len(_mp4_times(faults / name))


def test_a_real_shortfall_is_damage_and_the_reports_keep_what_they_got(cut_short, tmp_path, capsys):
    run = _process(cut_short, tmp_path, "--max-people", "1", "--smoothing", "0")
    err = capsys.readouterr().err
    assert run["code"] == 1 and "of its 151 frames: the file is truncated or damaged" in err
    assert 20 < len(run["lines"]) < 151
    for command in (["bench", str(cut_short), "--frames", "200", "--warmup", "2", "--size", "96x212"],
                    ["pose-quality", str(cut_short)],
                    ["eval", "flicker", str(cut_short), "--size", "96x212"]):
        assert main([*command, "--device", "cpu"]) == 0
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert "truncated or damaged" in report["warning"] and "partsight: warning:" in captured.err


def _knee_angles(run: dict) -> list[dict]:
    return [person["angles"][knee] for line in run["lines"]
            for person in line["analysis"]["fitness"]["people"].values() for knee in ("left_knee", "right_knee")]


def test_a_body_cut_by_the_edge_gives_no_confident_knee_angle_and_says_why(faults, tmp_path, capsys):
    run = _squats(faults / "cut_edge.mp4", tmp_path)
    angles = _knee_angles(run)
    assert not [a for a in angles if a["raw_deg"] is not None and a["raw_deg"] < 45], "a cut knee read as folded"
    assert sum(a["reason"] == "out_of_frame" for a in angles) > len(angles) / 2
    person = run["summary"]["people"]["0"]
    assert max(person["unknown_reasons"], key=person["unknown_reasons"].get) == "out_of_frame"
    assert "edge" in person["hint"] and "edge" in capsys.readouterr().out
    people = [p for line in run["lines"] for p in line["analysis"]["fitness"]["people"].values()]
    assert "out_of_frame" in {p["signal_reason"] for p in people}
    for p in people:  # every line says what to try when the angle is unknown, and nothing when it is known
        assert (p["signal_hint"] == person["hint"]) if p["signal_reason"] == "out_of_frame" else \
            (p["signal_hint"] is None) == (p["signal_reason"] is None)
    # The standing body is never seen whole: a lone readable frame (22: 166.8 deg among cut ones) is
    # no start, so the squat's bottom later (frames 40-44, 97-100: ~63 deg) is not "at the bottom".
    assert [p["signal_deg"] for p in people if p["signal_deg"] is not None and p["signal_deg"] > 150]
    assert {p["state"] for p in people} == {"waiting"}
    assert {p["phase"] for p in people} == {"waiting for the start position"}


def test_shins_cut_by_the_bottom_edge_are_out_of_frame(faults, tmp_path):
    """Another framing of the kind: squat30 with the bottom cut at mid-shin."""
    images = [image[:276] for image in _clip_frames(faults / "squat30.mp4", 40)]
    _write_clip(tmp_path / "shins.mp4", images)
    run = _squats(tmp_path / "shins.mp4", tmp_path, "--max-people", "1")
    angles = _knee_angles(run)
    assert not [a for a in angles if a["raw_deg"] is not None and a["raw_deg"] < 45]
    assert sum(a["reason"] == "out_of_frame" for a in angles) > len(angles) / 2


def test_arms_inside_the_frame_are_known_while_the_head_and_feet_touch_its_edges(media_dir, tmp_path):
    """The other member of the kind: the side-view push-up mirrored (head at the right edge, feet,
    which the parser partly labels as hands, at the left), its first push-up (bottom at frame 84)."""
    images = [image[:, ::-1] for image in _clip_frames(media_dir / "cg-mannequin-pushup.mp4", 130)]
    _write_clip(tmp_path / "mirrored.mp4", images, rate=60)
    run = _process(tmp_path / "mirrored.mp4", tmp_path, "--exercise", "push-up", "--max-people", "1", "--summary",
                   str(tmp_path / "out" / "summary.json"))
    assert run["code"] == 0 and run["summary"]["reps"] == 1
    people = [line["analysis"]["fitness"]["people"]["0"] for line in run["lines"]]
    for elbow in ("left_elbow", "right_elbow"):
        assert sum(person["angles"][elbow]["reason"] == "out_of_frame" for person in people) <= 0.02 * len(people)
    assert not [p for p in people if p["signal_reason"] == "out_of_frame"]


@pytest.mark.parametrize("clip", ["tiny.mp4", "made"])
def test_a_tiny_person_gets_the_reason_and_a_hint(clip, faults, tmp_path, capsys):
    path = faults / clip
    if clip == "made":  # squat30 shrunk to 80 px tall in a 640x480 frame
        images = []
        for image in _clip_frames(faults / "squat30.mp4", 30):
            canvas = np.zeros((480, 640, 3), np.uint8)
            canvas[300:380, 300:336] = cv2.resize(image, (36, 80), interpolation=cv2.INTER_AREA)
            images.append(canvas)
        path = tmp_path / "made.mp4"
        _write_clip(path, images)
    run = _squats(path, tmp_path)
    person = run["summary"]["people"]["0"]
    assert run["summary"]["reps"] == 0 and person["unknown_frames"] == person["frames"]
    assert set(person["unknown_reasons"]) <= {"nobody_found", "too_small"}
    if clip == "tiny.mp4":  # the parser finds nobody at its default size
        assert person["unknown_reasons"] == {"nobody_found": person["frames"]}
        assert person["hint"].startswith("nobody found in any frame") and person["hint_reason"] == "nobody_found"
    out = capsys.readouterr().out
    assert "closer" in person["hint"] and "closer" in out and "--internal-size" not in out
    if clip == "tiny.mp4":  # nobody was seen: said once, for no person
        assert f"squat: 0 reps\n{person['hint']}\n" in out and "person 0" not in out
    people = [p for line in run["lines"] for p in line["analysis"]["fitness"]["people"].values()]
    assert {p["signal_reason"] for p in people} == set(person["unknown_reasons"])
    assert all(p["signal_hint"] == HINTS[p["signal_reason"]] for p in people)


def test_a_tiny_person_found_at_a_larger_internal_size_is_still_too_small(faults, tmp_path, capsys):
    """tiny.mp4 parsed at 960 finds the ~46 px person; the 120 px rule is in the frame's pixels, so
    no angle counts (before: standing knees counted, squatting ones not, 0 reps in twice the time)."""
    run = _squats(faults / "tiny.mp4", tmp_path, "--internal-size", "960", "--frames", "45")
    boxes = [person["bbox"] for line in run["lines"] for person in line["people"]]
    assert len(boxes) > 0.5 * len(run["lines"]) and max(y1 - y0 for _, y0, _, y1 in boxes) < MIN_PERSON_PX
    people = [p for line in run["lines"] for p in line["analysis"]["fitness"]["people"].values()]
    assert all(p["signal_deg"] is None for p in people)
    assert sum(p["signal_reason"] == "too_small" for p in people) == len(boxes)
    person = run["summary"]["people"]["0"]
    assert person["hint_reason"] == "too_small" and person["hint"] == HINTS["too_small"]
    out = capsys.readouterr().out
    assert "under 120 px tall" in out and "--internal-size" not in out


@pytest.mark.parametrize("away_copies", [1, 3])
def test_a_person_who_leaves_keeps_their_count_in_single_person_mode(away_copies, faults, tmp_path, capsys):
    """leave_A.mp4 (away 2 s between the reps), and the same with the empty frames played 3 times
    (6 s away). The summary notes how long nobody was in view, with no advice to move the camera."""
    path = faults / "leave_A.mp4"
    if away_copies > 1:
        frames = _clip_frames(path, 211)
        path = tmp_path / "away_long.mp4"
        _write_clip(path, frames[:71] + frames[71:131] * away_copies + frames[131:])
    run = _squats(path, tmp_path, "--max-people", "1", "--smoothing", "0")
    assert run["summary"]["reps"] == 2 and list(run["summary"]["people"]) == ["0"]
    ids = {person["id"] for line in run["lines"] for person in line["people"]}
    assert ids == {0}
    away = [line for line in run["lines"] if not line["people"]]
    assert len(away) >= 55 * away_copies
    assert {line["analysis"]["fitness"]["people"]["0"]["signal_reason"] for line in away} == {"nobody_found"}
    person = run["summary"]["people"]["0"]
    assert person["unknown_reasons"]["nobody_found"] == len(away)
    assert person["nobody_s"] == pytest.approx(len(away) / 30, abs=0.05)
    assert person["hint_reason"] == "nobody_found" and person["hint"] == f"nobody in view for {2.0 * away_copies} s"
    out = capsys.readouterr().out
    assert f"person 0: nobody in view for {2.0 * away_copies} s" in out and "closer" not in out


def _first_audio_s(path) -> float:
    with av.open(str(path)) as container:
        return float(next(container.decode(audio=0)).time)


def test_the_sound_track_is_kept_in_sync_and_no_audio_drops_it(faults, tmp_path, capsys):
    for name in ("squat30.mp4", "start10.mp4"):
        run = _process(faults / name, tmp_path, "--frames", "45", "--max-people", "1", "--smoothing", "0", name=name)
        assert run["code"] == 0 and "audio: aac kept" in capsys.readouterr().out
        with av.open(str(faults / name)) as source:
            video_s = float(next(source.decode(video=0)).time)
            source_audio = [float(frame.time) - video_s for frame in source.decode(audio=0)]
        expected = min(t for t in source_audio if t >= 0)  # the first audio frame from the first video frame on
        with av.open(str(run["video"])) as out:
            assert [s.codec_context.name for s in out.streams.audio] == ["aac"]
            video, audio = out.streams.video[0], out.streams.audio[0]
            assert abs(float(audio.duration * audio.time_base) - float(video.duration * video.time_base)) < 0.1
        assert _first_audio_s(run["video"]) == pytest.approx(expected, abs=1e-3)
    silent = _process(faults / "squat30.mp4", tmp_path, "--frames", "5", "--no-audio", name="silent")
    with av.open(str(silent["video"])) as out:
        assert not out.streams.audio
    assert "audio: left out (--no-audio)" in capsys.readouterr().out


def test_a_looped_file_keeps_its_sound_up_to_where_it_starts_again(faults, tmp_path, capsys):
    run = _process(faults / "squat30.mp4", tmp_path, "--loop", "--frames", "170", "--max-people", "1",
                   "--smoothing", "0")
    assert run["code"] == 0 and len(run["lines"]) == 170
    assert "audio: aac kept, in sync with the video; it stops at 5.03 s: the video's times stop following the " \
           "source's clock there (a looped file or a switched source)" in capsys.readouterr().out
    with av.open(str(run["video"])) as out:
        audio = [(float(frame.time), frame.samples / frame.sample_rate) for frame in out.decode(audio=0)]
    assert _mp4_times(run["video"])[-1] == pytest.approx(169 / 30, abs=1e-3)
    assert audio[-1][0] + audio[-1][1] == pytest.approx(151 / 30, abs=0.03)


def _write_pcm_clip(path: Path, upright: list[np.ndarray], seconds: int = 3) -> None:
    """MKV with PCM sound from 0 and video from 0.5 s to `seconds`, a tone burst and a white frame
    both at 1.5 s: in a recording that starts at the first frame, both belong at 1.0 s."""
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 192, 424, "yuv420p"
        video.options = {"bf": "0"}
        sound = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        samples = np.zeros(rate * seconds, np.int16)
        samples[int(1.5 * rate):int(1.6 * rate)] = (12000 * np.sin(np.arange(int(0.1 * rate)) * 0.2)).astype(np.int16)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in sound.encode(frame):
                out.mux(packet)
        for i in range(15, 30 * (seconds - 1) + 15):
            image = np.full_like(upright[0], 255) if i == 45 else upright[i % 3]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in video.encode(frame):
                out.mux(packet)
        for stream in (sound, video):
            for packet in stream.encode(None):
                out.mux(packet)


def _assert_burst_and_white_frame_together(video: Path) -> None:
    with av.open(str(video)) as out:
        frames = list(out.decode(video=0))
    brightest = max(frames, key=lambda f: f.to_ndarray(format="gray").mean())
    assert float(brightest.time) == pytest.approx(1.0, abs=1e-3)
    with av.open(str(video)) as out:
        assert [s.codec_context.name for s in out.streams.audio] == ["aac"]
        loud = next(f for f in out.decode(audio=0) if np.abs(f.to_ndarray()).max() > 0.1)
    assert abs(float(loud.time) - 1.0) < 1 / 30


def _looped_with_sound(source: Path, path: Path, loops: int) -> None:
    """`source` (video and AAC sound) played `loops` times over, as one file: H.264 + AAC in MP4."""
    with av.open(str(source)) as clip:
        images = [frame.to_ndarray(format="rgb24") for frame in clip.decode(video=0)]
    with av.open(str(source)) as clip:
        sound = np.concatenate([frame.to_ndarray() for frame in clip.decode(audio=0)], axis=1)
        rate, layout = clip.streams.audio[0].rate, clip.streams.audio[0].layout.name
    samples = np.tile(sound, (1, loops))[:, :len(images) * loops * rate // 30]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = images[0].shape[1], images[0].shape[0], "yuv420p"
        audio = out.add_stream("aac", rate=rate, layout=layout)
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for image in images * loops:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                out.mux(packet)


def test_the_windows_recording_of_a_file_keeps_its_sound_in_sync(faults, qtbot, tmp_path):
    """A recording started mid-clip in the window (squat30 looped to 20 s: the window paces a file
    like a camera): the MP4 starts at 0 with a frame after the one shown when Record was pressed,
    holds the frame shown when Stop was pressed, and has the sound from its first frame's moment
    of the source on."""
    source = tmp_path / "long.mp4"
    _looped_with_sound(faults / "squat30.mp4", source, loops=4)
    window = open_window(qtbot, tmp_path, max_people=1)
    try:
        window.open_source(str(source))
        wait_for_frames(qtbot, window, 3)
        window.recording_panel.toggle_recording()
        recording = window.recording_panel.recording_path
        shown = window.frames_shown
        shown_at_start = window.shown_result.frame.index
        on_screen = []
        window.frame_shown.connect(lambda _: on_screen.append(window.shown_result.frame.index))
        # the first frame shown after the press may have been parsed before it (it is not recorded)
        wait_for_frames(qtbot, window, shown + 9)
        window.recording_panel.toggle_recording()
        shown_at_stop = window.shown_result.frame.index
    finally:
        window.close()
    lines = [json.loads(line) for line in recording.with_suffix(".jsonl").read_text().splitlines()]
    recorded = [line["index"] for line in lines if "index" in line]
    assert recorded[0] > shown_at_start and shown_at_stop in recorded, "what was on screen while recording"
    assert set(on_screen[1:on_screen.index(shown_at_stop) + 1]) <= set(recorded), "every frame seen is recorded"
    first = lines[0]
    assert first["pts_s"] == 0, "the recording's own times start at 0"
    first_s = first["index"] / 30  # where in the 30 fps source the recording started
    assert first_s > 0, "the recording started mid-clip"
    with av.open(str(source)) as source:
        expected = min(float(f.time) for f in source.decode(audio=0) if float(f.time) >= first_s - 1e-6) - first_s
    with av.open(str(recording)) as out:
        assert [s.codec_context.name for s in out.streams.audio] == ["aac"]
        video_end = float(out.streams.video[0].duration * out.streams.video[0].time_base)
        video_times = [float(frame.time) for frame in out.decode(video=0)]
    assert video_times[0] == 0 and len(video_times) == len(recorded) >= 8
    with av.open(str(recording)) as out:
        audio = [(float(frame.time), frame.samples / frame.sample_rate) for frame in out.decode(audio=0)]
    assert audio[0][0] == pytest.approx(expected, abs=1e-3)
    assert abs(audio[-1][0] + audio[-1][1] - video_end) < 0.05, "the sound lasts as long as the last frame shows"


def test_a_sound_track_mp4_cannot_carry_is_transcoded_and_stays_in_sync(upright, tmp_path, capsys):
    path = tmp_path / "pcm.mkv"
    _write_pcm_clip(path, upright)
    run = _process(path, tmp_path, "--max-people", "1", "--smoothing", "0")
    assert run["code"] == 0 and "aac (from pcm_s16le)" in capsys.readouterr().out
    _assert_burst_and_white_frame_together(run["video"])


@pytest.mark.parametrize("clip", ["squat30.mp4", "pcm.mkv"])
def test_a_killed_process_leaves_an_mp4_with_its_sound_up_to_the_kill(clip, faults, upright, tmp_path):
    """`kill -9` mid-run: the fragmented MP4 plays, with the sound (copied AAC; PCM made AAC) up to
    the last finished fragment, in sync with the video."""
    source = faults / clip
    if clip == "pcm.mkv":
        source = tmp_path / clip
        _write_pcm_clip(source, upright, seconds=6)
    video, metrics = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    kill_process_after_lines(["process", str(source), "-o", str(video), "--metrics", str(metrics), "--max-people", "1",
                              "--smoothing", "0", "--device", "cpu"], metrics, 100, timeout_s=300)
    with av.open(str(video)) as out:
        assert [s.type for s in out.streams] == ["video", "audio"]
        video_times = [float(frame.time) for frame in out.decode(video=0)]
    with av.open(str(video)) as out:
        audio = [(float(frame.time), frame.samples / frame.sample_rate) for frame in out.decode(audio=0)]
    lines = metrics.read_text().count("\n")
    assert 60 <= len(video_times) <= lines < 150, "the finished fragments (a keyframe every 30 frames) play"
    video_end = video_times[-1] + 1 / 30
    assert abs(audio[-1][0] + audio[-1][1] - video_end) < 0.1, "the sound runs to where the video stops"
    if clip == "pcm.mkv":
        _assert_burst_and_white_frame_together(video)
    else:
        with av.open(str(source)) as original:
            first_audio = next(original.decode(audio=0))
        assert audio[0][0] == pytest.approx(float(first_audio.time), abs=1e-3)
        _assert_one_timeline({"lines": [json.loads(line) for line in metrics.read_text().splitlines()][
            :len(video_times)], "video": video}, 30)


@pytest.mark.parametrize("sig, again_after_s", [(signal.SIGINT, None), (signal.SIGTERM, None), (signal.SIGINT, 0.1)],
                         ids=["ctrl-c", "sigterm", "ctrl-c-twice"])
def test_ctrl_c_keeps_the_counted_reps_the_summary_and_a_playable_mp4(faults, tmp_path, sig, again_after_s):
    """Ctrl-C (SIGINT) mid-run, or a SIGTERM (`kill`, a service manager's stop), which stops it the
    same way: exit 130 (143 for SIGTERM), and nothing done so far is lost: the MP4 plays every frame the JSONL has,
    the summary is written with the reps counted so far, the table is shown. A second Ctrl-C
    pressed at once does not cut the finishing short (it lost the summary, and the threads left
    running aborted the interpreter: exit 134)."""
    video, metrics, summary = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "summary.json"
    run = kill_process_after_lines(["process", str(faults / "squat30.mp4"), "-o", str(video), "--metrics", str(metrics),
                                    "--loop", "--frames", "3000", "--exercise", "squat", "--summary", str(summary),
                                    "--device", "cpu"], metrics, 125, timeout_s=300, sig=sig,
                                   again_after_s=again_after_s)
    lines = metrics.read_text().count("\n")
    assert run.returncode == 128 + sig and "Traceback" not in run.stderr, run.stderr
    if again_after_s is not None:  # the second may come after the summary, while the table is printed
        assert run.stderr.splitlines()[-1].startswith("partsight: interrupted"), run.stderr
        assert json.loads(summary.read_text())["source"]["interrupted"] is True
        with av.open(str(video)) as out:
            assert 125 <= lines == sum(1 for _ in out.decode(video=0))
        return
    assert f"partsight: interrupted (the {lines} frames before it are in {video})" in run.stderr
    with av.open(str(video)) as out:
        assert 125 <= lines == sum(1 for _ in out.decode(video=0))
    counted = json.loads(summary.read_text())
    assert counted["reps"] >= 2 and counted["people"]["0"]["frames"] == lines  # both squats end by frame 118
    assert counted["source"]["interrupted"] is True
    Draft202012Validator(json.loads(schema_path("summary").read_text())).validate(counted)
    assert "squat: " in run.stdout and f"summary {summary}" in run.stdout


def test_an_interrupted_run_says_so_before_what_it_wrote(faults, tmp_path):
    """In a terminal the interruption comes first, then what the run wrote until then: "wrote ..."
    above it read as a finished run, then interrupted. The MP4 plays every frame it names."""
    video, metrics = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    run = kill_process_after_lines(["process", str(faults / "squat30.mp4"), "-o", str(video), "--metrics", str(metrics),
                                    "--loop", "--frames", "3000", "--pose", "parser", "--max-people", "1",
                                    "--size", "180x320", "--device", "cpu"], metrics, 10, sig=signal.SIGINT,
                                   as_a_terminal_shows=True)
    lines = metrics.read_text().count("\n")
    assert run.returncode == 130 and "Traceback" not in run.stdout, run.stdout
    said = [line for line in run.stdout.splitlines() if line.startswith(("partsight: interrupted", "wrote "))]
    assert len(said) == 2 and said[0] == f"partsight: interrupted (the {lines} frames before it are in {video})" \
        and said[1].startswith(f"wrote {video}: {lines} frames in "), run.stdout
    with av.open(str(video)) as out:
        assert 10 <= lines == sum(1 for _ in out.decode(video=0))


def test_reading_the_display_matrix_keeps_no_reference_to_the_frame(faults):
    """A decoded picture must be freed when the reader drops it, not when Python's cyclic collector
    gets round to it: a looped 1080x1920 file grew by hundreds of MB through frame.side_data."""
    import sys

    with av.open(str(faults / "rotated.mp4")) as container:
        frame = next(container.decode(container.streams.video[0]))
        references = sys.getrefcount(frame)
        assert frame_display_matrix(frame) is not None
        assert sys.getrefcount(frame) == references


def test_an_image_folder_names_its_unreadable_files_as_every_report_gives_them(faults, tmp_path):
    """Source.skipped is the one list of the unreadable files' names (no folder), each once, in the
    order met: the `unreadable` fields and `process`'s error line all take it as it is."""
    from realtime.evaluation import file_frames

    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 6):
        (folder / f"{number}.jpg").write_bytes((faults / "frames_unpadded" / f"{number}.jpg").read_bytes())
    (folder / "2.jpg").write_bytes((folder / "2.jpg").read_bytes()[:3000])
    (folder / "4.png").write_text("not a picture\n")
    source = open_source(str(folder))
    _, frames = _read_all(source)
    assert (len(frames), source.skipped) == (4, ["2.jpg", "4.png"])
    looped = open_source(str(folder), loop=True)  # a loop passes them again: still named once
    looped.start()
    read = 0
    try:
        while read < 10 and looped.error is None:
            read += looped.read(2.0) is not None
    finally:
        looped.stop()
    assert looped.skipped == ["2.jpg", "4.png"]
    skipped: list[str] = []
    assert len(list(file_frames(str(folder), skipped=skipped))) == 4 and skipped == ["2.jpg", "4.png"]
