"""A non-modal message strip above the video: source and model errors, end of file, files saved;
each with the actions the user can take (Retry, Open file…, Open folder)."""
from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
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
        self._icon = QLabel()
        self._text = QLabel()  # one line, elided: the whole message is in its tooltip
        self._text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._full_text = ""
        self._actions: list[QPushButton] = []
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(10, 6, 6, 6)
        self._layout.addWidget(self._icon)
        self._layout.addWidget(self._text, 1)
        self._layout.addWidget(close)
        self.hide()

    @property
    def level(self) -> Level:
        return self._level

    def text(self) -> str:
        return self._full_text

    def action_texts(self) -> list[str]:
        return [button.text() for button in self._actions]

    def show_message(self, text: str, *, level: Level = Level.ERROR,
                     actions: list[tuple[str, Callable[[], None]]] = (), detail: str | None = None) -> None:
        """Shows `text` with a button per action (each dismisses the banner, then runs);
        `detail` goes into the tooltip."""
        self._level = level
        self.setStyleSheet(f"#banner {{ {_STYLES[level]} border-radius: 4px; }}"
                           " QLabel { background: transparent; border: none; }")
        self._icon.setText("⚠" if level is Level.ERROR else "ℹ")
        self._full_text = text
        self._text.setToolTip(text + (f"\n\n{detail}" if detail else ""))
        for button in self._actions:
            button.hide()
            button.setParent(None)
            button.deleteLater()
        self._actions = []
        for label, action in actions:
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, run=action: self._run(run))
            self._layout.insertWidget(self._layout.count() - 1, button)
            self._actions.append(button)
        self.show()
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        self._text.setText(self._text.fontMetrics().elidedText(self._full_text, Qt.TextElideMode.ElideRight,
                                                               max(self._text.width(), 40)))

    def dismiss(self) -> None:
        self.hide()

    def _run(self, action: Callable[[], None]) -> None:
        self.dismiss()
        action()
