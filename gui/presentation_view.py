"""The presentation view: for a coaching demo on a big screen. The video alone, full screen, with
a large repetition counter per person, the exercise's name and the last repetition's depth and
tempo; Esc or F leaves it.

It is a window of its own, frameless and sized to its screen by hand, so it covers the screen
also where no window manager would honour a full-screen request (a kiosk, a bare X server).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QColor, QGuiApplication, QKeyEvent
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.rep_counter import person_detail
from gui.video_view import VideoView
from realtime.render import plural

_STYLE = """
#presentation { background: #000000; }
#presentation QLabel { color: #ffffff; background: transparent; }
#presentationExercise { font-size: 40px; font-weight: bold; letter-spacing: 2px; }
#presentationCount { font-size: 160px; font-weight: bold; }
#presentationUnit { font-size: 28px; color: #cfcfcf; margin-bottom: 12px; }
#presentationPerson { font-size: 26px; color: #9ecbff; }
#presentationDetail, #presentationLastRep { font-size: 24px; color: #e0e0e0; }
"""


def last_rep_text(rep: dict[str, Any] | None, exercise: dict[str, Any]) -> str:
    """'last rep: 92° (target 120°)' (', turn not seen' when the angle was unknown at its turn)
    and, on a second line, its tempo ('down 1.1 s · hold 0.2 s · up 0.9 s' for an exercise whose
    angle closes, 'up … · hold … · down …' for one whose angle opens)."""
    if rep is None:
        return "last rep: –"
    depth = rep.get("depth_deg")
    depth_text = "–" if depth is None else f"{depth:.0f}° (target {exercise['turn_deg']:g}°)"
    if not rep.get("turn_seen", True):
        depth_text += ", turn not seen"
    out, back = ("down", "up") if exercise["turn_deg"] < exercise["start_deg"] else ("up", "down")
    tempo = f"{out} {rep['out_s']:.1f} s · hold {rep['hold_s']:.1f} s · {back} {rep['back_s']:.1f} s"
    return f"last rep: {depth_text}\n{tempo}"


class PresentationView(QWidget):
    """Emits `closed()` when the user leaves it (Esc, F, or the window closes)."""

    closed = pyqtSignal()
    key_pressed = pyqtSignal(int)  # keys it does not handle itself (Space, arrows) go to the main window

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint)
        self.setObjectName("presentation")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setStyleSheet(_STYLE)
        self.setWindowTitle("PartSight — presentation")
        self.video_view = VideoView(background=QColor(0, 0, 0))
        self._exercise = QLabel()
        self._exercise.setObjectName("presentationExercise")
        self._people = QVBoxLayout()
        self._people.setSpacing(24)
        self._cells: dict[str, tuple[QWidget, dict[str, QLabel]]] = {}
        hint = QLabel("Esc leaves")
        hint.setStyleSheet("color: #777777; font-size: 14px;")
        column = QWidget()
        column.setObjectName("presentationPanel")
        side = QVBoxLayout(column)
        side.setContentsMargins(24, 32, 32, 24)
        side.addWidget(self._exercise)
        side.addLayout(self._people)
        side.addStretch(1)
        side.addWidget(hint, alignment=Qt.AlignmentFlag.AlignRight)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.video_view, 3)
        layout.addWidget(column, 1)
        self._column = column

    def present(self) -> None:
        """Covers the screen the main window is on (or the primary one)."""
        parent = self.parentWidget()
        screen = (parent.screen() if parent is not None else None) or QGuiApplication.primaryScreen()
        self.setGeometry(screen.geometry())
        self.showFullScreen()
        self.raise_()
        self.activateWindow()
        self.setFocus()

    def set_frame(self, image: np.ndarray, raw: np.ndarray | None = None) -> None:
        self.video_view.set_frame(image, raw)

    def show_analysis(self, output: dict[str, Any] | None, summary: dict[str, Any] | None) -> None:
        """output: the frame's analysis["fitness"]; summary: the analyser's summary (None: no exercise)."""
        self._column.setVisible(summary is not None)
        if summary is None:
            return
        exercise = summary["exercise"]
        self._exercise.setText(exercise["name"].upper())
        people = output["people"] if output else {}
        for pid in [p for p in self._cells if p not in people]:
            cell, _ = self._cells.pop(pid)
            cell.deleteLater()
        for pid in sorted(people, key=int):
            person = people[pid]
            labels = self._cell(pid)
            labels["person"].setText(f"#{pid}" if len(people) > 1 else "")
            labels["person"].setVisible(len(people) > 1)
            labels["count"].setText(str(person["reps"]))
            labels["unit"].setText(plural(person["reps"], "rep").split(" ", 1)[1])
            labels["detail"].setText(person_detail(pid, person, with_id=False))
            labels["last"].setText(last_rep_text(person.get("last_rep"), exercise))

    def counts(self) -> dict[str, int]:
        return {pid: int(labels["count"].text()) for pid, (_, labels) in self._cells.items()}

    def texts(self) -> list[str]:
        """Every text on the counter side (for tests and automation)."""
        return [self._exercise.text()] + [label.text() for _, labels in self._cells.values() for label in labels.values()]

    def _cell(self, pid: str) -> dict[str, QLabel]:
        if pid not in self._cells:
            cell = QWidget()
            labels = {key: QLabel() for key in ("person", "count", "unit", "detail", "last")}
            for key, name in (("person", "presentationPerson"), ("count", "presentationCount"),
                              ("unit", "presentationUnit"), ("detail", "presentationDetail"),
                              ("last", "presentationLastRep")):
                labels[key].setObjectName(name)
            labels["detail"].setWordWrap(True)
            labels["last"].setWordWrap(True)
            layout = QVBoxLayout(cell)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(0)
            layout.addWidget(labels["person"])
            layout.addWidget(labels["count"])
            layout.addWidget(labels["unit"])
            layout.addWidget(labels["detail"])
            layout.addWidget(labels["last"])
            self._people.addWidget(cell)
            self._cells[pid] = (cell, labels)
        return self._cells[pid][1]

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F):
            self.close()
            return
        self.key_pressed.emit(event.key())

    def closeEvent(self, event: QCloseEvent) -> None:
        super().closeEvent(event)
        self.closed.emit()
