"""What the window writes to the output folder (setting output_dir, chosen here and opened in the
file manager from here): the annotated video with its metrics, screenshots of the frame on
screen, and the counted repetitions; and whether the speed readout goes into them
(record/stats, off by default)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from gui.group_box import group_box
from gui.record_controls import RecordControls
from gui.session import Session
from gui.video_view import VideoView
from realtime.analysis.summary import reps_csv
from realtime.recorder import Recorder, RecorderError
from realtime.render import plural

log = logging.getLogger(__name__)


def default_output_dir() -> Path:
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)) / "PartSight"


class RecordingPanel(QWidget):
    """Emits `failed(message)` when a file cannot be written, `saved(message)` when one was,
    `recording_started()`, and `recording_finished(path, frames)` (the MP4's Path; its JSONL
    beside it) when a recording was finished and kept."""

    failed = pyqtSignal(str)
    saved = pyqtSignal(str)
    recording_started = pyqtSignal()
    recording_finished = pyqtSignal(Path, int)

    def __init__(self, session: Session, settings: QSettings, view: VideoView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self._view = view
        self._recorder: Recorder | None = None
        self._recording_path: Path | None = None
        self.record_controls = RecordControls()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(group_box("Record", self.record_controls))
        self.record_controls.record_clicked.connect(self.toggle_recording)
        self.record_controls.screenshot_clicked.connect(self.save_screenshot)
        self.record_controls.choose_folder_clicked.connect(self.choose_folder)
        self.record_controls.open_folder_clicked.connect(self.open_folder)
        self.record_controls.stats_toggled.connect(self._on_stats)
        self.record_controls.set_folder(self.output_dir())
        stats = settings.value("record/stats", False, bool)
        self.record_controls.set_stats(stats)
        session.set_stats_in_recordings(stats)

    def output_dir(self) -> Path:
        return Path(self._settings.value("output_dir", str(default_output_dir()), str))

    def set_output_dir(self, folder: str | Path) -> None:
        self._settings.setValue("output_dir", str(folder))
        self.record_controls.set_folder(Path(folder))

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", str(self.output_dir()))
        if folder:
            self.set_output_dir(folder)

    def open_folder(self) -> None:
        """Shows the output folder in the file manager (made first if it does not exist)."""
        folder = self.output_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.failed.emit(f"cannot make the output folder {folder}: {exc.strerror}")
            return
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.failed.emit(f"no file manager could open {folder}")

    def _on_stats(self, on: bool) -> None:
        self._settings.setValue("record/stats", on)
        self._session.set_stats_in_recordings(on)

    @property
    def recording_path(self) -> Path | None:
        return self._recording_path

    def toggle_recording(self) -> None:
        if self._recording_path is not None:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self) -> None:
        """Records from the next frame the engine delivers on (nothing while no pipeline runs, or
        one already records; `failed` when the files cannot be written)."""
        pipeline = self._session.pipeline
        if pipeline is None or self._recording_path is not None:
            return
        path = _unused_path(self.output_dir(), ".mp4")
        try:
            self._recorder = pipeline.start_recording(path, metrics_path=path.with_suffix(".jsonl"))
        except RecorderError as exc:
            log.exception("cannot start recording to %s", path)
            self.failed.emit(str(exc))
            return
        self._recording_path = path
        self.record_controls.set_recording(path)
        self.recording_started.emit()

    def stop_recording(self) -> None:
        """Finalises the running recording, if there is one."""
        path, self._recording_path = self._recording_path, None
        if path is None:
            return
        self._recorder = None
        self.record_controls.set_recording(None)
        pipeline = self._session.pipeline
        try:
            recorder = pipeline.stop_recording() if pipeline is not None else None
        except RecorderError as exc:
            log.exception("cannot finish recording %s", path)
            self.failed.emit(str(exc))
            return
        frames = recorder.frames_written if recorder is not None else 0
        self.recording_finished.emit(path, frames)
        self.saved.emit(f"Saved {path.name} ({plural(frames, 'frame')}) and {path.with_suffix('.jsonl').name} "
                        f"in {path.parent}")

    def save_screenshot(self) -> Path | None:
        """Saves the frame on screen, at full resolution, as a PNG in the output folder."""
        image = self._view.image()
        if image is None:
            return None
        path = _unused_path(self.output_dir(), ".png")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.exception("cannot write screenshots to %s", path.parent)
            self.failed.emit(f"cannot write screenshots to {path.parent}: {exc.strerror}")
            return None
        if not image.save(str(path)):
            self.failed.emit(f"cannot write {path}")
            return None
        self.saved.emit(f"Saved {path.name} in {path.parent}")
        return path

    def export_reps(self, fmt: str) -> Path | None:
        """Saves the counted repetitions in the output folder: CSV, one row each, or JSON, the
        summary `process --summary` writes (Session.summary); None without an exercise."""
        summary = self._session.summary()
        if summary is None:
            return None
        path = _unused_path(self.output_dir(), f".{fmt}")
        text = reps_csv(summary) if fmt == "csv" else json.dumps(summary, indent=2) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:
            log.exception("cannot write %s", path)
            self.failed.emit(f"cannot write {path}: {exc.strerror}")
            return None
        self.saved.emit(f"Saved {path.name} in {path.parent}")
        return path

    def show_state(self) -> None:
        """Ends a recording the recorder gave up on, ticks the elapsed time, enables what can run."""
        if self._recorder is not None and self._recorder.error:
            self.stop_recording()
        if self._recorder is not None:  # the recording's own length: it stops with playback
            self.record_controls.set_elapsed(self._recorder.recorded_s)
        self.record_controls.set_available(record=self._session.pipeline is not None,
                                           screenshot=self._view.image() is not None)



def _unused_path(folder: Path, suffix: str) -> Path:
    """folder/partsight-<date>-<time><suffix>, with -2, -3… when that name is taken."""
    stem = time.strftime("partsight-%Y%m%d-%H%M%S")
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path
