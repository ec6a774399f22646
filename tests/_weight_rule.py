"""The parity fixtures' deterministic weights (fixtures/README.md, section 1)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch

GAIN = 1.0
RUNNING_VAR_LOW = 0.5
QUERY_EMB_STD = 4.0


def read_keys(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """keys.txt: one `name<TAB>d0,d1,...` per line, in state_dict order."""
    keys = []
    for line in path.read_text().splitlines():
        name, shape = line.split("\t")
        keys.append((name, tuple(int(d) for d in shape.split(","))))
    return keys


def generate(keys: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    state = {}
    for i, (name, shape) in enumerate(keys):
        g = torch.Generator().manual_seed(1000 + i)
        if name.endswith("running_mean"):
            value = 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("running_var"):
            value = RUNNING_VAR_LOW + torch.rand(shape, generator=g)
        elif len(shape) == 1 and name.endswith(".weight"):
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            value = 0.02 * torch.randn(shape, generator=g)
        elif name.endswith(("query_feat.weight", "query_embed.weight")):
            value = QUERY_EMB_STD * torch.randn(shape, generator=g)
        elif len(shape) >= 2:
            value = torch.randn(shape, generator=g) * GAIN / math.sqrt(math.prod(shape[1:]))
        else:
            raise ValueError(f"no weight rule for {name} {shape}")
        state[name] = value.float()
    return state


def checks(state: dict[str, torch.Tensor]) -> tuple[int, str, float]:
    """(number of values, sha256 of the float32 little-endian bytes in order, float64 sum)."""
    digest = hashlib.sha256()
    count, total = 0, 0.0
    for value in state.values():
        digest.update(value.contiguous().numpy().astype("<f4").tobytes())
        count += value.numel()
        total += value.double().sum().item()
    return count, digest.hexdigest(), total
