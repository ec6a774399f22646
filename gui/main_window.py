"""The main window: the video view, a side panel of controls and the status bar.

Widgets send intent to the Session (and through it the Pipeline); the window pulls the engine's
state on two timers: the newest frame at the display's refresh rate, everything else 4 times a
second. The engine never calls into Qt.

Pause (Space) freezes the view on the frame shown; the engine keeps parsing, so a live camera
shows the present moment again on resume, and a running recording keeps recording.
"""
from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QGroupBox,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gui.banner import Banner, Level
from gui.fitness_panel import FitnessPanel
from gui.model_picker import ModelPicker
from gui.overlay_controls import OverlayControls
from gui.part_toggles import PartToggles
from gui.people_picker import PeoplePicker
from gui.record_controls import RecordControls
from gui.session import Session
from gui.smoothing_control import SmoothingControl
from gui.source_picker import SourcePicker
from gui.status_panel import StatusPanel
from gui.video_view import VideoView
from realtime.analysis.summary import reps_csv
from realtime.models.registry import MODEL_SPECS
from realtime.pipeline import FrameResult
from realtime.recorder import Recorder, RecorderError
from realtime.sources import is_device_or_stream
from realtime.smoothing import DEFAULT_STRENGTH

STATE_INTERVAL_MS = 250
SHORTCUTS_HINT = "Space pause · R record · S screenshot · F fullscreen"


def default_output_dir() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)) / "PartSight"


class MainWindow(QMainWindow):
    def __init__(self, session: Session, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self._shown_result: FrameResult | None = None
        self._display_times: deque[float] = deque()
        self._frames_shown = 0
        self._paused = False
        self._recorder: Recorder | None = None
        self._recording_path: Path | None = None
        self._recording_started_s = 0.0
        self._shown_error: str | None = None
        self._shown_finished = False
        self._shown_source: str | None = None
        self._closed = False
        self.setWindowTitle("PartSight")

        self._view = VideoView()
        self._banner = Banner()
        self._status = StatusPanel()
        self._sources = SourcePicker(file_dir=str(settings.value("sources/file_dir", "", str)))
        self._models = ModelPicker(MODEL_SPECS)
        self._overlay = OverlayControls()
        self._smoothing = SmoothingControl()
        self._parts = PartToggles()
        self._record = RecordControls()
        self._fitness = FitnessPanel()
        self._people = PeoplePicker()
        self._build_layout()
        self.setStatusBar(self._status)

        self._sources.source_requested.connect(self.open_source)
        self._models.model_requested.connect(self._session.switch_model)
        self._overlay.opacity_changed.connect(self._on_opacity)
        self._overlay.keypoints_toggled.connect(self._on_keypoints)
        self._smoothing.strength_changed.connect(self._on_smoothing)
        self._parts.visibility_changed.connect(self._on_visibility)
        self._record.record_clicked.connect(self.toggle_recording)
        self._record.screenshot_clicked.connect(self.save_screenshot)
        self._fitness.exercise_requested.connect(self._session.set_exercise)
        self._fitness.export_requested.connect(self.export_reps)
        self._view.image_clicked.connect(self.select_person_at)
        self._people.all_requested.connect(self.select_all_people)
        for keys, slot in (("Space", self.toggle_pause), ("R", self.toggle_recording),
                           ("S", self.save_screenshot), ("F", self.toggle_fullscreen),
                           ("Esc", self._leave_fullscreen)):
            QShortcut(QKeySequence(keys), self).activated.connect(slot)

        self._restore_settings()
        self._sources.set_current(None)
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
    def video_view(self) -> VideoView:
        return self._view

    @property
    def selected_people(self) -> frozenset[int] | None:
        """The person IDs analysed (None: everyone)."""
        return self._session.selected_people

    @property
    def people_picker(self) -> PeoplePicker:
        return self._people

    @property
    def shown_result(self) -> FrameResult | None:
        return self._shown_result

    @property
    def banner(self) -> Banner:
        return self._banner

    @property
    def part_toggles(self) -> PartToggles:
        return self._parts

    @property
    def overlay_controls(self) -> OverlayControls:
        return self._overlay

    @property
    def smoothing_control(self) -> SmoothingControl:
        return self._smoothing

    @property
    def source_picker(self) -> SourcePicker:
        return self._sources

    @property
    def model_picker(self) -> ModelPicker:
        return self._models

    @property
    def record_controls(self) -> RecordControls:
        return self._record

    @property
    def fitness_panel(self) -> FitnessPanel:
        return self._fitness

    @property
    def status_panel(self) -> StatusPanel:
        return self._status

    @property
    def frames_shown(self) -> int:
        return self._frames_shown

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def recording_path(self) -> Path | None:
        return self._recording_path

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
        self._view.set_paused(self._paused)
        self.refresh_state()

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def _leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()

    def toggle_recording(self) -> None:
        if self._recording_path is not None:
            self._stop_recording()
            return
        pipeline = self._session.pipeline
        if pipeline is None:
            return
        path = _unused_path(self._output_dir(), ".mp4")
        try:
            self._recorder = pipeline.start_recording(path, metrics_path=path.with_suffix(".jsonl"))
        except RecorderError as exc:
            self._banner.show_message(str(exc), level=Level.ERROR)
            return
        self._recording_path = path
        self._recording_started_s = time.monotonic()
        self._record.set_recording(path)
        self.refresh_state()

    def save_screenshot(self) -> Path | None:
        """Saves the frame on screen, at full resolution, as a PNG in the output folder."""
        image = self._view.image()
        if image is None:
            return None
        path = _unused_path(self._output_dir(), ".png")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._banner.show_message(f"cannot write screenshots to {path.parent}: {exc.strerror}")
            return None
        if not image.save(str(path)):
            self._banner.show_message(f"cannot write {path}")
            return None
        self._status.showMessage(f"Saved {path}", 6000)
        return path

    def export_reps(self, fmt: str) -> Path | None:
        """Saves the counted repetitions as CSV or JSON in the output folder."""
        fitness = self._session.fitness
        if fitness is None:
            return None
        path = _unused_path(self._output_dir(), f".{fmt}")
        summary = fitness.summary()
        text = reps_csv(summary) if fmt == "csv" else json.dumps(summary, indent=2) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            self._banner.show_message(f"cannot write {path}: {exc.strerror}", level=Level.ERROR)
            return None
        self._status.showMessage(f"Saved {path}", 6000)
        return path

    # --- pulling engine state ----------------------------------------------------------
    def refresh_state(self) -> None:
        """Brings every widget in line with the engine (the state timer calls this)."""
        session = self._session
        session.poll()
        pipeline = session.pipeline
        if self._parts.labels != session.labels:
            self._show_labels()
        self._models.set_current(session.model)
        self._sources.setEnabled(not session.opening)
        self._models.setEnabled(not session.opening)
        source = pipeline.stats.source if pipeline else None
        if source != self._shown_source:
            self._shown_source = source
            self._sources.set_current(source)
            self.setWindowTitle(f"PartSight — {source}" if source else "PartSight")
        self._show_problems()
        if self._recorder is not None and self._recorder.error:
            self._stop_recording()
        if self._recording_path is not None:
            self._record.set_elapsed(time.monotonic() - self._recording_started_s)
        self._record.set_available(record=pipeline is not None, screenshot=self._view.image() is not None)
        self._status.show_stats(pipeline.stats if pipeline else None, display_fps=self._display_fps(),
                                state=self._state_text())
        latest = pipeline.latest() if pipeline is not None else None
        fitness = session.fitness
        self._fitness.show_state(latest.analysis.get("fitness") if latest else None,
                                 fitness.summary() if fitness else None)

    def _show_newest_frame(self) -> None:
        pipeline = self._session.pipeline
        result = pipeline.latest() if pipeline is not None and not self._paused else None
        if result is None or result is self._shown_result:
            return
        self._shown_result = result
        self._view.set_frame(result.image)
        self._fitness.add_frame(result)
        self._people.show_people([person.id for person in result.parse.people])
        self._frames_shown += 1
        self._display_times.append(time.monotonic())

    def select_person_at(self, x: float, y: float) -> int | None:
        """Analyse only the person whose mask holds frame pixel (x, y) in the frame on screen;
        returns their ID (None, with the choice unchanged, when nobody is there)."""
        result = self._shown_result
        if result is None:
            return None
        col, row = int(x), int(y)
        for person in result.parse.people:
            height, width = person.mask.shape
            if 0 <= row < height and 0 <= col < width and person.mask[row, col]:
                self._session.select_people({person.id})
                self._people.show_selection(self._session.selected_people)
                return person.id
        return None

    def select_all_people(self) -> None:
        self._session.select_people(None)
        self._people.show_selection(None)

    def refresh(self) -> None:
        """Shows the newest frame and state now, without waiting for the timers."""
        self._show_newest_frame()
        self.refresh_state()

    def _show_problems(self) -> None:
        session = self._session
        pipeline = session.pipeline
        error = session.error or (pipeline.source_status if pipeline is not None else None)
        if error != self._shown_error:
            self._shown_error = error
            if error:
                action = self._retry_action() if pipeline is None else None
                self._banner.show_message(error, level=Level.ERROR, action=action)
            elif self._banner.level is Level.ERROR:
                self._banner.dismiss()
        finished = pipeline is not None and pipeline.finished
        if finished != self._shown_finished:
            self._shown_finished = finished
            if finished and not error:
                name = Path(pipeline.stats.source).name
                self._banner.show_message(f"End of {name}.", level=Level.INFO,
                                          action=("Play again", lambda: self.open_source(session.source_spec)))
            elif not finished and self._banner.level is Level.INFO:
                self._banner.dismiss()

    def _retry_action(self) -> tuple[str, Callable[[], None]]:
        """A camera or stream that failed to open may come back: offer to try again; a file, to pick another."""
        spec = self._session.source_spec or ""
        if is_device_or_stream(spec):
            return "Retry", lambda: self.open_source(spec)
        return "Open file…", self._sources.browse

    def _show_labels(self) -> None:
        labels = self._session.labels
        hidden = self._settings.value(f"parts/{labels.name}/hidden", "", str)
        self._parts.set_labels(labels, set(filter(None, hidden.split(","))))
        self._session.set_visible_parts(self._parts.visible())

    def _state_text(self) -> str:
        pipeline = self._session.pipeline
        if self._session.opening:
            return "opening…"
        if pipeline is None:
            return "no source"
        if pipeline.source_status:
            return "reconnecting…"
        state = "❚❚ paused" if self._paused else "end of file" if pipeline.finished else "▶ playing"
        return f"● rec · {state}" if self._recording_path else state

    def _display_fps(self) -> float:
        now = time.monotonic()
        while self._display_times and now - self._display_times[0] > 1.0:
            self._display_times.popleft()
        return float(len(self._display_times))

    def _stop_recording(self) -> None:
        path, self._recording_path = self._recording_path, None
        self._recorder = None
        self._record.set_recording(None)
        pipeline = self._session.pipeline
        try:
            recorder = pipeline.stop_recording() if pipeline is not None else None
        except RecorderError as exc:
            self._banner.show_message(str(exc), level=Level.ERROR)
            return
        frames = recorder.frames_written if recorder is not None else 0
        self._status.showMessage(f"Saved {path} ({frames} frames) and {path.with_suffix('.jsonl').name}", 8000)

    # --- view -> engine ----------------------------------------------------------------
    def _on_opacity(self, opacity: float) -> None:
        self._session.set_opacity(opacity)
        self._settings.setValue("view/opacity", opacity)

    def _on_keypoints(self, show: bool) -> None:
        self._session.set_show_keypoints(show)
        self._settings.setValue("view/show_keypoints", show)

    def _on_smoothing(self, strength: float) -> None:
        self._session.set_smoothing(strength)
        self._settings.setValue("view/smoothing", strength)

    def _on_visibility(self, visible: np.ndarray) -> None:
        self._session.set_visible_parts(visible)
        labels = self._parts.labels
        self._settings.setValue(f"parts/{labels.name}/hidden", ",".join(self._parts.hidden_names()))

    # --- layout, settings, lifecycle ---------------------------------------------------
    def _build_layout(self) -> None:
        video = QWidget()
        video_layout = QVBoxLayout(video)
        video_layout.setContentsMargins(6, 6, 0, 6)
        video_layout.addWidget(self._banner)
        video_layout.addWidget(self._view, 1)

        panel = QWidget()
        panel_layout = QVBoxLayout(panel)
        for title, widget, stretch in (("Source", self._sources, 0), ("Model", self._models, 0),
                                       ("Fitness", self._fitness, 0), ("People", self._people, 0),
                                       ("Overlay", self._overlay, 0), ("Steadiness", self._smoothing, 0),
                                       ("Body parts", self._parts, 1),
                                       ("Record", self._record, 0)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(widget)
            panel_layout.addWidget(box, stretch)
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

        self._splitter = QSplitter(Qt.Orientation.Horizontal)
        self._splitter.addWidget(video)
        self._splitter.addWidget(scroll)
        self._splitter.setStretchFactor(0, 1)
        self._splitter.setStretchFactor(1, 0)
        self._splitter.setCollapsible(0, False)
        self.setCentralWidget(self._splitter)

    def _restore_settings(self) -> None:
        settings = self._settings
        opacity = settings.value("view/opacity", 0.6, float)
        show_keypoints = settings.value("view/show_keypoints", True, bool)
        self._overlay.set_opacity(opacity)
        self._overlay.set_show_keypoints(show_keypoints)
        self._session.set_opacity(opacity)
        self._session.set_show_keypoints(show_keypoints)
        smoothing = settings.value("view/smoothing", DEFAULT_STRENGTH, float)
        self._smoothing.set_strength(smoothing)
        self._session.set_smoothing(smoothing)
        if not self.restoreGeometry(settings.value("window/geometry", b"")):
            self.resize(1440, 900)
        self._splitter.restoreState(settings.value("window/splitter", b""))

    def _save_settings(self) -> None:
        settings = self._settings
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/splitter", self._splitter.saveState())
        settings.setValue("model", self._session.model)
        settings.setValue("sources/file_dir", self._sources.file_dir)
        settings.sync()

    def _output_dir(self) -> Path:
        return Path(self._settings.value("output_dir", str(default_output_dir()), str))

    def _display_interval_ms(self) -> int:
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 60.0
        return max(4, round(1000 / (rate if rate > 1 else 60.0)))

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closed:
            self._closed = True
            self._frame_timer.stop()
            self._state_timer.stop()
            if self._recording_path is not None:
                self._stop_recording()
            self._save_settings()
            self._session.close()
        super().closeEvent(event)


def _unused_path(folder: Path, suffix: str) -> Path:
    """folder/partsight-<date>-<time><suffix>, with -2, -3… when that name is taken."""
    stem = time.strftime("partsight-%Y%m%d-%H%M%S")
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path
