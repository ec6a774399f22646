"""BodyPix on every backend (PyTorch, onnxruntime, OpenVINO) gives the same parse on real clips;
one graph per head set and input size, built once; `auto` calibrates once and remembers."""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from realtime.models import load_parser
from realtime.models.backends import (
    _race,
    BACKENDS,
    BackendCache,
    OnnxCache,
    TupleOutputs,
    agrees,
    available_backends,
    calibrated_graph,
    calibration_key,
    cpuinfo_model,
    onnx_key,
)
from realtime.models.bodypix import MULTI_PERSON_HEADS, SINGLE_PERSON_HEADS
from conftest import read_frames


def test_every_backend_installs_in_the_default_install():
    assert available_backends() == BACKENDS


@pytest.fixture(scope="module")
def clip_frames(media_dir):
    """Frames of a one-person and a two-person clip (1080 x 1920 portrait)."""
    return (read_frames(media_dir / "pose2sim-single-cam01.mp4", [0, 60])
            + read_frames(media_dir / "pose2sim-multi-cam01.mp4", [10, 90]))


@pytest.fixture(scope="module")
def parsers():
    return {backend: load_parser("bodypix", device="cpu", backend=backend, max_people=4) for backend in BACKENDS}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_raw_outputs_agree_with_pytorch(parsers, clip_frames, backend):
    reference, other = parsers["torch"], parsers[backend]
    for frame in clip_frames:
        batch = reference.preprocess([frame]).batch
        for heads in (SINGLE_PERSON_HEADS, MULTI_PERSON_HEADS):
            expected, got = reference.infer(batch, heads), other.infer(batch, heads)
            assert other.backend == backend and reference.backend == "torch"
            assert list(got) == list(heads)
            for name in heads:
                assert got[name].shape == expected[name].shape, name
                scale = max(1.0, float(expected[name].abs().max()))
                np.testing.assert_allclose(got[name].numpy(), expected[name].numpy(), atol=1e-3 * scale, rtol=0,
                                           err_msg=f"{backend} {name}")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("max_people", [1, 4])
def test_parses_agree_with_pytorch(parsers, clip_frames, backend, max_people):
    for parser in parsers.values():
        parser.max_people = max_people
    for frame in clip_frames:
        expected, got = parsers["torch"].parse(frame), parsers[backend].parse(frame)
        assert (got.labels == expected.labels).mean() > 0.9995
        assert (got.person_mask == expected.person_mask).mean() > 0.9995
        assert len(got.people) == len(expected.people)
        for mine, theirs in zip(got.people, expected.people):
            np.testing.assert_allclose(mine.keypoints[:, :2], theirs.keypoints[:, :2], atol=0.5)
            np.testing.assert_allclose(mine.keypoints[:, 2], theirs.keypoints[:, 2], atol=1e-3)
            assert (mine.mask == theirs.mask).mean() > 0.999
        np.testing.assert_allclose(got.part_probs, expected.part_probs, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_alternating_head_sets_builds_one_graph_per_head_set(single_frames, backend):
    parser = load_parser("bodypix", device="cpu", backend=backend)
    batch = parser.preprocess([single_frames[0]]).batch
    first = {}
    for _ in range(3):
        for heads in (SINGLE_PERSON_HEADS, MULTI_PERSON_HEADS):
            outputs = parser.infer(batch, heads)
            first.setdefault(heads, outputs)
            for name in heads:  # the graph kept for a head set is the one built for it
                assert torch.equal(outputs[name], first[heads][name])
    assert parser.graphs_built == 2
    other_size = parser.preprocess([single_frames[0][:960]]).batch
    parser.infer(other_size)
    assert parser.graphs_built == 3


def test_auto_calibrates_once_and_remembers_the_choice(single_frames, tmp_path, monkeypatch):
    cache_file = tmp_path / "backends.json"
    monkeypatch.setenv("PARTSIGHT_BACKEND_CACHE", str(cache_file))
    parser = load_parser("bodypix", device="cpu", backend="auto")
    assert parser.backend == "auto"  # nothing ran yet
    result = parser.parse(single_frames[0])
    assert parser.backend in BACKENDS and result.person_mask.any()
    entries = json.loads(cache_file.read_text())
    (key, entry), = entries.items()
    batch_shape = tuple(parser.preprocess([single_frames[0]]).batch.shape)
    assert key == calibration_key("bodypix:single", batch_shape, torch.get_num_threads())
    assert entry["backend"] == parser.backend
    assert entry["ms"][parser.backend] == min(ms for ms in entry["ms"].values() if ms is not None)

    # another process on this machine reads the choice instead of calibrating: told (here) that
    # OpenVINO won, it runs OpenVINO, and the file is left as it was
    entries[key]["backend"] = "openvino"
    cache_file.write_text(json.dumps(entries))
    again = load_parser("bodypix", device="cpu", backend="auto")
    again.parse(single_frames[0])
    assert again.backend == "openvino"
    assert json.loads(cache_file.read_text()) == entries


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the model name from /proc/cpuinfo")
def test_a_calibration_timed_on_another_processor_is_not_reused(tmp_path, monkeypatch):
    """A cache folder shared between machines (a home folder on NFS, a VM moved to other
    hardware) holds a race timed on another processor of the same architecture: this machine
    races again and keeps its own entry beside it, keyed on its processor's model name."""
    monkeypatch.setenv("PARTSIGHT_BACKEND_CACHE", str(tmp_path / "backends.json"))
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model_name = " ".join(next(line for line in cpuinfo if line.startswith("model name")).split(":", 1)[1].split())
    module, example = TupleOutputs(nn.Conv2d(3, 4, 3)).eval(), torch.rand(1, 3, 16, 16)
    key = calibration_key("probe", tuple(example.shape), torch.get_num_threads())
    assert f"cpu={model_name}" in key.split("|")
    # what every x86_64 Linux machine wrote before: the architecture alone, whatever the processor
    others = key.replace(f"cpu={model_name}", platform.machine())
    cache = BackendCache()
    cache.put(others, "torch", {"torch": 0.001})
    graph = calibrated_graph(module, example, model="probe", cache=cache, runs=2, warmup=1, budget_s=0.5)
    entries = json.loads(cache.path.read_text())
    assert set(entries) == {others, key}
    assert entries[others] == {"backend": "torch", "ms": {"torch": 0.001}}
    assert entries[key]["backend"] == graph.backend and set(entries[key]["ms"]) == set(BACKENDS)


def test_the_race_keeps_each_backends_best_time_so_one_disturbed_stretch_does_not_lose_it():
    """Other work on the machine stalls the faster graph for two calls in a row (what a busy
    laptop does to any call): it still wins on its undisturbed calls, and the slow one, whose best
    is more than SLOW_FACTOR times the fastest's, is out."""
    class Sleeper:
        def __init__(self, ms: float, stalls: dict[int, float] | None = None) -> None:
            self.ms, self.stalls, self.calls = ms, stalls or {}, 0

        def __call__(self, batch: torch.Tensor) -> None:
            time.sleep(self.stalls.get(self.calls, self.ms) / 1000)
            self.calls += 1

    fast, slow = Sleeper(5, {1: 300, 2: 300}), Sleeper(60)
    ms = _race({"fast": fast, "slow": slow}, torch.zeros(1), runs=4, warmup=1, budget_s=30.0)
    assert 5 <= ms["fast"] < 60 and fast.calls == 5
    assert ms["slow"] == float("inf") and slow.calls == 2  # 12 times slower: out after its second call


def test_a_damaged_cache_file_is_started_anew(tmp_path):
    path = tmp_path / "backends.json"
    path.write_text("{not json")
    cache = BackendCache(path)
    assert cache.get("key") is None
    cache.put("key", "openvino", {"openvino": 1.0, "torch": float("inf")})
    assert BackendCache(path).get("key") == "openvino"
    assert json.loads(path.read_text())["key"]["ms"] == {"openvino": 1.0, "torch": None}


def test_onnx_exports_are_kept_on_disk_keyed_by_what_they_depend_on(tmp_path):
    """A second process reads the export (here: the file's bytes, whatever they are) instead of
    tracing again; other weights, another shape or another setting of a submodule are new files;
    the least recently used go past the capacity."""
    module = TupleOutputs(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Upsample(scale_factor=2.0))).eval()
    example = torch.rand(1, 3, 16, 16)
    cache = OnnxCache(tmp_path / "onnx", capacity=2)
    exported = cache.export(module, example)
    (path,) = (tmp_path / "onnx").glob("*.onnx")
    assert path.read_bytes() == exported and path.name.startswith("TupleOutputs-1x3x16x16-")
    path.write_bytes(b"what the earlier process exported")
    assert OnnxCache(tmp_path / "onnx").export(module, example) == b"what the earlier process exported"

    keys = {onnx_key(module, example), onnx_key(module, torch.rand(2, 3, 16, 16))}
    module.module[1].scale_factor = 3.0
    keys.add(onnx_key(module, example))
    with torch.no_grad():
        module.module[0].weight[0, 0, 0, 0] += 1.0
    keys.add(onnx_key(module, example))
    assert len(keys) == 4
    cache.export(module, example)
    cache.export(module, torch.rand(2, 3, 16, 16))  # the third file: the least recently used goes
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2 and not path.exists()


def test_agreement_needs_equal_shapes_and_close_values():
    a = (torch.ones(1, 2, 3, 3) * 10,)
    assert agrees(a, (a[0] + 0.005,))
    assert not agrees(a, (a[0] + 0.05,))
    assert not agrees(a, (a[0][:, :1],))


def test_unknown_or_unfitting_backends_are_clear_errors():
    with pytest.raises(ValueError, match="choose from auto, torch, onnxruntime, openvino"):
        load_parser("bodypix", device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="m2fp-lip runs on PyTorch only"):
        load_parser("m2fp-lip", device="cpu", backend="openvino")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_blazepose_and_the_selfie_segmenter_agree_with_pytorch(clip_frames, backend):
    from realtime.models.blazepose_detector import BlazePoseDetector
    from realtime.models.blazepose_landmark import BlazePoseLandmarker, roi_from_points
    from realtime.models.selfie_segmenter import SelfieSegmenter

    frames = clip_frames[2:]  # two people
    detections = {name: BlazePoseDetector(backend=name)(frames, max_people=2) for name in ("torch", backend)}
    for expected, got in zip(detections["torch"], detections[backend]):
        assert len(got) == len(expected)
        for mine, theirs in zip(got, expected):
            np.testing.assert_allclose(mine.keypoints, theirs.keypoints, atol=0.5)
    rois = [roi_from_points(d.keypoints[0], d.keypoints[1]) for d in detections["torch"][0]]
    assert rois
    reference, other = BlazePoseLandmarker(backend="torch"), BlazePoseLandmarker(backend=backend)
    for mine, theirs in zip(other(frames[0], rois), reference(frames[0], rois)):
        np.testing.assert_allclose(mine.xyz[:33, :2], theirs.xyz[:33, :2], atol=0.5)
        np.testing.assert_allclose(mine.world, theirs.world, atol=1e-3)
        np.testing.assert_allclose(mine.visibility, theirs.visibility, atol=1e-3)
    masks = {name: SelfieSegmenter("selfie", backend=name)(frames) for name in ("torch", backend)}
    for expected, got in zip(masks["torch"], masks[backend]):
        np.testing.assert_allclose(got, expected, atol=1e-3)


def test_an_arm_processor_is_told_by_its_implementer_and_part_codes():
    """Linux's /proc/cpuinfo on ARM names no model (no "model name" line): the key took the
    architecture, "aarch64", for every ARM server, so Graviton2 and Graviton3 machines sharing a
    cache folder took each other's races. Text as an Arm Neoverse N1 (Graviton2) writes it."""
    neoverse_n1 = ("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
                   "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n"
                   "CPU revision\t: 1\n\nprocessor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n")
    assert cpuinfo_model(neoverse_n1) == "implementer 0x41 part 0xd0c"
    assert cpuinfo_model(neoverse_n1.replace("0xd0c", "0xd40")) != cpuinfo_model(neoverse_n1)  # Neoverse V1
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n"
    assert cpuinfo_model(x86) == "Intel(R) Xeon(R) Processor"
    assert cpuinfo_model("processor\t: 0\n") == ""
