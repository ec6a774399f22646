"""OpenCV 4's bilinear `warpAffine` (INTER_LINEAR, BORDER_CONSTANT 0), bit for bit, in PyTorch.

Reference code written against OpenCV <= 4.10 (SCHP's crop and its `transform_logits`) gets
OpenCV 4's fixed-point warp: every output pixel's source position is rounded to 1/32 pixel
(INTER_BITS = 5, computed in 1/1024 units with AB_BITS = 10), and the bilinear weights are the
products of the 1/32 fractions; uint8 images sum them as 15-bit integers and round half up,
float32 images sum the four weighted neighbours left to right. OpenCV 5 samples at the exact
position instead, which moves uint8 pixels by up to 3 levels and flips labels near ties, so
parity with those references needs this warp whatever OpenCV is installed.

Source: OpenCV 4.10 modules/imgproc/src/imgwarp.cpp (warpAffine's matrix inversion,
WarpAffineInvoker, remapBilinear, initInterTab2D).
"""
from __future__ import annotations

import numpy as np
import torch

INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10
AB_SCALE = 1 << AB_BITS


def source_positions(matrix: np.ndarray, size_wh: tuple[int, int],
                     rows: range | None = None) -> tuple[np.ndarray, ...]:
    """Output pixels (x, y) of a warp by the 2 x 3 forward `matrix` (source -> output) into
    `size_wh`, in the output rows `rows` (default all) -> OpenCV 4's quantised source positions:
    the integer top-left neighbour (sx, sy) and the fractions (ax, ay) in 1/32 pixel, each
    [len(rows), width] int64."""
    m = np.asarray(matrix, dtype=np.float64).reshape(6)
    # warpAffine inverts the matrix in float64
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * det, m[0] * det
    a12, a21 = -m[1] * det, -m[3] * det
    b1, b2 = -a11 * m[2] - a12 * m[5], -a21 * m[2] - a22 * m[5]
    rows = rows if rows is not None else range(size_wh[1])
    xs, ys = np.arange(size_wh[0], dtype=np.float64), np.arange(rows.start, rows.stop, dtype=np.float64)
    round_delta = AB_SCALE // INTER_TAB_SIZE // 2
    x = np.rint((a12 * ys + b1) * AB_SCALE).astype(np.int64)[:, None] + np.rint(a11 * xs * AB_SCALE).astype(np.int64)
    y = np.rint((a22 * ys + b2) * AB_SCALE).astype(np.int64)[:, None] + np.rint(a21 * xs * AB_SCALE).astype(np.int64)
    x, y = (x + round_delta) >> (AB_BITS - INTER_BITS), (y + round_delta) >> (AB_BITS - INTER_BITS)
    return x >> INTER_BITS, x & (INTER_TAB_SIZE - 1), y >> INTER_BITS, y & (INTER_TAB_SIZE - 1)


def warp_affine_linear(image: torch.Tensor, matrix: np.ndarray, size_wh: tuple[int, int],
                       rows: range | None = None) -> torch.Tensor:
    """`image` [H, W, C] uint8 or float32 (any device) warped by the 2 x 3 forward `matrix` into
    `size_wh` (width, height), as OpenCV 4's cv2.warpAffine(image, matrix, size_wh, INTER_LINEAR,
    BORDER_CONSTANT, 0) computes it -> [len(rows), width, C] of image's dtype: the output rows
    in `rows` only (default all), so that large outputs can be made in bands."""
    if image.dtype not in (torch.uint8, torch.float32) or image.ndim != 3:
        raise ValueError(f"image must be H x W x C uint8 or float32, not {tuple(image.shape)} {image.dtype}")
    height, width, channels = image.shape
    sx, ax, sy, ay = source_positions(matrix, size_wh, rows)
    pixels = image.reshape(-1, channels)
    total = None
    # the four neighbours in OpenCV's order (top left, top right, bottom left, bottom right); one
    # outside the image reads the border value 0: here it reads a pixel of it with weight 0,
    # which adds exactly 0
    for dy, y_weight in ((0, INTER_TAB_SIZE - ay), (1, ay)):
        for dx, x_weight in ((0, INTER_TAB_SIZE - ax), (1, ax)):
            line, column = sy + dy, sx + dx
            inside = (line >= 0) & (line < height) & (column >= 0) & (column < width)
            index = np.clip(line, 0, height - 1) * width + np.clip(column, 0, width - 1)
            weight = torch.from_numpy(y_weight * x_weight * inside).to(image.device).unsqueeze(-1)  # in 1/1024
            values = pixels.index_select(0, torch.from_numpy(index.reshape(-1)).to(image.device))
            values = values.view(*index.shape, channels)
            if image.dtype == torch.uint8:
                term = values.to(torch.int32) * weight.to(torch.int32)
            else:  # exact products: the weights are multiples of 1/1024
                term = values * (weight.to(torch.float32) / AB_SCALE)
            total = term if total is None else total + term  # left to right, as remapBilinear adds
    if image.dtype == torch.uint8:
        # OpenCV's 15-bit weights (w * 32), rounded half up: (32 * total + 2**14) >> 15
        return ((total + (AB_SCALE >> 1)) >> AB_BITS).to(torch.uint8)
    return total
