"""Who is analysed: the people in frame by ID, the current choice and an "All people" button.

A person is chosen by clicking on them in the video view: the window passes the click, in frame
pixels, to `select_at`, which finds the person under it in the frame on screen.
"""
from __future__ import annotations

from PyQt6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from gui.session import Session
from realtime.types import PersonParse


class PeoplePicker(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._people: list[PersonParse] = []
        self._in_frame = QLabel()
        self._in_frame.setObjectName("peopleInFrame")
        self._choice = QLabel()
        self._choice.setObjectName("peopleChoice")
        self._choice.setWordWrap(True)
        self._all = QPushButton("All people")
        self._all.setToolTip("Analyse everyone in frame (click a person in the video to analyse only them)")
        self._all.clicked.connect(self._select_all)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._in_frame)
        layout.addWidget(self._choice)
        layout.addWidget(self._all)
        self.show_people([])
        self._show_selection()

    @property
    def selected_people(self) -> frozenset[int] | None:
        """The person IDs analysed (None: everyone)."""
        return self._session.selected_people

    def show_people(self, people: list[PersonParse]) -> None:
        """The people in the frame on screen."""
        self._people = people
        ids = [person.id for person in people]
        self._in_frame.setText("In frame: " + (", ".join(f"#{i}" for i in sorted(ids)) if ids else "nobody"))

    def select_at(self, x: float, y: float) -> None:
        """Analyse only the person whose mask holds frame pixel (x, y); nobody there leaves the choice."""
        col, row = int(x), int(y)
        for person in self._people:
            height, width = person.mask.shape
            if 0 <= row < height and 0 <= col < width and person.mask[row, col]:
                self._session.select_people({person.id})
                self._show_selection()
                return

    def choice_text(self) -> str:
        return self._choice.text()

    def _select_all(self) -> None:
        self._session.select_people(None)
        self._show_selection()

    def _show_selection(self) -> None:
        ids = self._session.selected_people
        if ids is None:
            self._choice.setText("Analysing: everyone (click a person to choose)")
        else:
            self._choice.setText("Analysing: " + ", ".join(f"#{i}" for i in sorted(ids)))
        self._all.setEnabled(ids is not None)
