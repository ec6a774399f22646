"""Forward-pass timing of a parser on a synthetic frame (for `bench` and speed reports)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from realtime.models import Parser


@dataclass(frozen=True)
class ForwardTiming:
    """Seconds per forward pass (network only: no pre- or post-processing)."""

    input_shape: tuple[int, ...]
    seconds: tuple[float, ...]
    threads: int

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min_s(self) -> float:
        return min(self.seconds)


def bench_forward(parser: Parser, frame_wh: tuple[int, int], *, repeats: int = 5, warmup: int = 1,
                  threads: int | None = None) -> ForwardTiming:
    """Time `parser.infer` on one random RGB frame of `frame_wh` after `warmup` untimed runs.

    `threads` sets torch's intra-op threads for the measurement (restored afterwards); on a
    CPU shared with other work, fewer threads than cores is often faster.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        frame = np.random.default_rng(0).integers(0, 256, (frame_wh[1], frame_wh[0], 3), dtype=np.uint8)
        batch = parser.preprocess([frame]).batch
        seconds = []
        for i in range(warmup + repeats):
            start = time.perf_counter()
            parser.infer(batch)
            if batch.is_cuda:
                torch.cuda.synchronize(batch.device)
            if i >= warmup:
                seconds.append(time.perf_counter() - start)
        return ForwardTiming(tuple(batch.shape), tuple(seconds), torch.get_num_threads())
    finally:
        torch.set_num_threads(previous)
