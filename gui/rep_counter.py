"""Big repetition counters, one per person in the analysis, side by side, each with the counted
angle and what the person is doing in words, or why the angle is unknown."""
from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from realtime.analysis.fitness import HINTS
from realtime.render import plural

_COUNT_STYLE = "font-size: 44px; font-weight: bold;"


def person_detail(pid: str, person: dict, *, with_id: bool = True) -> str:
    """'#0 · 95° · going down', or '#0 · angle unknown: out of frame'."""
    if person.get("signal_deg") is not None:
        angle = f"{person['signal_deg']:.0f}° · {person.get('phase', person['state'])}"
    else:
        angle = "angle unknown: " + (person.get("signal_reason") or "not_visible").replace("_", " ")
    return f"#{pid} · {angle}" if with_id else angle


class RepCounterView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._cells: dict[str, tuple[QWidget, QLabel, QLabel]] = {}

    def set_people(self, people: dict[str, dict]) -> None:
        """people: person id -> {"reps", "state", "phase", "signal_deg", "signal_reason"} as the
        fitness analyser outputs."""
        for pid in [p for p in self._cells if p not in people]:
            cell, _, _ = self._cells.pop(pid)
            cell.deleteLater()
        for pid in sorted(people, key=int):
            count, detail = self._cell(pid)
            person = people[pid]
            count.setText(str(person["reps"]))
            count.setToolTip(plural(person["reps"], "rep"))
            detail.setText(f"{plural(person['reps'], 'rep')}\n{person_detail(pid, person)}")
            detail.setToolTip(HINTS.get(person.get("signal_reason"), ""))

    def counts(self) -> dict[str, int]:
        return {pid: int(count.text()) for pid, (_, count, _) in self._cells.items()}

    def detail(self, pid: str) -> str:
        return self._cells[pid][2].text()

    def _cell(self, pid: str) -> tuple[QLabel, QLabel]:
        if pid not in self._cells:
            cell = QWidget()
            count, detail = QLabel("0"), QLabel()
            count.setObjectName(f"repCount{pid}")
            count.setStyleSheet(_COUNT_STYLE)
            for label in (count, detail):
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(0)
            column.addWidget(count)
            column.addWidget(detail)
            self._layout.addWidget(cell)
            self._cells[pid] = (cell, count, detail)
        _, count, detail = self._cells[pid]
        return count, detail
