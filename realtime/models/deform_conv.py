"""Modulated deformable convolution (DCNv2, Zhu et al. 2019, "Deformable ConvNets v2") in PyTorch.

Kernel point k of output pixel (y, x) reads the input at
(y * stride - padding + i_k * dilation + dy_k, x * stride - padding + j_k * dilation + dx_k),
bilinearly with zeros outside the map, scaled by a modulation m_k in (0, 1); the samples of all
points and channels then meet the weight in one matrix product. The offsets and modulations come
from an ordinary convolution (`conv_offset`) over the same input, laid out as mmcv's
`ModulatedDeformConv2dPack` lays them out: of its 3K output channels the first two thirds are the
offsets, channel 2k the vertical and 2k + 1 the horizontal shift of point k, and the last third
the modulation logits (sigmoid). One deformable group.

Two implementations compute the same sums: `modulated_deform_conv2d` follows mmcv's CPU kernel
(`modulated_deform_conv.cpp`, `dmcn_im2col_bilinear_cpu`) operation for operation, channel-major
columns from four gathers per point; `gathered_deform_conv2d` reads each sample's four corners
as rows of the channels-last input with `embedding_bag` (weights = bilinear x modulation), 2-3x
faster on a CPU, equal up to the order of the sums (~1e-7).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

DeformConv = Callable[..., torch.Tensor]


def sampling_positions(offset: torch.Tensor, kernel_hw: tuple[int, int], *, stride: int, padding: int,
                       dilation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B x 2K x Ho x Wo offsets -> (rows, cols), each B x K x Ho x Wo float32 input positions."""
    kernel_h, kernel_w = kernel_hw
    points = kernel_h * kernel_w
    batch, _, out_h, out_w = offset.shape
    device = offset.device
    offset = offset.float().view(batch, points, 2, out_h, out_w)
    base_rows = (torch.arange(kernel_h, device=device) * dilation).repeat_interleave(kernel_w).view(points, 1, 1) \
        + (torch.arange(out_h, device=device) * stride - padding).view(1, out_h, 1)
    base_cols = (torch.arange(kernel_w, device=device) * dilation).repeat(kernel_h).view(points, 1, 1) \
        + (torch.arange(out_w, device=device) * stride - padding).view(1, 1, out_w)
    return base_rows.float() + offset[:, :, 0], base_cols.float() + offset[:, :, 1]


def bilinear_corners(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int
                     ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The four corners of each position, as mmcv's `dmcn_im2col_bilinear_cpu` weighs them:
    (flat index into an H x W map, bilinear weight) for the corners (r0, c0), (r0, c1), (r1, c0),
    (r1, c1); the weight is 0 for a corner outside the map and for a position not strictly
    inside (-1, H) x (-1, W). Indices are clamped into the map."""
    inside = (rows > -1) & (cols > -1) & (rows < height) & (cols < width)
    row_low, col_low = rows.floor(), cols.floor()
    lh, lw = rows - row_low, cols - col_low
    hh, hw = 1 - lh, 1 - lw
    corners = []
    for d_row, d_col, weight in ((0, 0, hh * hw), (0, 1, hh * lw), (1, 0, lh * hw), (1, 1, lh * lw)):
        r, c = row_low + d_row, col_low + d_col
        valid = inside & (r >= 0) & (r <= height - 1) & (c >= 0) & (c <= width - 1)
        index = (r.clamp(0, height - 1) * width + c.clamp(0, width - 1)).long()
        corners.append((index, weight.where(valid, torch.zeros_like(weight))))
    return corners


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None, *, stride: int = 1, padding: int = 0,
                            dilation: int = 1) -> torch.Tensor:
    """DCNv2 (one deformable group, one convolution group) as mmcv computes it.

    x: B x C x H x W; offset: B x 2K x Ho x Wo (channel 2k = dy, 2k + 1 = dx of kernel point
    k = i * kw + j); mask: B x K x Ho x Wo modulations; weight: O x C x kh x kw; bias: O or None.
    Returns B x O x Ho x Wo. Zero offsets with a unit mask give F.conv2d's result.
    """
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = offset.shape[-2:]
    rows, cols = sampling_positions(offset, (kernel_h, kernel_w), stride=stride, padding=padding, dilation=dilation)
    table = x.flatten(2)
    columns = None  # B x C x (K * Ho * Wo): w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4, in that order
    for index, corner_weight in bilinear_corners(rows.flatten(1), cols.flatten(1), height, width):
        term = corner_weight[:, None] * table.gather(2, index[:, None].expand(batch, channels, -1))
        columns = term if columns is None else columns + term
    modulation = mask.to(columns.dtype).view(batch, 1, -1, out_h * out_w)
    columns = columns.view(batch, channels, -1, out_h * out_w) * modulation
    out = weight.flatten(1).to(columns.dtype) @ columns.view(batch, -1, out_h * out_w)
    out = out.view(batch, out_channels, out_h, out_w)
    return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)


def gathered_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None = None, *, stride: int = 1, padding: int = 0,
                           dilation: int = 1) -> torch.Tensor:
    """`modulated_deform_conv2d` with the samples as weighted row sums: the input viewed as
    (B * H * W) x C rows (free for a channels_last input), one `embedding_bag` bag of four corner
    rows per (output pixel, kernel point), weights bilinear x modulation; the result, (B * Ho * Wo)
    x (K * C), meets the weight in one matrix product. Returns B x O x Ho x Wo (channels_last)."""
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = offset.shape[-2:]
    rows, cols = sampling_positions(offset, (kernel_h, kernel_w), stride=stride, padding=padding, dilation=dilation)
    modulation = mask.float().permute(0, 2, 3, 1)
    corners = bilinear_corners(rows.permute(0, 2, 3, 1), cols.permute(0, 2, 3, 1), height, width)
    index = torch.stack([corner for corner, _ in corners], dim=-1)  # B x Ho x Wo x K x 4
    if batch > 1:
        index = index + (torch.arange(batch, device=x.device) * (height * width)).view(-1, 1, 1, 1, 1)
    weights = torch.stack([corner_weight * modulation for _, corner_weight in corners], dim=-1)
    table = x.permute(0, 2, 3, 1).reshape(-1, channels)
    samples = F.embedding_bag(index.view(-1, 4), table, per_sample_weights=weights.view(-1, 4).to(table.dtype),
                              mode="sum")
    kernel = weight.permute(2, 3, 1, 0).reshape(-1, out_channels).to(samples.dtype)  # (K * C) x O
    out = (samples.view(batch * out_h * out_w, -1) @ kernel).view(batch, out_h, out_w, out_channels)
    out = out.permute(0, 3, 1, 2)
    return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)


class ModulatedDeformConv2d(nn.Module):
    """mmcv's `ModulatedDeformConv2dPack` (the `DCNv2` conv type of mmdet configs): a deformable
    K = kh x kw convolution whose offsets and modulations a `conv_offset` convolution predicts.

    Parameters: `weight` O x C x kh x kw, optional `bias`, `conv_offset` (3K outputs, with bias).
    forward(B x C x H x W) -> B x O x Ho x Wo. `implementation` is `modulated_deform_conv2d`
    (mmcv's order of operations) or `gathered_deform_conv2d` (faster).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size, kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_channels)) if bias else None)
        self.conv_offset = nn.Conv2d(in_channels, 3 * kernel_size * kernel_size, kernel_size, stride=stride,
                                     padding=padding, dilation=dilation)
        self.implementation: DeformConv = modulated_deform_conv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        predicted = self.conv_offset(x)
        points = predicted.shape[1] // 3
        offset, modulation = predicted[:, :2 * points], predicted[:, 2 * points:]
        return self.implementation(x, offset, modulation.sigmoid(), self.weight, self.bias, stride=self.stride,
                                   padding=self.padding, dilation=self.dilation)
