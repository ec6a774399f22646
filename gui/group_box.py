"""The titled frame around each control in the side panel."""
from __future__ import annotations

from PyQt6.QtWidgets import QGroupBox, QVBoxLayout, QWidget


def group_box(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(widget)
    return box
