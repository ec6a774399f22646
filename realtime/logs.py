"""Where diagnostics go: tracebacks and details to a log file, warnings to the console as one
line each. Credentials in URLs are removed from both."""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import platformdirs

LOG_FILE_ENV = "PARTSIGHT_LOG_FILE"
EXIT_ERROR = 1  # a command that failed, its reason printed as one line
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and `kill` or a service manager's stop: handled alike
_HANDLER_NAME = "partsight"
# libraries that log, in their own words, what they then raise and PartSight reports in its own
# (the multipart parser: a malformed upload, the client's 400), and libraries' Python warnings
# (PIL's "Corrupt EXIF data" on a truncated TIFF, which is then a damaged image): their records go
# to the log file only
_FILE_ONLY_LOGGERS = ("python_multipart", "py.warnings")
# Ray's loggers with console handlers of their own, whose notes a user of `batch` or `serve` has no
# use for (`ray_notes_to_log_file`): its token authentication (a new local cluster gets a token,
# Ray's default) and Ray Serve's progress ("Started Serve in namespace ...")
RAY_NOTE_LOGGERS = ("ray._private.authentication.authentication_token_setup", "ray.serve")
# uvicorn's logger of its server's own life, whose words are not PartSight's (`uvicorn_notes_to_log_file`):
# "Cancel 1 running task(s), timeout graceful shutdown exceeded" after a stop signal with an upload
# still coming in (the command says "partsight: interrupted"), a client's invalid HTTP request
UVICORN_NOTE_LOGGERS = ("uvicorn.error",)
# what breaks or garbles a line on a terminal: C0 and C1 control characters, Unicode's line and
# paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(error: BaseException | str) -> str:
    """What the user is told of an error, as one line: its message (an exception's type name when
    it has none), credentials in URLs removed, control characters escaped as Python writes them, so
    that a path or URL holding a line break stays whole ('/tmp/a\\nb.mp4') and what follows it, the
    reason, is not lost."""
    from realtime.sources import redact_url

    text = str(error).strip() or (type(error).__name__ if isinstance(error, BaseException) else "")
    return _CONTROL.sub(lambda found: repr(found[0])[1:-1], redact_url(text))


class _FileFormat(logging.Formatter):
    """Time, level, logger, message and traceback, with user:password@ removed from URLs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        from realtime.sources import redact_url

        return redact_url(super().format(record))


class _ConsoleFormat(logging.Formatter):
    """`partsight: LEVEL: message` as one_line writes it, no traceback (it is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"partsight: {record.levelname.lower()}: {one_line(record.getMessage())}"


class _Console(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and tools swap it). Records carrying a
    traceback, and those of _FILE_ONLY_LOGGERS, are left to the log file: the place that caught
    the exception tells the user in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        library = any(record.name == name or record.name.startswith(f"{name}.") for name in _FILE_ONLY_LOGGERS)
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


class _ToLogFile(logging.Filter):
    """Sends a library logger's records to PartSight's log file (at INFO: not the console; with
    the traceback a record carries, such as uvicorn's for an exception in the app) instead of the
    library's own handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        logging.getLogger(__name__).info("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False


@contextmanager
def _notes_to_log_file(loggers: tuple[str, ...]) -> Iterator[None]:
    """Inside, what `loggers` record goes to the log file, not to the console."""
    to_log_file = _ToLogFile()
    for name in loggers:
        logging.getLogger(name).addFilter(to_log_file)
    try:
        yield
    finally:
        for name in loggers:
            logging.getLogger(name).removeFilter(to_log_file)


def ray_notes_to_log_file():
    """Inside, what Ray's RAY_NOTE_LOGGERS record goes to the log file, not to the console."""
    return _notes_to_log_file(RAY_NOTE_LOGGERS)


class _QueriesLeftOut(logging.Filter):
    """uvicorn's access lines (args: client, method, path, HTTP version, status) with the path's
    query string left out: a client may put a credential there (`?token=...`, which the service
    does not take), and no log may hold one."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?(query left out)", *args[3:])
        return True


@contextmanager
def uvicorn_notes_to_log_file() -> Iterator[None]:
    """Inside, what uvicorn's UVICORN_NOTE_LOGGERS record goes to the log file, not to the
    console, and its access lines leave the query strings out."""
    access, left_out = logging.getLogger("uvicorn.access"), _QueriesLeftOut()
    access.addFilter(left_out)
    try:
        with _notes_to_log_file(UVICORN_NOTE_LOGGERS):
            yield
    finally:
        access.removeFilter(left_out)


class Terminated(KeyboardInterrupt):
    """A SIGTERM (`kill`, a service manager's stop), raised where Ctrl-C raises KeyboardInterrupt
    (sigterm_as_ctrl_c), so that the command stops the same way and exits with SIGTERM's status."""


def stop_exception(signum: int) -> KeyboardInterrupt:
    """What a stop signal raises: Terminated for SIGTERM, KeyboardInterrupt for Ctrl-C (SIGINT)."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def stop_signal(exc: KeyboardInterrupt) -> int:
    """The stop signal that raised `exc` (stop_exception): SIGTERM or SIGINT."""
    return signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def exit_status(signum: int) -> int:
    """A command's exit status when stop signal `signum` ended it: 128 + its number, as a shell
    reports for a process the signal killed (130 Ctrl-C, 143 SIGTERM)."""
    return 128 + signum


def interrupted(signum: int = signal.SIGINT) -> int:
    """A stop signal before a command could say what it kept: the one line "partsight:
    interrupted"; returns exit_status(signum)."""
    print("partsight: interrupted", file=sys.stderr)
    return exit_status(signum)


def _raise_terminated(_signum, _frame) -> None:
    raise Terminated


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Inside, a SIGTERM (`kill`, a service manager's stop) stops the command the way Ctrl-C does:
    Terminated (a KeyboardInterrupt) in the main thread, so what it wrote is finished and it says
    so in one line."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_signals_held() -> Iterator[list[int]]:
    """Inside, Ctrl-C and SIGTERM are noted (their numbers appended to the list it gives), not
    raised: for the steps that finish what a stopped command wrote (its threads joined, its
    summary written), which a second Ctrl-C pressed at once would cut short (the summary lost, and
    threads still running abort the interpreter). Only the main thread gets signals: elsewhere it
    holds nothing."""
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return
    previous = {signum: signal.signal(signum, lambda signum, _frame: noted.append(signum)) for signum in STOP_SIGNALS}
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def log_file_path() -> Path:
    """$PARTSIGHT_LOG_FILE, else partsight.log in the user's log folder."""
    override = os.environ.get(LOG_FILE_ENV)
    return Path(override).expanduser() if override else platformdirs.user_log_path("partsight") / "partsight.log"


def configure_logging(level: int = logging.INFO) -> Path | None:
    """Sends records at `level` and above, tracebacks included, to the log file and warnings and
    errors to stderr as one line, libraries' Python warnings to the log file only; returns the log
    file (None when it cannot be written). Calling it again changes nothing."""
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
    logging.captureWarnings(True)
    return path
