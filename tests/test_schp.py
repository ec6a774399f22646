"""SCHP parity with the genuine InPlaceABN reference (shared/fixtures/schp_lip)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from _paths import datasets_dir, fixtures_dir
from _weight_rule import checks, generate, read_keys

from realtime.models import load_parser
from realtime.models.common import Prepared
from realtime.models.registry import get_spec
from realtime.models.schp import (
    AugmentCE2P,
    Geometry,
    SCHPParser,
    box_affine,
    schp_net,
    schp_state_dict,
)

SCHP = fixtures_dir() / "schp_lip"
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not SCHP.is_dir(), reason=f"parity fixtures not found at {fixtures_dir()}"),
]
REFERENCE = {"fusion": "fusion_logits", "parsing": "parsing_logits", "edge": "edge_logits"}


def rel_error(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def released(state: dict[str, torch.Tensor]) -> dict:
    """The layout of SCHP's released .pth files."""
    return {"state_dict": {"module." + key: value for key, value in state.items()}}


def load(state: dict[str, torch.Tensor]) -> AugmentCE2P:
    net = schp_net(get_spec("schp-lip"))
    net.load_state_dict(schp_state_dict(released(state), net), strict=True)
    return net.eval()


def run(net: AugmentCE2P) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return net(torch.from_numpy(np.load(SCHP / "input.npy")), heads=tuple(REFERENCE))




@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return generate(read_keys(SCHP / "keys.txt"))


@pytest.fixture(scope="module")
def outputs(state) -> dict[str, torch.Tensor]:
    return run(load(state))


def test_generated_weights_follow_the_fixture_rule(state):
    expected = json.loads((SCHP / "meta.json").read_text())["weights"]["checks"]
    count, sha256, total = checks(state)
    assert (len(state), count, sha256) == (expected["n_keys"], expected["n_values"], expected["sha256_f32le_concat"])
    assert total == pytest.approx(expected["sum_f64"], rel=1e-12)
    np.testing.assert_allclose(state["conv1.weight"].flatten()[:3].numpy(), [-0.10210613, -0.21746294, -0.12959272],
                               rtol=1e-6)


@pytest.mark.parametrize("head", list(REFERENCE))
def test_network_matches_reference(outputs, head):
    assert rel_error(outputs[head], np.load(SCHP / f"{REFERENCE[head]}.npy")) <= 1e-4


def test_inplace_abn_sign_of_weights_does_not_matter(state, outputs):
    flipped = dict(state)
    for name, value in state.items():
        if name.endswith(".weight") and value.ndim == 1:
            flipped[name] = value.clone()
            flipped[name][1::2] *= -1
    for head, value in run(load(flipped)).items():
        torch.testing.assert_close(value, outputs[head], rtol=0, atol=0)


def test_optimised_parser_matches_reference(state):
    parser = SCHPParser(load(state), get_spec("schp-lip"), torch.device("cpu"))
    batch = torch.from_numpy(np.load(SCHP / "input.npy")).contiguous(memory_format=torch.channels_last)
    logits = parser.infer(batch)
    assert rel_error(logits, np.load(SCHP / "fusion_logits.npy")) <= 1e-4

    _, to_frame = box_affine((130, 377), (473, 473))
    labels = parser.postprocess(logits, Prepared(batch, Geometry((377, 130), to_frame)))[0].labels
    expected = cv2.imread(str(SCHP / "labels.png"), cv2.IMREAD_UNCHANGED)
    assert np.mean(labels != expected) <= 1e-3


def test_preprocessing_is_bit_exact():
    meta = json.loads((SCHP / "meta.json").read_text())["reference_run"]
    to_input, to_frame = box_affine((130, 377), (473, 473))
    np.testing.assert_allclose(to_input, meta["affine_fwd_2x3"], atol=1e-6)
    np.testing.assert_allclose(to_frame, meta["affine_inv_2x3"], atol=1e-6)
    parser = SCHPParser(schp_net(get_spec("schp-lip")), get_spec("schp-lip"), torch.device("cpu"), fast=False)
    image = read_rgb(datasets_dir() / "lip" / "img_val_86_185913.jpg")
    np.testing.assert_array_equal(image, read_rgb(SCHP / "input_image.png"))
    prepared = parser.preprocess([image])
    assert prepared.geometry.frame_hw == (377, 130)
    # OpenCV 4's fixed-point warp, as the reference ran it, whatever OpenCV is installed
    np.testing.assert_array_equal(prepared.batch.numpy(), np.load(SCHP / "input.npy"))


def test_postprocessing_of_the_reference_logits_gives_the_reference_labels():
    parser = SCHPParser(schp_net(get_spec("schp-lip")), get_spec("schp-lip"), torch.device("cpu"), fast=False)
    _, to_frame = box_affine((130, 377), (473, 473))
    batch = torch.from_numpy(np.load(SCHP / "input.npy"))
    logits = torch.from_numpy(np.load(SCHP / "fusion_logits.npy"))
    labels = parser.postprocess(logits, Prepared(batch, Geometry((377, 130), to_frame)))[0].labels
    np.testing.assert_array_equal(labels, cv2.imread(str(SCHP / "labels.png"), cv2.IMREAD_UNCHANGED))


def test_public_path_matches_the_reference_labels(state, tmp_path):
    """load_parser + parse(image), the way users call it, against the reference's labels.png:
    at most the 2 pixels whose top-2 logits lie within 1e-4 (README 4.4) may differ."""
    path = tmp_path / "exp-schp-201908261155-lip.pth"
    torch.save(released(state), path)
    parser = load_parser("schp-lip", device="cpu", weights=path)
    image = read_rgb(SCHP / "input_image.png")
    result = parser.parse(image)
    expected = cv2.imread(str(SCHP / "labels.png"), cv2.IMREAD_UNCHANGED)
    assert result.labels.shape == image.shape[:2] and result.labels.dtype == np.uint8
    assert result.label_names == get_spec("schp-lip").labels.names
    assert np.count_nonzero(result.labels != expected) <= 2


def test_load_parser_reads_a_pascal_file(tmp_path):
    keys = [(name, (7, *shape[1:]) if name.startswith(("decoder.conv4", "fushion.3")) else shape)
            for name, shape in read_keys(SCHP / "keys.txt")]
    path = tmp_path / "exp-schp-201908270938-pascal-person-part.pth"
    torch.save(released(generate(keys)), path)
    parser = load_parser("schp-pascal", device="cpu", weights=path)
    image = read_rgb(datasets_dir() / "cihp" / "0005008.jpg")
    result = parser.parse(image)
    assert result.labels.shape == image.shape[:2] and result.labels.max() < 7
    with pytest.raises(ValueError, match="7"):
        load_parser("schp-atr", device="cpu", weights=path)
