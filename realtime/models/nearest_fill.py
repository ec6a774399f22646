"""Filling a label grid from its nearest labelled cell."""
from __future__ import annotations

import cv2
import numpy as np


def fill_from_nearest(labels: np.ndarray, empty: int = -1) -> np.ndarray:
    """h x w int labels: every cell holding `empty` takes the label of the nearest labelled cell
    (L2); returned as is where every cell or none is labelled."""
    labelled = labels != empty
    if labelled.all() or not labelled.any():
        return labels
    _, nearest = cv2.distanceTransformWithLabels((~labelled).view(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    return labels[labelled][nearest - 1]
