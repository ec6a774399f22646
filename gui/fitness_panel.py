"""The fitness controls together: exercise picker, big rep counters, what to try when a counted
angle is unknown, live angle plot, reps table and export buttons. The window feeds it frames and
the analyser's summary; it never calls the engine."""
from __future__ import annotations

from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWidget

from gui.angle_plot import AnglePlot
from gui.exercise_picker import ExercisePicker
from gui.rep_counter import RepCounterView
from gui.rep_export import RepExport
from gui.rep_table import RepTable
from realtime.pipeline import FrameResult


class FitnessPanel(QWidget):
    exercise_requested = pyqtSignal(str)
    export_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = ExercisePicker()
        self.counter = RepCounterView()
        self.hint = QLabel()
        self.hint.setObjectName("fitnessHint")
        self.hint.setWordWrap(True)
        self.plot = AnglePlot()
        self.table = RepTable()
        self.export = RepExport()
        self.picker.exercise_requested.connect(self.plot.clear)
        self.picker.exercise_requested.connect(self.exercise_requested)
        self.export.export_requested.connect(self.export_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.picker, self.counter, self.hint, self.plot, self.table, self.export):
            layout.addWidget(widget)
        self.show_state(None)

    def add_frame(self, result: FrameResult) -> None:
        """Plots the counted angle of every person in this frame."""
        output = result.analysis.get("fitness")
        if output is None:
            return
        for pid, person in output["people"].items():
            self.plot.add(pid, result.frame.pts_s, person["signal_deg"])

    def show_state(self, output: dict[str, Any] | None, summary: dict[str, Any] | None = None) -> None:
        """output: the newest frame's analysis["fitness"]; summary: the analyser's summary()."""
        exercise = summary["exercise"] if summary else {}
        self.plot.set_thresholds(exercise.get("start_deg"), exercise.get("turn_deg"))
        people = output["people"] if output and summary else {}
        self.counter.set_people(people)
        hints = [f"#{pid} {person['signal_reason'].replace('_', ' ')}: {person['signal_hint']}"
                 for pid, person in sorted(people.items(), key=lambda item: int(item[0])) if person.get("signal_hint")]
        self.hint.setText("\n".join(hints))
        self.hint.setVisible(bool(hints))
        self.table.set_reps(summary["per_rep"] if summary else [])
        self.export.set_available(bool(summary and summary["per_rep"]))
        for widget in (self.counter, self.plot, self.table, self.export):  # only the picker while off
            widget.setVisible(summary is not None)
        if output is None and summary is None:
            self.plot.clear()
        self.plot.redraw()
