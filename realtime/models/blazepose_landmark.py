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
The graph (CONV_2D, DEPTHWISE_CONV_2D, ADD, MAX_POOL_2D, PAD, RESIZE_BILINEAR, RESHAPE,
LOGISTIC) is read from the file and run by `realtime.models.tflite_graph`.

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
from torch import nn

from realtime import weights as weights_cache
from realtime.models.registry import NetworkSpec, get_network_spec
from realtime.models.tflite_graph import TFLiteGraphNet, load_tflite_net

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
    """forward(x: [B, 3, 256, 256] in [0, 1]) -> LandmarkOutputs."""

    def __init__(self, graph_net: TFLiteGraphNet) -> None:
        super().__init__()
        self.body = graph_net

    def forward(self, x: torch.Tensor) -> LandmarkOutputs:
        landmarks, flag, segmentation, heatmap, world = self.body(x)
        return LandmarkOutputs(landmarks.unflatten(1, (NUM_ALL_LANDMARKS, 5)), flag[:, 0], segmentation[:, 0],
                               heatmap, world.unflatten(1, (NUM_ALL_LANDMARKS, 3)))


def load_blazepose_landmark_net(path: str | Path | None = None, spec: NetworkSpec | None = None) -> BlazePoseLandmarkNet:
    spec = spec or get_network_spec("blazepose-full")
    return BlazePoseLandmarkNet(load_tflite_net(weights_cache.resolve(spec.weights, path))).eval()


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
    and the ROI they came from (segmentation logits [256, 256] over it)."""

    xyz: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    roi: Roi
    segmentation: np.ndarray

    def next_roi(self) -> Roi:
        """The ROI for the next frame, from the auxiliary landmarks (PoseLandmarksToRoi)."""
        return roi_from_points(self.xyz[33, :2], self.xyz[34, :2])


class BlazePoseLandmarker:
    """A frame and its ROIs in, `PoseLandmarks` out, all ROIs in one batch."""

    def __init__(self, net: BlazePoseLandmarkNet | None = None, *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = (net if net is not None else load_blazepose_landmark_net()).to(self.device)

    @torch.inference_mode()
    def __call__(self, rgb: np.ndarray, rois: list[Roi]) -> list[PoseLandmarks]:
        if not rois:
            return []
        x = torch.from_numpy(crop_rois(rgb, rois)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        out = self.net(x)
        raw = out.landmarks.cpu().numpy()
        flags = out.pose_flag.cpu().numpy()
        world = out.world.cpu().numpy()
        segmentation = out.segmentation.cpu().numpy()
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
    from realtime.imaging import sigmoid

    return sigmoid(x).astype(np.float32)
