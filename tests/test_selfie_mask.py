"""The sharper person mask: MediaPipe's selfie segmenter run in PyTorch (no mediapipe), averaged
with BlazePose's segmentation and refined along the frame's edges (`--person-mask pose`, what
the default `auto` is with BlazePose), or moving BodyPix's mask towards it (`selfie`); BodyPix
keeps the part labels. On the real labelled images and real clips."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
from _paths import REPO, datasets_dir
from conftest import read_frames

from realtime.analysis.tracking import PersonTracker
from realtime.build import person_mask_chain
from realtime.config import PipelineConfig
from realtime.evaluation import labelled_images, mask_iou, read_person_truth, read_rgb, run_stages
from realtime.imaging import mask_nonzero
from realtime.models.person_mask import PersonMaskStage, person_segmenter
from realtime.smoothing import TemporalSmoother
from realtime.types import Frame


def _full_body_images():
    """The shared skin/clothes/hair photos: one person, whole body, the closest here to the
    issue's acceptance set of full-body photos."""
    return [item for item in labelled_images(datasets_dir()) if item.image.parent.name == "skin_clothes_hair"]


def test_fused_mask_beats_the_parsers_on_full_body_photos_and_the_smoother_keeps_the_gain(bodypix):
    """The chain with BlazePose (then the selfie mask); each photo also as a still scene of 6
    frames through the smoother, which then holds the refined probability on its grid."""
    chain = person_mask_chain(PipelineConfig(device="cpu", person_mask="pose"))
    parser_iou, fused_iou, smoothed_iou = [], [], []
    for item in _full_body_images():
        rgb, truth = read_rgb(item.image), read_person_truth(item.label)
        parse = bodypix.parse(rgb)
        parser_iou.append(mask_iou(parse.person_mask, truth))
        fused_iou.append(mask_iou(run_stages(chain, Frame(rgb, 0, 0.0), parse, still=True).person_mask, truth))
        smoother = TemporalSmoother(0.8)
        for stage in chain:
            stage.reset()
        for index in range(6):
            frame = Frame(rgb, index, index / 30)
            smoothed = smoother(frame, run_stages(chain, frame, bodypix.parse(rgb)))
        smoothed_iou.append(mask_iou(smoothed.person_mask, truth))
    assert len(fused_iou) >= 5
    # measured: 0.848 -> 0.872 (0.868 smoothed) over the 7 photos; the worst photo (a torso close-up
    # with hands towards the camera) drops by 0.090 (by 0.048 before the fusion's threshold was
    # raised to 0.575 for the full-body photos of ccp_dev)
    assert np.mean(fused_iou) >= np.mean(parser_iou) + 0.02, (parser_iou, fused_iou)
    assert min(f - p for f, p in zip(fused_iou, parser_iou)) > -0.11, (parser_iou, fused_iou)
    assert np.mean(smoothed_iou) >= np.mean(parser_iou) + 0.02, (parser_iou, smoothed_iou)


def test_parts_and_people_follow_the_fused_mask(media_dir: Path, bodypix):
    """After smoothing and tracking on a two-person clip: every fused person pixel has a part,
    nothing outside it does, and the people still split it exactly."""
    bodypix.max_people = 4
    stages = [PersonMaskStage(person_segmenter("selfie"), name="selfie-mask"), PersonTracker(), TemporalSmoother(0.8)]
    without = [PersonTracker(), TemporalSmoother(0.8)]
    changed = 0
    for index, rgb in enumerate(read_frames(media_dir / "pose2sim-multi-cam01.mp4", list(range(0, 40, 4)))):
        rgb = cv2.resize(rgb, (540, 960), interpolation=cv2.INTER_AREA)
        frame = Frame(rgb, index, index / 15)
        parse = bodypix.parse(rgb)
        fused = run_stages(stages, frame, parse)
        changed += int((fused.person_mask != run_stages(without, frame, parse).person_mask).sum())
        np.testing.assert_array_equal(fused.labels > 0, fused.person_mask)
        union = np.zeros_like(fused.person_mask)
        for person in fused.people:
            assert not (union & person.mask).any(), f"frame {index}: people overlap"
            union |= person.mask
        np.testing.assert_array_equal(union, fused.person_mask)
        # a person the refined mask does not see at all is dropped; the others keep their IDs
        assert {p.id for p in fused.people} <= {p.id for p in parse.people}
    assert changed > 0


def test_process_with_the_fused_mask_writes_a_playable_video(single_clip: Path, tmp_path: Path):
    out, metrics = tmp_path / "fused.mp4", tmp_path / "fused.jsonl"
    run = subprocess.run([sys.executable, "main.py", "process", str(single_clip), "-o", str(out), "--metrics",
                          str(metrics), "--frames", "12", "--size", "640x480", "--person-mask", "selfie"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 12 and all(line["people"] for line in lines)


def test_a_parser_without_person_probability_keeps_its_mask_and_a_named_source_says_so(caplog):
    """M2FP and SCHP give sharp masks and no `part_probs`: nothing to fuse with. A segmenter the
    user named warns once; the default ("auto") stays quiet."""
    from realtime.models.labels import LIP_PARTS
    from realtime.types import ParseResult

    labels = np.zeros((48, 32), np.uint8)
    labels[10:40, 8:24] = 5
    parse = ParseResult(labels=labels, person_mask=labels > 0, label_names=LIP_PARTS.names, palette=LIP_PARTS.palette)
    segmenter = person_segmenter("selfie")
    for warn, expected in ((False, 0), (True, 1)):
        caplog.clear()
        stage = PersonMaskStage(segmenter, name="selfie-mask", warn_unfused=warn)
        for index in range(3):
            assert stage(Frame(np.zeros((48, 32, 3), np.uint8), index, 0.0), parse) is parse
        assert sum("no person probability" in record.message for record in caplog.records) == expected


def test_mask_nonzero_finds_the_pixels_np_nonzero_finds_in_the_same_order():
    """The person-mask stage finds the pixels it adds in their box only: the same (ys, xs), row
    by row, as np.nonzero over the frame, on real person masks, a mask's edge rows and columns,
    an empty mask and a full one."""
    masks = [read_person_truth(item.label) for item in _full_body_images()[:8]]
    edges = np.zeros((48, 64), bool)
    edges[0, 5], edges[-1, -1], edges[20, 0], edges[7, -1] = True, True, True, True
    masks += [edges, np.zeros((48, 64), bool), np.ones((48, 64), bool)]
    for mask in masks:
        expected, found = np.nonzero(mask), mask_nonzero(mask)
        assert all(np.array_equal(e, f) and e.dtype == f.dtype for e, f in zip(expected, found))
