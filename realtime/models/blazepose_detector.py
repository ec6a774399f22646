"""BlazePose's person detector in PyTorch: MediaPipe's pose_detection.tflite (224 x 224), its SSD
anchors, box/keypoint decoding and weighted non-maximum suppression.

Network (`BlazePoseDetectorNet`): input [B, 3, 224, 224] RGB scaled to [-1, 1]; outputs raw box
regressors [B, 2254, 12] (x_centre, y_centre, w, h, then 4 keypoints (x, y), all in 224-pixel
units relative to the anchor) and raw score logits [B, 2254]. The 2254 anchors are 28x28 x 2
(stride 8), 14x14 x 2 (stride 16) and 7x7 x 6 (three stride-32 layers merged). The body is a
MobileNetV2-style backbone with a small feature pyramid, written out below from the file's graph
(ops: CONV_2D, DEPTHWISE_CONV_2D, PAD, ADD, DEPTH_TO_SPACE, RESIZE_BILINEAR, RESHAPE,
CONCATENATION; 73 convolutions, weights float16 and partly sparse in the file, read by
`realtime.models.tflite_graph` and loaded in the graph's convolution order).

Keypoints: 0 hip centre, 1 a point whose distance to the hip centre gives the body's size
(full-body circle), 2 shoulder centre, 3 a point giving the upper body's size.

Source: V. Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", CVPR
Workshops 2020; MediaPipe mediapipe/modules/pose_detection/pose_detection_cpu.pbtxt
(SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator options) and
mediapipe/calculators/tflite/ssd_anchors_calculator.cc, tensors_to_detections_calculator.cc,
mediapipe/calculators/util/non_max_suppression_calculator.cc (WEIGHTED).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime import weights as weights_cache
from realtime.imaging import to_nchw_float
from realtime.models.backends import GraphCache
from realtime.models.registry import NetworkSpec, get_network_spec
from realtime.models.mobile_blocks import (
    InvertedResidual,
    Lateral,
    ResidualDW,
    conv,
    depthwise,
    inverted,
    load_in_graph_order,
    pairs,
    up2,
)

INPUT_SIZE = 224
NUM_KEYPOINTS = 4
MIN_SCORE = 0.5
MIN_SUPPRESSION_IOU = 0.3
SCORE_CLIP = 100.0


def ssd_anchors(*, size: int = INPUT_SIZE, strides=(8, 16, 32, 32, 32), offset: float = 0.5) -> np.ndarray:
    """MediaPipe SsdAnchorsCalculator with aspect_ratios [1.0], interpolated_scale_aspect_ratio 1
    and fixed_anchor_size: two anchors per layer and cell, layers of equal stride merged per cell.
    Returns [N, 2] centres (x, y) normalised to [0, 1]; every anchor's width and height are 1."""
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        cells = int(np.ceil(size / strides[layer]))
        ys, xs = np.meshgrid((np.arange(cells) + offset) / cells, (np.arange(cells) + offset) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def depth_to_space(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """TensorFlow's DEPTH_TO_SPACE (DCR order) on NCHW: out[c, h*b+i, w*b+j] = in[(i*b+j)*C + c, h, w]."""
    n, c, h, w = x.shape
    x = x.reshape(n, block, block, c // (block * block), h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, c // (block * block), h * block, w * block)


class SsdHead(nn.Module):
    """Scores and regressors of one anchor grid: each a 3x3 stride-2 depthwise (linear, symmetric
    pad 1) + 1x1 conv; NCHW [B, A, H, W] / [B, 12A, H, W] laid out as TFLite's NHWC RESHAPE does:
    [B, H*W*A] logits and [B, H*W*A, 12] regressors."""

    def __init__(self, c: int, anchors: int) -> None:
        super().__init__()
        self.score_depthwise, self.score = depthwise(c, 3, 2), conv(c, anchors)
        self.box_depthwise, self.box = depthwise(c, 3, 2), conv(c, 12 * anchors)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        scores = self.score(self.score_depthwise(x)).permute(0, 2, 3, 1).reshape(n, -1)
        boxes = self.box(self.box_depthwise(x)).permute(0, 2, 3, 1).reshape(n, -1, 12)
        return scores, boxes


class BlazePoseDetectorNet(nn.Module):
    """forward(x: [B, 3, 224, 224] in [-1, 1]) -> (boxes [B, 2254, 12], score logits [B, 2254]).

    Encoder: MobileNetV2-style inverted residuals 224 -> 7 (channels 16, 24, 40, 80/112, 192),
    ending in a 1152-channel expansion; a top-down pathway (x2 bilinear, 1x1 conv + relu6, plus a
    lateral skip, then two residual depthwise blocks) gives 192 channels at 14 x 14 and 96 at
    28 x 28; each of the three maps (7, 14, 28) is rearranged to twice its size by
    DEPTH_TO_SPACE and read by an SSD head at its stride (8, 16, 32) with 2, 2 and 6 anchors."""

    def __init__(self) -> None:
        super().__init__()
        ir = InvertedResidual
        self.stem = nn.ModuleDict({"conv": conv(3, 24, 3, 2), "depthwise": depthwise(24), "project": conv(24, 16)})
        self.stage56 = nn.Sequential(ir(16, 24, 64, 3, 2), ir(24, 24, 144, 3))
        self.stage28 = nn.Sequential(ir(24, 40, 144, 5, 2), ir(40, 40, 240, 5))
        self.stage14 = nn.Sequential(ir(40, 80, 240, 3, 2), ir(80, 80, 480, 3), ir(80, 80, 480, 3),
                                     ir(80, 112, 480, 5), ir(112, 112, 672, 5), ir(112, 112, 672, 5))
        self.stage7 = nn.Sequential(ir(112, 192, 672, 5, 2), ir(192, 192, 1152, 5), ir(192, 192, 1152, 5),
                                    ir(192, 192, 1152, 5))
        self.tail = nn.ModuleDict({"expand": conv(192, 1152), "depthwise": depthwise(1152)})
        self.lateral28 = Lateral(40, 96, depthwise_relu=False)
        self.lateral14 = Lateral(112, 192, depthwise_relu=False)
        self.top14, self.top28 = conv(1152, 192), conv(192, 96)
        self.refine14 = nn.Sequential(ResidualDW(192, depthwise_relu=False), ResidualDW(192, depthwise_relu=False))
        self.refine28 = nn.Sequential(ResidualDW(96, depthwise_relu=False), ResidualDW(96, depthwise_relu=False))
        self.head8, self.head16, self.head32 = SsdHead(24, 2), SsdHead(48, 2), SsdHead(288, 6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        s = self.stem
        f112 = s["project"](F.relu6(s["depthwise"](F.relu6(s["conv"](x)))))  # [B, 16, 112, 112]
        f28 = self.stage28(self.stage56(f112))  # 40 ch
        f14 = self.stage14(f28)  # 112 ch
        f7 = F.relu6(self.tail["depthwise"](F.relu6(self.tail["expand"](self.stage7(f14)))))  # [B, 1152, 7, 7]
        d14 = self.refine14(self.lateral14(f14) + F.relu6(self.top14(up2(f7))))  # [B, 192, 14, 14]
        d28 = self.refine28(self.lateral28(f28) + F.relu6(self.top28(up2(d14))))  # [B, 96, 28, 28]
        heads = [self.head8(depth_to_space(d28)), self.head16(depth_to_space(d14)), self.head32(depth_to_space(f7))]
        scores = torch.cat([h[0] for h in heads], dim=1)
        boxes = torch.cat([h[1] for h in heads], dim=1)
        return boxes, scores

    def convolutions_in_file_order(self) -> list[nn.Conv2d]:
        """This network's convolutions in the order the file's graph runs them (weights order)."""
        order = [self.stem["conv"], self.stem["depthwise"], self.stem["project"]]
        order += [c for b in self.stage56 for c in inverted(b)] + [c for b in self.stage28 for c in inverted(b)]
        order += inverted(self.stage14[0], self.lateral28) + [c for b in self.stage14[1:] for c in inverted(b)]
        order += inverted(self.stage7[0], self.lateral14) + [c for b in self.stage7[1:] for c in inverted(b)]
        order += [self.tail["expand"], self.tail["depthwise"], self.top14, *pairs(self.refine14), self.top28,
                  *pairs(self.refine28)]
        for head in (self.head8, self.head16, self.head32):
            order += [head.score_depthwise, head.score, head.box_depthwise, head.box]
        return order


def load_blazepose_detector_net(path: str | Path | None = None, spec: NetworkSpec | None = None) -> BlazePoseDetectorNet:
    """BlazePoseDetectorNet with the file's weights, loaded in the graph's convolution order."""
    spec = spec or get_network_spec("blazepose-detector")
    net = BlazePoseDetectorNet()
    file = weights_cache.resolve(spec.weights, path, name=spec.name)
    return load_in_graph_order(net, net.convolutions_in_file_order(), file)


@dataclass(frozen=True)
class PoseDetection:
    """One person in frame pixels: box (x0, y0, x1, y1), score, keypoints [4, 2] (x, y)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray


def decode_boxes(raw: torch.Tensor, anchors: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TensorsToDetections (reverse_output_order, x/y/w/h scale = input size, unit anchors):
    raw [..., N, 12] -> [..., N, 12] as (x0, y0, x1, y1, kx0, ky0, ... kx3, ky3), normalised."""
    centre = raw[..., :2] / size + anchors
    half = raw[..., 2:4] / size / 2
    points = raw[..., 4:].unflatten(-1, (NUM_KEYPOINTS, 2)) / size + anchors.unsqueeze(-2)
    return torch.cat([centre - half, centre + half, points.flatten(-2)], dim=-1)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, *, min_score: float = MIN_SCORE,
                 iou_threshold: float = MIN_SUPPRESSION_IOU, max_detections: int | None = None) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-maximum suppression: take the best remaining detection, average
    the coordinates of every remaining one overlapping it by IoU > threshold (itself included),
    weighted by score; the cluster keeps the best score. boxes [N, 4 + 2K] (x0, y0, x1, y1, ...)."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= min_score]
    out = []
    while order.size and (max_detections is None or len(out) < max_detections):
        best = boxes[order[0]]
        iou = _iou(best[:4], boxes[order, :4])
        cluster = order[iou > iou_threshold]
        cluster = cluster if cluster.size else order[:1]
        weights = scores[cluster][:, None]
        out.append(((boxes[cluster] * weights).sum(axis=0) / weights.sum(), float(scores[order[0]])))
        order = order[iou <= iou_threshold]
    return out


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """The frame scaled to fit a size x size square (an area resize when shrinking: a bilinear one,
    ~20 times cheaper, moved BlazePose's keypoints on faults/cut_edge enough to read a cut knee
    as folded), centred, zero borders (MediaPipe's ImageToTensor with keep_aspect_ratio and
    BORDER_ZERO). Returns (image, scale, pad_x, pad_y): frame pixel =
    (square pixel - pad) / scale."""
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    square = np.zeros((size, size, 3), dtype=np.uint8)
    pad_x, pad_y = (size - nw) / 2, (size - nh) / 2
    x0, y0 = int(pad_x), int(pad_y)
    square[y0:y0 + nh, x0:x0 + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return square, nw / w, float(x0), float(y0)


class BlazePoseDetector:
    """Frames in, `PoseDetection`s out (frame pixels), batched over frames."""

    def __init__(self, net: BlazePoseDetectorNet | None = None, *, device: str | torch.device = "cpu",
                 min_score: float = MIN_SCORE, backend: str = "auto", dtype: str = "fp32") -> None:
        self.device = torch.device(device)
        self.net = (net if net is not None else load_blazepose_detector_net()).to(self.device)
        # on the CPU backend (realtime.models.backends), one graph per batch size
        self._graphs = GraphCache(self.net, backend=backend if self.device.type == "cpu" else "torch",
                                  model="blazepose-detector", dtype=dtype)
        self.anchors = torch.from_numpy(ssd_anchors()).to(self.device)
        self.min_score = min_score

    @torch.inference_mode()
    def __call__(self, rgbs: list[np.ndarray], max_people: int | None = None) -> list[list[PoseDetection]]:
        squares, frames = [], []
        for rgb in rgbs:
            square, scale, pad_x, pad_y = letterbox(rgb, INPUT_SIZE)
            squares.append(square)
            frames.append((scale, pad_x, pad_y))
        x = torch.from_numpy(to_nchw_float(np.stack(squares), 127.5, 1.0)).to(self.device)
        raw_boxes, logits = self._graphs(x)
        scores = torch.sigmoid(logits.clamp(-SCORE_CLIP, SCORE_CLIP)).cpu().numpy()
        decoded = decode_boxes(raw_boxes, self.anchors).cpu().numpy()
        results = []
        for boxes, score, (scale, pad_x, pad_y) in zip(decoded, scores, frames):
            people = []
            for coords, best in weighted_nms(boxes, score, min_score=self.min_score, max_detections=max_people):
                xy = (coords.reshape(-1, 2) * INPUT_SIZE - (pad_x, pad_y)) / scale
                people.append(PoseDetection(xy[:2].ravel(), best, xy[2:]))
            results.append(people)
        return results
