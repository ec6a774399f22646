"""A network's input normalisation, as its ModelSpec states it."""
from __future__ import annotations

import torch
from torch import nn

from realtime.models.registry import ModelSpec


class PixelNorm(nn.Module):
    """B x 3 x H x W float RGB in [0, 255] -> (x - mean) / std, channels in the network's order.

    `mean` / `std` are per channel of that order, in 0..255 units; `channels` is "RGB" or "BGR"
    (ModelSpec.input_mean / input_std / input_channels). With `unit` 255 it computes
    (x / 255 - mean / 255) / (std / 255): the same map in 0..1 units, rounded as references that
    normalise in those units round it.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], channels: str = "RGB",
                 unit: float = 1.0) -> None:
        super().__init__()
        if channels not in ("RGB", "BGR"):
            raise ValueError(f"input channels must be RGB or BGR, not {channels!r}")
        self.flip = channels == "BGR"
        self.unit = unit
        self.register_buffer("mean", torch.tensor([m / unit for m in mean]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([s / unit for s in std]).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_spec(cls, spec: ModelSpec, unit: float = 1.0) -> PixelNorm:
        return cls(spec.input_mean, spec.input_std, spec.input_channels, unit)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flip(1) if self.flip else images
        if self.unit != 1.0:
            x = x / self.unit
        return (x - self.mean) / self.std
