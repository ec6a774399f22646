"""Mask2Former R50 COCO panoptic parity with EasyCV's reference outputs (shared/fixtures/m2f_r50_cocopan)
and the released checkpoint layouts."""
from __future__ import annotations

import hashlib
import json
import pickle

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _parity import read_rgb, rel_error
from _paths import fixtures_dir
from _weight_rule import checks, generate, read_keys

from realtime.models import load_parser
from realtime.models.checkpoint import load_into
from realtime.models.common import Prepared
from realtime.models.labels import COCO_PANOPTIC
from realtime.models.mask2former_panoptic import (
    Geometry,
    PanopticNet,
    PanopticParser,
    kept_queries,
    load_panoptic_net,
    panoptic_inference,
    panoptic_net,
    panoptic_state_dict,
    rescale_size,
)
from realtime.models.registry import get_spec
from realtime.weights import WeightsError

FIXTURE = fixtures_dir() / "m2f_r50_cocopan"
SPEC = get_spec("mask2former-r50-panoptic")
ORIGINAL_HW, IMAGE_HW, PADDED_HW = (248, 442), (748, 1333), (768, 1344)
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"parity fixture not found at {FIXTURE}"),
]


@pytest.fixture(scope="module")
def fixture_state() -> dict[str, torch.Tensor]:
    """The fixture rule over keys.txt: EasyCV's state_dict, `criterion.empty_weight` included."""
    return generate(read_keys(FIXTURE / "keys.txt"))


@pytest.fixture(scope="module")
def reference_net(fixture_state) -> PanopticNet:
    net = panoptic_net(SPEC)
    load_into(net, panoptic_state_dict(fixture_state), source="the fixture rule")
    return net.eval()


@pytest.fixture(scope="module")
def reference_parser(reference_net) -> PanopticParser:
    return PanopticParser(reference_net, SPEC, torch.device("cpu"), fast=False)


@pytest.fixture(scope="module")
def fast_parser(fixture_state) -> PanopticParser:
    net = panoptic_net(SPEC)
    load_into(net, panoptic_state_dict(fixture_state), source="the fixture rule")
    return PanopticParser(net.eval(), SPEC, torch.device("cpu"), fast=True)


@pytest.fixture(scope="module")
def network_outputs(reference_parser) -> dict[str, torch.Tensor]:
    """One forward of the 768 x 1344 fixture input (about 30-100 s on a loaded 2-core CPU)."""
    prepared = reference_parser.preprocess([read_rgb(FIXTURE / "input_image.png")])
    return reference_parser.infer(prepared.batch)


def test_generated_weights_follow_the_fixture_rule(fixture_state):
    expected = json.loads((FIXTURE / "meta.json").read_text())["weights"]["checks"]
    count, sha256, total = checks(fixture_state)
    assert (len(fixture_state), count, sha256) == (expected["n_keys"], expected["n_values"],
                                                   expected["sha256_f32le_concat"])
    assert total == pytest.approx(expected["sum_f64"], rel=1e-12)
    for label, first3 in expected["first3_values"].items():
        name = label.split(":", 1)[1]
        np.testing.assert_allclose(fixture_state[name].flatten()[:3].numpy(), first3, rtol=1e-6)


def test_network_names_and_order_are_easycv_state_dict(reference_net):
    keys = read_keys(FIXTURE / "keys.txt")
    assert keys[-1][0] == "criterion.empty_weight"  # the training loss's buffer, not part of the network
    assert [(name, tuple(value.shape)) for name, value in reference_net.state_dict().items()] == keys[:-1]


def test_preprocessing_is_bit_exact(reference_parser):
    meta = json.loads((FIXTURE / "meta.json").read_text())["preprocessing"]
    assert rescale_size(*ORIGINAL_HW) == IMAGE_HW
    image = read_rgb(FIXTURE / "input_image.png")
    resized = cv2.resize(image, IMAGE_HW[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resized, read_rgb(FIXTURE / "input_resized.png"))
    prepared = reference_parser.preprocess([image])
    assert prepared.geometry == Geometry(ORIGINAL_HW, IMAGE_HW)
    batch = prepared.batch.numpy()
    assert list(batch.shape) == meta["input_tensor"]["shape"]
    assert hashlib.sha256(batch.astype("<f4").tobytes()).hexdigest() == meta["input_tensor"]["sha256_f32le"]


def test_network_matches_reference(network_outputs):
    assert rel_error(network_outputs["pred_logits"], np.load(FIXTURE / "pred_logits.npy")) <= 1e-4
    aux = np.load(FIXTURE / "aux_pred_logits.npy")
    assert network_outputs["aux_logits"].shape == aux.shape
    for head in range(aux.shape[0]):
        assert rel_error(network_outputs["aux_logits"][head], aux[head]) <= 1e-4, f"head {head}"
    masks = network_outputs["pred_masks"][0]
    assert tuple(masks.shape) == (100, 192, 336)
    queries = json.loads((FIXTURE / "meta.json").read_text())["files"]["pred_masks_sub.npy"]["queries"]
    assert rel_error(masks[queries][None], np.load(FIXTURE / "pred_masks_sub.npy")) <= 1e-4
    stats = np.load(FIXTURE / "pred_masks_query_stats.npy")  # sum, sum of squares, min, max per query
    values = masks.double()
    ours = torch.stack([values.sum((1, 2)), (values * values).sum((1, 2)), values.amin((1, 2)),
                        values.amax((1, 2))], dim=1).numpy()
    np.testing.assert_allclose(ours[:, :2], stats[:, :2], rtol=1e-5)
    assert np.abs(ours[:, 2:] - stats[:, 2:]).max() <= 1e-4 * float(masks.abs().max())


def reference_panoptic_png(name: str) -> tuple[np.ndarray, dict[int, dict]]:
    """The stored map (segment ids 1..N, 0 = VOID) and its segments by EasyCV map value."""
    info = json.loads((FIXTURE / f"segments_info{name}.json").read_text())["segments_info"]
    return cv2.imread(str(FIXTURE / f"panoptic{name}.png"), cv2.IMREAD_UNCHANGED), {s["pan_value"]: s for s in info}


def as_png_ids(segment_map: torch.Tensor, segments: dict[int, dict]) -> np.ndarray:
    values = segment_map.numpy()
    ids = np.zeros(values.shape, np.uint8)
    for value, segment in segments.items():
        ids[values == value] = segment["id"]
    return ids


def test_network_outputs_give_the_reference_panoptic_map(network_outputs, reference_parser, fast_parser):
    """The random network's queries never reach object_mask_thr: the map is all VOID."""
    expected, segments = reference_panoptic_png("")
    assert not expected.any() and not segments
    for parser in (reference_parser, fast_parser):
        panoptic = parser.panoptic(network_outputs["pred_logits"][0], network_outputs["pred_masks"][0], PADDED_HW,
                                   Geometry(ORIGINAL_HW, IMAGE_HW))
        assert not panoptic.segments and bool((panoptic.segment_map == 133).all())


def synthetic_outputs() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.from_numpy(np.load(FIXTURE / "synth_pred_logits.npy"))[0]
    torch.testing.assert_close(logits, 5.0 * torch.randn((100, 134), generator=torch.Generator().manual_seed(20)))
    low = torch.from_numpy(np.load(FIXTURE / "synth_pred_masks_lowres.npy"))
    return logits, F.interpolate(low, size=(192, 336), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_synthetic_outputs_give_the_reference_panoptic_map(path, reference_parser, fast_parser):
    parser = reference_parser if path == "reference" else fast_parser
    logits, masks = synthetic_outputs()
    panoptic = parser.panoptic(logits, masks, PADDED_HW, Geometry(ORIGINAL_HW, IMAGE_HW))
    expected, segments = reference_panoptic_png("_synth")
    assert set(panoptic.segment_map.unique().tolist()) == set(segments) | {133}
    assert np.mean(as_png_ids(panoptic.segment_map, segments) != expected) <= 1e-3
    assert {(s.category, tuple(s.queries)) for s in panoptic.segments} == {
        (s["category_id"], tuple(s["queries"])) for s in segments.values()}
    for segment in panoptic.segments:
        reference = segments[segment.value]
        assert segment.isthing == reference["isthing"] and segment.area == reference["area"]
        assert abs(segment.score - reference["score"]) <= 1e-5
    assert len(panoptic.segments) == 33 and int((panoptic.segment_map == 133).sum()) == 44545


def test_panoptic_result_labels_classes_and_reports_person_instances(fast_parser):
    logits, masks = synthetic_outputs()
    prepared = Prepared(torch.empty(1, 3, *PADDED_HW), Geometry(ORIGINAL_HW, IMAGE_HW))
    result = fast_parser.postprocess({"pred_logits": logits[None], "pred_masks": masks[None]}, prepared)[0]
    panoptic = fast_parser.panoptic(logits, masks, PADDED_HW, Geometry(ORIGINAL_HW, IMAGE_HW))
    values = panoptic.segment_map.numpy()
    expected_labels = np.where(values == 133, 0, values % 1000 + 1)
    np.testing.assert_array_equal(result.labels, expected_labels)
    assert result.label_names == COCO_PANOPTIC.names and result.label_names[58] == "couch"
    persons = [s for s in panoptic.segments if s.category == 0]
    assert len(result.people) == len(persons) == 1
    np.testing.assert_array_equal(result.people[0].mask, values == persons[0].value)
    np.testing.assert_array_equal(result.person_mask, result.people[0].mask)
    assert result.people[0].score == pytest.approx(persons[0].score)


def test_panoptic_inference_merges_stuff_and_numbers_things():
    """Two queries of one stuff class become one segment; thing instances count up."""
    masks = torch.full((3, 4, 6), -9.0)
    masks[0, :, :2] = masks[1, :, 2:4] = masks[2, :, 4:] = 9.0
    queries, scores, classes = torch.arange(3), torch.tensor([0.9, 0.95, 0.85]), torch.tensor([100, 100, 2])
    panoptic = panoptic_inference(queries, scores, classes, masks, num_classes=133)
    np.testing.assert_array_equal(panoptic.segment_map[0].numpy(), [100, 100, 100, 100, 1002, 1002])
    assert [(s.value, s.queries, s.area, s.score) for s in panoptic.segments] == [
        (100, [0, 1], 16, pytest.approx(0.95)), (1002, [2], 8, pytest.approx(0.85))]


def test_kept_queries_drop_no_object_and_low_scores():
    logits = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 9.0], [1.0, 1.2, 0.0]])
    queries, scores, classes = kept_queries(logits)
    assert queries.tolist() == [0] and classes.tolist() == [0] and scores.item() > 0.99


# --- the released layouts --------------------------------------------------------------------

def detectron2_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EasyCV names -> facebookresearch Mask2Former's detectron2 names (FrozenBN: no bookkeeping)."""
    renamed = {}
    for name, value in state.items():
        if name.startswith("head."):
            name = "sem_seg_head." + name.removeprefix("head.")
        elif name.startswith("backbone.conv1."):
            name = "backbone.stem.conv1.weight"
        elif name.startswith("backbone.bn1."):
            name = "backbone.stem.conv1.norm." + name.rsplit(".", 1)[1]
        elif name.startswith("backbone.layer"):
            stage, block, rest = name.removeprefix("backbone.layer").split(".", 2)
            rest = (rest.replace("downsample.0.weight", "shortcut.weight").replace("downsample.1.", "shortcut.norm.")
                    .replace("bn1.", "conv1.norm.").replace("bn2.", "conv2.norm.").replace("bn3.", "conv3.norm."))
            name = f"backbone.res{int(stage) + 1}.{block}.{rest}"
        renamed[name] = value
    return renamed


def write_layout(layout: str, state: dict[str, torch.Tensor], path) -> None:
    """`state` (EasyCV names, fixture rule) saved as a released file would hold it."""
    bookkeeping = {name.replace("running_var", "num_batches_tracked"): torch.tensor(42)
                   for name in state if name.endswith("running_var")}
    if layout == "easycv":  # save_checkpoint of a DataParallel model: meta, state_dict, optimizer
        wrapped = {f"module.{name}": value for name, value in {**state, **bookkeeping}.items()}
        torch.save({"meta": {"epoch": 50, "iter": 368750, "mmcv_version": "1.7.2", "CLASSES": COCO_PANOPTIC.names[1:],
                             "config": "model = dict(type='Mask2Former', ...)"},
                    "state_dict": wrapped, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}}, path)
    elif layout == "hub":  # ModelScope's pytorch_model.pt: the bare state dict
        torch.save({**state, **bookkeeping}, path)
    elif layout == "detectron2-pkl":  # the model zoo .pkl: numpy arrays, written by numpy 1 under Python 2 names
        arrays = {name: value.numpy() for name, value in detectron2_names(state).items()
                  if not name.startswith("criterion.")}
        data = pickle.dumps({"model": arrays, "__author__": "Detectron2 Model Zoo"}, protocol=2)
        path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    elif layout == "detectron2-pth":  # detectron2's own checkpointer: {'model', 'iteration', ...}
        torch.save({"model": detectron2_names(state), "iteration": 368749, "scheduler": {}}, path)


def small_forward(net: PanopticNet) -> dict[str, torch.Tensor]:
    frame = read_rgb(FIXTURE / "input_image.png")[:96, :160]
    parser = PanopticParser(net, SPEC, torch.device("cpu"), internal_size=96, fast=False)
    return parser.infer(parser.preprocess([frame]).batch)


@pytest.mark.parametrize("layout", ["easycv", "hub", "detectron2-pkl", "detectron2-pth"])
def test_released_layouts_load_into_the_same_network(layout, fixture_state, reference_net, tmp_path):
    path = tmp_path / ("model_final.pkl" if layout == "detectron2-pkl" else "pytorch_model.pt")
    write_layout(layout, fixture_state, path)
    if layout == "detectron2-pkl":
        assert b"numpy.core.multiarray" in path.read_bytes()
    assert isinstance(load_parser("mask2former-r50-panoptic", device="cpu", weights=path), PanopticParser)
    net = load_panoptic_net(path, SPEC)  # what load_parser reads, before the fast path folds the norms
    for name, value in reference_net.state_dict().items():
        assert torch.equal(net.state_dict()[name], value), name
    expected, ours = small_forward(reference_net), small_forward(net)
    for key, value in expected.items():
        assert torch.equal(ours[key], value), key


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))

    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": {"backbone.stem.conv1.weight": Payload()}}, protocol=2))
    with pytest.raises(WeightsError, match=r"was refused: it carries pickled code.*'(io|builtins)\.open'"):
        load_parser("mask2former-r50-panoptic", device="cpu", weights=path)
    assert not (tmp_path / "ran").exists()


def test_a_checkpoint_missing_keys_is_one_line_naming_them(fixture_state, tmp_path):
    state = {name: value for name, value in fixture_state.items() if not name.startswith("head.predictor.class_embed")}
    path = tmp_path / "pytorch_model.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(WeightsError) as error:
        load_parser("mask2former-r50-panoptic", device="cpu", weights=path)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and message.startswith(str(path))
    assert "2 missing keys (head.predictor.class_embed.weight, head.predictor.class_embed.bias), 0 unexpected keys" in message


def test_registry_entry():
    assert SPEC.licence == "Apache-2.0" and SPEC.labels is COCO_PANOPTIC and len(SPEC.labels) == 134
    assert SPEC.internal_size == 800 and SPEC.multi_person
    manual = SPEC.weights.manual
    assert "modelscope.cn/models/damo/cv_r50_panoptic-segmentation_cocopan" in manual
    assert "model_final_94dc52.pkl" in manual and SPEC.weights.filename in manual


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("dtype, tolerance", [("fp32", 1e-4), ("fp16", 3e-2), ("bf16", 1e-1)])
def test_fast_path_under_autocast_stays_close_to_the_reference(device, dtype, tolerance):
    """The fast path's dtypes: backbone and decoder under autocast, pixel decoder and post-processing
    in float32 (on CPU autocast runs fp16 and bf16 too, which checks the dtype handling here)."""
    from realtime.models.backends import AUTOCAST_DTYPES
    from realtime.models.reference_vs_fast import build_net, build_parser

    image = read_rgb(FIXTURE / "input_image.png")
    reference = build_parser(SPEC, build_net(SPEC), torch.device("cpu"), fast=False, internal_size=128)
    expected = reference.infer(reference.preprocess([image]).batch)
    fast = build_parser(SPEC, build_net(SPEC), torch.device(device), fast=True, amp_dtype=AUTOCAST_DTYPES[dtype],
                        internal_size=128)
    prepared = fast.preprocess([image])
    outputs = fast.infer(prepared.batch)
    for key, value in expected.items():
        assert outputs[key].dtype == torch.float32
        assert rel_error(outputs[key].cpu(), value.numpy()) <= tolerance, key
    result = fast.postprocess(outputs, prepared)[0]
    np.testing.assert_array_equal(result.labels, reference.postprocess(expected, reference.preprocess([image]))[0].labels)


def test_weights_fetch_explains_the_manual_download_and_verify_lists_the_file(tmp_path, monkeypatch, capsys):
    from realtime.cli import main

    monkeypatch.setenv("PARTSIGHT_WEIGHTS_DIR", str(tmp_path))
    assert main(["weights", "fetch", "mask2former-r50-panoptic"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a manual download" in err
    assert "cv_r50_panoptic-segmentation_cocopan" in err and "model_final_94dc52.pkl" in err
    (tmp_path / SPEC.weights.filename).write_bytes(b"any bytes")
    assert main(["weights", "verify"]) == 0
    assert f"unpinned  {tmp_path / SPEC.weights.filename}: no published sha256" in capsys.readouterr().out
