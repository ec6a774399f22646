"""Reading weight files safely: a PyTorch checkpoint holds tensors and plain containers only, never
pickled code; a damaged file is refused with one line that names it."""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import torch
from google.protobuf.message import DecodeError

from realtime.weights import WeightsError


def load_checkpoint(path: str | Path) -> Any:
    """torch.load(weights_only=True) on the CPU; a file that carries pickled code or objects, or
    that is truncated or damaged, raises WeightsError with one line that says which."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        detail = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
        raise WeightsError(f"{path} was refused: it carries pickled code or objects, not only tensors "
                           f"({detail.rstrip('.')}); use the published checkpoint file") from None
    except (RuntimeError, OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint, truncated or damaged ({reason})") from None


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """onnx.load; a truncated or damaged file raises WeightsError naming it."""
    try:
        return onnx.load(str(path))
    except (DecodeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip()
        raise WeightsError(f"{path} is not a readable ONNX model, truncated or damaged ({reason})") from None


def unwrapped_state_dict(checkpoint: Mapping[str, Any], wrapper: str) -> dict[str, torch.Tensor]:
    """The tensors of a training checkpoint, as a plain state dict: taken from under `wrapper`
    (detectron2's 'model', mmcv's 'state_dict') when present, a DataParallel `module.` prefix
    stripped and BatchNorm's `num_batches_tracked` counters dropped. ValueError when there is no
    mapping to read."""
    state = checkpoint.get(wrapper, checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"checkpoint holds no state dict (expected a mapping, or one under '{wrapper}')")
    return {
        key.removeprefix("module."): value for key, value in state.items()
        if isinstance(value, torch.Tensor) and not key.endswith("num_batches_tracked")
    }


def load_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
    """model.load_state_dict(state_dict) with strict names and shapes; on any mismatch raises
    WeightsError with one line naming `source` (the file) and the missing, unexpected and
    wrongly shaped keys (counts and the first few names)."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [key for key in expected if key in state_dict and state_dict[key].shape != expected[key].shape]
    if missing or unexpected or reshaped:
        raise WeightsError(f"{source} does not fit {type(model).__name__}: {_listed(missing, 'missing')}, "
                           f"{_listed(unexpected, 'unexpected')}, {_listed(reshaped, 'wrongly shaped')}")
    model.load_state_dict(state_dict, strict=True)


def _listed(keys: list[str], kind: str, shown: int = 3) -> str:
    names = ", ".join(keys[:shown]) + (", …" if len(keys) > shown else "")
    return f"{len(keys)} {kind} keys" + (f" ({names})" if keys else "")
