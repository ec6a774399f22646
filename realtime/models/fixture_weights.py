"""The parity fixtures' deterministic pseudo-random weights (shared/fixtures/README.md, section 1).

They let M2FP, SCHP and Mask2Former run, be tested and be timed without the released checkpoints. Entry i of
the official state_dict order (which M2FPNet and AugmentCE2P keep) is drawn from a generator
seeded with 1000 + i, by a rule that depends on the entry's name and shape.
"""
from __future__ import annotations

import math

import torch
from torch import nn

GAIN = 1.0
RUNNING_VAR_LOW = 0.5
QUERY_EMB_STD = 4.0
EMPTY_WEIGHT_EOS = 0.1  # Mask2Former's loss weight of the "no object" class (train_cfg.no_object_weight)


def generate(keys: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """(name, shape) pairs in state_dict order -> {name: float32 tensor} by the fixture rule."""
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
        elif name.endswith("criterion.empty_weight"):
            value = torch.ones(shape)
            value[-1] = EMPTY_WEIGHT_EOS
        else:
            raise ValueError(f"no weight rule for {name} {shape}")
        state[name] = value.float()
    return state


def fixture_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The fixture rule applied to `net`'s own state_dict names and shapes, in its order."""
    return generate([(name, tuple(value.shape)) for name, value in net.state_dict().items()])
