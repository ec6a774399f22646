"""`partsight bench|bench-memory|bench-parser|bench-model`: speed and memory measurements that
print one JSON object each. Figures on a shared machine are noisy: compare settings with
`bench --compare`, which runs them interleaved on the same source, and read the ratios."""
from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Sequence
from dataclasses import replace

from realtime.cli_options import (
    fps_option,
    frame_size,
    frames_between,
    max_side_option,
    model_options,
    parse_side_option,
    non_negative_int,
    people_options,
    positive_float,
    positive_int,
    realtime_option,
    refuse_unreadable,
    smoothing_option,
    stage_threads_option,
    unreadable_field,
    warning_field,
)
from realtime.config import OptionsError
from realtime.fitness_cli import fitness_options, refuse_angles_without_exercise
from realtime.models.backends import BACKEND_CHOICES, BACKENDS
from realtime.models.registry import DEFAULT_MODEL, MODEL_SPECS, SEGMENTER_SPECS

GPU_PARTS = ("bodypix", "blazepose", "m2fp", "schp")  # what `bench-gpu` measures (realtime.benchmarks.bench_gpu)


def add_bench_commands(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="measure end-to-end speed on a source; prints JSON")
    bench.add_argument("source")
    bench.add_argument("--frames", type=frames_between, default=100,
                       help="frames measured after the warm-up (at least 2: a rate is measured between frames)")
    bench.add_argument("--warmup", type=non_negative_int, default=5)
    bench.add_argument("--record", action="store_true", help="also encode the annotated video (to a temp file)")
    bench.add_argument("--compare", nargs=2, metavar=("OPTIONS_A", "OPTIONS_B"),
                       help="instead: two settings, each a quoted list of options applied over the others "
                            "(e.g. --compare \"--backend torch\" \"--backend openvino\", or \"\" \"--realtime\"), run frame "
                            "by frame in "
                            "turn on the same source; prints both and their ratio B / A")
    run_options(bench)
    bench.set_defaults(handler=_bench)

    memory = commands.add_parser("bench-memory", help="resident memory over a long, looped run paced like a "
                                                      "camera, recording to a temp file; prints the curve as JSON")
    memory.add_argument("source")
    memory.add_argument("--seconds", type=positive_float, default=600.0,
                        help="how long to run (default 600); growth needs more than --warmup-seconds")
    memory.add_argument("--interval", type=positive_float, default=10.0, help="seconds between samples (default 10)")
    memory.add_argument("--warmup-seconds", type=positive_float, default=60.0,
                        help="growth is measured from the first sample after this (default 60); a run that "
                             "ends before it has null growth and a 'note' saying so")
    memory.add_argument("--no-record", action="store_true", help="do not encode the annotated video")
    run_options(memory)
    memory.set_defaults(handler=_bench_memory)

    bench_parser = commands.add_parser("bench-parser", help="the parser's forward vs PyTorch, onnxruntime and "
                                                            "OpenVINO on the same graph, at three sizes; prints JSON")
    bench_parser.add_argument("--model", default=DEFAULT_MODEL, choices=[n for n, s in MODEL_SPECS.items() if s.family == "bodypix"])
    bench_parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="the parser's backend (default auto)")
    bench_parser.add_argument("--frame", help="image or video whose first frame is the input (default: random)")
    bench_parser.add_argument("--repeats", type=int, default=30)
    bench_parser.set_defaults(handler=_bench_parser)

    pose_help = ("BlazePose's detector and landmark network (ROI batches, with and without segmentation) and the "
                 "selfie segmenter on each CPU backend, with their agreement; prints JSON")
    bench_pose = commands.add_parser("bench-pose", help=pose_help,
                                     description=f"{pose_help}. In fp32 only (no --dtype): bf16 runs on one backend, "
                                                 "OpenVINO; measure it with bench FILE --compare \"--dtype fp32\" "
                                                 "\"--dtype bf16\".")
    bench_pose.add_argument("frame", help="image or video whose first frame (a picture of a person) is the input")
    bench_pose.add_argument("--size", type=frame_size, default="640x480", help="scale the frame to WxH first (default 640x480)")
    bench_pose.add_argument("--backends", default=",".join(BACKENDS),
                            help=f"comma-separated subset of {','.join(BACKENDS)} (default all; torch always runs: "
                                 "the others are checked against it)")
    bench_pose.add_argument("--repeats", type=positive_int, default=30)
    bench_pose.add_argument("--warmup", type=non_negative_int, default=5)
    bench_pose.add_argument("--quick", action="store_true",
                            help="ROI batches of 1 and 2, two repeats after one warm-up (a check that it runs)")
    bench_pose.set_defaults(handler=_bench_pose)

    bench_gpu = commands.add_parser("bench-gpu", help="the GPU figures of `make gpu-check`: BodyPix single and "
                                                      "batched streams, BlazePose ROI batches, M2FP / SCHP "
                                                      "fp32/fp16/bf16; prints JSON")
    bench_gpu.add_argument("--device", default="cuda", help="cuda (default), or cpu to try it here")
    bench_gpu.add_argument("--frame", help="image or video whose first frame is the picture (default: random)")
    bench_gpu.add_argument("--parts", default=",".join(GPU_PARTS),
                           help=f"comma-separated subset of {','.join(GPU_PARTS)} (default all)")
    bench_gpu.add_argument("--quick", action="store_true", help="small sizes, two repeats (a trial run on a CPU)")
    bench_gpu.set_defaults(handler=_bench_gpu)

    bench_model = commands.add_parser("bench-model", help="M2FP/SCHP/UniParser/Mask2Former/Human_seg: reference-style "
                                                          "path vs the fast path on one frame; prints JSON")
    bench_model.add_argument("--model", default="m2fp-lip",
                             choices=[n for n, s in MODEL_SPECS.items()
                                      if s.family in ("m2fp", "schp", "uniparser", "mask2former_panoptic")]
                             + list(SEGMENTER_SPECS))
    bench_model.add_argument("--weights", help="checkpoint file (default: the parity fixtures' deterministic weights)")
    bench_model.add_argument("--frame", help="image or video whose first frame is the input (default: random)")
    bench_model.add_argument("--size", type=frame_size, help="scale the frame to WxH first, e.g. 473x473")
    bench_model.add_argument("--internal-size", type=positive_int,
                             help="network input size (the model's own convention; Mask2Former: the short side)")
    bench_model.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    bench_model.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype of the fast path")
    bench_model.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    bench_model.add_argument("--repeats", type=int, default=5)
    bench_model.add_argument("--warmup", type=int, default=1)
    bench_model.set_defaults(handler=_bench_model)


def run_options(command: argparse.ArgumentParser) -> None:
    """The options that shape a run (PipelineConfig fields): what `--compare` settings may hold."""
    command.add_argument("--size", type=frame_size, help="fit frames into WxH, aspect kept (black bars), e.g. 640x480")
    max_side_option(command, None)
    parse_side_option(command)
    fps_option(command)
    model_options(command)
    people_options(command)
    smoothing_option(command)
    realtime_option(command)
    stage_threads_option(command)
    fitness_options(command, summary=False)


def compare_settings_as_values(argv: Sequence[str]) -> list[str]:
    """`argv` with the two settings after bench's `--compare` kept as its values: argparse takes a
    lone word that starts with '-' (`--compare "" "--realtime"`) for an option but one with a space
    in it for a value, so such a word gets a leading space (which shlex.split drops again)."""
    argv = list(argv)
    if "bench" in argv and "--compare" in argv[argv.index("bench"):]:
        at = argv.index("--compare", argv.index("bench")) + 1
        argv[at:at + 2] = [f" {word}" if word.startswith("-") else word for word in argv[at:at + 2]]
    return argv


def _bench(args: argparse.Namespace) -> int:
    from realtime.benchmarks import bench_compare, bench_run
    from realtime.config import config_from_args

    refuse_angles_without_exercise(args)
    # the bench counts frames itself (warm-up + measured), keeps one frame decoded ahead and plays a
    # file again at its end: with --realtime a short clip can end before enough frames are taken
    config = replace(config_from_args(args), frame_limit=None, buffer_frames=1, loop=True)
    if args.compare:
        compare = [options.strip() for options in args.compare]  # without compare_settings_as_values' space
        configs = {name: replace(config_from_args(_with_options(args, options)), frame_limit=None, buffer_frames=1)
                   for name, options in zip("ab", compare)}
        report = bench_compare(configs, frames=args.frames, warmup=args.warmup)
        report["settings"]["a"]["options"], report["settings"]["b"]["options"] = compare
    else:
        report = bench_run(config, frames=args.frames, warmup=args.warmup, record=args.record)
    unreadable = report.pop("unreadable")
    report.update({**warning_field(report.pop("error", None)), **unreadable_field(unreadable)})
    print(json.dumps(report))
    refuse_unreadable(unreadable, report["frames"])
    return 0


def _with_options(args: argparse.Namespace, options: str) -> argparse.Namespace:
    """`args` with the run options in `options` (one shell-quoted string) applied over them;
    ValueError for anything else."""
    settings = argparse.ArgumentParser(prog="bench --compare", add_help=False, exit_on_error=False,
                                       allow_abbrev=False)
    run_options(settings)
    # argparse fills in defaults only for names the namespace lacks: options not given keep args'
    merged = argparse.Namespace(**{name: list(value) if isinstance(value, list) else value
                                   for name, value in vars(args).items()})
    try:
        _, unknown = settings.parse_known_args(shlex.split(options), namespace=merged)
    except (ValueError, argparse.ArgumentError) as exc:
        raise OptionsError(f"--compare '{options}': {exc}") from None
    if unknown:
        raise OptionsError(f"--compare '{options}': {' '.join(unknown)} is not a run option")
    return merged


def _bench_memory(args: argparse.Namespace) -> int:
    from realtime.benchmarks import bench_memory
    from realtime.config import config_from_args

    refuse_angles_without_exercise(args)
    config = replace(config_from_args(args), frame_limit=None, loop=True, pacing="realtime")
    report = bench_memory(config, seconds=args.seconds, interval_s=args.interval, warmup_s=args.warmup_seconds,
                          record=not args.no_record)
    unreadable = report.pop("unreadable")
    report.update({**warning_field(report.pop("error", None)), **unreadable_field(unreadable)})
    print(json.dumps(report))
    refuse_unreadable(unreadable, report["frames"])
    return 0


def _bench_parser(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime.benchmarks import bench_parser
    from realtime.models import load_parser

    parser = load_parser(args.model, device="cpu", backend=args.backend)
    frame = first_frame(args.frame) if args.frame else np.random.default_rng(0).integers(0, 256, (481, 641, 3), dtype=np.uint8)
    print(json.dumps(bench_parser(parser, frame, repeats=args.repeats)))
    return 0


def _bench_pose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from realtime.benchmarks import POSE_BATCHES, bench_pose
    from realtime.models.backends import available_backends
    from realtime.models.reference_vs_fast import resized_frame
    from realtime.sources import parse_size

    backends = tuple(name.strip() for name in args.backends.split(",") if name.strip())
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise OptionsError(f"unknown --backends {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    missing = sorted(set(backends) - set(available_backends()))
    if missing:
        raise ValueError(f"--backends {', '.join(missing)}: not installed here")
    frame = resized_frame(first_frame(args.frame), parse_size(args.size))
    repeats, warmup, batches = (2, 1, POSE_BATCHES[:2]) if args.quick else (args.repeats, args.warmup, POSE_BATCHES)
    report = bench_pose(frame, backends=backends, repeats=repeats, warmup=warmup, batches=batches)
    print(json.dumps({"frame": Path(args.frame).name, "quick": args.quick, **report}))
    return 0


def _bench_gpu(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime.benchmarks import bench_gpu

    parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    unknown = sorted(set(parts) - set(GPU_PARTS))
    if unknown:
        raise OptionsError(f"unknown --parts {', '.join(unknown)}; choose from {', '.join(GPU_PARTS)}")
    frame = first_frame(args.frame) if args.frame else np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    print(json.dumps(bench_gpu(args.device, frame, parts=parts, quick=args.quick)))
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    import numpy as np

    from realtime.models.reference_vs_fast import bench_model, resized_frame
    from realtime.sources import parse_size

    frame = first_frame(args.frame) if args.frame else np.random.default_rng(0).integers(0, 256, (512, 384, 3), dtype=np.uint8)
    print(json.dumps(bench_model(args.model, resized_frame(frame, parse_size(args.size)), weights=args.weights,
                                 device=args.device, dtype=args.dtype, threads=args.threads,
                                 repeats=args.repeats, warmup=args.warmup, internal_size=args.internal_size)))
    return 0


def first_frame(path: str):
    """The first frame (H x W x 3 uint8 RGB) of an image, folder or video; ValueError if none."""
    from realtime.sources import open_source

    source = open_source(path)
    source.start()
    try:
        frame = source.read(timeout_s=10)
    finally:
        source.stop()
    if frame is None:
        raise ValueError(f"{path} gave no frame")
    return frame.image
