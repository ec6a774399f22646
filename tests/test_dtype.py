"""--dtype bf16: the CPU networks on OpenVINO in bfloat16 give person masks, part labels and
landmarks close to fp32's on real photos and frames; where bf16 cannot run, a one-line error says
why; bench reports the dtype.

Bounds, measured on this project's CPU (AMD Zen 4, avx512_bf16) with the default pipeline on the
first 40 ccp_dev photos: person-mask IoU between fp32 and bf16 min 0.916, median 0.992; parts
agreeing on 0.962-0.997 of the pixels both call person; BlazePose's visible landmarks on
pose2sim-single-cam01 frames 0/30/60/99 apart by a median of 5.8-7.5 px, at most 18.4 px (1920 px
tall frames)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from realtime.build import build_parser, person_mask_chain
from realtime.cli import main
from realtime.config import PipelineConfig
from realtime.evaluation import labelled_images, mask_iou, read_rgb, run_stages
from realtime.models import load_parser
from realtime.models.backends import TupleOutputs, autocast_dtype, build_graph, check_dtype, cpu_bf16_missing
from realtime.models.blazepose import blazepose_available
from realtime.models.blazepose_torch import BlazePoseTorchStage
from realtime.models.humanseg import HumanSegmenter, humanseg_net
from realtime.models.registry import get_segmenter_spec
from realtime.models.selfie_segmenter import SelfieSegmenter
from realtime.types import Frame
from _paths import datasets_dir

needs_bf16 = pytest.mark.skipif(cpu_bf16_missing() is not None, reason=f"no bf16 here: {cpu_bf16_missing()}")
CPU = torch.device("cpu")
PSPNET = get_segmenter_spec("humanseg-pspnet-resnet18")  # runs eagerly (humanseg.EAGER_ONLY)


@pytest.fixture(scope="module")
def photos():
    """Eight CCP photos, among them the one whose masks differ most (img_0014, IoU 0.916)."""
    return [read_rgb(item.image) for item in labelled_images(datasets_dir() / "ccp_dev")[4:12]]


@needs_bf16
def test_bf16_masks_and_parts_stay_close_to_fp32_on_real_photos(photos):
    runs = {}
    for dtype in ("fp32", "bf16"):
        config = PipelineConfig(device="cpu", dtype=dtype)
        runs[dtype] = (build_parser(config), person_mask_chain(config))
    ious, agreement = [], []
    for rgb in photos:
        a, b = (run_stages(stages, Frame(rgb, 0, 0.0), parser.parse(rgb), still=True)
                for parser, stages in runs.values())
        ious.append(mask_iou(a.person_mask, b.person_mask))
        both = a.person_mask & b.person_mask
        agreement.append(float((a.labels[both] == b.labels[both]).mean()))
    assert runs["bf16"][0].backend == "openvino"
    assert min(ious) > 0.85 and np.mean(ious) > 0.96, ious
    assert min(agreement) > 0.93, agreement
    assert min(ious) < 1.0 or min(agreement) < 1.0  # it did compute in bf16: not fp32's very masks


@needs_bf16
def test_bf16_landmarks_stay_close_to_fp32_on_real_frames(single_frames):
    stages = {dtype: BlazePoseTorchStage(device="cpu", dtype=dtype) for dtype in ("fp32", "bf16")}
    medians = []
    for frame in single_frames:
        (a,), (b,) = (stage.people(frame) for stage in stages.values())
        visible = a.visibility[:33] > 0.5
        apart = np.linalg.norm(a.xyz[:33, :2] - b.xyz[:33, :2], axis=1)[visible]
        height = frame.shape[0]
        assert visible.sum() >= 25
        assert np.median(apart) < 0.01 * height and apart.max() < 0.03 * height, apart
        medians.append(np.median(apart))
    assert max(medians) > 0.01  # bf16, not fp32 again
    assert stages["bf16"].landmarker._graphs.backend == "openvino"


@needs_bf16
def test_bf16_on_the_cpu_runs_on_openvino_without_the_backend_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PARTSIGHT_BACKEND_CACHE", str(tmp_path / "backends.json"))
    segmenter = SelfieSegmenter("selfie", device="cpu", backend="auto", dtype="bf16")
    segmenter([np.zeros((240, 320, 3), np.uint8)])
    assert segmenter._graphs.backend == "openvino"
    assert not (tmp_path / "backends.json").exists()  # no race, nothing to remember


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bf16_on_the_cpu_refuses_the_other_backends(backend):
    with pytest.raises(ValueError, match=f"--dtype bf16 runs on OpenVINO on the CPU, not on --backend {backend}"):
        check_dtype("bf16", backend, CPU)
    with pytest.raises(ValueError, match="runs on OpenVINO on the CPU"):
        build_graph(backend, TupleOutputs(torch.nn.Conv2d(3, 2, 3)), torch.zeros(1, 3, 8, 8), dtype="bf16")


def test_cli_error_for_onnxruntime_in_bf16(single_clip, capsys):
    assert main(["bench", str(single_clip), "--frames", "2", "--backend", "onnxruntime", "--dtype", "bf16"]) == 1
    err = capsys.readouterr().err
    assert err == ("partsight: error: --dtype bf16 runs on OpenVINO on the CPU, not on --backend onnxruntime; "
                   "use --backend openvino (or auto) or --dtype fp32\n")


def test_cli_runs_bf16_where_the_cpu_has_it_else_says_why(single_clip, capsys):
    code = main(["bench", str(single_clip), "--size", "160x288", "--frames", "2", "--warmup", "1", "--max-people", "1",
                 "--dtype", "bf16"])
    out, err = capsys.readouterr()
    if cpu_bf16_missing() is None:
        assert code == 0 and json.loads(out)["dtype"] == "bf16"
    else:
        assert code == 1 and err == f"partsight: error: --dtype bf16 cannot run here: {cpu_bf16_missing()}; use --dtype fp32\n"


@pytest.mark.parametrize("call, message", [
    (lambda: load_parser("schp-lip", device="cpu", dtype="bf16"), "schp-lip runs on PyTorch only, in fp32 on the CPU"),
    pytest.param(lambda: PipelineConfig(pose="blazepose", dtype="bf16"), "computes in its own precision",
                 marks=[pytest.mark.mediapipe,
                        pytest.mark.skipif(not blazepose_available(), reason="needs the mediapipe extra")]),
    (lambda: PipelineConfig(dtype="fp16"), "unknown dtype 'fp16'"),
    (lambda: HumanSegmenter(humanseg_net(PSPNET), PSPNET, CPU, dtype="bf16"),
     "humanseg-pspnet-resnet18 runs eagerly on PyTorch on the CPU, in fp32 only"),
])
def test_what_cannot_compute_in_bf16_says_so(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_networks_pytorch_runs_follow_the_dtype_under_autocast_on_cuda_only():
    """The one mapping the parsers and segmenters on PyTorch take their autocast from: on CUDA fp32
    is no autocast (float32, not float16), bf16 bfloat16; on the CPU never autocast."""
    cuda = torch.device("cuda")  # only a device's type is read: nothing runs on it
    assert autocast_dtype("fp32", cuda) is None and autocast_dtype("bf16", cuda) is torch.bfloat16
    assert autocast_dtype("fp32", CPU) is None and autocast_dtype("bf16", CPU) is None
    with pytest.raises(ValueError, match="unknown dtype 'fp16'; choose from fp32, bf16"):
        autocast_dtype("fp16", cuda)


@needs_bf16
def test_bench_compares_the_dtypes_and_reports_them(single_clip, capsys):
    assert main(["bench", str(single_clip), "--size", "160x288", "--frames", "4", "--warmup", "1", "--max-people", "1",
                 "--compare", "--dtype fp32", "--dtype bf16"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert (settings["a"]["dtype"], settings["b"]["dtype"]) == ("fp32", "bf16")
    assert settings["b"]["backend"] == "openvino"


@needs_bf16
def test_the_service_parses_in_the_dtype_it_was_started_with(photos):
    """`serve --dtype bf16`: one dtype for the whole server, reaching every request's networks."""
    from realtime.cli import _build_parser
    from realtime.serve.engine import ParseOptions, ParsePool
    from realtime.serve.settings import settings_from_args

    settings = settings_from_args(_build_parser(()).parse_args(["serve", "--dtype", "bf16", "--device", "cpu"]))
    options = ParseOptions(pose="parser", person_mask="parser", max_people=1)
    labels = {}
    for dtype in ("fp32", settings.dtype):
        pool = ParsePool(settings.device, dtype)
        try:
            labels[dtype] = pool.parse(photos[0], options).parse.labels
        finally:
            pool.close()
    assert 0.9 < (labels["fp32"] == labels["bf16"]).mean() < 1.0  # close to fp32's, not fp32's
