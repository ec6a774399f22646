"""The `partsight` command with the window: the engine's commands plus `gui`, which is also what
runs without a command. Importing this module is quick and needs no Qt: the engine (PyTorch
included) loads inside `main`, so a Ctrl-C while it loads is one line; the window's modules load
only when `gui` runs."""
from __future__ import annotations

import argparse

from realtime.logs import interrupted, sigterm_as_ctrl_c, stop_signal

WINDOW_MAX_SIDE = 960  # the window parses a display-sized copy of larger frames


def add_gui_command(commands: argparse._SubParsersAction) -> None:
    from realtime.cli_options import max_side_option, model_options, people_options, positive_int, smoothing_option
    from realtime.fitness_cli import angles_option, exercise_option, pose_option

    gui = commands.add_parser("gui", help="open the window (the default without a command)")
    gui.add_argument("--source", help="what to open first (default: what played last, else webcam 0)")
    gui.add_argument("--present", action="store_true", help="start in the presentation view (Esc leaves it)")
    gui.add_argument("--record", action="store_true",
                     help="record (MP4 + JSONL in the output folder) from the first frame; Ctrl-C, SIGTERM or "
                          "closing the window finishes the recording, and prints 'recorded PATH'")
    gui.add_argument("--frames", type=positive_int, help="exit after this many frames (with --screenshot)")
    gui.add_argument("--screenshot", help="save a PNG of the whole window before exiting")
    max_side_option(gui, WINDOW_MAX_SIDE, size_option=False)
    exercise_option(gui, "count repetitions of this preset from the start", custom=False)
    pose_option(gui, "auto")
    angles_option(gui)
    model_options(gui, model=None)
    people_options(gui)
    smoothing_option(gui, None)
    gui.set_defaults(handler=_gui)


def _gui(args: argparse.Namespace) -> int:
    from realtime.cli import CliError

    try:
        from gui.app import run_app
    except ImportError as exc:
        raise CliError(f"the window needs PyQt6 ({exc})") from None
    return run_app(args)


def main(argv: list[str] | None = None) -> int:
    """The `partsight` console script and main.py: realtime.cli.main with the window; a Ctrl-C (or
    SIGTERM) it did not handle, from the first import on, ends with "partsight: interrupted" and
    exit 130 (143 for SIGTERM)."""
    try:
        with sigterm_as_ctrl_c():
            from realtime import cli

            return cli.main(argv, extra_commands=[add_gui_command], default_command="gui")
    except KeyboardInterrupt as exc:
        return interrupted(stop_signal(exc))
