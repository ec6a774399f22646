"""The main window: the video view, a side panel of controls and the status bar.

Panels send intent to the Session (and through it the Pipeline); the window pulls the engine's
state on two timers: the newest frame at the display's refresh rate, everything else 4 times a
second. The engine never calls into Qt.

Pause (Space) freezes the view on the frame shown; the engine keeps parsing, so a live camera
shows the present moment again on resume, and a running recording keeps recording.
"""
from __future__ import annotations

import time
from collections import deque

from PyQt6.QtCore import QSettings, Qt, QTimer
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.fitness_panel import FitnessPanel
from gui.group_box import group_box
from gui.people_picker import PeoplePicker
from gui.recording_panel import RecordingPanel
from gui.session import Session
from gui.source_banner import SourceBanner
from gui.source_panel import SourcePanel
from gui.status_panel import StatusPanel, state_text
from gui.video_view import VideoView
from gui.view_panel import ViewPanel
from realtime.pipeline import FrameResult

STATE_INTERVAL_MS = 250
SHORTCUTS_HINT = "Space pause · R record · S screenshot · F fullscreen"


class MainWindow(QMainWindow):
    def __init__(self, session: Session, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self._shown_result: FrameResult | None = None
        self._display_times: deque[float] = deque()
        self._frames_shown = 0
        self._paused = False
        self._closed = False
        self.setWindowTitle("PartSight")

        self.video_view = VideoView()
        self.banner = SourceBanner(session)
        self.status_panel = StatusPanel()
        self.source_panel = SourcePanel(session, settings)
        self.fitness_panel = FitnessPanel()
        self.people_picker = PeoplePicker(session)
        self.view_panel = ViewPanel(session, settings)
        self.recording_panel = RecordingPanel(session, settings, self.video_view)
        self._splitter = self._build_layout()
        self.setStatusBar(self.status_panel)

        self.source_panel.source_requested.connect(self.open_source)
        self.source_panel.source_changed.connect(
            lambda source: self.setWindowTitle(f"PartSight — {source}" if source else "PartSight"))
        self.banner.open_requested.connect(self.open_source)
        self.banner.browse_requested.connect(self.source_panel.source_picker.browse)
        self.fitness_panel.exercise_requested.connect(session.set_exercise)
        self.fitness_panel.export_requested.connect(self.recording_panel.export_reps)
        self.recording_panel.recording_started.connect(self.refresh_state)
        self.recording_panel.failed.connect(self.banner.show_message)
        self.recording_panel.saved.connect(self.status_panel.showMessage)
        self.video_view.image_clicked.connect(self.people_picker.select_at)
        self.view_panel.view_changed.connect(self._redraw_still_frame)
        for keys, slot in (("Space", self.toggle_pause), ("R", self.recording_panel.toggle_recording),
                           ("S", self.recording_panel.save_screenshot), ("F", self.toggle_fullscreen),
                           ("Esc", self._leave_fullscreen)):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)

        if not self.restoreGeometry(settings.value("window/geometry", b"")):
            self.resize(1440, 900)
        self._splitter.restoreState(settings.value("window/splitter", b""))
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
        return self._paused

    @property
    def stalled(self) -> bool:
        """True when no new frame will come without the user: nothing opened, the file ended, or an error."""
        if self._session.opening:
            return False
        pipeline = self._session.pipeline
        return pipeline is None or pipeline.finished or pipeline.error is not None

    # --- intent ----------------------------------------------------------------------
    def open_source(self, spec: str) -> None:
        self._session.open(spec)
        self.refresh_state()

    def toggle_pause(self) -> None:
        self._paused = not self._paused
        self.video_view.set_paused(self._paused)
        self.refresh_state()

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def _leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()

    # --- pulling engine state ----------------------------------------------------------
    def refresh_state(self) -> None:
        """Brings every panel in line with the engine (the state timer calls this)."""
        session = self._session
        session.poll()
        pipeline = session.pipeline
        self.view_panel.show_state()
        self.source_panel.show_state()
        self.banner.show_state()
        self.recording_panel.show_state()
        state = state_text(session, paused=self._paused, recording=self.recording_panel.recording_path is not None)
        self.status_panel.show_stats(pipeline.stats if pipeline else None, display_fps=self._display_fps(),
                                     state=state)
        latest = pipeline.latest() if pipeline is not None else None
        fitness = session.fitness
        self.fitness_panel.show_state(latest.analysis.get("fitness") if latest else None,
                                      fitness.summary() if fitness else None)

    def refresh(self) -> None:
        """Shows the newest frame and state now, without waiting for the timers."""
        self._show_newest_frame()
        self.refresh_state()

    def _redraw_still_frame(self) -> None:
        """Paused or at the end of a file, the shown frame is drawn again from its stored result."""
        pipeline = self._session.pipeline
        still = self._paused or (pipeline is not None and pipeline.finished)
        if still and self._shown_result is not None:
            self.video_view.set_frame(self._session.render(self._shown_result))

    def _show_newest_frame(self) -> None:
        pipeline = self._session.pipeline
        result = pipeline.latest() if pipeline is not None and not self._paused else None
        if result is None or result is self._shown_result:
            return
        self._shown_result = result
        self.video_view.set_frame(result.image)
        self.fitness_panel.add_frame(result)
        self.people_picker.show_people(result.parse.people)
        self._frames_shown += 1
        self._display_times.append(time.monotonic())

    def _display_fps(self) -> float:
        now = time.monotonic()
        while self._display_times and now - self._display_times[0] > 1.0:
            self._display_times.popleft()
        return float(len(self._display_times))

    # --- layout, lifecycle -------------------------------------------------------------
    def _build_layout(self) -> QSplitter:
        video = QWidget()
        video_layout = QVBoxLayout(video)
        video_layout.setContentsMargins(6, 6, 0, 6)
        video_layout.addWidget(self.banner)
        video_layout.addWidget(self.video_view, 1)

        panel = QWidget()
        panel_layout = QVBoxLayout(panel)
        panel_layout.addWidget(self.source_panel)
        panel_layout.addWidget(group_box("Fitness", self.fitness_panel))
        panel_layout.addWidget(group_box("People", self.people_picker))
        panel_layout.addWidget(self.view_panel, 1)
        panel_layout.addWidget(self.recording_panel)
        hint = QLabel(SHORTCUTS_HINT)
        hint.setObjectName("shortcutsHint")
        hint.setWordWrap(True)
        hint.setEnabled(False)
        panel_layout.addWidget(hint)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(panel.sizeHint().width() + 24)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(video)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 0)
        splitter.setCollapsible(0, False)
        self.setCentralWidget(splitter)
        return splitter

    def _display_interval_ms(self) -> int:
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 60.0
        return max(4, round(1000 / (rate if rate > 1 else 60.0)))

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed:
            self._closed = True
            self._frame_timer.stop()
            self._state_timer.stop()
            self.recording_panel.stop_recording()
            self._settings.setValue("window/geometry", self.saveGeometry())
            self._settings.setValue("window/splitter", self._splitter.saveState())
            self.source_panel.save_settings()
            self._settings.sync()
            self._session.close()
        super().closeEvent(event)
