"""M2FP through the public path, as users call it: load_parser(name, weights=checkpoint file) and
parse(image), against ModelScope's labels (shared/fixtures/m2fp_lip, m2fp_cihp). SCHP's public
path is tested in test_schp.py; the networks and post-processing alone in test_m2fp.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from _paths import fixtures_dir
from _weight_rule import generate, read_keys

from realtime.models import load_parser

LIP = fixtures_dir() / "m2fp_lip"
CIHP = fixtures_dir() / "m2fp_cihp"
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not LIP.is_dir(), reason=f"parity fixtures not found at {fixtures_dir()}"),
]


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_lip_public_path_matches_the_reference_labels(tmp_path):
    path = tmp_path / "pytorch_model.pt"
    torch.save({"model": generate(read_keys(LIP / "keys.txt"))}, path)
    result = load_parser("m2fp-lip", device="cpu", weights=path).parse(read_rgb(LIP / "input_image.png"))
    np.testing.assert_array_equal(result.labels, cv2.imread(str(LIP / "labels.png"), cv2.IMREAD_UNCHANGED))


def test_cihp_public_path_matches_the_reference_instances(tmp_path):
    """The reference pastes no part and keeps no human (every score or product stays below its
    threshold, README 3.3): the frame is all background, with nobody in it."""
    path = tmp_path / "pytorch_model.pt"
    torch.save({"model": generate(read_keys(CIHP / "keys.txt"))}, path)
    reference = np.load(CIHP / "parsing.npz")
    assert not reference["semantic_probs"].any() and len(reference["human_scores"]) == 0
    image = read_rgb(CIHP / "input_image.png")
    result = load_parser("m2fp-cihp", device="cpu", weights=path, internal_size=256).parse(image)
    assert result.labels.shape == image.shape[:2] and not result.labels.any() and result.people == []
