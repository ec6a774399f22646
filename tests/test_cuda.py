"""The CUDA paths against the CPU ones (marked `cuda`: skipped where there is no NVIDIA GPU, a
failure where there is one that PyTorch cannot use; `make gpu-check` runs them)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from realtime.cli import main
from realtime.models import load_parser

pytestmark = pytest.mark.cuda


def test_bodypix_on_cuda_agrees_with_the_cpu(single_frames):
    cpu = load_parser("bodypix", device="cpu", backend="torch", max_people=4)
    cuda = load_parser("bodypix", device="cuda", max_people=4)
    assert cuda.backend == "auto" and cuda.device.type == "cuda"
    for frame in single_frames:
        expected, got = cpu.parse(frame), cuda.parse(frame)
        assert cuda.backend == "torch"  # the only backend on CUDA
        assert (got.labels == expected.labels).mean() > 0.999
        assert len(got.people) == len(expected.people)
        for mine, theirs in zip(got.people, expected.people):
            np.testing.assert_allclose(mine.keypoints[:, :2], theirs.keypoints[:, :2], atol=1.0)


def test_bodypix_batches_of_streams_on_cuda_match_one_by_one(single_frames):
    parser = load_parser("bodypix", device="cuda")
    batched = parser.parse_batch(single_frames)
    for frame, result in zip(single_frames, batched):
        assert (parser.parse(frame).labels == result.labels).mean() > 0.999


def test_cpu_backends_refuse_cuda():
    with pytest.raises(ValueError, match="runs on the CPU"):
        load_parser("bodypix", device="cuda", backend="openvino")


def test_blazepose_and_the_selfie_mask_on_cuda_agree_with_the_cpu(single_frames):
    from realtime.models.blazepose_torch import BlazePoseTorchStage
    from realtime.models.selfie_segmenter import SelfieSegmenter

    cpu_pose, cuda_pose = BlazePoseTorchStage(device="cpu"), BlazePoseTorchStage(device="cuda")
    for frame in single_frames:
        (expected,), (got,) = cpu_pose.people(frame), cuda_pose.people(frame)
        np.testing.assert_allclose(got.xyz[:33, :2], expected.xyz[:33, :2], atol=2.0)
    cpu_mask = SelfieSegmenter("selfie", device="cpu", backend="torch")(single_frames)
    cuda_mask = SelfieSegmenter("selfie", device="cuda")(single_frames)
    for expected, got in zip(cpu_mask, cuda_mask):
        assert ((got > 0.5) == (expected > 0.5)).mean() > 0.999


def test_bench_runs_the_default_pipeline_on_cuda(single_clip, capsys):
    assert main(["bench", str(single_clip), "--device", "cuda", "--frames", "10", "--warmup", "2",
                 "--exercise", "squat"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"].startswith("cuda") and report["backend"] == "torch" and report["frames"] == 10
    assert "blazepose-torch" in report["stages_ms"] and "selfie-mask" in report["stages_ms"]


def test_the_gpu_benchmarks_run(single_clip, capsys):
    assert main(["bench-gpu", "--quick", "--frame", str(single_clip)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gpu"] == torch.cuda.get_device_name()
    assert set(report) >= {"bodypix", "blazepose", "m2fp", "schp"}


def test_bf16_on_cuda_runs_under_autocast_close_to_fp32(single_frames, single_clip, capsys):
    from realtime.models.blazepose_torch import BlazePoseTorchStage

    fp32, bf16 = (BlazePoseTorchStage(device="cuda", dtype=dtype) for dtype in ("fp32", "bf16"))
    for frame in single_frames:
        (expected,), (got,) = fp32.people(frame), bf16.people(frame)
        # the bound of the CPU's bf16 on OpenVINO (tests/test_dtype.py)
        np.testing.assert_allclose(got.xyz[:33, :2], expected.xyz[:33, :2], atol=0.03 * frame.shape[0])
    assert main(["bench", str(single_clip), "--device", "cuda", "--dtype", "bf16", "--frames", "10",
                 "--warmup", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"].startswith("cuda") and (report["backend"], report["dtype"]) == ("torch", "bf16")
