"""M2FP parity with ModelScope's reference outputs (shared/fixtures/m2fp_lip, m2fp_cihp)."""
from __future__ import annotations

import json
import logging

import av
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _parity import read_rgb, rel_error
from _paths import datasets_dir, fixtures_dir
from _weight_rule import checks, generate, read_keys

from realtime.models import load_parser
from realtime.models.common import Prepared
from realtime.models.deform_attn import MSDeformAttn, compiled_sampler, sample_levels
from realtime.models.m2fp import (
    Geometry,
    M2FPNet,
    M2FPParser,
    center_on_canvas,
    instance_parsing,
    m2fp_net,
    m2fp_state_dict,
    resized_window,
    short_side_size,
)
from realtime.models.registry import get_spec

LIP = fixtures_dir() / "m2fp_lip"
CIHP = fixtures_dir() / "m2fp_cihp"
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not LIP.is_dir(), reason=f"parity fixtures not found at {fixtures_dir()}"),
]


@pytest.fixture(scope="module")
def lip_state() -> dict[str, torch.Tensor]:
    return generate(read_keys(LIP / "keys.txt"))


@pytest.fixture(scope="module")
def lip_net(lip_state) -> M2FPNet:
    net = m2fp_net(get_spec("m2fp-lip"))
    net.load_state_dict(lip_state, strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def lip_outputs(lip_net) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return lip_net(torch.from_numpy(np.load(LIP / "input.npy")))


@pytest.fixture(scope="module")
def cihp_state() -> dict[str, torch.Tensor]:
    return generate(read_keys(CIHP / "keys.txt"))


@pytest.fixture(scope="module")
def cihp_net(cihp_state) -> M2FPNet:
    net = m2fp_net(get_spec("m2fp-cihp"))
    net.load_state_dict(cihp_state, strict=True)
    return net.eval()


@pytest.mark.parametrize("fixture", ["m2fp_lip", "m2fp_cihp"])
def test_generated_weights_follow_the_fixture_rule(fixture, request):
    state = request.getfixturevalue("lip_state" if fixture == "m2fp_lip" else "cihp_state")
    expected = json.loads((fixtures_dir() / fixture / "meta.json").read_text())["weights"]["checks"]
    count, sha256, total = checks(state)
    assert (len(state), count, sha256) == (expected["n_keys"], expected["n_values"], expected["sha256_f32le_concat"])
    assert total == pytest.approx(expected["sum_f64"], rel=1e-12)
    for label, first3 in expected["first3_values"].items():
        name = label.split(":", 1)[1]
        np.testing.assert_allclose(state[name].flatten()[:3].numpy(), first3, rtol=1e-6)


def test_lip_network_matches_reference(lip_outputs):
    assert rel_error(lip_outputs["pred_logits"], np.load(LIP / "pred_logits.npy")) <= 1e-4
    assert rel_error(lip_outputs["pred_masks"], np.load(LIP / "pred_masks.npy")) <= 1e-4
    aux = np.load(LIP / "aux_pred_logits.npy")
    for head in range(aux.shape[0]):
        assert rel_error(lip_outputs["aux_logits"][head], aux[head]) <= 1e-4, f"head {head}"


def test_lip_preprocessing_is_bit_exact(lip_net):
    meta = json.loads((LIP / "meta.json").read_text())["reference_run"]
    image = read_rgb(LIP / "input_image.png")
    np.testing.assert_array_equal(read_rgb(datasets_dir() / "lip" / "img_val_86_185913.jpg"), image)
    canvas, crop_box = center_on_canvas(image)
    np.testing.assert_array_equal(canvas, read_rgb(LIP / "input_canvas.png"))
    assert list(crop_box) == meta["crop_box"]
    parser = M2FPParser(lip_net, get_spec("m2fp-lip"), torch.device("cpu"), fast=False)
    prepared = parser.preprocess([image])
    batch, geometry = prepared.batch, prepared.geometry
    np.testing.assert_array_equal(batch.numpy(), np.load(LIP / "input.npy"))
    assert geometry == Geometry((377, 130), (512, 384), (127, 67, 257, 444))


@pytest.fixture(scope="module")
def lip_parser(lip_net) -> M2FPParser:
    return M2FPParser(lip_net, get_spec("m2fp-lip"), torch.device("cpu"), fast=False)


@pytest.fixture(scope="module")
def lip_fast_parser(lip_state) -> M2FPParser:
    net = m2fp_net(get_spec("m2fp-lip"))
    net.load_state_dict(lip_state)
    return M2FPParser(net.eval(), get_spec("m2fp-lip"), torch.device("cpu"), fast=True)


def test_lip_semantic_map_matches_reference(lip_parser):
    geometry = Geometry((377, 130), (512, 384), (127, 67, 257, 444))
    logits = torch.from_numpy(np.load(LIP / "pred_logits.npy"))[0]
    masks = torch.from_numpy(np.load(LIP / "pred_masks.npy"))[0]
    semantic = lip_parser.single_person_semantics(logits, masks, (512, 384), geometry)
    assert rel_error(semantic, np.load(LIP / "sem_seg.npy")) <= 1e-4
    np.testing.assert_array_equal(semantic.argmax(0).numpy(), cv2.imread(str(LIP / "labels.png"), cv2.IMREAD_UNCHANGED))

    synthetic = torch.from_numpy(np.load(LIP / "synth_pred_logits.npy"))[0]
    expected = cv2.imread(str(LIP / "labels_synth.png"), cv2.IMREAD_UNCHANGED)
    labels = lip_parser.single_person_semantics(synthetic, masks, (512, 384), geometry).argmax(0).numpy()
    assert np.mean(labels != expected) <= 1e-3


@pytest.mark.parametrize("box", [(127, 67, 257, 444), (0, 0, 384, 512), (3, 1, 381, 287), (0, 113, 384, 400)])
def test_resized_window_is_the_crop_of_the_full_resize(box):
    masks = torch.from_numpy(np.load(LIP / "pred_masks.npy"))[0, :10]
    x0, y0, x1, y1 = box
    full = F.interpolate(masks[None], size=(512, 384), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(resized_window(masks, (512, 384), box), full[:, y0:y1, x0:x1], rtol=0, atol=0)


def test_lip_fast_semantic_map_matches_reference(lip_fast_parser):
    """The fast path resizes the query masks only over the frame's box."""
    geometry = Geometry((377, 130), (512, 384), (127, 67, 257, 444))
    masks = torch.from_numpy(np.load(LIP / "pred_masks.npy"))[0]
    for logits_file, labels_file in (("pred_logits", "labels"), ("synth_pred_logits", "labels_synth")):
        logits = torch.from_numpy(np.load(LIP / f"{logits_file}.npy"))[0]
        labels = lip_fast_parser.single_person_semantics(logits, masks, (512, 384), geometry).argmax(0).numpy()
        assert np.mean(labels != cv2.imread(str(LIP / f"{labels_file}.png"), cv2.IMREAD_UNCHANGED)) <= 1e-3


def test_lip_fast_parser_labels_match_the_reference_path(lip_parser, lip_fast_parser, single_frames):
    for image in (read_rgb(LIP / "input_image.png"), single_frames[1]):
        reference = lip_parser.parse(image).labels
        fast = lip_fast_parser.parse(image).labels
        assert np.mean(fast != reference) <= 1e-3


def test_lip_fast_network_stays_close(lip_fast_parser):
    """The fast path (folded norms, channels_last, gathered deformable attention, attention masks
    from resized features) changes float rounding (~1e-6). The fixture's random weights leave
    mask logits within 2e-6 of the masked-attention threshold, so a few attention-mask bits flip
    and later heads drift; the first heads and the mask signs must still agree."""
    outputs = lip_fast_parser.infer(torch.from_numpy(np.load(LIP / "input.npy")).contiguous(memory_format=torch.channels_last))
    aux = np.load(LIP / "aux_pred_logits.npy")
    assert rel_error(outputs["aux_logits"][:2], aux[:2]) <= 1e-4
    assert rel_error(outputs["pred_logits"], np.load(LIP / "pred_logits.npy")) <= 5e-2
    ref_masks = np.load(LIP / "pred_masks.npy")
    assert np.mean((outputs["pred_masks"].numpy() > 0) != (ref_masks > 0)) <= 1e-3


def test_cihp_network_matches_reference(cihp_net):
    with torch.inference_mode():
        outputs = cihp_net(torch.from_numpy(np.load(CIHP / "input.npy")))
    assert rel_error(outputs["pred_logits"], np.load(CIHP / "pred_logits.npy")) <= 1e-4
    assert rel_error(outputs["pred_masks"], np.load(CIHP / "pred_masks.npy")) <= 1e-4
    assert rel_error(outputs["aux_logits"], np.load(CIHP / "aux_pred_logits.npy")) <= 1e-4
    reference = np.load(CIHP / "parsing.npz")
    parsing = cihp_instances(outputs["pred_logits"][0], outputs["pred_masks"][0])
    assert instance_keys(parsing.part_queries, parsing.part_labels) == instance_keys(
        reference["part_query_idx"], reference["part_labels"])
    assert len(parsing.human_queries) == len(reference["human_query_idx"])


def test_cihp_preprocessing_is_bit_exact(cihp_net):
    assert short_side_size(313, 576, 256) == (256, 471)
    parser = M2FPParser(cihp_net, get_spec("m2fp-cihp"), torch.device("cpu"), internal_size=256, fast=False)
    prepared = parser.preprocess([read_rgb(CIHP / "input_image.png")])
    batch, geometry = prepared.batch, prepared.geometry
    np.testing.assert_array_equal(batch.numpy(), np.load(CIHP / "input.npy"))
    assert geometry == Geometry((256, 471), (256, 471), None)


def cihp_instances(pred_logits: torch.Tensor, pred_masks: torch.Tensor):
    masks = F.interpolate(pred_masks[None], size=(256, 480), mode="bilinear", align_corners=False)[0, :, :256, :471]
    return instance_parsing(pred_logits, masks, num_parsing=20, paste_threshold=0.3)


def instance_keys(queries, labels) -> set[tuple[int, int]]:
    return {(int(q), int(label)) for q, label in zip(queries, labels)}


@pytest.mark.parametrize("prefix", ["", "synth_"])
def test_cihp_instance_parsing_matches_reference(prefix):
    reference = np.load(CIHP / "parsing.npz")
    logits = torch.from_numpy(reference["synth_pred_logits"] if prefix else np.load(CIHP / "pred_logits.npy"))[0]
    parsing = cihp_instances(logits, torch.from_numpy(np.load(CIHP / "pred_masks.npy"))[0])

    for kind, labels in (("part", parsing.part_labels), ("human", torch.full_like(parsing.human_queries, 20))):
        queries = getattr(parsing, f"{kind}_queries")
        scores = getattr(parsing, f"{kind}_scores")
        ref_keys = list(zip(reference[f"{prefix}{kind}_query_idx"].tolist(), reference[f"{prefix}{kind}_labels"].tolist()))
        ours = {key: i for i, key in enumerate(zip(queries.tolist(), labels.tolist()))}
        assert set(ours) == set(ref_keys), kind
        for ref_index, key in enumerate(ref_keys):
            assert abs(float(scores[ours[key]]) - reference[f"{prefix}{kind}_scores"][ref_index]) <= 1e-5
            mask = (parsing.mask_logits[key[0]] > 0).numpy()
            assert np.sum(mask != reference[f"{prefix}{kind}_masks"][ref_index]) <= 5

    semantic = parsing.semantic_probs.numpy()
    ref_semantic = reference[f"{prefix}semantic_probs"].astype(np.float32)
    assert np.sum(np.abs(semantic - ref_semantic) > 1e-3) <= 50


def test_cihp_people_come_from_human_instances(cihp_net):
    reference = np.load(CIHP / "parsing.npz")
    parser = M2FPParser(cihp_net, get_spec("m2fp-cihp"), torch.device("cpu"), fast=False)
    outputs = {"pred_logits": torch.from_numpy(reference["synth_pred_logits"]),
               "pred_masks": torch.from_numpy(np.load(CIHP / "pred_masks.npy"))}
    prepared = Prepared(torch.empty(1, 3, 256, 480), Geometry((313, 576), (256, 471), None))
    result = parser.postprocess(outputs, prepared)[0]
    assert result.labels.shape == (313, 576)
    scores = [person.score for person in result.people]
    np.testing.assert_allclose(scores, sorted(reference["synth_human_scores"], reverse=True), atol=1e-5)
    for person in result.people:
        assert person.mask.shape == (313, 576) and person.mask.any()
        assert person.keypoints is None  # M2FP has no keypoints


def test_cihp_max_people_keeps_the_strongest(cihp_net):
    reference = np.load(CIHP / "parsing.npz")
    parser = M2FPParser(cihp_net, get_spec("m2fp-cihp"), torch.device("cpu"), fast=False, max_people=1)
    outputs = {"pred_logits": torch.from_numpy(reference["synth_pred_logits"]),
               "pred_masks": torch.from_numpy(np.load(CIHP / "pred_masks.npy"))}
    prepared = Prepared(torch.empty(1, 3, 256, 480), Geometry((313, 576), (256, 471), None))
    people = parser.postprocess(outputs, prepared)[0].people
    assert len(reference["synth_human_scores"]) > 1
    assert [p.score for p in people] == pytest.approx([max(reference["synth_human_scores"])], abs=1e-5)


@pytest.mark.parametrize("wrapper", ["detectron2", "modelscope"])
def test_checkpoint_filter_unwraps_and_drops_bookkeeping(wrapper):
    state = {"backbone.stem.conv1.weight": torch.zeros(1), "backbone.stem.conv1.norm.num_batches_tracked": torch.tensor(3)}
    checkpoint = {"model": state, "iteration": 71999} if wrapper == "detectron2" else {
        "module." + key: value for key, value in state.items()}
    assert list(m2fp_state_dict(checkpoint)) == ["backbone.stem.conv1.weight"]


def test_load_parser_reads_a_detectron2_checkpoint(lip_state, tmp_path, caplog):
    path = tmp_path / "pytorch_model.pt"
    bookkeeping = {name.replace("running_var", "num_batches_tracked"): torch.tensor(0)
                   for name in lip_state if name.endswith("norm.running_var")}
    torch.save({"model": {**lip_state, **bookkeeping}, "iteration": 71999}, path)
    with caplog.at_level(logging.WARNING):
        parser = load_parser("m2fp-lip", device="cpu", weights=path)
    assert "CC BY-NC 4.0" in caplog.text
    image = read_rgb(datasets_dir() / "lip" / "img_val_86_185913.jpg")
    result = parser.parse(image)
    assert result.labels.shape == image.shape[:2] and result.labels.dtype == np.uint8
    assert result.label_names == get_spec("m2fp-lip").labels.names and result.people == []


def test_load_parser_parses_people_with_a_cihp_checkpoint(cihp_state, tmp_path):
    path = tmp_path / "pytorch_model.pt"
    torch.save({"model": cihp_state}, path)
    parser = load_parser("m2fp-cihp", device="cpu", weights=path, internal_size=256)
    image = read_rgb(datasets_dir() / "cihp" / "0005008.jpg")
    result = parser.parse(image)
    assert result.labels.shape == image.shape[:2]
    assert result.label_names[10] == "torso_skin"
    for person in result.people:
        assert person.mask.shape == image.shape[:2] and person.mask.dtype == np.bool_


def test_load_parser_refuses_a_checkpoint_of_the_other_setting(cihp_state, tmp_path):
    path = tmp_path / "pytorch_model.pt"
    torch.save({"model": cihp_state}, path)
    with pytest.raises(ValueError, match="single-person"):
        load_parser("m2fp-lip", device="cpu", weights=path)


@pytest.mark.cuda
def test_compiled_deformable_attention_agrees_with_grid_sample():
    if compiled_sampler() is None:
        pytest.skip("needs the optional mmcv extra's compiled deformable attention (pip install .[mmcv])")
    torch.manual_seed(0)
    attention = MSDeformAttn(compiled=compiled_sampler()).cuda().eval()
    shapes = [(8, 6), (16, 12), (32, 24)]
    value = torch.randn(2, sum(h * w for h, w in shapes), 8, 32, device="cuda")
    locations = torch.rand(2, 50, 8, 3, 4, 2, device="cuda")
    weights = torch.rand(2, 50, 8, 3, 4, device="cuda").flatten(-2).softmax(-1).unflatten(-1, (3, 4))
    compiled = attention.compiled(value, shapes, locations, weights)
    torch.testing.assert_close(compiled, sample_levels(value, shapes, locations, weights), rtol=1e-4, atol=1e-5)


def test_process_runs_m2fp_from_a_weights_file(lip_state, tmp_path, media_dir):
    from realtime.cli import main

    checkpoint = tmp_path / "model_final.pth"
    torch.save({"model": lip_state}, checkpoint)
    out = tmp_path / "m2fp.mp4"
    code = main(["process", str(media_dir / "cg-mannequin-squat.mp4"), "-o", str(out), "--model", "m2fp-lip",
                 "--weights", str(checkpoint), "--frames", "2", "--size", "192x424"])
    assert code == 0
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) >= 2 and (frames[0].width, frames[0].height) == (192, 424)
