"""BodyPix 2 (MobileNetV1) in plain PyTorch, with weights read from the published ONNX graph.

Network input: B x 3 x H x W float RGB in [0, 255]; the model normalises to [-1, 1] itself.
Valid input sides are `k * output_stride + 1`: the output grid is then k + 1 cells whose
centres fall exactly on input pixels 0, s, 2s, ... (TensorFlow 'SAME' padding).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.imaging import sigmoid, softmax
from realtime.models.backends import BACKEND_CHOICES, GraphCache
from realtime.models.bodypix_multipose import (
    MultiPoseSettings,
    Pose,
    decode_multiple_poses,
    give_owned_cells,
    instance_distances,
    long_offset_votes,
    skeleton_distances,
    with_voted_poses,
)
from realtime.models.checkpoint import load_into, load_onnx
from realtime.models.common import Parser, Prepared, check_frames, nchw_float
from realtime.models.grid_upsample import GridUpsampler, person_part_labels
from realtime.models.pixel_norm import PixelNorm
from realtime.models.registry import ModelSpec
from realtime.types import ParseResult, PersonParse

if TYPE_CHECKING:
    import onnx

# (out_channels, stride) of MobileNetV1 x0.50 as BodyPix uses it: a stem, then 13 blocks.
_STEM = (16, 2)
_BLOCKS = (
    (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2),
    (256, 1), (256, 1), (256, 1), (256, 1), (256, 1), (256, 1), (256, 1),
)
HEAD_CHANNELS = {
    "segments": 1,
    "part_heatmaps": 24,
    "heatmaps": 17,
    "short_offsets": 34,
    "long_offsets": 34,
    "part_offsets": 48,
    "displacement_fwd": 32,
    "displacement_bwd": 32,
}
SINGLE_PERSON_HEADS = ("segments", "part_heatmaps", "heatmaps", "short_offsets")
MULTI_PERSON_HEADS = (*SINGLE_PERSON_HEADS, "long_offsets", "displacement_fwd", "displacement_bwd")
_POSE_HEADS = ("heatmaps", "short_offsets", "long_offsets", "displacement_fwd", "displacement_bwd")


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: any odd extra row/column goes bottom/right.

    On odd-sized inputs (the valid k * stride + 1 sizes) SAME padding is symmetric, so the
    convolution pads by itself; only other sizes pay for an explicit pad.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
                         groups=groups, padding=dilation * (kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1 or (x.shape[-1] % 2 and x.shape[-2] % 2):
            return super().forward(x)
        padded = F.pad(x, _same_padding(x.shape[-2:], self.kernel_size[0], self.stride[0], self.dilation[0]))
        return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _same_padding(size_hw: tuple[int, int], kernel: int, stride: int, dilation: int) -> tuple[int, int, int, int]:
    span = dilation * (kernel - 1) + 1
    pads = []
    for size in reversed(tuple(size_hw)):  # F.pad wants (left, right, top, bottom)
        total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class MobileNetV1(nn.Module):
    """Depthwise-separable stack; past `output_stride`, strides turn into dilation."""

    def __init__(self, *, output_stride: int) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        stem_channels, stem_stride = _STEM
        self.stem = SameConv2d(3, stem_channels, kernel_size=3, stride=stem_stride)
        current_stride, rate = stem_stride, 1
        blocks, in_channels = [], stem_channels
        for out_channels, stride in _BLOCKS:
            if current_stride == output_stride:
                layer_stride, layer_rate = 1, rate
                rate *= stride
            else:
                layer_stride, layer_rate = stride, 1
                current_stride *= stride
            blocks.append(SeparableBlock(in_channels, out_channels, stride=layer_stride, dilation=layer_rate))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.relu6(self.stem(x)))


class SeparableBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, *, stride: int, dilation: int) -> None:
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, kernel_size=3, stride=stride,
                                    dilation=dilation, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.pointwise(F.relu6(self.depthwise(x))))


class BodyPixNet(nn.Module):
    """MobileNetV1 backbone plus BodyPix's 1x1 output heads.

    forward(B x 3 x H x W RGB in [0, 255]) -> {head name: B x C x h x w logits}, for the
    heads asked for (all by default); `pixel_norm` maps that input to the backbone's.
    """

    def __init__(self, *, output_stride: int, pixel_norm: PixelNorm) -> None:
        super().__init__()
        self.output_stride = output_stride
        self.backbone = MobileNetV1(output_stride=output_stride)
        self.heads = nn.ModuleDict(
            {name: nn.Conv2d(self.backbone.out_channels, channels, kernel_size=1)
             for name, channels in HEAD_CHANNELS.items()}
        )
        self.pixel_norm = pixel_norm

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W RGB in [0, 255] -> B x 256 x h x w backbone features."""
        return self.backbone(self.pixel_norm(images))

    def forward(self, images: torch.Tensor, heads: tuple[str, ...] = tuple(HEAD_CHANNELS)) -> dict[str, torch.Tensor]:
        features = self.features(images)
        out = {name: self.heads[name](features) for name in heads}
        if "part_offsets" in out:
            out["part_offsets"] = out["part_offsets"].clamp(0.0, 1.0)  # as the published graph does
        return out


def state_dict_from_onnx(path: str | Path, net: BodyPixNet) -> dict[str, torch.Tensor]:
    """Read the conv initializers of a BodyPix ONNX graph into `net`'s parameter names.

    Backbone convs are taken in graph order; each head is named by the graph output it feeds.
    Every conv's stride and dilation is checked against `net`'s architecture.
    """
    from onnx import helper, numpy_helper

    graph = load_onnx(path).graph
    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def head_output(conv: onnx.NodeProto) -> str | None:
        frontier = list(conv.output)
        while frontier:
            name = frontier.pop()
            if name in outputs:
                return name
            frontier += [o for n in consumers.get(name, []) if n.op_type != "Conv" for o in n.output]
        return None

    backbone_convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
    backbone_names = [n for n, m in net.backbone.named_modules() if isinstance(m, nn.Conv2d)]
    state: dict[str, torch.Tensor] = {}
    backbone_index = 0
    for node in (n for n in graph.node if n.op_type == "Conv"):
        weight = numpy_helper.to_array(initializers[node.input[1]])
        bias = numpy_helper.to_array(initializers[node.input[2]])
        head = head_output(node)
        if head is not None:
            prefix = f"heads.{head}"
        else:
            if backbone_index >= len(backbone_convs):
                raise ValueError(f"{path}: more backbone convolutions than MobileNetV1 x0.50 has")
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            conv = backbone_convs[backbone_index]
            if (tuple(attrs.get("strides", (1, 1))) != conv.stride
                    or tuple(attrs.get("dilations", (1, 1))) != conv.dilation):
                raise ValueError(
                    f"{path} is not a BodyPix graph of output stride {net.output_stride} "
                    f"(layer {backbone_index}: strides {attrs.get('strides')}, dilations {attrs.get('dilations')})"
                )
            prefix = f"backbone.{backbone_names[backbone_index]}"
            backbone_index += 1
        state[f"{prefix}.weight"] = torch.from_numpy(weight.copy())
        state[f"{prefix}.bias"] = torch.from_numpy(bias.copy())
    return state


def load_bodypix_net(path: str | Path, spec: ModelSpec) -> BodyPixNet:
    """The BodyPix graph at `path` as a BodyPixNet of `spec`'s output stride and input
    normalisation, in eval mode; ValueError for a graph of another stride, WeightsError for
    one that does not fit."""
    net = BodyPixNet(output_stride=spec.output_stride, pixel_norm=PixelNorm.from_spec(spec))
    load_into(net, state_dict_from_onnx(path, net), source=str(path))
    return net.eval()


class _HeadTuple(nn.Module):
    """BodyPixNet with its chosen 1x1 heads fused into one convolution, returning a tuple (as
    tracing needs)."""

    def __init__(self, net: BodyPixNet, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.net = net
        convs = [net.heads[name] for name in heads]
        self.fused = nn.Conv2d(net.backbone.out_channels, sum(c.out_channels for c in convs), kernel_size=1)
        with torch.no_grad():
            self.fused.weight.copy_(torch.cat([c.weight for c in convs]))
            self.fused.bias.copy_(torch.cat([c.bias for c in convs]))
        self.split = [c.out_channels for c in convs]
        self.part_offsets_index = heads.index("part_offsets") if "part_offsets" in heads else -1

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.net.features(images)
        outputs = list(torch.split(self.fused(features), self.split, dim=1))
        if self.part_offsets_index >= 0:
            outputs[self.part_offsets_index] = outputs[self.part_offsets_index].clamp(0.0, 1.0)
        return tuple(outputs)


def valid_input_size(frame_wh: tuple[int, int], long_side: int, stride: int) -> tuple[int, int]:
    """Network input (w, h): the frame scaled so its long side is about `long_side`, each side
    snapped to k * stride + 1."""
    width, height = frame_wh
    scale = long_side / max(width, height)

    def snap(side: float) -> int:
        return max(1, round((side - 1) / stride)) * stride + 1

    return snap(width * scale), snap(height * scale)


class BodyPixParser(Parser):
    """numpy API over BodyPixNet: RGB frames in, ParseResults out, at the frame's size.

    `max_people` 1 decodes one pose (the strongest cell per keypoint) for the whole person
    mask. Above 1 the parser also runs the long-offset and displacement heads and decodes up
    to that many people (realtime.models.bodypix_multipose): `people` then holds each
    person's mask, keypoints and score, strongest first, and `keypoints` the strongest one's.
    """

    internal_size_range = (33, 4096)

    def __init__(self, net: BodyPixNet, spec: ModelSpec, device: torch.device, *,
                 internal_size: int | None = None, person_threshold: float = 0.5, max_people: int = 1,
                 multi_pose: MultiPoseSettings = MultiPoseSettings(), backend: str = "auto",
                 dtype: str = "fp32") -> None:
        if backend not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend '{backend}'; choose from {', '.join(BACKEND_CHOICES)}")
        if device.type != "cpu" and backend not in ("auto", "torch"):
            raise ValueError(f"the {backend} backend runs on the CPU; use --device cpu or --backend torch")
        self.net = net.to(device)
        self.spec = spec
        self.device = device
        self.internal_size = internal_size or spec.internal_size
        self.person_threshold = person_threshold
        self.max_people = max_people
        self.multi_pose = multi_pose
        self.backend_choice = backend
        self.dtype = dtype
        self._graphs: dict[tuple[str, ...], GraphCache] = {}  # one per head set
        self._backend: str | None = None
        self._upsampler = GridUpsampler()

    @property
    def max_people(self) -> int:
        return self._max_people

    @max_people.setter
    def max_people(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"max people must be at least 1, not {count}")
        self._max_people = int(count)

    @property
    def heads(self) -> tuple[str, ...]:
        """The heads `infer` computes by default: the multi-person ones only when needed."""
        return MULTI_PERSON_HEADS if self.max_people > 1 else SINGLE_PERSON_HEADS

    def input_size(self, frame_wh: tuple[int, int]) -> tuple[int, int]:
        return valid_input_size(frame_wh, self.internal_size, self.net.output_stride)

    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> B x 3 x h x w float RGB batch on the device; geometry = frame (h, w)."""
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        in_w, in_h = self.input_size((width, height))
        interpolation = cv2.INTER_AREA if in_w < width / 2 else cv2.INTER_LINEAR
        resized = np.stack([cv2.resize(rgb, (in_w, in_h), interpolation=interpolation) for rgb in rgbs])
        batch = nchw_float(resized, self.device)
        memory_format = torch.contiguous_format if self.device.type == "cpu" else torch.channels_last
        return Prepared(batch.contiguous(memory_format=memory_format), (height, width))

    @property
    def backend(self) -> str:
        """The backend the last forward ran on ("torch", "onnxruntime", "openvino"); before the
        first one, the backend asked for (possibly "auto")."""
        return self._backend or self.backend_choice

    def infer(self, batch: torch.Tensor, heads: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        """{head: B x C x h x w logits} for `heads` (default `self.heads`), on the parser's
        backend: one graph per head set and input shape, built at its first use (for "auto"
        after a calibration, realtime.models.backends) and kept."""
        heads = heads or self.heads
        graphs = self._graphs.get(heads)
        if graphs is None:
            head_set = {SINGLE_PERSON_HEADS: "single", MULTI_PERSON_HEADS: "multi"}.get(heads, "+".join(heads))
            graphs = self._graphs[heads] = GraphCache(self.head_set_module(heads), backend=self.backend_choice,
                                                      model=f"{self.spec.name}:{head_set}", dtype=self.dtype)
        outputs = graphs(batch)
        self._backend = graphs.backend
        return dict(zip(heads, outputs))

    @property
    def graphs_built(self) -> int:
        """Graphs built so far (one per head set and input shape)."""
        return sum(graphs.built for graphs in self._graphs.values())

    def head_set_module(self, heads: tuple[str, ...]) -> nn.Module:
        """The network with `heads` fused into one 1x1 convolution, returning their logits as a
        tuple in `heads` order: what every backend runs."""
        return _HeadTuple(self.net, heads).eval()

    def postprocess(self, outputs: dict[str, torch.Tensor], prepared: Prepared) -> list[ParseResult]:
        """Grid logits -> frame-size label maps (argmax of the bilinearly upsampled part logits,
        inside the person mask), person masks, keypoints and people, one per batch item."""
        input_hw, frame_hw = tuple(prepared.batch.shape[-2:]), prepared.geometry
        multi = self.max_people > 1 and all(name in outputs for name in MULTI_PERSON_HEADS)
        with torch.inference_mode():
            keypoints = None if multi else decode_single_pose(outputs["heatmaps"], outputs["short_offsets"],
                                                              self.net.output_stride, input_hw, frame_hw).cpu().numpy()
            person_logits = outputs["segments"][:, 0].float().cpu().numpy()
            part_logits = outputs["part_heatmaps"].float().cpu().numpy()
            pose_grids = {name: outputs[name].float().cpu().numpy() for name in _POSE_HEADS} if multi else {}
        results = []
        for i in range(len(part_logits)):
            labels, person = person_part_labels(self._upsampler, person_logits[i], part_logits[i], frame_hw,
                                                logit(self.person_threshold))
            if multi:
                grids = {name: grid[i] for name, grid in pose_grids.items()}
                people = self._people(grids, person, person_logits[i] > logit(self.person_threshold),
                                      input_hw, frame_hw)
            else:
                people = [PersonParse(0, person, keypoints[i], float(keypoints[i][:, 2].mean()))] if person.any() else []
            results.append(ParseResult(
                labels=labels,
                person_mask=person,
                label_names=self.label_names,
                palette=self.palette,
                part_probs=_grid_probabilities(person_logits[i], part_logits[i]),
                people=people,
            ))
        return results

    def _people(self, grids: dict[str, np.ndarray], person: np.ndarray, person_cells: np.ndarray,
                input_hw: tuple[int, int], frame_hw: tuple[int, int]) -> list[PersonParse]:
        """Multi-pose decoding on one image's grids, plus poses voted by person cells that no
        decoded pose explains; each person pixel goes to the pose its long offsets point at
        (distances bilinear between cells). Only cells next to a person cell (`person_cells`,
        grid bool) can touch a person pixel, so only they are followed, once for both uses."""
        stride = self.net.output_stride
        scores = sigmoid(grids["heatmaps"])
        poses = decode_multiple_poses(scores, grids["short_offsets"], grids["displacement_fwd"],
                                      grids["displacement_bwd"], stride=stride, max_poses=self.max_people,
                                      settings=self.multi_pose)
        near_person = cv2.dilate(person_cells.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
        votes = long_offset_votes(grids["long_offsets"], near_person, stride=stride,
                                  refine_steps=self.multi_pose.refine_steps)
        on_person = person_cells[near_person]
        poses = with_voted_poses((votes[0][:, on_person], votes[1][:, on_person]), scores, poses, stride=stride,
                                 cells=person_cells, max_poses=self.max_people,
                                 short_offsets=grids["short_offsets"], settings=self.multi_pose)
        if len(poses) > 1:
            distances = instance_distances(votes, poses, cells=near_person, settings=self.multi_pose)
            distances += self.multi_pose.skeleton_weight * skeleton_distances(
                poses, person_cells.shape, stride=stride, settings=self.multi_pose) ** 2
            give_owned_cells(distances, poses)
            # the nearest pose at each person pixel: argmin of the bilinearly upsampled distances
            owner = self._upsampler.argmax(-distances, frame_hw, person)
            masks = [person & (owner == i) for i in range(len(poses))]
        else:
            masks = [person] * len(poses)
        scale = np.array([frame_hw[1] / input_hw[1], frame_hw[0] / input_hw[0]], np.float32)
        people = []
        for pose, mask in zip(poses, masks):
            if not _fills_its_pose(mask, pose, input_hw, frame_hw, self.multi_pose):
                continue
            keypoints = pose.keypoints.copy()
            keypoints[:, :2] = (keypoints[:, :2] + 0.5) * scale - 0.5
            people.append(PersonParse(len(people), mask, keypoints, pose.score))
        return people


def decode_single_pose(heatmaps: torch.Tensor, short_offsets: torch.Tensor, stride: int,
                       input_hw: tuple[int, int], frame_hw: tuple[int, int]) -> torch.Tensor:
    """Per keypoint: the strongest heatmap cell plus its short offset -> B x K x 3 (x, y, score)
    in frame pixels. Offsets hold K y-values, then K x-values."""
    batch, num_keypoints, grid_h, grid_w = heatmaps.shape
    flat = heatmaps.flatten(2)
    best_logit, best = flat.max(dim=2)
    cell_y = torch.div(best, grid_w, rounding_mode="floor")
    cell_x = best % grid_w
    offsets = short_offsets.flatten(2).gather(2, torch.cat([best, best], dim=1).unsqueeze(2)).squeeze(2)
    in_y = cell_y * stride + offsets[:, :num_keypoints]
    in_x = cell_x * stride + offsets[:, num_keypoints:]
    scale_y = frame_hw[0] / input_hw[0]
    scale_x = frame_hw[1] / input_hw[1]
    x = (in_x + 0.5) * scale_x - 0.5
    y = (in_y + 0.5) * scale_y - 0.5
    return torch.stack([x, y, torch.sigmoid(best_logit)], dim=2).float()


def _fills_its_pose(mask: np.ndarray, pose: Pose, input_hw: tuple[int, int], frame_hw: tuple[int, int],
                    settings: MultiPoseSettings) -> bool:
    """Whether the pixels a pose won cover at least `settings.min_mask_fill` of the box around
    its confident keypoints: a pose that wins almost nothing is a second reading of someone
    else (or of nobody), not a person."""
    area = int(np.count_nonzero(mask))
    confident = pose.keypoints[pose.keypoints[:, 2] > settings.min_keypoint_score, :2]
    if len(confident) < 2:
        return area > 0
    width, height = confident.max(axis=0) - confident.min(axis=0)
    box_area = max(width, 1.0) * max(height, 1.0) * (frame_hw[0] / input_hw[0]) * (frame_hw[1] / input_hw[1])
    return area >= settings.min_mask_fill * box_area


def _grid_probabilities(person_logits: np.ndarray, part_logits: np.ndarray) -> np.ndarray:
    """(1 + P) x h x w: person probability, then part probabilities (softmax over parts)."""
    return np.concatenate([sigmoid(person_logits)[None], softmax(part_logits, axis=0)]).astype(np.float32)


def logit(probability: float) -> float:
    probability = min(max(probability, 1e-6), 1 - 1e-6)
    return math.log(probability / (1 - probability))
