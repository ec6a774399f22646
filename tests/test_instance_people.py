"""`--people MODEL`: a second model's person instances split the part parser's person pixels among
people, who then get the tracker's IDs; with Mask2Former as the instance model and as the parser."""
from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest
import torch
from _paths import fixtures_dir
from _weight_rule import generate, read_keys
from conftest import read_frames

from realtime.cli import main
from realtime.models import load_parser
from realtime.models.instance_people import PEOPLE_SOURCES, InstancePeopleStage, split_among_instances
from realtime.types import Frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PANOPTIC_FIXTURE = fixtures_dir() / "m2f_r50_cocopan"


@pytest.fixture(scope="module")
def multi_frame(media_dir) -> np.ndarray:
    return read_frames(media_dir / "pose2sim-multi-cam01.mp4", [40])[0]


@pytest.fixture(scope="module")
def single_person_parse(multi_frame):
    return load_parser("bodypix", device="cpu", max_people=1).parse(multi_frame)


@pytest.fixture(scope="module")
def instances(multi_frame):
    people = load_parser("bodypix", device="cpu", max_people=4).parse(multi_frame).people
    assert len(people) >= 2
    return people


def test_instances_split_every_person_pixel_among_people(single_person_parse, instances):
    parse = single_person_parse
    people = split_among_instances(parse, instances)
    assert len(people) == len(instances) and [p.id for p in people] == list(range(len(people)))
    stack = np.stack([p.mask for p in people])
    assert (stack.sum(0) <= 1).all()  # disjoint
    np.testing.assert_array_equal(stack.any(0), parse.person_mask)  # and covering the parser's person
    claimed = np.zeros(parse.person_mask.shape, bool)
    for person, instance in zip(people, instances):  # strongest first: an instance keeps what it covers
        own = instance.mask & ~claimed & parse.person_mask
        assert (person.mask | ~own).all()
        claimed |= instance.mask
        assert person.score == instance.score
    # the parser's one person gives its keypoints to the person holding most of them
    keypoints = np.round(parse.people[0].keypoints[:, :2]).astype(int)
    held = [int(p.mask[keypoints[:, 1], keypoints[:, 0]].sum()) for p in people]
    with_keypoints = [p for p in people if p.keypoints is not None]
    assert len(with_keypoints) == 1 and with_keypoints[0] is people[int(np.argmax(held))] and max(held) > 0


def test_no_instances_means_no_people(single_person_parse):
    assert split_among_instances(single_person_parse, []) == []


def test_stage_runs_the_instance_model_on_the_frame(multi_frame, single_person_parse, instances):
    stage = InstancePeopleStage(load_parser("bodypix", device="cpu", max_people=4))
    result = stage(Frame(multi_frame, 0, 0.0), single_person_parse)
    assert len(result.people) == len(instances)
    np.testing.assert_array_equal(result.labels, single_person_parse.labels)
    assert set(PEOPLE_SOURCES) >= {"parser", "bodypix", "m2fp-cihp", "mask2former-r50-panoptic"}


@pytest.fixture(scope="module")
def panoptic_checkpoint(tmp_path_factory):
    """The panoptic fixture's weights saved as EasyCV's checkpoint (the random network finds no
    segment: every pixel is VOID)."""
    if not PANOPTIC_FIXTURE.is_dir():
        pytest.skip(f"parity fixture not found at {PANOPTIC_FIXTURE}")
    path = tmp_path_factory.mktemp("panoptic") / "pytorch_model.pt"
    torch.save({"meta": {}, "state_dict": generate(read_keys(PANOPTIC_FIXTURE / "keys.txt"))}, path)
    return path


def decoded_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_process_renders_the_panoptic_model_with_a_legend(panoptic_checkpoint, media_dir, tmp_path, capsys):
    out, labels_dir, metrics = tmp_path / "panoptic.mp4", tmp_path / "labels", tmp_path / "frames.jsonl"
    code = main(["process", str(media_dir / "sports2d-demo.mp4"), "-o", str(out), "--model", "mask2former-r50-panoptic",
                 "--weights", str(panoptic_checkpoint), "--internal-size", "128", "--frames", "3", "--size", "320x180",
                 "--labels-dir", str(labels_dir), "--metrics", str(metrics), "--no-audio", "--pose", "parser"])
    assert code == 0, capsys.readouterr().err
    frames = decoded_frames(out)
    assert len(frames) == 3 and frames[0].shape == (180, 320, 3)
    pngs = sorted(labels_dir.glob("*.png"))
    assert len(pngs) == 3
    for png in pngs:
        labels = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (180, 320) and labels.max() <= 133
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 3 and all(line["people"] == [] for line in lines)  # the random network finds nobody


def test_process_with_panoptic_people_runs_end_to_end(panoptic_checkpoint, media_dir, tmp_path, capsys):
    out, metrics = tmp_path / "people.mp4", tmp_path / "frames.jsonl"
    code = main(["process", str(media_dir / "pose2sim-multi-cam01.mp4"), "-o", str(out), "--model", "bodypix",
                 "--people", "mask2former-r50-panoptic", "--people-weights", str(panoptic_checkpoint),
                 "--people-size", "128", "--max-people", "3", "--frames", "2", "--size", "272x480",
                 "--metrics", str(metrics), "--no-audio", "--pose", "parser"])
    assert code == 0, capsys.readouterr().err
    assert len(decoded_frames(out)) == 2
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 2 and all("people" in line["timings_ms"] for line in lines)
    assert all(line["people"] == [] for line in lines)  # the random network finds nobody


def test_process_with_instance_people_splits_a_single_person_parser(media_dir, tmp_path, capsys):
    """Single-person BodyPix parses everyone as one person; multi-person BodyPix's instances split
    them, and the tracker numbers them."""
    out, metrics = tmp_path / "people.mp4", tmp_path / "frames.jsonl"
    code = main(["process", str(media_dir / "pose2sim-multi-cam01.mp4"), "-o", str(out), "--model", "bodypix-s8",
                 "--people", "bodypix", "--max-people", "4", "--frames", "3", "--size", "544x960",
                 "--metrics", str(metrics), "--no-audio", "--person-mask", "parser", "--pose", "parser"])
    assert code == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 3
    ids = [sorted(person["id"] for person in line["people"]) for line in lines]
    assert all(len(frame_ids) >= 2 for frame_ids in ids)
    assert ids[1] == ids[2]  # the tracker keeps their IDs


@pytest.mark.parametrize("options", [["--model", "mask2former-r50-panoptic"],
                                     ["--people", "mask2former-r50-panoptic"]])
def test_missing_panoptic_weights_are_one_line(options, media_dir, tmp_path, capsys, monkeypatch, weights_dir):
    for other in weights_dir.glob("bodypix-*.onnx"):  # the parser's, with --people: the panoptic file alone is missing
        (tmp_path / other.name).symlink_to(other)
    monkeypatch.setenv("PARTSIGHT_WEIGHTS_DIR", str(tmp_path))
    code = main(["process", str(media_dir / "sports2d-demo.mp4"), "-o", str(tmp_path / "x.mp4"), "--frames", "1",
                 "--person-mask", "parser", "--pose", "parser", *options])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("partsight: error: the weights file mask2former-r50-panoptic.pt is missing:")
    assert "mask2former-r50-panoptic.pt" in err and "model_final_94dc52.pkl" in err


def test_eval_person_iou_and_bench_run_the_panoptic_model(panoptic_checkpoint, media_dir, tmp_path, capsys):
    dataset = tmp_path / "photos"
    dataset.mkdir()
    ccp = PANOPTIC_FIXTURE.parent.parent / "datasets" / "ccp_dev"
    for name in ("img_0002.jpg", "ann_0002.png", "img_0004.jpg", "ann_0004.png"):
        (dataset / name).symlink_to(ccp / name)
    model = ["--model", "mask2former-r50-panoptic", "--weights", str(panoptic_checkpoint), "--internal-size", "128",
             "--device", "cpu"]
    assert main(["eval", "person-iou", "--dataset", str(dataset), "--person-mask", "parser", *model]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "mask2former-r50-panoptic" and report["images"] == 2
    assert report["mean_iou"] == 0.0  # the random network finds no person
    assert main(["bench", str(media_dir / "sports2d-demo.mp4"), "--size", "320x180", "--frames", "2", "--warmup", "1",
                 "--person-mask", "parser", *model]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "mask2former-r50-panoptic" and report["frames"] == 2
    assert report["network_input"] == "224x128" and report["input_size"] == "320x180"
