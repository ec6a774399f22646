"""Reading weight files safely: a PyTorch checkpoint holds tensors and plain containers only, never
pickled code; a pickle of numpy arrays (detectron2's model zoo `.pkl`) may rebuild arrays and
nothing else; a damaged file is refused with one line that names it."""
from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from realtime.weights import WeightsError

if TYPE_CHECKING:
    import onnx


def load_checkpoint(path: str | Path, *, allowed_classes: Sequence[tuple[type, str]] = ()) -> Any:
    """torch.load(weights_only=True) on the CPU; a file that carries pickled code or objects, or
    that is truncated or damaged, raises WeightsError with one line that says which.

    `allowed_classes` pairs a plain stand-in class with the dotted name a checkpoint pickles a
    foreign object under (e.g. a trainer's logger): such objects come back as the stand-in with
    their state, and nothing of the foreign class's code runs."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        raise WeightsError(f"{path} cannot be read ({exc.strerror})") from None
    if not head.startswith((b"PK", b"\x80")):  # torch.save writes a zip archive; before 1.6, a pickle (protocol 2)
        raise WeightsError(f"{path} is not a PyTorch checkpoint: {'it is empty' if not head else 'another kind of file'} "
                           "(a checkpoint is the zip archive or pickle torch.save writes)")
    try:
        with torch.serialization.safe_globals(list(allowed_classes)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text advises loading without weights_only: only the global it names is kept
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        raise WeightsError(f"{path} was refused: it carries pickled code or Python objects other than tensors"
                           f"{f' (it names {named[1]!r})' if named else ''}, so it is no plain checkpoint and "
                           "loading it could run code; use the published checkpoint file") from None
    except (RuntimeError, OSError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint, truncated or damaged ({reason})") from None


class RefusedPickleError(WeightsError):
    """A pickle that would run foreign code (or rebuild objects) when loaded."""


def _array_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickle of numpy arrays names (under numpy 1's `numpy.core` or numpy 2's
    `numpy._core`), mapped to this numpy's own functions."""
    rebuild = np.zeros(0).__reduce__()[0]
    from_buffer = np.zeros(0).__reduce_ex__(5)[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): dict,
        ("_codecs", "encode"): lambda text, encoding="utf-8": text.encode(encoding),
    }
    for core in ("numpy.core", "numpy._core"):
        allowed.update({(f"{core}.multiarray", "_reconstruct"): rebuild, (f"{core}.multiarray", "scalar"): scalar,
                        (f"{core}.numeric", "_frombuffer"): from_buffer})
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, dtypes and scalars and plain containers; any other global (a
    function or class that unpickling would call) is refused."""

    _ALLOWED = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not a numpy array part") from None


def load_pickled_arrays(path: str | Path) -> Any:
    """A pickle holding numpy arrays in plain containers (detectron2's `.pkl`: {'model': {name:
    array}, ...}, Python 2 pickles included), unpickled without running foreign code. Object
    arrays and any other pickled global raise WeightsError naming the file."""
    try:
        with open(path, "rb") as f:
            loaded = _ArrayUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise RefusedPickleError(f"{path} was refused: it carries pickled code or objects, not only arrays "
                                 f"({exc})") from None
    except (OSError, EOFError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise WeightsError(f"{path} is not a readable pickle of arrays, truncated or damaged ({reason})") from None
    if any(isinstance(value, np.ndarray) and value.dtype.hasobject for value in _leaves(loaded)):
        raise RefusedPickleError(f"{path} was refused: it holds object arrays, not only numbers")
    return loaded


def load_weights_file(path: str | Path) -> Any:
    """A PyTorch checkpoint (`load_checkpoint`) or a pickle of numpy arrays
    (`load_pickled_arrays`), told apart by content, not by name."""
    if zipfile.is_zipfile(path):
        return load_checkpoint(path)
    try:
        loaded = load_pickled_arrays(path)
    except RefusedPickleError:
        raise
    except WeightsError:
        return load_checkpoint(path)
    # torch's legacy (non-zip) format starts with a pickled magic number, not a mapping
    return loaded if isinstance(loaded, Mapping) else load_checkpoint(path)


def _leaves(value: Any):
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """onnx.load of the binary ONNX file `path`, whatever its name ends in (onnx.load reads a .json
    or .txt name as protobuf text); a truncated or damaged file, or one of another kind, raises
    WeightsError naming it."""
    import onnx  # imported here: with ml_dtypes it adds over a second to every command's start
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), format="protobuf")
    except (DecodeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip()
        raise WeightsError(f"{path} is not a readable ONNX model: truncated, damaged or another kind of file "
                           f"({reason})") from None
    if not model.graph.node:
        raise WeightsError(f"{path} is not an ONNX model: it holds no graph (an empty or another kind of file)")
    return model


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
