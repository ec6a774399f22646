"""Export buttons: the repetitions as CSV or JSON."""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QPushButton, QWidget


class RepExport(QWidget):
    """Emits `export_requested("csv" | "json")`."""

    export_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._buttons = {}
        for fmt in ("csv", "json"):
            button = QPushButton(f"Export {fmt.upper()}")
            button.setObjectName(f"export{fmt.upper()}Button")
            button.setToolTip(f"Save the repetitions as {fmt.upper()} in the output folder")
            button.clicked.connect(lambda _=False, f=fmt: self.export_requested.emit(f))
            layout.addWidget(button)
            self._buttons[fmt] = button

    def set_available(self, available: bool) -> None:
        for button in self._buttons.values():
            button.setEnabled(available)
