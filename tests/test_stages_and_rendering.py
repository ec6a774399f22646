"""The contracts between the pipeline's steps: the pipeline owns and closes its stages; the
renderer draws a stored result again without the engine; failures are one line for the user and
a traceback in the log file."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime.build import build_pipeline
from realtime.cli import main
from realtime.config import PipelineConfig
from realtime.pipeline import Pipeline
from realtime.render import FrameRenderer, ViewSettings, readout_panel, stats_lines
from realtime.types import Frame, ParseResult

pytestmark = pytest.mark.usefixtures("engine_threads_joined")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class CountingStage:
    """A real ResultStage that records what the pipeline asks of it."""

    name: str = "count"
    calls: int = 0
    resets: int = 0
    closed: int = 0
    seen_people: list = field(default_factory=list)

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        self.calls += 1
        return parse

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        self.closed += 1


def _config(single_clip: Path) -> PipelineConfig:
    return PipelineConfig(source=str(single_clip), size=(180, 320), device="cpu", max_people=1, frame_limit=6)


def test_the_pipeline_closes_its_stages_on_stop_and_those_it_replaces(single_clip):
    first, second, waiting = CountingStage("first"), CountingStage("second"), CountingStage("waiting")
    pipeline = Pipeline(_config(single_clip), stages=[first])
    pipeline.process(Frame(np.zeros((320, 180, 3), np.uint8), 0, 0.0))
    pipeline.set_stages([second])
    pipeline.process(Frame(np.zeros((320, 180, 3), np.uint8), 1, 0.1))
    assert (first.calls, first.closed) == (1, 1), "a replaced stage is closed"
    assert (second.calls, second.closed) == (1, 0)
    pipeline.set_stages([waiting])  # never applied: closed all the same
    pipeline.stop()
    assert second.closed == 1 and waiting.closed == 1 and first.closed == 1


def test_a_started_pipeline_closes_its_stages_when_stopped(single_clip):
    stage = CountingStage()
    pipeline = Pipeline(_config(single_clip), stages=[stage])
    pipeline.start()
    assert pipeline.wait(60)
    pipeline.stop()
    assert stage.calls == 6 and stage.closed == 1


def test_a_stored_result_is_drawn_again_with_new_view_settings(single_clip):
    renderer = FrameRenderer(ViewSettings(opacity=0.0, show_stats=False))
    pipeline = Pipeline(_config(single_clip), renderer=renderer)
    frame = Frame(np.full((320, 180, 3), 90, np.uint8), 0, 0.0)
    frame.image[60:300, 50:130] = (200, 170, 150)  # something person-like is not needed: labels are set below
    result = pipeline.process(frame)
    pipeline.stop()
    result.parse.labels[100:200, 60:120] = 13  # torso_front
    plain = renderer.render(result)
    assert np.array_equal(plain, frame.image), "opacity 0 and no readout: the frame as it was"
    renderer.view.opacity = 1.0
    coloured = renderer.render(result)
    assert np.array_equal(coloured[150, 90], result.parse.palette[13])
    renderer.view.visible_parts = np.ones(len(result.parse.label_names), bool)
    renderer.view.visible_parts[13] = False
    assert np.array_equal(renderer.render(result)[150, 90], frame.image[150, 90])
    assert np.array_equal(result.frame.image, frame.image), "rendering never draws on the frame"


def test_the_readout_names_the_parser_and_the_pose_model_that_gives_the_keypoints(media_dir):
    """`--pose auto` (the default) takes the keypoints from BlazePose, `--pose parser` from
    BodyPix: the readout drawn on the video says which, next to the parser's name."""
    for pose, models in (("auto", "bodypix  pose blazepose-torch"), ("parser", "bodypix")):
        config = PipelineConfig(source=str(media_dir / "cg-mannequin-squat.mp4"), device="cpu", max_people=1,
                                pose=pose, frame_limit=3)
        results = []
        renderer = FrameRenderer(ViewSettings(opacity=0.0, show_stats=True))
        pipeline = build_pipeline(config, renderer=renderer)
        pipeline.subscribe(results.append)
        pipeline.start()
        assert pipeline.wait(120)
        pipeline.stop()
        result = results[-1]
        assert (result.parse.people[0].landmarks is not None) == (pose == "auto"), "the keypoints' source"
        assert result.pose_source == pipeline.stats.pose_source == ("blazepose-torch" if pose == "auto" else "parser")
        assert stats_lines(result)[1] == models
    other = renderer.render(replace(result, pose_source="blazepose-torch"))
    assert not np.array_equal(other, result.image), "the readout drawn on the video names the pose model"


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_process_leaves_the_speed_readout_out_of_the_mp4_unless_asked(media_dir, tmp_path):
    """The readout's figures are the machine's load: `process` draws it into the MP4 only with
    --readout. squat30's top left is floor and wall, nobody there: without --readout it is the
    source's picture, with it the readout's dark panel; the rest of the picture is the same."""
    source = media_dir / "faults" / "squat30.mp4"
    options = ["--frames", "3", "--pose", "parser", "--person-mask", "parser", "--max-people", "1", "--device", "cpu"]
    assert main(["process", str(source), "-o", str(tmp_path / "plain.mp4"), *options]) == 0
    assert main(["process", str(source), "-o", str(tmp_path / "readout.mp4"), "--readout", *options]) == 0
    plain, drawn, original = _decoded(tmp_path / "plain.mp4"), _decoded(tmp_path / "readout.mp4"), _decoded(source)
    assert len(plain) == len(drawn) == 3
    _, _, right, bottom = readout_panel(["30.0 FPS  frame 2  0.07 s", "bodypix"]).box(plain[0].shape[:2])
    corner = np.s_[:bottom, :right]
    for index, (without, with_readout) in enumerate(zip(plain, drawn)):
        source_corner = original[index][corner].astype(int)
        assert np.abs(without[corner] - source_corner).mean() < 2, "no readout in the default MP4"
        text = np.abs(with_readout[corner] - source_corner).max(axis=2) > 60
        assert text.mean() > 0.5, "--readout draws it"
        rest = np.ones(plain[0].shape[:2], bool)
        rest[corner] = False
        assert np.abs(without.astype(int) - with_readout)[rest].mean() < 1, "the rest of the picture is the same"


def test_a_failure_is_one_line_and_its_traceback_goes_to_the_log(tmp_path, single_clip):
    log_file = tmp_path / "partsight.log"
    env = {"PARTSIGHT_LOG_FILE": str(log_file), "PATH": "/usr/bin:/bin"}
    import os

    env.update({k: v for k, v in os.environ.items() if k.startswith("PARTSIGHT_") and k != "PARTSIGHT_LOG_FILE"})
    bad_weights = tmp_path / "bodypix-mobilenetv1-050-stride16.onnx"
    bad_weights.write_bytes(b"not an onnx model")
    done = subprocess.run([sys.executable, "main.py", "process", "rtsp://user:p%40ss@127.0.0.1:9/x", "-o",
                           str(tmp_path / "o.mp4"), "--weights", str(tmp_path / "missing.onnx")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("partsight: error: ") and "Traceback" not in done.stderr
    assert "p%40ss" not in done.stderr
    assert log_file.is_file() and "Traceback" in log_file.read_text()
    assert "p%40ss" not in log_file.read_text()


def test_a_labels_dir_used_again_holds_this_runs_label_pngs_only(media_dir, tmp_path, capsys):
    """A shorter run into the folder of a longer one: the earlier run's %06d.png label maps go
    (said in the run's line), the user's other files stay; one frame is '1 frame'."""
    labels = tmp_path / "labels"
    labels.mkdir()
    for index in range(9):
        cv2.imwrite(str(labels / f"{index:06d}.png"), np.full((7, 5), 3, np.uint8))
    mine = {"notes.txt": b"mine", "000001.jpg": b"mine too", "cover.png": b"and this", "12345.png": b"short name"}
    for name, data in mine.items():
        (labels / name).write_bytes(data)
    out = tmp_path / "one.mp4"
    assert main(["process", str(media_dir / "faults" / "squat30.mp4"), "-o", str(out), "--labels-dir", str(labels),
                 "--frames", "1", "--pose", "parser", "--max-people", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: 1 frame in " in printed
    assert f"labels {labels} (its 9 label PNGs of an earlier run removed first)" in printed
    assert sorted(path.name for path in labels.iterdir()) == sorted([*mine, "000000.png"])
    assert all((labels / name).read_bytes() == data for name, data in mine.items())
    assert cv2.imread(str(labels / "000000.png"), cv2.IMREAD_UNCHANGED).shape == _decoded(out)[0].shape[:2]


@pytest.mark.parametrize("size, video", [("33x17", (32, 16)), ("32x16", None)])
def test_an_odd_frame_size_is_said_where_the_mp4_is_written(media_dir, tmp_path, capsys, size, video):
    """yuv420p needs even sides: the MP4 of 33 x 17 frames is 32 x 16, and the "wrote" line says
    so; an even size is not remarked on."""
    out = tmp_path / "odd.mp4"
    assert main(["process", str(media_dir / "faults" / "squat30.mp4"), "-o", str(out), "--size", size,
                 "--frames", "2", "--pose", "parser", "--max-people", "1", "--device", "cpu"]) == 0
    wrote = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"wrote {out}: "))
    frames = _decoded(out)
    assert len(frames) == 2 and frames[0].shape[1::-1] == (video or (32, 16))
    if video:
        assert wrote.endswith(" fps), 32x16 (the frames are 33x17: yuv420p video needs even sides)"), wrote
    else:
        assert wrote.endswith(" fps)"), wrote
