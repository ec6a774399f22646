"""Human_seg: the six person / background segmenters of Human-Segmentation-PyTorch, in plain
PyTorch, with their trainer checkpoints and the reference's pre- and post-processing.

Source: github.com/thuyngch/Human-Segmentation-PyTorch @ b15baef (MIT): models/UNet.py,
DeepLab.py, BiSeNet.py, PSPNet.py, ICNet.py on the repo's own backbones (models/backbonds/:
MobileNetV2, and a ResNet-18 whose max-pool is 2x2 / 2 and whose dilated stages double the
dilation block by block), inference_video.py and utils/utils.py for the processing.

Every network maps [B, 3, S, S] (S = 320, ImageNet-normalised RGB) to [B, 2, S, S] logits,
channel 1 = person; every resize inside is bilinear with align_corners=True. Their parameter
names are the released checkpoints' (`keys.txt` of the parity fixtures), training-only
auxiliary heads included (BiSeNet's sup_os16/32, PSPNet's aux_output, ICNet's conv_low_cls),
which eval mode does not run. Norms are frozen batch norms that the fast path folds away.

Processing (`HumanSegmenter`): the frame's long side is scaled to 320 (cv2 INTER_LINEAR, short
side truncated), zero-padded to a centred square, normalised in float64 as numpy does there;
the logits are cropped to the content, resized to the frame (bilinear, align_corners=True) and
turned into the person probability softmax(logits)[1] = sigmoid(l1 - l0).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime import weights as weights_cache
from realtime.models.backends import GraphCache, TupleOutputs, autocast_dtype
from realtime.models.checkpoint import load_checkpoint, load_into
from realtime.models.common import Prepared, check_frames
from realtime.models.registry import SegmenterSpec, get_segmenter_spec
from realtime.models.resnet import (
    BasicBlock,
    ConvNormSequence,
    FrozenBatchNorm2d,
    fold_child_pairs,
    fold_frozen_norms,
    make_basic_layer,
)
from realtime.weights import WeightsError


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def _scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=True)


class ConvBN(nn.Module):
    """`conv` then frozen `bn`, then ReLU when `relu` (the repo's ConvBlock; without ReLU its
    CascadeFeatFusion branches)."""

    def __init__(self, cin: int, cout: int, k: int, *, stride: int = 1, padding: int = 0, dilation: int = 1,
                 bias: bool = True, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=bias)
        self.bn = FrozenBatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu_(x) if self.relu else x

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("conv", "bn"),))


# --- backbones ---------------------------------------------------------------------------------

def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), FrozenBatchNorm2d(cout),
            nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    """MobileNetV2 block `conv` = [1x1 expand + BN + ReLU6 (when expansion > 1)], 3x3 depthwise
    (stride) + BN + ReLU6, 1x1 project + BN; + input when stride 1 and width kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(cin * expansion)
        expand = _conv_bn_relu6(cin, hidden, 1) if expansion != 1 else []
        self.conv = ConvNormSequence(*expand, *_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                                     nn.Conv2d(hidden, cout, 1, bias=False), FrozenBatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (alpha 1, expansion 6) as `features.0..18`; forward -> the outputs of
    features 1, 3, 6, 13 and 18: strides 2, 4, 8, 16, 32 with 16, 24, 32, 96, 1280 channels."""

    taps = (1, 3, 6, 13, 18)
    # (expansion, channels, blocks, first stride)
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvNormSequence(*_conv_bn_relu6(3, 32, 3, 2))]
        cin = 32
        for expansion, cout, blocks, stride in self.settings:
            for i in range(blocks):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        layers.append(ConvNormSequence(*_conv_bn_relu6(cin, 1280, 1)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                taps.append(x)
        return taps


class ResNet18(nn.Module):
    """The repo's ResNet-18 (conv1/bn1, layer1..4): 7x7 / 2 conv, BN, ReLU, 2x2 / 2 max-pool,
    basic-block stages of 64, 128, 256, 512 channels. `output_stride` 8 keeps layer3 and layer4
    at stride 8 and dilates them instead, each block doubling it: 2, 4 and 4, 8.

    forward -> [stem (stride 2, 64 ch, before the pool), layer1 .. layer4]."""

    # output stride -> (stride, dilation) of layer1..4
    layouts = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 32: ((1, 2, 2, 2), (1, 1, 1, 1))}

    def __init__(self, output_stride: int = 32) -> None:
        super().__init__()
        strides, dilations = self.layouts[output_stride]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        cin = 64
        for index, (planes, stride, dilation) in enumerate(zip((64, 128, 256, 512), strides, dilations)):
            grid = (dilation, 2 * dilation) if dilation != 1 else (1, 1)
            setattr(self, f"layer{index + 1}", make_basic_layer(cin, planes, grid, stride=stride))
            cin = planes

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.bn1(self.conv1(x)))

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.stem(x)
        x2 = self.layer1(self.pool(x1))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        return [x1, x2, x3, x4, self.layer4(x4)]

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("conv1", "bn1"),))


# --- the six networks --------------------------------------------------------------------------

class DecoderBlock(nn.Module):
    """x2 transposed convolution (4x4, stride 2), concatenated with the skip, then `block_unit`."""

    def __init__(self, cin: int, cout: int, block_unit: nn.Module) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.block_unit = block_unit

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block_unit(torch.cat([self.deconv(x), skip], dim=1))


class UNet(nn.Module):
    """UNet on MobileNetV2 or ResNet-18: four decoder blocks climb from stride 32 to 2 over the
    backbone's taps (blocks: inverted residuals, expansion 6 / basic blocks), then two 3x3
    convolutions (to 3, then 2 channels) and a resize to the input."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        if backbone == "mobilenetv2":
            self.backbone = MobileNetV2()
            widths, top = (96, 32, 24, 16), 1280

            def unit(c: int) -> nn.Module:
                return InvertedResidual(2 * c, c, 1, 6)
        else:
            self.backbone = ResNet18()
            widths, top = (256, 128, 64, 64), 512

            def unit(c: int) -> nn.Module:
                return BasicBlock(2 * c, c)
        for index, width in enumerate(widths):
            setattr(self, f"decoder{index + 1}", DecoderBlock(top if index == 0 else widths[index - 1], width, unit(width)))
        self.conv_last = nn.Sequential(nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Conv2d(3, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2, x3, x4, x5 = self.backbone(x)
        y = self.decoder1(x5, x4)
        y = self.decoder2(y, x3)
        y = self.decoder3(y, x2)
        y = self.decoder4(y, x1)
        return _resize(self.conv_last(y), x.shape[-2:])


class ASPPBranch(nn.Module):
    """atrous_conv (no bias) + BN + ReLU."""

    def __init__(self, cin: int, k: int, dilation: int) -> None:
        super().__init__()
        self.atrous_conv = nn.Conv2d(cin, 256, k, padding=0 if k == 1 else dilation, dilation=dilation, bias=False)
        self.bn = FrozenBatchNorm2d(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.bn(self.atrous_conv(x)))

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("atrous_conv", "bn"),))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling for output stride 16: 1x1 and 3x3 at dilations 6, 12, 18,
    image pooling, concatenated (1280) and projected to 256 (+ BN + ReLU; dropout in training)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        for index, (k, dilation) in enumerate(((1, 1), (3, 6), (3, 12), (3, 18))):
            setattr(self, f"aspp{index + 1}", ASPPBranch(cin, k, dilation))
        self.global_avg_pool = ConvNormSequence(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, 256, 1, bias=False),
                                                FrozenBatchNorm2d(256), nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(1280, 256, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        # the reference resizes the pooled 1 x 1 map to the others' size: a broadcast, exactly
        branches.append(self.global_avg_pool(x).expand(-1, -1, *x.shape[-2:]))
        return F.relu_(self.bn1(self.conv1(torch.cat(branches, dim=1))))

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("conv1", "bn1"),))


class DeepLabDecoder(nn.Module):
    """Low-level features (stride 4) reduced to 48 channels, joined by the resized ASPP output
    (304), two 3x3 convolutions of 256 and the 1x1 classifier (dropouts in training)."""

    def __init__(self, low_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(low_channels, 48, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(48)
        self.last_conv = ConvNormSequence(
            nn.Conv2d(304, 256, 3, padding=1, bias=False), FrozenBatchNorm2d(256), nn.ReLU(inplace=True), nn.Identity(),
            nn.Conv2d(256, 256, 3, padding=1, bias=False), FrozenBatchNorm2d(256), nn.ReLU(inplace=True), nn.Identity(),
            nn.Conv2d(256, 2, 1),
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.relu_(self.bn1(self.conv1(low)))
        return self.last_conv(torch.cat([_resize(x, low.shape[-2:]), low], dim=1))

    def fold_norms(self) -> None:
        fold_child_pairs(self, (("conv1", "bn1"),))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ on ResNet-18 (the backbone at output stride 32, as the repo builds it, under an
    ASPP with output-stride-16 rates); output resized from stride 4 to the input."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet18()
        self.aspp = ASPP(512)
        self.decoder = DeepLabDecoder(64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, low, _, _, top = self.backbone(x)
        return _resize(self.decoder(self.aspp(top), low), x.shape[-2:])


class SpatialPath(nn.Module):
    """Three 3x3 / 2 ConvBlocks (64, 128, 256): stride 8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, 64, 3, stride=2, padding=1)
        self.conv2 = ConvBN(64, 128, 3, stride=2, padding=1)
        self.conv3 = ConvBN(128, 256, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class AttentionRefinement(nn.Module):
    """x * sigmoid(1x1 conv(global mean of x))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(F.adaptive_avg_pool2d(x, 1)))


class FeatureFusion(nn.Module):
    """ConvBlock of the concatenated paths to the 2 classes, then y + y * sigmoid(1x1(relu(1x1
    (global mean of y))))."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.convblock = ConvBN(cin, 2, 3, padding=1)
        self.conv1 = nn.Conv2d(2, 2, 1, bias=False)
        self.conv2 = nn.Conv2d(2, 2, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        y = self.convblock(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(y, 1)))))
        return y + y * gate


class BiSeNet(nn.Module):
    """BiSeNet on ResNet-18: a spatial path (stride 8) and a context path whose stride-16 and -32
    features pass attention refinement (stride 32 also scaled by its global mean), are resized to
    stride 8 and fused with the spatial path; x8 resize, then a 1x1 convolution. sup_os16 /
    sup_os32 are the training-only auxiliary classifiers."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial_path = SpatialPath()
        self.context_path = ResNet18()
        self.arm_os16 = AttentionRefinement(256)
        self.arm_os32 = AttentionRefinement(512)
        self.ffm = FeatureFusion(256 + 768)
        self.conv_final = nn.Conv2d(2, 2, 1)
        self.sup_os16 = nn.Conv2d(256, 2, 1)
        self.sup_os32 = nn.Conv2d(512, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial_path(x)
        *_, os16, os32 = self.context_path(x)
        os32 = self.arm_os32(os32) * F.adaptive_avg_pool2d(os32, 1)
        context = torch.cat([_scale(self.arm_os16(os16), 2), _scale(os32, 4)], dim=1)
        return self.conv_final(_scale(self.ffm(spatial, context), 8))


class PyramidPooling(nn.Module):
    """The input and, per bin size (1, 2, 3, 6), its average pool through a 1x1 ConvBlock to a
    quarter of the channels, resized back; concatenated (2x the channels)."""

    bins = (1, 2, 3, 6)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBN(channels, channels // 4, 1, bias=False) for _ in self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return torch.cat([x] + [_resize(conv(F.adaptive_avg_pool2d(x, b)), size)
                                for b, conv in zip(self.bins, self.convs)], dim=1)


class PSPHead(nn.Sequential):
    """conv1 (3x3 ConvBlock), dropout (inert in eval), conv2 (1x1 classifier)."""

    def __init__(self, cin: int, mid: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(cin, mid, 3, padding=1, bias=False)
        self.dropout = nn.Identity()
        self.conv2 = nn.Conv2d(mid, 2, 1, bias=False)


class PSPNet(nn.Module):
    """PSPNet on ResNet-18 at output stride 8: pyramid pooling over the last stage, a 3x3
    ConvBlock and a 1x1 classifier, resized to the input. aux_output is the training-only
    classifier on the third stage."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = ResNet18(output_stride=8)
        self.pyramid = PyramidPooling(512)
        self.main_output = PSPHead(1024, 128)
        self.aux_output = PSPHead(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _resize(self.main_output(self.pyramid(self.backbone(x)[-1])), x.shape[-2:])


class CascadeFeatureFusion(nn.Module):
    """The coarser map resized to the finer one's size through a dilated 3x3 conv + BN, added to
    the finer map's 1x1 conv + BN, ReLU. conv_low_cls is the training-only classifier."""

    def __init__(self, low_channels: int, high_channels: int) -> None:
        super().__init__()
        self.conv_low = ConvBN(low_channels, 128, 3, padding=2, dilation=2, bias=False, relu=False)
        self.conv_high = ConvBN(high_channels, 128, 1, bias=False, relu=False)
        self.conv_low_cls = nn.Conv2d(128, 2, 1, bias=False)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.conv_low(_resize(low, high.shape[-2:])) + self.conv_high(high))


class ICNet(nn.Module):
    """ICNet on ResNet-18 (output stride 8): full resolution through three 3x3 / 2 ConvBlocks;
    half resolution through the stem, layer1 and layer2 (stride 16 overall); that map halved
    again through layer3 and layer4 and pooled (pyramid sums over bins 1, 2, 3, 6), reduced to
    128; two cascade fusions, x2 resize, 1x1 classifier, x4 resize."""

    bins = (1, 2, 3, 6)

    def __init__(self) -> None:
        super().__init__()
        self.conv_sub1 = nn.Sequential()
        for name, cin, cout in (("conv1", 3, 32), ("conv2", 32, 32), ("conv3", 32, 64)):
            self.conv_sub1.add_module(name, ConvBN(cin, cout, 3, stride=2, padding=1, bias=False))
        self.backbone = ResNet18(output_stride=8)
        self.conv_sub4_reduce = ConvBN(512, 128, 1, bias=False)
        self.cff_24 = CascadeFeatureFusion(128, 128)
        self.cff_12 = CascadeFeatureFusion(128, 64)
        self.conv_cls = nn.Conv2d(128, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sub1 = self.conv_sub1(x)
        backbone = self.backbone
        sub2 = backbone.layer2(backbone.layer1(backbone.pool(backbone.stem(_scale(x, 0.5)))))
        sub4 = backbone.layer4(backbone.layer3(_scale(sub2, 0.5)))
        pooled = sub4
        for size in self.bins:
            pooled = pooled + _resize(F.adaptive_avg_pool2d(sub4, size), sub4.shape[-2:])
        fused = self.cff_12(self.cff_24(self.conv_sub4_reduce(pooled), sub2), sub1)
        return _scale(self.conv_cls(_scale(fused, 2)), 4)


ARCHITECTURES = {
    "unet-mobilenetv2": lambda: UNet("mobilenetv2"),
    "unet-resnet18": lambda: UNet("resnet18"),
    "deeplab3plus-resnet18": DeepLabV3Plus,
    "bisenet-resnet18": BiSeNet,
    "pspnet-resnet18": PSPNet,
    "icnet-resnet18": ICNet,
}
# Pyramid pooling into bins that do not divide the feature map (adaptive_avg_pool2d to 3 x 3 or 6 x 6)
# neither exports to ONNX nor runs frozen: these run eagerly on every backend choice.
EAGER_ONLY = frozenset({"pspnet-resnet18", "icnet-resnet18"})
# the trainer's `arch` entry (type(model).__name__) for each architecture
TRAINER_ARCH = {"unet-mobilenetv2": "UNet", "unet-resnet18": "UNet", "deeplab3plus-resnet18": "DeepLabV3Plus",
                "bisenet-resnet18": "BiSeNet", "pspnet-resnet18": "PSPNet", "icnet-resnet18": "ICNet"}


def humanseg_net(spec: SegmenterSpec) -> nn.Module:
    """An untrained network of `spec`'s architecture, in eval mode."""
    return ARCHITECTURES[spec.architecture]().eval()


# --- released checkpoints ----------------------------------------------------------------------

class TrainerLog:
    """Stand-in for the repo's `utils.logger.Logger`, which the trainer pickles into every
    checkpoint (`entries`: epoch -> metrics). Unpickling gives this class its state and runs no
    code of the repo's."""

    entries: dict


TRAINER_CHECKPOINT_CLASSES = ((TrainerLog, "utils.logger.Logger"),)


def humanseg_state_dict(checkpoint: object, *, source: str) -> dict[str, torch.Tensor]:
    """A trainer checkpoint ({'arch', 'epoch', 'logger', 'state_dict', 'optimizer',
    'monitor_best', 'config'}) or a bare state dict -> the network's tensors: a DataParallel
    `module.` prefix stripped, BatchNorm's num_batches_tracked dropped."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{source} holds no state dict (expected a trainer checkpoint with 'state_dict')")
    return {key.removeprefix("module."): value for key, value in state.items()
            if isinstance(value, torch.Tensor) and not key.endswith("num_batches_tracked")}


def load_humanseg_net(path: str | Path, spec: SegmenterSpec) -> nn.Module:
    """Read a released Human_seg checkpoint into `spec`'s network, in eval mode. The file is
    unpickled with weights_only (tensors, containers and the TrainerLog stand-in only: pickled
    code is refused). The reference loads non-strictly, so a file of another architecture would
    silently load nothing; here every name must match: WeightsError names the file's
    architecture, or the missing and unexpected keys, otherwise."""
    checkpoint = load_checkpoint(path, allowed_classes=TRAINER_CHECKPOINT_CLASSES)
    arch, expected = checkpoint.get("arch") if isinstance(checkpoint, Mapping) else None, TRAINER_ARCH[spec.architecture]
    if isinstance(arch, str) and arch != expected:
        raise WeightsError(f"{path} is a {arch} checkpoint; {spec.name} needs a {expected} one")
    state, net = humanseg_state_dict(checkpoint, source=str(path)), humanseg_net(spec)
    if state.keys().isdisjoint(net.state_dict()):
        raise WeightsError(f"{path} shares no parameter name with {spec.name} ({len(state)} tensors in the file): "
                           "is it a Human_seg checkpoint of this architecture?")
    load_into(net, state, source=str(path))
    return net.eval()


# --- pre/post-processing -----------------------------------------------------------------------

@dataclass(frozen=True)
class Letterbox:
    """Where the frame sits on the square network input: its size there (content_hw) and the
    padding before it (top, left), as the reference's resize_image returns them."""

    frame_hw: tuple[int, int]
    content_hw: tuple[int, int]
    offset: tuple[int, int]


def letterbox(frame_hw: tuple[int, int], size: int) -> Letterbox:
    """The long side becomes `size`, the short side int(short * size / long) (at least 1), centred with
    (size - short) // 2 before it; a square frame fills the input."""
    height, width = frame_hw
    if width > height:
        content = (max(1, int(height * size / width)), size)
        offset = ((size - content[0]) // 2, 0)
    elif width < height:
        content = (size, max(1, int(width * size / height)))
        offset = (0, (size - content[1]) // 2)
    else:
        content, offset = (size, size), (0, 0)
    return Letterbox(frame_hw, content, offset)


class HumanSegmenter:
    """Frames in, person probability out: `__call__(rgbs)` -> one H x W float32 map in [0, 1]
    per frame (H x W x 3 uint8 RGB frames of one size).

    `fast=True` (the default) folds the frozen norms into the convolutions and runs
    channels_last; on the CPU the network then runs on `backend` (realtime.models.backends:
    "torch", "onnxruntime", "openvino", or "auto", the fastest here, calibrated once per machine;
    PSPNet and ICNet eagerly, see EAGER_ONLY).
    `fast=False` runs the network eagerly as the reference does. `amp_dtype` (float16 or bfloat16
    on CUDA) runs the network under autocast; `dtype` (realtime.models.backends.DTYPES) is what the
    fast path on the CPU backend computes in (bf16 on the eager architectures: ValueError); the
    logits are resized and turned into probabilities in float32.
    """

    def __init__(self, net: nn.Module, spec: SegmenterSpec, device: torch.device, *,
                 amp_dtype: torch.dtype | None = None, fast: bool = True, backend: str = "auto",
                 dtype: str = "fp32") -> None:
        if fast:
            fold_frozen_norms(net)
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.net = net.to(device).to(memory_format=self.memory_format).eval()
        self.spec = spec
        self.device = device
        self.amp_dtype = amp_dtype
        self._graphs = (GraphCache(TupleOutputs(self.net), backend=backend, model=spec.name, dtype=dtype)
                        if fast and device.type == "cpu" and amp_dtype is None
                        and spec.architecture not in EAGER_ONLY else None)
        if dtype != "fp32" and device.type == "cpu" and self._graphs is None:
            raise ValueError(f"{spec.name} runs eagerly on PyTorch on the CPU, in fp32 only; --dtype {dtype} "
                             "is for networks on OpenVINO there")
        self.mean = torch.tensor(spec.input_mean, dtype=torch.float64, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.input_std, dtype=torch.float64, device=device).view(1, 3, 1, 1)

    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> [B, 3, S, S] network input and the frames' Letterbox."""
        check_frames(rgbs)
        size = self.spec.input_size
        box = letterbox(rgbs[0].shape[:2], size)
        (height, width), (top, left) = box.content_hw, box.offset
        canvas = np.zeros((len(rgbs), size, size, 3), dtype=np.uint8)
        for canvas_image, rgb in zip(canvas, rgbs):
            canvas_image[top:top + height, left:left + width] = cv2.resize(rgb, (width, height),
                                                                           interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(canvas).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        # numpy's float64 arithmetic of the reference, rounded to float32 once
        batch = ((x.double() - self.mean) / self.std).float()
        return Prepared(batch.contiguous(memory_format=self.memory_format), box)

    @property
    def backend(self) -> str:
        """What ran the last forward: a realtime.models.backends name, or "eager"."""
        return (self._graphs.backend or "none yet") if self._graphs is not None else "eager"

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, 2, S, S] float32 logits (channel 1 = person)."""
        if self._graphs is not None:
            return self._graphs(batch)[0].float()
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=self.amp_dtype or torch.float32,
                                                    enabled=self.amp_dtype is not None):
            return self.net(batch).float()

    def postprocess(self, logits: torch.Tensor, prepared: Prepared) -> list[np.ndarray]:
        """Logits -> person probability at frame size: the content crop, resized to the frame
        (the difference of the two logits: resizing is linear), sigmoid."""
        box: Letterbox = prepared.geometry
        (height, width), (top, left) = box.content_hw, box.offset
        with torch.inference_mode():
            margin = (logits[:, 1:2] - logits[:, 0:1])[..., top:top + height, left:left + width]
            probability = torch.sigmoid(_resize(margin, box.frame_hw))[:, 0]
        return list(probability.cpu().numpy())

    def __call__(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        if not rgbs:
            return []
        prepared = self.preprocess(rgbs)
        return self.postprocess(self.infer(prepared.batch), prepared)


def load_humanseg(name: str, *, weights: str | Path | None = None,
                  device: str | torch.device = "cpu", backend: str = "auto", dtype: str = "fp32") -> HumanSegmenter:
    """The named segmenter (SEGMENTER_SPECS) with the cache's checkpoint (or the file
    `weights`), computing in `dtype` (realtime.models.backends.DTYPES): on the CPU on the fast path
    on `backend`, on CUDA under autocast (backends.autocast_dtype; fp32: none). WeightsError when the
    file is missing or does not fit, ValueError for an unknown dtype."""
    from realtime.models import resolve_device

    spec = get_segmenter_spec(name)
    target = resolve_device(device)
    net = load_humanseg_net(weights_cache.resolve(spec.weights, weights, name=spec.name), spec)
    return HumanSegmenter(net, spec, target, amp_dtype=autocast_dtype(dtype, target), backend=backend, dtype=dtype)


__all__ = ["ARCHITECTURES", "EAGER_ONLY", "HumanSegmenter", "Letterbox", "TrainerLog", "humanseg_net", "humanseg_state_dict",
           "letterbox", "load_humanseg", "load_humanseg_net"]
