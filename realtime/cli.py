"""Command line: `partsight process|bench|bench-memory|bench-parser|bench-model|pose-quality|eval|batch|weights`,
and `serve|bench-serve` (registered by realtime.serve.cli, FastAPI imported only when they run). The
window's `gui` command is registered by gui/ (`gui.cli`), which the `partsight` script and main.py
run; the engine never imports the GUI."""
from __future__ import annotations

import argparse
import logging
import os
import select
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from realtime.cli_options import (
    fps_option,
    frame_size,
    max_side_option,
    model_options,
    mp4_path,
    note_fps_kept,
    note_live_ignores,
    output_file,
    output_folder,
    parse_side_option,
    people_options,
    positive_int,
    readout_option,
    realtime_option,
    refuse_endless,
    smoothing_option,
    stage_threads_option,
)
from realtime.batch.cli import add_batch_command
from realtime.bench_cli import add_bench_commands, compare_settings_as_values
from realtime.config import X264_PRESETS, OptionsError
from realtime.eval_cli import add_eval_commands
from realtime.fitness_cli import add_pose_quality_command, fitness_options, refuse_angles_without_exercise
from realtime.logs import EXIT_ERROR, configure_logging, exit_status, one_line, sigterm_as_ctrl_c
from realtime.models.registry import weight_files
from realtime.serve.cli import add_serve_commands
from realtime.version import version

EXIT_USAGE = 2  # argparse's own, for every usage error

log = logging.getLogger(__name__)

CommandRegistrar = Callable[[argparse._SubParsersAction], None]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def main(argv: list[str] | None = None, *, extra_commands: Sequence[CommandRegistrar] = (),
         default_command: str | None = None) -> int:
    """Runs one command. `extra_commands` add subcommands (gui/ adds `gui`); without a command,
    `default_command` runs (the window) or the usage is shown. Failures print one line (the
    traceback goes to the log file) and return 1; a SIGTERM stops it as a Ctrl-C does; a stop
    signal the command did not handle propagates (KeyboardInterrupt, logs.Terminated) to the entry
    point, gui.cli.main, which says so in one line. Exit status 2: a usage error (argparse's, or
    options that do not go together, OptionsError); 1: the input or the run failed; 130:
    interrupted by Ctrl-C, 143: by SIGTERM (logs.exit_status); 0 also when the reader of stdout
    closed it (_run)."""
    parser = _build_parser(extra_commands)
    args = _parse(parser, compare_settings_as_values(sys.argv[1:] if argv is None else argv))
    if args.command is None:
        if default_command is None:
            parser.print_usage(sys.stderr)
            return EXIT_USAGE
        args = _parse(parser, [default_command, *(argv or [])])
    status = _run(parser, args)
    try:
        sys.stdout.flush()  # a reader gone by now is met here, not in the interpreter's last flush
    except BrokenPipeError:
        _stdout_to_devnull()
    return status


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`args.handler`'s exit status, a failure's said in one line (main). A reader that closed
    stdout took what it wanted (`weights list | head -1`): exit status 0, as when it left only
    after the last line, which is timing, not the command's doing."""
    log_file = configure_logging()
    try:
        with sigterm_as_ctrl_c():
            return args.handler(args)
    except OptionsError as exc:  # the command line's fault, found once it was parsed: a usage error
        print(f"partsight: error: {one_line(exc)} (see '{_command_parser(parser, args).prog} --help')",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # every failure reaches the user as one line, not a traceback
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return 0
        if os.environ.get("PARTSIGHT_DEBUG"):
            raise
        log.exception("command %s failed", args.command)
        detail = f" (details in {log_file})" if not isinstance(exc, (CliError, ValueError)) and log_file else ""
        print(f"partsight: error: {one_line(exc)}{detail}", file=sys.stderr)
        return EXIT_ERROR


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader went away (`partsight weights list | head -3`: poll
    reports an error on it); if so, stdout now writes to os.devnull (_stdout_to_devnull)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not any(events & select.POLLERR for _fd, events in poller.poll(0)):
        return False
    _stdout_to_devnull()
    return True


def _stdout_to_devnull() -> None:
    """Points stdout's file descriptor at os.devnull, so that what is still buffered for a reader
    that went away does not fail the interpreter's last flush (exit status 120 and its complaint)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _OneLineParser(argparse.ArgumentParser):
    """A usage error is one line, `partsight: error: ...` with where to read more, exit status 2.
    Options are taken only as spelled in full (a typo such as --dtyp is an error, not a guess);
    subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"partsight: error: {one_line(message)} (see '{self.prog} --help')\n")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`argv` parsed; arguments no option takes are the command's usage error, which points at
    that command's help, a subcommand's own (`eval person-iou --help`; argparse's own points at
    the top level's)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` ran: `parser`'s chosen subcommand's, followed down."""
    while True:
        subcommands = next((action for action in parser._actions if isinstance(action, argparse._SubParsersAction)),
                           None)
        chosen = subcommands.choices.get(getattr(args, subcommands.dest, None)) if subcommands else None
        if chosen is None:
            return parser
        parser = chosen


def _build_parser(extra_commands: Sequence[CommandRegistrar]) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="partsight", description="Real-time human parsing into body parts.")
    parser.add_argument("--version", action="version", version=f"partsight {version()}")
    commands = parser.add_subparsers(dest="command")

    process = commands.add_parser("process", help="parse a video, stream, webcam or folder into an annotated MP4")
    process.add_argument("source", help="video file, image folder, webcam index or rtsp:// / http(s):// URL")
    process.add_argument("-o", "--output", required=True, type=mp4_path, help="annotated MP4 to write (NAME.mp4)")
    process.add_argument("--metrics", type=output_file, help="JSONL file: one line per frame")
    process.add_argument("--labels-dir", type=output_folder,
                         help="folder for label PNGs (%%06d.png, class ids as pixel values)")
    process.add_argument("--size", type=frame_size, help="fit frames into WxH before parsing, aspect kept (black bars), e.g. 640x480")
    max_side_option(process, None)
    parse_side_option(process)
    fps_option(process)
    realtime_option(process)
    process.add_argument("--frames", type=positive_int, help="stop after this many frames")
    process.add_argument("--loop", action="store_true", help="start a video file again at its end (with --frames)")
    process.add_argument("--no-audio", action="store_true", help="leave the source's audio out of the MP4")
    process.add_argument("--x264-preset", choices=X264_PRESETS, default=X264_PRESETS[0],
                         help="libx264's speed preset for the MP4 (default %(default)s); ultrafast encodes a "
                              "1080x1920 frame in about half the CPU time, its file about 2.7 times as large")
    readout_option(process)
    model_options(process)
    people_options(process)
    smoothing_option(process)
    stage_threads_option(process)
    fitness_options(process)
    process.set_defaults(handler=_process)

    add_bench_commands(commands)
    add_pose_quality_command(commands)
    add_eval_commands(commands)
    add_batch_command(commands)

    weights = commands.add_parser("weights", help="list, verify or fetch model weights")
    weights_commands = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    weights_commands.add_parser("list", help="every model: licence, present or missing, path").set_defaults(handler=_weights_list)
    weights_commands.add_parser("verify", help="sha256 of every present file").set_defaults(handler=_weights_verify)
    fetch = weights_commands.add_parser("fetch", help="download a model's weights into the cache")
    fetch.add_argument("name", choices=sorted(weight_files()))
    fetch.set_defaults(handler=_weights_fetch)

    add_serve_commands(commands)
    for register in extra_commands:
        register(commands)
    return parser


def _process(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from realtime.analysis.summary import summary_table
    from realtime.config import config_from_args
    from realtime.job import JobOutputs, run_job, unreadable_words
    from realtime.render import plural

    if args.loop:
        refuse_endless(args.frames, "--loop", "a looped file")
    refuse_angles_without_exercise(args)
    config = config_from_args(args)
    outputs = JobOutputs(video=args.output, metrics=args.metrics, summary=args.summary,
                         labels_dir=args.labels_dir, audio=not args.no_audio, readout=args.readout,
                         preset=args.x264_preset)
    progress = None

    def on_start(info) -> None:
        nonlocal progress
        if info.note:
            print(info.note)
        if args.fps is not None and info.own_rate:
            note_fps_kept(f"{info.name} keeps its own {f'{info.fps:.4g} fps' if info.fps else 'rate'}")
        if info.live and (for_files := [name for name, given in (("--loop", args.loop), ("--realtime", args.realtime))
                                        if given]):
            note_live_ignores(for_files, info.name)
        progress = tqdm(total=args.frames or info.frame_count, unit="frame", desc="processing", file=sys.stderr,
                        dynamic_ncols=True,
                        disable=not sys.stderr.isatty() and os.environ.get("PARTSIGHT_PROGRESS") != "1")

    def on_result(result) -> None:
        progress.update(1)
        progress.set_postfix(fps=f"{result.fps:.1f}", refresh=False)

    def on_status(status, info) -> None:  # a live source reconnecting: say so, once per attempt
        print(f"partsight: warning: {one_line(status)}" if status
              else f"partsight: reconnected to {one_line(info.name)}", file=sys.stderr)

    try:
        job = run_job(config, outputs, on_start=on_start, on_result=on_result, on_status=on_status)
    finally:
        if progress is not None:
            progress.close()
    frames = job.frames
    summary = f"wrote {args.output}: {plural(frames, 'frame')} in {job.seconds:.1f} s " \
              f"({frames / max(job.seconds, 1e-9):.1f} fps)"
    if job.size_note:
        summary += f", {job.size_note}"
    if job.dropped:
        summary += f", {plural(job.dropped, 'frame')} dropped (the processing fell behind the source)"
    if args.metrics:
        summary += f", metrics {args.metrics}"
    if args.labels_dir:
        summary += f", labels {args.labels_dir}"
        if job.labels_removed:
            summary += f" (its {plural(job.labels_removed, 'label PNG')} of an earlier run removed first)"
    kept = f"the {plural(frames, 'frame')} before it {'is' if frames == 1 else 'are'} in {args.output}" if frames \
        else "no frame was written"
    if job.recording_failed and frames:  # frames handed to the encoder may not have reached a full disk
        kept = f"the recording stopped after {plural(frames, 'frame')}: {args.output} plays those that reached the disk"
    if job.interrupted:  # first: what follows is what the run did until then
        print(f"partsight: interrupted ({one_line(kept)})", file=sys.stderr)
    if frames:  # else the MP4 is not kept, and the error or interruption says so
        print(summary)
        print(job.audio)
    if job.summary is not None:
        print(summary_table(job.summary))
        if args.summary is not None and job.summary_error is None:
            print(f"summary {args.summary}")
    if job.summary_error:
        raise CliError(f"{job.error} ({kept}); {job.summary_error}" if job.error else job.summary_error)
    if job.interrupted:
        return exit_status(job.stop_signal)
    if job.error:
        raise CliError(f"{job.error} ({kept})")
    if frames == 0:
        raise CliError(f"{job.source.name} gave no frames")
    if job.skipped:
        raise CliError(f"{unreadable_words(job.skipped)}; the other "
                       f"{plural(frames, 'frame')} {'is' if frames == 1 else 'are'} in {args.output}")
    return 0


def _weights_folder_state(folder: Path) -> str | None:
    """Why the weights folder `folder` holds no files: it does not exist, or it is not a folder;
    None when it is a folder."""
    if folder.is_dir():
        return None
    return "is not a folder" if folder.exists() else "does not exist"


def _refuse_weights_folder(folder: Path, *, may_be_absent: bool = False) -> None:
    """CliError naming `folder`'s state unless it is a folder (or, with `may_be_absent`, does not
    exist yet)."""
    from realtime import weights as weights_cache

    state = _weights_folder_state(folder)
    if state and not (may_be_absent and state == "does not exist"):
        raise CliError(f"the weights folder {folder} {state} (set {weights_cache.WEIGHTS_DIR_ENV} to the folder "
                       "holding the weights)")


def _weights_list(args: argparse.Namespace) -> int:
    from realtime import weights as weights_cache

    folder = weights_cache.weights_dir()
    state = _weights_folder_state(folder)
    print(f"weights folder: {folder}{f' ({state})' if state else ''}  (set {weights_cache.WEIGHTS_DIR_ENV} to change)")
    rows = [("model", "licence", "status", "path")]
    for name, (licence, file) in weight_files().items():
        status, detail = weights_cache.cached_status(file)
        path = weights_cache.cached_path(file)
        rows.append((name, licence, status, f"{path} ({detail})" if detail else str(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    return 0


def _weights_verify(args: argparse.Namespace) -> int:
    from realtime import weights as weights_cache
    from realtime.render import plural

    folder = weights_cache.weights_dir()
    _refuse_weights_folder(folder)
    files = list({file.filename: file for _licence, file in weight_files().values()}.values())
    reports = [weights_cache.verify(file) for file in files]
    checked = [report for report in reports if report.status != "missing"]
    if not checked:
        print(f"nothing to verify: none of the {plural(len(files), 'weights file')} is in {folder} "
              "(see 'partsight weights list')")
        return 0
    for report in checked:
        line = f"{report.status:9} {report.path}"
        print(line + (f": {report.detail}" if report.detail else ""))
    counts = ", ".join(f"{sum(report.status == status for report in checked)} {status}"
                       for status in ("ok", "mismatch", "unpinned"))
    print(f"checked {len(checked)} of {plural(len(files), 'weights file')} in {folder}: {counts}; "
          f"{len(files) - len(checked)} missing")
    bad = sum(report.status == "mismatch" for report in checked)
    if bad:
        raise CliError(f"{bad} weights file(s) failed the sha256 check")
    return 0


def _weights_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from realtime import weights as weights_cache

    _licence, file = weight_files()[args.name]
    _refuse_weights_folder(weights_cache.weights_dir(), may_be_absent=True)
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=file.filename, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        path = weights_cache.fetch(file, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"{args.name}: {path}")
    return 0
