"""How the parity tests compare with the fixtures (fixtures/README.md, "How to compare")."""
from __future__ import annotations

import cv2
import numpy as np
import torch


def rel_error(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    """max |ours - ref| / max |ref|."""
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else ours
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def read_rgb(path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (cv2's decoder, as the fixtures were written)."""
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
