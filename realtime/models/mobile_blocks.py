"""Building blocks of MediaPipe's mobile networks (BlazePose detector and landmarks), written out
as PyTorch modules, and the loader that fills a written-out network from a .tflite file.

Every convolution of these files has its batch norm folded in and a bias; "relu6" is TFLite's
fused RELU6. Layouts are NCHW. TFLite pads a stride-2 convolution either with an explicit
symmetric PAD before a VALID convolution (here: `padding = k // 2`) or by SAME on an even size
(one row and column after, none before: `DownDW`).

Source: M. Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018;
V. Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", 2020; the graphs of
pose_detection.tflite and pose_landmark_full.tflite (op lists in realtime.models.tflite_graph).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.checkpoint import load_into
from realtime.models.tflite_graph import convolution_parameters, read_tflite
from realtime.weights import WeightsError


def conv(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, padding: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, groups=groups)


def depthwise(c: int, k: int = 3, stride: int = 1, padding: int | None = None) -> nn.Conv2d:
    return conv(c, c, k, stride, groups=c, padding=padding)


def up2(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear with half-pixel centres (TFLite RESIZE_BILINEAR half_pixel_centers)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + relu6, k x k depthwise (stride 1 or 2) + relu6, 1x1 linear
    project; + input when the shape is kept. [B, cin, H, W] -> [B, cout, H/stride, W/stride]."""

    def __init__(self, cin: int, cout: int, expanded: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.expand, self.depthwise, self.project = conv(cin, expanded), depthwise(expanded, k, stride), conv(expanded, cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(F.relu6(self.depthwise(F.relu6(self.expand(x)))))
        return x + y if self.residual else y


class Lateral(nn.Module):
    """3x3 depthwise (+ relu6 when `depthwise_relu`), 1x1 conv + relu6: a skip into a decoder."""

    def __init__(self, cin: int, cout: int, *, depthwise_relu: bool = True) -> None:
        super().__init__()
        self.depthwise, self.pointwise = depthwise(cin), conv(cin, cout)
        self.depthwise_relu = depthwise_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x)
        return F.relu6(self.pointwise(F.relu6(y) if self.depthwise_relu else y))


class ResidualDW(nn.Module):
    """relu6(x + 1x1(3x3 depthwise(x))) at a constant shape, the depthwise followed by relu6 when
    `depthwise_relu` (the landmark network) or linear (the detector)."""

    def __init__(self, c: int, *, depthwise_relu: bool = True) -> None:
        super().__init__()
        self.depthwise, self.pointwise = depthwise(c), conv(c, c)
        self.depthwise_relu = depthwise_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x)
        return F.relu6(x + self.pointwise(F.relu6(y) if self.depthwise_relu else y))


class DownDW(nn.Module):
    """relu6(maxpool2(x) + 1x1(relu6(3x3 depthwise stride 2 (x)))), even sizes, TFLite SAME."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.depthwise, self.pointwise = depthwise(c, 3, 2, padding=0), conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(F.relu6(self.depthwise(F.pad(x, (0, 1, 0, 1)))))
        return F.relu6(F.max_pool2d(x, 2) + y)


def pairs(blocks) -> list[nn.Conv2d]:
    """(depthwise, pointwise) of each block, in order."""
    return [c for b in blocks for c in (b.depthwise, b.pointwise)]


def inverted(block: InvertedResidual, lateral: Lateral | None = None) -> list[nn.Conv2d]:
    """A block's convolutions in a graph's order: expand, then the lateral leaving before the
    block (the converter schedules it there), then depthwise and project."""
    side = [lateral.depthwise, lateral.pointwise] if lateral is not None else []
    return [block.expand, *side, block.depthwise, block.project]


def load_in_graph_order(body: nn.Module, convolutions: list[nn.Conv2d], path: str | Path) -> nn.Module:
    """Fills `body` from the .tflite at `path`: its i-th CONV_2D / DEPTHWISE_CONV_2D op's weights
    go to convolutions[i] (via realtime.models.checkpoint.load_into, names and shapes checked).
    Returns `body` in eval mode, channels-last (faster CPU depthwise convolutions)."""
    params = convolution_parameters(read_tflite(path))
    if len(params) != len(convolutions):
        raise WeightsError(f"{path} does not fit {type(body).__name__}: {len(params)} convolutions in the file, "
                           f"{len(convolutions)} in the network")
    names = {module: name for name, module in body.named_modules()}
    state = {}
    for module, (weight, bias) in zip(convolutions, params):
        state[f"{names[module]}.weight"], state[f"{names[module]}.bias"] = weight, bias
    load_into(body, state, source=str(path))
    return body.to(memory_format=torch.channels_last).eval()
