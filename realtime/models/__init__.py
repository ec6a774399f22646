"""Model loading: `load_parser(name)` gives a parser with `parse(rgb) -> ParseResult`."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from realtime import weights as weights_cache
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


def load_parser(name: str = DEFAULT_MODEL, *, device: str | torch.device = "auto",
                weights: str | Path | None = None, internal_size: int | None = None,
                max_people: int | None = None) -> Parser:
    """Build the named model with verified weights from the cache (or the file `weights`).
    `max_people` caps the people a multi-person model reports; None keeps the model's own
    default (BodyPix: 1, decoding several people only above 1; M2FP-CIHP: all). Single-person
    models ignore it."""
    spec = get_spec(name)
    target = resolve_device(device)
    path = weights_cache.resolve(spec.weights, weights)
    if spec.licence_notice:
        logger.warning("%s: %s", spec.name, spec.licence_notice)
    if spec.family == "bodypix":
        from realtime.models.bodypix import BodyPixParser, load_bodypix_net

        net = load_bodypix_net(path, output_stride=spec.output_stride)
        return BodyPixParser(net, spec, target, internal_size=internal_size, max_people=max_people or 1)
    if spec.family == "m2fp":
        from realtime.models.m2fp import M2FPParser, load_m2fp_net

        human_class = 1 if spec.multi_person else 0
        net = load_m2fp_net(path, num_classes=spec.num_classes + human_class)
        return M2FPParser(net, spec, target, internal_size=internal_size, max_people=max_people)
    if spec.family == "schp":
        from realtime.models.schp import SCHPParser, load_schp_net

        return SCHPParser(load_schp_net(path, num_classes=spec.num_classes), spec, target, internal_size=internal_size)
    raise ValueError(f"model family '{spec.family}' has no loader")


__all__ = ["DEFAULT_MODEL", "MODEL_SPECS", "ModelSpec", "Parser", "get_spec", "load_parser", "resolve_device"]
