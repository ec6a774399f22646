"""Mask2Former ResNet-50, COCO panoptic (133 classes), in plain PyTorch: ModelScope's
`damo/cv_r50_panoptic-segmentation_cocopan`, which runs EasyCV's `Mask2Former`, and the
facebookresearch Mask2Former R50 COCO panoptic checkpoint (detectron2 names, mapped).

Network: torchvision-layout ResNet-50 (7x7 stem, stride in the 3x3 convolutions, frozen BN)
under the Mask2Former core (realtime.models.mask2former). Input as EasyCV's test pipeline makes
it: `mmcv.imrescale` to fit 1333 x 800 (bilinear), `mmcv.imnormalize` (RGB, ImageNet mean/std),
zero padding to a multiple of 32. Output as EasyCV's `Mask2Former.panoptic_postprocess` makes it
(`panoptic_inference`): queries whose best class is not "no object" and scores above
`object_mask_thr` 0.8 each claim the pixels where their score x mask probability is highest;
a claim whose pixels keep less than `iou_thr` 0.8 of its own mask (sigmoid >= 0.5) is dropped;
stuff claims of one class merge, each thing claim is an instance.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.checkpoint import load_into, load_weights_file
from realtime.models.common import Prepared, check_frames
from realtime.models.mask2former import Mask2FormerNet, Mask2FormerParser, resize_maps
from realtime.models.pixel_norm import PixelNorm
from realtime.models.registry import ModelSpec
from realtime.models.resnet import FrozenBatchNorm2d, fold_child_pairs, make_layer
from realtime.types import ParseResult, PersonParse

NUM_THINGS = 80  # COCO panoptic: classes 0..79 are things, 80..132 stuff
PERSON_CLASS = 0
INSTANCE_OFFSET = 1000  # EasyCV's panoptic value: class + 1000 * instance number for things
OBJECT_MASK_THRESHOLD = 0.8
OVERLAP_THRESHOLD = 0.8
RESCALE_LONG_SHORT = (1333, 800)  # EasyCV's test img_scale: the long and the short side's limits
RESNET50_BLOCKS = (3, 4, 6, 3)


class ResNet50(nn.Module):
    """torchvision's ResNet-50 names (conv1, bn1, layer1..layer4) with frozen norms.

    forward(B x 3 x H x W) -> {"res2": stride 4, 256 ch; "res3": 8, 512; "res4": 16, 1024;
    "res5": 32, 2048}.
    """

    _norm_pairs = (("conv1", "bn1"),)

    def __init__(self, blocks: tuple[int, int, int, int] = RESNET50_BLOCKS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        in_channels = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            self.add_module(f"layer{index + 1}", make_layer(in_channels, planes, count, stride=1 if index == 0 else 2))
            in_channels = planes * 4

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.max_pool2d(F.relu_(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        features = {}
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
            features[f"res{index + 2}"] = x
        return features

    def fold_norms(self) -> None:
        fold_child_pairs(self, self._norm_pairs)


class MMCVPixelNorm(PixelNorm):
    """`mmcv.imnormalize`'s rounding: float32 of (x - mean) * (1 / std) computed in float64 from
    the float32 mean and std (plain float32 arithmetic differs by up to 1 ulp)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.flip(1) if self.flip else images
        return ((x.double() - self.mean.double()) * (1 / self.std.double())).float()


class PanopticNet(Mask2FormerNet):
    """Mask2Former R50 with EasyCV's parameter names (`backbone.layer1...`,
    `head.pixel_decoder...`, `head.predictor...`)."""

    head_attribute = "head"

    def __init__(self, num_classes: int, pixel_norm: PixelNorm) -> None:
        super().__init__(ResNet50(), num_classes, pixel_norm)


def panoptic_net(spec: ModelSpec) -> PanopticNet:
    """An untrained PanopticNet for `spec` (its labels hold "background" first, then the classes)."""
    return PanopticNet(spec.num_classes - 1, MMCVPixelNorm.from_spec(spec))


# --- checkpoints ---------------------------------------------------------------------------------

_D2_BACKBONE = (
    (re.compile(r"backbone\.stem\.conv1\.weight"), "backbone.conv1.weight"),
    (re.compile(r"backbone\.stem\.conv1\.norm\.(\w+)"), r"backbone.bn1.\1"),
    (re.compile(r"backbone\.res(\d)\.(\d+)\.shortcut\.weight"), lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"),
    (re.compile(r"backbone\.res(\d)\.(\d+)\.shortcut\.norm\.(\w+)"), lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}"),
    (re.compile(r"backbone\.res(\d)\.(\d+)\.conv(\d)\.weight"), lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.weight"),
    (re.compile(r"backbone\.res(\d)\.(\d+)\.conv(\d)\.norm\.(\w+)"), lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}"),
)
# Not part of the network: BN bookkeeping, the training loss's class weights, detectron2's
# normalisation buffers (the spec holds those).
_DROPPED = re.compile(r"(.*\.num_batches_tracked|criterion\..*|pixel_mean|pixel_std)")


def detectron2_to_easycv(key: str) -> str:
    """A detectron2 Mask2Former name (`backbone.stem/res2..res5`, `sem_seg_head.`) -> EasyCV's."""
    if key.startswith("sem_seg_head."):
        return "head." + key.removeprefix("sem_seg_head.")
    for pattern, replacement in _D2_BACKBONE:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return key


def panoptic_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The released layouts -> PanopticNet's names: EasyCV's {'meta', 'state_dict', ...} (with or
    without DataParallel's `module.` prefix), the hub's bare state dict, and detectron2's
    {'model': ...} (.pth tensors, or the model zoo .pkl's numpy arrays) through its key map."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError("checkpoint holds no state dict (expected a mapping)")
    state = checkpoint.get("state_dict", checkpoint.get("model", checkpoint))
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint holds no state dict (expected a mapping, or one under 'state_dict' or 'model')")
    converted = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if _DROPPED.fullmatch(key):
            continue
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.array(value, dtype=np.float32))
        if isinstance(value, torch.Tensor):
            converted[detectron2_to_easycv(key)] = value
    return converted


def load_panoptic_net(path: str | Path, spec: ModelSpec) -> PanopticNet:
    """Read a checkpoint (PyTorch file or detectron2 .pkl, safely) into `spec`'s PanopticNet in
    eval mode; WeightsError naming the missing / unexpected keys when it does not fit."""
    net = panoptic_net(spec)
    load_into(net, panoptic_state_dict(load_weights_file(path)), source=str(path))
    return net.eval()


# --- pre-processing ------------------------------------------------------------------------------

def rescale_size(height: int, width: int, short_side: int = RESCALE_LONG_SHORT[1],
                 long_side: int = RESCALE_LONG_SHORT[0]) -> tuple[int, int]:
    """`mmcv.imrescale`'s (h, w): the largest scale that keeps the short side <= short_side and
    the long side <= long_side, sizes rounded half up (at least 1 pixel)."""
    scale = min(long_side / max(height, width), short_side / min(height, width))
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


@dataclass(frozen=True)
class Geometry:
    """The frame size and the unpadded network image size (h, w)."""

    frame_hw: tuple[int, int]
    image_hw: tuple[int, int]


# --- post-processing -----------------------------------------------------------------------------

@dataclass
class Segment:
    """One segment of a panoptic map: its `value` in the map, class index (0..132), whether it is
    a thing, the best score of its queries, the queries that drew it and its pixel count."""

    value: int
    category: int
    isthing: bool
    score: float
    queries: list[int] = field(default_factory=list)
    area: int = 0


@dataclass
class Panoptic:
    """EasyCV's panoptic map (H x W int32: class for stuff, class + 1000 x instance for things,
    `void` where no segment is) and its segments in drawing order."""

    segment_map: torch.Tensor
    segments: list[Segment]
    void: int


def kept_queries(pred_logits: torch.Tensor, threshold: float = OBJECT_MASK_THRESHOLD
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q x (C + 1) class logits -> (query indices, scores, classes) of the queries whose best
    class is an object class and scores above `threshold`."""
    scores, classes = pred_logits.softmax(-1).max(-1)
    keep = (classes != pred_logits.shape[-1] - 1) & (scores > threshold)
    return keep.nonzero()[:, 0], scores[keep], classes[keep]


def panoptic_inference(queries: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                       mask_logits: torch.Tensor, *, num_classes: int, num_things: int = NUM_THINGS,
                       overlap_threshold: float = OVERLAP_THRESHOLD, filter_low_score: bool = True) -> Panoptic:
    """EasyCV's `Mask2Former.panoptic_postprocess` on the kept queries (`kept_queries`) and
    their K x H x W mask logits at image size."""
    height, width = mask_logits.shape[-2:]
    segment_map = torch.full((height, width), num_classes, dtype=torch.int32, device=mask_logits.device)
    segments: dict[int, Segment] = {}
    if len(queries):
        probs = mask_logits.sigmoid()
        owner = (scores.view(-1, 1, 1) * probs).argmax(0)
        instance = 1
        for k, (query, score, category) in enumerate(zip(queries.tolist(), scores.tolist(), classes.tolist())):
            mask = owner == k
            area = int(mask.sum())
            confident = probs[k] >= 0.5
            original_area = int(confident.sum())
            if filter_low_score:
                mask &= confident
            if area == 0 or original_area == 0 or area / original_area < overlap_threshold:
                continue
            isthing = category < num_things
            value = category + INSTANCE_OFFSET * instance if isthing else category
            instance += isthing
            segment_map[mask] = value
            segment = segments.setdefault(value, Segment(value, category, isthing, score))
            segment.score = max(segment.score, score)
            segment.queries.append(query)
    areas = dict(zip(*(t.tolist() for t in segment_map.unique(return_counts=True))))
    kept = [s for s in segments.values() if areas.get(s.value, 0)]
    for segment in kept:
        segment.area = areas[segment.value]
    return Panoptic(segment_map, kept, num_classes)


# --- parser --------------------------------------------------------------------------------------

class PanopticParser(Mask2FormerParser):
    """numpy API over PanopticNet: RGB frames in, ParseResults out with `labels` = class index + 1
    (0 = no segment; see realtime.models.labels.COCO_PANOPTIC), `person_mask` = every person
    pixel and `people` = the person instances, strongest first (at most `max_people`).

    `internal_size` is the short side the frame is scaled to (default 800, the long side at most
    1333 x internal_size / 800), as EasyCV's test pipeline does. `amp_dtype` (float16 / bfloat16)
    runs the backbone and decoder under autocast; the pixel decoder stays float32.

    `fast=False` follows the reference step by step. `fast=True` (the default) runs
    `optimise_for_inference` and channels_last, and resizes only the masks of the queries that
    pass `object_mask_thr` (the reference resizes all 100 to the frame, then selects): the same
    values for those, so the same panoptic map for the same network outputs.
    """

    internal_size_range = (64, 2048)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The unpadded network input (h, w) for a frame of height x width."""
        long_side = round(RESCALE_LONG_SHORT[0] * self.internal_size / RESCALE_LONG_SHORT[1])
        return rescale_size(height, width, self.internal_size, long_side)

    def input_size(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        """The padded network input (w, h) for a frame of frame_wh (bench's report)."""
        height, width = self.network_size(frame_wh[1], frame_wh[0])
        return width + -width % 32, height + -height % 32

    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        new_h, new_w = self.network_size(height, width)
        images = [rgb if (new_h, new_w) == (height, width) else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
                  for rgb in rgbs]
        return Prepared(self.network_batch(images), Geometry((height, width), (new_h, new_w)))

    def postprocess(self, outputs: dict[str, torch.Tensor], prepared: Prepared) -> list[ParseResult]:
        padded_hw, geometry = tuple(prepared.batch.shape[-2:]), prepared.geometry
        with torch.inference_mode():
            return [self._result(self.panoptic(logits, masks, padded_hw, geometry))
                    for logits, masks in zip(outputs["pred_logits"], outputs["pred_masks"])]

    def panoptic(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded_hw: tuple[int, int],
                 geometry: Geometry) -> Panoptic:
        """One image's Q x (C + 1) logits and Q x h x w mask logits -> its panoptic map at frame
        size. The masks are resized to the padded input, cropped to the image, resized to the
        frame (bilinear), as the reference does."""
        queries, scores, classes = kept_queries(pred_logits)
        if self.fast:
            pred_masks = pred_masks[queries]
        image_h, image_w = geometry.image_hw
        masks = resize_maps(resize_maps(pred_masks, padded_hw)[:, :image_h, :image_w], geometry.frame_hw)
        if not self.fast:
            masks = masks[queries]
        return panoptic_inference(queries, scores, classes, masks, num_classes=pred_logits.shape[-1] - 1)

    def _result(self, panoptic: Panoptic) -> ParseResult:
        segment_map = panoptic.segment_map
        category = torch.where(segment_map == panoptic.void, -1, segment_map % INSTANCE_OFFSET)
        labels = (category + 1).to(torch.uint8).cpu().numpy()
        persons = sorted((s for s in panoptic.segments if s.category == PERSON_CLASS), key=lambda s: -s.score)
        people = [PersonParse(id=i, mask=(segment_map == s.value).cpu().numpy(), keypoints=None, score=s.score)
                  for i, s in enumerate(persons[:self.max_people])]
        return ParseResult(labels=labels, person_mask=labels == PERSON_CLASS + 1, label_names=self.label_names,
                           palette=self.palette, part_probs=None, people=people)

