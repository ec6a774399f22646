"""MediaPipe's selfie segmenter in PyTorch: the general (256 x 256) and landscape (144 x 256)
models, read from their .tflite files.

Network (`SelfieSegmenterNet`): input [B, 3, H, W] RGB in [0, 1] (H x W = 256 x 256 general,
144 x 256 landscape, the whole frame resized without keeping its aspect); output [B, H, W] person
probability (the file ends in a sigmoid). The body is a MobileNetV3-style encoder (hard-swish,
squeeze-and-excite blocks with global average pooling (general) or MEAN (landscape)) and a light
decoder with bilinear upsampling and skip connections; the last layer is MediaPipe's custom
Convolution2DTransposeBias (2 x 2, stride 2). Its graph is read from the file and run by
`realtime.models.tflite_graph`.

Source: MediaPipe Selfie Segmentation model card; mediapipe/modules/selfie_segmentation/
selfie_segmentation_cpu.pbtxt; mediapipe/util/tflite/operations/transpose_conv_bias.cc.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from realtime import weights as weights_cache
from realtime.models.registry import NetworkSpec, get_network_spec
from realtime.models.tflite_graph import TFLiteGraphNet, load_tflite_net

VARIANTS = ("selfie", "selfie-landscape")


class SelfieSegmenterNet(nn.Module):
    """forward(x: [B, 3, H, W] in [0, 1]) -> person probability [B, H, W]."""

    def __init__(self, graph_net: TFLiteGraphNet, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.body = graph_net
        self.input_size = tuple(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (probability,) = self.body(x)
        return probability[:, 0]


def load_selfie_segmenter_net(name: str = "selfie", path: str | Path | None = None) -> SelfieSegmenterNet:
    spec: NetworkSpec = get_network_spec(name)
    if spec.family != "selfie_segmenter":
        raise ValueError(f"'{name}' is not a selfie segmenter; use one of {', '.join(VARIANTS)}")
    net = load_tflite_net(weights_cache.resolve(spec.weights, path))
    return SelfieSegmenterNet(net, spec.input_size).eval()


class SelfieSegmenter:
    """Frames in, person probability at frame size out ([H, W] float32 each), batched."""

    def __init__(self, name: str = "selfie", *, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = load_selfie_segmenter_net(name).to(self.device)

    @torch.inference_mode()
    def __call__(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        h, w = self.net.input_size
        x = np.stack([cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) for rgb in rgbs])
        probs = self.net(torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2).float() / 255.0).cpu().numpy()
        return [cv2.resize(p, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
                for p, rgb in zip(probs, rgbs)]
