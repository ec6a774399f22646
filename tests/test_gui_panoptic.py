"""The window with the Mask2Former panoptic model: as the parser, and as the people source."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _paths import fixtures_dir
from _weight_rule import generate, read_keys
from PyQt6.QtGui import QImage

REPO = Path(__file__).resolve().parents[1]
FIXTURE = fixtures_dir() / "m2f_r50_cocopan"
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"parity fixture not found at {FIXTURE}")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The fixture rule's weights as the hub's pytorch_model.pt (a bare state dict)."""
    path = tmp_path_factory.mktemp("panoptic") / "pytorch_model.pt"
    torch.save(generate(read_keys(FIXTURE / "keys.txt")), path)
    return path


@pytest.mark.parametrize("options", [
    ["--model", "mask2former-r50-panoptic", "--weights", "{ckpt}", "--internal-size", "128"],
    ["--model", "bodypix", "--people", "mask2former-r50-panoptic", "--people-weights", "{ckpt}",
     "--people-size", "128"],
], ids=["parser", "people"])
def test_gui_shows_frames_with_the_panoptic_model(options, checkpoint, media_dir, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    argv = [sys.executable, str(REPO / "main.py"), "gui", "--source", str(media_dir / "pose2sim-multi-cam01.mp4"),
            "--frames", "3", "--screenshot", str(shot), "--device", "cpu", "--max-side", "480",
            "--person-mask", "parser", *(option.format(ckpt=checkpoint) for option in options)]
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    image = QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600
