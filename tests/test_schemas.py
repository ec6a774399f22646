"""The JSON Schemas of the output files (realtime/schemas/) against what the real CLI writes, and
the import contracts (pyproject.toml [tool.importlinter]) through `lint-imports`."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _paths import datasets_dir
from jsonschema import Draft202012Validator
from test_fitness_analyser import FPS, H, W, leg_keypoints, parse_of, person, squat_degs

from realtime.analysis.angles import JOINTS
from realtime.analysis.exercises import PRESETS, REDUCTIONS
from realtime.analysis.fitness import FitnessAnalyser
from realtime.analysis.reps import OUT, START, TURNED, WAITING
from realtime.build import Stages
from realtime.job import fitness_summary, write_summary
from realtime.sources import SourceInfo
from realtime.smoothing import TemporalSmoother
from realtime.models.blazepose import BLAZEPOSE_TO_COCO
from realtime.models.labels import BLAZEPOSE_LANDMARKS, COCO_KEYPOINTS
from realtime.metrics import FRAME_SCHEMA, SCHEMAS, SUMMARY_SCHEMA, schema_path
from realtime.types import Frame, Gap

REPO = Path(__file__).resolve().parents[1]
# A repetition as Rep.to_dict writes it.
REP = {"number": 1, "start_frame": 0, "turn_frame": 10, "end_frame": 20, "start_s": 0.0, "turn_s": 0.5,
       "end_s": 1.0, "min_deg": 100.0, "max_deg": 170.0, "out_s": 0.4, "hold_s": 0.2, "back_s": 0.4,
       "side_diff_deg": None, "area_ratio": 1.02, "rom_deg": 70.0, "turn_seen": True}


def load(name: str) -> dict:
    return json.loads(schema_path(name).read_text())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name))


def errors(name: str, instance: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(instance)]


def process(out: Path, clip: Path, *args: str) -> list[dict]:
    """Runs `main.py process` as a user does; the JSONL lines."""
    metrics = out / "frames.jsonl"
    run = subprocess.run([sys.executable, "main.py", "process", str(clip), "-o", str(out / "out.mp4"),
                          "--metrics", str(metrics), "--device", "cpu", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in metrics.read_text().splitlines()]


@pytest.fixture(scope="module")
def squat_run(media_dir, tmp_path_factory) -> tuple[list[dict], dict]:
    """20 frames of the squat clip with --exercise squat: the JSONL lines and the summary."""
    out = tmp_path_factory.mktemp("squat")
    lines = process(out, media_dir / "cg-mannequin-squat.mp4", "--frames", "20", "--exercise", "squat",
                    "--summary", str(out / "summary.json"))
    return lines, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_schema_files_are_valid_draft_2020_12(name):
    path = schema_path(name)
    assert path.is_file() and path.parent == REPO / "realtime" / "schemas"
    schema = load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_names_and_versions_agree_with_the_code():
    frame, summary = load("frame"), load("summary")
    assert frame["$defs"]["frame"]["properties"]["schema"] == {"const": FRAME_SCHEMA}
    assert summary["properties"]["schema"] == {"const": SUMMARY_SCHEMA}
    with pytest.raises(ValueError, match="unknown schema"):
        schema_path("frames")
    # The summary repeats the frame schema's definitions so that each file stands alone.
    for shared in ("exercise", "rep", "closed_rep", "person_id"):
        assert summary["$defs"][shared] == frame["$defs"][shared], shared
    # Enumerations follow the analysis code.
    defs = frame["$defs"]
    assert defs["exercise"]["properties"]["joints"]["items"]["enum"] == list(JOINTS)
    assert list(defs["fitness_person"]["properties"]["angles"]["properties"]) == list(JOINTS)
    assert defs["exercise"]["properties"]["reduce"]["enum"] == list(REDUCTIONS)
    assert defs["fitness_person"]["properties"]["state"]["enum"] == [WAITING, START, OUT, TURNED]


def test_squat_clip_jsonl_and_summary_match_their_schemas(squat_run):
    lines, summary = squat_run
    assert len(lines) == 20
    for line in lines:
        assert next(iter(line)) == "schema", "the schema key comes first"
        assert errors("frame", line) == [], line["index"]
    assert all("fitness" in line["analysis"] for line in lines)
    assert next(iter(summary)) == "schema"
    assert errors("summary", summary) == []


def test_a_smaller_frame_among_larger_ones_keeps_its_coordinates_inside_it(tmp_path):
    """A folder of mixed photo sizes: a 311x466 frame is letterboxed into the 550x830 run, and a
    person cut off at its top and bottom edges has a mask that spills into the border; the line
    still matches the schema, its bbox inside the frame's own pixels."""
    photo = cv2.imread(str(datasets_dir() / "ccp_dev" / "img_0002.jpg"))
    assert photo.shape[:2] == (830, 550)
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "000.jpg"), photo)
    cv2.imwrite(str(folder / "001.jpg"), cv2.resize(photo[150:700, 80:450], (311, 466)))  # the person cut off
    lines = process(tmp_path, folder)
    assert [line["frame_size"] for line in lines] == [[550, 830], [311, 466]]
    for line in lines:
        assert errors("frame", line) == [], line["index"]
    (x0, y0, x1, y1), = [person["bbox"] for person in lines[1]["people"]]
    assert 0 <= x0 < x1 <= 311 and (y0, y1) == (0, 466), "the mask reaches both cut edges, and no further"


def test_counted_squat_lines_carry_the_33_landmarks_and_world_landmarks(squat_run):
    """With an exercise, --pose auto is the PyTorch BlazePose: each person gets its 33 landmarks
    (their COCO subset is the keypoints) and world landmarks in metres."""
    lines, _ = squat_run
    person = lines[10]["people"][0]
    landmarks, world = np.array(person["landmarks"]), np.array(person["world_landmarks"])
    assert landmarks.shape == (33, 5) and world.shape == (33, 3)
    keypoints = np.array(person["keypoints"])  # One Euro filtered; the landmarks are the network's own
    assert np.abs(landmarks[BLAZEPOSE_TO_COCO, :2] - keypoints[:, :2]).max() < 25
    assert (landmarks[:, 3:] >= 0).all() and (landmarks[:, 3:] <= 1).all()
    hips = world[[23, 24]].mean(axis=0)
    assert np.abs(hips).max() < 0.1, "the world origin is between the hips"
    assert 0.3 < np.linalg.norm(world[11] - world[23]) < 0.8, "a shoulder-to-hip distance in metres"
    # written as rounded: 2 decimals for keypoint pixels, 3 for landmarks, 4 for metres (a float32
    # rounded then widened was written as 63.95000076293945, doubling each line)
    for values, decimals in ((person["keypoints"], 2), (person["landmarks"], 3), (person["world_landmarks"], 4)):
        assert all(round(value, decimals) == value for row in values for value in row), values


def test_the_landmark_names_are_the_schemas():
    description = load("frame")["$defs"]["person"]["properties"]["landmarks"]["description"]
    assert len(BLAZEPOSE_LANDMARKS) == 33 and ", ".join(BLAZEPOSE_LANDMARKS) in description
    assert tuple(BLAZEPOSE_LANDMARKS[i] for i in BLAZEPOSE_TO_COCO) == COCO_KEYPOINTS


def test_multi_person_jsonl_matches_the_schema(media_dir, tmp_path):
    lines = process(tmp_path, media_dir / "pose2sim-multi-cam01.mp4", "--frames", "8", "--max-people", "4",
                    "--pose", "parser")
    assert len(lines) == 8
    assert max(len(line["people"]) for line in lines) >= 2, "the clip has several people"
    for line in lines:
        assert errors("frame", line) == [], line["index"]
        assert "analysis" not in line
        assert all(p["landmarks"] is None and p["world_landmarks"] is None for p in line["people"]), \
            "the parser's keypoints come without landmarks"


def test_gap_event_line_matches_the_schema():
    assert errors("frame", Gap(3.0, 7.25, "rtsp://camera/stream: connection lost").to_json()) == []
    assert errors("frame", {"event": "gap", "from_pts_s": 1.0, "to_pts_s": 2.0}) != []  # no reason
    assert errors("frame", {"event": "jump", "from_pts_s": 1.0, "to_pts_s": 2.0, "reason": "?"}) != []


def test_a_summary_and_frame_analysis_with_repetitions_match_the_schemas(tmp_path):
    """The CLI's short run counts no repetition; here two people, one squatting three times."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    for i, deg in enumerate(squat_degs(3)):
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                              parse_of([person(4, leg_keypoints(deg, 80)), person(7, leg_keypoints(175, 240))]))
    assert out["people"]["4"]["last_rep"] is not None
    fitness = Draft202012Validator({"$defs": load("frame")["$defs"], "$ref": "#/$defs/fitness"})
    assert list(fitness.iter_errors(json.loads(json.dumps(out)))) == []

    stages = Stages(result=[], analysers=[analyser], smoother=TemporalSmoother(0.0))
    summary = fitness_summary(stages, SourceInfo("squat.mp4", False, len(squat_degs(3)), FPS))
    write_summary(str(tmp_path / "summary.json"), summary)
    assert summary["reps"] == 3
    assert errors("summary", json.loads((tmp_path / "summary.json").read_text())) == []


def test_the_schemas_reject_wrong_lines(squat_run):
    """Each change below breaks the format: the schemas must say so."""
    line, summary = squat_run[0][0], squat_run[1]
    assert line["people"][0]["landmarks"] is not None
    assert errors("frame", line) == [] and errors("summary", summary) == []

    def broken(document: dict, change) -> dict:
        document = copy.deepcopy(document)
        change(document)
        return document

    wrong_lines = {
        "keypoint with two numbers": lambda d: d["keypoints"].__setitem__(0, d["keypoints"][0][:2]),
        "keypoint with four numbers": lambda d: d["people"][0]["keypoints"][0].append(1.0),
        "16 keypoints": lambda d: d["keypoints"].pop(),
        "no schema key": lambda d: d.pop("schema"),
        "another schema version": lambda d: d.__setitem__("schema", "partsight.frame/2"),
        "bbox of 3 numbers": lambda d: d["people"][0].__setitem__("bbox", [1, 2, 3]),
        "bbox of floats": lambda d: d["people"][0].__setitem__("bbox", [1.5, 2, 3, 4]),
        "unknown key": lambda d: d.__setitem__("extra", 1),
        "unknown person key": lambda d: d["people"][0].__setitem__("name", "x"),
        "area as a float": lambda d: d["areas"].__setitem__("torso_front", 1.5),
        "missing timing": lambda d: d["timings_ms"].pop("infer"),
        "negative index": lambda d: d.__setitem__("index", -1),
        "unknown angle source": lambda d: d["analysis"]["fitness"]["people"]["0"]["angles"]["left_knee"]
        .__setitem__("source", "guess"),
        "32 landmarks": lambda d: d["people"][0]["landmarks"].pop(),
        "landmark without presence": lambda d: d["people"][0]["landmarks"][0].pop(),
        "visibility above 1": lambda d: d["people"][0]["landmarks"][0].__setitem__(3, 1.5),
        "world landmark of 2 numbers": lambda d: d["people"][0]["world_landmarks"][0].pop(),
        "unknown rep state": lambda d: d["analysis"]["fitness"]["people"]["0"].__setitem__("state", "resting"),
    }
    for what, change in wrong_lines.items():
        assert errors("frame", broken(line, change)), what
    # a frame that was not recorded (the service's /v1/parse and /v1/live answers) has no encoding time
    assert errors("frame", broken(line, lambda d: d["timings_ms"].pop("encode"))) == []
    wrong_summaries = {
        "no schema key": lambda d: d.pop("schema"),
        "no pose source": lambda d: d.pop("pose_source"),
        "person id not a number": lambda d: d["people"].__setitem__("x", d["people"]["0"]),
        "rep without its person": lambda d: d["per_rep"].append({**REP}),
        "unknown rep key": lambda d: d["people"]["0"]["per_rep"].append({**REP, "speed": 1.0}),
    }
    for what, change in wrong_summaries.items():
        assert errors("summary", broken(summary, change)), what
    assert errors("summary", broken(summary, lambda d: d["people"]["0"]["per_rep"].append({**REP}))) == []


def test_lint_imports_keeps_the_import_contracts():
    """The contracts of pyproject.toml [tool.importlinter]: realtime imports neither PyQt6, pyqtgraph nor
    gui, and the command line, the pipeline and the data types stay in that order. Fails while
    realtime/cli.py still imports gui.app to open the window."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    run = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
