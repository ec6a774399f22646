"""No setting changes by accident: a mouse wheel turned over a combo box, slider or spin box
changes it only when it has the keyboard focus (clicked or tabbed to), as in most careful apps."""
from __future__ import annotations

from PyQt6.QtCore import QEvent, QObject, Qt
from PyQt6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox, QWidget

GUARDED = (QComboBox, QAbstractSlider, QAbstractSpinBox)


class WheelGuard(QObject):
    """Swallows wheel events of unfocused guarded widgets; they take focus only by click or tab."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Wheel and isinstance(watched, GUARDED) and not watched.hasFocus():
            event.ignore()
            return True
        return super().eventFilter(watched, event)

    def guard(self, root: QWidget) -> None:
        """Guards every combo box, slider and spin box under `root` (those there now)."""
        for widget in root.findChildren(GUARDED):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            widget.installEventFilter(self)
