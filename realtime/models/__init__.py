"""Model loading: `load_parser(name)` gives a parser with `parse(rgb) -> ParseResult`."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from realtime import weights as weights_cache
from realtime.models.backends import autocast_dtype
from realtime.models.common import Parser
from realtime.models.registry import DEFAULT_MODEL, MODEL_SPECS, ModelSpec, get_spec

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is a clear error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but this PyTorch build sees no CUDA GPU")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"unknown device '{device}'; use auto, cpu or cuda")
    return torch.device(device)


def build_bodypix(spec: ModelSpec, path: Path, device: torch.device, internal_size: int | None,
                  max_people: int | None, backend: str, dtype: str) -> Parser:
    from realtime.models.bodypix import BodyPixParser, load_bodypix_net

    return BodyPixParser(load_bodypix_net(path, spec), spec, device, internal_size=internal_size,
                         max_people=max_people or 1, backend=backend, dtype=dtype)


def build_m2fp(spec: ModelSpec, path: Path, device: torch.device, internal_size: int | None,
               max_people: int | None, backend: str, dtype: str) -> Parser:
    from realtime.models.m2fp import M2FPParser, load_m2fp_net

    return M2FPParser(load_m2fp_net(path, spec), spec, device, internal_size=internal_size, max_people=max_people,
                      amp_dtype=autocast_dtype(dtype, device))


def build_schp(spec: ModelSpec, path: Path, device: torch.device, internal_size: int | None,
               max_people: int | None, backend: str, dtype: str) -> Parser:
    from realtime.models.schp import SCHPParser, load_schp_net

    return SCHPParser(load_schp_net(path, spec), spec, device, internal_size=internal_size,
                      amp_dtype=autocast_dtype(dtype, device))


def build_mask2former_panoptic(spec: ModelSpec, path: Path, device: torch.device, internal_size: int | None,
                               max_people: int | None, backend: str, dtype: str) -> Parser:
    from realtime.models.mask2former_panoptic import PanopticParser, load_panoptic_net

    return PanopticParser(load_panoptic_net(path, spec), spec, device, internal_size=internal_size,
                          max_people=max_people, amp_dtype=autocast_dtype(dtype, device))


def build_uniparser(spec: ModelSpec, path: Path, device: torch.device, internal_size: int | None,
                    max_people: int | None, backend: str, dtype: str) -> Parser:
    from realtime.models.uniparser import UniParserParser, load_uniparser_net

    return UniParserParser(load_uniparser_net(path, spec), spec, device, internal_size=internal_size,
                           max_people=max_people, amp_dtype=autocast_dtype(dtype, device))


PARSER_BUILDERS = {"bodypix": build_bodypix, "m2fp": build_m2fp, "schp": build_schp, "uniparser": build_uniparser,
                   "mask2former_panoptic": build_mask2former_panoptic}
# families whose forward runs on every backend of realtime.models.backends; the others run on PyTorch
MULTI_BACKEND_FAMILIES = ("bodypix",)


def load_parser(name: str = DEFAULT_MODEL, *, device: str | torch.device = "auto",
                weights: str | Path | None = None, internal_size: int | None = None,
                max_people: int | None = None, backend: str = "auto", dtype: str = "fp32") -> Parser:
    """Build the named model with verified weights from the cache (or the file `weights`).
    `max_people` caps the people a multi-person model reports; None keeps the model's own
    default (BodyPix: 1, decoding several people only above 1; M2FP-CIHP, UniParser: all). Single-person
    models ignore it. `backend` ("auto", "torch", "onnxruntime", "openvino") is where a BodyPix
    forward runs on the CPU (realtime.models.backends); other families run on PyTorch ("auto"
    or "torch"). `dtype` (realtime.models.backends.DTYPES) is what the network computes in: BodyPix
    as realtime.models.backends says, the other families under autocast on CUDA, fp32 only on the
    CPU. Raises ValueError for a family without a builder or a backend or dtype it lacks,
    WeightsError for missing or unfitting weights."""
    spec = get_spec(name)
    build = PARSER_BUILDERS.get(spec.family)
    if build is None:
        raise ValueError(f"model family '{spec.family}' has no builder; known families: {', '.join(PARSER_BUILDERS)}")
    if backend not in ("auto", "torch") and spec.family not in MULTI_BACKEND_FAMILIES:
        raise ValueError(f"{name} runs on PyTorch only; --backend {backend} is for "
                         f"{', '.join(MULTI_BACKEND_FAMILIES)} models")
    target = resolve_device(device)
    if dtype != "fp32" and target.type == "cpu" and spec.family not in MULTI_BACKEND_FAMILIES:
        raise ValueError(f"{name} runs on PyTorch only, in fp32 on the CPU; --dtype {dtype} there is for "
                         f"{', '.join(MULTI_BACKEND_FAMILIES)} models (or use --device cuda)")
    path = weights_cache.resolve(spec.weights, weights, name=spec.name)
    if spec.licence_notice:
        logger.warning("%s: %s", spec.name, spec.licence_notice)
    return build(spec, path, target, internal_size, max_people, backend, dtype)


__all__ = ["DEFAULT_MODEL", "MODEL_SPECS", "ModelSpec", "PARSER_BUILDERS", "Parser", "get_spec", "load_parser",
           "resolve_device"]
