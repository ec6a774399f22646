"""Top-down body parts: BodyPix run again on a square crop around each person at the network's full
input, so a person far from the camera gets as many network cells as one close to it (the
top-down scheme of single-person parsers such as CE2P and SCHP, here with BodyPix's part head).

A ResultStage after the smoother: the person mask, the people and their IDs stay as the earlier
stages made them; only which part each of a person's pixels is comes from that person's crop
(the argmax of the crop's bilinearly upsampled part logits, as the parser labels a frame). All
crops run as one batch. Pixels of the person mask that no person owns keep their labels.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from realtime.models.bodypix import BodyPixParser
from realtime.models.grid_upsample import GridUpsampler
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult

PARTS_MODES = ("full-frame", "top-down")
CROP_MARGIN = 0.1
MIN_PERSON_PIXELS = 64


@dataclass(frozen=True)
class SquareBox:
    """A square of `side` pixels with its top-left corner at (x0, y0) in frame pixels; it may
    reach past the frame's edges."""

    x0: int
    y0: int
    side: int

    @classmethod
    def around(cls, mask: np.ndarray, margin: float = CROP_MARGIN) -> SquareBox:
        """The square centred on `mask`'s bounding box, its longer side plus `margin` of it on
        each end."""
        ys, xs = np.nonzero(mask)
        y_min, y_max, x_min, x_max = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        side = int(np.ceil(max(y_max - y_min, x_max - x_min) * (1 + 2 * margin)))
        return cls(int((x_min + x_max - side) // 2), int((y_min + y_max - side) // 2), side)

    def crop(self, rgb: np.ndarray, out: int) -> np.ndarray:
        """The box's pixels (black past the frame's edges) resized to out x out."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = self.x0, self.y0, self.x0 + self.side, self.y0 + self.side
        inside = rgb[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
        padded = cv2.copyMakeBorder(inside, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0),
                                    cv2.BORDER_CONSTANT, value=(0, 0, 0))
        interpolation = cv2.INTER_AREA if self.side > out else cv2.INTER_LINEAR
        return cv2.resize(padded, (out, out), interpolation=interpolation)

    def to_crop(self, ys: np.ndarray, xs: np.ndarray, out: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame pixel centres -> the nearest pixels of the out x out crop."""
        scale = out / self.side

        def one(values: np.ndarray, start: int) -> np.ndarray:
            return np.clip(np.floor((values - start + 0.5) * scale), 0, out - 1).astype(np.intp)

        return one(ys, self.y0), one(xs, self.x0)


class TopDownPartsStage(ResultStage):
    """Relabels each person's pixels from their own crop. `parser`: a BodyPix parser (its own
    instance: the stage calls it from the pipeline's worker thread); its internal size is the
    crop's side."""

    name = "top-down-parts"

    def __init__(self, parser: BodyPixParser, *, margin: float = CROP_MARGIN) -> None:
        self.parser = parser
        self.margin = margin
        self._upsampler = GridUpsampler()

    @property
    def crop_side(self) -> int:
        """The network input's side for a square crop (k * stride + 1 pixels)."""
        side = self.parser.internal_size
        return self.parser.input_size((side, side))[0]

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        people = [(index, SquareBox.around(person.mask, self.margin)) for index, person in enumerate(parse.people)
                  if int(person.mask.sum()) >= MIN_PERSON_PIXELS]
        if not people:
            return parse
        out = self.crop_side
        prepared = self.parser.preprocess([box.crop(frame.image, out) for _, box in people])
        part_logits = self.parser.infer(prepared.batch, heads=("part_heatmaps",))["part_heatmaps"].float().cpu().numpy()
        labels = parse.labels.copy()
        for (index, box), logits in zip(people, part_logits):
            ys, xs = np.nonzero(parse.people[index].mask)
            crop_ys, crop_xs = box.to_crop(ys, xs, out)
            labels[ys, xs] = self._upsampler.argmax_at(logits, (out, out), crop_ys, crop_xs) + 1
        return replace(parse, labels=labels)

    def reset(self) -> None:
        """The stage keeps nothing between frames."""

    def close(self) -> None:
        """Nothing to release (the network is freed with the stage)."""
