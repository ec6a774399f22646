"""`--person-mask humanseg-*` through every command on real clips, `weights` and `bench-model` for
the Human_seg segmenters. The released checkpoints cannot be downloaded here: the fixture rule's
weights are written in the released layout into a temporary weights cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from _humanseg_checkpoint import write_released_checkpoint
from _paths import REPO, datasets_dir

from realtime import weights as weights_cache
from realtime.cli import main
from realtime.evaluation import run_stages
from realtime.models import load_parser
from realtime.models.humanseg import load_humanseg
from realtime.models.person_mask import PersonMaskStage
from realtime.models.registry import SEGMENTER_SPECS, get_spec
from realtime.sources import open_source
from realtime.types import Frame

MOBILENET = "humanseg-unet-mobilenetv2"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch, weights_dir) -> Path:
    """A weights cache with BodyPix and BlazePose's networks (the default stages', linked from the
    shared one) and UNet-MobileNetV2's checkpoint."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for shared in [weights_dir / get_spec("bodypix").weights.filename, *weights_dir.glob("mediapipe-*.tflite")]:
        (folder / shared.name).symlink_to(shared)
    write_released_checkpoint(folder, MOBILENET)
    monkeypatch.setenv(weights_cache.WEIGHTS_DIR_ENV, str(folder))
    return folder


def decoded_frames(clip: Path, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    source = open_source(str(clip), size=size)
    source.start()
    try:
        return [source.read(timeout_s=10).image for _ in range(count)]
    finally:
        source.stop()


def test_process_fuses_the_humanseg_mask_into_the_parts(cache, single_clip, tmp_path):
    """Without smoothing, each written label map is BodyPix's parse fused with the segmenter's
    probability (PersonMaskStage), and differs from BodyPix's own."""
    runs = {}
    for source in ("parser", MOBILENET):
        out = tmp_path / source
        code = main(["process", str(single_clip), "-o", str(out / "video.mp4"), "--frames", "3", "--size", "270x480",
                     "--labels-dir", str(out / "labels"), "--metrics", str(out / "frames.jsonl"), "--smoothing", "0",
                     "--max-people", "1", "--person-mask", source, "--device", "cpu"])
        assert code == 0
        runs[source] = out
    lines = [json.loads(line) for line in (runs[MOBILENET] / "frames.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(f"{MOBILENET}-mask" in line["timings_ms"] for line in lines)

    parser = load_parser("bodypix", device="cpu", max_people=1)
    stage = PersonMaskStage(load_humanseg(MOBILENET), name=f"{MOBILENET}-mask")
    changed = 0
    for index, rgb in enumerate(decoded_frames(single_clip, 3, (270, 480))):
        written = {source: cv2.imread(str(run / "labels" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
                   for source, run in runs.items()}
        parse = parser.parse(rgb)
        np.testing.assert_array_equal(written["parser"], parse.labels)
        fused = run_stages([stage], Frame(rgb, index, index / 60), parse)
        assert np.mean(written[MOBILENET] != fused.labels) <= 1e-3
        changed += int((written[MOBILENET] != written["parser"]).sum())
    assert changed > 100


def test_a_missing_checkpoint_is_one_line_that_says_where_to_get_it(cache, single_clip, tmp_path, capsys):
    code = main(["process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--frames", "2",
                 "--person-mask", "humanseg-unet-resnet18", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("partsight: error:")
    assert "humanseg-unet-resnet18.pth" in err and "drive.google.com" in err and "Traceback" not in err


def test_bench_times_the_segmenter_as_a_stage(cache, single_clip, capsys):
    assert main(["bench", str(single_clip), "--frames", "2", "--warmup", "1", "--size", "270x480",
                 "--person-mask", MOBILENET, "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages_ms"][f"{MOBILENET}-mask"] > 0


def test_eval_person_iou_reports_the_fused_mask(cache, capsys):
    assert main(["eval", "person-iou", "--dataset", str(datasets_dir() / "skin_clothes_hair"),
                 "--person-mask", MOBILENET, "--device", "cpu", "--max-people", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["person_mask"] == f"{MOBILENET}-mask" and 0 <= report["mean_iou"] <= 1


def test_the_window_runs_with_the_humanseg_mask(cache, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "gui", "--source",
                           str(Path(os.environ["PARTSIGHT_MEDIA_DIR"]) / "cg-mannequin-squat.mp4"), "--frames", "3",
                           "--screenshot", str(shot), "--device", "cpu", "--person-mask", MOBILENET],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 10_000


def test_bench_model_times_the_reference_and_fast_paths(capsys):
    assert main(["bench-model", "--model", "humanseg-icnet-resnet18", "--size", "320x320", "--repeats", "1",
                 "--warmup", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_shape"] == [1, 3, 320, 320] and report["weights"] == "fixture rule"
    assert report["max_abs_diff"]["logits"] <= 1e-4 and report["label_disagreement"] <= 1e-3


def test_weights_commands_cover_the_segmenters(cache, capsys):
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    for name in SEGMENTER_SPECS:
        assert " MIT " in rows[name] and ("present" if name == MOBILENET else "missing") in rows[name]
    assert main(["weights", "verify"]) == 0
    assert f"unpinned  {cache / f'{MOBILENET}.pth'}" in capsys.readouterr().out


@pytest.mark.parametrize("name, says", [("humanseg-bisenet-resnet18", "1Lm6O2-_lnQEjMM5lQRcIAbtA9YQUGQuy"),
                                        ("humanseg-pspnet-resnet18", "No trained PSPNet-ResNet18 was released")])
def test_weights_fetch_explains_the_manual_download(cache, capsys, name, says):
    assert main(["weights", "fetch", name]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and f"{name}.pth" in err
