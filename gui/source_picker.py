"""Source picker: webcams found on this machine, a video file, or a stream URL."""
from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import QSignalBlocker, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from realtime.sources import WebcamProbe, redact_url

WEBCAM_PROBE_S = 3.0  # then the webcams found so far are listed
WEBCAM_PROBE_CLOSE_S = 2.0  # stop_probing waits this long for a webcam still opening, then leaves it (logged)
VIDEO_FILTER = "Videos (*.mp4 *.mov *.avi *.mkv *.webm *.m4v);;Images (*.png *.jpg *.jpeg *.bmp);;All files (*)"


class SourcePicker(QWidget):
    """Emits `source_requested(spec)` with a Pipeline source string: a webcam index, a path or a URL.

    A stream URL's credentials are never shown after entry: the field shows the redacted URL and
    the picker keeps the real one to connect with. It looks for webcams from the start (a
    WebcamProbe, listed once every probe answered or after WEBCAM_PROBE_S); its owner calls
    `stop_probing` when done with it.
    """

    source_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None, *, file_dir: str = "") -> None:
        super().__init__(parent)
        self.file_dir = file_dir
        self._stream_url = ""
        self._webcams = QComboBox()
        self._webcams.setPlaceholderText("Looking for webcams…")
        self._webcams.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._webcams.activated.connect(lambda i: self.source_requested.emit(str(self._webcams.itemData(i))))
        open_file = QPushButton("Open file…")
        open_file.clicked.connect(self.browse)
        self._url = QLineEdit()
        self._url.setPlaceholderText("rtsp://user:password@host:554/stream")
        self._url.setClearButtonEnabled(True)
        self._url.returnPressed.connect(self._connect_stream)
        connect = QPushButton("Connect")
        connect.clicked.connect(self._connect_stream)
        self._current = QLabel()
        self._current.setObjectName("currentSource")
        self._current.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Webcam"), 0, 0)
        layout.addWidget(self._webcams, 0, 1)
        layout.addWidget(open_file, 0, 2)
        layout.addWidget(QLabel("Stream"), 1, 0)
        layout.addWidget(self._url, 1, 1)
        layout.addWidget(connect, 1, 2)
        layout.addWidget(self._current, 2, 0, 1, 3)
        layout.setColumnStretch(1, 1)
        self._probe = WebcamProbe()
        self._probe_deadline = time.monotonic() + WEBCAM_PROBE_S
        self._probe_timer = QTimer(self)
        self._probe_timer.setInterval(100)
        self._probe_timer.timeout.connect(self._collect_webcams)
        self._probe_timer.start()

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", self.file_dir, VIDEO_FILTER)
        if path:
            self.file_dir = str(Path(path).parent)
            self.source_requested.emit(path)

    def set_current(self, name: str | None) -> None:
        """Shows what is playing; `name` must already be safe to display (SourceInfo.name is)."""
        shown = Path(name).name if name and Path(name).is_file() else name
        self._current.setText(f"Playing: {shown}" if name else "Nothing playing")
        self._current.setToolTip(name or "")
        webcam = self._webcams.findText(name.capitalize()) if name else -1
        with QSignalBlocker(self._webcams):
            self._webcams.setCurrentIndex(webcam)

    def set_stream_url(self, url: str) -> None:
        """As if the user typed `url` and pressed Connect."""
        self._url.setText(url)
        self._connect_stream()

    def stream_field_text(self) -> str:
        return self._url.text()

    def _connect_stream(self) -> None:
        text = self._url.text().strip()
        if not text:
            return
        if text != redact_url(self._stream_url):
            self._stream_url = text
        self._url.setText(redact_url(self._stream_url))
        self.source_requested.emit(self._stream_url)

    def stop_probing(self) -> None:
        """Joins the webcam probe threads, waiting at most WEBCAM_PROBE_CLOSE_S for a webcam
        still opening (an open that hangs is left running: WebcamProbe.close)."""
        self._probe_timer.stop()
        self._probe.close(WEBCAM_PROBE_CLOSE_S)

    def _collect_webcams(self) -> None:
        if not self._probe.done and time.monotonic() < self._probe_deadline:
            return
        self._probe_timer.stop()
        found = self._probe.found()
        for index in found:
            self._webcams.addItem(f"Webcam {index}", index)
        self._webcams.setPlaceholderText("Choose a webcam" if found else "No webcam found")
        self._webcams.setEnabled(bool(found))
