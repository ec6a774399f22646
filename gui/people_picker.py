"""Who is analysed: the people in frame by ID, the current choice and an "All people" button;
and, with several people, an offer to merge a new ID into an earlier one that is gone ("Same
person as #1?"), for a person the tracker lost for too long and gave a new ID.

A person is chosen by clicking on them in the video view: the window passes the click, in frame
pixels, to `select_at`, which finds the person under it in the frame on screen.
"""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui.session import Session
from realtime.analysis.tracking import MergeOffers
from realtime.types import PersonParse


class PeoplePicker(QWidget):
    """Emits `selection_changed()` after the user chose who is analysed or merged two people."""

    selection_changed = pyqtSignal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._people: list[PersonParse] = []
        self._offers = MergeOffers()
        self._id_restarts = 0  # FrameResult.id_restarts of the people offered
        self._offered: int | None = None
        self._in_frame = QLabel()
        self._in_frame.setObjectName("peopleInFrame")
        self._choice = QLabel()
        self._choice.setObjectName("peopleChoice")
        self._choice.setWordWrap(True)
        self._all = QPushButton("All people")
        self._all.setToolTip("Analyse everyone in frame (click a person in the video to analyse only them)")
        self._all.clicked.connect(self._select_all)
        self._merge_text = QLabel()
        self._merge_text.setObjectName("mergeQuestion")
        self._merge_into = QComboBox()
        self._merge_into.setObjectName("mergeInto")
        self._merge = QPushButton("Merge")
        self._merge.setObjectName("mergeButton")
        self._merge.setToolTip("Count them as one person: their repetitions are added up")
        self._merge.clicked.connect(self._merge_new)
        self._new_person = QPushButton("No, someone new")
        self._new_person.clicked.connect(self._decline)
        self._merge_box = QWidget()
        merge_row = QHBoxLayout()
        merge_row.setContentsMargins(0, 0, 0, 0)
        merge_row.addWidget(self._merge_into, 1)
        merge_row.addWidget(self._merge)
        merge_row.addWidget(self._new_person)
        merge_layout = QVBoxLayout(self._merge_box)
        merge_layout.setContentsMargins(0, 0, 0, 0)
        merge_layout.addWidget(self._merge_text)
        merge_layout.addLayout(merge_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._in_frame)
        layout.addWidget(self._choice)
        layout.addWidget(self._all)
        layout.addWidget(self._merge_box)
        self._merge_box.hide()
        self.reset()

    @property
    def selected_people(self) -> frozenset[int] | None:
        """The person IDs analysed (None: everyone)."""
        return self._session.selected_people

    def reset(self) -> None:
        """A new source: nobody in frame until its first frame shows (whose IDs start again)."""
        self.show_people([], self._id_restarts)

    def show_people(self, people: list[PersonParse], id_restarts: int) -> None:
        """The people in the frame on screen; `id_restarts`: its FrameResult.id_restarts (when it
        changes, the IDs are the engine's new numbering: the offers start afresh)."""
        if id_restarts != self._id_restarts:
            self._offers, self._id_restarts = MergeOffers(), id_restarts
        self._people = people
        ids = [person.id for person in people]
        self._in_frame.setText("In frame: " + (", ".join(f"#{i}" for i in sorted(ids)) if ids else "nobody"))
        self._offer_merge(self._offers.update(set(ids)))
        self._show_selection()

    def merge_offer(self) -> tuple[int, list[int]] | None:
        """(new ID, earlier IDs it may be) while a merge is offered."""
        if self._merge_box.isHidden():
            return None
        return self._offered, [self._merge_into.itemData(i) for i in range(self._merge_into.count())]

    def merge(self, new_id: int, into_id: int) -> None:
        """Counts `new_id` as `into_id` from now on, as the Merge button does."""
        self._session.merge_people(new_id, into_id)
        self._offers.merged(new_id)
        self._merge_box.hide()
        self._show_selection()
        self.selection_changed.emit()

    def select_at(self, x: float, y: float) -> None:
        """Analyse only the person whose mask holds frame pixel (x, y); nobody there leaves the choice."""
        col, row = int(x), int(y)
        for person in self._people:
            height, width = person.mask.shape
            if 0 <= row < height and 0 <= col < width and person.mask[row, col]:
                self._session.select_people({person.id})
                self._show_selection()
                self.selection_changed.emit()
                return

    def choice_text(self) -> str:
        return self._choice.text()

    def _offer_merge(self, offer: tuple[int, list[int]] | None) -> None:
        """Shows the engine's merge offer (realtime.analysis.tracking.MergeOffers), or hides it."""
        if offer is None:
            self._merge_box.hide()
            return
        newest, earlier = offer
        if self.merge_offer() == offer:
            return
        self._offered = newest
        self._merge_text.setText(f"#{newest} is new. Same person as an earlier one?")
        self._merge_into.clear()
        for i in earlier:
            self._merge_into.addItem(f"Same as #{i}", i)
        self._merge_box.show()

    def _merge_new(self) -> None:
        self.merge(self._offered, self._merge_into.currentData())

    def _decline(self) -> None:
        self._offers.decline(self._offered)
        self._merge_box.hide()

    def _select_all(self) -> None:
        self._session.select_people(None)
        self._show_selection()
        self.selection_changed.emit()

    def _show_selection(self) -> None:
        ids = self._session.selected_people
        if ids is None:
            self._choice.setText("Analysing: everyone (click a person to choose)")
        else:
            self._choice.setText("Analysing: " + ", ".join(f"#{i}" for i in sorted(ids)))
        self._all.setEnabled(ids is not None)
