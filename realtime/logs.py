"""Where diagnostics go: tracebacks and details to a log file, warnings to the console as one
line each. Credentials in URLs are removed from both."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import platformdirs

LOG_FILE_ENV = "PARTSIGHT_LOG_FILE"
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C stopped
_HANDLER_NAME = "partsight"
# libraries that log, in their own words, what they then raise and PartSight reports in its own
# (the multipart parser: a malformed upload, the client's 400): their records go to the log file only
_FILE_ONLY_LOGGERS = ("python_multipart",)


class _FileFormat(logging.Formatter):
    """Time, level, logger, message and traceback, with user:password@ removed from URLs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        from realtime.sources import redact_url

        return redact_url(super().format(record))


class _ConsoleFormat(logging.Formatter):
    """`partsight: LEVEL: first line of the message`, no traceback (it is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        from realtime.sources import redact_url

        lines = record.getMessage().splitlines() or [""]
        return f"partsight: {record.levelname.lower()}: {redact_url(lines[0])}"


class _Console(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and tools swap it). Records carrying a
    traceback, and those of _FILE_ONLY_LOGGERS, are left to the log file: the place that caught
    the exception tells the user in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        library = record.name.split(".", 1)[0] in _FILE_ONLY_LOGGERS
        return record.exc_info is None and not library and super().filter(record)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _LogFile(logging.FileHandler):
    """A log file that fails quietly: a full disk or a file-size limit must not put logging's
    own traceback in front of the user, who is told about the failure itself."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def interrupted() -> int:
    """Ctrl-C before a command could say what it kept: the one line "partsight: interrupted";
    returns EXIT_INTERRUPTED."""
    print("partsight: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def log_file_path() -> Path:
    """$PARTSIGHT_LOG_FILE, else partsight.log in the user's log folder."""
    override = os.environ.get(LOG_FILE_ENV)
    return Path(override).expanduser() if override else platformdirs.user_log_path("partsight") / "partsight.log"


def configure_logging(level: int = logging.INFO) -> Path | None:
    """Sends records at `level` and above, tracebacks included, to the log file and warnings and
    errors to stderr as one line; returns the log file (None when it cannot be written). Calling
    it again changes nothing."""
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.get_name() == _HANDLER_NAME]
    if ours:
        return next((Path(h.baseFilename) for h in ours if isinstance(h, logging.FileHandler)), None)
    path: Path | None = log_file_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler = _LogFile(path, encoding="utf-8")
    except OSError:
        path, file_handler = None, logging.NullHandler()
    file_handler.setFormatter(_FileFormat())
    file_handler.setLevel(level)
    console = _Console()
    console.setLevel(logging.WARNING)
    console.setFormatter(_ConsoleFormat())
    for handler in (file_handler, console):
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    root.setLevel(min(root.getEffectiveLevel(), level))
    return path
