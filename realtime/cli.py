"""Command line: `partsight process|bench|bench-parser|bench-model|pose-quality|eval|weights`, and
`serve|bench-serve` (registered by realtime.serve.cli, FastAPI imported only when they run). The
window's `gui` command is registered by gui/ (`gui.cli`), which the `partsight` script and main.py
run; the engine never imports the GUI."""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from realtime.cli_options import (
    fps_option,
    warning_field,
    max_side_option,
    model_options,
    non_negative_int,
    positive_int,
    smoothing_option,
)
from realtime.eval_cli import add_eval_commands
from realtime.fitness_cli import add_pose_quality_command, fitness_options
from realtime.logs import configure_logging
from realtime.models.registry import DEFAULT_MODEL, MODEL_SPECS, weight_files
from realtime.serve.cli import add_serve_commands

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

log = logging.getLogger(__name__)

CommandRegistrar = Callable[[argparse._SubParsersAction], None]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def main(argv: list[str] | None = None, *, extra_commands: Sequence[CommandRegistrar] = (),
         default_command: str | None = None) -> int:
    """Runs one command. `extra_commands` add subcommands (gui/ adds `gui`); without a command,
    `default_command` runs (the window) or the usage is shown. Failures print one line (the
    traceback goes to the log file) and return 1."""
    parser = _build_parser(extra_commands)
    args = parser.parse_args(argv)
    if args.command is None:
        if default_command is None:
            parser.print_usage(sys.stderr)
            return 2
        args = parser.parse_args([default_command, *(argv or [])])
    log_file = configure_logging()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("partsight: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure reaches the user as one line, not a traceback
        if os.environ.get("PARTSIGHT_DEBUG"):
            raise
        from realtime.sources import redact_url

        log.exception("command %s failed", args.command)
        message = redact_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        detail = f" (details in {log_file})" if not isinstance(exc, (CliError, ValueError)) and log_file else ""
        print(f"partsight: error: {message}{detail}", file=sys.stderr)
        return EXIT_ERROR


def _build_parser(extra_commands: Sequence[CommandRegistrar]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="partsight", description="Real-time human parsing into body parts.")
    commands = parser.add_subparsers(dest="command")

    process = commands.add_parser("process", help="parse a video, stream, webcam or folder into an annotated MP4")
    process.add_argument("source", help="video file, image folder, webcam index or rtsp:// / http(s):// URL")
    process.add_argument("-o", "--output", required=True, help="annotated MP4 to write")
    process.add_argument("--metrics", help="JSONL file: one line per frame")
    process.add_argument("--labels-dir", help="folder for label PNGs (%%06d.png, class ids as pixel values)")
    process.add_argument("--size", help="scale frames to WxH before parsing, e.g. 640x480")
    max_side_option(process, None)
    fps_option(process)
    process.add_argument("--realtime", action="store_true", help="pace a file like a camera and drop late frames")
    process.add_argument("--frames", type=positive_int, help="stop after this many frames")
    process.add_argument("--loop", action="store_true", help="start a video file again at its end (with --frames)")
    process.add_argument("--no-audio", action="store_true", help="leave the source's audio out of the MP4")
    model_options(process)
    smoothing_option(process)
    fitness_options(process)
    process.set_defaults(handler=_process)

    bench = commands.add_parser("bench", help="measure end-to-end speed on a source; prints JSON")
    bench.add_argument("source")
    bench.add_argument("--frames", type=positive_int, default=100, help="frames measured after the warm-up")
    bench.add_argument("--size", help="scale frames to WxH, e.g. 640x480")
    max_side_option(bench, None)
    fps_option(bench)
    bench.add_argument("--warmup", type=non_negative_int, default=5)
    bench.add_argument("--record", action="store_true", help="also encode the annotated video (to a temp file)")
    bench.add_argument("--compare-max-people", type=positive_int, metavar="N",
                       help="instead: frame time with --max-people N against 1, interleaved on the same frames")
    model_options(bench)
    smoothing_option(bench)
    bench.set_defaults(handler=_bench)

    bench_parser = commands.add_parser("bench-parser", help="torch parser vs onnxruntime at three sizes; prints JSON")
    bench_parser.add_argument("--model", default=DEFAULT_MODEL, choices=[n for n, s in MODEL_SPECS.items() if s.family == "bodypix"])
    bench_parser.add_argument("--frame", help="image or video whose first frame is the input (default: random)")
    bench_parser.add_argument("--repeats", type=int, default=30)
    bench_parser.set_defaults(handler=_bench_parser)

    bench_model = commands.add_parser("bench-model", help="M2FP/SCHP: reference-style path vs the fast path on one frame; prints JSON")
    bench_model.add_argument("--model", default="m2fp-lip", choices=[n for n, s in MODEL_SPECS.items() if s.family in ("m2fp", "schp")])
    bench_model.add_argument("--weights", help="checkpoint file (default: the parity fixtures' deterministic weights)")
    bench_model.add_argument("--frame", help="image or video whose first frame is the input (default: random)")
    bench_model.add_argument("--size", help="scale the frame to WxH first, e.g. 473x473")
    bench_model.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    bench_model.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype of the fast path")
    bench_model.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    bench_model.add_argument("--repeats", type=int, default=5)
    bench_model.add_argument("--warmup", type=int, default=1)
    bench_model.set_defaults(handler=_bench_model)

    add_pose_quality_command(commands)
    add_eval_commands(commands)

    weights = commands.add_parser("weights", help="list, verify or fetch model weights")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
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
    from realtime.job import JobOutputs, run_job

    if args.loop and not args.frames:
        raise CliError("--loop needs --frames: a looped file never ends")
    config = config_from_args(args)
    outputs = JobOutputs(video=args.output, metrics=args.metrics, summary=args.summary,
                         labels_dir=args.labels_dir, audio=not args.no_audio)
    progress = None

    def on_start(info) -> None:
        nonlocal progress
        if info.note:
            print(info.note)
        progress = tqdm(total=args.frames or info.frame_count, unit="frame", desc="processing", file=sys.stderr,
                        dynamic_ncols=True,
                        disable=not sys.stderr.isatty() and os.environ.get("PARTSIGHT_PROGRESS") != "1")

    def on_result(result) -> None:
        progress.update(1)
        progress.set_postfix(fps=f"{result.fps:.1f}", refresh=False)

    def on_status(status, info) -> None:  # a live source reconnecting: say so, once per attempt
        print(f"partsight: warning: {status}" if status else f"partsight: reconnected to {info.name}",
              file=sys.stderr)

    try:
        job = run_job(config, outputs, on_start=on_start, on_result=on_result, on_status=on_status)
    finally:
        if progress is not None:
            progress.close()
    frames = job.frames
    summary = f"wrote {args.output}: {frames} frames in {job.seconds:.1f} s ({frames / max(job.seconds, 1e-9):.1f} fps)"
    if args.metrics:
        summary += f", metrics {args.metrics}"
    if args.labels_dir:
        summary += f", labels {args.labels_dir}"
    print(summary)
    print(job.audio)
    if job.summary is not None:
        print(summary_table(job.summary))
        if args.summary is not None:
            print(f"summary {args.summary}")
    if job.error:
        raise CliError(f"{job.error} (the {frames} frames before it are in {args.output})")
    if frames == 0:
        raise CliError(f"{job.source.name} gave no frames")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from realtime.build import build_pipeline
    from realtime.config import config_from_args

    # the bench counts frames itself (warm-up + measured) and keeps one frame decoded ahead
    config = replace(config_from_args(args), frame_limit=None, buffer_frames=1)
    if args.compare_max_people:
        return _bench_max_people(args, config)
    pipeline = build_pipeline(config)
    results = []
    enough = threading.Event()
    wanted = args.frames + args.warmup

    def on_result(result) -> None:
        results.append((time.perf_counter(), result.timings_ms, result.latency_ms))
        if len(results) >= wanted:
            enough.set()

    pipeline.subscribe(on_result)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = pipeline.start_recording(Path(tmp) / "bench.mp4") if args.record else None
        try:
            info = pipeline.start()
            while not enough.is_set() and not pipeline.wait(0.1):
                pass
        finally:
            pipeline.stop()
        measured = results[args.warmup:wanted]
        if len(measured) < 2:
            raise CliError(pipeline.error or f"{info.name} gave only {len(results)} frames; "
                                             f"need more than --warmup {args.warmup}")
        wall_s = measured[-1][0] - results[args.warmup - 1][0] if args.warmup else measured[-1][0] - measured[0][0]
        latencies = sorted(m[2] for m in measured)
        measured_stages = list(dict.fromkeys(name for m in measured for name in m[1]))  # every stage that ran
        stages = measured_stages + (["encode"] if recorder else [])
        per_stage = {s: round(statistics.mean(m[1].get(s, 0.0) for m in measured), 2) for s in measured_stages}
        if recorder:
            per_stage["encode"] = round(recorder.encode_ms, 2)
        resolution = pipeline.stats.resolution
        network_input = getattr(pipeline.parser, "input_size", None)
        report = {
            "source": info.name,
            "model": pipeline.stats.model,
            "device": pipeline.stats.device,
            "input_size": "x".join(map(str, resolution)) if resolution else None,
            "network_input": "x".join(map(str, network_input(resolution))) if network_input and resolution else None,
            "frames": len(measured),
            "fps": round(len(measured) / wall_s if args.warmup else (len(measured) - 1) / wall_s, 2),
            "latency_ms": {"p50": round(_percentile(latencies, 50), 2), "p95": round(_percentile(latencies, 95), 2)},
            "stages_ms": {s: per_stage[s] for s in stages},
            **warning_field(pipeline.error),
        }
    print(json.dumps(report))
    return 0


def _bench_max_people(args: argparse.Namespace, config) -> int:
    from dataclasses import replace

    from realtime.benchmarks import bench_max_people
    from realtime.build import build_pipeline
    from realtime.sources import open_source

    baseline = build_pipeline(replace(config, max_people=1))
    candidate = build_pipeline(replace(config, max_people=args.compare_max_people))
    source = open_source(config.source, size=config.size, max_side=config.max_side)
    info = source.start()
    frames = []
    try:
        while len(frames) < args.frames + args.warmup and (frame := source.read(timeout_s=10)) is not None:
            frames.append(frame)
    finally:
        source.stop()
    try:
        if len(frames) <= args.warmup:
            raise CliError(f"{info.name} gave only {len(frames)} frames; need more than --warmup {args.warmup}")
        report = {
            "source": info.name,
            "model": baseline.stats.model,
            "device": baseline.stats.device,
            "input_size": "x".join(map(str, frames[0].size)),
            "max_people": [1, args.compare_max_people],
            **bench_max_people(baseline, candidate, frames, warmup=args.warmup),
        }
    finally:
        baseline.stop()
        candidate.stop()
    print(json.dumps(report))
    return 0


def _percentile(sorted_values: list[float], q: float) -> float:
    index = (len(sorted_values) - 1) * q / 100
    low = int(index)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (index - low)


def _bench_parser(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime import weights as weights_cache
    from realtime.benchmarks import bench_parser
    from realtime.models import get_spec, load_parser

    parser = load_parser(args.model, device="cpu")
    frame = first_frame(args.frame) if args.frame else np.random.default_rng(0).integers(0, 256, (481, 641, 3), dtype=np.uint8)
    path = weights_cache.resolve(get_spec(args.model).weights)
    print(json.dumps(bench_parser(parser, str(path), frame, repeats=args.repeats)))
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime.models.reference_vs_fast import bench_model, resized_frame
    from realtime.sources import parse_size

    frame = first_frame(args.frame) if args.frame else np.random.default_rng(0).integers(0, 256, (512, 384, 3), dtype=np.uint8)
    print(json.dumps(bench_model(args.model, resized_frame(frame, parse_size(args.size)), weights=args.weights,
                                 device=args.device, dtype=args.dtype, threads=args.threads,
                                 repeats=args.repeats, warmup=args.warmup)))
    return 0


def first_frame(path: str):
    """The first frame of an image, video or stream as H x W x 3 uint8 RGB; CliError if none."""
    from realtime.sources import open_source

    source = open_source(path)
    source.start()
    try:
        frame = source.read(timeout_s=10)
    finally:
        source.stop()
    if frame is None:
        raise CliError(f"{path} gave no frame")
    return frame.image


def _weights_list(args: argparse.Namespace) -> int:
    from realtime import weights as weights_cache

    print(f"weights folder: {weights_cache.weights_dir()}  (set {weights_cache.WEIGHTS_DIR_ENV} to change)")
    rows = [("model", "licence", "status", "path")]
    for name, (licence, file) in weight_files().items():
        path = weights_cache.cached_path(file)
        rows.append((name, licence, "present" if path.is_file() else "missing", str(path)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))
    return 0


def _weights_verify(args: argparse.Namespace) -> int:
    from realtime import weights as weights_cache

    bad = 0
    seen = set()
    for _licence, file in weight_files().values():
        if file.filename in seen:
            continue
        seen.add(file.filename)
        report = weights_cache.verify(file)
        if report.status == "missing":
            continue
        bad += report.status == "mismatch"
        line = f"{report.status:9} {report.path}"
        print(line + (f": {report.detail}" if report.detail else ""))
    if bad:
        raise CliError(f"{bad} weights file(s) failed the sha256 check")
    return 0


def _weights_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from realtime import weights as weights_cache

    _licence, file = weight_files()[args.name]
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
