"""Frames as a player displays them: turned upright by the stream's display matrix, square pixels
(sample aspect ratio), and one output size for the whole run, chosen from the first frame (or
given); a frame of another aspect (a stream that changes resolution, an image sequence of mixed
sizes, any frame under a `size` of another aspect) is scaled with its aspect kept and
letterboxed into it. `Placement` maps the output image back to
the frame's own displayed pixels, in which coordinates are reported."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer

from realtime.types import Placement

log = logging.getLogger(__name__)

Turn = Callable[[np.ndarray], np.ndarray]

_TURNS: dict[str, Turn] = {
    # FFmpeg's transpose filter directions and flips, as numpy views of an H x W (x C) array
    "clock": lambda image: np.rot90(image, -1),
    "cclock": lambda image: np.rot90(image, 1),
    "cclock_flip": lambda image: np.swapaxes(image, 0, 1),
    "clock_flip": lambda image: np.rot90(image, -1)[::-1],
    "hflip": lambda image: image[:, ::-1],
    "vflip": lambda image: image[::-1],
    "hflip+vflip": lambda image: image[::-1, ::-1],
}
SWAPS_AXES = frozenset({"clock", "cclock", "cclock_flip", "clock_flip"})


def display_turn(matrix: np.ndarray | None) -> str | None:
    """The turn that shows a frame upright, from its 3x3 display matrix (FFmpeg's
    AV_FRAME_DATA_DISPLAYMATRIX, 9 int32, 16.16 fixed point), chosen exactly as the ffmpeg tool's
    autorotation chooses it: one of _TURNS' names, or None for a frame shown as stored. Angles
    that are not a multiple of 90 degrees are shown as stored (players differ there)."""
    if matrix is None:
        return None
    m = [float(v) for v in matrix]
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not scale0 or not scale1:
        return None
    theta = -round(-math.degrees(math.atan2(m[1] / scale1, m[0] / scale0)))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return "cclock_flip" if m[3] > 0 else "clock"
    if abs(theta - 270) < 1:
        return "clock_flip" if m[3] < 0 else "cclock"
    if abs(theta - 180) < 1:
        return {(True, True): "hflip+vflip", (True, False): "hflip", (False, True): "vflip"}.get((m[0] < 0, m[4] < 0))
    if abs(theta) < 1 and m[4] < 0:
        return "vflip"
    return None


def frame_display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The decoded frame's display matrix (9 int32), None when it has none.

    Read through a side-data container of our own: `frame.side_data` caches one on the frame
    that points back at it, and that cycle keeps every decoded picture alive until Python's
    cyclic collector runs (on a looped 1080x1920 file, hundreds of MB)."""
    for side_data in SideDataContainer(frame):
        if side_data.type.name == "DISPLAYMATRIX":
            return np.frombuffer(bytes(side_data), dtype=np.int32)
    return None


def turned(image: np.ndarray, turn: str | None) -> np.ndarray:
    """`image` (H x W x C) turned by a display_turn result, as a contiguous array."""
    return image if turn is None else np.ascontiguousarray(_TURNS[turn](image))


def square_pixel_width(width: int, sample_aspect_ratio: Fraction | None) -> int:
    """The width in square pixels of a frame `width` stored pixels wide (height is kept, as
    ffmpeg's `scale=iw*sar:ih` does); an unknown or 0 ratio counts as square."""
    if not sample_aspect_ratio or sample_aspect_ratio == 1:
        return width
    return max(1, round(width * sample_aspect_ratio))


class OutputSize:
    """The run's output size: `size` W x H when given, else the first frame's displayed size
    scaled down to a long side of `max_side`, aspect kept; `fit` says how any frame's displayed
    size goes into it. With `parse_side`, an output whose long side is
    larger has a `parse_size` (see parse_copy_size), what the parser works on."""

    def __init__(self, size: tuple[int, int] | None, max_side: int | None, parse_side: int | None = None) -> None:
        self.size = size
        self.max_side = max_side
        self.parse_side = parse_side
        self._first: tuple[int, int] | None = None
        self._told_change = False  # the user was told once that the frames' size changed
        self.canvas: tuple[int, int] | None = None
        self.parse_size: tuple[int, int] | None = None

    def fit(self, width: int, height: int) -> tuple[tuple[int, int], Placement]:
        """A width x height displayed frame -> (the size to scale it to, its Placement in the
        canvas). Without `size`, the first frame's size fills the canvas; any other frame is
        scaled with its aspect kept and centred, the rest of the canvas black (never stretched).
        The first frame of a size other than the first's is reported once, as a warning."""
        if self._first is None:
            self._first = (width, height)
            self.canvas = _first_output_size(width, height, self.size, self.max_side)
            self.parse_size = parse_copy_size(*self.canvas, self.parse_side)
        canvas_w, canvas_h = self.canvas
        if (width, height) != self._first and not self._told_change:
            self._told_change = True
            log.warning("the frames' size changed from %dx%d to %dx%d: they are letterboxed into the run's %dx%d "
                        "with their aspect kept", *self._first, width, height, *self.canvas)
        if (width, height) == self._first and self.size is None:
            return self.canvas, Placement(canvas_w / width, canvas_h / height)
        scale = min(canvas_w / width, canvas_h / height)
        scaled = max(1, min(canvas_w, round(width * scale))), max(1, min(canvas_h, round(height * scale)))
        return scaled, Placement(scaled[0] / width, scaled[1] / height,
                                 (canvas_w - scaled[0]) // 2, (canvas_h - scaled[1]) // 2)

    def letterboxed(self, image: np.ndarray, placement: Placement) -> np.ndarray:
        """`image`, already scaled as `fit` said, on the canvas (itself when it fills it)."""
        canvas_w, canvas_h = self.canvas
        if image.shape[1] == canvas_w and image.shape[0] == canvas_h:
            return image
        out = np.zeros((canvas_h, canvas_w, image.shape[2]), dtype=image.dtype)
        x0, y0 = int(placement.offset_x), int(placement.offset_y)
        out[y0:y0 + image.shape[0], x0:x0 + image.shape[1]] = image
        return out


def _first_output_size(width: int, height: int, size: tuple[int, int] | None,
                       max_side: int | None) -> tuple[int, int]:
    if size is not None:
        return size
    return scaled_down(width, height, max_side) or (width, height)


def scaled_down(width: int, height: int, max_side: int | None) -> tuple[int, int] | None:
    """(width, height) scaled so the long side is `max_side`, aspect kept; None when it is no
    longer than that already (or `max_side` is None)."""
    if max_side is None or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    return max(round(width * scale), 1), max(round(height * scale), 1)


def parse_copy_size(width: int, height: int, parse_side: int | None) -> tuple[int, int] | None:
    """The size a width x height frame is parsed at: divided by the smallest whole number that
    brings its long side to `parse_side` or less (1080x1920 -> 540x960 at 960; 1280x720 -> 640x360),
    so that area averaging takes its fast path and results scale back up pixel for pixel; None
    when it is no longer than that already (or `parse_side` is None)."""
    if parse_side is None or max(width, height) <= parse_side:
        return None
    factor = math.ceil(max(width, height) / parse_side)
    return max(1, round(width / factor)), max(1, round(height / factor))
