"""DCNv2 in PyTorch (realtime/models/deform_conv.py) against direct computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from realtime.models.deform_conv import ModulatedDeformConv2d, gathered_deform_conv2d, modulated_deform_conv2d
from realtime.models.resnet import Bottleneck, FrozenBatchNorm2d

IMPLEMENTATIONS = {"mmcv-order": modulated_deform_conv2d, "gathered": gathered_deform_conv2d}


def slow_deform_conv(x, offset, mask, weight, bias, stride, padding, dilation):
    """DCNv2 written out pixel by pixel (mmcv's im2col formula, plain Python floats)."""
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h, out_w = offset.shape[-2:]
    out = torch.zeros(batch, out_channels, out_h, out_w, dtype=torch.float64)

    def pixel(b, c, row, col):
        return float(x[b, c, row, col]) if 0 <= row < height and 0 <= col < width else 0.0

    for b in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                column = torch.zeros(channels, kernel_h, kernel_w, dtype=torch.float64)
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        k = i * kernel_w + j
                        row = oy * stride - padding + i * dilation + float(offset[b, 2 * k, oy, ox])
                        col = ox * stride - padding + j * dilation + float(offset[b, 2 * k + 1, oy, ox])
                        if not (-1 < row < height and -1 < col < width):
                            continue
                        r0, c0 = math.floor(row), math.floor(col)
                        lr, lc = row - r0, col - c0
                        for c in range(channels):
                            value = ((1 - lr) * (1 - lc) * pixel(b, c, r0, c0) + (1 - lr) * lc * pixel(b, c, r0, c0 + 1)
                                     + lr * (1 - lc) * pixel(b, c, r0 + 1, c0) + lr * lc * pixel(b, c, r0 + 1, c0 + 1))
                            column[c, i, j] = value * float(mask[b, k, oy, ox])
                out[b, :, oy, ox] = weight.double().flatten(1) @ column.flatten()
    return out + bias.double().view(1, -1, 1, 1)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)])
def test_zero_offsets_and_unit_mask_are_a_plain_convolution(implementation, stride, padding, dilation):
    generator = torch.Generator().manual_seed(stride * 10 + padding)
    x = torch.randn(2, 5, 11, 9, generator=generator)
    weight = torch.randn(4, 5, 3, 3, generator=generator)
    bias = torch.randn(4, generator=generator)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    offset = torch.zeros(2, 18, *expected.shape[-2:])
    mask = torch.ones(2, 9, *expected.shape[-2:])
    out = IMPLEMENTATIONS[implementation](x, offset, mask, weight, bias, stride=stride, padding=padding,
                                          dilation=dilation)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("stride, size", [(1, (7, 8)), (2, (7, 8)), (1, (1, 3)), (2, (2, 1))])
def test_offsets_and_masks_match_a_pixel_by_pixel_computation(implementation, stride, size):
    """Random offsets and masks; also maps one pixel high or wide (a small frame's last stage)."""
    generator = torch.Generator().manual_seed(stride)
    x = torch.randn(2, 3, *size, generator=generator)
    weight = torch.randn(4, 3, 3, 3, generator=generator)
    bias = torch.randn(4, generator=generator)
    out_hw = (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1
    # shifts up to 3 pixels push many samples past the borders, some wholly outside
    offset = torch.randn(2, 18, *out_hw, generator=generator) * 3
    offset[0, 0, 0, 0] = 0.0  # point 0 of output (0, 0) then reads row -1 exactly: outside
    mask = torch.rand(2, 9, *out_hw, generator=generator)
    out = IMPLEMENTATIONS[implementation](x, offset, mask, weight, bias, stride=stride, padding=1)
    expected = slow_deform_conv(x, offset, mask, weight, bias, stride, 1, 1)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_offset_channels_are_vertical_then_horizontal_and_the_mask_is_the_last_third():
    """mmcv's layout: conv_offset's 27 channels are (o1, o2, mask logits); o1 || o2 holds dy, dx
    of each kernel point in turn. A +1 row shift of every point reads the next row."""
    generator = torch.Generator().manual_seed(3)
    dcn = ModulatedDeformConv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        dcn.weight.copy_(torch.randn(3, 2, 3, 3, generator=generator))
        dcn.conv_offset.weight.zero_()
        offset_bias = torch.zeros(27)
        offset_bias[0:18:2] = 1.0  # dy = +1 for all nine points
        offset_bias[18:] = 50.0  # sigmoid(50) = 1
        dcn.conv_offset.bias.copy_(offset_bias)
    x = torch.randn(1, 2, 6, 5, generator=generator)
    one_row_down = F.pad(x, (1, 1, 0, 2))  # the padding=1 window, moved one row down
    torch.testing.assert_close(dcn(x), F.conv2d(one_row_down, dcn.weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_implementations_agree_on_a_batch(channels_last):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(3, 16, 12, 10, generator=generator)
    offset = torch.randn(3, 18, 6, 5, generator=generator) * 2
    mask = torch.rand(3, 9, 6, 5, generator=generator)
    weight = torch.randn(8, 16, 3, 3, generator=generator)
    expected = modulated_deform_conv2d(x, offset, mask, weight, stride=2, padding=1)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gathered_deform_conv2d(x, offset, mask, weight, stride=2, padding=1), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_deformable_bottleneck_folds_its_batch_norm():
    generator = torch.Generator().manual_seed(4)
    block = Bottleneck(8, 4, stride=2)
    block.conv2 = ModulatedDeformConv2d(4, 4, 3, stride=2, padding=1)
    with torch.no_grad():
        for name, value in block.state_dict().items():
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5 if name.endswith("running_var")
                        else torch.randn(value.shape, generator=generator) * 0.3)
    x = torch.randn(1, 8, 9, 10, generator=generator)
    expected = block(x)
    block.fold_norms()
    assert not isinstance(block.bn2, FrozenBatchNorm2d) and block.conv2.bias is not None
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
