"""The window as a coach runs a demo with it (pytest-qt, offscreen, real clips and models):
playback that holds the whole pipeline, seeks that count only what is played, no setting changed
by a stray wheel, a new source that starts afresh, recordings that never go back in time, errors
that replace the view, the presentation view, the layout at 1280x720, merging a person who came
back under a new ID, and what is remembered."""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt, QTimer
from PyQt6.QtGui import QGuiApplication, QWheelEvent
from PyQt6.QtWidgets import QAbstractSlider, QApplication, QComboBox, QPushButton, QScrollArea, QSlider, QWidget

from conftest import wait_for_frames
from gui.main_window import DRAWER_BELOW_PX, MainWindow
from gui.source_panel import default_media_dir
from test_faults import _clip_frames, _write_clip

pytestmark = pytest.mark.usefixtures("engine_threads_joined")
SECOND_SQUAT_S = 2.4  # squat30.mp4: squats from 0.83 to 2.03 s and from 2.73 to 3.93 s
LONG = 180_000  # ms: liveness on a loaded machine, not speed


@pytest.fixture(scope="module")
def squat30(media_dir: Path) -> Path:
    return media_dir / "faults" / "squat30.mp4"


def answer_next_question(button_text: str) -> None:
    """Clicks `button_text` in the next modal question the window asks."""
    def click() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, click)
            return
        next(button for button in box.findChildren(QPushButton) if button.text() == button_text).click()

    QTimer.singleShot(0, click)


def wheel(widget: QWidget, steps: int = 3) -> None:
    """Turns the mouse wheel over the middle of `widget`, as a user scrolling the panel would."""
    for _ in range(steps):
        centre = QPointF(widget.width() / 2, widget.height() / 2)
        event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                            False)
        QApplication.sendEvent(widget, event)


def squats(window: MainWindow, qtbot, clip: Path) -> None:
    """Counts squats on `clip` from its start, until its first frame shows."""
    window.fitness_panel.picker.choose("squat")
    window.open_source(str(clip))
    wait_for_frames(qtbot, window)


def counts(window: MainWindow) -> dict[str, int]:
    window.refresh_state()
    return window.fitness_panel.counter.counts()


def test_pause_stops_parsing_and_counting_until_play(make_window, qtbot, squat30):
    window = make_window()
    window.fitness_panel.picker.choose("squat")
    window.open_source(str(squat30))
    qtbot.waitUntil(lambda: window.shown_result is not None and window.shown_result.frame.pts_s >= 0.4, timeout=LONG)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.paused
    pipeline = window._session.pipeline
    # a frame being parsed when Space was pressed still arrives and is shown
    qtbot.waitUntil(lambda: pipeline.in_flight == 0 and window.shown_result is pipeline.latest(), timeout=LONG)
    held = (window.frames_shown, pipeline.stats.frames, len(window.fitness_panel.plot.samples("0")), counts(window))
    position = window.transport.position_text()
    qtbot.wait(2500)
    assert (window.frames_shown, pipeline.stats.frames, len(window.fitness_panel.plot.samples("0")),
            counts(window)) == held
    assert held[3] == {"0": 0} and window.transport.position_text() == position
    assert window.status_panel.field("state") == "❚❚ paused"
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG)
    assert counts(window) == {"0": 2}, "nothing was lost to the pause"


def test_seek_then_play_counts_only_what_is_played_and_the_view_stays_live(make_window, qtbot, squat30):
    window = make_window()
    squats(window, qtbot, squat30)
    window.toggle_pause()
    seek_bar = window.transport.findChild(QSlider, "seekSlider")
    seek_bar.setValue(round(SECOND_SQUAT_S * 1000))  # as a click on the bar does
    qtbot.waitUntil(lambda: window.shown_result.frame.seeked
                    and window.shown_result.frame.pts_s == pytest.approx(SECOND_SQUAT_S, abs=0.02), timeout=LONG)
    window.refresh_state()
    assert window.transport.position_text().startswith("0:02.40 / 0:05.03")
    index = window.shown_result.frame.index
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.shown_result.frame.index == index + 1, timeout=LONG)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: window.shown_result.frame.index == index, timeout=LONG)
    assert window.paused

    window.toggle_pause()
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG)
    assert counts(window) == {"0": 1}, "only the second squat was played"
    table = window.fitness_panel.table
    assert table.rows() == 1 and float(table.cell(0, "time").split("–")[0]) >= SECOND_SQUAT_S

    before = window.video_view.image()
    window.view_panel.overlay_controls.findChild(QSlider).setValue(5)  # at the end of the file
    assert window.video_view.image() != before, "the last frame is drawn again with the new opacity"


def test_the_mouse_wheel_over_the_panel_changes_no_setting(make_window, qtbot, squat30):
    window = make_window()
    window.fitness_panel.picker.choose("squat")
    window.open_source(str(squat30))
    qtbot.waitUntil(lambda: window.fitness_panel.counter.counts().get("0") is not None, timeout=LONG)
    window.toggle_pause()  # the seek bar stands still too
    qtbot.wait(800)
    guarded = window.findChildren(QComboBox) + window.findChildren(QAbstractSlider)

    def values() -> list[int]:
        return [w.currentIndex() if isinstance(w, QComboBox) else w.value() for w in guarded]

    before = values()
    turned = 0
    for tab in range(window.side_panel.count()):
        window.side_panel.setCurrentIndex(tab)
        qtbot.wait(50)
        for widget in guarded:
            if widget.isVisible():
                wheel(widget)
                turned += 1
    assert turned >= 6  # exercise, model, speed, pacing, seek bar, opacity, smoothing...
    assert values() == before
    assert window._session.config.exercise.name == "squat"
    window.side_panel.setCurrentIndex(1)
    wheel(window.fitness_panel.plot._plot.viewport(), steps=10)
    window.refresh_state()
    assert window.fitness_panel.plot.y_range() == (0.0, 180.0), "the plot is not zoomed"


def test_a_new_source_starts_afresh_and_asks_while_recording(make_window, qtbot, squat30, media_dir, tmp_path):
    window = make_window()
    window.fitness_panel.picker.choose("squat")
    window.open_source(str(squat30))
    qtbot.waitUntil(lambda: window.stalled and window.shown_result is not None, timeout=LONG)
    person = window.shown_result.parse.people[0]
    ys, xs = np.nonzero(person.mask)
    qtbot.mouseClick(window.video_view, Qt.MouseButton.LeftButton,
                     pos=window.video_view.widget_point(float(np.median(xs)), float(np.median(ys))))
    assert window.people_picker.choice_text() == "Analysing: #0"
    assert counts(window) == {"0": 2} and window.fitness_panel.table.rows() == 2

    window.recording_panel.toggle_recording()
    answer_next_question("Cancel")
    assert not window.open_source(str(media_dir / "pose2sim-single-cam01.mp4"))
    assert window.recording_panel.recording_path is not None and window._session.source_spec == str(squat30)
    answer_next_question("Stop recording and open")
    assert window.open_source(str(media_dir / "pose2sim-single-cam01.mp4"))
    assert window.recording_panel.recording_path is None
    assert window.people_picker.choice_text().startswith("Analysing: everyone")
    assert window.fitness_panel.table.rows() == 0 and not window.fitness_panel.plot.samples("0")
    qtbot.waitUntil(lambda: window.shown_result is not None and "single" in window.windowTitle(), timeout=LONG)
    assert window._session.pipeline.selected_people is None
    assert counts(window) == {"0": 0}, "the counts start again"


def test_playing_again_while_recording_keeps_the_recording_s_times_rising(make_window, qtbot, squat30):
    window = make_window()
    window.open_source(str(squat30))
    wait_for_frames(qtbot, window)
    window.recording_panel.toggle_recording()
    path = window.recording_panel.recording_path
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG)
    window.refresh_state()
    length = window.recording_panel.record_controls.elapsed()
    qtbot.wait(1500)
    window.refresh_state()
    assert window.recording_panel.record_controls.elapsed() == length, "the length stops with the clip"
    replay = next(b for b in window.banner.findChildren(QPushButton) if b.text() == "Play again")
    qtbot.mouseClick(replay, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: 20 <= window.shown_result.frame.index < 100, timeout=LONG)
    window.recording_panel.toggle_recording()
    lines = [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
    times = [line["pts_s"] for line in lines]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:])), "never back in time"
    assert any(b["index"] < a["index"] for a, b in zip(lines, lines[1:])), "the clip was played again"
    with av.open(str(path)) as container:
        assert [frame.time for frame in container.decode(video=0)] == pytest.approx(times, abs=1e-3)


def test_an_error_replaces_the_view_with_a_plain_message_and_a_retry(make_window, qtbot, squat30, tmp_path):
    window = make_window()
    window.fitness_panel.picker.choose("squat")
    window.open_source(str(squat30))
    qtbot.waitUntil(lambda: window.fitness_panel.counter.counts().get("0") is not None, timeout=LONG)
    assert window.video_view.image() is not None
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("this is not a video\n" * 100)
    window.open_source(str(text_file))
    qtbot.waitUntil(lambda: window.banner.isVisible() and "notes.mp4" in window.banner.text(), timeout=LONG)
    window.refresh()
    assert window.video_view.image() is None and window.shown_result is None, "the old frame is gone"
    message = window.video_view.message()
    assert "not a video PartSight can read" in message and "Invalid data" not in message
    assert "Invalid data" not in window.banner.text()
    assert window.banner.action_texts() == ["Retry", "Open file…"]
    assert window.fitness_panel.counter.counts() == {} and window.fitness_panel.table.rows() == 0
    assert window.status_panel.field("state") == "failed" and window.status_panel.field("resolution") == ""
    assert "Playing" not in window.source_panel.source_picker.findChild(QWidget, "currentSource").text()

    window.open_source("rtsp://127.0.0.1:9/live")  # nothing listens on port 9
    qtbot.waitUntil(lambda: window.banner.isVisible() and "127.0.0.1" in window.banner.text(), timeout=LONG)
    assert "connection refused" in window.banner.text() and window.banner.action_texts() == ["Retry"]


def test_the_presentation_view_shows_the_counter_full_screen(make_window, qtbot, squat30):
    window = make_window()
    squats(window, qtbot, squat30)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F)
    presentation = window.presentation
    assert presentation is not None and presentation.isVisible()
    assert presentation.geometry() == QGuiApplication.primaryScreen().geometry(), "covers the screen by itself"
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG)
    window.refresh()
    assert presentation.counts() == {"0": 2}
    texts = presentation.texts()
    assert "SQUAT" in texts and "reps" in texts
    assert any(text.startswith("last rep: ") and "°" in text and " s" in text for text in texts)
    assert presentation.video_view.image() is not None
    qtbot.keyClick(presentation, Qt.Key.Key_Escape)
    assert window.presentation is None


def test_the_side_panel_fits_1280x720_and_becomes_a_drawer_when_narrow(make_window, qtbot):
    window = make_window()
    window.resize(1280, 720)
    qtbot.wait(200)
    assert not window.drawer_mode
    assert not window.findChildren(QScrollArea), "no scroll area holds the panel (lists scroll themselves)"
    tabs = window.side_panel
    for index in range(tabs.count()):
        page = tabs.widget(index)
        assert page.minimumSizeHint().height() <= tabs.height() - tabs.tabBar().height(), tabs.tabText(index)
    assert window.video_view.width() > window.side_panel.width() * 2, "the video keeps most of the window"

    window.resize(DRAWER_BELOW_PX - 100, 700)
    qtbot.waitUntil(lambda: window.drawer_mode, timeout=5000)
    assert window.side_panel.isHidden() and window.video_view.width() > 700
    window.toggle_drawer()
    assert window.side_panel.isVisible() and window.side_panel.geometry().right() <= window.video_view.parent().width()
    window.resize(1280, 720)
    qtbot.waitUntil(lambda: not window.drawer_mode, timeout=5000)
    assert window.side_panel.isVisible()


def test_a_person_back_under_a_new_id_can_be_merged_and_their_reps_add_up(make_window, qtbot, media_dir, tmp_path):
    frames = _clip_frames(media_dir / "faults" / "leave_A.mp4", 211)
    clip = tmp_path / "away_6s.mp4"  # the squatter leaves after the first squat for 6 s: the tracker forgets them
    _write_clip(clip, frames[:71] + frames[71:131] * 3 + frames[131:])
    window = make_window(max_people=4)
    window.fitness_panel.picker.choose("squat")
    window._session.set_speed(2.0)
    window.open_source(str(clip))
    qtbot.waitUntil(lambda: window.people_picker.merge_offer() is not None, timeout=LONG)
    new_id, earlier = window.people_picker.merge_offer()
    assert new_id != 0 and earlier == [0]
    qtbot.mouseClick(window.people_picker.findChild(QPushButton, "mergeButton"), Qt.MouseButton.LeftButton)
    assert window.people_picker.merge_offer() is None
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG)
    summary = window._session.fitness.summary()
    assert list(summary["people"]) == ["0"] and summary["people"]["0"]["reps"] == 2
    assert counts(window) == {"0": 2}


def test_a_model_switch_starts_the_choice_of_people_and_the_merge_offers_afresh(make_window, qtbot, media_dir,
                                                                                tmp_path):
    """A model switch restarts the tracker's IDs (from 0), but the window kept its merge offers and
    the people chosen: an ID merged before the switch was never offered again (the squatter, away
    again after it and back under that ID, stayed someone new), and a chosen ID named whoever the
    new tracker gave it. The engine says when the IDs start again (FrameResult.id_restarts) and
    chooses everyone then; the window follows it."""
    frames = _clip_frames(media_dir / "faults" / "leave_A.mp4", 211)
    away, back = frames[71:131] * 2, frames[131:]  # away for 4 s: the tracker forgets them (after 3 s)
    clip = tmp_path / "away_twice.mp4"
    _write_clip(clip, frames[:71] + away + back[:60] + away + back)
    window = make_window(max_people=4)
    window._session.set_speed(2.0)
    window.open_source(str(clip))
    qtbot.waitUntil(lambda: window.people_picker.merge_offer() is not None, timeout=LONG)
    offer = window.people_picker.merge_offer()
    window.people_picker.merge(offer[0], offer[1][0])  # as the Merge button does
    window._session.select_people({offer[1][0]})
    window.switch_model("bodypix-s8")
    qtbot.waitUntil(lambda: window.shown_result is not None and window.shown_result.model == "bodypix-s8",
                    timeout=LONG)
    chosen = window._session.selected_people, window.people_picker.choice_text()
    qtbot.waitUntil(lambda: window.people_picker.merge_offer() is not None or window.stalled, timeout=LONG)
    assert window.people_picker.merge_offer() == offer, "away and back again: offered again, under the same IDs"
    assert chosen == (None, "Analysing: everyone (click a person to choose)"), \
        "a choice made before the switch names someone else"
    assert window.shown_result.id_restarts == 1


def test_choices_are_remembered_and_the_first_open_dialog_starts_in_videos_or_home(make_window, qtbot, squat30,
                                                                                    tmp_path):
    window = make_window()
    assert window.source_panel.source_picker.file_dir == default_media_dir()
    assert Path(default_media_dir()).is_dir()
    assert window.view_panel.mirror_webcams, "webcams are mirrored by default"
    window.fitness_panel.picker.choose("squat")
    window.transport.findChild(QComboBox, "speedCombo").activated.emit(1)  # 0.5x
    window.recording_panel.set_output_dir(tmp_path / "chosen")
    window.open_source(str(squat30))
    wait_for_frames(qtbot, window)
    window.refresh_state()
    assert not window._session.renderer.view.mirror, "a file is never mirrored"
    assert window.findChild(QPushButton, "openFolderButton") is not None
    window.close()

    again = make_window()
    assert again.source_panel.last_source() == str(squat30)
    assert again._session.config.exercise.name == "squat" and again._session.speed == 0.5
    assert again.recording_panel.output_dir() == tmp_path / "chosen"
