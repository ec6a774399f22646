"""`process --exercise ...`: the command-line options of the fitness analysis and its summary."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def fitness_options(command: argparse.ArgumentParser) -> None:
    from realtime.analysis.exercises import PRESETS

    group = command.add_argument_group("fitness analysis")
    group.add_argument("--exercise", help=f"count repetitions: {', '.join(PRESETS)} or custom "
                                          "(with --joint, --start-deg, --turn-deg)")
    group.add_argument("--summary", help="write the repetition summary JSON here (needs --exercise)")
    group.add_argument("--joint", action="append",
                       help="custom exercise: a joint to watch, e.g. left_knee (repeat for both sides)")
    group.add_argument("--start-deg", type=float, help="custom exercise: angle of the start position")
    group.add_argument("--turn-deg", type=float, help="custom exercise: angle a repetition must reach")
    group.add_argument("--pose", default="auto", choices=("auto", "parser", "blazepose"),
                       help="keypoints for the angles: the parser's own, BlazePose (needs mediapipe), "
                            "or auto = BlazePose when installed (default)")


@dataclass
class FitnessSetup:
    stages: list = field(default_factory=list)
    analysers: list = field(default_factory=list)
    summary_path: Path | None = None

    def close(self) -> None:
        """Releases the pose stages (BlazePose's graph threads); call after the pipeline stopped."""
        for stage in self.stages:
            stage.close()

    def report(self) -> dict[str, Any] | None:
        """Prints the repetition table and writes the summary JSON; None without --exercise."""
        if not self.analysers:
            return None
        from realtime.analysis.summary import summary_table

        summary = {"schema": "partsight.summary/1", **self.analysers[0].summary()}
        summary["pose_source"] = self.stages[0].name if self.stages else "parser"
        print(summary_table(summary))
        if self.summary_path is not None:
            self.summary_path.parent.mkdir(parents=True, exist_ok=True)
            self.summary_path.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"summary {self.summary_path}")
        return summary


def fitness_setup(args: argparse.Namespace) -> FitnessSetup:
    """The pose stages and the analyser asked for; ValueError on inconsistent options."""
    from realtime.analysis.exercises import custom_exercise, get_exercise
    from realtime.analysis.fitness import FitnessAnalyser
    from realtime.models.blazepose import pose_stages

    custom_given = [o for o, v in (("--joint", args.joint), ("--start-deg", args.start_deg),
                                   ("--turn-deg", args.turn_deg)) if v is not None]
    if args.exercise is None:
        if args.summary or custom_given:
            raise ValueError(f"{(['--summary'] if args.summary else custom_given)[0]} needs --exercise")
        return FitnessSetup(stages=pose_stages(args.pose) if args.pose == "blazepose" else [])
    if args.exercise == "custom":
        missing = {"--joint", "--start-deg", "--turn-deg"} - set(custom_given)
        if missing:
            raise ValueError(f"--exercise custom needs {', '.join(sorted(missing))}")
        exercise = custom_exercise(args.joint, start_deg=args.start_deg, turn_deg=args.turn_deg)
    else:
        if custom_given:
            raise ValueError(f"{custom_given[0]} is only for --exercise custom")
        exercise = get_exercise(args.exercise)
    return FitnessSetup(stages=pose_stages(args.pose), analysers=[FitnessAnalyser(exercise)],
                        summary_path=Path(args.summary) if args.summary else None)


def add_pose_quality_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    command = commands.add_parser("pose-quality", help="how usable the keypoints are for angles on a clip; prints JSON")
    command.add_argument("source", help="video file or image folder")
    command.add_argument("--pose", default="parser", choices=("parser", "blazepose"),
                         help="the parser's own keypoints (default) or BlazePose (needs mediapipe)")
    command.add_argument("--model", default="bodypix", help="the parser (default bodypix)")
    command.add_argument("--device", default="auto")
    command.add_argument("--frames", type=int, help="stop after this many frames")
    command.set_defaults(handler=_pose_quality)
    return command


def _pose_quality(args: argparse.Namespace) -> int:
    import threading

    from realtime.analysis.pose_quality import pose_quality
    from realtime.models.blazepose import pose_stages
    from realtime.pipeline import Pipeline

    stages = pose_stages(args.pose)
    pipeline = Pipeline(args.source, model=args.model, device=args.device, stages=stages)
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
        for stage in stages:
            stage.close()
    if pipeline.error:
        raise RuntimeError(pipeline.error)
    if not keypoints:
        raise RuntimeError(f"{info.name} gave no frames")
    report = {"source": info.name, "model": pipeline.stats.model, "pose": args.pose,
              **pose_quality(keypoints[: args.frames] if args.frames else keypoints)}
    print(json.dumps(report))
    return 0
