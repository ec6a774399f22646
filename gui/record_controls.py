"""Record and screenshot buttons, with the running recording's elapsed time and file name."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget

_RECORD_STYLE = "QPushButton { color: #ff6b6b; font-weight: bold; }"


class RecordControls(QWidget):
    record_clicked = pyqtSignal()
    screenshot_clicked = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._record = QPushButton()
        self._record.setObjectName("recordButton")
        self._record.clicked.connect(self.record_clicked)
        self._screenshot = QPushButton("Screenshot")
        self._screenshot.setObjectName("screenshotButton")
        self._screenshot.setToolTip("Save the frame on screen as a PNG (S)")
        self._screenshot.clicked.connect(self.screenshot_clicked)
        self._elapsed = QLabel()
        self._file = QLabel()
        self._file.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._record, 0, 0)
        layout.addWidget(self._screenshot, 0, 1)
        layout.addWidget(self._elapsed, 1, 0)
        layout.addWidget(self._file, 1, 1)
        self.set_recording(None)

    def set_recording(self, path: Path | None) -> None:
        """Shows a running recording to `path`, or the idle state for None."""
        self._record.setText("■  Stop" if path else "●  Record")
        self._record.setToolTip("Stop recording (R)" if path
                                else "Record the annotated video and a JSONL of metrics (R)")
        self._record.setStyleSheet(_RECORD_STYLE if path else "")
        self._file.setText(path.name if path else "")
        self._file.setToolTip(str(path) if path else "")
        self._elapsed.setText("00:00" if path else "")
        self._elapsed.setVisible(path is not None)
        self._file.setVisible(path is not None)

    def set_elapsed(self, seconds: float) -> None:
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        self._elapsed.setText(f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}")

    def set_available(self, record: bool, screenshot: bool) -> None:
        self._record.setEnabled(record)
        self._screenshot.setEnabled(screenshot)
