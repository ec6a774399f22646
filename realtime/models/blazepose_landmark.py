"""BlazePose GHUM 3D landmark network "full" in PyTorch (MediaPipe's pose_landmark_full.tflite),
the rotated region of interest (ROI) it reads, and the decoding of its outputs.

Network (`BlazePoseLandmarkNet`): input [B, 3, 256, 256] RGB in [0, 1], the ROI warped upright.
Outputs (`LandmarkOutputs`):
  landmarks [B, 39, 5]: x, y, z in 256-pixel ROI units, visibility and presence logits; 0..32 are
                        the 33 BlazePose landmarks, 33..38 auxiliary ones (33 hip centre, 34 a
                        point giving the body's size, used for the next frame's ROI);
  pose_flag [B]:        probability that a person is in the ROI (already a sigmoid);
  segmentation [B, 256, 256]: person logits over the ROI;
  heatmap [B, 39, 64, 64]: per-landmark heatmaps (MediaPipe refines landmarks with them);
  world [B, 39, 3]:     3-D landmarks in metres, origin at the hips, ROI-rotation-free.
`BlazePoseFullNet` writes the file's graph out as PyTorch modules (its ops: CONV_2D,
DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D, PAD, RESIZE_BILINEAR, RESHAPE, LOGISTIC; 96 convolutions);
the weights are read with `realtime.models.tflite_graph` (float16 dequantised) and loaded in the
graph's convolution order.

ROI: MediaPipe's AlignmentPointsRectsCalculator + RectTransformationCalculator: centre at the hip
centre keypoint, side 2 x |hip centre - size point| x 1.25 (square), rotated so the hip ->
shoulder direction points up (target angle 90 degrees).

Source: V. Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", 2020; the
BlazePose GHUM 3D model card; MediaPipe mediapipe/modules/pose_landmark/
pose_landmark_by_roi_cpu.pbtxt, pose_detection_to_roi.pbtxt, pose_landmarks_to_roi.pbtxt,
tensors_to_pose_landmarks_and_segmentation.pbtxt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime import weights as weights_cache
from realtime.imaging import sigmoid, to_nchw_float
from realtime.models.backends import GraphCache
from realtime.models.registry import NetworkSpec, get_network_spec
from realtime.models.mobile_blocks import (
    DownDW,
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

INPUT_SIZE = 256
NUM_LANDMARKS = 33
NUM_ALL_LANDMARKS = 39
ROI_SCALE = 1.25


@dataclass
class LandmarkOutputs:
    landmarks: torch.Tensor  # [B, 39, 5] x, y, z (ROI pixels), visibility logit, presence logit
    pose_flag: torch.Tensor  # [B]
    segmentation: torch.Tensor  # [B, 256, 256] logits
    heatmap: torch.Tensor  # [B, 39, 64, 64]
    world: torch.Tensor  # [B, 39, 3] metres


class BlazePoseLandmarkNet(nn.Module):
    """forward(x: [B, 3, 256, 256] in [0, 1]) -> LandmarkOutputs. `body` is BlazePoseFullNet
    (below), or any module with the file's five outputs (e.g. a TFLiteGraphNet of the file)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> LandmarkOutputs:
        return self.outputs(*self.body(x.contiguous(memory_format=torch.channels_last)))

    @staticmethod
    def outputs(landmarks: torch.Tensor, flag: torch.Tensor, segmentation: torch.Tensor, heatmap: torch.Tensor,
                world: torch.Tensor) -> LandmarkOutputs:
        """The body's five raw outputs (the file's order) as LandmarkOutputs."""
        return LandmarkOutputs(landmarks.unflatten(1, (NUM_ALL_LANDMARKS, 5)), flag[:, 0], segmentation[:, 0],
                               heatmap, world.unflatten(1, (NUM_ALL_LANDMARKS, 3)))


def load_blazepose_landmark_net(path: str | Path | None = None, spec: NetworkSpec | None = None, *,
                                segmentation: bool = True) -> BlazePoseLandmarkNet:
    """BlazePoseFullNet (without its segmentation branch unless `segmentation`) with the file's
    weights, loaded in the graph's convolution order."""
    spec = spec or get_network_spec("blazepose-full")
    body = BlazePoseFullNet(segmentation=segmentation)
    file = weights_cache.resolve(spec.weights, path, name=spec.name)
    load_in_graph_order(body, body.convolutions_in_file_order(), file)
    return BlazePoseLandmarkNet(body).eval()


class BlazePoseFullNet(nn.Module):
    """BlazePose GHUM "full": forward(x [B, 3, 256, 256] in [0, 1]) -> (landmarks [B, 195],
    pose flag [B, 1] (sigmoid), segmentation logits [B, 1, 256, 256], heatmaps [B, 39, 64, 64],
    world landmarks [B, 117]) — the file's outputs Identity..Identity_4, NCHW.

    Encoder: MobileNetV2-style inverted residuals 256 -> 8 (channels 16, 24, 32, 64, 88, 144);
    decoder: a top-down pathway at 48 channels (x2 bilinear + lateral skips) to 64 x 64, giving
    the heatmaps, and on to 256 x 256 at 8 channels for the segmentation; regression: from the
    8 x 8 features through 288-channel depthwise blocks down to 1 x 1 for the landmark, world and
    flag heads (2 x 2 VALID convolutions). With `segmentation` False the segmentation branch is
    not run and its output is [B, 1, 1, 1] zeros (the other outputs are the same)."""

    def __init__(self, *, segmentation: bool = True) -> None:
        super().__init__()
        self.segmentation = segmentation
        self.stem = nn.ModuleDict({"conv": conv(3, 24, 3, 2), "depthwise": depthwise(24), "project": conv(24, 16)})
        ir = InvertedResidual
        self.stage64 = nn.Sequential(ir(16, 24, 64, 3, 2), ir(24, 24, 144, 3))
        self.stage32 = nn.Sequential(ir(24, 32, 144, 5, 2), ir(32, 32, 192, 5))
        self.stage16 = nn.Sequential(ir(32, 64, 192, 3, 2), ir(64, 64, 384, 3), ir(64, 64, 384, 3),
                                     ir(64, 88, 384, 5), ir(88, 88, 528, 5), ir(88, 88, 528, 5))
        self.stage8 = nn.Sequential(ir(88, 144, 528, 5, 2), ir(144, 144, 864, 5), ir(144, 144, 864, 5),
                                    ir(144, 144, 864, 5))
        self.tail = nn.ModuleDict({"expand": conv(144, 864), "depthwise": depthwise(864)})
        self.lateral = nn.ModuleDict({"s128": Lateral(16, 8), "s64": Lateral(24, 48), "s32": Lateral(32, 48),
                                      "s16": Lateral(88, 48), "s8": Lateral(864, 48)})
        self.heatmap = conv(48, NUM_ALL_LANDMARKS)
        self.seg_in = Lateral(48, 8)
        self.seg128 = nn.Sequential(ResidualDW(8), ResidualDW(8))
        self.seg256 = nn.Sequential(ResidualDW(8), ResidualDW(8))
        self.seg_out = conv(8, 1, 3)
        self.reg_in = Lateral(864, 288)
        self.reg4 = nn.Sequential(DownDW(288), *(ResidualDW(288) for _ in range(4)))
        self.reg2 = nn.Sequential(DownDW(288), *(ResidualDW(288) for _ in range(5)))
        self.landmarks, self.world, self.flag = (conv(288, c, 2, padding=0) for c in (195, 117, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s = self.stem
        f128 = s["project"](F.relu6(s["depthwise"](F.relu6(s["conv"](x)))))  # [B, 16, 128, 128]
        f64 = self.stage64(f128)  # 24 ch
        f32 = self.stage32(f64)  # 32 ch
        f16 = self.stage16(f32)  # 88 ch
        f8 = F.relu6(self.tail["depthwise"](F.relu6(self.tail["expand"](self.stage8(f16)))))  # [B, 864, 8, 8]
        lat = self.lateral
        d = up2(lat["s8"](f8)) + lat["s16"](f16)
        d = up2(d) + lat["s32"](f32)
        d64 = up2(d) + lat["s64"](f64)  # [B, 48, 64, 64]
        if self.segmentation:
            seg = self.seg128(up2(self.seg_in(d64)) + lat["s128"](f128))
            segmentation = self.seg_out(self.seg256(up2(seg)))  # [B, 1, 256, 256]
        else:
            segmentation = d64.new_zeros((x.shape[0], 1, 1, 1))
        r = self.reg2(self.reg4(self.reg_in(f8)))  # [B, 288, 2, 2]
        return [self.landmarks(r).flatten(1), torch.sigmoid(self.flag(r)).flatten(1), segmentation,
                self.heatmap(d64), self.world(r).flatten(1)]

    def convolutions_in_file_order(self) -> list[nn.Conv2d]:
        """This network's convolutions in the order the file's graph runs its CONV_2D and
        DEPTHWISE_CONV_2D ops (the order their weights are loaded in)."""
        lat = self.lateral
        order = [self.stem["conv"], self.stem["depthwise"], self.stem["project"]]
        order += inverted(self.stage64[0], lat["s128"]) + inverted(self.stage64[1])
        order += inverted(self.stage32[0], lat["s64"]) + inverted(self.stage32[1])
        order += inverted(self.stage16[0], lat["s32"]) + [c for b in self.stage16[1:] for c in inverted(b)]
        order += inverted(self.stage8[0], lat["s16"]) + [c for b in self.stage8[1:] for c in inverted(b)]
        order += [self.tail["expand"], self.tail["depthwise"], lat["s8"].depthwise, lat["s8"].pointwise]
        order += [self.seg_in.depthwise, self.seg_in.pointwise] + pairs(self.seg128) + pairs(self.seg256)
        order += [self.seg_out, self.heatmap, self.reg_in.depthwise, self.reg_in.pointwise]
        order += pairs(self.reg4) + pairs(self.reg2) + [self.landmarks, self.world, self.flag]
        return order


@dataclass(frozen=True)
class Roi:
    """A square, rotated region of a frame: centre (x, y) and side in pixels, rotation in radians
    (positive turns the frame's content clockwise into the upright ROI, MediaPipe's convention)."""

    cx: float
    cy: float
    size: float
    rotation: float

    def to_roi_matrix(self, out: int = INPUT_SIZE) -> np.ndarray:
        """2 x 3 affine map frame pixel -> ROI pixel (0..out)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = out / self.size
        # ROI pixel = k * R(-rotation) (p - centre) + out / 2
        return np.array([[k * c, k * s, out / 2 - k * (c * self.cx + s * self.cy)],
                         [-k * s, k * c, out / 2 - k * (-s * self.cx + c * self.cy)]], dtype=np.float64)

    def to_frame(self, xy: np.ndarray, out: int = INPUT_SIZE) -> np.ndarray:
        """ROI pixels [..., 2] -> frame pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        d = (xy - out / 2) * (self.size / out)
        return np.stack([c * d[..., 0] - s * d[..., 1] + self.cx, s * d[..., 0] + c * d[..., 1] + self.cy], axis=-1)


def roi_from_points(centre: np.ndarray, size_point: np.ndarray, *, scale: float = ROI_SCALE) -> Roi:
    """AlignmentPointsRects (target angle 90 degrees) + RectTransformation (scale, square_long)."""
    dx, dy = float(size_point[0] - centre[0]), float(size_point[1] - centre[1])
    rotation = math.pi / 2 - math.atan2(-dy, dx)
    rotation = rotation - 2 * math.pi * math.floor((rotation + math.pi) / (2 * math.pi))
    return Roi(float(centre[0]), float(centre[1]), 2 * math.hypot(dx, dy) * scale, rotation)


def crop_rois(rgb: np.ndarray, rois: list[Roi]) -> np.ndarray:
    """The frame warped into each ROI: [N, 256, 256, 3] uint8 (borders replicate the edge)."""
    crops = [cv2.warpAffine(rgb, roi.to_roi_matrix(), (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE) for roi in rois]
    return np.stack(crops) if crops else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)


@dataclass(frozen=True)
class PoseLandmarks:
    """One person's landmarks in frame pixels: xyz [39, 3] (z in the same pixel scale, relative to
    the hips), visibility and presence [39] (probabilities), world [39, 3] metres, pose score,
    and the ROI they came from (segmentation logits [256, 256] over it; None from a network
    without its segmentation branch)."""

    xyz: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    roi: Roi
    segmentation: np.ndarray | None

    def next_roi(self) -> Roi:
        """The ROI for the next frame, from the auxiliary landmarks (PoseLandmarksToRoi)."""
        return roi_from_points(self.xyz[33, :2], self.xyz[34, :2])


class BlazePoseLandmarker:
    """A frame and its ROIs in, `PoseLandmarks` out, all ROIs in one batch."""

    def __init__(self, net: BlazePoseLandmarkNet | None = None, *, device: str | torch.device = "cpu",
                 backend: str = "auto", dtype: str = "fp32") -> None:
        self.device = torch.device(device)
        self.net = (net if net is not None else load_blazepose_landmark_net()).to(self.device)
        self.segmentation = bool(getattr(self.net.body, "segmentation", True))
        # the body on the CPU backend (realtime.models.backends), one graph per number of ROIs
        self._graphs = GraphCache(self.net.body, backend=backend if self.device.type == "cpu" else "torch",
                                  model="blazepose-full" if self.segmentation else "blazepose-full:no-segmentation",
                                  dtype=dtype)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray, rois: list[Roi]) -> list[PoseLandmarks]:
        if not rois:
            return []
        x = torch.from_numpy(to_nchw_float(crop_rois(rgb, rois), 255.0)).to(self.device)
        out = self.net.outputs(*self._graphs(x))
        raw = out.landmarks.cpu().numpy()
        flags = out.pose_flag.cpu().numpy()
        world = out.world.cpu().numpy()
        segmentation = out.segmentation.cpu().numpy() if self.segmentation else [None] * len(rois)
        people = []
        for i, roi in enumerate(rois):
            xy = roi.to_frame(raw[i, :, :2])
            z = raw[i, :, 2] * roi.size / INPUT_SIZE
            c, s = math.cos(roi.rotation), math.sin(roi.rotation)
            w = world[i].copy()  # WorldLandmarkProjection: undo the ROI's rotation in x, y
            w[:, 0], w[:, 1] = c * world[i, :, 0] - s * world[i, :, 1], s * world[i, :, 0] + c * world[i, :, 1]
            people.append(PoseLandmarks(np.column_stack([xy, z]).astype(np.float32), _sigmoid(raw[i, :, 3]),
                                        _sigmoid(raw[i, :, 4]), w.astype(np.float32), float(flags[i]), roi,
                                        segmentation[i]))
        return people


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return sigmoid(x).astype(np.float32)
