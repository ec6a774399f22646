"""What every parser shares: the frame check and the preprocess -> postprocess hand-over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


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
