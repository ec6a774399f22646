"""Sharper person mask: MediaPipe's selfie segmenter (the general 256 x 256 model, run by the
PyTorch `SelfieSegmenter` of realtime.models.selfie_segmenter from its .tflite weights, no
mediapipe needed) fused with the parser's person probability, as a ResultStage before the
tracker and the smoother (which smooths the fused probability, `ParseResult.person_probs`).

BodyPix's person probability lives on a stride-16 grid, so its edges are coarse; the selfie
segmenter's 256 x 256 mask follows edges closely but misses people in crowds and tight crops.
The fused probability moves BodyPix's 30% of the way towards the selfie segmenter's: where
BodyPix is sure (p < 0.29 or p > 0.71) its decision stands, near its edge the selfie mask
decides.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from realtime.imaging import fill_from_nearest
from realtime.models.grid_upsample import GridUpsampler
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

PERSON_MASK_SOURCES = ("auto", "parser", "selfie")
SELFIE_WEIGHT = 0.3
_EPS = 1e-6


class SelfieMaskStage(ResultStage):
    """Replaces the person mask by the fused one and sets `person_probs`: pixels it adds take the
    part whose upsampled grid logit is highest there and join the nearest person; pixels it drops
    lose their part and their person. Results without the person probability (`part_probs`) pass
    unchanged."""

    name = "selfie-mask"

    def __init__(self, *, weight: float = SELFIE_WEIGHT, device: str = "cpu") -> None:
        from realtime.models import resolve_device
        from realtime.models.selfie_segmenter import SelfieSegmenter

        self._segmenter = SelfieSegmenter("selfie", device=resolve_device(device))
        self._upsampler = GridUpsampler()
        self.weight = weight

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        if parse.part_probs is None:
            return parse
        frame_hw = parse.labels.shape
        (selfie,) = self._segmenter([np.ascontiguousarray(frame.image)])
        if selfie.shape != frame_hw:
            selfie = cv2.resize(selfie, frame_hw[::-1], interpolation=cv2.INTER_LINEAR)
        parser_person = self._upsampler.upsample(parse.part_probs[0], frame_hw)
        fused_probs = parser_person + self.weight * (selfie - parser_person)
        fused = fused_probs > 0.5
        decided_by_selfie = fused != (parser_person > 0.5)
        person = np.where(decided_by_selfie, fused, parse.person_mask)
        added = person & ~parse.person_mask
        labels = np.where(person, parse.labels, 0).astype(np.uint8)
        ys, xs = np.nonzero(added)
        if len(ys):
            labels[ys, xs] = self._upsampler.argmax_at(np.log(parse.part_probs[1:] + _EPS), frame_hw, ys, xs) + 1
        return replace(parse, labels=labels, person_mask=person, people=_people_within(parse.people, person, added),
                       person_probs=fused_probs)

    def reset(self) -> None:
        """The segmenter keeps nothing between frames."""

    def close(self) -> None:
        """Nothing to release (the network is freed with the stage)."""


def _people_within(people: list[PersonParse], person: np.ndarray, added: np.ndarray) -> list[PersonParse]:
    """Each person's mask cut to `person`, and the `added` pixels given to the nearest person."""
    cut = [replace(one, mask=one.mask & person) for one in people]
    if not cut or not added.any():
        return cut
    if len(cut) == 1:
        return [replace(cut[0], mask=cut[0].mask | added)]
    owner = np.full(person.shape, -1, np.int32)
    for index, one in enumerate(cut):
        owner[one.mask] = index
    nearest = fill_from_nearest(owner)
    return [replace(one, mask=one.mask | (added & (nearest == index))) for index, one in enumerate(cut)]
