"""Human_seg parity with Human-Segmentation-PyTorch's reference outputs (shared/fixtures/humanseg_*,
README section 6) and its released trainer checkpoints, loaded without running their code."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _humanseg_checkpoint import save_trainer_checkpoint
from _paths import fixtures_dir
from _weight_rule import checks, generate, read_keys

from realtime.models.backends import available_backends
from realtime.models.checkpoint import load_checkpoint
from realtime.models.common import Prepared
from realtime.models.fixture_weights import fixture_state
from realtime.models.humanseg import (
    EAGER_ONLY,
    TRAINER_CHECKPOINT_CLASSES,
    HumanSegmenter,
    TrainerLog,
    humanseg_net,
    letterbox,
    load_humanseg,
    load_humanseg_net,
)
from realtime.models.registry import SEGMENTER_SPECS
from realtime.weights import WeightsError

NAMES = list(SEGMENTER_SPECS)
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not (fixtures_dir() / "humanseg_icnet_resnet18").is_dir(),
                       reason=f"parity fixtures not found at {fixtures_dir()}"),
]


def fixture(name: str) -> Path:
    return fixtures_dir() / name.replace("-", "_")


def rel_error(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def reference_mask(name: str) -> np.ndarray:
    return cv2.imread(str(fixture(name) / "mask.png"), cv2.IMREAD_UNCHANGED).astype(bool)


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, torch.Tensor]]:
    return {name: generate(read_keys(fixture(name) / "keys.txt")) for name in NAMES}


def segmenter(name: str, state: dict[str, torch.Tensor], *, fast: bool, backend: str = "torch") -> HumanSegmenter:
    net = humanseg_net(SEGMENTER_SPECS[name])
    net.load_state_dict(state, strict=True)
    return HumanSegmenter(net, SEGMENTER_SPECS[name], torch.device("cpu"), fast=fast, backend=backend)


@pytest.mark.parametrize("name", NAMES)
def test_generated_weights_follow_the_fixture_rule_in_the_networks_own_order(name, states):
    """The network's state_dict has the released names, shapes and order (keys.txt), so the rule
    applied to the network itself gives the fixture's weights."""
    expected = json.loads((fixture(name) / "meta.json").read_text())["weights"]["checks"]
    count, sha256, total = checks(states[name])
    assert (len(states[name]), count, sha256) == (expected["n_keys"], expected["n_values"], expected["sha256_f32le_concat"])
    assert total == pytest.approx(expected["sum_f64"], rel=1e-12)
    assert checks(fixture_state(humanseg_net(SEGMENTER_SPECS[name])))[1] == sha256


@pytest.mark.parametrize("path", ["reference", *available_backends()])
@pytest.mark.parametrize("name", NAMES)
def test_network_matches_reference(name, path, states):
    """README 5 / 6.5: max |delta| <= 1e-4 max |ref|, reference-style and on each backend of the
    fast path (norms folded, channels_last; PSPNet and ICNet eager on all)."""
    seg = segmenter(name, states[name], fast=path != "reference", backend="torch" if path == "reference" else path)
    batch = torch.from_numpy(np.load(fixture(name) / "input.npy")).contiguous(memory_format=seg.memory_format)
    assert rel_error(seg.infer(batch), np.load(fixture(name) / "logits.npy")) <= 1e-4
    assert seg.backend == ("eager" if path == "reference" or SEGMENTER_SPECS[name].architecture in EAGER_ONLY
                           else path)


@pytest.mark.parametrize("name", NAMES)
def test_preprocessing_is_bit_exact(name):
    seg = HumanSegmenter(humanseg_net(SEGMENTER_SPECS[name]), SEGMENTER_SPECS[name], torch.device("cpu"), fast=False)
    prepared = seg.preprocess([read_rgb(fixture(name) / "input_image.png")])
    np.testing.assert_array_equal(prepared.batch.numpy(), np.load(fixture(name) / "input.npy"))
    assert prepared.geometry == letterbox((480, 270), 320)


@pytest.mark.parametrize("name", NAMES)
def test_postprocessing_of_the_reference_logits_gives_the_reference_mask(name):
    seg = HumanSegmenter(humanseg_net(SEGMENTER_SPECS[name]), SEGMENTER_SPECS[name], torch.device("cpu"), fast=False)
    prepared = Prepared(torch.from_numpy(np.load(fixture(name) / "input.npy")), letterbox((480, 270), 320))
    (probability,) = seg.postprocess(torch.from_numpy(np.load(fixture(name) / "logits.npy")), prepared)
    np.testing.assert_allclose(probability, np.load(fixture(name) / "person_prob.npy"), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(probability > 0.5, reference_mask(name))


@pytest.mark.parametrize("name", NAMES)
def test_image_to_person_probability_matches_reference(name, states):
    """The whole path on input_image.png: person_prob within 1e-5 (the reference moves it by
    4.3e-6 in float64), the mask on at most 0.1 % of the pixels (README 6.5)."""
    (probability,) = segmenter(name, states[name], fast=True)([read_rgb(fixture(name) / "input_image.png")])
    assert probability.shape == (480, 270) and probability.dtype == np.float32
    np.testing.assert_allclose(probability, np.load(fixture(name) / "person_prob.npy"), rtol=0, atol=1e-5)
    assert np.mean((probability > 0.5) != reference_mask(name)) <= 1e-3


@pytest.mark.parametrize("frame_hw, content_hw, offset", [
    ((480, 270), (320, 180), (0, 70)), ((270, 480), (180, 320), (70, 0)), ((200, 200), (320, 320), (0, 0)),
    ((481, 641), (240, 320), (40, 0)),
])
def test_letterbox_is_the_references_resize_image(frame_hw, content_hw, offset):
    box = letterbox(frame_hw, 320)
    assert (box.content_hw, box.offset) == (content_hw, offset)


def test_batches_give_the_frames_own_results(states):
    seg = segmenter("humanseg-icnet-resnet18", states["humanseg-icnet-resnet18"], fast=True)
    image = read_rgb(fixture("humanseg-icnet-resnet18") / "input_image.png")
    flipped = np.ascontiguousarray(image[:, ::-1])
    one, two = seg([image, flipped])
    # a batch of two may take other convolution kernels than one frame: float32 rounding apart
    np.testing.assert_allclose(one, seg([image])[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(two, seg([flipped])[0], rtol=0, atol=1e-5)
    assert np.abs(one - two[:, ::-1]).max() > 1e-3  # the network is not mirror-symmetric: the frames differ


# --- released trainer checkpoints --------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name, arch", [("humanseg-unet-mobilenetv2", "UNet"), ("humanseg-bisenet-resnet18", "BiSeNet")])
def test_a_released_trainer_checkpoint_loads_without_the_repos_code(name, arch, legacy, states, tmp_path):
    path = save_trainer_checkpoint(tmp_path / "model_best.pth", states[name], arch, legacy=legacy)
    assert "utils.logger" not in sys.modules
    checkpoint = load_checkpoint(path, allowed_classes=TRAINER_CHECKPOINT_CLASSES)
    assert type(checkpoint["logger"]) is TrainerLog and checkpoint["logger"].entries[1]["valid_miou"] == 0.9137
    net = load_humanseg_net(path, SEGMENTER_SPECS[name])
    with torch.inference_mode():
        logits = net(torch.from_numpy(np.load(fixture(name) / "input.npy")))
    assert rel_error(logits, np.load(fixture(name) / "logits.npy")) <= 1e-4


def test_load_humanseg_reads_a_file_and_segments(states, tmp_path):
    name = "humanseg-icnet-resnet18"
    path = save_trainer_checkpoint(tmp_path / "ICNet_ResNet18.pth", states[name], "ICNet")
    (probability,) = load_humanseg(name, weights=path)([read_rgb(fixture(name) / "input_image.png")])
    assert np.mean((probability > 0.5) != reference_mask(name)) <= 1e-3


def test_a_checkpoint_with_a_code_payload_is_refused_and_nothing_runs(states, tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    path = tmp_path / "model_best.pth"
    torch.save({"arch": "UNet", "logger": Payload(), "state_dict": states["humanseg-unet-mobilenetv2"]}, path)
    with pytest.raises(WeightsError, match="refused") as error:
        load_humanseg_net(path, SEGMENTER_SPECS["humanseg-unet-mobilenetv2"])
    assert "\n" not in str(error.value) and "open" in str(error.value)
    assert not marker.exists()


def test_another_architectures_checkpoint_is_named(states, tmp_path):
    path = save_trainer_checkpoint(tmp_path / "model_best.pth", states["humanseg-bisenet-resnet18"], "BiSeNet")
    with pytest.raises(WeightsError, match="is a BiSeNet checkpoint; humanseg-icnet-resnet18 needs a ICNet one"):
        load_humanseg_net(path, SEGMENTER_SPECS["humanseg-icnet-resnet18"])


def test_a_file_without_a_matching_name_says_so_rather_than_loading_nothing(states, tmp_path):
    """The reference's strict=False would load nothing from it and segment with random weights."""
    path = tmp_path / "model_best.pth"
    torch.save({"state_dict": {"model." + k: v for k, v in states["humanseg-unet-resnet18"].items()}}, path)
    with pytest.raises(WeightsError, match="shares no parameter name with humanseg-unet-resnet18"):
        load_humanseg_net(path, SEGMENTER_SPECS["humanseg-unet-resnet18"])


def test_same_arch_other_backbone_lists_the_missing_and_unexpected_keys(states, tmp_path):
    path = save_trainer_checkpoint(tmp_path / "model_best.pth", states["humanseg-unet-resnet18"], "UNet")
    with pytest.raises(WeightsError, match=r"missing keys .*unexpected keys"):
        load_humanseg_net(path, SEGMENTER_SPECS["humanseg-unet-mobilenetv2"])


def test_data_parallel_prefixes_are_stripped(states, tmp_path):
    name = "humanseg-deeplab3plus-resnet18"
    path = tmp_path / "model_best.pth"
    torch.save({"arch": "DeepLabV3Plus", "state_dict": {"module." + k: v for k, v in states[name].items()}}, path)
    net = load_humanseg_net(path, SEGMENTER_SPECS[name])
    torch.testing.assert_close(net.state_dict()["aspp.conv1.weight"], states[name]["aspp.conv1.weight"])


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_cuda_half_precision_agrees_with_the_cpu(name, states):
    image = read_rgb(fixture(name) / "input_image.png")
    expected = segmenter(name, states[name], fast=False)([image])[0] > 0.5
    net = humanseg_net(SEGMENTER_SPECS[name])
    net.load_state_dict(states[name])
    cuda = HumanSegmenter(net, SEGMENTER_SPECS[name], torch.device("cuda"), amp_dtype=torch.float16)
    (probability,) = cuda([image])
    assert probability.dtype == np.float32 and np.mean((probability > 0.5) == expected) >= 0.99
