"""The banner as the window uses it: besides the messages it is given, it shows the session's
source or model error and the end of a file, each once, with what the user can do about it."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QWidget

from gui.banner import Banner, Level
from gui.session import Session
from realtime.sources import is_device_or_stream


class SourceBanner(Banner):
    """Emits `open_requested(spec)` for Retry and Play again, `browse_requested()` for Open file…."""

    open_requested = pyqtSignal(str)
    browse_requested = pyqtSignal()

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
                action = self._retry_action() if pipeline is None else None
                self.show_message(error, level=Level.ERROR, action=action)
            elif self.level is Level.ERROR:
                self.dismiss()
        finished = pipeline is not None and pipeline.finished
        if finished != self._shown_finished:
            self._shown_finished = finished
            if finished and not error:
                name = Path(pipeline.stats.source).name
                self.show_message(f"End of {name}.", level=Level.INFO,
                                  action=("Play again", lambda: self.open_requested.emit(session.source_spec)))
            elif not finished and self.level is Level.INFO:
                self.dismiss()

    def _retry_action(self) -> tuple[str, Callable[[], None]]:
        """A camera or stream that failed to open may come back: offer to try again; a file, to pick another."""
        spec = self._session.source_spec or ""
        if is_device_or_stream(spec):
            return "Retry", lambda: self.open_requested.emit(spec)
        return "Open file…", self.browse_requested.emit
