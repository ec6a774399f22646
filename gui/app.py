"""`partsight gui`: builds the application, the session and the window, and runs the event loop."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import (QCoreApplication, QEvent, QMessageLogContext, QSettings, QtMsgType, QTimer,
                          qInstallMessageHandler)
from PyQt6.QtGui import QColor, QIcon, QPalette
from PyQt6.QtWidgets import QApplication, QStyleFactory, QWidget

from gui.main_window import MainWindow
from gui.session import Session
from realtime.analysis.summary import summary_table
from realtime.cli import CliError
from realtime.config import config_from_args
from realtime.logs import STOP_SIGNALS, exit_status
from realtime.recorder import check_writable, write_problem
from realtime.render import plural

ORGANISATION = "PartSight"
APPLICATION = "PartSight"
ICON = Path(__file__).resolve().parents[1] / "assets" / "partsight.svg"

log = logging.getLogger(__name__)


def run_app(args: argparse.Namespace) -> int:
    """Opens the window on `args.source` (default: the source that played last, else webcam 0),
    in the presentation view with `--present`, recording from the first frame with `--record`.

    With `--frames N` the window exits after showing N frames; with `--screenshot PATH` it saves
    a PNG of the whole window before exiting (CliError before the window opens when PATH cannot
    be written). Once the window is closed, each recording finished in it is one line on stdout,
    "recorded PATH: N frames, metrics PATH.jsonl", and with an exercise the repetitions counted by
    the recording's end as `process` prints them (summary_table: "squat: 2 reps" and a row per
    repetition), also when the screenshot then fails. CliError when no frame could be shown (with
    the reason the window gave); Ctrl-C or SIGTERM closes the window without asking (a running
    recording is finished and kept), says so in one line first and exits with the signal's exit
    status (logs.exit_status: 130 for Ctrl-C, 143 for SIGTERM). One that comes while the window
    closes at the end is noted (the same exit status); on return Ctrl-C and SIGTERM have the
    handlers they had before.
    """
    if args.screenshot:  # found before the window opens, not once its run (and recording) is over
        try:
            check_writable(args.screenshot)
        except OSError as exc:
            raise CliError(f"--screenshot: cannot write {args.screenshot}: "
                           f"{write_problem(args.screenshot, exc)}") from None
    qInstallMessageHandler(_qt_message_to_log)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setWindowIcon(QIcon(str(ICON)))
    apply_dark_theme(app)
    settings = QSettings()
    if args.smoothing is not None:
        settings.setValue("view/smoothing", args.smoothing)
    config = config_from_args(args)
    config = replace(config, model=args.model or settings.value("model", config.model, str),
                     smoothing=settings.value("view/smoothing", config.smoothing, float))
    session = Session(config)
    window = MainWindow(session, settings)
    recorded: list[str] = []

    def finished(path: Path, frames: int) -> None:
        recorded.append(f"recorded {path}: {plural(frames, 'frame')}, metrics {path.with_suffix('.jsonl')}")
        if session.fitness is not None:  # the counts as `process` prints them, at the recording's end
            recorded.append(summary_table(session.fitness.summary()))

    window.recording_panel.recording_finished.connect(finished)
    window.show()
    if args.exercise:
        window.fitness_panel.picker.choose(args.exercise)
    window.open_source(args.source or window.source_panel.last_source() or "0", record=args.record)
    if args.present:
        window.toggle_presentation()
    stopped, recording = None, None  # the first stop signal that came, and the recording it finished
    running = True  # False once the run is over: the window is then closed and destroyed, a stop signal only noted

    def stop(signum, _frame) -> None:  # Python runs signal handlers between Qt events; the state timer provides them
        nonlocal stopped, recording
        if stopped is None:
            stopped, recording = signum, window.recording_panel.recording_path if running else None
        if running:
            window.close_now()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        if args.frames:
            _exit_after_frames(app, window, args.frames)
        status = app.exec()
        if args.screenshot:
            window.refresh()
            app.processEvents()  # lay out the texts refresh() just set
            _save_window(window.screenshot_widget(), Path(args.screenshot))
    finally:  # a screenshot that could not be saved (a full disk) still leaves the recording finished and named
        running = False
        window.close_now()  # the run is over (its frames shown, or closed): no question, a recording is kept
        if stopped is not None:  # first: what follows is what the window did until then
            print("partsight: interrupted" + (f" (the recording is in {recording})" if recording else ""),
                  file=sys.stderr)
        for line in recorded:
            print(line)
        # the widgets are destroyed now, while the application lives: left to the interpreter's exit,
        # PyQt's clean-up destroyed them in no set order and crashed (SIGSEGV) in 5 of 15 runs with
        # an exercise (its angle plot), after everything was written
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        for signum, handler in previous.items():  # a later Ctrl-C or SIGTERM is the caller's again
            signal.signal(signum, handler)
    if stopped is not None:
        return exit_status(stopped)
    if status == 0 and window.frames_shown == 0:
        reason = window.shown_error
        raise CliError("no frame was shown" + (f": {reason}" if reason else ""))
    return status


def _qt_message_to_log(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's own messages go to the log file (a platform plugin's notes, such as the offscreen
    one's "does not support propagateSizeHints()", are no news to the user); only its critical
    and fatal ones reach the console too."""
    serious = kind in (QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    log.log(logging.ERROR if serious else logging.INFO, "Qt: %s", message)


def _exit_after_frames(app: QApplication, window: MainWindow, frames: int) -> None:
    check = QTimer(window)
    check.setInterval(50)

    def done_yet() -> None:
        if window.frames_shown >= frames or window.stalled:
            check.stop()
            app.exit(0)

    check.timeout.connect(done_yet)
    check.start()


def _save_window(window: QWidget, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise CliError(f"--screenshot: cannot write {path}")  # Qt gives no reason
    print(f"saved {path}")


def apply_dark_theme(app: QApplication) -> None:
    """Fusion with a dark palette: coloured parts read better on a dark frame."""
    app.setStyle(QStyleFactory.create("Fusion"))
    palette = QPalette()
    roles = QPalette.ColorRole
    for role, rgb in ((roles.Window, (37, 38, 41)), (roles.WindowText, (225, 225, 228)),
                      (roles.Base, (27, 28, 30)), (roles.AlternateBase, (45, 46, 50)),
                      (roles.ToolTipBase, (250, 250, 250)), (roles.ToolTipText, (20, 20, 20)),
                      (roles.Text, (225, 225, 228)), (roles.Button, (50, 51, 55)),
                      (roles.ButtonText, (225, 225, 228)), (roles.BrightText, (255, 90, 90)),
                      (roles.Highlight, (58, 115, 168)), (roles.HighlightedText, (255, 255, 255)),
                      (roles.Link, (110, 170, 230)), (roles.PlaceholderText, (130, 130, 135))):
        palette.setColor(role, QColor(*rgb))
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        palette.setColor(disabled, role, QColor(120, 120, 125))
    app.setPalette(palette)
