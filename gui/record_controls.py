"""Record and screenshot buttons, the running recording's length and file name, the output folder
(with Choose… and Open folder) and whether the speed readout goes into what is saved."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QGridLayout, QLabel, QPushButton, QWidget

_RECORD_STYLE = "QPushButton { color: #ff6b6b; font-weight: bold; }"


class RecordControls(QWidget):
    record_clicked = pyqtSignal()
    screenshot_clicked = pyqtSignal()
    choose_folder_clicked = pyqtSignal()
    open_folder_clicked = pyqtSignal()
    stats_toggled = pyqtSignal(bool)

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
        self._elapsed.setObjectName("recordingLength")
        self._elapsed.setToolTip("Length of the recording so far (it stops while playback is paused)")
        self._file = QLabel()
        self._file.setWordWrap(True)
        self._folder = QLabel()
        self._folder.setObjectName("outputFolder")
        self._folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        choose = QPushButton("Choose…")
        choose.setToolTip("Pick the folder recordings, screenshots and exports go to")
        choose.clicked.connect(self.choose_folder_clicked)
        open_folder = QPushButton("Open folder")
        open_folder.setObjectName("openFolderButton")
        open_folder.setToolTip("Show the output folder in the file manager")
        open_folder.clicked.connect(self.open_folder_clicked)
        self._stats = QCheckBox("FPS readout in recordings and screenshots")
        self._stats.setObjectName("statsInRecordings")
        self._stats.setToolTip("Off: the readout shows in the window only")
        self._stats.toggled.connect(self.stats_toggled)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._record, 0, 0)
        layout.addWidget(self._screenshot, 0, 1)
        layout.addWidget(self._elapsed, 1, 0)
        layout.addWidget(self._file, 1, 1)
        layout.addWidget(QLabel("Output folder"), 2, 0, 1, 2)
        layout.addWidget(self._folder, 3, 0, 1, 2)
        layout.addWidget(choose, 4, 0)
        layout.addWidget(open_folder, 4, 1)
        layout.addWidget(self._stats, 5, 0, 1, 2)
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

    def elapsed(self) -> str:
        return self._elapsed.text()

    def set_folder(self, folder: Path) -> None:
        self._folder.setText(self._folder.fontMetrics().elidedText(str(folder), Qt.TextElideMode.ElideMiddle, 300))
        self._folder.setToolTip(str(folder))

    def set_stats(self, on: bool) -> None:
        self._stats.setChecked(on)

    def set_available(self, record: bool, screenshot: bool) -> None:
        self._record.setEnabled(record)
        self._screenshot.setEnabled(screenshot)
