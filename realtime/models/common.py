"""What every parser shares: the frame check and the preprocess -> postprocess hand-over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from realtime.models.registry import ModelSpec
from realtime.types import ParseResult


@dataclass(frozen=True)
class Prepared:
    """A network-ready batch and the model's own geometry for mapping outputs back to frames.

    The pipeline times the stages as `prepared = preprocess(frames)`,
    `outputs = infer(prepared.batch)`, `postprocess(outputs, prepared)`.
    """

    batch: torch.Tensor
    geometry: Any


def check_frames(rgbs: list[np.ndarray]) -> None:
    """Raises ValueError unless every frame is an H x W x 3 uint8 array of the first one's size."""
    first = rgbs[0]
    for rgb in rgbs:
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            shape = getattr(rgb, "shape", None)
            raise ValueError(f"frames must be H x W x 3 uint8 RGB arrays, got {shape} {getattr(rgb, 'dtype', type(rgb))}")
        if rgb.shape != first.shape:
            raise ValueError("parse_batch needs frames of one size")


class Parser:
    """The numpy API every parser offers; subclasses set `spec` and `device` and implement
    preprocess -> Prepared, infer(batch) and postprocess(outputs, prepared) -> [ParseResult]."""

    spec: ModelSpec
    device: torch.device
    internal_size_range: tuple[int, int] = (32, 4096)

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.spec.labels.names

    @property
    def palette(self) -> np.ndarray:
        return self.spec.labels.palette

    @property
    def internal_size(self) -> int:
        """The network input size in pixels (what it measures is the model's own convention)."""
        return self._internal_size

    @internal_size.setter
    def internal_size(self, size: int) -> None:
        low, high = self.internal_size_range
        if not low <= size <= high:
            raise ValueError(f"internal size must be between {low} and {high} pixels, not {size}")
        self._internal_size = int(size)

    def parse_batch(self, rgbs: list[np.ndarray]) -> list[ParseResult]:
        if not rgbs:
            return []
        prepared = self.preprocess(rgbs)
        return self.postprocess(self.infer(prepared.batch), prepared)

    def parse(self, rgb: np.ndarray) -> ParseResult:
        return self.parse_batch([rgb])[0]
