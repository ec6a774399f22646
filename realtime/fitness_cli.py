"""`process --exercise ...`: the command-line options of the fitness analysis, its summary, and
the `pose-quality` command."""
from __future__ import annotations

from realtime.analysis.angles import ANGLE_MODES
from realtime.config import default

import argparse
import json
from pathlib import Path
from typing import Any

from realtime.build import Stages
from realtime.cli_options import fps_option, model_options, smoothing_option, warning_field
from realtime.metrics import SUMMARY_SCHEMA
from realtime.models.blazepose import POSE_SOURCES
from realtime.sources import SourceInfo


def fitness_options(command: argparse.ArgumentParser, *, summary: bool = True) -> None:
    """--exercise and its settings, --pose, --angles; --summary (a file to write) with `summary`."""
    from realtime.analysis.exercises import PRESETS

    group = command.add_argument_group("fitness analysis")
    group.add_argument("--exercise", help=f"count repetitions: {', '.join(PRESETS)} or custom "
                                          "(with --joint, --start-deg, --turn-deg)")
    if summary:
        group.add_argument("--summary", help="write the repetition summary JSON here (needs --exercise)")
    group.add_argument("--joint", action="append",
                       help="custom exercise: a joint to watch, e.g. left_knee (repeat for both sides)")
    group.add_argument("--start-deg", type=float, help="custom exercise: angle of the start position")
    group.add_argument("--turn-deg", type=float, help="custom exercise: angle a repetition must reach")
    pose_option(group, "auto")
    group.add_argument("--angles", default=default("angles"), choices=ANGLE_MODES,
                       help="3d: joint angles from BlazePose's world landmarks (metres) when the pose source "
                            "gives them, else the 2-D image-plane angles; 2d: always the image plane "
                            f"(default {default('angles')})")


def pose_option(group, default: str) -> None:
    group.add_argument("--pose", default=default, choices=POSE_SOURCES,
                       help="keypoints for the angles: the parser's own, blazepose-torch (BlazePose in PyTorch "
                            "from the weights cache, no mediapipe), blazepose (the mediapipe wheel, a test "
                            "reference), or auto = blazepose-torch when an exercise is counted, else the "
                            f"parser's (default {default})")


def report_fitness(stages: Stages, summary_path: str | None, info: SourceInfo) -> dict[str, Any] | None:
    """Prints the repetition table and writes the summary JSON (with the source's name and the
    frame rate its times use); None without an exercise."""
    if not stages.analysers:
        return None
    from realtime.analysis.summary import summary_table

    summary = {"schema": SUMMARY_SCHEMA, **stages.analysers[0].summary()}
    summary["pose_source"] = stages.pose_source
    summary["source"] = {"name": info.name, "fps": info.fps, "note": info.note}
    print(summary_table(summary))
    if summary_path is not None:
        path = Path(summary_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary {path}")
    return summary


def add_pose_quality_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    command = commands.add_parser("pose-quality", help="how usable the keypoints are for angles on a clip; prints JSON")
    command.add_argument("source", help="video file or image folder")
    pose_option(command, "parser")
    command.add_argument("--frames", type=int, help="stop after this many frames")
    fps_option(command)
    # The raw keypoints of one person unless asked otherwise: what the parser itself gives.
    model_options(command, max_people=1)
    smoothing_option(command, 0.0)
    command.set_defaults(handler=_pose_quality)
    return command


def _pose_quality(args: argparse.Namespace) -> int:
    import threading

    from realtime.analysis.pose_quality import pose_quality
    from realtime.build import build_pipeline
    from realtime.config import config_from_args

    config = config_from_args(args)
    pipeline = build_pipeline(config)
    keypoints = []
    enough = threading.Event()

    def on_result(result) -> None:
        keypoints.append(result.parse.keypoints)
        if args.frames and len(keypoints) >= args.frames:
            enough.set()

    pipeline.subscribe(on_result)
    try:
        info = pipeline.start()
        while not pipeline.wait(0.2) and not enough.is_set():
            pass
    finally:
        pipeline.stop()
    if not keypoints:
        raise RuntimeError(pipeline.error or f"{info.name} gave no frames")
    report = {"source": info.name, "model": pipeline.stats.model, "pose": args.pose,
              **pose_quality(keypoints[: args.frames] if args.frames else keypoints), **warning_field(pipeline.error)}
    print(json.dumps(report))
    return 0
