"""Exact argmax of bilinearly upsampled grid logits (align_corners geometry), without
upsampling every channel.

Bilinear interpolation is a convex combination of a cell's four corner vectors, so where all
four corners share one argmax, every pixel of the cell has that label. Only pixels in cells
whose corners disagree need the full interpolation, and only where a mask asks for labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.imaging import mask_box, resample_corner_aligned

CHUNK = 4096  # pixels interpolated at a time: 4 x 4096 x 24 float32 fit in a core's cache


@dataclass(frozen=True)
class _Axis:
    cell: np.ndarray  # int32 index of the cell's first corner for every output pixel
    frac: np.ndarray  # float32 position inside the cell, 0..1


def _axis(grid: int, out: int) -> _Axis:
    if grid == 1:
        return _Axis(np.zeros(out, np.int32), np.zeros(out, np.float32))
    position = np.arange(out, dtype=np.float64) * ((grid - 1) / max(out - 1, 1))
    cell = np.minimum(np.floor(position), grid - 2).astype(np.int32)
    return _Axis(cell, (position - cell).astype(np.float32))


class GridUpsampler:
    """Upsamples C x gh x gw grids to H x W frames; caches the geometry of the last sizes."""

    def __init__(self) -> None:
        self._key: tuple | None = None

    def _geometry(self, grid_hw: tuple[int, int], frame_hw: tuple[int, int]) -> None:
        key = (grid_hw, frame_hw)
        if key == self._key:
            return
        (grid_h, grid_w), (height, width) = grid_hw, frame_hw
        self._rows, self._cols = _axis(grid_h, height), _axis(grid_w, width)
        # pixels per cell along each axis (cells are runs of consecutive pixels), and where each run starts
        self._row_counts = np.bincount(self._rows.cell, minlength=max(grid_h - 1, 1))
        self._col_counts = np.bincount(self._cols.cell, minlength=max(grid_w - 1, 1))
        self._row_starts = np.concatenate([[0], np.cumsum(self._row_counts)])
        self._col_starts = np.concatenate([[0], np.cumsum(self._col_counts)])
        self._key = key

    def upsample(self, grid: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """One gh x gw float channel -> H x W, bilinear with corners aligned."""
        return resample_corner_aligned(np.ascontiguousarray(grid, np.float32), frame_hw, cv2.INTER_LINEAR)

    def argmax(self, logits: np.ndarray, frame_hw: tuple[int, int], mask: np.ndarray | None = None) -> np.ndarray:
        """argmax over C of the upsampled C x gh x gw logits -> H x W uint8, exact wherever
        `mask` (H x W bool) is True; elsewhere 0."""
        channels, grid_h, grid_w = logits.shape
        self._geometry((grid_h, grid_w), frame_hw)
        best = logits.argmax(axis=0)
        if grid_h > 1 and grid_w > 1:
            corners = np.stack([best[:-1, :-1], best[:-1, 1:], best[1:, :-1], best[1:, 1:]])
            uniform = (corners == corners[0]).all(axis=0)
            cell_label = np.where(uniform, corners[0], 255).astype(np.uint8)
        else:
            cell_label = np.full((max(grid_h - 1, 1), max(grid_w - 1, 1)), 255, np.uint8)
        labels = cell_label.repeat(self._row_counts, axis=0).repeat(self._col_counts, axis=1)
        if mask is not None:
            labels *= mask
        mixed_rows, mixed_cols = np.nonzero(cell_label == 255)
        if len(mixed_rows):  # look for mixed pixels only in the box of the mixed cells (and of the mask)
            top, bottom = self._row_starts[mixed_rows.min()], self._row_starts[mixed_rows.max() + 1]
            left, right = self._col_starts[mixed_cols.min()], self._col_starts[mixed_cols.max() + 1]
            if mask is not None:
                x0, y0, x1, y1 = mask_box(mask) or (0, 0, 0, 0)
                top, bottom, left, right = max(top, y0), min(bottom, y1), max(left, x0), min(right, x1)
            ys, xs = np.nonzero(labels[top:bottom, left:right] == 255)
            if len(ys):
                ys += top
                xs += left
                labels[ys, xs] = self._interpolated_argmax(logits, ys, xs)
        return labels

    def argmax_at(self, logits: np.ndarray, frame_hw: tuple[int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """argmax over C of the upsampled C x gh x gw logits at the frame pixels (ys, xs) only."""
        self._geometry(logits.shape[-2:], frame_hw)
        return self._interpolated_argmax(logits, ys, xs)

    def _interpolated_argmax(self, logits: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """The bilinear interpolation of every channel at (ys, xs), argmax over channels. Along y
        first, once per run of consecutive pixels in one frame row and one cell column (row-major
        pixels come in such runs, a cell wide), which share their cell's two edges interpolated
        along y; then along x per pixel, CHUNK pixels at a time so the work stays in the CPU
        cache."""
        if not len(ys):
            return np.empty(0, np.uint8)
        grid = np.ascontiguousarray(np.moveaxis(logits, 0, -1), np.float32)  # gh x gw x C
        grid_h, grid_w, channels = grid.shape
        cells = grid.reshape(-1, channels)
        x0 = self._cols.cell[xs]
        new_run = np.empty(len(ys), bool)
        new_run[0] = True
        np.not_equal(ys[1:], ys[:-1], out=new_run[1:])
        new_run[1:] |= x0[1:] != x0[:-1]
        starts = np.flatnonzero(new_run)
        run = np.cumsum(new_run) - 1  # each pixel's run
        run_y, run_x0 = ys[starts], x0[starts]
        y0 = self._rows.cell[run_y]
        top, bottom = y0 * grid_w, np.minimum(y0 + 1, grid_h - 1) * grid_w
        run_x1 = np.minimum(run_x0 + 1, grid_w - 1)
        fy = self._rows.frac[run_y][:, None]
        edges = []
        for column in (run_x0, run_x1):  # a + f (b - a), in place: the left then the right edge along y
            edge, below = cells.take(top + column, axis=0), cells.take(bottom + column, axis=0)
            below -= edge
            below *= fy
            edge += below
            edges.append(edge)
        left_edges, right_edges = edges
        fx = self._cols.frac[xs][:, None]
        best = np.empty(len(ys), np.uint8)
        for start in range(0, len(ys), CHUNK):
            part = slice(start, start + CHUNK)
            left, right = left_edges.take(run[part], axis=0), right_edges.take(run[part], axis=0)
            right -= left  # then along x
            right *= fx[part]
            left += right
            best[part] = left.argmax(axis=1)
        return best


def person_part_labels(upsampler: GridUpsampler, person_logits: np.ndarray, part_logits: np.ndarray,
                       frame_hw: tuple[int, int], person_logit_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """gh x gw person logits and P x gh x gw part logits -> H x W uint8 labels (1 + the part's
    index inside the person, 0 outside) and the H x W bool person mask."""
    person = upsampler.upsample(person_logits, frame_hw) > person_logit_threshold
    return part_labels_inside(upsampler, part_logits, person), person


def part_labels_inside(upsampler: GridUpsampler, part_logits: np.ndarray, person: np.ndarray) -> np.ndarray:
    """P x gh x gw part logits and an H x W bool person mask -> H x W uint8 labels: 1 + the part
    whose upsampled logit is highest, inside the mask; 0 outside."""
    labels = upsampler.argmax(part_logits, person.shape, person)
    labels += person
    return labels
