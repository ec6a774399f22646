"""Reading weight files safely: a PyTorch checkpoint holds tensors and plain containers only, never
pickled code; a damaged file is refused with one line that names it."""
from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from google.protobuf.message import DecodeError

from realtime.weights import WeightsError


def load_checkpoint(path: str | Path, *, allowed_classes: Sequence[tuple[type, str]] = ()) -> Any:
    """torch.load(weights_only=True) on the CPU; a file that carries pickled code or objects, or
    that is truncated or damaged, raises WeightsError with one line that says which.

    `allowed_classes` pairs a plain stand-in class with the dotted name a checkpoint pickles a
    foreign object under (e.g. a trainer's logger): such objects come back as the stand-in with
    their state, and nothing of the foreign class's code runs."""
    try:
        with torch.serialization.safe_globals(list(allowed_classes)):
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
