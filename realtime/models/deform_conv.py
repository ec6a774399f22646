"""Modulated deformable convolution (DCNv2, Zhu et al. 2019, "Deformable ConvNets v2") in PyTorch.

Kernel point k of output pixel (y, x) reads the input at
(y * stride - padding + i_k * dilation + dy_k, x * stride - padding + j_k * dilation + dx_k),
bilinearly with zeros outside the map, scaled by a modulation m_k in (0, 1); the samples of all
points and channels then meet the weight in one matrix product. The offsets and modulations come
from an ordinary convolution (`conv_offset`) over the same input, laid out as mmcv's
`ModulatedDeformConv2dPack` lays them out: of its 3K output channels the first two thirds are the
offsets, channel 2k the vertical and 2k + 1 the horizontal shift of point k, and the last third
the modulation logits (sigmoid). One deformable group.

Two samplers compute the same columns: `sample_corners` follows mmcv's CPU kernel
(`modulated_deform_conv.cpp`, `dmcn_im2col_bilinear_cpu`) operation for operation, four gathers
per point; `sample_grid` does it with one `grid_sample`, faster, and equal up to the rounding of
grid_sample's normalised coordinates (~1e-7 of the map size).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Sampler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample_corners(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of x (B x C x H x W) at float positions rows, cols (B x P), in input
    pixels, zero outside the map, as mmcv's `dmcn_im2col_bilinear_cpu`: a position counts when
    -1 < row < H and -1 < col < W, and each corner outside the map reads 0. Returns B x C x P."""
    batch, channels, height, width = x.shape
    inside = (rows > -1) & (cols > -1) & (rows < height) & (cols < width)
    row_low, col_low = rows.floor(), cols.floor()
    lh, lw = rows - row_low, cols - col_low
    hh, hw = 1 - lh, 1 - lw
    table = x.flatten(2)
    total = None
    for d_row, d_col, weight in ((0, 0, hh * hw), (0, 1, hh * lw), (1, 0, lh * hw), (1, 1, lh * lw)):
        r, c = row_low + d_row, col_low + d_col
        valid = inside & (r >= 0) & (r <= height - 1) & (c >= 0) & (c <= width - 1)
        index = (r.clamp(0, height - 1) * width + c.clamp(0, width - 1)).long()
        values = table.gather(2, index[:, None].expand(batch, channels, -1))
        term = weight.where(valid, torch.zeros_like(weight))[:, None] * values
        total = term if total is None else total + term
    return total


def sample_grid(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """`sample_corners` by `grid_sample` (zero padding; pixel p maps to (2p + 1) / size - 1 with
    align_corners=False, which holds for maps one pixel wide too). Returns B x C x P."""
    height, width = x.shape[-2:]
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # half-precision coordinates would be off by up to a quarter pixel
    grid = torch.stack(((2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1), dim=-1)
    return F.grid_sample(x, grid[:, None].to(x.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, :, 0]


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None = None, *, stride: int = 1, padding: int = 0,
                            dilation: int = 1, sampler: Sampler = sample_corners) -> torch.Tensor:
    """DCNv2 with one deformable group and one convolution group.

    x: B x C x H x W; offset: B x 2K x Ho x Wo (channel 2k = dy, 2k + 1 = dx of kernel point
    k = i * kw + j); mask: B x K x Ho x Wo modulations; weight: O x C x kh x kw; bias: O or None.
    Returns B x O x Ho x Wo. Zero offsets with a unit mask give F.conv2d's result.
    """
    batch, channels = x.shape[:2]
    out_channels, _, kernel_h, kernel_w = weight.shape
    points = kernel_h * kernel_w
    out_h, out_w = offset.shape[-2:]
    device = x.device
    offset = offset.float().view(batch, points, 2, out_h, out_w)
    base_rows = (torch.arange(kernel_h, device=device) * dilation).repeat_interleave(kernel_w).view(points, 1, 1) \
        + (torch.arange(out_h, device=device) * stride - padding).view(1, out_h, 1)
    base_cols = (torch.arange(kernel_w, device=device) * dilation).repeat(kernel_h).view(points, 1, 1) \
        + (torch.arange(out_w, device=device) * stride - padding).view(1, 1, out_w)
    rows = (base_rows.float() + offset[:, :, 0]).flatten(1)
    cols = (base_cols.float() + offset[:, :, 1]).flatten(1)
    columns = sampler(x, rows, cols).view(batch, channels, points, out_h * out_w)
    columns = columns * mask.to(columns.dtype).view(batch, 1, points, out_h * out_w)
    out = weight.flatten(1).to(columns.dtype) @ columns.view(batch, channels * points, out_h * out_w)
    out = out.view(batch, out_channels, out_h, out_w)
    return out if bias is None else out + bias.to(out.dtype).view(1, -1, 1, 1)


class ModulatedDeformConv2d(nn.Module):
    """mmcv's `ModulatedDeformConv2dPack` (the `DCNv2` conv type of mmdet configs): a deformable
    K = kh x kw convolution whose offsets and modulations a `conv_offset` convolution predicts.

    Parameters: `weight` O x C x kh x kw, optional `bias`, `conv_offset` (3K outputs, with bias).
    forward(B x C x H x W) -> B x O x Ho x Wo. `sampler` picks the bilinear sampler (see module).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size, kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.zeros(out_channels)) if bias else None)
        self.conv_offset = nn.Conv2d(in_channels, 3 * kernel_size * kernel_size, kernel_size, stride=stride,
                                     padding=padding, dilation=dilation)
        self.sampler: Sampler = sample_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        predicted = self.conv_offset(x)
        points = predicted.shape[1] // 3
        offset, modulation = predicted[:, :2 * points], predicted[:, 2 * points:]
        return modulated_deform_conv2d(x, offset, modulation.sigmoid(), self.weight, self.bias, stride=self.stride,
                                       padding=self.padding, dilation=self.dilation, sampler=self.sampler)
