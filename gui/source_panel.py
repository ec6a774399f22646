"""What is parsed: the source picker and the model picker. Remembers the folder files were
last opened from (sources/file_dir; at first the user's Videos folder, else home), the last
source that played (sources/last; never a URL with credentials) and the model in use (model)."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths, pyqtSignal
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from gui.group_box import group_box
from gui.model_picker import ModelPicker
from gui.session import Session
from gui.source_picker import SourcePicker
from realtime.models.registry import MODEL_SPECS
from realtime.sources import redact_url


def default_media_dir() -> str:
    """Where the first Open dialog starts: the user's Videos folder if there is one, else home."""
    videos = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return videos if videos and Path(videos).is_dir() else str(Path.home())


class SourcePanel(QWidget):
    """Emits `source_requested(spec)` when the user picks a source, and `source_changed(name)`
    when what plays changes (a name safe to display, None for nothing)."""

    source_requested = pyqtSignal(str)
    source_changed = pyqtSignal(object)

    def __init__(self, session: Session, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self._shown_source: str | None = None
        self.source_picker = SourcePicker(file_dir=settings.value("sources/file_dir", "", str) or default_media_dir())
        self.model_picker = ModelPicker(MODEL_SPECS)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(group_box("Source", self.source_picker))
        layout.addWidget(group_box("Model", self.model_picker))
        self.source_picker.source_requested.connect(self.source_requested)
        self.model_picker.model_requested.connect(session.switch_model)
        self.source_picker.set_current(None)

    def show_state(self) -> None:
        session = self._session
        self.model_picker.set_current(session.model)
        self.source_picker.setEnabled(not session.opening)
        self.model_picker.setEnabled(not session.opening)
        pipeline = session.pipeline
        source = pipeline.stats.source if pipeline else None
        if source != self._shown_source:
            self._shown_source = source
            self.source_picker.set_current(source)
            self.source_changed.emit(source)
            spec = session.source_spec
            if source is not None and spec and redact_url(spec) == spec:
                self._settings.setValue("sources/last", spec)

    def last_source(self) -> str | None:
        """The source that last played, if remembered."""
        return self._settings.value("sources/last", "", str) or None

    def save_settings(self) -> None:
        self._settings.setValue("model", self._session.model)
        self._settings.setValue("sources/file_dir", self.source_picker.file_dir)
