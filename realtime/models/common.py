"""What every parser shares: the frame check and the preprocess -> postprocess hand-over."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from realtime.imaging import to_nchw_float
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


def nchw_float(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """N x H x W x C uint8 images -> N x C x H x W float32 tensor on `device`, the same values. On
    the CPU one transposing numpy copy (PyTorch's permute().float().contiguous() of the NHWC
    tensor took 15 ms for one 449 x 257 frame on our 2-core CPU, numpy 0.4 ms); on CUDA the uint8
    pixels are sent and converted there (a quarter of the bytes to move)."""
    if device.type == "cpu":
        return torch.from_numpy(to_nchw_float(images))
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()


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
        """One ParseResult per frame, in order, at the frames' size (labels and person_mask H x W).
        `rgbs`: H x W x 3 uint8 RGB arrays, all of one size; none gives none. ValueError for a
        frame of another shape or dtype, or frames of different sizes (check_frames)."""
        if not rgbs:
            return []
        prepared = self.preprocess(rgbs)
        return self.postprocess(self.infer(prepared.batch), prepared)

    def parse(self, rgb: np.ndarray) -> ParseResult:
        """The ParseResult of one H x W x 3 uint8 RGB frame, at H x W; ValueError for an array of
        another shape or dtype (parse_batch)."""
        return self.parse_batch([rgb])[0]


class OptimisableNet(Protocol):
    """A torch network with a faster inference form of the same maths (see NetworkParser)."""

    def optimise_for_inference(self) -> torch.nn.Module: ...


class NetworkParser(Parser):
    """A parser around one torch network `net` on `device`: `fast` (its `optimise_for_inference`
    and channels_last) or reference-style, `amp_dtype` (float16 / bfloat16 autocast; outputs
    returned as float32), the internal size (default: the spec's) and the most people reported
    (`max_people`, None: all). Subclasses implement preprocess and postprocess."""

    def __init__(self, net: OptimisableNet, spec: ModelSpec, device: torch.device, *, internal_size: int | None = None,
                 amp_dtype: torch.dtype | None = None, fast: bool = True, max_people: int | None = None) -> None:
        if fast:
            net.optimise_for_inference()
        self.fast = fast
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.net = net.to(device).to(memory_format=self.memory_format)
        self.spec = spec
        self.device = device
        self.internal_size = internal_size or spec.internal_size
        self.amp_dtype = amp_dtype
        self.max_people = max_people

    def infer(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=self.amp_dtype or torch.float32,
                                                    enabled=self.amp_dtype is not None):
            outputs = self.net(batch)
        return {key: value.float() for key, value in outputs.items()}
