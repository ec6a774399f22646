"""A non-modal message strip above the video: source and model errors, end of file."""
from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QWidget,
)


class Level(Enum):
    ERROR = "error"
    INFO = "info"


_STYLES = {
    Level.ERROR: "background: #5c1f22; border: 1px solid #a8383e; color: #ffe4e4;",
    Level.INFO: "background: #1d3b57; border: 1px solid #3a73a8; color: #e4f0ff;",
}


class Banner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._level = Level.INFO
        self._on_action: Callable[[], None] | None = None
        self._icon = QLabel()
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._action = QPushButton()
        self._action.clicked.connect(self._run_action)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self._icon)
        layout.addWidget(self._text, 1)
        layout.addWidget(self._action)
        layout.addWidget(close)
        self.hide()

    @property
    def level(self) -> Level:
        return self._level

    def text(self) -> str:
        return self._text.text()

    def show_message(self, text: str, *, level: Level = Level.ERROR,
                     action: tuple[str, Callable[[], None]] | None = None) -> None:
        self._level = level
        self.setStyleSheet(f"#banner {{ {_STYLES[level]} border-radius: 4px; }}"
                           " QLabel { background: transparent; border: none; }")
        self._icon.setText("⚠" if level is Level.ERROR else "ℹ")
        self._text.setText(text)
        self._text.setToolTip(text)
        self._on_action = action[1] if action else None
        self._action.setText(action[0] if action else "")
        self._action.setVisible(action is not None)
        self.show()

    def dismiss(self) -> None:
        self._on_action = None
        self.hide()

    def _run_action(self) -> None:
        action = self._on_action
        self.dismiss()
        if action is not None:
            action()
