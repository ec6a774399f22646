"""UniParser (Chu et al., "UniParser: Multi-Human Parsing with Unified Correlation Representation
Learning", 2023; github.com/cjm-sfw/Uniparser) in plain PyTorch: the CIHP R101-DCN "light" model.

Network: mmdet's ResNet-101 (7x7 stem, stride in the 3x3 convolution) with modulated deformable
convolutions (DCNv2) in the 3x3 convolution of every block of stages 2-4 -> FPN (256 channels, 5
levels) -> Repparsing head on the finest level P2 (stride 4): a centre branch (CoordConv, resized
to a 40 x 40 grid, 4 conv+GN+ReLU, a 1-channel heatmap), an instance branch and a semantic branch
(CoordConv, 4 conv+GN+ReLU each, 128 channels at P2's size + 2: the 1x1 `dekr_convs` /
`segment_converts` that feed them have padding 1).

Everything is compared in cosine space: a person is the set of pixels whose instance feature has
cosine > 0.5 with the feature at its centre peak; a part class is where the semantic feature has
cosine > 0.5 with the class's learnt kernel (`seg_kernels`, 19 x 128). A person's parsing is the
semantic cosine map inside its instance mask, keeping the classes whose maskness (confidences
above 0.5 summed, over the count of those above 0.1) passes `cate_score_thr`, resized to the
frame, argmax + 1 where any class passes 0.5.
Post-processing follows `Repparsing_Head.get_parsing_single` of the reference (commit 147a8b8).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.checkpoint import load_checkpoint, load_into, unwrapped_state_dict
from realtime.models.common import NetworkParser, Prepared, check_frames
from realtime.models.deform_conv import ModulatedDeformConv2d, gathered_deform_conv2d
from realtime.models.registry import ModelSpec
from realtime.models.resnet import (
    RESNET101_BLOCKS,
    Bottleneck,
    FrozenBatchNorm2d,
    fold_child_pairs,
    fold_frozen_norms,
    make_layer,
)
from realtime.types import ParseResult, PersonParse

TEST_SCALE = (1333, 800)  # mmdet's img_scale: (long side cap, short side)
SIZE_DIVISOR = 32
FEATURE_STRIDE = 4
NUM_GRID = 40


@dataclass(frozen=True)
class Thresholds:
    """The light CIHP config's test_cfg: centre peaks above `center` become people; a part class
    stays in a person when its maskness passes `category`; cosines above `mask` count."""

    center: float = 0.10
    category: float = 0.275
    mask: float = 0.5


# --- network ------------------------------------------------------------------------------------

class ConvModule(nn.Module):
    """mmcv's ConvModule as these configs use it: `conv`, then GroupNorm `gn` and ReLU when
    `norm_groups` is given (the convolution then has no bias), else the bare convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, padding: int = 0,
                 norm_groups: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=norm_groups is None)
        self.gn = nn.GroupNorm(norm_groups, out_channels) if norm_groups else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.gn is None else F.relu_(self.gn(x))


class DeformableResNet(nn.Module):
    """mmdet's ResNet (style 'pytorch', frozen batch norm) with DCNv2 as the 3x3 convolution of the
    stages flagged in `deformable_stages`. forward(B x 3 x H x W) -> [C2 (stride 4, 256 ch),
    C3 (8, 512), C4 (16, 1024), C5 (32, 2048)]."""

    def __init__(self, blocks: tuple[int, ...] = RESNET101_BLOCKS,
                 deformable_stages: tuple[bool, ...] = (False, True, True, True)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        in_channels = 64
        for index, (count, deformable) in enumerate(zip(blocks, deformable_stages)):
            planes = 64 << index
            layer = make_layer(in_channels, planes, count, stride=1 if index == 0 else 2)
            if deformable:
                for block in layer:
                    block.conv2 = ModulatedDeformConv2d(planes, planes, 3, stride=block.conv2.stride[0], padding=1)
            self.add_module(f"layer{index + 1}", layer)
            in_channels = planes * Bottleneck.expansion
        self.num_stages = len(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu_(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        features = []
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
            features.append(x)
        return features

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("conv1", "bn1"),))


class FPN(nn.Module):
    """mmdet's FPN: 1x1 laterals, nearest-neighbour top-down sums, 3x3 outputs, extra levels by
    max-pooling the coarsest (add_extra_convs=False). forward(C2..C5) -> [P2 .. P6]; with
    `finest_only`, [P2] alone (P2 does not depend on the other outputs)."""

    def __init__(self, in_channels: tuple[int, ...] = (256, 512, 1024, 2048), out_channels: int = 256,
                 num_outs: int = 5) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.num_outs = num_outs

    def forward(self, features: list[torch.Tensor], *, finest_only: bool = False) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, features)]
        for i in range(len(laterals) - 1, 0, -1):
            coarser = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            laterals[i - 1] = laterals[i - 1] + coarser
        if finest_only:
            return [self.fpn_convs[0](laterals[0])]
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        for _ in range(self.num_outs - len(outs)):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


def with_coordinates(x: torch.Tensor) -> torch.Tensor:
    """CoordConv: B x C x H x W -> B x (C + 2) x H x W, x then y in [-1, 1] appended."""
    batch, _, height, width = x.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height, device=x.device),
                            torch.linspace(-1, 1, width, device=x.device), indexing="ij")
    coords = torch.stack((xs, ys)).to(x.dtype).expand(batch, -1, -1, -1)
    return torch.cat((x, coords), dim=1)


def points_nms(heat: torch.Tensor) -> torch.Tensor:
    """SOLO's 2x2 peak filter: keeps the values equal to the max of the 2x2 window ending at them."""
    peaks = F.max_pool2d(heat, 2, stride=1, padding=1)[:, :, :-1, :-1]
    return heat * (peaks == heat)


class RepParsingHead(nn.Module):
    """The light config's `Repparsing_Head` (enable_center / instance / semantic, last_res,
    light_convert; no kernel or fusion branch), with its parameter names.

    forward([P2, ...]) -> {"center_logits": B x 1 x S x S, "center_pred": B x S x S (sigmoid,
    2x2 peaks kept), "semantic_pred" / "instance_pred": B x 128 x (h + 2) x (w + 2)} for P2 of
    h x w. `ins_coord_conv` is trained but not used at inference. With `lean`, the levels other
    than P2 (which the reference concatenates and then ignores) are not touched and `dekr_convs`
    runs once instead of once per branch.
    """

    def __init__(self, num_parts: int = 19, in_channels: int = 256, feat_channels: int = 128,
                 stacked_convs: int = 4, num_grid: int = NUM_GRID) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_grid = num_grid
        self.seg_kernels = nn.Parameter(torch.zeros(num_parts, feat_channels))

        def tower() -> nn.ModuleList:
            return nn.ModuleList(
                ConvModule(in_channels + 2 if i == 0 else feat_channels, feat_channels, 3, padding=1, norm_groups=32)
                for i in range(stacked_convs))

        self.center_convs = tower()
        self.semantic_convs = tower()
        self.instance_convs = tower()
        self.dekr_convs = nn.Conv2d(in_channels, in_channels, 1, padding=1)
        self.center_heatmap = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.segment_converts = nn.Conv2d(in_channels, in_channels, 1, padding=1)
        self.ins_coord_conv = nn.Conv2d(feat_channels, 2, 3, padding=1)

    def forward(self, levels: list[torch.Tensor], *, lean: bool = False) -> dict[str, torch.Tensor]:
        if lean:
            finest = levels[0]
        else:
            size = levels[0].shape[-2:]
            mixed = torch.cat([levels[0], *(F.interpolate(x, size=size, mode="bilinear", align_corners=True)
                                            for x in levels[1:])], dim=1)
            finest = mixed[:, :self.in_channels]
        center_input = self.dekr_convs(finest)
        instance_input = center_input if lean else self.dekr_convs(finest)

        center = F.interpolate(with_coordinates(center_input), size=self.num_grid, mode="bilinear", align_corners=True)
        center_logits = self.center_heatmap(_run(self.center_convs, center))
        return {
            "center_logits": center_logits,
            "center_pred": points_nms(center_logits.float().sigmoid())[:, 0],
            "semantic_pred": _run(self.semantic_convs, with_coordinates(self.segment_converts(finest))),
            "instance_pred": _run(self.instance_convs, with_coordinates(instance_input)),
        }


def _run(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


class UniParserNet(nn.Module):
    """UniParser with mmdet parameter names (backbone / neck / mask_head).

    `normalize` maps B x 3 x H x W RGB in [0, 255] to the network input (mmcv's imnormalize,
    then zero-padded bottom/right to a multiple of 32); forward returns RepParsingHead's outputs.
    """

    def __init__(self, num_parts: int, mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.backbone = DeformableResNet()
        self.neck = FPN()
        self.mask_head = RepParsingHead(num_parts)
        self.lean = False
        # mmcv.imnormalize: float32 mean/std arrays, applied in float64, rounded once to float32
        mean64 = torch.tensor(mean, dtype=torch.float32).double()
        inverse_std64 = 1 / torch.tensor(std, dtype=torch.float32).double()
        self.register_buffer("mean", mean64.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inverse_std", inverse_std64.view(1, 3, 1, 1), persistent=False)

    @property
    def num_parts(self) -> int:
        return self.mask_head.seg_kernels.shape[0]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images.double() - self.mean) * self.inverse_std).float()
        pad_h, pad_w = -x.shape[-2] % SIZE_DIVISOR, -x.shape[-1] % SIZE_DIVISOR
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.mask_head(self.neck(self.backbone(x), finest_only=self.lean), lean=self.lean)

    def optimise_for_inference(self) -> UniParserNet:
        """Faster forward, same maths in another rounding: frozen norms folded into the
        convolutions (deformable ones too: they are linear in their weight), deformable samples
        as weighted row gathers (`gathered_deform_conv2d`), and the head's lean mode. The state_dict no longer matches a
        checkpoint. Returns self."""
        fold_frozen_norms(self)
        for module in self.modules():
            if isinstance(module, ModulatedDeformConv2d):
                module.implementation = gathered_deform_conv2d
        self.lean = True
        return self


def uniparser_net(spec: ModelSpec) -> UniParserNet:
    """An untrained UniParserNet for `spec` (its part classes, without background)."""
    return UniParserNet(spec.num_classes - 1, spec.input_mean, spec.input_std)


def load_uniparser_net(path: str | Path, spec: ModelSpec) -> UniParserNet:
    """Read a checkpoint (weights_only) into `spec`'s UniParserNet in eval mode; ValueError for a
    checkpoint of another dataset, WeightsError for one that does not fit (load_into)."""
    # mmcv's save_checkpoint layout {'meta', 'state_dict', 'optimizer'}; mmcv's load_checkpoint
    # also strips `module.` and ignores num_batches_tracked
    state = unwrapped_state_dict(load_checkpoint(path), "state_dict")
    net = uniparser_net(spec)
    kernels = state.get("mask_head.seg_kernels")
    if kernels is not None and kernels.shape[0] != net.num_parts:
        raise ValueError(f"{path}: checkpoint has {kernels.shape[0]} part classes, {spec.name} has {net.num_parts}; "
                         "is it a UniParser trained on another dataset (MHP-v2 has 58)?")
    load_into(net, state, source=str(path))
    return net.eval()


# --- pre-processing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """Frame size and the unpadded network image size, both (height, width)."""

    frame_hw: tuple[int, int]
    image_hw: tuple[int, int]


def rescaled_size(height: int, width: int, short_side: int = TEST_SCALE[1]) -> tuple[int, int]:
    """mmcv.imrescale's size for img_scale (long cap, short side) = (short_side * 1333 / 800,
    short_side): the largest scale that fits both, sizes rounded half up (at least 1 pixel).
    Returns (h, w)."""
    long_cap = short_side * TEST_SCALE[0] / TEST_SCALE[1]
    scale = min(long_cap / max(height, width), short_side / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


# --- post-processing ---------------------------------------------------------------------------

@dataclass
class HeadMaps:
    """One image's decoded head outputs, on the feature grid (h x w = the branches' size).

    scores: N centre scores, ascending (the reference's order); positions: N x 2 (row, column)
    of each centre on the feature grid; instance_conf: N x h x w cosine of every pixel's instance
    feature with the centre's; semantic_conf: P x h x w cosine with each part kernel.
    """

    scores: torch.Tensor
    positions: torch.Tensor
    instance_conf: torch.Tensor
    semantic_conf: torch.Tensor


def cosine_maps(features: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """C x h x w features, N x C kernels -> N x h x w cosine similarities (the reference's 1x1
    convolution of the L2-normalised features with the L2-normalised kernels)."""
    return torch.einsum("nc,chw->nhw", F.normalize(kernels, p=2, dim=1), F.normalize(features, p=2, dim=0))


def decode_head(center_pred: torch.Tensor, semantic_pred: torch.Tensor, instance_pred: torch.Tensor,
                seg_kernels: torch.Tensor, thresholds: Thresholds = Thresholds()) -> HeadMaps:
    """One image: centre grid S x S (after the 2x2 peak filter), semantic / instance features
    C x h x w, part kernels P x C -> HeadMaps. Centres are 5x5 maxima above `thresholds.center`;
    a centre in grid cell (i, j) reads the instance feature at (int(i / S * h), int(j / S * w))."""
    grid = center_pred.shape[-1]
    feature_h, feature_w = instance_pred.shape[-2:]
    peaks = center_pred * (F.max_pool2d(center_pred[None, None], 5, stride=1, padding=2)[0, 0] == center_pred)
    rows, cols = torch.where(peaks > thresholds.center)
    scores, order = peaks[rows, cols].sort(stable=True)
    rows = ((rows / grid) * feature_h).int()[order]
    cols = ((cols / grid) * feature_w).int()[order]
    kernels = instance_pred[:, rows.long(), cols.long()].T
    return HeadMaps(scores=scores, positions=torch.stack((rows, cols), dim=1),
                    instance_conf=cosine_maps(instance_pred, kernels),
                    semantic_conf=cosine_maps(semantic_pred, seg_kernels))


def maskness(conf: torch.Tensor, mask_thr: float) -> torch.Tensor:
    """P x h x w -> P: sum of the confidences above `mask_thr` over the count of those above 0.1."""
    confident = (conf * (conf > mask_thr)).sum((1, 2))
    return confident / ((conf > 0.1).sum((1, 2)) + 0.00001)


def part_labels(conf: torch.Tensor, image_hw: tuple[int, int], frame_hw: tuple[int, int],
                mask_thr: float) -> torch.Tensor:
    """P x h x w class confidences on the feature grid -> frame_h x frame_w int64 labels (argmax + 1
    where some class passes `mask_thr`, else 0), as the reference resizes: x4 bilinear, crop to
    the image, then bilinear to a smaller frame before the threshold, or nearest to a larger one
    after it."""
    feature_h, feature_w = conf.shape[-2:]
    image_h, image_w = image_hw
    up = F.interpolate(conf[None], size=(feature_h * FEATURE_STRIDE, feature_w * FEATURE_STRIDE),
                       mode="bilinear", align_corners=False)[:, :, :image_h, :image_w]
    frame_area = frame_hw[0] * frame_hw[1]
    if image_h * image_w > frame_area:
        up = F.interpolate(up, size=frame_hw, mode="bilinear", align_corners=False)
    labels = (up.argmax(1) + 1) * (up > mask_thr).any(1)
    if image_h * image_w < frame_area:
        labels = F.interpolate(labels[None].float(), size=frame_hw, mode="nearest")[0].long()
    return labels[0]


def person_labels(maps: HeadMaps, index: int, image_hw: tuple[int, int], frame_hw: tuple[int, int],
                  thresholds: Thresholds = Thresholds(), *, kept_classes_only: bool = False) -> torch.Tensor:
    """Centre `index`'s parsing at frame size (int64, 0 = background, 1..P = part + 1): the
    semantic confidences inside its instance mask, classes with maskness <= `thresholds.category`
    zeroed. `kept_classes_only` resizes only the kept classes: the same labels, less work."""
    conf = (maps.instance_conf[index] > thresholds.mask) * maps.semantic_conf
    kept = maskness(conf, thresholds.mask) > thresholds.category
    if not kept_classes_only:
        return part_labels(conf * kept[:, None, None], image_hw, frame_hw, thresholds.mask)
    kept_ids = torch.where(kept)[0]
    if len(kept_ids) == 0:
        return conf.new_zeros(frame_hw, dtype=torch.long)
    labels = part_labels(conf[kept_ids], image_hw, frame_hw, thresholds.mask)
    return torch.where(labels > 0, kept_ids[(labels - 1).clamp(min=0)] + 1, labels)


def semantic_labels(maps: HeadMaps, image_hw: tuple[int, int], frame_hw: tuple[int, int],
                    thresholds: Thresholds = Thresholds()) -> torch.Tensor:
    """The reference's semantic map (frame_h x frame_w int64): every class's confidence, no
    instance mask; all background when no centre was found, as the reference writes it."""
    if len(maps.scores) == 0:
        return maps.semantic_conf.new_zeros(frame_hw, dtype=torch.long)
    return part_labels(maps.semantic_conf, image_hw, frame_hw, thresholds.mask)


def distinct_people(instance_masks: torch.Tensor, scores: torch.Tensor, iou_thr: float | None) -> list[int]:
    """Centre indices strongest first, leaving out empty masks and (unless `iou_thr` is None) a
    mask whose IoU with a stronger kept one exceeds `iou_thr`: one person, one entry."""
    kept: list[int] = []
    flat = instance_masks.flatten(1).float()
    areas = flat.sum(1)
    for index in scores.argsort(descending=True, stable=True).tolist():
        if areas[index] == 0:
            continue
        if iou_thr is not None and kept:
            overlap = flat[kept] @ flat[index]
            if (overlap / (areas[kept] + areas[index] - overlap) > iou_thr).any():
                continue
        kept.append(index)
    return kept


# --- parser ------------------------------------------------------------------------------------

class UniParserParser(NetworkParser):
    """numpy API over UniParserNet: RGB frames in, ParseResults with `people` out.

    `internal_size` is the short side the frame is scaled to (long side capped at
    internal_size * 1333 / 800; the reference's test scale is 800), bilinear as mmcv.imrescale.
    `labels` is the reference's semantic map; each person is a centre's parsing (mask = its
    non-background pixels, score = centre score), strongest first, near-duplicates (instance
    masks with IoU > `person_iou`, None to keep all) and people without parts left out, at most
    `max_people`. `amp_dtype` (float16 / bfloat16) runs the network under autocast.

    `fast=False` follows the reference step by step (mmcv's deformable sampling, every FPN level,
    every centre's parsing at full size with every class). `fast=True` (the default) runs
    `UniParserNet.optimise_for_inference` and channels_last, and resizes only the chosen people
    and their kept classes (`bench-model` measures both).
    """

    internal_size_range = (32, 2048)

    def __init__(self, net: UniParserNet, spec: ModelSpec, device: torch.device, *, internal_size: int | None = None,
                 amp_dtype: torch.dtype | None = None, fast: bool = True, max_people: int | None = None,
                 person_iou: float | None = 0.5, thresholds: Thresholds = Thresholds()) -> None:
        super().__init__(net, spec, device, internal_size=internal_size, amp_dtype=amp_dtype, fast=fast,
                         max_people=max_people)
        self.person_iou = person_iou
        self.thresholds = thresholds

    def input_size(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the padded network input for frames of `frame_wh`."""
        height, width = rescaled_size(frame_wh[1], frame_wh[0], self.internal_size)
        return -(-width // SIZE_DIVISOR) * SIZE_DIVISOR, -(-height // SIZE_DIVISOR) * SIZE_DIVISOR

    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> B x 3 x H x W normalised, padded network input with its Geometry."""
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        new_h, new_w = rescaled_size(height, width, self.internal_size)
        images = [rgb if (new_h, new_w) == (height, width)
                  else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR) for rgb in rgbs]
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2)
        prepared = self.net.normalize(batch).contiguous(memory_format=self.memory_format)
        return Prepared(prepared, Geometry((height, width), (new_h, new_w)))

    def postprocess(self, outputs: dict[str, torch.Tensor], prepared: Prepared) -> list[ParseResult]:
        kernels = self.net.mask_head.seg_kernels.detach().float()
        with torch.inference_mode():
            return [self._parse(decode_head(center, semantic, instance, kernels, self.thresholds), prepared.geometry)
                    for center, semantic, instance in
                    zip(outputs["center_pred"], outputs["semantic_pred"], outputs["instance_pred"])]

    def _parse(self, maps: HeadMaps, geometry: Geometry) -> ParseResult:
        image_hw, frame_hw = geometry.image_hw, geometry.frame_hw
        labels = semantic_labels(maps, image_hw, frame_hw, self.thresholds).to(torch.uint8).cpu().numpy()
        order = distinct_people(maps.instance_conf > self.thresholds.mask, maps.scores, self.person_iou)
        if self.fast:
            parsings = {}
            for index in order:
                if self.max_people is not None and len(parsings) == self.max_people:
                    break
                parsing = person_labels(maps, index, image_hw, frame_hw, self.thresholds, kept_classes_only=True)
                if parsing.any():
                    parsings[index] = parsing
        else:
            every = [person_labels(maps, i, image_hw, frame_hw, self.thresholds) for i in range(len(maps.scores))]
            parsings = {index: every[index] for index in order if every[index].any()}
            parsings = dict(list(parsings.items())[:self.max_people])
        people = [PersonParse(id=i, mask=(parsing > 0).cpu().numpy(), keypoints=None, score=float(maps.scores[index]))
                  for i, (index, parsing) in enumerate(parsings.items())]
        return ParseResult(labels=labels, person_mask=labels > 0, label_names=self.label_names,
                           palette=self.palette, part_probs=None, people=people)
