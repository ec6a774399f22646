"""M2FP (Mask2Former for Parsing, ResNet-101) in plain PyTorch, loading ModelScope's checkpoints.

Network: DeepLab ResNet-101 under the Mask2Former core (realtime.models.mask2former): per query
class logits (C + 1, the last is "no object") and mask logits at stride 4.

Single-person (LIP): the frame is centred on a 384 x 512 canvas and the per-class map is
sum_q softmax(class_q)[c] * sigmoid(mask_q). Multi-person (CIHP, 20 parts + Human): the short
side is scaled to `internal_size` and queries become part and human instances, as ModelScope's
`M2FP.instance_parsing_inference` does.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from realtime.models.checkpoint import load_checkpoint, load_into
from realtime.models.common import Prepared, check_frames
from realtime.models.mask2former import Mask2FormerNet, Mask2FormerParser, resize_maps
from realtime.models.pixel_norm import PixelNorm
from realtime.models.registry import ModelSpec
from realtime.models.resnet import DeepLabResNet
from realtime.types import ParseResult, PersonParse

SINGLE_HUMAN_CANVAS_WH = (384, 512)
MAX_LONG_SIDE = 1333
CANVAS_FILL = 128


class M2FPNet(Mask2FormerNet):
    """M2FP: DeepLab ResNet-101 and the Mask2Former core with detectron2 / ModelScope parameter
    names (`backbone.stem...`, `sem_seg_head.pixel_decoder...`, `sem_seg_head.predictor...`)."""

    head_attribute = "sem_seg_head"

    def __init__(self, num_classes: int, pixel_norm: PixelNorm) -> None:
        super().__init__(DeepLabResNet(), num_classes, pixel_norm)


def m2fp_state_dict(checkpoint: Mapping[str, torch.Tensor | object]) -> dict[str, torch.Tensor]:
    """detectron2's {'model': ...} or ModelScope's pytorch_model.pt -> M2FPNet's names.

    BatchNorm bookkeeping (`num_batches_tracked`) and a DataParallel `module.` prefix are dropped.
    """
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint holds no state dict (expected a mapping, or one under 'model')")
    return {
        key.removeprefix("module."): value for key, value in state.items()
        if isinstance(value, torch.Tensor) and not key.endswith("num_batches_tracked")
    }


def m2fp_net(spec: ModelSpec) -> M2FPNet:
    """An untrained M2FPNet for `spec`: its classes (plus "Human" for multi-person models) and
    its input normalisation."""
    return M2FPNet(spec.num_classes + (1 if spec.multi_person else 0), PixelNorm.from_spec(spec))


def load_m2fp_net(path: str | Path, spec: ModelSpec) -> M2FPNet:
    """Read a checkpoint file (weights_only) into `spec`'s M2FPNet in eval mode; ValueError for
    the other setting's checkpoint, WeightsError for one that does not fit (load_into)."""
    state = m2fp_state_dict(load_checkpoint(path))
    net = m2fp_net(spec)
    found = state.get("sem_seg_head.predictor.class_embed.weight")
    if found is not None and found.shape[0] != net.num_classes + 1:
        raise ValueError(f"{path}: checkpoint predicts {found.shape[0] - 1} classes, this model has {net.num_classes}; "
                         "is it the single-person (LIP) or the multi-person (CIHP) M2FP?")
    load_into(net, state, source=str(path))
    return net.eval()


# --- pre-processing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """Where a frame went: frame size, the unpadded network image size, and for single-person
    input the frame's box (x0, y0, x1, y1) on the canvas."""

    frame_hw: tuple[int, int]
    image_hw: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None = None


def center_on_canvas(rgb: np.ndarray, canvas_wh: tuple[int, int] = SINGLE_HUMAN_CANVAS_WH
                     ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """ModelScope's center_to_target_size_test: shrink to fit (keeping the aspect ratio, sizes
    truncated but at least 1 pixel), then pad with 128 to the canvas, centred. Returns (canvas,
    crop box x0 y0 x1 y1).

    Differences: cv2's INTER_AREA stands in for PIL's antialiased bilinear when shrinking, and a
    square frame larger than the canvas is fitted (the reference fails on it). Like the
    reference, nothing is padded when the left and top padding are both zero.
    """
    src_h, src_w = rgb.shape[:2]
    trg_w, trg_h = canvas_wh
    new_h, new_w = src_h, src_w
    if src_h > trg_h and src_w > trg_w:
        if src_h >= src_w:
            new_h, new_w = trg_h, max(1, int(trg_h * src_w / src_h))
            if new_w > trg_w:
                new_w, new_h = trg_w, max(1, int(trg_w * src_h / src_w))
        else:
            new_w, new_h = trg_w, max(1, int(trg_w * src_h / src_w))
            if new_h > trg_h:
                new_h, new_w = trg_h, max(1, int(trg_h * src_w / src_h))
    elif src_h > trg_h:
        new_h, new_w = trg_h, max(1, int(trg_h * src_w / src_h))
    elif src_w > trg_w:
        new_w, new_h = trg_w, max(1, int(trg_w * src_h / src_w))
    image = rgb if (new_h, new_w) == (src_h, src_w) else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    left, top = (trg_w - new_w) // 2, (trg_h - new_h) // 2
    if left or top:
        image = cv2.copyMakeBorder(image, top, trg_h - new_h - top, left, trg_w - new_w - left,
                                   cv2.BORDER_CONSTANT, value=(CANVAS_FILL,) * 3)
    return image, (left, top, left + new_w, top + new_h)


def short_side_size(height: int, width: int, short_side: int, max_long_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """ModelScope's _get_preprocess_shape: (h, w) with the short side scaled to `short_side`,
    the long side capped at `max_long_side`, both rounded half up (at least 1 pixel)."""
    scale = short_side / min(height, width)
    new_h, new_w = (short_side, scale * width) if height < width else (scale * height, short_side)
    if max(new_h, new_w) > max_long_side:
        cap = max_long_side / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return max(1, int(new_h + 0.5)), max(1, int(new_w + 0.5))


# --- post-processing ---------------------------------------------------------------------------

def semantic_inference(pred_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Q x (C + 1) class logits, Q x H x W mask logits -> C x H x W: sum over queries of
    p(class) * sigmoid(mask), the no-object class dropped (not normalised)."""
    probs = pred_logits.softmax(-1)[:, :-1]
    return torch.einsum("qc,qhw->chw", probs, mask_logits.sigmoid())


@dataclass
class InstanceParsing:
    """Multi-person output. Instances refer to queries of `mask_logits` (Q x H x W).

    semantic_probs: P x H x W pasted part probabilities (P = number of parsing classes).
    part_* / human_*: (N,) label, score and query index of each kept instance.
    """

    semantic_probs: torch.Tensor
    part_labels: torch.Tensor
    part_scores: torch.Tensor
    part_queries: torch.Tensor
    human_scores: torch.Tensor
    human_queries: torch.Tensor
    mask_logits: torch.Tensor


def instance_parsing(pred_logits: torch.Tensor, mask_logits: torch.Tensor, *, num_parsing: int,
                     paste_threshold: float, top_k: int = 100) -> InstanceParsing:
    """ModelScope's M2FP.instance_parsing_inference for one image.

    pred_logits: Q x (P + 2) (P parts incl. background, Human = P, no-object); mask_logits:
    Q x H x W at the image size. The top_k (query, class) pairs by class probability become
    instances scored by class probability x mean sigmoid over the mask's positive pixels.
    Background and part instances scoring >= paste_threshold are pasted into per-class maps
    (lowest score first, averaged where several land); part instances need score >= 0.1 and
    human instances score > 0.1.
    """
    num_classes = pred_logits.shape[1] - 1
    scores = pred_logits.softmax(-1)[:, :-1]
    top_scores, top_index = scores.flatten().topk(top_k, sorted=False)
    labels = top_index % num_classes
    queries = top_index // num_classes

    positive = (mask_logits > 0).flatten(1).float()
    mask_quality = (mask_logits.sigmoid().flatten(1) * positive).sum(1) / (positive.sum(1) + 1e-6)
    instance_scores = top_scores * mask_quality[queries]

    height, width = mask_logits.shape[-2:]
    semantic = mask_logits.new_zeros((num_parsing, height, width))
    for label in range(num_parsing):
        chosen = torch.where(labels == label)[0]
        chosen = chosen[instance_scores[chosen].argsort()]
        total = mask_logits.new_zeros((height, width))
        times = mask_logits.new_zeros((height, width))
        for i in chosen.tolist():
            if instance_scores[i] < paste_threshold:
                continue
            probs = mask_logits[queries[i]].sigmoid() * instance_scores[i]
            pasted = probs > 0.5
            total = torch.where(pasted, probs + total, total)
            times += pasted
        semantic[label] = total / torch.where(times == 0, torch.ones_like(times), times)

    is_part = (labels != num_parsing) & (labels != 0) & (instance_scores >= 0.1)
    is_human = (labels == num_parsing) & (instance_scores > 0.1)
    return InstanceParsing(
        semantic_probs=semantic,
        part_labels=labels[is_part], part_scores=instance_scores[is_part], part_queries=queries[is_part],
        human_scores=instance_scores[is_human], human_queries=queries[is_human],
        mask_logits=mask_logits,
    )


# --- parser ------------------------------------------------------------------------------------

class M2FPParser(Mask2FormerParser):
    """numpy API over M2FPNet: RGB frames in, ParseResults (with `people` for CIHP) out.

    `internal_size`: single-person models always use the 384 x 512 canvas (the frame's long
    side is at most 512 there); multi-person models scale the frame's short side to it (long
    side capped at 1333), as ModelScope's pipeline does. `amp_dtype` (float16 / bfloat16 on
    CUDA, bfloat16 on CPUs with AMX) runs the backbone and decoder under autocast; the pixel
    decoder stays float32.

    `fast=False` follows the reference step by step. `fast=True` (the default) runs
    `M2FPNet.optimise_for_inference` and channels_last, and single-person models resize the
    query masks only over the frame's box on the canvas (the reference resizes all of the
    canvas, then crops). Its labels match the reference path except where two classes are
    within rounding of a tie (`bench-model` measures both).
    """

    internal_size_range = (32, 2048)

    def __init__(self, net: M2FPNet, spec: ModelSpec, device: torch.device, *, internal_size: int | None = None,
                 amp_dtype: torch.dtype | None = None, paste_threshold: float = 0.3, fast: bool = True,
                 max_people: int | None = None) -> None:
        super().__init__(net, spec, device, internal_size=internal_size, amp_dtype=amp_dtype, fast=fast,
                         max_people=max_people)
        self.paste_threshold = paste_threshold

    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> B x 3 x H x W normalised network input with its Geometry."""
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        if self.spec.multi_person:
            new_h, new_w = short_side_size(height, width, self.internal_size)
            interpolation = cv2.INTER_AREA if new_h < height else cv2.INTER_LINEAR
            images = [rgb if (new_h, new_w) == (height, width) else cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
                      for rgb in rgbs]
            crop_box = None
        else:
            placed = [center_on_canvas(rgb) for rgb in rgbs]
            images, crop_box = [canvas for canvas, _ in placed], placed[0][1]
        geometry = Geometry((height, width), tuple(images[0].shape[:2]), crop_box)
        return Prepared(self.network_batch(images), geometry)

    def postprocess(self, outputs: dict[str, torch.Tensor], prepared: Prepared) -> list[ParseResult]:
        padded_hw, geometry = tuple(prepared.batch.shape[-2:]), prepared.geometry
        with torch.inference_mode():
            if self.spec.multi_person:
                return [self._people(logits, masks, padded_hw, geometry)
                        for logits, masks in zip(outputs["pred_logits"], outputs["pred_masks"])]
            return [self._single(logits, masks, padded_hw, geometry)
                    for logits, masks in zip(outputs["pred_logits"], outputs["pred_masks"])]


    def single_person_semantics(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor,
                                padded_hw: tuple[int, int], geometry: Geometry) -> torch.Tensor:
        """One image's C x H x W class map at frame size (ModelScope's sem_seg). The Q query masks
        are needed at input size: the sigmoid does not commute with resizing."""
        x0, y0, x1, y1 = geometry.crop_box
        if self.fast:
            semantic = semantic_inference(pred_logits, resized_window(pred_masks, padded_hw, geometry.crop_box))
        else:
            image_h, image_w = geometry.image_hw
            semantic = semantic_inference(pred_logits, resize_maps(pred_masks, padded_hw))[:, :image_h, :image_w][:, y0:y1, x0:x1]
        return resize_maps(semantic, geometry.frame_hw)

    def _single(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded_hw: tuple[int, int],
                geometry: Geometry) -> ParseResult:
        semantic = self.single_person_semantics(pred_logits, pred_masks, padded_hw, geometry)
        labels = semantic.argmax(0).to(torch.uint8).cpu().numpy()
        return ParseResult(labels=labels, person_mask=labels > 0, label_names=self.label_names,
                           palette=self.palette, part_probs=None)

    def _people(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded_hw: tuple[int, int],
                geometry: Geometry) -> ParseResult:
        image_h, image_w = geometry.image_hw
        mask_logits = resize_maps(pred_masks, padded_hw)[:, :image_h, :image_w]
        parsing = instance_parsing(pred_logits, mask_logits, num_parsing=len(self.label_names),
                                   paste_threshold=self.paste_threshold)
        labels = resize_maps(parsing.semantic_probs, geometry.frame_hw).argmax(0).to(torch.uint8).cpu().numpy()
        order = parsing.human_scores.argsort(descending=True)[:self.max_people]
        human_masks = resize_maps(mask_logits[parsing.human_queries[order]], geometry.frame_hw) > 0
        people = [
            PersonParse(id=i, mask=mask.cpu().numpy(), keypoints=None, score=float(score))
            for i, (mask, score) in enumerate(zip(human_masks, parsing.human_scores[order]))
        ]
        return ParseResult(labels=labels, person_mask=labels > 0, label_names=self.label_names,
                           palette=self.palette, part_probs=None, people=people)


def resized_window(maps: torch.Tensor, size_hw: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor:
    """`resize_maps(maps, size_hw)[:, y0:y1, x0:x1]` for box (x0, y0, x1, y1), resizing only the
    source window it reads. When size_hw is a whole multiple of the maps' size, the source
    pixels and weights are those of the full resize, so the values are the same."""
    x0, y0, x1, y1 = box
    (height, width), (out_h, out_w) = maps.shape[-2:], size_hw
    if out_h % height or out_w % width:
        return resize_maps(maps, size_hw)[:, y0:y1, x0:x1]
    step_y, step_x = out_h // height, out_w // width
    # one source pixel of margin on each side keeps the edge clamping outside the box
    top, bottom = max(y0 // step_y - 1, 0), min(-(-y1 // step_y) + 1, height)
    left, right = max(x0 // step_x - 1, 0), min(-(-x1 // step_x) + 1, width)
    window = resize_maps(maps[:, top:bottom, left:right], ((bottom - top) * step_y, (right - left) * step_x))
    return window[:, y0 - top * step_y:y1 - top * step_y, x0 - left * step_x:x1 - left * step_x]

