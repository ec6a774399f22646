"""Human_seg's released checkpoint layout, built from the parity fixtures' weights."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from _paths import fixtures_dir
from _weight_rule import generate, read_keys

from realtime.models.humanseg import TRAINER_ARCH
from realtime.models.registry import SEGMENTER_SPECS


def fixture_weights(name: str) -> dict[str, torch.Tensor]:
    """The fixture rule's weights of a Human_seg model, in its keys.txt order."""
    return generate(read_keys(fixtures_dir() / name.replace("-", "_") / "keys.txt"))


def trainer_checkpoint(state: dict[str, torch.Tensor], arch: str) -> tuple[dict, types.ModuleType]:
    """The layout base/base_trainer.py:_save_checkpoint writes, BatchNorm counters included, with
    the trainer's logger as an object of the repo's class utils.logger.Logger."""
    module = types.ModuleType("utils.logger")

    class Logger:
        def __init__(self) -> None:
            self.entries = {}

    Logger.__module__, Logger.__qualname__ = "utils.logger", "Logger"
    module.Logger = Logger
    logger = Logger()
    logger.entries[1] = {"train_loss": 0.31, "valid_loss": 0.27, "valid_miou": 0.9137}
    counters = {key.replace("running_var", "num_batches_tracked"): torch.tensor(4200)
                for key in state if key.endswith("running_var")}
    parameters = [torch.nn.Parameter(value.clone()) for value in state.values() if value.ndim > 1][:3]
    return {"arch": arch, "epoch": 200, "logger": logger, "state_dict": {**state, **counters},
            "optimizer": torch.optim.SGD(parameters, lr=1e-3, momentum=0.9).state_dict(), "monitor_best": 0.27,
            "config": {"name": arch, "arch": {"type": arch, "args": {"num_classes": 2}}}}, module


def save_trainer_checkpoint(path: Path, state: dict[str, torch.Tensor], arch: str, *, legacy: bool = False) -> Path:
    checkpoint, module = trainer_checkpoint(state, arch)
    package = types.ModuleType("utils")
    package.logger = module
    saved = {name: sys.modules.get(name) for name in ("utils", "utils.logger")}
    sys.modules.update({"utils": package, "utils.logger": module})
    try:
        torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return path


def write_released_checkpoint(folder: Path, name: str) -> Path:
    """`name`'s fixture-rule weights as the released file, where the weights cache looks for it."""
    return save_trainer_checkpoint(folder / SEGMENTER_SPECS[name].weights.filename, fixture_weights(name),
                                   TRAINER_ARCH[SEGMENTER_SPECS[name].architecture])
