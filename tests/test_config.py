"""One PipelineConfig per run: every option of every command reaches it (or the sink that the
command owns), and the pipeline built from it runs what it says."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from dataclasses import fields
from importlib import metadata
from pathlib import Path

import pytest

from gui.cli import add_gui_command
from realtime.analysis.exercises import custom_exercise
from realtime.build import build_stages
from realtime.cli import _build_parser
from realtime.config import PipelineConfig, config_from_args
from realtime.models.backends import cpu_bf16_missing

# Options that are not pipeline settings: where the command writes, how it measures, what the
# window does; each is used by its command's own code.
NOT_PIPELINE = {
    "process": {"output", "metrics", "labels_dir", "summary", "no_audio", "readout", "x264_preset"},
    "bench": {"warmup", "record", "compare", "frames"},
    "bench-memory": {"seconds", "interval", "warmup_seconds", "no_record"},
    "pose-quality": set(),
    "eval flicker": set(),
    "eval jitter": {"images", "dataset", "jitter_frames", "seed"},
    "eval person-iou": {"dataset"},
    "gui": {"screenshot", "frames", "present", "record"},
}
# A value different from the default, per option destination, and the config field it must change.
CHANGED = {
    "source": ("other.mp4", "source", "other.mp4"),
    "model": ("bodypix-s8", "model", "bodypix-s8"),
    "weights": ("/tmp/w.onnx", "weights", "/tmp/w.onnx"),
    "device": ("cpu", "device", "cpu"),
    "backend": ("openvino", "backend", "openvino"),
    "dtype": ("bf16", "dtype", "bf16"),
    "internal_size": ("321", "internal_size", 321),
    "max_people": ("2", "max_people", 2),
    "person_mask": ("selfie", "person_mask", "selfie"),
    "parts": ("top-down", "parts", "top-down"),
    "people": ("bodypix", "people", "bodypix"),
    "people_weights": ("/tmp/people.pt", "people_weights", "/tmp/people.pt"),
    "people_size": ("256", "people_size", 256),
    "smoothing": ("0.3", "smoothing", 0.3),
    "size": ("320x240", "size", (320, 240)),
    "max_side": ("500", "max_side", 500),
    "parse_side": ("0", "parse_side", None),
    "stage_threads": ("1", "stage_threads", 1),
    "realtime": (None, "pacing", "realtime"),
    "loop": (None, "loop", True),
    "frames": ("7", "frame_limit", 7),
    "fps": ("60", "fps", 60.0),
    "pose": ("blazepose-torch", "pose", "blazepose-torch"),
    "angles": ("3d", "angles", "3d"),
    "exercise": ("lunge", "exercise", "lunge"),
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser([add_gui_command])
    found = {}
    for action in parser._subparsers._group_actions:
        for name, command in action.choices.items():
            subs = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
            if subs:
                found.update({f"{name} {sub}": cmd for sub, cmd in subs[0].choices.items()})
            else:
                found[name] = command
    return found


def _base_args(name: str) -> list[str]:
    return {"process": ["clip.mp4", "-o", "out.mp4"], "bench": ["clip.mp4"], "bench-memory": ["clip.mp4"],
            "pose-quality": ["clip.mp4"], "eval flicker": ["clip.mp4"]}.get(name, [])


@pytest.mark.parametrize("name", sorted(NOT_PIPELINE))
def test_every_option_reaches_the_config(name):
    command = _commands()[name]
    base = config_from_args(command.parse_args(_base_args(name)))
    options = {action.dest: action for action in command._actions if action.dest != "help"}
    assert set(options) - NOT_PIPELINE[name] <= set(CHANGED) | {"joint", "start_deg", "turn_deg"}, \
        "a new option: say which config field it sets"
    checked = 0
    for dest, action in options.items():
        if dest in NOT_PIPELINE[name] or dest not in CHANGED or (dest == "source" and not action.option_strings):
            continue
        if dest == "dtype" and cpu_bf16_missing():  # the config refuses bf16 on such a CPU (tests/test_dtype.py)
            continue
        value, field, expected = CHANGED[dest]
        flag = action.option_strings[-1] if action.option_strings else None
        argv = [*_base_args(name), flag] + ([value] if value is not None else [])
        if dest == "loop":
            argv += ["--frames", "5"]
        config = config_from_args(command.parse_args(argv))
        got = getattr(config, field)
        got = got.name if field == "exercise" else got
        assert got == expected and got != getattr(base, field), f"{name} {flag} does not reach {field}"
        checked += 1
    assert checked >= 3


def test_custom_exercise_and_its_errors_are_one_place():
    process = _commands()["process"]
    config = config_from_args(process.parse_args(["c.mp4", "-o", "o.mp4", "--exercise", "custom", "--joint",
                                                  "left_knee", "--start-deg", "160", "--turn-deg", "100"]))
    assert config.exercise.joints == ("left_knee",) and config.exercise.turn_deg == 100
    for argv, message in ((["--joint", "left_knee"], "--joint needs --exercise"),
                          (["--summary", "s.json"], "--summary needs --exercise"),
                          (["--exercise", "custom"], "--exercise custom needs")):
        with pytest.raises(ValueError, match=message):
            config_from_args(process.parse_args(["c.mp4", "-o", "o.mp4", *argv]))
    for start, turn in ((400, 100), (160, -20), (float("nan"), 100)):  # the service's jobs build it directly
        with pytest.raises(ValueError, match="angle must be 0-180 degrees"):
            custom_exercise("left_knee", start_deg=start, turn_deg=turn)


def test_the_config_rejects_nonsense_with_one_line():
    for bad, message in (({"pacing": "fast"}, "unknown pacing"), ({"smoothing": 2.0}, "smoothing must be"),
                         ({"max_people": 0}, "max people"), ({"pose": "openpose"}, "unknown pose source"),
                         ({"people": "yolo"}, "unknown people source"),
                         ({"angles": "3d", "pose": "parser"}, "--angles 3d needs BlazePose's 3-D world landmarks")):
        with pytest.raises(ValueError, match=message):
            PipelineConfig(**bad)


def test_the_defaults_run_blazepose_and_its_refined_person_mask():
    """--pose auto is the PyTorch BlazePose, and --person-mask auto then refines its segmentation;
    --pose parser (the fastest) keeps the parser's keypoints and moves its mask towards the
    selfie segmenter's; --person-mask pose needs BlazePose in PyTorch."""
    default = build_stages(PipelineConfig(device="cpu"))
    assert [stage.name for stage in default.result] == ["blazepose-torch", "selfie-mask", "track", "smooth"]
    pose, mask = default.result[:2]
    assert default.pose_source == "blazepose-torch" and pose.segmentation and mask.refine
    parser_pose = build_stages(PipelineConfig(device="cpu", pose="parser"))
    assert [stage.name for stage in parser_pose.result] == ["selfie-mask", "track", "smooth"]
    assert parser_pose.pose_source == "parser" and not parser_pose.result[0].refine
    selfie = build_stages(PipelineConfig(device="cpu", person_mask="selfie"))
    assert [stage.name for stage in selfie.result][:2] == ["blazepose-torch", "selfie-mask"]
    assert not selfie.result[0].segmentation and not selfie.result[1].refine
    for pose_source in ("parser", "blazepose"):
        with pytest.raises(ValueError, match="--person-mask pose needs BlazePose in PyTorch"):
            PipelineConfig(pose=pose_source, person_mask="pose")


def test_build_stages_follows_the_config():
    plain = build_stages(PipelineConfig(pose="parser", person_mask="parser", smoothing=0.25))
    assert [stage.name for stage in plain.result] == ["track", "smooth"]
    assert plain.smoother.strength == 0.25 and plain.analysers == [] and plain.pose_source == "parser"
    from realtime.analysis.exercises import get_exercise

    counted = build_stages(PipelineConfig(pose="parser", person_mask="parser", exercise=get_exercise("squat")))
    assert [analyser.name for analyser in counted.analysers] == ["fitness"]
    split = build_stages(PipelineConfig(pose="parser", person_mask="parser", people="bodypix", model="m2fp-lip"))
    assert [stage.name for stage in split.result] == ["people", "track", "smooth"]
    own = build_stages(PipelineConfig(pose="parser", person_mask="parser", people="bodypix", model="bodypix"))
    assert [stage.name for stage in own.result] == ["track", "smooth"]  # the parser's people are already those
    assert {field.name for field in fields(PipelineConfig)} >= {
        "source", "model", "device", "weights", "size", "max_side", "internal_size", "max_people", "person_mask",
        "pose", "smoothing", "exercise", "frame_limit", "loop", "pacing"}


def test_the_version_comes_from_the_package_metadata_else_pyproject():
    """`partsight --version` (the console script's function and main.py) prints the installed
    metadata's version; a checkout without the metadata reads pyproject.toml's."""
    root = Path(__file__).resolve().parents[1]
    stated = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    for command in ([sys.executable, "main.py", "--version"],
                    [sys.executable, "-c", "import sys; from gui.cli import main; sys.exit(main(['--version']))"]):
        run = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout, run.stderr) == (0, f"partsight {metadata.version('partsight')}\n", "")
    # -S: no site-packages, so no installed metadata
    bare = subprocess.run([sys.executable, "-S", "-c", "from realtime.version import version; print(version())"],
                          cwd=root, capture_output=True, text=True, timeout=60)
    assert (bare.returncode, bare.stdout) == (0, f"{stated}\n"), bare.stderr
