"""`bench-model`: an M2FP, SCHP, UniParser or Mask2Former panoptic parser, or a Human_seg person
segmenter, built like the reference against the same network's fast path, on one frame, timed
interleaved in one process, with how far their outputs differ.

Reference path (`fast=False`): eager float32, nothing folded, grid_sample deformable attention,
every mask at full size (M2FP: all query masks resized to the input before they are combined;
Mask2Former: all 100 query masks resized to the frame before the panoptic merge; SCHP: all three
heads; UniParser: mmcv's deformable sampling, every FPN level, every centre's parsing). Fast path
(`fast=True`, optionally under autocast): see M2FPParser, PanopticParser, SCHPParser,
UniParserParser and HumanSegmenter. Without `weights` both use the parity fixtures'
deterministic weights.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from realtime.models.backends import AUTOCAST_DTYPES
from realtime.models.checkpoint import load_into
from realtime.models.common import Parser
from realtime.models.fixture_weights import fixture_state
from realtime.models.registry import SEGMENTER_SPECS, ModelSpec, SegmenterSpec, get_spec
from realtime.types import ParseResult, PersonParse



def _family(spec: ModelSpec | SegmenterSpec) -> tuple[Callable, Callable, Callable, Callable]:
    """(untrained net builder, checkpoint loader, state_dict conversion, parser (or segmenter)
    class) of a spec."""
    if spec.family == "m2fp":
        from realtime.models import m2fp

        return m2fp.m2fp_net, m2fp.load_m2fp_net, lambda state, net: state, m2fp.M2FPParser
    if spec.family == "schp":
        from realtime.models import schp

        return schp.schp_net, schp.load_schp_net, schp.schp_state_dict, schp.SCHPParser
    if spec.family == "mask2former_panoptic":
        from realtime.models import mask2former_panoptic as panoptic

        return panoptic.panoptic_net, panoptic.load_panoptic_net, lambda state, net: state, panoptic.PanopticParser
    if spec.family == "uniparser":
        from realtime.models import uniparser

        return uniparser.uniparser_net, uniparser.load_uniparser_net, lambda state, net: state, uniparser.UniParserParser
    if spec.family == "humanseg":
        from realtime.models import humanseg

        def segmenter(net, spec, device, *, amp_dtype, fast, internal_size):
            return humanseg.HumanSegmenter(net, spec, device, amp_dtype=amp_dtype, fast=fast)

        return humanseg.humanseg_net, humanseg.load_humanseg_net, lambda state, net: state, segmenter
    raise ValueError(f"bench-model times M2FP, SCHP, UniParser, Mask2Former and Human_seg models, not '{spec.name}' ({spec.family})")


def build_net(spec: ModelSpec | SegmenterSpec, weights: str | Path | None = None) -> nn.Module:
    """The network of an M2FP, SCHP, UniParser, Mask2Former or Human_seg spec in eval mode, from `weights`
    or the fixture rule."""
    new_net, load_net, convert, _ = _family(spec)
    if weights is not None:
        return load_net(weights, spec)
    net = new_net(spec)
    load_into(net, convert(fixture_state(net), net), source="the fixture rule")
    return net.eval()


def build_parser(spec: ModelSpec | SegmenterSpec, net: nn.Module, device: torch.device, *, fast: bool,
                 amp_dtype: torch.dtype | None = None, internal_size: int | None = None) -> Parser:
    """The parser (or, for Human_seg, the segmenter) of `spec` over `net`."""
    return _family(spec)[3](net, spec, device, amp_dtype=amp_dtype, fast=fast, internal_size=internal_size)


# the name of the one tensor a family's network returns
_TENSOR_OUTPUT = {"schp": "fusion", "humanseg": "logits"}


def max_abs_differences(reference: dict[str, torch.Tensor] | torch.Tensor,
                        fast: dict[str, torch.Tensor] | torch.Tensor, family: str = "schp") -> dict[str, float]:
    """max |fast - reference| of each network output (a lone tensor named as `family` names it)."""
    if isinstance(reference, torch.Tensor):
        name = _TENSOR_OUTPUT[family]
        reference, fast = {name: reference}, {name: fast}
    return {name: float((fast[name].float() - value.float()).abs().max()) for name, value in reference.items()}


def decision(result: ParseResult | np.ndarray) -> np.ndarray:
    """What a parse decides per pixel: its labels, or a person probability's person mask."""
    return result.labels if isinstance(result, ParseResult) else result > 0.5


def bench_model(name: str, frame: np.ndarray, *, weights: str | Path | None = None, device: str = "cpu",
                dtype: str = "fp32", threads: int | None = 1, repeats: int = 5, warmup: int = 1,
                internal_size: int | None = None) -> dict:
    """Median ms of the reference and the fast parser (forward, postprocess, both), measured
    alternately on `frame` (H x W x 3 uint8 RGB), and the agreement of their last outputs.
    `internal_size` overrides the model's default network input size.

    Wall-clock and process CPU ms are both reported: on a CPU shared with other jobs the CPU
    time of a 1-thread run is the steadier measure of the work done.
    """
    if dtype not in AUTOCAST_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(AUTOCAST_DTYPES)}, not '{dtype}'")
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup at least 0")
    from realtime.models import resolve_device

    spec = SEGMENTER_SPECS[name] if name in SEGMENTER_SPECS else get_spec(name)
    target = resolve_device(device)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        parsers = {
            "reference": build_parser(spec, build_net(spec, weights), target, fast=False, internal_size=internal_size),
            "fast": build_parser(spec, build_net(spec, weights), target, fast=True, amp_dtype=AUTOCAST_DTYPES[dtype],
                                 internal_size=internal_size),
        }
        prepared = {label: parser.preprocess([frame]) for label, parser in parsers.items()}
        times: dict[str, dict[str, list[float]]] = {label: {} for label in parsers}
        outputs, results = {}, {}
        for i in range(warmup + repeats):
            for label, parser in parsers.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[label] = parser.infer(prepared[label].batch)
                _synchronize(target)
                middle, middle_cpu = time.perf_counter(), time.process_time()
                results[label] = parser.postprocess(outputs[label], prepared[label])[0]
                end, end_cpu = time.perf_counter(), time.process_time()
                if i >= warmup:
                    for part, seconds in (("forward", middle - start), ("postprocess", end - middle),
                                          ("total", end - start), ("forward_cpu", middle_cpu - start_cpu),
                                          ("total_cpu", end_cpu - start_cpu)):
                        times[label].setdefault(part, []).append(seconds * 1000)
        medians = {label: {f"{part}_ms": round(statistics.median(values), 1) for part, values in parts.items()}
                   for label, parts in times.items()}
        fast_total = medians["fast"]["total_ms"]
        return {
            "model": spec.name,
            "device": str(target),
            "dtype": dtype,
            "threads": torch.get_num_threads(),
            "weights": str(weights) if weights is not None else "fixture rule",
            "frame_wh": [frame.shape[1], frame.shape[0]],
            "internal_size": getattr(parsers["fast"], "internal_size", None),  # Human_seg: a fixed 320
            "input_shape": list(prepared["fast"].batch.shape),
            **({"fast_backend": parsers["fast"].backend} if hasattr(parsers["fast"], "backend") else {}),
            "repeats": repeats,
            **medians,
            "speedup_forward": round(medians["reference"]["forward_ms"] / medians["fast"]["forward_ms"], 2),
            "speedup_total": round(medians["reference"]["total_ms"] / fast_total, 2),
            "speedup_forward_cpu": round(medians["reference"]["forward_cpu_ms"] / medians["fast"]["forward_cpu_ms"], 2),
            "speedup_total_cpu": round(medians["reference"]["total_cpu_ms"] / medians["fast"]["total_cpu_ms"], 2),
            "fast_fps": round(1000 / fast_total, 2),
            "max_abs_diff": max_abs_differences(outputs["reference"], outputs["fast"], spec.family),
            "label_disagreement": float(np.mean(decision(results["reference"]) != decision(results["fast"]))),
            **(people_agreement(results["reference"].people, results["fast"].people)
               if isinstance(results["reference"], ParseResult) else {}),
        }
    finally:
        torch.set_num_threads(previous_threads)


def people_agreement(reference: list[PersonParse], fast: list[PersonParse]) -> dict:
    """How many people each path reported and, for multi-person models, the largest share of
    pixels on which a person's mask differs between them (1.0 when the counts differ)."""
    if not reference and not fast:
        return {}
    counts = {"people": {"reference": len(reference), "fast": len(fast)}}
    if len(reference) != len(fast):
        return {**counts, "person_mask_disagreement": 1.0}
    worst = max(float(np.mean(a.mask != b.mask)) for a, b in zip(reference, fast))
    return {**counts, "person_mask_disagreement": worst}


def resized_frame(frame: np.ndarray, size_wh: tuple[int, int] | None) -> np.ndarray:
    """`frame` scaled to `size_wh` (area interpolation when shrinking), or unchanged."""
    if size_wh is None or (frame.shape[1], frame.shape[0]) == size_wh:
        return frame
    shrinking = size_wh[0] < frame.shape[1]
    return cv2.resize(frame, size_wh, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
