"""The status bar: display and inference rates, latency, resolution, model, device, state."""
from __future__ import annotations

from PyQt6.QtWidgets import QLabel, QStatusBar, QWidget

from gui.session import Session
from realtime.pipeline import PipelineStats
from realtime.render import models_text


def state_text(session: Session, *, recording: bool) -> str:
    """What the window is doing, for the status bar's state field."""
    pipeline = session.pipeline
    if session.opening:
        return "opening…"
    if session.source_error:
        return "failed"
    if pipeline is None:
        return "no source"
    if pipeline.source_status:
        return "reconnecting…"
    state = "❚❚ paused" if session.paused else "end of file" if pipeline.finished else "▶ playing"
    return f"● rec · {state}" if recording else state


class StatusPanel(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._fields: dict[str, QLabel] = {}
        # the widest text each field shows, so numbers changing do not make the bar jump
        for key, widest, tip in (("state", "● rec · end of file", "What the window is doing"),
                                 ("display", "display 000.0 fps", "Frames the window painted per second"),
                                 ("inference", "inference 000.0 fps", "Frames the engine parsed per second"),
                                 ("latency", "latency 0000 ms",
                                  "From capture to analysed frame (the figure the video's readout and the JSONL give)"),
                                 ("resolution", "0000×0000", "Frame size (width × height)"),
                                 ("model", "", "Parsing model, and the pose model that gives the keypoints"),
                                 ("device", "", "Where the model runs")):
            label = QLabel()
            label.setToolTip(tip)
            label.setContentsMargins(6, 0, 6, 0)
            label.setMinimumWidth(label.fontMetrics().horizontalAdvance(widest) + 12)
            self._fields[key] = label
            self.addPermanentWidget(label)
        self.show_stats(None, display_fps=0.0, state="idle")

    def field(self, key: str) -> str:
        return self._fields[key].text()

    def show_stats(self, stats: PipelineStats | None, *, display_fps: float, state: str, live: bool = True) -> None:
        self._fields["state"].setText(state)
        self._fields["display"].setText(f"display {display_fps:4.1f} fps")
        if stats is None:
            for key in ("inference", "latency", "resolution", "model", "device"):
                self._fields[key].setText("")
            return
        self._fields["inference"].setText(f"inference {stats.fps:4.1f} fps")
        # files: every frame waits its turn, so latency means nothing (the video shows the position)
        self._fields["latency"].setText(f"latency {stats.latency_ms:4.0f} ms" if live else "latency –")
        self._fields["resolution"].setText("×".join(map(str, stats.resolution)) if stats.resolution else "")
        self._fields["model"].setText(models_text(stats.model, stats.pose_source))
        self._fields["device"].setText(stats.device)
