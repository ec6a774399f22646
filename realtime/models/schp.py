"""SCHP (Self-Correction for Human Parsing): AugmentCE2P on ResNet-101, in plain PyTorch.

Network: deep-stem ResNet-101 (res5 dilated, output stride 16) -> PSP context module; a decoder
branch (context + res2) and an edge branch (res2..res4) whose features a fusion head turns into
the class logits SCHP uses, at a quarter of the input. Input: the frame's box warped onto a
square canvas (473 for LIP, 512 for ATR / PASCAL), BGR, ImageNet mean/std. Both warps (frame to
canvas, logits back to the frame) are OpenCV 4's fixed-point bilinear warp, which SCHP's code
ran on (realtime.models.fixed_point_warp), not the installed OpenCV's.

The released checkpoints were trained with InPlaceABN, whose scale is |weight| + eps; loading
turns every InPlaceABN into a frozen BatchNorm with weight = |w| + 1e-5 (eps 1e-5), followed by
leaky ReLU (slope 0.01) where SCHP activates it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.checkpoint import load_checkpoint, load_into
from realtime.models.common import Parser, Prepared, check_frames
from realtime.models.fixed_point_warp import warp_affine_linear
from realtime.models.pixel_norm import PixelNorm
from realtime.models.registry import ModelSpec
from realtime.models.resnet import (
    RESNET101_BLOCKS,
    ConvNormSequence,
    FrozenBatchNorm2d,
    conv_bn,
    fold_child_pairs,
    fold_frozen_norms,
    make_layer,
)
from realtime.types import ParseResult

ABN_EPS = 1e-5
ABN_SLOPE = 0.01
HEADS = ("parsing", "fusion", "edge")


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class PSPModule(nn.Module):
    """Pyramid pooling (1, 2, 3, 6 bins) over res5, concatenated with it, 3x3 conv to 512."""

    def __init__(self, features: int = 2048, out_features: int = 512, sizes: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            ConvNormSequence(nn.AdaptiveAvgPool2d(size), nn.Conv2d(features, out_features, 1, bias=False),
                             FrozenBatchNorm2d(out_features, negative_slope=ABN_SLOPE))
            for size in sizes
        )
        self.bottleneck = conv_bn(features + len(sizes) * out_features, out_features, 3, padding=1,
                                  negative_slope=ABN_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return self.bottleneck(torch.cat([_up(stage(x), size) for stage in self.stages] + [x], dim=1))


class EdgeModule(nn.Module):
    """Edge branch: 256-channel features of res2..res4 at res2's size (and 2-class edge logits)."""

    def __init__(self, in_channels: tuple[int, int, int] = (256, 512, 1024), mid: int = 256, out: int = 2) -> None:
        super().__init__()
        self.conv1 = conv_bn(in_channels[0], mid, 1, negative_slope=ABN_SLOPE)
        self.conv2 = conv_bn(in_channels[1], mid, 1, negative_slope=ABN_SLOPE)
        self.conv3 = conv_bn(in_channels[2], mid, 1, negative_slope=ABN_SLOPE)
        self.conv4 = nn.Conv2d(mid, out, 3, padding=1)
        self.conv5 = nn.Conv2d(out * 3, out, 1)

    def forward(self, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor,
                with_edge: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        size = x2.shape[-2:]
        features = [self.conv1(x2), self.conv2(x3), self.conv3(x4)]
        edge = None
        if with_edge:
            edge = self.conv5(torch.cat([_up(self.conv4(f), size) for f in features], dim=1))
        return edge, torch.cat([features[0]] + [_up(f, size) for f in features[1:]], dim=1)


class DecoderModule(nn.Module):
    """Parsing branch: context (upsampled to res2) + reduced res2 -> 256 features (and logits)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(512, 256, 1, negative_slope=ABN_SLOPE)
        self.conv2 = conv_bn(256, 48, 1, negative_slope=ABN_SLOPE)
        self.conv3 = ConvNormSequence(
            nn.Conv2d(304, 256, 1, bias=False), FrozenBatchNorm2d(256, negative_slope=ABN_SLOPE),
            nn.Conv2d(256, 256, 1, bias=False), FrozenBatchNorm2d(256, negative_slope=ABN_SLOPE),
        )
        self.conv4 = nn.Conv2d(256, num_classes, 1)

    def forward(self, context: torch.Tensor, x2: torch.Tensor,
                with_logits: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        features = self.conv3(torch.cat([_up(self.conv1(context), x2.shape[-2:]), self.conv2(x2)], dim=1))
        return (self.conv4(features) if with_logits else None), features


class AugmentCE2P(nn.Module):
    """SCHP's network with its checkpoint names (conv1/bn1 ... layer4, context_encoding, edge,
    decoder, fushion).

    `normalize` maps B x 3 x H x W RGB in [0, 255] to the network input (`pixel_norm`);
    forward(input, heads) -> {head: B x C x H/4 x W/4 logits} for the heads asked for:
    "fusion" (what SCHP uses, by default), "parsing" (decoder branch), "edge" (2 classes).
    """

    _norm_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, num_classes: int, pixel_norm: PixelNorm) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.pixel_norm = pixel_norm
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = FrozenBatchNorm2d(128)
        self.layer1 = make_layer(128, 64, RESNET101_BLOCKS[0])
        self.layer2 = make_layer(256, 128, RESNET101_BLOCKS[1], stride=2)
        self.layer3 = make_layer(512, 256, RESNET101_BLOCKS[2], stride=2)
        self.layer4 = make_layer(1024, 512, RESNET101_BLOCKS[3], dilation=2)
        self.context_encoding = PSPModule()
        self.edge = EdgeModule()
        self.decoder = DecoderModule(num_classes)
        self.fushion = ConvNormSequence(  # sic: the checkpoints' name
            nn.Conv2d(1024, 256, 1, bias=False), FrozenBatchNorm2d(256, negative_slope=ABN_SLOPE),
            nn.Identity(),  # Dropout2d in training
            nn.Conv2d(256, num_classes, 1),
        )

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return self.pixel_norm(images)

    def forward(self, x: torch.Tensor, heads: tuple[str, ...] = ("fusion",)) -> dict[str, torch.Tensor]:
        unknown = set(heads) - set(HEADS)
        if unknown:
            raise ValueError(f"unknown SCHP heads {sorted(unknown)}; choose from {HEADS}")
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        x = F.relu_(self.bn3(self.conv3(x)))
        x2 = self.layer1(F.max_pool2d(x, kernel_size=3, stride=2, padding=1))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        context = self.context_encoding(self.layer4(x4))
        parsing, parsing_features = self.decoder(context, x2, with_logits="parsing" in heads)
        edge, edge_features = self.edge(x2, x3, x4, with_edge="edge" in heads)
        out = {"parsing": parsing, "edge": edge}
        if "fusion" in heads:
            out["fusion"] = self.fushion(torch.cat([parsing_features, edge_features], dim=1))
        return {name: out[name] for name in heads}

    def fold_norms(self) -> None:
        fold_child_pairs(self, self._norm_pairs)


def schp_state_dict(checkpoint: Mapping[str, object], net: AugmentCE2P) -> dict[str, torch.Tensor]:
    """A released SCHP file ({'state_dict': {'module.' + name: tensor}}) -> AugmentCE2P's
    frozen-BN state: prefix stripped, every InPlaceABN weight w replaced by |w| + eps."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint holds no state dict (expected a mapping, or one under 'state_dict')")
    state = {key.removeprefix("module."): value for key, value in state.items()
             if isinstance(value, torch.Tensor) and not key.endswith("num_batches_tracked")}
    for name, module in net.named_modules():
        key = f"{name}.weight"
        if isinstance(module, FrozenBatchNorm2d) and key in state:
            state[key] = state[key].abs() + ABN_EPS
    return state


def schp_net(spec: ModelSpec) -> AugmentCE2P:
    """An untrained AugmentCE2P for `spec`: its classes and its input normalisation, computed in
    0..1 units as SCHP's transforms compute it."""
    return AugmentCE2P(spec.num_classes, PixelNorm.from_spec(spec, unit=255.0))


def load_schp_net(path: str | Path, spec: ModelSpec) -> AugmentCE2P:
    """Read a released SCHP checkpoint (weights_only) into `spec`'s AugmentCE2P in eval mode;
    ValueError for another label set's file, WeightsError for one that does not fit (load_into)."""
    net = schp_net(spec)
    state = schp_state_dict(load_checkpoint(path), net)
    found = state.get("fushion.3.weight")
    if found is not None and found.shape[0] != net.num_classes:
        raise ValueError(f"{path}: checkpoint predicts {found.shape[0]} classes, this model has {net.num_classes}; "
                         "is it the LIP (20), ATR (18) or PASCAL-Person-Part (7) SCHP file?")
    load_into(net, state, source=str(path))
    return net.eval()


# --- pre/post-processing -----------------------------------------------------------------------

def box_affine(frame_wh: tuple[int, int], input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """SCHP's whole-frame box -> (frame-to-input, input-to-frame) 2 x 3 affine matrices.

    The box [0, 0, w - 1, h - 1] is widened or heightened to the input's aspect ratio and its
    centre mapped to the input's centre (utils/transforms.get_affine_transform, no rotation,
    computed in float32 as there).
    """
    width, height = frame_wh[0] - 1, frame_wh[1] - 1
    center = np.array([width * 0.5, height * 0.5], dtype=np.float32)
    aspect = input_hw[1] / input_hw[0]
    if width > aspect * height:
        height = width / aspect
    elif width < aspect * height:
        width = height * aspect
    scale = np.array([width, height], dtype=np.float32)
    dst_w, dst_h = input_hw[1], input_hw[0]
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0, scale[0] * -0.5], dtype=np.float32)
    dst[0] = [(dst_w - 1) * 0.5, (dst_h - 1) * 0.5]
    dst[1] = dst[0] + np.array([0, (dst_w - 1) * -0.5], dtype=np.float32)
    for points in (src, dst):
        direction = points[0] - points[1]
        points[2] = points[1] + np.array([-direction[1], direction[0]], dtype=np.float32)
    return cv2.getAffineTransform(src, dst), cv2.getAffineTransform(dst, src)


@dataclass(frozen=True)
class Geometry:
    frame_hw: tuple[int, int]
    to_frame: np.ndarray  # 2 x 3 affine, network input -> frame pixels


def labels_on_frame(logits: torch.Tensor, to_frame: np.ndarray, frame_hw: tuple[int, int],
                    band_values: int = 1 << 22) -> np.ndarray:
    """h x w x C float32 logits on the input canvas -> H x W uint8 argmax on the frame: SCHP's
    transform_logits (OpenCV 4 bilinear warp, zero border) then argmax, made in bands of rows
    of at most `band_values` logits."""
    height, width = frame_hw
    rows = max(1, band_values // (width * logits.shape[2]))
    labels = np.empty(frame_hw, dtype=np.uint8)
    for top in range(0, height, rows):
        band = range(top, min(top + rows, height))
        warped = warp_affine_linear(logits, to_frame, (width, height), band)
        labels[band.start:band.stop] = warped.argmax(2).to(torch.uint8).cpu().numpy()
    return labels


class SCHPParser(Parser):
    """numpy API over AugmentCE2P: RGB frames in, ParseResults at the frame's size out.

    `internal_size` is the side of the square network input. `amp_dtype` (float16 / bfloat16 on
    CUDA, bfloat16 on CPUs with AMX) runs the network under autocast. `fast=True` (the default)
    folds the norms, uses channels_last and computes only the fusion head; outputs stay within
    1e-4 of the reference. `fast=False` runs like the reference: every head, nothing folded.
    """

    internal_size_range = (64, 2048)

    def __init__(self, net: AugmentCE2P, spec: ModelSpec, device: torch.device, *, internal_size: int | None = None,
                 amp_dtype: torch.dtype | None = None, fast: bool = True) -> None:
        if fast:
            fold_frozen_norms(net)
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.heads = ("fusion",) if fast else HEADS
        self.net = net.to(device).to(memory_format=self.memory_format)
        self.spec = spec
        self.device = device
        self.internal_size = internal_size or spec.internal_size
        self.amp_dtype = amp_dtype


    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> B x 3 x S x S normalised network input with its Geometry."""
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        side = self.internal_size
        to_input, to_frame = box_affine((width, height), (side, side))
        warped = torch.stack([warp_affine_linear(torch.from_numpy(rgb), to_input, (side, side)) for rgb in rgbs])
        batch = warped.to(self.device).permute(0, 3, 1, 2).float()
        batch = self.net.normalize(batch).contiguous(memory_format=self.memory_format)
        return Prepared(batch, Geometry((height, width), to_frame))

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """B x C x S/4 x S/4 fusion logits."""
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=self.amp_dtype or torch.float32,
                                                    enabled=self.amp_dtype is not None):
            return self.net(batch, heads=self.heads)["fusion"].float()

    def postprocess(self, logits: torch.Tensor, prepared: Prepared) -> list[ParseResult]:
        input_hw, geometry = tuple(prepared.batch.shape[-2:]), prepared.geometry
        results = []
        for image_logits in logits:
            with torch.inference_mode():
                upsampled = _up(image_logits[None], input_hw)[0].permute(1, 2, 0).contiguous()
                labels = labels_on_frame(upsampled, geometry.to_frame, geometry.frame_hw)
            results.append(ParseResult(labels=labels, person_mask=labels > 0,
                                       label_names=self.label_names, palette=self.palette, part_probs=None))
        return results


