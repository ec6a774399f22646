"""The main window: the video view with its playback bar, a side panel of controls in tabs and
the status bar; a presentation view for demos.

Panels send intent to the Session (and through it the Pipeline); the window pulls the engine's
state on two timers: the newest frame at the display's refresh rate, everything else 4 times a
second. The engine never calls into Qt.

Pause (Space) holds the whole pipeline: nothing is parsed, counted or recorded until it plays
on; seeks and frame steps (←/→) show the frame they land on. Whatever is on screen, paused, at
the end of a file or playing, is drawn again from its stored result when a view setting or the
person choice changes. Below DRAWER_BELOW_PX of width the side panel becomes a drawer over the
video.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PyQt6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.banner import Level
from gui.fitness_panel import FitnessPanel
from gui.group_box import group_box
from gui.people_picker import PeoplePicker
from gui.presentation_view import PresentationView
from gui.recording_panel import RecordingPanel
from gui.session import Session
from gui.source_banner import SourceBanner
from gui.source_panel import SourcePanel
from gui.status_panel import StatusPanel, state_text
from gui.transport_bar import TransportBar
from gui.video_view import PLACEHOLDER, Readout, VideoView
from gui.view_panel import ViewPanel
from gui.wheel_guard import WheelGuard
from realtime.pipeline import FrameResult
from realtime.render import models_text, readout_panel, stats_lines
from realtime.sources import is_device_or_stream

STATE_INTERVAL_MS = 250


def failure_headline(spec: str) -> str:
    """What failed, in a coach's words, by the kind of source."""
    spec = spec.strip()
    if spec.isdigit():
        return f"Webcam {spec} is not available"
    if is_device_or_stream(spec):
        return "Cannot connect to the camera or stream"
    return f"{Path(spec).name or spec} cannot be played"

DRAWER_BELOW_PX = 1000
DRAWER_PX = 400
SHORTCUTS_HINT = "Space play/pause · ←/→ frame · F present · R record · S screenshot"
TABS = ("Source", "Exercise", "People", "View", "Record")


class MainWindow(QMainWindow):
    frame_shown = pyqtSignal(int)  # a new result is on screen: how many the window has shown

    def __init__(self, session: Session, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self._shown_result: FrameResult | None = None
        self._display_times: deque[float] = deque()
        self._frames_shown = 0
        self._closed = False
        self._shown_source_error: str | None = None
        self._awaiting_model: str | None = None
        self._awaited_switch = 0  # the pipeline's source_switches from which its results are the new source's
        self._record_when_open = False  # open_source(record=True): the recording starts once the source opened
        self._presentation: PresentationView | None = None
        self.setWindowTitle("PartSight")

        self.video_view = VideoView()
        self.transport = TransportBar()
        self.status_panel = StatusPanel()
        self.source_panel = SourcePanel(session, settings)
        self.fitness_panel = FitnessPanel()
        self.people_picker = PeoplePicker(session)
        self.view_panel = ViewPanel(session, settings)
        self.recording_panel = RecordingPanel(session, settings, self.video_view)
        self._video_area = QWidget()
        self._banner_strip = QWidget()  # always there: a message coming or going never moves the video
        self.banner = SourceBanner(session, self._banner_strip)
        self.side_panel = self._build_side_panel()
        self._drawer_button = QToolButton(self._video_area)
        self._splitter = self._build_layout()
        self.setStatusBar(self.status_panel)
        self._restore_playback_choices()

        self.source_panel.source_requested.connect(self.open_source)
        self.source_panel.source_changed.connect(
            lambda source: self.setWindowTitle(f"PartSight — {source}" if source else "PartSight"))
        self.source_panel.model_picker.model_requested.connect(self.switch_model)
        self.banner.open_requested.connect(self.open_source)
        self.banner.browse_requested.connect(self.source_panel.source_picker.browse)
        self.banner.replay_requested.connect(self.play_again)
        self.fitness_panel.exercise_requested.connect(self._on_exercise)
        self.fitness_panel.export_requested.connect(self.recording_panel.export_reps)
        self.recording_panel.recording_started.connect(self.refresh_state)
        self.recording_panel.failed.connect(self.banner.show_message)
        self.recording_panel.saved.connect(self._show_saved)
        self.video_view.image_clicked.connect(self._select_at)
        self.people_picker.selection_changed.connect(self.redraw)
        self.view_panel.view_changed.connect(self._on_view_changed)
        self.transport.play_toggled.connect(self.toggle_pause)
        self.transport.step_requested.connect(self.step)
        self.transport.seek_requested.connect(session.seek)
        self.transport.speed_requested.connect(self._on_speed)
        self.transport.loop_toggled.connect(self._on_loop)
        self.transport.drop_late_toggled.connect(self._on_drop_late)
        self.transport.present_requested.connect(self.toggle_presentation)
        for keys, slot in (("Space", self.toggle_pause), ("Left", lambda: self.step(-1)),
                           ("Right", lambda: self.step(1)), ("R", self.recording_panel.toggle_recording),
                           ("S", self.recording_panel.save_screenshot), ("F", self.toggle_presentation),
                           ("Esc", self.leave_presentation)):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)
        self._wheel_guard = WheelGuard(self)
        self._wheel_guard.guard(self)

        if not self.restoreGeometry(settings.value("window/geometry", b"")):
            self.resize(1440, 900)
        self._splitter.restoreState(settings.value("window/splitter", b""))
        self.side_panel.setCurrentIndex(settings.value("window/tab", 0, int))
        exercise = settings.value("fitness/exercise", "", str)
        if exercise:
            self.fitness_panel.picker.choose(exercise)
        self._frame_timer = QTimer(self)
        self._frame_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._frame_timer.timeout.connect(self._show_newest_frame)
        self._state_timer = QTimer(self)
        self._state_timer.setInterval(STATE_INTERVAL_MS)
        self._state_timer.timeout.connect(self.refresh_state)
        self._frame_timer.start(self._display_interval_ms())
        self._state_timer.start()
        self.refresh_state()

    # --- what tests and automation observe -------------------------------------------
    @property
    def shown_result(self) -> FrameResult | None:
        return self._shown_result

    @property
    def frames_shown(self) -> int:
        return self._frames_shown

    @property
    def paused(self) -> bool:
        return self._session.paused

    @property
    def presentation(self) -> PresentationView | None:
        """The presentation view while it is open."""
        return self._presentation

    @property
    def drawer_mode(self) -> bool:
        return self.side_panel.parent() is self._video_area

    @property
    def stalled(self) -> bool:
        """True when no new frame will come without the user: nothing opened, the file ended, or an error."""
        if self._session.opening:
            return False
        pipeline = self._session.pipeline
        return pipeline is None or pipeline.finished or pipeline.error is not None

    @property
    def shown_error(self) -> str | None:
        """What the window shows as the reason nothing plays (the source's error, else the
        model's), or None."""
        return self._session.source_error or self._session.error

    def screenshot_widget(self) -> QWidget:
        """What a picture of the app shows: the presentation view while open, else this window."""
        return self._presentation or self

    # --- intent ----------------------------------------------------------------------
    def open_source(self, spec: str, *, record: bool = False) -> bool:
        """Plays `spec` from its start, forgetting the person choice, the counts and the plot of
        the source before; asks first while a recording runs (False: the user kept it, or a
        source is still opening). With `record` a recording starts once it opened: with its first
        frame when no source played before (the engine starts paused and plays once the
        recording runs), else with the first frame after the switch the window sees."""
        if self.recording_panel.recording_path is not None:
            if not self.confirm("Recording", "A recording is running. Stop it and open the new source?",
                                "Stop recording and open"):
                return False
            self.recording_panel.stop_recording()
        pipeline = self._session.pipeline
        switches = pipeline.source_switches if pipeline is not None else None
        if not self._session.open(spec, paused=record):
            return False
        self._record_when_open = record
        if switches is not None:
            self._awaited_switch = switches + 1
        self._session.set_mirror(self.view_panel.mirror_webcams and spec.strip().isdigit())
        self._forget_source(f"Opening {Path(spec).name or spec}…" if not spec.strip().isdigit()
                            else f"Opening webcam {spec}…")
        self.refresh_state()
        return True

    def switch_model(self, name: str) -> None:
        """Parses with `name` from its first frame on; the view waits for it, not showing the old model's frames."""
        if name == self._session.model:
            return
        self._session.switch_model(name)
        self._awaiting_model = name
        self._shown_result = None
        self.video_view.show_message(f"Loading {name}…")

    def play_again(self) -> None:
        self._session.seek(0.0)
        self._session.set_paused(False)

    def toggle_pause(self) -> None:
        """Pauses or plays on; at the end of a file, plays it again."""
        pipeline = self._session.pipeline
        if pipeline is not None and pipeline.finished and not self._session.paused:
            self.play_again()
            return
        self._session.set_paused(not self._session.paused)
        self.redraw()
        self.refresh_state()

    def step(self, frames: int) -> None:
        """Shows the next (1) or previous (-1) frame of a file, paused."""
        info = self._session.pipeline.source_info if self._session.pipeline is not None else None
        if info is None or not info.seekable:
            return
        self._session.step(frames)
        self.refresh_state()

    def toggle_presentation(self) -> None:
        if self._presentation is not None:
            self.leave_presentation()
            return
        self._presentation = PresentationView(self)
        self._presentation.closed.connect(self._presentation_closed)
        self._presentation.key_pressed.connect(self._presentation_key)
        self._presentation.present()
        self.redraw()
        self.refresh_state()

    def leave_presentation(self) -> None:
        if self._presentation is not None:
            self._presentation.close()

    def redraw(self) -> None:
        """Draws the frame on screen again from its stored result, as the view settings and the
        person choice now say."""
        if self._shown_result is not None:
            self._display(self._shown_result, redraw=True)

    def close_now(self) -> None:
        """Closes without asking (Ctrl-C, SIGTERM): a running recording is finished and kept."""
        self.recording_panel.stop_recording()
        self.close()

    def confirm(self, title: str, text: str, yes: str) -> bool:
        """Asks a yes/no question; True when the user chose `yes`."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self)
        accept = box.addButton(yes, QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is accept

    # --- pulling engine state ----------------------------------------------------------
    def refresh_state(self) -> None:
        """Brings every panel in line with the engine (the state timer calls this)."""
        session = self._session
        session.poll()
        self._start_asked_recording()
        pipeline = session.pipeline
        self._show_source_error(session.source_error)
        if self._awaiting_model is not None and session.error and "cannot load model" in session.error:
            self._awaiting_model = None  # the old model goes on: show its frames again
        self.view_panel.show_state()
        self.source_panel.show_state()
        self.banner.show_state()
        self.recording_panel.show_state()
        state = state_text(session, recording=self.recording_panel.recording_path is not None)
        playing = pipeline if pipeline is not None and not session.source_error else None
        info = playing.source_info if playing is not None else None
        self.status_panel.show_stats(playing.stats if playing else None, display_fps=self._display_fps(), state=state,
                                     live=bool(info and info.live))
        shown = self._shown_result
        self.transport.show_state(position_s=shown.frame.position_s if shown is not None else None,
                                  duration_s=info.duration_s if info else None,
                                  paused=session.paused or bool(playing and playing.finished),
                                  seekable=bool(info and info.seekable), playing=playing is not None)
        if not self._switched(pipeline):
            return  # the old source's results still come: show nothing of them
        latest = playing.latest() if playing is not None else None
        fitness = session.fitness
        output = latest.analysis.get("fitness") if latest else None
        summary = fitness.summary() if fitness else None
        self.fitness_panel.show_state(output, summary)
        if self._presentation is not None:
            self._presentation.show_analysis(output, summary)

    def refresh(self) -> None:
        """Shows the newest frame and state now, without waiting for the timers."""
        self._show_newest_frame()
        self.refresh_state()

    def _start_asked_recording(self) -> None:
        """The recording open_source(record=True) asked for, once the source opened (none when it
        failed), and the engine, started paused for it, plays."""
        session = self._session
        if not self._record_when_open or session.opening or not self._switched(session.pipeline):
            return
        self._record_when_open = False
        if session.source_error is None:
            self.recording_panel.start_recording()
        session.set_paused(False)

    def _show_source_error(self, error: str | None) -> None:
        """A failed source replaces the view: no old frame, status or counts stay under the message."""
        if error == self._shown_source_error:
            return
        self._shown_source_error = error
        if error:
            self._forget_source(f"{failure_headline(self._session.source_spec or '')}\n\n{error}", is_error=True)

    def _forget_source(self, message: str, *, is_error: bool = False) -> None:
        self._shown_result = None
        self.video_view.show_message(message, error=is_error)
        if self._presentation is not None:
            self._presentation.video_view.show_message(message, error=is_error)
        self.fitness_panel.reset()
        self.people_picker.reset()

    def _show_newest_frame(self) -> None:
        pipeline = self._session.pipeline
        result = pipeline.latest() if pipeline is not None and self._switched(pipeline) else None
        if result is None or result is self._shown_result:
            return
        if self._awaiting_model is not None:
            if result.model != self._awaiting_model:
                return
            self._awaiting_model = None
        self._shown_result = result
        self._display(result)
        self.fitness_panel.add_frame(result)
        self.people_picker.show_people(result.parse.people, result.id_restarts)
        self._frames_shown += 1
        self._display_times.append(time.monotonic())
        self.frame_shown.emit(self._frames_shown)

    def _switched(self, pipeline) -> bool:
        """Whether the pipeline has switched to the source opened last (its results are that source's)."""
        return pipeline is None or pipeline.source_switches >= self._awaited_switch

    def _display(self, result: FrameResult, *, redraw: bool = False) -> None:
        """Puts `result` on screen: its image (drawn again with the current view settings and
        person choice when `redraw`), the readout in its slot, the original beside it in split view."""
        session = self._session
        drawn = session.render(replace(result, selected_people=session.selected_people)) if redraw else result.image
        raw = None
        if self.view_panel.compare:
            raw = result.frame.image[:, ::-1] if session.renderer.view.mirror else result.frame.image
        self.video_view.set_frame(drawn, raw, readout=self._readout(result, drawn.shape[:2]))
        if self._presentation is not None:
            shown = replace(result, selected_people=session.selected_people)
            self._presentation.set_frame(session.render(shown, presentation=True), raw)

    def _readout(self, result: FrameResult, frame_hw: tuple[int, int]) -> Readout | None:
        """The speed readout of `result` (or, paused, its position) in the readout's slot, for the
        view to paint at the screen's resolution; below the engine's, when the engine drew it in."""
        position = f"frame {result.frame.index}  {result.frame.pts_s:.2f} s"
        if self._session.renderer.view.show_stats:
            if not self._session.paused:
                return None
            below = readout_panel(stats_lines(result)).box(frame_hw)[3]
            lines = [f"PAUSED  {position}"]
            return Readout(lines, readout_panel(lines, below_y=below).box(frame_hw))
        lines = ([f"PAUSED  {position}", models_text(result.model, result.pose_source)] if self._session.paused
                 else stats_lines(result))
        return Readout(lines, readout_panel(lines).box(frame_hw))

    def _display_fps(self) -> float:
        now = time.monotonic()
        while self._display_times and now - self._display_times[0] > 1.0:
            self._display_times.popleft()
        return float(len(self._display_times))

    # --- reactions -----------------------------------------------------------------------
    def _on_exercise(self, name: str) -> None:
        self._session.set_exercise(name)
        self._settings.setValue("fitness/exercise", name)

    def _on_view_changed(self) -> None:
        spec = self._session.source_spec or ""
        self._session.set_mirror(self.view_panel.mirror_webcams and spec.strip().isdigit())
        self.redraw()

    def _select_at(self, x: float, y: float) -> None:
        result = self._shown_result
        if result is not None and self._session.renderer.view.mirror:
            x = result.frame.image.shape[1] - 1 - x
        self.people_picker.select_at(x, y)

    def _show_saved(self, message: str) -> None:
        self.banner.show_message(message, level=Level.INFO,
                                 actions=[("Open folder", self.recording_panel.open_folder)])

    def _on_speed(self, speed: float) -> None:
        self._session.set_speed(speed)
        self._settings.setValue("playback/speed", speed)

    def _on_loop(self, loop: bool) -> None:
        self._session.set_loop(loop)
        self._settings.setValue("playback/loop", loop)

    def _on_drop_late(self, drop_late: bool) -> None:
        self._session.set_drop_late(drop_late)
        self._settings.setValue("playback/drop_late", drop_late)

    def _restore_playback_choices(self) -> None:
        settings = self._settings
        speed = settings.value("playback/speed", 1.0, float)
        loop = settings.value("playback/loop", False, bool)
        drop_late = settings.value("playback/drop_late", False, bool)
        session = self._session
        session.set_speed(speed)
        session.set_loop(loop)
        session.set_drop_late(drop_late)
        self.transport.set_choices(speed=speed, loop=loop, drop_late=drop_late)

    def _presentation_closed(self) -> None:
        self._presentation = None
        self.activateWindow()

    def _presentation_key(self, key: int) -> None:
        actions = {Qt.Key.Key_Space: self.toggle_pause, Qt.Key.Key_Left: lambda: self.step(-1),
                   Qt.Key.Key_Right: lambda: self.step(1)}
        action = actions.get(Qt.Key(key))
        if action is not None:
            action()

    # --- layout, lifecycle -------------------------------------------------------------
    def _build_side_panel(self) -> QTabWidget:
        """Tabs, each fitting a 720-pixel-high window without scrolling (lists scroll themselves)."""
        tabs = QTabWidget()
        tabs.setObjectName("sidePanel")
        tabs.setDocumentMode(True)
        hint = QLabel(SHORTCUTS_HINT)
        hint.setObjectName("shortcutsHint")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        source = QWidget()
        source_layout = QVBoxLayout(source)
        source_layout.addWidget(self.source_panel)
        source_layout.addStretch(1)
        source_layout.addWidget(hint)
        record = QWidget()
        record_layout = QVBoxLayout(record)
        record_layout.addWidget(self.recording_panel)
        record_layout.addStretch(1)
        people = QWidget()
        people_layout = QVBoxLayout(people)
        people_layout.addWidget(group_box("People", self.people_picker))
        people_layout.addStretch(1)
        for title, widget in zip(TABS, (source, self.fitness_panel, people, self.view_panel, record)):
            tabs.addTab(widget, title)
        tabs.currentChanged.connect(lambda index: self._settings.setValue("window/tab", index))
        return tabs

    def _build_layout(self) -> QSplitter:
        self._banner_strip.setFixedHeight(self.banner.sizeHint().height() + 4)
        self._banner_strip.installEventFilter(self)
        layout = QVBoxLayout(self._video_area)
        layout.setContentsMargins(6, 6, 0, 6)
        layout.addWidget(self._banner_strip)
        layout.addWidget(self.video_view, 1)
        layout.addWidget(self.transport)
        self._video_area.installEventFilter(self)
        self.video_view.show_message(PLACEHOLDER)
        self._drawer_button.setText("☰  Controls")
        self._drawer_button.setObjectName("drawerButton")
        self._drawer_button.setToolTip("Show or hide the controls")
        self._drawer_button.clicked.connect(self.toggle_drawer)
        self._drawer_button.hide()

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._video_area)
        splitter.addWidget(self.side_panel)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setCollapsible(0, False)
        self.side_panel.setMinimumWidth(340)
        self.setCentralWidget(splitter)
        return splitter

    def toggle_drawer(self) -> None:
        """In drawer mode: shows or hides the controls over the video."""
        if self.drawer_mode:
            self.side_panel.setVisible(self.side_panel.isHidden())
            self._place_drawer()

    def _set_drawer_mode(self, drawer: bool) -> None:
        if drawer == self.drawer_mode:
            return
        if drawer:
            self.side_panel.setParent(self._video_area)
            self.side_panel.setAutoFillBackground(True)
            self.side_panel.hide()
        else:
            self._splitter.addWidget(self.side_panel)
            self.side_panel.show()
        self._drawer_button.setVisible(drawer)
        self._place_drawer()

    def _place_drawer(self) -> None:
        area = self._video_area.rect()
        button = self._drawer_button
        button.adjustSize()
        button.move(area.right() - button.width() - 8, 8)
        button.raise_()
        if self.drawer_mode and not self.side_panel.isHidden():
            width = min(DRAWER_PX, area.width() - 40)
            self.side_panel.setGeometry(area.right() - width + 1, button.geometry().bottom() + 6, width,
                                        area.height() - button.height() - 14)
            self.side_panel.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize:
            if watched is self._video_area:
                self._place_drawer()
            elif watched is self._banner_strip:
                right = self._drawer_button.width() + 8 if self.drawer_mode else 0
                self.banner.setGeometry(0, 0, self._banner_strip.width() - right, self._banner_strip.height())
        return super().eventFilter(watched, event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._set_drawer_mode(event.size().width() < DRAWER_BELOW_PX)

    def _display_interval_ms(self) -> int:
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 60.0
        return max(4, round(1000 / (rate if rate > 1 else 60.0)))

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed and self.recording_panel.recording_path is not None and \
                not self.confirm("Recording", "A recording is running. Stop it (it is kept) and quit?",
                                 "Stop recording and quit"):
            event.ignore()
            return
        if not self._closed:
            self._closed = True
            self._frame_timer.stop()
            self._state_timer.stop()
            self.leave_presentation()
            self.recording_panel.stop_recording()
            self._settings.setValue("window/geometry", self.saveGeometry())
            if not self.drawer_mode:
                self._settings.setValue("window/splitter", self._splitter.saveState())
            self.source_panel.save_settings()
            self._settings.sync()
            self.source_panel.source_picker.stop_probing()
            self._session.close()
        super().closeEvent(event)
