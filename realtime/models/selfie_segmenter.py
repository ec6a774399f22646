"""MediaPipe's selfie segmenter in PyTorch: the general (256 x 256) and landscape (144 x 256)
models, read from their .tflite files.

Network (`SelfieSegmenterNet`): input [B, 3, H, W] RGB in [0, 1] (H x W = 256 x 256 general,
144 x 256 landscape, the whole frame resized without keeping its aspect); output [B, H, W] person
probability (the file ends in a sigmoid). The body is a MobileNetV3-style encoder (hard-swish,
squeeze-and-excite blocks with global average pooling (general) or MEAN (landscape)) and a light
decoder with bilinear upsampling and skip connections; the last layer is MediaPipe's custom
Convolution2DTransposeBias (2 x 2, stride 2). `SelfieNet` writes the graph out (ops: CONV_2D,
DEPTHWISE_CONV_2D, HARD_SWISH, RELU, AVERAGE_POOL_2D / MEAN, LOGISTIC, MUL, ADD,
RESIZE_BILINEAR, the custom transposed convolution; 55 convolutions); the weights (float16 in
the file) are read by `realtime.models.tflite_graph` and loaded in the graph's convolution order.

Source: MediaPipe Selfie Segmentation model card; mediapipe/modules/selfie_segmentation/
selfie_segmentation_cpu.pbtxt; mediapipe/util/tflite/operations/transpose_conv_bias.cc.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime import weights as weights_cache
from realtime.imaging import to_nchw_float
from realtime.models.backends import GraphCache, TupleOutputs
from realtime.models.registry import NetworkSpec, get_network_spec
from realtime.models.mobile_blocks import load_in_graph_order
from realtime.models.tflite_graph import same_pads

VARIANTS = ("selfie", "selfie-landscape")


class SameConv(nn.Module):
    """A convolution padded TensorFlow's SAME way, asymmetric on even sizes at stride 2 (the
    extra row and column after): [B, cin, H, W] -> [B, cout, ceil(H/s), ceil(W/s)]."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, 0, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        (top, bottom), (left, right) = same_pads(x.shape[2], k, s), same_pads(x.shape[3], k, s)
        return self.conv(F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x)


class SqueezeExcite(nn.Module):
    """x * sigmoid(1x1(relu(1x1(global mean of x)))) (AVERAGE_POOL_2D over the map, or MEAN)."""

    def __init__(self, c: int, squeezed: int) -> None:
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(c, squeezed, 1), nn.Conv2d(squeezed, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))


class Bottleneck(nn.Module):
    """MobileNetV3 block: 1x1 expand + act, k x k depthwise (SAME) + act, squeeze-excite when
    `se`, 1x1 linear project; + input when the shape is kept. act: relu or hard-swish."""

    def __init__(self, cin: int, cout: int, expanded: int, k: int, stride: int, *, hswish: bool,
                 se: int | None = None) -> None:
        super().__init__()
        self.expand = nn.Conv2d(cin, expanded, 1)
        self.depthwise = SameConv(expanded, expanded, k, stride, groups=expanded)
        self.se = SqueezeExcite(expanded, se) if se else None
        self.project = nn.Conv2d(expanded, cout, 1)
        self.act = F.hardswish if hswish else F.relu
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.depthwise(self.act(self.expand(x))))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y

    def convolutions(self) -> list[nn.Conv2d]:
        se = [self.se.reduce, self.se.expand] if self.se is not None else []
        return [self.expand, self.depthwise.conv, *se, self.project]


class DecoderBlock(nn.Module):
    """Fuses the upsampled coarser map `up` with the encoder's `skip` (same shape): the skip is
    gated by sigmoid(1x1(relu(1x1(mean(skip + up))))), added to `up`, then 1x1 + relu and a
    residual 3x3 depthwise + relu: y + relu(dw(y))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.gate_reduce, self.gate_expand = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.pointwise = nn.Conv2d(c, c, 1)
        self.depthwise = nn.Conv2d(c, c, 3, 1, 1, groups=c)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        pooled = (skip + up).mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(self.gate_expand(F.relu(self.gate_reduce(pooled))))
        y = F.relu(self.pointwise(skip * gate + up))
        return y + F.relu(self.depthwise(y))

    def convolutions(self) -> list[nn.Conv2d]:
        return [self.gate_reduce, self.gate_expand, self.pointwise, self.depthwise]


class SelfieNet(nn.Module):
    """The selfie segmenter, both variants: forward(x [B, 3, H, W] in [0, 1]) -> person
    probability [B, 1, H, W] (H, W multiples of 16).

    Encoder (MobileNetV3-small-like): 3x3 stride-2 conv + hard-swish (16 ch, H/2), then
    bottlenecks to H/4 (16), H/8 (24) and H/16 (32, hard-swish with squeeze-excite); an LR-ASPP
    style head (relu(1x1) gated by sigmoid(1x1(mean))) at 128 channels; a decoder that at each
    of H/8, H/4, H/2 upsamples x2 (bilinear), applies a 1x1 conv and fuses the encoder's map of
    that size (DecoderBlock); a 2x2 stride-2 transposed convolution and a sigmoid give the mask."""

    def __init__(self) -> None:
        super().__init__()
        b = Bottleneck
        self.stem = SameConv(3, 16, 3, 2)
        self.block4 = b(16, 16, 16, 3, 2, hswish=False, se=8)
        self.block8 = nn.Sequential(b(16, 24, 72, 3, 2, hswish=False), b(24, 24, 88, 3, 1, hswish=False))
        self.block16 = nn.Sequential(b(24, 32, 96, 5, 2, hswish=True, se=24), b(32, 32, 128, 5, 1, hswish=True, se=32),
                                     b(32, 32, 128, 5, 1, hswish=True, se=32), b(32, 32, 96, 5, 1, hswish=True, se=24),
                                     b(32, 32, 96, 5, 1, hswish=True, se=24))
        self.head_features, self.head_gate = nn.Conv2d(32, 128, 1), nn.Conv2d(32, 128, 1)
        self.up8, self.up4, self.up2 = nn.Conv2d(128, 24, 1), nn.Conv2d(24, 16, 1), nn.Conv2d(16, 16, 1)
        self.decode8, self.decode4, self.decode2 = DecoderBlock(24), DecoderBlock(16), DecoderBlock(16)
        self.segment = nn.ConvTranspose2d(16, 1, 2, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f2 = F.hardswish(self.stem(x.contiguous(memory_format=torch.channels_last)))  # [B, 16, H/2, W/2]
        f4 = self.block4(f2)  # 16 ch
        f8 = self.block8(f4)  # 24 ch
        f16 = self.block16(f8)  # 32 ch
        gate = torch.sigmoid(self.head_gate(f16.mean(dim=(2, 3), keepdim=True)))
        y = F.relu(self.head_features(f16)) * gate  # [B, 128, H/16, W/16]
        y = self.decode8(f8, self.up8(_up2(y)))
        y = self.decode4(f4, self.up4(_up2(y)))
        y = self.decode2(f2, self.up2(_up2(y)))
        return [torch.sigmoid(self.segment(y))]

    def convolutions_in_file_order(self) -> list[nn.Module]:
        order = [self.stem.conv, *self.block4.convolutions()]
        order += [c for block in (*self.block8, *self.block16) for c in block.convolutions()]
        order += [self.head_features, self.head_gate]
        for up, decode in ((self.up8, self.decode8), (self.up4, self.decode4), (self.up2, self.decode2)):
            order += [up, *decode.convolutions()]
        return order + [self.segment]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SelfieSegmenterNet(nn.Module):
    """forward(x: [B, 3, H, W] in [0, 1]) -> person probability [B, H, W]."""

    def __init__(self, body: nn.Module, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.body = body
        self.input_size = tuple(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (probability,) = self.body(x)
        return probability[:, 0]


def load_selfie_segmenter_net(name: str = "selfie", path: str | Path | None = None) -> SelfieSegmenterNet:
    """SelfieNet with the file's weights (loaded in the graph's convolution order)."""
    spec: NetworkSpec = get_network_spec(name)
    if spec.family != "selfie_segmenter":
        raise ValueError(f"'{name}' is not a selfie segmenter; use one of {', '.join(VARIANTS)}")
    body = SelfieNet()
    file = weights_cache.resolve(spec.weights, path, name=spec.name)
    load_in_graph_order(body, body.convolutions_in_file_order(), file)
    return SelfieSegmenterNet(body, spec.input_size).eval()


class SelfieSegmenter:
    """Frames in, person probability at frame size out ([H, W] float32 each), batched; frames are
    resized to the network's input bilinearly (an area resize costs some 20 times more for the
    same masks: mean person IoU within 0.001 on 120 ccp_dev photos). On the CPU the network runs
    on `backend` (realtime.models.backends; "auto": the fastest here)."""

    def __init__(self, name: str = "selfie", *, device: str | torch.device = "cpu", backend: str = "auto",
                 dtype: str = "fp32") -> None:
        self.device = torch.device(device)
        self.net = load_selfie_segmenter_net(name).to(self.device)
        self._graphs = GraphCache(TupleOutputs(self.net), backend=backend if self.device.type == "cpu" else "torch",
                                  model=f"selfie-segmenter:{name}", dtype=dtype)

    @torch.inference_mode()
    def __call__(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        h, w = self.net.input_size
        x = np.stack([cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR) for rgb in rgbs])
        (probs,) = self._graphs(torch.from_numpy(to_nchw_float(x, 255.0)).to(self.device))
        return [cv2.resize(p, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
                for p, rgb in zip(probs.cpu().numpy(), rgbs)]
