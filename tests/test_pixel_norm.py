"""Input normalisation comes from the model's spec (ModelSpec.input_mean / input_std / input_channels)."""
from __future__ import annotations

from dataclasses import replace

import torch

from realtime.models import get_spec
from realtime.models.pixel_norm import PixelNorm


def _pixels() -> torch.Tensor:
    """1 x 3 x 16 x 16: every 0..255 level, a different one in each channel at each pixel."""
    levels = torch.arange(256, dtype=torch.float32)
    return torch.stack([levels, levels.flip(0), levels.roll(128)]).view(1, 3, 16, 16)


def test_bodypix_maps_0_255_onto_minus_one_to_one():
    normalised = PixelNorm.from_spec(get_spec("bodypix"))(torch.tensor([0.0, 127.5, 255.0]).repeat(3, 1).view(1, 3, 1, 3))
    assert normalised.flatten().tolist() == [-1.0, 0.0, 1.0] * 3


def test_schp_in_0_1_units_is_its_reference_bit_for_bit():
    images = _pixels()
    mean = torch.tensor((0.406, 0.456, 0.485)).view(1, 3, 1, 1)
    std = torch.tensor((0.225, 0.224, 0.229)).view(1, 3, 1, 1)
    reference = (images.flip(1) / 255 - mean) / std
    assert torch.equal(PixelNorm.from_spec(get_spec("schp-lip"), unit=255.0)(images), reference)


def test_the_spec_is_the_one_source():
    spec = get_spec("m2fp-lip")
    shifted = replace(spec, input_mean=(0.0, 0.0, 0.0), input_std=(1.0, 1.0, 1.0), input_channels="BGR")
    images = _pixels()
    assert torch.equal(PixelNorm.from_spec(shifted)(images), images.flip(1))
    assert not torch.equal(PixelNorm.from_spec(spec)(images), images)
