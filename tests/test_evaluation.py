"""The measures behind `partsight eval` on small real inputs: their fixed points and the commands."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _paths import datasets_dir

from realtime.evaluation import (
    agreement,
    evaluate_flicker,
    evaluate_jitter,
    evaluate_person_iou,
    label_flicker,
    labelled_images,
    read_person_truth,
    read_rgb,
    smooth_affine_track,
    warp_labels,
)
from realtime.models.backends import BACKENDS
from realtime.smoothing import TemporalSmoother
from realtime.types import Frame, ParseResult, PersonParse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_frame(single_frames) -> np.ndarray:
    return cv2.resize(single_frames[2], (270, 480), interpolation=cv2.INTER_AREA)


def test_a_repeated_frame_does_not_flicker(bodypix, small_frame):
    frames = (Frame(small_frame, i, i / 30) for i in range(4))
    report = evaluate_flicker(bodypix, frames, TemporalSmoother(0.7))
    assert report["frames"] == 4
    assert report["flicker"] == {"raw": 0.0, "smoothed": 0.0}
    assert report["smoothed_person_iou_to_raw"] == {"mean": 1.0, "worst": 1.0}


def test_labels_moved_along_their_flow_do_not_flicker(bodypix, small_frame):
    labels = bodypix.parse(small_frame).labels
    moved = np.roll(labels, 5, axis=1)
    flow = np.zeros((*labels.shape, 2), np.float32)
    flow[..., 0] = -5  # each pixel came from 5 px to its left
    inner = (slice(None), slice(10, -10))
    assert label_flicker(warp_labels(labels, flow)[inner], moved[inner]) == 0.0
    assert label_flicker(labels, moved) > 0.0


def test_labelled_images_are_found_and_truth_scores_one():
    images = labelled_images(datasets_dir())
    folders = {name: sum(item.image.parent.name == name for item in images)
               for name in ("lip", "cihp", "skin_clothes_hair", "ccp_dev")}
    assert folders == {"lip": 4, "cihp": 5, "skin_clothes_hair": 7, "ccp_dev": 502}
    assert len(images) == sum(folders.values())
    truths = {item.image: read_person_truth(item.label) for item in images[:3]}
    shapes = {truth.shape: truth for truth in truths.values()}
    report = evaluate_person_iou(lambda rgb: _truth_as_parse(shapes[rgb.shape[:2]]), images[:3])
    assert report["mean_iou"] == 1.0 and report["images"] == 3 and report["subject_iou"]["mean"] == 1.0
    # a bystander found beside the labelled subject counts against the mask, not the subject
    crowded = evaluate_person_iou(lambda rgb: _truth_as_parse(shapes[rgb.shape[:2]], bystander=True), images[:3])
    assert crowded["mean_iou"] < 0.95 and crowded["subject_iou"] == {"mean": 1.0, "even": 1.0, "odd": 1.0}
    assert all(0.05 < truth.mean() < 0.95 for truth in truths.values())


def _truth_as_parse(truth: np.ndarray, *, bystander: bool = False) -> ParseResult:
    """A parse whose one person is the labelled person (and, with `bystander`, a second person in
    the unlabelled quarter of the picture the label covers least)."""
    people = [PersonParse(0, truth, None, 1.0)]
    if bystander:
        height, width = truth.shape
        quarters = [np.s_[:height // 2, :width // 2], np.s_[:height // 2, width // 2:],
                    np.s_[height // 2:, :width // 2], np.s_[height // 2:, width // 2:]]
        other = np.zeros_like(truth)
        other[min(quarters, key=lambda q: truth[q].sum())] = True
        other &= ~truth
        people.append(PersonParse(1, other, None, 1.0))
    mask = np.logical_or.reduce([person.mask for person in people])
    return ParseResult(mask.astype(np.uint8), mask, ("background", "person"), np.zeros((2, 3), np.uint8),
                       people=people)


def test_the_jitter_motion_keeps_to_its_limits():
    track = smooth_affine_track((500, 400), 60, np.random.default_rng(3))
    shifts = np.array([m[:, 2] - (np.eye(2) - m[:, :2]) @ np.array([249.5, 199.5]) for m in track])
    scales = np.array([np.sqrt(np.linalg.det(m[:, :2])) for m in track])
    assert np.abs(shifts[:, 0]).max() <= 50.01 and np.abs(shifts[:, 1]).max() <= 40.01
    assert np.abs(scales - 1).max() <= 0.1001
    assert np.abs(np.diff(shifts, axis=0)).max() < 10  # smooth: no jumps between frames


def test_jitter_agreement_of_the_reference_itself_is_one(bodypix):
    item = labelled_images(datasets_dir())[0]
    still = read_rgb(item.image)
    labels = bodypix.parse(still).labels
    assert agreement(labels, labels, np.ones(labels.shape, bool)) == (1.0, 1.0)
    report = evaluate_jitter(bodypix, [still], lambda: TemporalSmoother(0.7), frames=4, seed=1)
    for kind in ("raw", "smoothed"):
        assert 0.0 < report[kind]["person_iou"] <= 1.0 and 0.0 < report[kind]["part_accuracy"] <= 1.0


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, check=False)


def test_eval_commands_print_json_and_fail_in_one_line(single_clip, tmp_path):
    done = _cli("eval", "flicker", str(single_clip), "--frames", "3", "--size", "270x480", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["frames"] == 3 and set(report["flicker"]) == {"raw", "smoothed"}
    assert report["backend"] in BACKENDS and report["dtype"] == "fp32"  # what ran, as bench says

    missing = _cli("eval", "person-iou", "--dataset", str(tmp_path / "nowhere"), "--device", "cpu")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("partsight: error:") and len(missing.stderr.strip().splitlines()) == 1

    bad = _cli("eval", "flicker", str(single_clip), "--smoothing", "2")
    assert bad.returncode == 2 and "--smoothing" in bad.stderr


def test_person_iou_without_a_dataset_lists_the_datasets_instead_of_mixing_them(tmp_path):
    """The datasets folder holds several datasets: read as one they would mix, so without --dataset
    the command names them (with their sizes) in one line and runs nothing."""
    root = tmp_path / "datasets"
    for name, count in (("small", 2), ("smaller", 1)):
        (root / name).mkdir(parents=True)
        for index in range(count):
            for kind, ext in (("img", "jpg"), ("ann", "png")):
                source = datasets_dir() / "ccp_dev" / f"{kind}_{2 * index + 2:04d}.{ext}"
                (root / name / source.name).write_bytes(source.read_bytes())
    (root / "notes").mkdir()
    done = _cli("eval", "person-iou", "--device", "cpu", env={"PARTSIGHT_DATASETS_DIR": str(root)})
    assert done.returncode == 2 and done.stdout == "", done.stdout  # a usage error: a needed option is missing
    assert done.stderr == (f"partsight: error: pass --dataset DIR, one of the datasets in {root}: small (2 images), "
                           f"smaller (1 image); e.g. --dataset {root / 'small'} "
                           "(see 'partsight eval person-iou --help')\n")


def test_person_iou_names_the_labels_whose_images_are_missing(tmp_path):
    """A half-copied dataset: the labels with no image beside them are named in the JSON and in one
    warning line, not dropped silently; with no image at all, the error says how many lacked one."""
    for index in (2, 4, 6):
        for kind, ext in (("img", "jpg"), ("ann", "png")):
            source = datasets_dir() / "ccp_dev" / f"{kind}_{index:04d}.{ext}"
            (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "img_0004.jpg").unlink()
    done = _cli("eval", "person-iou", "--dataset", str(tmp_path), "--device", "cpu", "--max-people", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["images"] == 2 and report["labels_without_images"] == ["ann_0004.png"]
    # paths under the dataset, as labels_without_images (they began with the dataset folder's own name)
    assert [row["image"] for row in report["per_image"]] == ["img_0002.jpg", "img_0006.jpg"]
    assert done.stderr == ("partsight: warning: 1 label without its image left out (ann_0004.png); the report "
                           "covers the other 2 images\n")

    for image in tmp_path.glob("img_*"):
        image.unlink()
    empty = _cli("eval", "person-iou", "--dataset", str(tmp_path), "--device", "cpu")
    assert empty.returncode == 1 and empty.stdout == ""
    assert empty.stderr == (f"partsight: error: {tmp_path}: no labelled images (label_*.png, *_label.png or "
                            "ann_*.png with their images): 3 labels without their images\n")


@pytest.mark.parametrize("command", [["person-iou", "--dataset"], ["jitter", "--dataset"], ["part-iou"]])
def test_a_dataset_that_is_no_folder_says_which(tmp_path, command):
    """A mistyped --dataset: "no such folder", not "no labelled images" as for an empty folder,
    nor "is not a folder" as for a file."""
    shown = " ".join([*command[1:], ""])
    for path, words in ((tmp_path / "nowhere", ": no such folder"), (tmp_path / "a-file", " is not a folder")):
        (tmp_path / "a-file").write_text("x\n")
        done = _cli("eval", *command, str(path), "--device", "cpu")
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == f"partsight: error: {shown}{path}{words}\n"


@pytest.mark.parametrize("measure, words", [
    ("flicker", ["the share (0-1) of the pixels", "smoothed_person_iou_to_raw (0-1"]),
    ("jitter", ["person_iou and part_accuracy", "both 0-1", "--seed SEED", "the same seed moves the stills"]),
])
def test_eval_help_says_what_the_figures_are(capsys, measure, words):
    from realtime.cli import main

    with pytest.raises(SystemExit) as done:
        main(["eval", measure, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    for fragment in words:
        assert fragment in text


def test_top_level_help_lists_every_eval_measure(capsys):
    """`partsight --help` names each measure `eval` has (part-iou was left out), from the one list
    of them that also adds their subcommands (it was read back from argparse's private
    _choices_actions)."""
    from realtime.cli import main
    from realtime.eval_cli import MEASURES

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    line = text[text.index(" eval measure "):text.index(" batch ")]
    assert line == " eval measure flicker, jitter, person-iou, part-iou (see 'eval MEASURE --help'); prints JSON"
    assert list(MEASURES) == ["flicker", "jitter", "person-iou", "part-iou"]
    for measure in MEASURES:
        with pytest.raises(SystemExit) as done:
            main(["eval", measure, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: partsight eval {measure} ")
