"""The banner as the window uses it: besides the messages it is given, it shows the session's
errors (with Retry for any source, and Open file… for a file), a live source reconnecting, and
the end of a file, each once, with what the user can do about it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QWidget

from gui.banner import Banner, Level
from gui.session import Session
from realtime.logs import log_file_path
from realtime.sources import is_device_or_stream


class SourceBanner(Banner):
    """Emits `open_requested(spec)` for Retry, `browse_requested()` for Open file… and
    `replay_requested()` for Play again."""

    open_requested = pyqtSignal(str)
    browse_requested = pyqtSignal()
    replay_requested = pyqtSignal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._shown_error: str | None = None
        self._shown_finished = False

    def show_state(self) -> None:
        session = self._session
        pipeline = session.pipeline
        error = session.error or (pipeline.source_status if pipeline is not None else None)
        if error != self._shown_error:
            self._shown_error = error
            if error:
                actions = self._retry_actions() if session.source_error else []
                self.show_message(error, level=Level.ERROR, actions=actions,
                                  detail=f"Details are in the log: {log_file_path()}")
            elif self.level is Level.ERROR:
                self.dismiss()
        finished = pipeline is not None and pipeline.finished and not session.source_error
        if finished != self._shown_finished:
            self._shown_finished = finished
            if finished and not error:
                name = Path(pipeline.stats.source).name
                self.show_message(f"End of {name}.", level=Level.INFO,
                                  actions=[("Play again", self.replay_requested.emit)])
            elif not finished and self.level is Level.INFO and self.text().startswith("End of"):
                self.dismiss()

    def _retry_actions(self) -> list[tuple[str, Callable[[], None]]]:
        """Retry for every kind of source (a camera may come back, a file may be fixed); a file
        also offers to pick another."""
        spec = self._session.source_spec or ""
        actions = [("Retry", lambda: self.open_requested.emit(spec))] if spec else []
        if not is_device_or_stream(spec):
            actions.append(("Open file…", self.browse_requested.emit))
        return actions
