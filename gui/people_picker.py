"""Who is analysed: the people in frame by ID, the current choice and an "All people" button.

A person is chosen by clicking on them in the video view (the window maps the click to the
person under it); this widget shows the choice and clears it.
"""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


class PeoplePicker(QWidget):
    all_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._in_frame = QLabel()
        self._in_frame.setObjectName("peopleInFrame")
        self._choice = QLabel()
        self._choice.setObjectName("peopleChoice")
        self._choice.setWordWrap(True)
        self._all = QPushButton("All people")
        self._all.setToolTip("Analyse everyone in frame (click a person in the video to analyse only them)")
        self._all.clicked.connect(self.all_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._in_frame)
        layout.addWidget(self._choice)
        layout.addWidget(self._all)
        self.show_people([])
        self.show_selection(None)

    def show_people(self, ids: list[int]) -> None:
        self._in_frame.setText("In frame: " + (", ".join(f"#{i}" for i in sorted(ids)) if ids else "nobody"))

    def show_selection(self, ids: frozenset[int] | None) -> None:
        if ids is None:
            self._choice.setText("Analysing: everyone (click a person to choose)")
        else:
            self._choice.setText("Analysing: " + ", ".join(f"#{i}" for i in sorted(ids)))
        self._all.setEnabled(ids is not None)

    def choice_text(self) -> str:
        return self._choice.text()
