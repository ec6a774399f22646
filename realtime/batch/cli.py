"""`partsight batch INPUTS... --out DIR`: `process` over many inputs on a Ray cluster (the
`cluster` extra), with the options of `process`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from realtime.cli_options import (
    fps_option,
    frame_size,
    max_side_option,
    model_options,
    note_fps_kept,
    people_options,
    positive_float,
    positive_int,
    readout_option,
    smoothing_option,
)
from realtime.fitness_cli import fitness_options, refuse_angles_without_exercise
from realtime.logs import EXIT_ERROR, exit_status

NEEDS_RAY = 'batch needs Ray: pip install "partsight[cluster]" (or: pip install "ray[default]")'


def add_batch_command(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch", help="process many videos on a Ray cluster (local, or --ray-address), resumable",
        description="Each input's outputs are those of `process` with the same options: DIR/<name>/<name>.mp4, "
                    "<name>.jsonl, <name>.summary.json with an exercise, labels/ with --labels-dir; DIR/manifest.jsonl "
                    "gets one line per input as it finishes. Running the same command again skips the inputs done.")
    batch.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="video files, folders (every video inside, recursively), glob patterns, URLs, or "
                            "manifests: .txt (one path or URL per line) or .csv (a path column, optional exercise)")
    batch.add_argument("--out", required=True, type=Path, metavar="DIR",
                       help="output folder (on a cluster: one every node sees at the same path)")
    batch.add_argument("--labels-dir", action="store_true",
                       help="also write each input's label PNGs into DIR/<name>/labels/")
    batch.add_argument("--size", type=frame_size, help="fit frames into WxH before parsing, aspect kept (black bars), e.g. 640x480")
    max_side_option(batch, None)
    fps_option(batch)
    batch.add_argument("--frames", type=positive_int, help="stop each input after this many frames")
    batch.add_argument("--no-audio", action="store_true", help="leave the sources' audio out of the MP4s")
    readout_option(batch)
    model_options(batch)
    people_options(batch)
    smoothing_option(batch)
    fitness_options(batch, summary=False)
    cluster = batch.add_argument_group("cluster")
    cluster.add_argument("--ray-address", metavar="ADDRESS",
                         help="an existing Ray cluster, e.g. 10.0.0.5:6379 (default: $RAY_ADDRESS, else a new "
                              "local one on this machine's cores)")
    cluster.add_argument("--workers", type=positive_int,
                         help="worker actors, each with the model loaded once (default: what the cluster's CPUs "
                              "and GPUs hold)")
    cluster.add_argument("--gpus-per-worker", type=positive_float, default=0.0, metavar="F",
                         help="GPU share of each worker, e.g. 0.25: four workers per GPU (default 0: CPU)")
    cluster.add_argument("--threads-per-worker", type=positive_int, default=1, metavar="N",
                         help="CPU threads of each worker's PyTorch and OpenCV, and the CPUs it reserves (default 1)")
    cluster.add_argument("--force", action="store_true", help="redo every input, also those already done")
    batch.set_defaults(handler=_batch)


def _batch(args: argparse.Namespace) -> int:
    from realtime.batch.inputs import expand_inputs
    from realtime.config import OptionsError, config_from_args
    from realtime.recorder import check_writable, write_problem
    from realtime.sources import keeps_own_rate

    refuse_angles_without_exercise(args)
    config = config_from_args(args)
    if any(not spec.strip() for spec in args.inputs):  # Path("") is the current folder
        raise OptionsError("an INPUT is empty: give a video file, folder, glob pattern, URL or manifest")
    try:  # found before Ray starts, not after; created (by the driver) only once Ray runs
        check_writable(args.out, folder=True)
    except OSError as exc:
        return _error(f"--out: cannot create the folder {args.out}: {write_problem(args.out, exc)}")
    inputs = expand_inputs(args.inputs, exclude=args.out.absolute())
    if args.fps is not None and (kept := sum(keeps_own_rate(item.source) for item in inputs)):
        note_fps_kept(f"{kept} input(s) (videos, streams) keep their own rates")
    try:
        from realtime.batch import driver
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "ray":
            raise
        return _error(NEEDS_RAY)
    options = driver.BatchOptions(
        out=args.out.absolute(), config=config, ray_address=args.ray_address, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker, threads_per_worker=args.threads_per_worker, force=args.force,
        labels=args.labels_dir, audio=not args.no_audio, readout=args.readout, progress=driver.progress_wanted())
    try:
        report = driver.run_batch(inputs, options)
    except driver.BatchError as exc:
        return _error(str(exc))
    print(driver.result_table(report))
    if (options.out / "manifest.jsonl").exists():  # not when Ctrl-C came before any input was done
        print(f"manifest {options.out / 'manifest.jsonl'}")
    if report.interrupted:
        print(f"partsight: interrupted: {len(report.unfinished)} input(s) unfinished, their partial outputs "
              "removed; run the same command again to finish them", file=sys.stderr)
        return exit_status(report.stop_signal)
    failed = report.count("failed")
    if failed:
        return _error(f"{failed} of {len(report.lines)} inputs failed (see the table and the manifest)")
    return 0


def _error(message: str) -> int:
    print(f"partsight: error: {message}", file=sys.stderr)
    return EXIT_ERROR
