"""Overlay controls: opacity of the part colours, the skeleton, the part legend, the split view
(original | parsed) and mirroring for webcams."""
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
    legend_toggled = pyqtSignal(bool)
    compare_toggled = pyqtSignal(bool)
    mirror_toggled = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slider = QSlider(Qt.Orientation.Horizontal)
        self._slider.setRange(0, 100)
        self._slider.setToolTip("How strongly the part colours cover the video")
        self._value = QLabel()
        self._value.setMinimumWidth(self._value.fontMetrics().horizontalAdvance("100 %"))
        self._value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._slider.valueChanged.connect(self._on_slider)
        self._checks: dict[str, QCheckBox] = {}
        for key, text, tip, signal in (
                ("keypoints", "Skeleton", "Draw the keypoints and the bones between them", self.keypoints_toggled),
                ("legend", "Legend", "Name each part colour on the video (top right)", self.legend_toggled),
                ("compare", "Split view", "The original frame left of a divider you drag, the parsed one right",
                 self.compare_toggled),
                ("mirror", "Mirror webcams", "Show a webcam as a mirror would (files are never mirrored)",
                 self.mirror_toggled)):
            check = QCheckBox(text)
            check.setObjectName(f"{key}Check")
            check.setToolTip(tip)
            check.toggled.connect(signal)
            self._checks[key] = check
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self._slider, 1)
        row.addWidget(self._value)
        checks = QHBoxLayout()
        for check in self._checks.values():
            checks.addWidget(check)
        checks.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addLayout(checks)

    def opacity(self) -> float:
        return self._slider.value() / 100

    def set_opacity(self, opacity: float) -> None:
        with QSignalBlocker(self._slider):
            self._slider.setValue(round(opacity * 100))
        self._value.setText(f"{self._slider.value()} %")

    def set_checked(self, key: str, checked: bool) -> None:
        """Shows a remembered choice ("keypoints", "legend", "compare", "mirror") without emitting it."""
        with QSignalBlocker(self._checks[key]):
            self._checks[key].setChecked(checked)

    def checked(self, key: str) -> bool:
        return self._checks[key].isChecked()

    def check(self, key: str) -> QCheckBox:
        return self._checks[key]

    def _on_slider(self, value: int) -> None:
        self._value.setText(f"{value} %")
        self.opacity_changed.emit(value / 100)
