"""squat30's red mannequin cut out of its frames and pasted into scenes of several people
(crossings, entrances, a light switched on), for tests of who is who."""
from __future__ import annotations

import cv2
import numpy as np


def mannequin_masks(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The mannequin's pixels in each RGB frame [H, W, 3] of squat30 (at any scale): its saturated
    ones (HSV saturation > 90; the studio is grey), [H, W] bool."""
    return [cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1] > 90 for rgb in frames]


def tallest(masks: list[np.ndarray]) -> int:
    """The index of the mask whose top row is highest: the mannequin standing tallest."""
    return int(np.argmin([np.nonzero(mask.any(axis=1))[0][0] for mask in masks]))


def paste(canvas: np.ndarray, rgb: np.ndarray, mask: np.ndarray, left: int) -> np.ndarray:
    """Pastes `rgb`'s pixels under `mask` (both as high as the canvas or less) into `canvas`
    [H, W, 3] in place, at its bottom with their left edge at x = `left` (cut at the canvas's
    edges). Returns the canvas pixels pasted, [H, W] bool."""
    height, width = mask.shape
    x0, x1 = max(left, 0), min(left + width, canvas.shape[1])
    pasted = np.zeros(canvas.shape[:2], bool)
    if x0 < x1:
        inside = mask[:, x0 - left:x1 - left]
        pasted[canvas.shape[0] - height:, x0:x1] = inside
        canvas[pasted] = rgb[:, x0 - left:x1 - left][inside]
    return pasted
