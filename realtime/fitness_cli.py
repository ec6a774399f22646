"""`process --exercise ...`: the command-line options of the fitness analysis, and the
`pose-quality` command."""
from __future__ import annotations

import argparse
import json
import math

from realtime.analysis.angles import ANGLE_MODES
from realtime.analysis.exercises import JOINT_ANGLE_RANGE_DEG
from realtime.config import OptionsError, default

from realtime.cli_options import (
    fps_option,
    model_options,
    output_file,
    refuse_endless,
    refuse_unreadable,
    smoothing_option,
    unreadable_field,
    warning_field,
)
from realtime.models.blazepose import POSE_SOURCES


def fitness_options(command: argparse.ArgumentParser, *, summary: bool = True) -> None:
    """--exercise and the custom exercise's options, --pose, --angles; with `summary`, --summary
    PATH (a command that names its outputs itself, such as batch, goes without)."""
    from realtime.analysis.angles import JOINTS

    group = command.add_argument_group("fitness analysis")
    exercise_option(group, "count repetitions", custom=True)
    if summary:
        group.add_argument("--summary", type=output_file,
                           help="write the repetition summary JSON here (needs --exercise)")
    group.add_argument("--joint", action="append", choices=list(JOINTS), metavar="JOINT",
                       help="custom exercise: a joint to watch, e.g. left_knee (repeat for both sides)")
    group.add_argument("--start-deg", type=joint_angle, help="custom exercise: angle of the start position (0-180)")
    group.add_argument("--turn-deg", type=joint_angle, help="custom exercise: angle a repetition must reach (0-180)")
    pose_option(group, "auto")
    angles_option(group, given_only=True)


def exercise_option(command: argparse._ActionsContainer, what: str, *, custom: bool) -> None:
    """--exercise: a preset (realtime.analysis.exercises.PRESETS), or with `custom` also "custom"
    (fitness_options' --joint, --start-deg, --turn-deg); its help is `what` and the names."""
    from realtime.analysis.exercises import PRESETS

    names = [*PRESETS, *(["custom"] if custom else [])]
    listed = f"{', '.join(names[:-1])} or {names[-1]}" + (" (with --joint, --start-deg, --turn-deg)" if custom else "")
    command.add_argument("--exercise", choices=names, metavar="EXERCISE", help=f"{what}: {listed}")


def refuse_angles_without_exercise(args: argparse.Namespace) -> None:
    """OptionsError for --angles given to a command of fitness_options without --exercise: the
    angles are measured for the repetitions only (as --summary or --joint need --exercise)."""
    if args.angles is not None and args.exercise is None:
        raise OptionsError("--angles needs --exercise: the joint angles are measured for the repetitions")


def joint_angle(text: str) -> float:
    """argparse type for a custom exercise's threshold: a joint angle in degrees
    (exercises.JOINT_ANGLE_RANGE_DEG)."""
    low, high = JOINT_ANGLE_RANGE_DEG
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected a joint angle from {low:g} to {high:g} degrees, not '{text}'")
    return value


def angles_option(group, *, given_only: bool = False) -> None:
    """--angles; `given_only`: None unless given (config_from_args then keeps the default), so a
    command can tell whether it was."""
    group.add_argument("--angles", default=None if given_only else default("angles"), choices=ANGLE_MODES,
                       help="3d: joint angles from BlazePose's world landmarks (metres) for each person who has "
                            "them (needs --pose auto or blazepose; a person BlazePose does not follow gets the 2-D "
                            f"image-plane angles); 2d: always the image plane (default {default('angles')})")


def pose_option(group, default: str) -> None:
    group.add_argument("--pose", default=default, choices=POSE_SOURCES,
                       help="where the keypoints come from: auto = blazepose-torch (BlazePose in PyTorch from "
                            "the weights cache, no mediapipe; several people, 33 landmarks each, its segmentation "
                            "feeds the person mask), parser (the parser's own keypoints, no BlazePose: the "
                            "fastest), or blazepose (the mediapipe wheel, a test reference) "
                            f"(default {default})")


def add_pose_quality_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    command = commands.add_parser("pose-quality", help="how usable the keypoints are for angles on a clip; prints JSON")
    command.add_argument("source", help="video file, image folder, webcam index or rtsp:// / http(s):// URL (a "
                                        "webcam or live stream needs --frames)")
    pose_option(command, "auto")
    command.add_argument("--frames", type=int, help="stop after this many frames (needed for a webcam or live stream)")
    fps_option(command)
    # One person's raw keypoints (no smoothing) unless asked otherwise.
    model_options(command, max_people=1)
    smoothing_option(command, 0.0)
    command.set_defaults(handler=_pose_quality)
    return command


def _pose_quality(args: argparse.Namespace) -> int:
    import threading

    from realtime.analysis.pose_quality import pose_quality
    from realtime.build import build_run
    from realtime.config import config_from_args

    config = config_from_args(args)
    stages, pipeline = build_run(config)
    keypoints = []
    enough = threading.Event()

    def on_result(result) -> None:
        keypoints.append(result.parse.keypoints)
        if args.frames and len(keypoints) >= args.frames:
            enough.set()

    pipeline.subscribe(on_result)
    try:
        info = pipeline.start()
        if info.live:
            refuse_endless(args.frames, info.name, "a live source")
        source = pipeline.source  # the pipeline lets go of it at the frame limit
        while not pipeline.wait(0.2) and not enough.is_set():
            pass
    finally:
        pipeline.stop()
    if not keypoints:
        raise RuntimeError(pipeline.error or f"{info.name} gave no frames")
    measured = keypoints[: args.frames] if args.frames else keypoints
    skipped = source.skipped
    report = {"source": info.name, "model": pipeline.stats.model, "pose": pipeline.stats.pose_source,
              **pose_quality(measured), **warning_field(pipeline.error), **unreadable_field(skipped)}
    print(json.dumps(report))
    refuse_unreadable(skipped, len(measured))
    return 0
