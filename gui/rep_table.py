"""Table of repetitions, counted and not: person, rep, time, depth against the target, tempo and
symmetry, one row each in time order. A movement too shallow to count has a row of its own,
in red, saying so."""
from __future__ import annotations

from typing import Any

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QBrush, QColor
from PyQt6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from gui.angle_plot import HIT, MISS

COLUMNS = ("person", "rep", "time", "depth", "tempo", "symmetry")
_TIPS = {
    "time": "When the repetition started and ended, in seconds from the start of the video",
    "depth": "The deepest angle reached, against the turn the counter needs (✓ reached, ✗ too shallow;"
             " ? the angle was unknown at the turn, which may have gone further)",
    "tempo": "Seconds on the way out / held at the turn (within 5° of the extreme) / on the way back",
    "symmetry": "Mean difference between the left and right joint angles (L−R)",
}


def rep_rows(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every repetition of the analyser's summary, counted (with its number) and too shallow
    (number None), in time order: person, number, start_s, turn_s, end_s, depth_deg, out_s,
    hold_s (None for a movement too shallow), back_s, side_diff_deg, counted."""
    if not summary:
        return []
    rows = [{**rep, "counted": True} for rep in summary["per_rep"]]
    for pid, person in summary["people"].items():
        for partial in person.get("partial_reps", []):
            rows.append({"person": pid, "number": None, **partial, "out_s": partial["turn_s"] - partial["start_s"],
                         "hold_s": None, "back_s": partial["end_s"] - partial["turn_s"], "side_diff_deg": None,
                         "counted": False})
    return sorted(rows, key=lambda row: (row["start_s"], row["person"]))


class RepTable(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._table = QTableWidget(0, len(COLUMNS))
        self._table.setObjectName("repTable")
        self._table.setHorizontalHeaderLabels(list(COLUMNS))
        for column, key in enumerate(COLUMNS):
            self._table.horizontalHeaderItem(column).setToolTip(_TIPS.get(key, ""))
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self._table.verticalHeader().setVisible(False)
        header = self._table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self._table.setMinimumHeight(90)
        self._shown: list[tuple] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._table)

    def set_reps(self, rows: list[dict[str, Any]], turn_deg: float | None = None) -> None:
        """rows: rep_rows(summary); turn_deg: the depth a repetition must reach."""
        key = [(row["person"], row["number"], row["start_s"], row["end_s"]) for row in rows]
        if key == self._shown:
            return
        self._shown = key
        self._table.setRowCount(len(rows))
        for row_index, row in enumerate(rows):
            for column, text in enumerate(self._cells(row)):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if COLUMNS[column] == "depth":
                    item.setForeground(QBrush(QColor(HIT if row["counted"] else MISS)))
                    target = f" (target {turn_deg:g}°)" if turn_deg is not None else ""
                    tip = ("reached the turn" if row["counted"] else "not counted: too shallow") + target
                    if not row.get("turn_seen", True):
                        tip += "; the angle was unknown at the turn: it may have gone further"
                    item.setToolTip(tip)
                elif not row["counted"]:
                    item.setForeground(QBrush(QColor(MISS)))
                self._table.setItem(row_index, column, item)
        self._table.scrollToBottom()

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[str]:
        seen = "" if row.get("turn_seen", True) else "?"
        depth = f"{row['depth_deg']:.0f}°{seen} " + ("✓" if row["counted"] else "✗ too shallow")
        side = row.get("side_diff_deg")
        tempo = " / ".join("–" if row[key] is None else f"{row[key]:.2f}" for key in ("out_s", "hold_s", "back_s"))
        return [f"#{row['person']}", str(row["number"]) if row["counted"] else "not counted",
                f"{row['start_s']:.2f}–{row['end_s']:.2f} s", depth, f"{tempo} s",
                "–" if side is None else f"{side:.0f}°"]

    def rows(self) -> int:
        return self._table.rowCount()

    def headers(self) -> list[str]:
        return [self._table.horizontalHeaderItem(i).text() for i in range(self._table.columnCount())]

    def cell(self, row: int, column: str) -> str:
        return self._table.item(row, COLUMNS.index(column)).text()
