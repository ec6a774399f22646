"""One run's settings: a frozen PipelineConfig, built once from the command line
(`config_from_args`) or from the window's settings, and read by `realtime.build` and the Pipeline.
Every option that shapes what the pipeline computes is a field here, so no command can accept
an option and then ignore it."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from realtime.analysis.exercises import Exercise, custom_exercise, get_exercise
from realtime.analysis.angles import ANGLE_MODES
from realtime.models.backends import BACKEND_CHOICES, DTYPES, check_dtype
from realtime.models.blazepose import MEDIAPIPE_NEEDED, POSE_SOURCES, blazepose_available
from realtime.models.instance_people import PEOPLE_SOURCES
from realtime.models.registry import DEFAULT_MODEL
from realtime.models.person_mask import PERSON_MASK_SOURCES
from realtime.models.top_down import PARTS_MODES
from realtime.smoothing import DEFAULT_STRENGTH
from realtime.sources import BUFFER_FRAMES

PACINGS = ("every-frame", "realtime")
DEFAULT_PARSE_SIDE = 960  # a display-sized copy: what the window shows and parses
# libx264's speed presets offered for recordings, the default first; on a 1080x1920 clip's annotated
# frames at crf 23 (CPU ms a frame, KiB a frame, PSNR against the frames): veryfast 16.9, 14.2,
# 33.6 dB; superfast 13.7, 31.1, 34.4 dB; ultrafast 7.7, 38.7, 34.5 dB
X264_PRESETS = ("veryfast", "superfast", "ultrafast")


class OptionsError(ValueError):
    """Options that do not go together (or one that needs another), named as the command line
    names them: a usage error on the command line (exit status 2, as argparse's own), a 422 in
    the service."""


@dataclass(frozen=True)
class PipelineConfig:
    """source: video file, image folder, webcam index or stream URL (None for commands that
    parse stills). backend: where the parser's forward runs on the CPU ("auto": the fastest here,
realtime.models.backends). dtype: what the networks compute in, "fp32" or "bf16" (on the CPU on
    OpenVINO, where the CPU computes bf16 natively; on CUDA under autocast; realtime.models.backends.check_dtype
    says where it cannot run). size: (width, height) to fit frames into (aspect kept, letterboxed); max_side: long side in pixels
    larger frames are scaled down to (aspect kept). parse_side: frames still longer than this on
    their long side are parsed (parser and result stages) on a copy divided by the smallest whole
    factor that brings them within it (realtime.geometry.parse_copy_size), their results scaled back up
    for the analysers, the drawing and the outputs (None: parsed at their size; the parser's own
    input is smaller still, BodyPix's long side 449 by default). internal_size: the network input's long
    side in pixels (None = the model's default). max_people: people parsed, each with a stable
    ID. people: where the people come from ("parser", or a multi-person model whose person
    instances split the parser's parts), with people_weights (its checkpoint, None = the weights
    cache) and people_size (its internal size, None = its default). pose: where the keypoints
    come from ("auto" = BlazePose in PyTorch, realtime.build.pose_stages); person_mask: what
    makes the person mask ("auto" = BlazePose's segmentation refined with the selfie segmenter
    when BlazePose runs, realtime.build.person_mask_source). parts: "full-frame"
    (the parser's labels) or "top-down" (BodyPix again on each person's crop at the full network
    input). angles: "2d" image-plane joint angles, or "3d" from the pose source's world
    landmarks when it gives them. smoothing: temporal smoothing strength, 0 (off) to 1. exercise:
    the repetitions to count (None = no fitness analysis). fps: frames per second of an image
    sequence (None = the rate its metadata states, else 30). frame_limit: stop after this many
    frames. loop: start a file again at its end. pacing: "every-frame" (files: nothing dropped) or "realtime" (a file
    paced like a camera, late frames dropped). buffer_frames: decoded frames queued ahead. stage_threads:
    threads that run the steps after decoding (the parser, each result stage, then analysis, drawing
    and delivery), each frame passing from one to the next in order so that consecutive frames
    overlap: 0 = one thread per step, 1 = one thread doing every step of a frame before the next
    (realtime.pipeline)."""

    source: str | None = None
    model: str = DEFAULT_MODEL
    device: str = "auto"
    backend: str = "auto"
    dtype: str = "fp32"
    weights: str | None = None
    size: tuple[int, int] | None = None
    max_side: int | None = None
    parse_side: int | None = DEFAULT_PARSE_SIDE
    internal_size: int | None = None
    max_people: int = 4
    people: str = "parser"
    people_weights: str | None = None
    people_size: int | None = None
    person_mask: str = "auto"
    parts: str = "full-frame"
    pose: str = "auto"
    angles: str = "2d"
    smoothing: float = DEFAULT_STRENGTH
    exercise: Exercise | None = None
    fps: float | None = None
    frame_limit: int | None = None
    loop: bool = False
    pacing: str = "every-frame"
    buffer_frames: int = BUFFER_FRAMES
    stage_threads: int = 0

    def __post_init__(self) -> None:
        for name, value, choices in (("backend", self.backend, BACKEND_CHOICES), ("dtype", self.dtype, DTYPES),
                                     ("people source", self.people, PEOPLE_SOURCES),
                                     ("person mask", self.person_mask, PERSON_MASK_SOURCES),
                                     ("parts mode", self.parts, PARTS_MODES),
                                     ("pose source", self.pose, POSE_SOURCES),
                                     ("angle mode", self.angles, ANGLE_MODES), ("pacing", self.pacing, PACINGS)):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")
        if self.pose == "blazepose" and self.dtype != "fp32":
            raise OptionsError(f"--pose blazepose (the mediapipe wheel) computes in its own precision; "
                               f"--dtype {self.dtype} is for --pose auto or blazepose-torch")
        if self.dtype != "fp32":
            from realtime.models import resolve_device

            check_dtype(self.dtype, self.backend, resolve_device(self.device))
        if self.person_mask == "pose" and not self.pytorch_pose:
            raise OptionsError(f"--person-mask pose needs BlazePose in PyTorch (--pose auto or blazepose-torch), "
                               f"not --pose {self.pose}")
        if self.pose == "blazepose" and not blazepose_available():
            raise ValueError(MEDIAPIPE_NEEDED)
        if self.angles == "3d" and self.pose == "parser":
            raise OptionsError("--angles 3d needs BlazePose's 3-D world landmarks (--pose auto), not --pose parser")
        if not 0.0 <= self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be from 0 (off) to 1, not {self.smoothing:g}")
        if self.max_people < 1:
            raise ValueError(f"max people must be at least 1, not {self.max_people}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, not {self.fps:g}")
        if self.parse_side is not None and self.parse_side < 1:
            raise ValueError(f"parse side must be positive (or None: the frame's size), not {self.parse_side}")
        if self.stage_threads < 0:
            raise ValueError(f"stage threads must be 0 (one per step) or more, not {self.stage_threads}")
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be positive, not {self.size[0]}x{self.size[1]}")

    @property
    def pytorch_pose(self) -> bool:
        """Whether the keypoints come from BlazePose in PyTorch ("auto" or "blazepose-torch"), whose
        segmentation can make the person mask."""
        return self.pose in ("auto", "blazepose-torch")

    @property
    def realtime(self) -> bool:
        """Whether a file is paced like a live camera."""
        return self.pacing == "realtime"


def default(name: str):
    """The default of the PipelineConfig field `name` (what a command line shows as default)."""
    return next(field.default for field in fields(PipelineConfig) if field.name == name)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig of a parsed command line; options a command does not have keep their
    defaults. OptionsError (one line) on inconsistent options, e.g. --joint without --exercise,
    and on an empty SOURCE."""
    from realtime.sources import parse_size

    given = {field.name: getattr(args, field.name) for field in fields(PipelineConfig)
             if getattr(args, field.name, None) is not None}
    if "source" in given and not str(given["source"]).strip():  # Path("") is the current folder
        raise OptionsError("SOURCE is empty: give a video file, image folder, webcam index or URL")
    if "size" in given:
        given["size"] = parse_size(given["size"])
    given["max_side"] = getattr(args, "max_side", None) or None
    if getattr(args, "parse_side", None) == 0:
        given["parse_side"] = None
    given["exercise"] = exercise_from_args(args)
    if getattr(args, "frames", None) is not None:
        given["frame_limit"] = args.frames
    if getattr(args, "realtime", False):
        given["pacing"] = "realtime"
    return PipelineConfig(**given)


def exercise_from_args(args: argparse.Namespace) -> Exercise | None:
    """--exercise NAME (a preset) or --exercise custom with --joint/--start-deg/--turn-deg."""
    name = getattr(args, "exercise", None)
    custom_given = [option for option, value in (("--joint", getattr(args, "joint", None)),
                                                 ("--start-deg", getattr(args, "start_deg", None)),
                                                 ("--turn-deg", getattr(args, "turn_deg", None))) if value is not None]
    if name is None:
        if getattr(args, "summary", None):
            raise OptionsError("--summary needs --exercise")
        if custom_given:
            raise OptionsError(f"{custom_given[0]} needs --exercise")
        return None
    if name == "custom":
        missing = {"--joint", "--start-deg", "--turn-deg"} - set(custom_given)
        if missing:
            raise OptionsError(f"--exercise custom needs {', '.join(sorted(missing))}")
        try:
            return custom_exercise(args.joint, start_deg=args.start_deg, turn_deg=args.turn_deg)
        except ValueError as exc:  # thresholds that make no exercise: the command line's fault
            raise OptionsError(str(exc)) from None
    if custom_given:
        raise OptionsError(f"{custom_given[0]} is only for --exercise custom")
    return get_exercise(name)
