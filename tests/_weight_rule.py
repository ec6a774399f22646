"""The parity fixtures' deterministic weights (fixtures/README.md, section 1): the rule lives in
realtime.models.fixture_weights; this adds reading keys.txt and the README's checksums."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from realtime.models.fixture_weights import generate

__all__ = ["checks", "generate", "read_keys"]


def read_keys(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """keys.txt: one `name<TAB>d0,d1,...` per line, in state_dict order."""
    keys = []
    for line in path.read_text().splitlines():
        name, shape = line.split("\t")
        keys.append((name, tuple(int(d) for d in shape.split(","))))
    return keys


def checks(state: dict[str, torch.Tensor]) -> tuple[int, str, float]:
    """(number of values, sha256 of the float32 little-endian bytes in order, float64 sum)."""
    digest = hashlib.sha256()
    count, total = 0, 0.0
    for value in state.values():
        digest.update(value.contiguous().numpy().astype("<f4").tobytes())
        count += value.numel()
        total += value.double().sum().item()
    return count, digest.hexdigest(), total
