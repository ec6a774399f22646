"""UniParser parity with the reference (shared/fixtures/uniparser_cihp) and its use everywhere."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import torch
from _paths import REPO, datasets_dir, fixtures_dir
from _weight_rule import checks, generate, read_keys

from realtime.cli import main
from realtime.models import load_parser
from realtime.models.common import Prepared
from realtime.models.fixture_weights import fixture_state
from realtime.models.registry import get_spec
from realtime.models.uniparser import (
    Geometry,
    UniParserNet,
    UniParserParser,
    decode_head,
    distinct_people,
    load_uniparser_net,
    person_labels,
    rescaled_size,
    semantic_labels,
    uniparser_net,
)
from realtime.weights import WeightsError

FIXTURE = fixtures_dir() / "uniparser_cihp"
SPEC = get_spec("uniparser-cihp")
FRAME_HW, IMAGE_HW = (313, 576), (724, 1333)
SUB_CHANNELS = list(range(0, 128, 16))
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"parity fixture not found at {FIXTURE}"),
]


def rel_error(ours: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(ours.numpy() - ref).max() / np.abs(ref).max())


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_labels(name: str) -> np.ndarray:
    return cv2.imread(str(FIXTURE / name), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return generate(read_keys(FIXTURE / "keys.txt"))


def parser_for(state: dict[str, torch.Tensor], *, fast: bool, seg_kernels: torch.Tensor | None = None,
               **options) -> UniParserParser:
    net = uniparser_net(SPEC)
    net.load_state_dict(state, strict=True)
    if seg_kernels is not None:
        with torch.no_grad():
            net.mask_head.seg_kernels.copy_(seg_kernels)
    return UniParserParser(net.eval(), SPEC, torch.device("cpu"), fast=fast, **options)


@pytest.fixture(scope="module")
def synth_kernels() -> torch.Tensor:
    return torch.from_numpy(np.load(FIXTURE / "synth_seg_kernels.npy"))


@pytest.fixture(scope="module")
def reference_parser(state) -> UniParserParser:
    return parser_for(state, fast=False)


@pytest.fixture(scope="module")
def fixture_input(reference_parser) -> Prepared:
    return reference_parser.preprocess([read_rgb(FIXTURE / "input_image.png")])


@pytest.fixture(scope="module")
def reference_outputs(reference_parser, fixture_input) -> dict[str, torch.Tensor]:
    return reference_parser.infer(fixture_input.batch)


def test_generated_weights_follow_the_fixture_rule(state):
    expected = json.loads((FIXTURE / "meta.json").read_text())["weights"]["checks"]
    count, sha256, total = checks(state)
    assert (len(state), count, sha256) == (expected["n_keys"], expected["n_values"], expected["sha256_f32le_concat"])
    assert total == pytest.approx(expected["sum_f64"], rel=1e-12)
    for label, first3 in expected["first3_values"].items():
        np.testing.assert_allclose(state[label.split(":", 1)[1]].flatten()[:3].numpy(), first3, rtol=1e-6)


def test_the_network_has_the_official_names_in_the_official_order(state):
    net = uniparser_net(SPEC)
    assert [(name, tuple(value.shape)) for name, value in net.state_dict().items()] == read_keys(FIXTURE / "keys.txt")
    # so the fixture rule applied to the network itself (bench-model's weights) is the same
    assert all(torch.equal(a, b) for a, b in zip(fixture_state(net).values(), state.values()))


def test_preprocessing_is_bit_exact(fixture_input):
    """mmcv.imrescale (bilinear) to 1333 x 724, imnormalize, zero padding to 736 x 1344."""
    batch = fixture_input.batch
    assert tuple(batch.shape) == (1, 3, 736, 1344) and fixture_input.geometry == Geometry(FRAME_HW, IMAGE_HW)
    expected = json.loads((FIXTURE / "meta.json").read_text())["preprocessing"]["input_tensor"]["sha256_f32le"]
    assert hashlib.sha256(batch.numpy().astype("<f4").tobytes()).hexdigest() == expected
    resized = read_rgb(FIXTURE / "input_resized.png")
    assert resized.shape[:2] == IMAGE_HW
    normalized = UniParserNet(19, SPEC.input_mean, SPEC.input_std).normalize(
        torch.from_numpy(resized).permute(2, 0, 1)[None].float())
    np.testing.assert_array_equal(batch[..., :724, :1333].numpy(), normalized[..., :724, :1333].numpy())


def test_frames_are_rescaled_like_mmdet():
    assert rescaled_size(*FRAME_HW) == IMAGE_HW
    assert rescaled_size(1080, 1920) == (750, 1333)  # the long side caps it
    assert rescaled_size(1920, 1080) == (1333, 750)
    assert rescaled_size(313, 576, 400) == (362, 667)  # a smaller internal size scales both limits


def assert_matches_reference(outputs: dict[str, torch.Tensor], *, extremes: float = 1e-5) -> None:
    """Section 8.5: network tensors within 1e-4 of max|ref|; channel statistics (sum, sum of
    squares, min, max) within 1e-5 of the largest, the min and max within `extremes`."""
    assert rel_error(outputs["center_logits"], np.load(FIXTURE / "center_logits.npy")) <= 1e-4
    assert rel_error(outputs["center_pred"][..., None], np.load(FIXTURE / "center_pred.npy")) <= 1e-4
    for name in ("semantic", "instance"):
        features = outputs[f"{name}_pred"]
        assert tuple(features.shape) == (1, 128, 186, 338)  # P2 + 2: the 1x1 convs' padding
        assert rel_error(features[:, SUB_CHANNELS], np.load(FIXTURE / f"{name}_pred_sub.npy")) <= 1e-4
        flat = features[0].double().flatten(1)
        ours = torch.stack((flat.sum(1), (flat ** 2).sum(1), flat.min(1).values, flat.max(1).values), dim=1).numpy()
        reference = np.load(FIXTURE / f"{name}_pred_channel_stats.npy")
        tolerance = np.array([1e-5, 1e-5, extremes, extremes]) * np.abs(reference).max(axis=0)
        assert np.all(np.abs(ours - reference) <= tolerance), name


@pytest.mark.slow
def test_network_matches_reference(reference_outputs):
    assert_matches_reference(reference_outputs)


@pytest.mark.slow
def test_fast_network_matches_reference(state, fixture_input):
    """Folded norms, gathered deformable samples, P2 only, channels_last: other rounding, which
    moves a channel's largest value by up to 1.2e-5 of it (the tensors' own 1e-4 tolerance)."""
    fast = parser_for(state, fast=True)
    assert_matches_reference(fast.infer(fixture_input.batch.contiguous(memory_format=torch.channels_last)),
                             extremes=1e-4)


def decoded(outputs: dict[str, torch.Tensor], kernels: torch.Tensor):
    return decode_head(outputs["center_pred"][0], outputs["semantic_pred"][0], outputs["instance_pred"][0], kernels)


@pytest.mark.slow
@pytest.mark.parametrize("synthetic", [False, True], ids=["trained-kernels", "synthetic-kernels"])
def test_parsings_match_reference(reference_outputs, state, synth_kernels, synthetic):
    """71 centres in ascending score order; with the rule's kernels every map is background,
    with the fixture's synthetic kernels all 19 classes appear (README 8.4)."""
    reference = np.load(FIXTURE / "parsing.npz")
    maps = decoded(reference_outputs, synth_kernels if synthetic else state["mask_head.seg_kernels"])
    np.testing.assert_allclose(maps.scores.numpy(), reference["center_scores"], rtol=0, atol=1e-5)
    parsings = np.stack([person_labels(maps, i, IMAGE_HW, FRAME_HW).numpy() for i in range(len(maps.scores))])
    expected = reference["synth_instance_parsing" if synthetic else "instance_parsing"]
    assert parsings.shape == expected.shape == (71, *FRAME_HW)
    assert np.mean(parsings != expected) <= 1e-3
    assert max(np.mean(ours != ref) for ours, ref in zip(parsings, expected)) <= 1e-3
    semantic = semantic_labels(maps, IMAGE_HW, FRAME_HW).numpy()
    assert np.mean(semantic != read_labels("semantic_synth.png" if synthetic else "semantic.png")) <= 1e-3
    if synthetic:
        assert set(np.unique(semantic)) == set(range(1, 20))
        # the fast path resizes only each person's kept classes: the same labels
        for i in (0, 35, 70):
            fast = person_labels(maps, i, IMAGE_HW, FRAME_HW, kept_classes_only=True).numpy()
            np.testing.assert_array_equal(fast, parsings[i])


@pytest.mark.slow
def test_people_are_distinct_strongest_first_and_both_paths_agree(state, synth_kernels, reference_outputs,
                                                                   fixture_input):
    reference, fast = (parser_for(state, fast=fast, seg_kernels=synth_kernels).postprocess(reference_outputs,
                                                                                          fixture_input)[0]
                       for fast in (False, True))
    assert np.mean(reference.labels != read_labels("semantic_synth.png")) <= 1e-3
    np.testing.assert_array_equal(fast.labels, reference.labels)
    assert len(reference.people) == len(fast.people) >= 2
    for ours, theirs in zip(fast.people, reference.people):
        assert ours.score == theirs.score and np.array_equal(ours.mask, theirs.mask)
    scores = [person.score for person in reference.people]
    assert scores == sorted(scores, reverse=True) and [p.id for p in reference.people] == list(range(len(scores)))
    assert max(scores) == pytest.approx(np.load(FIXTURE / "parsing.npz")["center_scores"].max(), abs=1e-5)
    for person in reference.people:
        assert person.mask.shape == FRAME_HW and person.mask.any() and person.keypoints is None
    maps = decoded(reference_outputs, synth_kernels)
    assert len(distinct_people(maps.instance_conf > 0.5, maps.scores, None)) == 71  # without the IoU rule

    strongest = parser_for(state, fast=True, seg_kernels=synth_kernels, max_people=1)
    people = strongest.postprocess(reference_outputs, fixture_input)[0].people
    assert len(people) == 1 and people[0].score == reference.people[0].score


def test_no_centre_means_no_people_and_no_parts(state):
    """The reference writes an all-background semantic map when no centre passes ctr_score."""
    parser = parser_for(state, fast=True)
    outputs = {"center_pred": torch.zeros(1, 40, 40), "semantic_pred": torch.rand(1, 128, 10, 12),
               "instance_pred": torch.rand(1, 128, 10, 12)}
    result = parser.postprocess(outputs, Prepared(torch.empty(1, 3, 32, 32), Geometry((30, 35), (32, 40))))[0]
    assert result.people == [] and not result.labels.any() and result.labels.shape == (30, 35)


def mmcv_checkpoint(state: dict[str, torch.Tensor], *, prefix: str = "module.") -> dict:
    """mmcv's save_checkpoint layout, as a DataParallel training run writes it."""
    bookkeeping = {name.replace("running_var", "num_batches_tracked"): torch.tensor(12345)
                   for name in state if name.endswith("running_var")}
    return {
        "meta": {"mmcv_version": "1.7.0", "mmdet_version": "2.25.2", "time": "Mon Oct  9 15:34:57 2023",
                 "epoch": 72, "iter": 212976, "seed": 42, "exp_name": "CHIP_r101_light.py",
                 "config": "model = dict(type='SingleStageInsParsingDetector', ...)",
                 "CLASSES": ("person",), "hook_msgs": {"last_ckpt": "work_dirs/epoch_72.pth"}},
        "state_dict": {prefix + name: value for name, value in {**state, **bookkeeping}.items()},
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                      "param_groups": [{"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0001, "params": [0]}]},
    }


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_the_released_checkpoint_layout_loads(state, tmp_path, prefix, caplog):
    path = tmp_path / SPEC.weights.filename
    torch.save(mmcv_checkpoint(state, prefix=prefix), path)
    net = load_uniparser_net(path, SPEC)
    assert all(torch.equal(net.state_dict()[name], value) for name, value in state.items())
    with caplog.at_level(logging.WARNING):
        parser = load_parser("uniparser-cihp", device="cpu", weights=path, internal_size=96)
    assert "without a licence" in caplog.text
    result = parser.parse(read_rgb(datasets_dir() / "cihp" / "0005008.jpg"))
    assert result.labels.shape == FRAME_HW and result.label_names == SPEC.labels.names


def test_a_checkpoint_that_does_not_fit_is_one_line(state, tmp_path):
    broken = dict(state)
    broken["mask_head.renamed"] = broken.pop("mask_head.center_heatmap.bias")
    path = tmp_path / "broken.pth"
    torch.save(mmcv_checkpoint(broken), path)
    with pytest.raises(WeightsError) as error:
        load_uniparser_net(path, SPEC)
    message = str(error.value)
    assert message.startswith(str(path)) and len(message.splitlines()) == 1
    assert "1 missing keys (mask_head.center_heatmap.bias), 1 unexpected keys (mask_head.renamed)" in message

    other = dict(state, **{"mask_head.seg_kernels": torch.zeros(58, 128)})
    torch.save(mmcv_checkpoint(other), path)
    with pytest.raises(ValueError, match="58 part classes"):
        load_uniparser_net(path, SPEC)


@pytest.fixture(scope="module")
def demo_checkpoint(state, synth_kernels, tmp_path_factory):
    """Fixture-rule weights with the fixture's synthetic part kernels, so that parts and people
    appear on real frames, in the released layout under the released name."""
    folder = tmp_path_factory.mktemp("uniparser-weights")
    path = folder / SPEC.weights.filename
    torch.save(mmcv_checkpoint({**state, "mask_head.seg_kernels": synth_kernels}), path)
    return path


@pytest.mark.slow
def test_process_parses_people_on_a_real_clip(demo_checkpoint, media_dir, tmp_path):
    out, metrics = tmp_path / "uniparser.mp4", tmp_path / "uniparser.jsonl"
    code = main(["process", str(media_dir / "pose2sim-multi-cam01.mp4"), "-o", str(out), "--metrics", str(metrics),
                 "--model", "uniparser-cihp", "--weights", str(demo_checkpoint), "--frames", "2", "--size", "270x480",
                 "--internal-size", "192", "--device", "cpu", "--pose", "parser"])  # UniParser's own people
    assert code == 0
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (480, 270, 3)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["areas"] and line["people"]
        for person in line["people"]:
            assert person["bbox"] is not None and person["areas"] and person["keypoints"] is None


def test_a_missing_checkpoint_is_one_line_saying_where_to_get_it(tmp_path, media_dir, weights_dir):
    cache = tmp_path / "cache"
    cache.mkdir()
    for other in weights_dir.glob("mediapipe-*.tflite"):  # the default stages' own weights are there
        (cache / other.name).symlink_to(other)
    run = subprocess.run([sys.executable, str(REPO / "main.py"), "process", str(media_dir / "pose2sim-multi-cam01.mp4"),
                          "-o", str(tmp_path / "o.mp4"), "--model", "uniparser-cihp", "--device", "cpu"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "PARTSIGHT_WEIGHTS_DIR": str(cache)})
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert f"the weights file {SPEC.weights.filename} is missing" in run.stderr
    assert "BaiduNetdisk" in run.stderr


def test_bench_model_times_both_paths(demo_checkpoint, media_dir, capsys):
    code = main(["bench-model", "--model", "uniparser-cihp", "--weights", str(demo_checkpoint),
                 "--frame", str(media_dir / "pose2sim-multi-cam01.mp4"), "--size", "108x192", "--internal-size", "96",
                 "--repeats", "1", "--warmup", "0"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [1, 3, 160, 96] and report["frame_wh"] == [108, 192]
    assert set(report["max_abs_diff"]) == {"center_logits", "center_pred", "semantic_pred", "instance_pred"}
    assert report["label_disagreement"] <= 1e-3
    assert report["people"]["reference"] == report["people"]["fast"] and report["person_mask_disagreement"] <= 1e-3


def test_bench_runs_uniparser_end_to_end(demo_checkpoint, media_dir, capsys):
    code = main(["bench", str(media_dir / "pose2sim-multi-cam01.mp4"), "--model", "uniparser-cihp", "--weights",
                 str(demo_checkpoint), "--frames", "2", "--warmup", "1", "--size", "270x480", "--internal-size", "96",
                 "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "uniparser-cihp" and report["frames"] == 2 and report["network_input"] == "96x160"
    assert report["stages_ms"]["infer"] > 0 and report["stages_ms"]["postprocess"] > 0


def test_eval_person_iou_runs_uniparser(demo_checkpoint, tmp_path, capsys):
    dataset = tmp_path / "cihp"
    dataset.mkdir()
    for name in ("0005008.jpg", "0005008_label.png"):
        (dataset / name).symlink_to(datasets_dir() / "cihp" / name)
    code = main(["eval", "person-iou", "--dataset", str(dataset), "--model", "uniparser-cihp", "--weights",
                 str(demo_checkpoint), "--internal-size", "128", "--device", "cpu", "--person-mask", "parser"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "uniparser-cihp" and report["images"] == 1 and 0 <= report["mean_iou"] <= 1


@pytest.mark.slow
def test_the_window_runs_uniparser(demo_checkpoint, media_dir, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    clip = media_dir / "pose2sim-multi-cam01.mp4"
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source", str(clip), "--frames", "2",
                           "--screenshot", str(shot), "--model", "uniparser-cihp", "--weights", str(demo_checkpoint),
                           "--internal-size", "128", "--device", "cpu"],
                          check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # 1 when no frame was shown
    window = cv2.imread(str(shot))
    assert window is not None and window.shape[0] >= 600 and window.shape[1] >= 800


@pytest.mark.cuda
def test_cuda_fast_path_agrees_with_the_cpu_reference_path(state, synth_kernels):
    image = read_rgb(FIXTURE / "input_image.png")
    expected = parser_for(state, fast=False, seg_kernels=synth_kernels, internal_size=400).parse(image)
    for dtype, share in ((None, 0.999), (torch.float16, 0.99), (torch.bfloat16, 0.98)):
        net = uniparser_net(SPEC)
        net.load_state_dict({**state, "mask_head.seg_kernels": synth_kernels})
        cuda = UniParserParser(net.eval(), SPEC, torch.device("cuda"), internal_size=400, amp_dtype=dtype)
        result = cuda.parse(image)
        assert np.mean(result.labels == expected.labels) >= share, dtype
        assert abs(len(result.people) - len(expected.people)) <= 1, dtype
