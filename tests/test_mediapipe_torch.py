"""The MediaPipe networks in PyTorch (BlazePose detector, BlazePose landmarks "full", selfie
segmenters) against the TFLite interpreter (ai-edge-litert, the dev extra) on real frames."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from realtime import weights as weights_cache
from realtime.imaging import to_nchw_float
from realtime.models.blazepose_detector import (
    BlazePoseDetector,
    decode_boxes,
    letterbox,
    load_blazepose_detector_net,
    ssd_anchors,
    weighted_nms,
)
from realtime.models.blazepose_landmark import (
    BlazePoseLandmarker,
    Roi,
    crop_rois,
    load_blazepose_landmark_net,
    roi_from_points,
)
from realtime.models.common import nchw_float
from realtime.models.registry import get_network_spec
from realtime.models.selfie_segmenter import SelfieSegmenter, load_selfie_segmenter_net
from realtime.models.tflite_graph import read_tflite
from conftest import read_frames

CLIPS = {"cg-mannequin-squat.mp4": [0, 60, 120], "pose2sim-multi-cam01.mp4": [0, 70], "sports2d-demo.mp4": [40]}


@pytest.fixture(scope="module")
def frames(media_dir) -> list[np.ndarray]:
    return [f for clip, idx in CLIPS.items() for f in read_frames(media_dir / clip, idx)]


def _interpreter(name: str):
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter",
        reason="the TFLite reference runtime is missing: pip install ai-edge-litert (the dev extra)")
    path = weights_cache.resolve(get_network_spec(name).weights)
    interpreter = litert.Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _reference(interpreter, x_nhwc: np.ndarray) -> list[list[np.ndarray]]:
    """The interpreter's outputs per input (batch 1 each), in the file's output order."""
    results = []
    for x in x_nhwc:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None].astype(np.float32))
        interpreter.invoke()
        results.append([interpreter.get_tensor(o["index"])[0].copy() for o in interpreter.get_output_details()])
    return results


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_every_graph_op_is_read_and_weights_are_dense_float32():
    ops = {name: read_tflite(weights_cache.resolve(get_network_spec(name).weights)).op_counts()
           for name in ("blazepose-detector", "blazepose-full", "selfie", "selfie-landscape")}
    assert "DEQUANTIZE" not in ops["blazepose-full"] and "DENSIFY" not in ops["blazepose-detector"]
    assert ops["blazepose-detector"]["CONV_2D"] == 45 and ops["blazepose-detector"]["DEPTH_TO_SPACE"] == 3
    assert ops["blazepose-full"]["DEPTHWISE_CONV_2D"] == 38 and ops["blazepose-full"]["MAX_POOL_2D"] == 2
    assert ops["selfie"]["Convolution2DTransposeBias"] == 1 and ops["selfie-landscape"]["MEAN"] == 10


def test_anchors_follow_mediapipe():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    assert np.allclose(anchors[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    assert np.allclose(anchors[1568], [0.5 / 14, 0.5 / 14]) and np.allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_detector_matches_tflite(frames):
    interpreter = _interpreter("blazepose-detector")
    net = load_blazepose_detector_net()
    x = np.stack([letterbox(f, 224)[0] for f in frames]).astype(np.float32) / 127.5 - 1.0
    with torch.inference_mode():
        boxes, logits = net(torch.from_numpy(x).permute(0, 3, 1, 2))
    anchors = torch.from_numpy(ssd_anchors())
    ours_boxes = decode_boxes(boxes, anchors).numpy()
    ours_scores = torch.sigmoid(logits.clamp(-100, 100)).numpy()
    found = 0
    for i, (ref_boxes, ref_logits) in enumerate(_reference(interpreter, x)):
        ref_scores = torch.sigmoid(torch.from_numpy(ref_logits[:, 0]).clamp(-100, 100)).numpy()
        assert np.abs(ours_scores[i] - ref_scores).max() < 1e-3
        ref_decoded = decode_boxes(torch.from_numpy(ref_boxes), anchors).numpy()
        confident = ref_scores > 0.1
        assert np.abs(ours_boxes[i][confident] - ref_decoded[confident]).max() < 1e-3  # normalised
        ours, ref = weighted_nms(ours_boxes[i], ours_scores[i]), weighted_nms(ref_decoded, ref_scores)
        assert len(ours) == len(ref)
        for (a, sa), (b, sb) in zip(ours, ref):
            assert np.abs(a - b).max() < 1e-3 and abs(sa - sb) < 1e-3
        found += len(ours)
    assert found >= len(frames)


@pytest.fixture(scope="module")
def rois(frames) -> list[tuple[np.ndarray, list[Roi]]]:
    detector = BlazePoseDetector()
    return [(f, [roi_from_points(d.keypoints[0], d.keypoints[1]) for d in people])
            for f, people in zip(frames, detector(frames))]


def test_landmarks_match_tflite(rois):
    interpreter = _interpreter("blazepose-full")
    net = load_blazepose_landmark_net()
    x = np.concatenate([crop_rois(f, r) for f, r in rois]).astype(np.float32) / 255.0
    assert len(x) >= 6
    with torch.inference_mode():
        out = net(torch.from_numpy(x).permute(0, 3, 1, 2))  # all ROIs in one batch
    for i, (ref_lm, ref_flag, ref_seg, ref_heat, ref_world) in enumerate(_reference(interpreter, x)):
        ref_lm = ref_lm.reshape(39, 5)
        ours = out.landmarks[i].numpy()
        assert np.abs(ours[:, :3] - ref_lm[:, :3]).max() / 256 < 1e-3  # x, y, z normalised
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        assert np.abs(sig(ours[:, 3:]) - sig(ref_lm[:, 3:])).max() < 1e-3  # visibility, presence
        assert abs(float(out.pose_flag[i]) - float(ref_flag[0])) < 1e-3
        assert np.abs(out.world[i].numpy() - ref_world.reshape(39, 3)).max() < 1e-3  # metres
        assert _iou(out.segmentation[i].numpy() > 0, ref_seg[..., 0] > 0) >= 0.999
        assert np.abs(out.heatmap[i].numpy() - ref_heat.transpose(2, 0, 1)).max() < 1e-2


@pytest.mark.parametrize("name", ["selfie", "selfie-landscape"])
def test_selfie_segmenters_match_tflite(frames, name):
    import cv2

    interpreter = _interpreter(name)
    net = load_selfie_segmenter_net(name)
    h, w = net.input_size
    x = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]).astype(np.float32) / 255.0
    with torch.inference_mode():
        ours = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    for i, (ref,) in enumerate(_reference(interpreter, x)):
        assert np.abs(ours[i] - ref[..., 0]).max() < 1e-3
        assert _iou(ours[i] > 0.5, ref[..., 0] > 0.5) >= 0.999


def test_network_inputs_made_in_numpy_are_pytorchs_to_the_bit(frames):
    """to_nchw_float (the detector's [-1, 1] input, the landmark and selfie networks' [0, 1]) and
    nchw_float (BodyPix's 0-255 input on the CPU) give the very numbers of PyTorch's
    permute().float() arithmetic, in NCHW order."""
    batch = np.stack([letterbox(f, 224)[0] for f in frames])
    reference = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
    detector_input = torch.from_numpy(to_nchw_float(batch, 127.5, 1.0))
    assert detector_input.is_contiguous() and torch.equal(detector_input, reference / 127.5 - 1.0)
    assert torch.equal(torch.from_numpy(to_nchw_float(batch, 255.0)), reference / 255.0)
    pixels = nchw_float(batch, torch.device("cpu"))
    assert pixels.is_contiguous() and torch.equal(pixels, reference)


def test_landmarks_land_on_the_person(rois):
    frame, frame_rois = rois[0]  # the CG mannequin, standing
    (person,) = BlazePoseLandmarker()(frame, frame_rois)
    h, w = frame.shape[:2]
    assert person.score > 0.9 and person.visibility[:25].mean() > 0.9
    nose, hips, ankles = person.xyz[0, :2], person.xyz[[23, 24], :2].mean(0), person.xyz[[27, 28], :2].mean(0)
    assert 0 <= nose[0] < w and nose[1] < hips[1] < ankles[1] <= h * 1.05  # upright: head, hips, feet
    assert 0.3 < np.linalg.norm(person.world[11] - person.world[23]) < 0.8  # shoulder to hip in metres
    again = roi_from_points(person.xyz[33, :2], person.xyz[34, :2])
    assert abs(again.cx - frame_rois[0].cx) < 0.1 * w and abs(again.rotation) < math.pi / 4


def test_selfie_segmenter_finds_the_person(frames):
    (prob,) = SelfieSegmenter("selfie")(frames[:1])
    assert prob.shape == frames[0].shape[:2] and 0.05 < (prob > 0.5).mean() < 0.6


def _empty_parse(frame: np.ndarray):
    from realtime.types import ParseResult

    h, w = frame.shape[:2]
    return ParseResult(labels=np.zeros((h, w), np.uint8), person_mask=np.zeros((h, w), bool),
                       label_names=("background",), palette=np.zeros((1, 3), np.uint8))


def test_torch_stage_tracks_two_people_top_down(media_dir):
    from realtime.models.blazepose_torch import BlazePoseTorchStage
    from realtime.types import Frame

    stage = BlazePoseTorchStage(max_people=2, device="cpu")
    frames = read_frames(media_dir / "pose2sim-multi-cam01.mp4", [0, 1, 2])
    for i, frame in enumerate(frames):
        out = stage(Frame(frame, i, i / 60), _empty_parse(frame))
        assert len(out.people) == 2 and {p.id for p in out.people} == {0, 1}
        hips = [p.keypoints[11:13, :2].mean(axis=0) for p in out.people]
        assert np.linalg.norm(hips[0] - hips[1]) > 200  # two bodies, not one found twice
        for person in out.people:
            assert person.keypoints.shape == (17, 3) and person.mask.any()
            assert person.mask[int(hips[out.people.index(person)][1]), int(hips[out.people.index(person)][0])]
    assert len(stage._tracked) == 2  # the next frame starts from the landmarks' ROIs
    stage.reset()
    assert stage._tracked == []


def test_torch_stage_gives_keypoints_to_the_parsed_person_and_none_on_an_empty_frame(media_dir):
    from dataclasses import replace

    from realtime.models.blazepose_torch import BlazePoseTorchStage
    from realtime.types import Frame, PersonParse

    stage = BlazePoseTorchStage(max_people=1)
    (frame,) = read_frames(media_dir / "cg-mannequin-squat.mp4", [0])
    mask = np.zeros(frame.shape[:2], bool)
    mask[150:, :] = True
    parse = replace(_empty_parse(frame), person_mask=mask, people=[PersonParse(7, mask, None, 0.8)])
    out = stage(Frame(frame, 0, 0.0), parse)
    assert [p.id for p in out.people] == [7], "the parsed person keeps their ID"
    assert out.people[0].score == pytest.approx(out.people[0].keypoints[:, 2].mean()), "scored by BlazePose"
    assert out.people[0].keypoints[:, 2].min() > 0.5
    stage.reset()
    black = np.zeros_like(frame)
    empty = _empty_parse(black)
    assert stage(Frame(black, 0, 0.0), empty) is empty


@pytest.mark.parametrize("max_people", [1, 2])
def test_torch_stage_keeps_at_most_max_people_giving_way_to_those_it_follows(media_dir, max_people):
    """The parser reads a person where BlazePose finds nobody (sports2d with --max-people 1:
    BodyPix read the woman while BlazePose followed the man, two people in 25 frames): with one
    person, the one BlazePose follows is kept; with two, both."""
    from dataclasses import replace

    from realtime.models.blazepose_torch import BlazePoseTorchStage
    from realtime.types import Frame, PersonParse

    stage = BlazePoseTorchStage(max_people=max_people)
    (frame,) = read_frames(media_dir / "cg-mannequin-squat.mp4", [0])
    elsewhere = np.zeros(frame.shape[:2], bool)
    elsewhere[:60, :60] = True  # the top-left corner, away from the mannequin
    parse = replace(_empty_parse(frame), person_mask=elsewhere, people=[PersonParse(7, elsewhere, None, 0.9)])
    out = stage(Frame(frame, 0, 0.0), parse)
    assert len(out.people) == max_people
    followed = [p for p in out.people if p.keypoints is not None]
    assert len(followed) == 1 and followed[0].keypoints[:, 2].min() > 0.5
    assert (7 in {p.id for p in out.people}) == (max_people == 2)


def test_torch_stage_follows_no_body_the_detector_makes_up_on_a_crop():
    """ccp_dev/img_0768 (a woman in the middle of a 550 x 825 street photo): BodyPix also reads a
    19 x 55 px sliver at the right edge; on a crop around it the detector "finds" a body 2,222 px
    tall centred off the photo, whose segmentation took the trees and the shadow (that photo's
    person IoU 0.889 -> 0.643). A body found on the crop must lie in it."""
    import cv2
    from _paths import datasets_dir

    from realtime.models import load_parser
    from realtime.models.blazepose_torch import BlazePoseTorchStage
    from realtime.types import Frame

    rgb = cv2.cvtColor(cv2.imread(str(datasets_dir() / "ccp_dev" / "img_0768.jpg")), cv2.COLOR_BGR2RGB)
    parse = load_parser("bodypix", max_people=4).parse(rgb)
    assert any(p.mask[:, 500:].any() and not p.mask[:, :400].any() for p in parse.people), "the sliver is read"
    out = BlazePoseTorchStage(max_people=4)(Frame(rgb, 0, 0.0), parse)
    followed = [p for p in out.people if p.landmarks is not None]
    assert len(followed) == 1 and followed[0].mask[:, 400:].sum() < 0.01 * followed[0].mask.sum()


def test_pose_blazepose_torch_builds_the_torch_stage():
    from realtime.build import build_stages
    from realtime.config import PipelineConfig

    stages = build_stages(PipelineConfig(pose="blazepose-torch", device="cpu", max_people=3))
    assert stages.pose_source == "blazepose-torch" and stages.result[0].max_people == 3


def test_written_out_landmark_network_equals_the_graph_run_op_by_op(rois):
    """BlazePoseFullNet (the architecture written out) against TFLiteGraphNet (the file's graph
    run op by op): the same weights in the same places give the same numbers."""
    from realtime.models.blazepose_landmark import BlazePoseFullNet, BlazePoseLandmarkNet
    from realtime.models.tflite_graph import load_tflite_net

    written = load_blazepose_landmark_net()
    assert isinstance(written.body, BlazePoseFullNet)
    graph = BlazePoseLandmarkNet(load_tflite_net(weights_cache.resolve(get_network_spec("blazepose-full").weights)))
    frame, frame_rois = rois[0]
    x = torch.from_numpy(crop_rois(frame, frame_rois)).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        a, b = written(x), graph(x)
    for name in ("landmarks", "pose_flag", "segmentation", "heatmap", "world"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-4, rtol=1e-4), name


def test_written_out_detector_equals_the_graph_run_op_by_op(frames):
    from realtime.models.blazepose_detector import BlazePoseDetectorNet
    from realtime.models.tflite_graph import load_tflite_net

    written = load_blazepose_detector_net()
    assert type(written) is BlazePoseDetectorNet
    graph = load_tflite_net(weights_cache.resolve(get_network_spec("blazepose-detector").weights))
    x = torch.from_numpy(np.stack([letterbox(f, 224)[0] for f in frames[:2]])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.inference_mode():
        (boxes, scores), (ref_boxes, ref_scores) = written(x), graph(x)
    assert torch.allclose(boxes, ref_boxes, atol=1e-3, rtol=1e-4) and torch.allclose(scores, ref_scores[..., 0], atol=1e-4)


@pytest.mark.parametrize("name", ["selfie", "selfie-landscape"])
def test_written_out_selfie_segmenters_equal_the_graph_run_op_by_op(frames, name):
    import cv2

    from realtime.models.selfie_segmenter import SelfieNet
    from realtime.models.tflite_graph import load_tflite_net

    written = load_selfie_segmenter_net(name)
    assert isinstance(written.body, SelfieNet)
    graph = load_tflite_net(weights_cache.resolve(get_network_spec(name).weights))
    h, w = written.input_size
    x = torch.from_numpy(np.stack([cv2.resize(f, (w, h)) for f in frames[:2]])).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        assert torch.allclose(written(x), graph(x)[0][:, 0], atol=1e-5)
