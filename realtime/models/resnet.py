"""ResNet-101 pieces shared by M2FP and SCHP: frozen batch norm, folding it into convolutions,
and the two bottleneck-stage layouts (detectron2's names for M2FP, torchvision's for SCHP).

Both families use the 3-conv "deep" stem (3x3/2 64, 3x3 64, 3x3 128, max-pool 3x3/2) and put the
stride in the 3x3 convolution of a bottleneck. Feature maps are B x C x H x W throughout.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

RESNET101_BLOCKS = (3, 4, 23, 3)


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics, optionally followed by leaky ReLU (an activated BN).

    Its buffers carry BatchNorm2d's names (weight, bias, running_mean, running_var), so
    checkpoints load unchanged; nothing here is trainable.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, negative_slope: float | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.negative_slope = negative_slope
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return x if self.negative_slope is None else F.leaky_relu_(x, self.negative_slope)

    def scale_and_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift) with norm(x) = x * scale + shift, before the activation."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def remainder(self) -> nn.Module:
        """What is left of this layer once its affine part lives in the convolution before it."""
        return nn.Identity() if self.negative_slope is None else nn.LeakyReLU(self.negative_slope, inplace=True)


@runtime_checkable
class FoldsNorms(Protocol):
    def fold_norms(self) -> None: ...


def fold_into_conv(conv: nn.Conv2d, norm: FrozenBatchNorm2d) -> nn.Module:
    """Fold `norm` (applied right after `conv`) into conv's weight and bias; returns the module
    that must replace `norm`."""
    scale, shift = norm.scale_and_shift()
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
    return norm.remainder()


def fold_child_pairs(parent: nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
    """For each (conv name, norm name) child pair of `parent`, fold the norm into the conv."""
    for conv_name, norm_name in pairs:
        norm = getattr(parent, norm_name)
        if isinstance(norm, FrozenBatchNorm2d):
            setattr(parent, norm_name, fold_into_conv(getattr(parent, conv_name), norm))


def fold_frozen_norms(model: nn.Module) -> nn.Module:
    """Fold every frozen norm that follows a convolution into it (inference only; the model's
    state_dict no longer matches a checkpoint afterwards). Returns `model`."""
    for module in list(model.modules()):
        if isinstance(module, FoldsNorms):
            module.fold_norms()
    return model


# --- detectron2 layout (M2FP): conv modules own their norm as `.norm` ---------------------------

class ConvNorm(nn.Conv2d):
    """detectron2's Conv2d: convolution, then `norm`, then an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, norm: nn.Module | None = None,
                 relu: bool = False, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, bias=bias)
        self.norm = norm if norm is not None else nn.Identity()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(super().forward(x))
        return F.relu_(x) if self.relu else x

    def fold_norms(self) -> None:
        if isinstance(self.norm, FrozenBatchNorm2d):
            self.norm = fold_into_conv(self, self.norm)


class DeepLabStem(nn.Module):
    """3x3/2 -> 3x3 -> 3x3 convolutions with norm and ReLU, then max-pool: stride 4, 128 channels."""

    def __init__(self, out_channels: int = 128) -> None:
        super().__init__()
        half = out_channels // 2
        self.conv1 = ConvNorm(3, half, 3, stride=2, padding=1, norm=FrozenBatchNorm2d(half), relu=True)
        self.conv2 = ConvNorm(half, half, 3, padding=1, norm=FrozenBatchNorm2d(half), relu=True)
        self.conv3 = ConvNorm(half, out_channels, 3, padding=1, norm=FrozenBatchNorm2d(out_channels), relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.conv3(self.conv2(self.conv1(x))), kernel_size=3, stride=2, padding=1)


class D2Bottleneck(nn.Module):
    """detectron2's BottleneckBlock with the stride in the 3x3 conv (stride_in_1x1=False)."""

    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int,
                 stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.shortcut = (
            ConvNorm(in_channels, out_channels, 1, stride=stride, norm=FrozenBatchNorm2d(out_channels))
            if in_channels != out_channels else None
        )
        self.conv1 = ConvNorm(in_channels, bottleneck_channels, 1, norm=FrozenBatchNorm2d(bottleneck_channels), relu=True)
        self.conv2 = ConvNorm(bottleneck_channels, bottleneck_channels, 3, stride=stride, padding=dilation,
                              dilation=dilation, norm=FrozenBatchNorm2d(bottleneck_channels), relu=True)
        self.conv3 = ConvNorm(bottleneck_channels, out_channels, 1, norm=FrozenBatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        out += shortcut
        return out.relu_()


class DeepLabResNet(nn.Module):
    """ResNet-101 with the DeepLab stem, detectron2 names (stem, res2..res5), no dilation.

    forward(B x 3 x H x W) -> {"res2": stride 4, 256 ch; "res3": 8, 512; "res4": 16, 1024;
    "res5": 32, 2048}.
    """

    def __init__(self, blocks: tuple[int, int, int, int] = RESNET101_BLOCKS) -> None:
        super().__init__()
        self.stem = DeepLabStem(128)
        in_channels, out_channels, bottleneck = 128, 256, 64
        for index, count in enumerate(blocks):
            first_stride = 1 if index == 0 else 2
            stage = [
                D2Bottleneck(in_channels if i == 0 else out_channels, out_channels,
                             bottleneck_channels=bottleneck, stride=first_stride if i == 0 else 1)
                for i in range(count)
            ]
            self.add_module(f"res{index + 2}", nn.Sequential(*stage))
            in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        features = {}
        for name in ("res2", "res3", "res4", "res5"):
            x = getattr(self, name)(x)
            features[name] = x
        return features


# --- torchvision layout (SCHP): conv1/bn1 pairs, `downsample` = Sequential(conv, norm) --------

class Bottleneck(nn.Module):
    """torchvision-named bottleneck (conv1/bn1 ... downsample.0/.1), stride in the 3x3 conv."""

    expansion = 4
    _norm_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)
        self.downsample = (
            conv_bn(in_channels, out_channels, 1, stride=stride)
            if stride != 1 or in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        out += shortcut
        return out.relu_()

    def fold_norms(self) -> None:
        fold_child_pairs(self, self._norm_pairs)


class ConvNormSequence(nn.Sequential):
    """nn.Sequential whose frozen norms that directly follow a Conv2d can be folded into it."""

    def fold_norms(self) -> None:
        names = list(self._modules)
        fold_child_pairs(self, tuple(
            (conv, norm) for conv, norm in zip(names, names[1:])
            if isinstance(self._modules[conv], nn.Conv2d) and isinstance(self._modules[norm], FrozenBatchNorm2d)
        ))


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
            dilation: int = 1, negative_slope: float | None = None) -> ConvNormSequence:
    """Sequential(conv without bias, frozen norm): keys `.0.weight`, `.1.weight`, ..."""
    return ConvNormSequence(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  dilation=dilation, bias=False),
        FrozenBatchNorm2d(out_channels, negative_slope=negative_slope),
    )


def make_layer(in_channels: int, planes: int, blocks: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """One torchvision-style stage of `blocks` bottlenecks; only the first one strides."""
    layers = [Bottleneck(in_channels, planes, stride=stride, dilation=dilation)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


# --- ResNet-18/34 basic blocks, torchvision names (Human_seg) -----------------------------------

class BasicBlock(nn.Module):
    """torchvision-named basic block (conv1/bn1, conv2/bn2, downsample.0/.1): two 3x3
    convolutions with the stride in the first and the dilation in both; a 1x1 projection on the
    shortcut when the stride or the width changes."""

    _norm_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, in_channels: int, planes: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.downsample = conv_bn(in_channels, planes, 1, stride=stride) if stride != 1 or in_channels != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu_(self.bn1(self.conv1(x)))))
        out += x if self.downsample is None else self.downsample(x)
        return out.relu_()

    def fold_norms(self) -> None:
        fold_child_pairs(self, self._norm_pairs)


def make_basic_layer(in_channels: int, planes: int, dilations: tuple[int, ...], *, stride: int = 1) -> nn.Sequential:
    """One stage of basic blocks, one per entry of `dilations` (each block's dilation); only the
    first block strides and widens."""
    return nn.Sequential(*(BasicBlock(in_channels if i == 0 else planes, planes, stride=stride if i == 0 else 1,
                                      dilation=dilation) for i, dilation in enumerate(dilations)))
