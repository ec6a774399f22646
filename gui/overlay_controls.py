"""Overlay controls: opacity of the part colours and whether the skeleton is drawn."""
from __future__ import annotations

from PyQt6.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QVBoxLayout,
    QWidget,
)


class OverlayControls(QWidget):
    opacity_changed = pyqtSignal(float)  # 0..1
    keypoints_toggled = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 100)
        self._slider.setToolTip("How strongly the part colours cover the video")
        self._value = QLabel()
        self._value.setMinimumWidth(self._value.fontMetrics().horizontalAdvance("100 %"))
        self._value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._slider.valueChanged.connect(self._on_slider)
        self._keypoints = QCheckBox("Show keypoints (skeleton)")
        self._keypoints.toggled.connect(self.keypoints_toggled)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self._slider, 1)
        row.addWidget(self._value)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self._keypoints)

    def opacity(self) -> float:
        return self._slider.value() / 100

    def set_opacity(self, opacity: float) -> None:
        with QSignalBlocker(self._slider):
            self._slider.setValue(round(opacity * 100))
        self._value.setText(f"{self._slider.value()} %")

    def set_show_keypoints(self, show: bool) -> None:
        with QSignalBlocker(self._keypoints):
            self._keypoints.setChecked(show)

    def _on_slider(self, value: int) -> None:
        self._value.setText(f"{value} %")
        self.opacity_changed.emit(value / 100)
