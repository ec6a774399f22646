"""The window (pytest-qt, QT_QPA_PLATFORM=offscreen) on a real clip, and the engine's independence of Qt."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PyQt6.QtCore import QRect, QSettings, Qt
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import QPushButton, QSlider, QTreeWidget

from conftest import FIRST_FRAMES_TIMEOUT_S, wait_for_frames
from gui.main_window import MainWindow
from gui.model_picker import ModelPicker
from gui.session import Session
from gui.video_view import to_qimage
from realtime.config import PipelineConfig
from gui.source_picker import SourcePicker
from realtime.models.labels import BODYPIX_PARTS
from realtime.models.registry import MODEL_SPECS
from realtime.render import readout_panel, stats_lines

REPO = Path(__file__).resolve().parents[1]
STARTED_MS = FIRST_FRAMES_TIMEOUT_S * 1000  # a start loads the models before it opens the source
TORSO = [BODYPIX_PARTS.colors[BODYPIX_PARTS.names.index(n)] for n in ("torso_front", "torso_back")]


@pytest.fixture(scope="module")
def squat_clip(media_dir: Path) -> Path:
    return media_dir / "cg-mannequin-squat.mp4"  # 5 s at 60 fps; BodyPix parses it at ~40 fps on a CPU


pytestmark = pytest.mark.usefixtures("engine_threads_joined")


@pytest.fixture
def settings(window_settings) -> QSettings:
    return window_settings


def _view_pixels(window: MainWindow) -> np.ndarray:
    view = window.video_view
    if view.frame_rect().isEmpty():
        return np.zeros((0, 0, 3), np.uint8)
    return _rgb(view.grab(view.frame_rect()).toImage())


def _rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    rows = rows.reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3)


def _pixels_of(window: MainWindow, colors: list[tuple[int, int, int]]) -> int:
    pixels = _view_pixels(window).astype(np.int16)
    return int(sum((np.abs(pixels - np.array(c)).max(axis=2) <= 3).sum() for c in colors))


def _group_item(window: MainWindow, name: str):
    tree = window.view_panel.part_toggles.findChild(QTreeWidget)
    return next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount()) if tree.topLevelItem(i).text(0) == name)


def test_frames_arrive_and_the_status_bar_shows_the_engine(make_window, qtbot, squat_clip):
    window = make_window()
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 5)
    window.refresh_state()
    status = window.status_panel
    assert status.field("resolution") == "384×848"
    assert status.field("model") == "bodypix  pose blazepose-torch" and status.field("device") == "cpu"
    assert status.field("inference").startswith("inference")
    assert status.field("latency") == "latency –", "a file's frames wait their turn: no latency to show"
    assert squat_clip.name in window.windowTitle()
    rect = window.video_view.frame_rect()
    assert abs(rect.width() / rect.height() - 384 / 848) < 0.01, "the view must keep the frame's aspect ratio"


def test_the_window_parses_a_display_sized_copy_of_a_large_video(qtbot, settings, single_clip):
    window = MainWindow(Session(PipelineConfig(device="cpu", max_side=960, max_people=1)), settings)
    qtbot.addWidget(window)
    window.show()
    try:
        window.open_source(str(single_clip))  # 1080 x 1920
        wait_for_frames(qtbot, window, 3)
        window.refresh_state()
        assert window.status_panel.field("resolution") == "540×960"
    finally:
        window.close()


def test_hiding_a_group_removes_its_colour_from_the_view(make_window, qtbot, squat_clip):
    window = make_window(**{"view/opacity": 1.0, "view/show_keypoints": False})
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, until=lambda: _pixels_of(window, TORSO) > 200)

    _group_item(window, "torso").setCheckState(0, Qt.CheckState.Unchecked)
    assert window.view_panel.part_toggles.hidden_names() == ["torso_front", "torso_back"]
    shown = window.frames_shown
    wait_for_frames(qtbot, window, shown + 3)
    assert _pixels_of(window, TORSO) == 0
    assert _pixels_of(window, [BODYPIX_PARTS.colors[BODYPIX_PARTS.names.index("left_face")]]) > 0


def test_a_paused_frame_is_redrawn_when_a_part_is_hidden(make_window, qtbot, squat_clip):
    window = make_window(**{"view/opacity": 1.0, "view/show_keypoints": False})
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, until=lambda: _pixels_of(window, TORSO) > 200)
    window.toggle_pause()
    paused_on = window.shown_result
    _group_item(window, "torso").setCheckState(0, Qt.CheckState.Unchecked)
    assert _pixels_of(window, TORSO) == 0, "the same frame, drawn again without the torso"
    assert window.shown_result is paused_on


def test_the_readout_is_the_shown_frames_painted_at_the_screens_resolution(make_window, qtbot, media_dir):
    """The readout over the video (FPS, frame, time, models) gives the figures of the frame on
    screen and is painted at the screen's pixels, not drawn into the frame and magnified with it:
    its white glyphs step from the dark box by 150+ grey levels between neighbouring screen pixels
    (drawn into squat30's 192x424 frame and magnified 1.8x, by at most ~100)."""
    window = make_window()
    window.open_source(str(media_dir / "faults" / "squat30.mp4"))
    wait_for_frames(qtbot, window, 3)
    view, shown = window.video_view, window.shown_result  # read in one turn of the event loop: no new frame
    rect = view.frame_rect()
    scale = rect.width() / shown.image.shape[1]
    x0, y0, x1, y1 = readout_panel(stats_lines(shown)).box(shown.image.shape[:2])
    slot = QRect(rect.x() + round(x0 * scale), rect.y() + round(y0 * scale), round((x1 - x0) * scale),
                 round((y1 - y0) * scale))
    grey = _rgb(view.grab(slot).toImage()).astype(int).mean(axis=2)
    steps = np.abs(np.diff(grey, axis=1))
    assert scale > 1.5 and steps.max() >= 150 and (steps >= 120).sum() >= 100, (scale, steps.max())
    assert view.readout.lines == stats_lines(shown)
    assert view.image() == to_qimage(shown.image)[0], "a screenshot is the frame without the window's readout"


def test_recording_from_the_window_gives_a_playable_mp4_and_metrics(make_window, qtbot, squat_clip, tmp_path):
    window = make_window()
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 2)
    record = window.recording_panel.record_controls.findChild(QPushButton, "recordButton")
    qtbot.mouseClick(record, Qt.MouseButton.LeftButton)
    path = window.recording_panel.recording_path
    assert path is not None and path.parent == tmp_path / "out"
    shown = window.frames_shown
    # the next frame or two on screen may have been parsed before Record was pressed: not recorded
    wait_for_frames(qtbot, window, shown + 12)
    qtbot.mouseClick(record, Qt.MouseButton.LeftButton)
    assert window.recording_panel.recording_path is None

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) >= 10 and frames[0].shape == (848, 384, 3)
    assert len(path.with_suffix(".jsonl").read_text().splitlines()) == len(frames)


def test_space_pauses_the_view_and_s_saves_the_frame(make_window, qtbot, squat_clip, tmp_path):
    window = make_window()
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 2)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.paused
    pipeline = window._session.pipeline
    # the frame being parsed when Space was pressed still arrives and is shown
    qtbot.waitUntil(lambda: pipeline.in_flight == 0 and window.shown_result is pipeline.latest(),
                    timeout=FIRST_FRAMES_TIMEOUT_S * 1000)
    shown, parsed = window.frames_shown, pipeline.stats.frames
    qtbot.wait(1000)
    assert window.frames_shown == shown and pipeline.stats.frames == parsed, "the engine holds too"
    qtbot.keyClick(window, Qt.Key.Key_S)
    (png,) = (tmp_path / "out").glob("partsight-*.png")
    saved = _rgb(QImage(str(png)))
    assert saved.shape == (848, 384, 3)
    # the frame as recordings have it: the engine's drawing, without the readout the window writes over it
    np.testing.assert_array_equal(saved, window._shown_result.image)
    assert window.video_view.readout.lines[0].startswith("PAUSED  frame "), "the window shows its own readout"
    qtbot.keyClick(window, Qt.Key.Key_Space)
    wait_for_frames(qtbot, window, shown + 1)


def test_a_bad_source_shows_the_banner_and_the_window_recovers(make_window, qtbot, squat_clip):
    window = make_window()
    window.open_source("/no/such/clip.mp4")
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=STARTED_MS)
    assert "no such file" in window.banner.text()
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 2)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10000)


def test_stream_credentials_never_appear_after_entry(make_window, qtbot):
    picker = SourcePicker()
    qtbot.addWidget(picker)
    url = "rtsp://coach:s3cret@127.0.0.1:9/live"
    with qtbot.waitSignal(picker.source_requested) as requested:
        picker.set_stream_url(url)
    assert requested.args == [url]
    assert "s3cret" not in picker.stream_field_text()
    picker.stop_probing()

    window = make_window()
    window.open_source(url)  # nothing listens on port 9: the connection is refused
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=STARTED_MS)
    assert "s3cret" not in window.banner.text() and "s3cret" not in window.windowTitle()


def test_models_without_weights_are_disabled_with_a_how_to(qtbot, weights_dir):
    picker = ModelPicker(MODEL_SPECS)
    qtbot.addWidget(picker)
    assert picker.is_enabled("bodypix")
    assert not picker.is_enabled("m2fp-lip")
    assert "ModelScope" in picker.tooltip("m2fp-lip")


def test_settings_are_remembered_between_runs(make_window, qtbot):
    window = make_window()
    window.view_panel.overlay_controls.findChild(QSlider).setValue(35)
    _group_item(window, "feet").setCheckState(0, Qt.CheckState.Unchecked)
    window.close()

    again = make_window()
    assert again.view_panel.overlay_controls.opacity() == pytest.approx(0.35)
    assert again.view_panel.part_toggles.hidden_names() == ["left_foot", "right_foot"]


def test_cli_runs_frames_and_saves_a_screenshot_of_the_window(squat_clip, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip),
                           "--frames", "5", "--screenshot", str(shot), "--device", "cpu"],
                          check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "propagateSizeHints" not in done.stderr, "Qt's plugin notes go to the log file"
    image = QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600


def test_cli_says_why_no_frame_was_shown(tmp_path):
    """`gui --frames N` on a source that cannot play exits 1 with the reason the window shows, not
    only "no frame was shown", in the one-line form of every other error ("partsight: error: ")."""
    text = tmp_path / "clip.mp4"
    text.write_text("not a video")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(text), "--frames", "5",
                           "--device", "cpu"], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    line = done.stderr.splitlines()[-1]
    assert line.startswith("partsight: error: no frame was shown: ") and str(text) in line, done.stderr


def test_sigterm_finishes_the_recording_and_says_so(squat_clip, tmp_path):
    """SIGTERM (`kill`, a session's logout) to a recording window stops it as Ctrl-C does: the
    recording is finished (every frame in its JSONL plays in the MP4), one line says so, exit 143,
    and stdout says what was recorded."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}  # recordings go to ~/Videos/PartSight
    window = subprocess.Popen([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip), "--record",
                               "--device", "cpu"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + FIRST_FRAMES_TIMEOUT_S
        while not any(len(p.read_text().splitlines()) >= 10 for p in tmp_path.glob("Videos/PartSight/*.jsonl")):
            assert window.poll() is None and time.monotonic() < deadline, window.stderr.read()
            time.sleep(0.2)
        window.send_signal(signal.SIGTERM)
        stdout, stderr = window.communicate(timeout=60)
    finally:
        window.kill()
    (video,) = tmp_path.glob("Videos/PartSight/*.mp4")
    assert window.returncode == 143, stderr
    assert stderr.splitlines()[-1] == f"partsight: interrupted (the recording is in {video})", stderr
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 10 <= frames == len(video.with_suffix(".jsonl").read_text().splitlines())
    assert stdout.splitlines() == [f"recorded {video}: {frames} frames, metrics {video.with_suffix('.jsonl')}"]


def test_gui_record_records_every_frame_of_a_clip_from_its_first(media_dir, tmp_path):
    """`gui --record` on a clip played to its end: the MP4 holds every frame of the clip and the
    JSONL's indices run from 0 with pts_s 0.0 first, as `process` writes them (the recording was
    started once the first frame was on screen: 150 of squat30's 151 frames, indices from 1)."""
    clip = media_dir / "faults" / "squat30.mp4"
    with av.open(str(clip)) as container:
        clip_frames = sum(1 for _ in container.decode(video=0))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(clip), "--record",
                           "--frames", str(clip_frames), "--device", "cpu"],  # or its end, whichever comes first
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (video,) = tmp_path.glob("Videos/PartSight/*.mp4")
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    lines = [json.loads(line) for line in video.with_suffix(".jsonl").read_text().splitlines()]
    assert frames == clip_frames == 151
    assert [line["index"] for line in lines] == list(range(clip_frames)) and lines[0]["pts_s"] == 0.0
    assert done.stdout.splitlines() == [f"recorded {video}: {frames} frames, metrics {video.with_suffix('.jsonl')}"]


def test_a_stop_signal_after_the_window_is_gone_is_handled_as_before_it_opened(squat_clip, tmp_path):
    """Once `gui` has returned, Ctrl-C and SIGTERM reach the handlers that were there before it
    ran (the window's stayed: a late Ctrl-C called into the deleted window, "RuntimeError:
    wrapped C/C++ object ... has been deleted")."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    script = ("import signal, sys\n"
              "from gui.cli import main\n"
              "print(main(['gui', '--source', sys.argv[1], '--frames', '2', '--device', 'cpu']))\n"
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
              " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
              "try:\n"
              "    signal.raise_signal(signal.SIGINT)\n"
              "except KeyboardInterrupt:\n"
              "    print('KeyboardInterrupt')\n")
    done = subprocess.run([sys.executable, "-c", script, str(squat_clip)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["0", "True True", "KeyboardInterrupt"], done.stderr


def test_a_recording_run_of_n_frames_ends_on_its_own_and_keeps_the_recording(squat_clip, tmp_path):
    """`gui --record --frames N --screenshot`: the window closes after N frames without asking
    whether to stop the recording (the question waited forever for an answer nobody could give:
    offscreen, and in scripts), the recording is finished and plays, and its last line says where
    it is (nothing did)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip), "--record",
                           "--frames", "8", "--screenshot", str(tmp_path / "shot.png"), "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (video,) = tmp_path.glob("Videos/PartSight/*.mp4")
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 8 <= frames == len(video.with_suffix(".jsonl").read_text().splitlines())  # every frame shown, and more
    assert done.stdout.splitlines() == [f"saved {tmp_path / 'shot.png'}",
                                        f"recorded {video}: {frames} frames, metrics {video.with_suffix('.jsonl')}"]


def test_a_screenshot_path_that_cannot_be_written_is_refused_before_the_window_opens(squat_clip, tmp_path):
    """(It was found only at the end: the run's exception skipped the window's close, leaving a
    0-byte MP4 of the recording and no "recorded" line.)"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip), "--record",
                           "--frames", "5", "--screenshot", "/proc/shot.png", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == "", done.stderr
    assert done.stderr.splitlines() == ["partsight: error: --screenshot: cannot write /proc/shot.png: "
                                        "No such file or directory"], done.stderr
    assert not (tmp_path / "Videos").exists()


def test_a_screenshot_that_fails_to_save_still_finishes_and_names_the_recording(squat_clip, tmp_path):
    """/dev/full passes the check (it opens for writing) and fails the save (the disk is full)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip), "--record",
                           "--frames", "5", "--screenshot", "/dev/full", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["partsight: error: --screenshot: cannot write /dev/full"], done.stderr
    (video,) = tmp_path.glob("Videos/PartSight/*.mp4")
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 2 <= frames == len(video.with_suffix(".jsonl").read_text().splitlines())
    assert done.stdout.splitlines() == [f"recorded {video}: {frames} frames, metrics {video.with_suffix('.jsonl')}"]


def test_a_recording_with_an_exercise_prints_the_counts_as_process_does(squat_clip, tmp_path):
    """`gui --record --exercise squat`: after the 'recorded' line, the repetition table `process`
    prints ("squat: 1 rep" and its row; the first squat's bottom is near frame 90): the exit said
    no count at all."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(squat_clip), "--record",
                           "--exercise", "squat", "--frames", "150", "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (video,) = tmp_path.glob("Videos/PartSight/*.mp4")
    last = json.loads(video.with_suffix(".jsonl").read_text().splitlines()[-1])
    reps = last["analysis"]["fitness"]["people"]["0"]["reps"]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"recorded {video}: ") and reps >= 1, done.stdout
    assert lines[1] == f"squat: {reps} rep{'' if reps == 1 else 's'}", done.stdout
    assert lines[2].split() == ["person", "number", "start_frame", "turn_frame", "end_frame", "min_deg", "max_deg",
                                "rom_deg", "out_s", "hold_s", "back_s", "side_diff_deg", "area_ratio", "turn_seen"],\
        done.stdout
    assert len(lines) == 3 + reps, done.stdout


def test_the_engine_never_imports_qt():
    script = (
        "import pkgutil, importlib, sys, realtime\n"
        "for m in pkgutil.walk_packages(realtime.__path__, 'realtime.'): importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('PyQt')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_webcam_that_never_opens_says_so_and_offers_a_retry(make_window, qtbot, squat_clip):
    window = make_window()
    window.open_source("57")  # no such camera
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=STARTED_MS)
    assert "webcam 57 is not connected" in window.banner.text()
    retry = next(b for b in window.banner.findChildren(QPushButton) if b.isVisible())
    assert retry.text() == "Retry"
    qtbot.mouseClick(retry, Qt.MouseButton.LeftButton)  # tries the camera again: still absent, said again
    assert not window.banner.isVisible()
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=STARTED_MS)
    assert "webcam 57 is not connected" in window.banner.text() and window.banner.action_texts() == ["Retry"]
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 2)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=10000)


def test_an_unwritable_output_folder_is_reported_and_the_view_goes_on(make_window, qtbot, squat_clip, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    window = make_window(output_dir=str(blocker / "recordings"))  # works even for root, unlike chmod
    window.open_source(str(squat_clip))
    wait_for_frames(qtbot, window, 2)
    window.recording_panel.toggle_recording()
    assert window.recording_panel.recording_path is None and window.banner.isVisible()
    assert "cannot write" in window.banner.text() and "a-file" in window.banner.text()
    shown = window.frames_shown
    wait_for_frames(qtbot, window, shown + 5)
