"""BodyPix in PyTorch: parity with onnxruntime on real frames, decoding, and the parse API."""
from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from realtime.models import get_spec, load_parser
from realtime.models.bodypix import (
    HEAD_CHANNELS,
    SINGLE_PERSON_HEADS,
    load_bodypix_net,
    valid_input_size,
)
from realtime.models.grid_upsample import GridUpsampler

ort = pytest.importorskip("onnxruntime")


def _session(model: onnx.ModelProto):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _explicit_pads(model: onnx.ModelProto) -> onnx.ModelProto:
    """SAME_UPPER -> explicit pads. Valid for inputs whose side is odd at every stride-2 conv
    (k * 8 + 1), where SAME padding is symmetric."""
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("auto_pad") not in (b"SAME_UPPER", "SAME_UPPER"):
            continue
        kernel = attrs["kernel_shape"][0]
        dilation = attrs.get("dilations", [1, 1])[0]
        pad = dilation * (kernel - 1) // 2
        kept = [a for a in node.attribute if a.name != "auto_pad"]
        del node.attribute[:]
        node.attribute.extend(kept + [onnx.helper.make_attribute("pads", [pad] * 4)])
    return model


def _network_input(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA).astype(np.float32)


@pytest.mark.parametrize("stride, filename, size", [
    (16, "bodypix-mobilenetv1-050-stride16.onnx", (321, 577)),
    (16, "bodypix-mobilenetv1-050-stride16.onnx", (640, 480)),  # even sides: asymmetric SAME pads
    (8, "bodypix-mobilenetv1-050-stride8.onnx", (273, 481)),
])
def test_torch_logits_match_onnxruntime(weights_dir, single_frames, stride, filename, size):
    path = weights_dir / filename
    graph = onnx.load(str(path))
    if stride == 8:
        graph = _explicit_pads(graph)
    session = _session(graph)
    net = load_bodypix_net(path, get_spec("bodypix" if stride == 16 else "bodypix-s8"))
    for frame in single_frames[:2]:
        image = _network_input(frame, size)
        names = [o.name for o in session.get_outputs()]
        reference = dict(zip(names, session.run(None, {"input": (image / 127.5 - 1.0)[None]})))
        with torch.inference_mode():
            ours = net(torch.from_numpy(image).permute(2, 0, 1)[None])
        assert set(ours) == set(HEAD_CHANNELS)
        for name, tensor in ours.items():
            expected = reference[name]
            got = tensor.permute(0, 2, 3, 1).numpy()
            assert got.shape == expected.shape, name
            np.testing.assert_allclose(got, expected, atol=1e-3, rtol=0, err_msg=name)


def test_frozen_cpu_graph_matches_eager(single_frames):
    bodypix = load_parser("bodypix", device="cpu", backend="torch")
    batch = bodypix.preprocess([single_frames[1]]).batch
    fast = bodypix.infer(batch)
    with torch.inference_mode():
        eager = bodypix.net(batch, SINGLE_PERSON_HEADS)
    for name in SINGLE_PERSON_HEADS:
        np.testing.assert_allclose(fast[name].numpy(), eager[name].numpy(), atol=1e-4)


def test_wrong_stride_weights_are_refused(weights_dir):
    with pytest.raises(ValueError, match="output stride 16"):
        load_bodypix_net(weights_dir / "bodypix-mobilenetv1-050-stride8.onnx", get_spec("bodypix"))


def test_person_found_and_keypoints_on_the_person(bodypix, single_frames):
    for frame in single_frames:
        result = bodypix.parse(frame)
        height, width = frame.shape[:2]
        assert result.labels.shape == (height, width) and result.labels.dtype == np.uint8
        assert result.person_mask.dtype == bool
        # The moving person fills a good share of the portrait frame.
        assert 0.03 < result.person_mask.mean() < 0.6
        assert set(np.unique(result.labels)) - {0} <= set(range(1, 25))
        assert not result.labels[~result.person_mask].any(), "part labels only inside the person"
        assert (result.labels[result.person_mask] > 0).all()
        confident = result.keypoints[result.keypoints[:, 2] > 0.5]
        assert len(confident) >= 8
        mask = cv2.dilate(result.person_mask.astype(np.uint8), np.ones((61, 61), np.uint8)) > 0
        xs = np.clip(np.round(confident[:, 0]).astype(int), 0, width - 1)
        ys = np.clip(np.round(confident[:, 1]).astype(int), 0, height - 1)
        assert mask[ys, xs].mean() >= 0.8, "confident keypoints lie on or near the person mask"


def test_labels_are_the_argmax_of_upsampled_logits(bodypix, single_frames):
    frame = cv2.resize(single_frames[1], (360, 640))
    prepared = bodypix.preprocess([frame])
    outputs = bodypix.infer(prepared.batch)
    result = bodypix.postprocess(outputs, prepared)[0]
    logits = torch.cat([outputs["segments"], outputs["part_heatmaps"]], dim=1)
    upsampled = F.interpolate(logits, size=frame.shape[:2], mode="bilinear", align_corners=True)[0]
    person = (upsampled[0] > 0).numpy()
    labels = (upsampled[1:].argmax(0) + 1).numpy().astype(np.uint8) * person
    assert (result.person_mask == person).mean() > 0.999
    assert (result.labels == labels).mean() > 0.999


def test_grid_upsampler_argmax_is_exact_on_random_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 9, 7)).astype(np.float32)
    upsampler = GridUpsampler()
    labels = upsampler.argmax(logits, (101, 77))
    dense = F.interpolate(torch.from_numpy(logits)[None], size=(101, 77), mode="bilinear", align_corners=True)[0]
    assert (labels == dense.argmax(0).numpy()).mean() > 0.999


def test_grid_upsampler_masked_and_scattered_pixels_match_the_dense_argmax():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(24, 22, 29)).astype(np.float32)
    frame_hw = (480, 640)
    dense = F.interpolate(torch.from_numpy(logits)[None], size=frame_hw, mode="bilinear",
                          align_corners=True)[0].argmax(0).numpy()
    mask = np.zeros(frame_hw, bool)
    mask[100:400, 200:500] = True
    upsampler = GridUpsampler()
    labels = upsampler.argmax(logits, frame_hw, mask)
    assert not labels[~mask].any()
    assert (labels[mask] == dense[mask]).mean() > 0.999
    ys, xs = np.nonzero(mask)
    order = rng.permutation(len(ys))  # pixels in any order, not only row by row
    scattered = upsampler.argmax_at(logits, frame_hw, ys[order], xs[order])
    assert (scattered == labels[ys[order], xs[order]]).all()
    assert upsampler.argmax_at(logits, frame_hw, ys[:0], xs[:0]).shape == (0,)


def test_parse_batch_matches_parse(bodypix, single_frames):
    frames = [single_frames[0], single_frames[2]]
    batched = bodypix.parse_batch(frames)
    for frame, result in zip(frames, batched):
        single = bodypix.parse(frame)
        assert (single.labels == result.labels).mean() > 0.999
        np.testing.assert_allclose(single.keypoints, result.keypoints, atol=1e-2)
    assert bodypix.parse_batch([]) == []


def test_internal_resolution_is_a_setting(single_frames):
    parser = load_parser("bodypix", device="cpu", internal_size=257)
    assert parser.input_size((1080, 1920)) == valid_input_size((1080, 1920), 257, 16)
    assert max(parser.input_size((1080, 1920))) == 257
    parser.internal_size = 449
    small = parser.parse(single_frames[1])
    parser.internal_size = 641
    large = parser.parse(single_frames[1])
    assert small.person_mask.shape == large.person_mask.shape
    overlap = (small.person_mask & large.person_mask).sum() / (small.person_mask | large.person_mask).sum()
    assert overlap > 0.6
    with pytest.raises(ValueError):
        parser.internal_size = 8


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32)])
def test_bad_frames_raise_clear_errors(bodypix, bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        bodypix.parse(bad)
