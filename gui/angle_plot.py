"""Live plot of each person's counted angle over the last seconds, with the two thresholds and
each repetition marked: where it started and ended (dotted) and its deepest point, green when it
reached the turn (counted), red when it was too shallow (not counted).

The angle axis stays at a joint angle's range, 0–180° (exercises.JOINT_ANGLE_RANGE_DEG; the mouse
never zooms or pans it); `set_auto_range(True)` fits it to the data on request."""
from __future__ import annotations

from collections import deque

import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from realtime.analysis.exercises import JOINT_ANGLE_RANGE_DEG

WINDOW_S = 10.0
HIT = "#66bb6a"
MISS = "#ef5350"
_PENS = ("#ffb347", "#6ec6ff", "#b39ddb", "#81c784")


class AnglePlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plot = pg.PlotWidget()
        self._plot.setObjectName("anglePlot")
        self._plot.setMinimumHeight(120)
        self._plot.setLabel("left", "angle", units="°")
        self._plot.setLabel("bottom", "time", units="s")
        self._plot.showGrid(y=True, alpha=0.2)
        self._plot.setMouseEnabled(x=False, y=False)
        self._plot.hideButtons()
        self._auto = False
        self._plot.setYRange(*JOINT_ANGLE_RANGE_DEG, padding=0)
        dashed = Qt.PenStyle.DashLine
        self._thresholds = [pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(color, style=dashed))
                            for color in ("#9e9e9e", "#ff6b6b")]
        for line in self._thresholds:
            line.hide()
            self._plot.addItem(line)
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._marks = pg.ScatterPlotItem(size=9, pxMode=True)
        self._plot.addItem(self._marks)
        self._bounds: list[pg.InfiniteLine] = []
        self._reps: list[dict] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._plot)

    def set_thresholds(self, start_deg: float | None, turn_deg: float | None) -> None:
        """The start (grey) and turn (red) lines; None hides them."""
        for line, deg in zip(self._thresholds, (start_deg, turn_deg)):
            line.setVisible(deg is not None)
            if deg is not None:
                line.setValue(deg)

    def thresholds(self) -> list[float | None]:
        return [line.value() if line.isVisible() else None for line in self._thresholds]

    def set_auto_range(self, auto: bool) -> None:
        """Fit the angle axis to the data (True) or keep it at 0–180° (False)."""
        self._auto = auto
        if auto:
            self._plot.enableAutoRange(axis="y")
        else:
            self._plot.disableAutoRange(axis="y")
            self._plot.setYRange(*JOINT_ANGLE_RANGE_DEG, padding=0)

    def y_range(self) -> tuple[float, float]:
        low, high = self._plot.getViewBox().viewRange()[1]
        return float(low), float(high)

    def add(self, pid: str, time_s: float, deg: float | None) -> None:
        """One sample of person `pid`; a time earlier than the last (a seek, a new source) starts over."""
        samples = self._samples.setdefault(pid, deque())
        if samples and time_s < samples[-1][0]:
            self.clear()
            samples = self._samples.setdefault(pid, deque())
        samples.append((time_s, float("nan") if deg is None else deg))
        while samples and samples[0][0] < time_s - WINDOW_S:
            samples.popleft()

    def set_reps(self, reps: list[dict]) -> None:
        """The repetitions to mark: dicts with start_s, turn_s, end_s, depth_deg and `counted`."""
        self._reps = reps

    def marks(self) -> list[tuple[float, float, bool]]:
        """(time, angle, counted) of each repetition's deepest point now marked."""
        return [(rep["turn_s"], rep["depth_deg"], rep["counted"]) for rep in self._visible_reps()]

    def redraw(self) -> None:
        for n, (pid, samples) in enumerate(self._samples.items()):
            curve = self._curves.get(pid)
            if curve is None:
                curve = self._plot.plot(pen=pg.mkPen(_PENS[n % len(_PENS)], width=2), connect="finite", name=f"#{pid}")
                self._curves[pid] = curve
            times, degs = zip(*samples) if samples else ((), ())
            curve.setData(list(times), list(degs))
        reps = self._visible_reps()
        self._marks.setData([{"pos": (rep["turn_s"], rep["depth_deg"]), "brush": pg.mkBrush(HIT if rep["counted"] else MISS),
                              "pen": pg.mkPen("#000000"), "symbol": "o" if rep["counted"] else "x"} for rep in reps])
        for line in self._bounds:
            self._plot.removeItem(line)
        self._bounds = [pg.InfiniteLine(pos=rep[key], angle=90, movable=False,
                                        pen=pg.mkPen("#9e9e9e", style=Qt.PenStyle.DotLine))
                        for rep in reps if rep["counted"] for key in ("start_s", "end_s")]
        for line in self._bounds:
            self._plot.addItem(line)
        if not self._auto:
            self._plot.setYRange(*JOINT_ANGLE_RANGE_DEG, padding=0)

    def _visible_reps(self) -> list[dict]:
        ends = [samples[-1][0] for samples in self._samples.values() if samples]
        if not ends:
            return []
        now = max(ends)
        return [rep for rep in self._reps if now - WINDOW_S <= rep["end_s"] <= now]

    def samples(self, pid: str) -> list[tuple[float, float]]:
        return list(self._samples.get(pid, ()))

    def clear(self, *_: object) -> None:
        self._samples.clear()
        for curve in self._curves.values():
            self._plot.removeItem(curve)
        self._curves.clear()
        self._reps = []
        self._marks.setData([])
        for line in self._bounds:
            self._plot.removeItem(line)
        self._bounds = []
