"""OpenCV 4's fixed-point bilinear warp (realtime.models.fixed_point_warp). Its bit-exactness
against the reference's own OpenCV 4 warp is tested through SCHP's fixture (test_schp.py)."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from _paths import datasets_dir

from realtime.models.fixed_point_warp import source_positions, warp_affine_linear

ROTATION = cv2.getRotationMatrix2D((60.0, 150.0), 30.0, 0.8)


def lip_image() -> np.ndarray:
    return cv2.imread(str(datasets_dir() / "lip" / "img_val_86_185913.jpg"), cv2.IMREAD_COLOR)


def test_positions_are_rounded_to_a_32nd_of_a_pixel():
    """x' = 2x + 0.3 back to the source: x = (x' - 0.3) / 2, to the nearest 1/32."""
    sx, ax, sy, ay = source_positions(np.array([[2.0, 0.0, 0.3], [0.0, 1.0, 0.0]]), (8, 2))
    exact = (np.arange(8) - 0.3) / 2
    np.testing.assert_array_equal(sx[0] + ax[0] / 32, np.round(exact * 32) / 32)
    assert (sy == [[0] * 8, [1] * 8]).all() and not ay.any()


def test_uint8_warp_is_within_the_quantisation_of_an_exact_warp():
    """Against the installed OpenCV (4: identical; 5: exact positions, a 64th of a pixel away at
    most, i.e. a few levels on strong edges)."""
    image = lip_image()
    ours = warp_affine_linear(torch.from_numpy(image), ROTATION, (130, 377)).numpy()
    theirs = cv2.warpAffine(image, ROTATION, (130, 377), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0))
    difference = np.abs(ours.astype(int) - theirs)
    assert difference.max() <= 8 and difference.mean() < 0.5


def test_float_warp_keeps_constants_and_the_zero_border():
    ones = torch.full((377, 130, 2), 7.0)
    warped = warp_affine_linear(ones, ROTATION, (130, 377)).numpy()
    assert set(np.unique(warped[140:160, 50:70])) == {7.0}  # the four weights sum to exactly 1
    assert warped[0, 0].tolist() == [0.0, 0.0]  # outside the rotated image: the border


def test_bands_are_rows_of_the_whole_warp():
    image = torch.from_numpy(lip_image()[..., :1].astype(np.float32))
    whole = warp_affine_linear(image, ROTATION, (130, 377))
    torch.testing.assert_close(warp_affine_linear(image, ROTATION, (130, 377), range(100, 164)), whole[100:164],
                               rtol=0, atol=0)
