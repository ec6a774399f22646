"""Temporal smoothing control: a strength slider from off (0) to 1."""
from __future__ import annotations

from PyQt6.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


class SmoothingControl(QWidget):
    strength_changed = pyqtSignal(float)  # 0 (off) .. 1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 100)
        self._slider.setToolTip("Steadier parts and keypoints over time; far left turns smoothing off")
        self._value = QLabel()
        self._value.setMinimumWidth(self._value.fontMetrics().horizontalAdvance("0.00"))
        self._value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._slider.valueChanged.connect(self._on_slider)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Smoothing"))
        layout.addWidget(self._slider, 1)
        layout.addWidget(self._value)
        self._show(self._slider.value())

    def strength(self) -> float:
        return self._slider.value() / 100

    def set_strength(self, strength: float) -> None:
        with QSignalBlocker(self._slider):
            self._slider.setValue(round(min(max(strength, 0.0), 1.0) * 100))
        self._show(self._slider.value())

    def _show(self, value: int) -> None:
        self._value.setText("off" if value == 0 else f"{value / 100:.2f}")

    def _on_slider(self, value: int) -> None:
        self._show(value)
        self.strength_changed.emit(value / 100)
