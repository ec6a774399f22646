"""Exercise picker: no analysis, or one of the presets; picking one starts counting afresh."""
from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QVBoxLayout, QWidget

from realtime.analysis.exercises import PRESETS

OFF = ""


class ExercisePicker(QWidget):
    """Emits `exercise_requested(name)`, "" for no analysis."""

    exercise_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._combo = QComboBox()
        self._combo.setObjectName("exerciseCombo")
        self._combo.addItem("Off", OFF)
        for name, exercise in PRESETS.items():
            self._combo.addItem(name, name)
            joints = ", ".join(exercise.joints)
            self._combo.setItemData(self._combo.count() - 1,
                                    f"{joints}: start {exercise.start_deg:g}°, turn {exercise.turn_deg:g}°",
                                    Qt.ItemDataRole.ToolTipRole)
        self._combo.activated.connect(lambda index: self.exercise_requested.emit(self._combo.itemData(index)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._combo)

    def choose(self, name: str) -> None:
        """Selects `name` as a user would, emitting the request."""
        index = self._combo.findData(name)
        if index < 0:
            raise ValueError(f"no exercise {name!r} in the picker")
        self._combo.setCurrentIndex(index)
        self._combo.activated.emit(index)
