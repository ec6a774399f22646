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

    def report(self) -> dict[str, Any] | None:
        """Prints the repetition table and writes the summary JSON; None without --exercise."""
        if not self.analysers:
            return None
        from realtime.analysis.summary import summary_table

        summary = self.analysers[0].summary()
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
