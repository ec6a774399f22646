"""Table of counted repetitions: one row each, the summary's columns."""
from __future__ import annotations

from PyQt6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from realtime.analysis.summary import REP_COLUMNS

_HEADERS = {"person": "#", "number": "rep", "start_frame": "start", "turn_frame": "turn", "end_frame": "end",
            "min_deg": "min°", "max_deg": "max°", "rom_deg": "ROM°", "out_s": "down s", "back_s": "up s",
            "side_diff_deg": "L−R°", "area_ratio": "L/R area"}


class RepTable(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._table = QTableWidget(0, len(REP_COLUMNS))
        self._table.setObjectName("repTable")
        self._table.setHorizontalHeaderLabels([_HEADERS[c] for c in REP_COLUMNS])
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.verticalHeader().setVisible(False)
        self._table.setMinimumHeight(120)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._table)

    def set_reps(self, reps: list[dict]) -> None:
        if len(reps) == self._table.rowCount():
            return
        self._table.setRowCount(len(reps))
        for row, rep in enumerate(reps):
            for column, key in enumerate(REP_COLUMNS):
                value = rep.get(key)
                text = "–" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)
                self._table.setItem(row, column, QTableWidgetItem(text))
        self._table.scrollToBottom()

    def rows(self) -> int:
        return self._table.rowCount()
