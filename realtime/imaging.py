"""General image helpers on numpy arrays: corner-aligned resampling, dense optical flow at any
size, sampling at positions and along a dense flow, filling from the nearest labelled pixel,
uint8 images to a network's float input, a mask's box and pixels, sigmoid / softmax, and the
fast guided filter."""
from __future__ import annotations

import math

import cv2
import numpy as np


def resample_corner_aligned(image: np.ndarray, out_hw: tuple[int, int], interpolation: int) -> np.ndarray:
    """h x w (x C) array -> out_hw with corners aligned (pixel i sits at i * (h - 1) / (H - 1)),
    either way in size; `interpolation` is cv2.INTER_LINEAR or cv2.INTER_NEAREST."""
    (in_h, in_w), (out_h, out_w) = image.shape[:2], out_hw
    inverse = np.array([[(in_w - 1) / max(out_w - 1, 1), 0, 0], [0, (in_h - 1) / max(out_h - 1, 1), 0]])
    return cv2.warpAffine(image, inverse, (out_w, out_h), flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def sample_at(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, interpolation: int,
              border_value: float | None = None) -> np.ndarray:
    """h x w (x C) image read at float32 pixel positions (xs, ys), both of one shape -> that
    shape (x C) (cv2.remap). Positions outside the image read its nearest edge pixel, or
    `border_value` when one is given."""
    if border_value is None:
        return cv2.remap(image, xs, ys, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(image, xs, ys, interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def warp_by_flow(image: np.ndarray, flow: np.ndarray, interpolation: int,
                 border_value: float | None = None) -> np.ndarray:
    """H x W (x C) image pulled along an H x W x 2 float32 flow (pixels, x then y): output pixel
    (x, y) is the image at (x + flow_x, y + flow_y); borders as in `sample_at`."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return sample_at(image, xs + flow[..., 0], ys + flow[..., 1], interpolation, border_value)


def dense_flow(dis: cv2.DISOpticalFlow, image: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """H x W x 2 float32 flow (pixels, x then y) from each pixel of `image` to where it was in
    `previous` (both H x W uint8 grey, any size down to 1 x 1) by `dis`.

    DIS picks its coarsest pyramid level as min(round(log2(long / (4 * patch))),
    floor(log2(floor(short / patch)))); below its finest level (an image under patch * 2**finest
    on the short side, or about 4 * patch * 2**(finest - 0.5) on the long side) it re-picks the
    levels from the width alone, reads past the short side's coarse levels (OpenCV 5.0.0: a
    segfault for 320 x 20 .. 31 at the ultrafast preset) or fails a resize. Smaller images are
    therefore padded with their edge pixels up to those sides and the flow is cropped back."""
    patch, finest = dis.getPatchSize(), dis.getFinestScale()
    short_side = patch * 2 ** finest
    long_side = math.ceil(4 * patch * 2 ** (finest - 0.5))
    height, width = image.shape
    padded_h, padded_w = max(height, short_side), max(width, short_side)
    if max(padded_h, padded_w) < long_side:
        if padded_w >= padded_h:
            padded_w = long_side
        else:
            padded_h = long_side
    if (padded_h, padded_w) == (height, width):
        return dis.calc(image, previous, None)
    pad = (0, padded_h - height, 0, padded_w - width)
    flow = dis.calc(cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE),
                    cv2.copyMakeBorder(previous, *pad, cv2.BORDER_REPLICATE), None)
    return np.ascontiguousarray(flow[:height, :width])


def fill_from_nearest(labels: np.ndarray, empty: int = -1) -> np.ndarray:
    """h x w int labels: every cell holding `empty` takes the label of the nearest labelled cell
    (L2); returned as is where every cell or none is labelled."""
    labelled = labels != empty
    if labelled.all() or not labelled.any():
        return labels
    _, nearest = cv2.distanceTransformWithLabels((~labelled).view(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    return labels[labelled][nearest - 1]


def touching(mask: np.ndarray, seeds: np.ndarray, reach: int = 0) -> np.ndarray:
    """h x w bool: the cells of `mask` (h x w bool) in its 8-connected blobs that hold a cell of
    `seeds` (h x w bool); blobs less than 2 * `reach` cells apart (in x and in y) count as one."""
    joined = mask.view(np.uint8)
    if reach:
        joined = cv2.dilate(joined, np.ones((2 * reach + 1,) * 2, np.uint8))
    _, blobs = cv2.connectedComponents(joined, connectivity=8)
    held = np.zeros(blobs.max() + 1, bool)
    held[blobs[seeds & mask]] = True
    held[0] = False
    return held[blobs] & mask


def to_nchw_float(images: np.ndarray, divisor: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """N x H x W x C uint8 images -> N x C x H x W float32 network input, images / divisor - offset
    (one transposing copy, then in place: PyTorch's permute().float() on the NHWC tensor costs
    several times more on a busy CPU)."""
    batch = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)
    if divisor != 1.0:
        batch /= divisor
    if offset:
        batch -= offset
    return batch


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of a H x W bool mask's pixels; None when it has none."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    return (x, y, x + w, y + h) if w and h else None


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two H x W bool masks of one shape, 0..1; 1.0 when both are
    empty (they agree that nothing is there)."""
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def mask_nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of an H x W bool mask (ys, xs in row-major order), searched only in the box of
    its pixels (a person's pixels are a small part of the frame)."""
    box = mask_box(mask)
    if box is None:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    ys += y0
    xs += x0
    return ys, xs


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise 1 / (1 + exp(-x)), in the input's float dtype (exp overflowing for very
    negative logits gives exactly 0)."""
    with np.errstate(over="ignore"):
        probs = np.exp(-logits)
    probs += 1.0  # in place: frame-size maps pass here
    return np.reciprocal(probs, out=probs)


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Probabilities along `axis` (max-shifted exp, normalised), in the input's float dtype."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def fast_guided_filter(guide: np.ndarray, source: np.ndarray, *, radius_frac: float = 0.01, eps: float = 1e-3,
                       long_side: int = 384) -> np.ndarray:
    """Edge-aware refinement of `source` (H x W float32, e.g. a probability upsampled from a
    coarse mask) by `guide` (H x W float32 grey image in [0, 1]): the output follows the guide's
    edges where `source` changes. The fast guided filter: the local linear coefficients are
    computed on copies scaled so their long side is `long_side` pixels, with a box radius of
    `radius_frac` of it, then upsampled and applied at full size. eps: the regulariser (larger =
    smoother, fewer edges kept).

    Source: K. He, J. Sun, X. Tang, "Guided Image Filtering" (ECCV 2010, TPAMI 2013), and K. He,
    J. Sun, "Fast Guided Filter" (arXiv:1505.00996)."""
    h, w = guide.shape
    scale = min(1.0, long_side / max(h, w))
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    guide_small = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
    source_small = cv2.resize(source, small, interpolation=cv2.INTER_AREA)
    radius = max(1, round(radius_frac * max(small)))

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1))

    mean_guide, mean_source = box(guide_small), box(source_small)
    covariance = box(guide_small * source_small) - mean_guide * mean_source
    variance = box(guide_small * guide_small) - mean_guide * mean_guide
    a = covariance / (variance + eps)
    b = mean_source - a * mean_guide
    return cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR) * guide + \
        cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
