"""Playback controls under the video: play/pause, frame steps, a seek bar with the time, speed,
loop, pacing ("every frame" or "real time") and the presentation view. Files only: for a live
source only play/pause and the presentation view stay."""
from __future__ import annotations

from PyQt6.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QWidget

SPEEDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
PACINGS = {"Every frame": False, "Real time": True}  # text -> drop late frames
_MS = 1000


def clock(seconds: float) -> str:
    """'0:07.25', '12:03.50': minutes, seconds and hundredths."""
    minutes, secs = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{secs:05.2f}"


class TransportBar(QWidget):
    """Emits intent only; `show_state` brings it in line with the engine."""

    play_toggled = pyqtSignal()
    step_requested = pyqtSignal(int)  # +1 / -1 frame
    seek_requested = pyqtSignal(float)  # seconds
    speed_requested = pyqtSignal(float)
    loop_toggled = pyqtSignal(bool)
    drop_late_toggled = pyqtSignal(bool)
    present_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transportBar")
        self._play = self._button("▶", "Play / pause (Space)", self.play_toggled.emit, "playButton")
        self._back = self._button("◀❚", "Previous frame (←)", lambda: self.step_requested.emit(-1), "stepBackButton")
        self._forward = self._button("❚▶", "Next frame (→)", lambda: self.step_requested.emit(1), "stepForwardButton")
        self._seek = QSlider(Qt.Orientation.Horizontal)
        self._seek.setObjectName("seekSlider")
        self._seek.setToolTip("Position in the file: drag or click to jump")
        self._seek.valueChanged.connect(self._on_seek)
        self._time = QLabel(clock(0))
        self._time.setObjectName("playbackTime")
        self._time.setMinimumWidth(self._time.fontMetrics().horizontalAdvance(" 00:00.00 / 00:00.00 "))
        self._time.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._speed = QComboBox()
        self._speed.setObjectName("speedCombo")
        self._speed.setToolTip("Playback speed")
        for speed in SPEEDS:
            self._speed.addItem(f"{speed:g}×", speed)
        self._speed.setCurrentIndex(SPEEDS.index(1.0))
        self._speed.activated.connect(lambda i: self.speed_requested.emit(self._speed.itemData(i)))
        self._loop = QCheckBox("Loop")
        self._loop.setObjectName("loopCheck")
        self._loop.setToolTip("Start the file again at its end")
        self._loop.toggled.connect(self.loop_toggled)
        self._pacing = QComboBox()
        self._pacing.setObjectName("pacingCombo")
        self._pacing.addItems(PACINGS)
        self._pacing.setToolTip("Every frame: nothing skipped, slower than real time if the computer is slow.\n"
                                "Real time: keeps to the clock, skipping frames it is too slow for.")
        self._pacing.activated.connect(lambda i: self.drop_late_toggled.emit(PACINGS[self._pacing.itemText(i)]))
        self._present = self._button("Present", "Presentation view: the video full screen with big counters (F)",
                                     self.present_requested.emit, "presentButton")
        self._spacer = QWidget()  # takes the seek bar's room when there is none (a live source)
        self._spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        for widget in (self._play, self._back, self._forward):
            layout.addWidget(widget)
        layout.addWidget(self._seek, 1)
        layout.addWidget(self._spacer, 1)
        for widget in (self._time, self._speed, self._loop, self._pacing, self._present):
            layout.addWidget(widget)
        self._file_only = (self._back, self._forward, self._seek, self._time, self._speed, self._loop, self._pacing)
        self._duration_s = 0.0
        self.show_state(position_s=None, duration_s=None, paused=False, seekable=False, playing=False)

    def _button(self, text: str, tip: str, slot, name: str) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setObjectName(name)
        button.clicked.connect(slot)
        return button

    def set_choices(self, *, speed: float, loop: bool, drop_late: bool) -> None:
        """Shows remembered choices without emitting them."""
        for widget, apply in ((self._speed, lambda: self._speed.setCurrentIndex(max(0, self._speed.findData(speed)))),
                              (self._loop, lambda: self._loop.setChecked(loop)),
                              (self._pacing, lambda: self._pacing.setCurrentIndex(int(drop_late)))):
            with QSignalBlocker(widget):
                apply()

    def show_state(self, *, position_s: float | None, duration_s: float | None, paused: bool,
                   seekable: bool, playing: bool) -> None:
        """paused: also at the end of a file (play starts it again); playing: a source plays."""
        self._play.setText("▶" if paused else "❚❚")
        self._play.setToolTip(("Play" if paused else "Pause") + " (Space)")
        self._play.setEnabled(playing)
        for widget in self._file_only:
            widget.setVisible(seekable)
        self._spacer.setVisible(not seekable)
        self._duration_s = duration_s or 0.0
        if not seekable:
            return
        with QSignalBlocker(self._seek):
            self._seek.setRange(0, round(self._duration_s * _MS))
            if not self._seek.isSliderDown() and position_s is not None:
                self._seek.setValue(round(position_s * _MS))
        shown = position_s if position_s is not None else 0.0
        self._time.setText(f"{clock(shown)} / {clock(self._duration_s)}")

    def position_text(self) -> str:
        return self._time.text()

    def _on_seek(self, value: int) -> None:
        self.seek_requested.emit(value / _MS)
