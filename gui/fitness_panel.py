"""The fitness controls together: exercise picker, big rep counters, why an angle is unknown, the
live angle plot with each repetition marked, the reps table and export buttons. The window feeds
it frames and the analyser's summary; it never calls the engine."""
from __future__ import annotations

from typing import Any

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.angle_plot import AnglePlot
from gui.exercise_picker import ExercisePicker
from gui.rep_counter import RepCounterView
from gui.rep_export import RepExport
from gui.rep_table import RepTable, rep_rows
from realtime.analysis.fitness import HINTS
from realtime.pipeline import FrameResult

_REASON_STYLE = "color: #ffb74d;"


class FitnessPanel(QWidget):
    exercise_requested = pyqtSignal(str)
    export_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picker = ExercisePicker()
        self.counter = RepCounterView()
        self.reasons = QLabel()
        self.reasons.setObjectName("angleReasons")
        self.reasons.setWordWrap(True)
        self.reasons.setStyleSheet(_REASON_STYLE)
        self.plot = AnglePlot()
        self.auto_range = QCheckBox("Fit the angle axis to the data")
        self.auto_range.setToolTip("Off: the axis stays at 0–180°")
        self.auto_range.toggled.connect(self.plot.set_auto_range)
        self.table = RepTable()
        self.export = RepExport()
        self.picker.exercise_requested.connect(lambda _: self.reset())
        self.picker.exercise_requested.connect(self.exercise_requested)
        self.export.export_requested.connect(self.export_requested)
        plot_options = QHBoxLayout()
        plot_options.addStretch(1)
        plot_options.addWidget(self.auto_range)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.picker, self.counter, self.reasons, self.plot):
            layout.addWidget(widget)
        layout.addLayout(plot_options)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.export)
        self._analysis_widgets = (self.counter, self.plot, self.auto_range, self.table, self.export)
        self.show_state(None)

    def add_frame(self, result: FrameResult) -> None:
        """Plots the counted angle of every person in this frame."""
        output = result.analysis.get("fitness")
        if output is None:
            return
        for pid, person in output["people"].items():
            self.plot.add(pid, result.frame.pts_s, person["signal_deg"])

    def reset(self) -> None:
        """Forgets what was shown (a new source or exercise): counters, reasons, plot, table."""
        self.counter.set_people({})
        self.reasons.clear()
        self.reasons.hide()
        self.plot.clear()
        self.table.set_reps([])

    def show_state(self, output: dict[str, Any] | None, summary: dict[str, Any] | None = None) -> None:
        """output: the newest frame's analysis["fitness"]; summary: the analyser's summary()."""
        exercise = summary["exercise"] if summary else {}
        self.plot.set_thresholds(exercise.get("start_deg"), exercise.get("turn_deg"))
        people = output["people"] if output and summary else {}
        self.counter.set_people(people)
        reasons = [f"#{pid}: {HINTS[person['signal_reason']]}" for pid, person in people.items()
                   if person.get("signal_reason")]
        self.reasons.setText("Angle unknown — " + "\n".join(reasons) if reasons else "")
        self.reasons.setVisible(bool(reasons))
        rows = rep_rows(summary)
        self.table.set_reps(rows, exercise.get("turn_deg"))
        self.plot.set_reps(rows)
        self.export.set_available(bool(summary and summary["per_rep"]))
        for widget in self._analysis_widgets:  # only the picker while off
            widget.setVisible(summary is not None)
        if output is None and summary is None:
            self.plot.clear()
        self.plot.redraw()
