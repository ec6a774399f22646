"""Live plot of each person's counted angle over the last seconds, with the two thresholds."""
from __future__ import annotations

from collections import deque

import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QVBoxLayout, QWidget

WINDOW_S = 10.0
_PENS = ("#ffb347", "#6ec6ff", "#b39ddb", "#81c784")


class AnglePlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plot = pg.PlotWidget()
        self._plot.setObjectName("anglePlot")
        self._plot.setMinimumHeight(160)
        self._plot.setLabel("left", "angle", units="°")
        self._plot.setLabel("bottom", "time", units="s")
        self._plot.setYRange(0, 180)
        self._plot.showGrid(y=True, alpha=0.2)
        dashed = Qt.PenStyle.DashLine
        self._thresholds = [pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(color, style=dashed))
                            for color in ("#9e9e9e", "#ff6b6b")]
        for line in self._thresholds:
            line.hide()
            self._plot.addItem(line)
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
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

    def add(self, pid: str, time_s: float, deg: float | None) -> None:
        """One sample of person `pid`; a time earlier than the last (a new source) starts over."""
        samples = self._samples.setdefault(pid, deque())
        if samples and time_s < samples[-1][0]:
            self.clear()
            samples = self._samples.setdefault(pid, deque())
        samples.append((time_s, float("nan") if deg is None else deg))
        while samples and samples[0][0] < time_s - WINDOW_S:
            samples.popleft()

    def redraw(self) -> None:
        for n, (pid, samples) in enumerate(self._samples.items()):
            curve = self._curves.get(pid)
            if curve is None:
                curve = self._plot.plot(pen=pg.mkPen(_PENS[n % len(_PENS)], width=2), connect="finite", name=f"#{pid}")
                self._curves[pid] = curve
            times, degs = zip(*samples) if samples else ((), ())
            curve.setData(list(times), list(degs))

    def samples(self, pid: str) -> list[tuple[float, float]]:
        return list(self._samples.get(pid, ()))

    def clear(self, *_: object) -> None:
        self._samples.clear()
        for curve in self._curves.values():
            self._plot.removeItem(curve)
        self._curves.clear()
