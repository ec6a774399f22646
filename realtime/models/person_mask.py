"""Sharper person mask, as a ResultStage before the tracker and the smoother (which smooths the
result, `ParseResult.person_probs`). BodyPix's person probability lives on a stride-16 grid, so
its edges are coarse:
- with `refine` ("pose": the pose stage ran before and left BlazePose's per-person segmentation
  in `person_probs`), the segmenter's probability averaged with it, refined along the frame's
  edges by a fast guided filter, decides; the parser keeps only the part labels. People are
  BlazePose's; a parser's reading BlazePose does not follow keeps only the pixels the segmenter
  confirms, enough of them (a person BlazePose lost for a while), so one of the parser's false
  readings of a background has none;
- otherwise ("selfie", a Human_seg network; "auto" without BlazePose) the parser's probability
  moved 30 % of the way towards the segmenter's: where the parser is sure (p < 0.29 or
  p > 0.71) its decision stands, near its edge the segmenter decides (the segmenter alone misses
  people in crowds, and the tracker needs them).

Segmenters (`--person-mask`): MediaPipe's selfie segmenter (the general 256 x 256 model, run by
the PyTorch `SelfieSegmenter` of realtime.models.selfie_segmenter from its .tflite weights, no
mediapipe needed) and the six Human_seg networks (realtime.models.humanseg,
320 x 320, from their trainer checkpoints). Parsers that give no part probabilities (M2FP, SCHP:
sharp masks of their own) keep their mask.

Measured on the 502 ccp_dev photos (mean person IoU): BodyPix's own mask 0.794, moved towards the
selfie segmenter 0.846, BlazePose + selfie refined 0.938 (on 101 of them: the selfie segmenter
0.918, BlazePose's segmentation 0.930, their mean 0.936, refined 0.941). On the first 200, one
person each (`--max-people 1`), with the median ms of each part on a busy 2-core CPU: the selfie
segmenter 0.924 (6 ms), refined 0.928; BlazePose's segmentation 0.936 (43 ms: detector and
landmark networks), refined 0.942; their mean 0.939, refined 0.947 (the refinement 5 ms).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from realtime.imaging import fast_guided_filter, fill_from_nearest, mask_nonzero, touching
from realtime.models.grid_upsample import GridUpsampler
from realtime.models.registry import SEGMENTER_SPECS
from realtime.people_memory import apart_reach
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

PERSON_MASK_SOURCES = ("auto", "parser", "selfie", "pose", *SEGMENTER_SPECS)
SEGMENTER_WEIGHT = 0.3
# The refined mask: BlazePose's share of the probability (the segmenter's is the rest), the bias
# taken off it (a person where the weighted mean passes 0.575) and the guided filter's radius (a
# share of its 384-pixel long side), chosen on the ccp_dev photos at even positions (see below).
POSE_WEIGHT = 0.6
REFINE_BIAS = 0.075
REFINE_RADIUS = 0.005
# A parser's person BlazePose does not follow keeps the pixels the segmenter confirms when they
# are this many and this share of the reading.
CONFIRMED_PIXELS = 1024
CONFIRMED_SHARE = 0.6
_EPS = 1e-6

logger = logging.getLogger(__name__)

# frames (H x W x 3 uint8 RGB, one size) -> person probability per frame (h x w float32)
Segmenter = Callable[[list[np.ndarray]], list[np.ndarray]]


def person_segmenter(source: str, device: str = "cpu", backend: str = "auto", dtype: str = "fp32") -> Segmenter:
    """The segmenter a --person-mask source names ("selfie" or a Human_seg network) on `device`,
    its forward on `backend` on the CPU computing in `dtype` (realtime.models.backends).
    WeightsError when its weights are missing."""
    from realtime.models import resolve_device

    if source == "selfie":
        from realtime.models.selfie_segmenter import SelfieSegmenter

        return SelfieSegmenter("selfie", device=resolve_device(device), backend=backend, dtype=dtype)
    from realtime.models.humanseg import load_humanseg

    return load_humanseg(source, device=device, backend=backend, dtype=dtype)


class PersonMaskStage(ResultStage):
    """Replaces the person mask by the refined one and sets `person_probs`: pixels it adds take the
    part whose upsampled grid logit is highest there and join the nearest person; pixels it drops
    lose their part and their person. Results without the person probability (`part_probs`) pass
    unchanged, said once as a warning when `warn_unfused` (a segmenter the user asked for by
    name). `name` is the stage's (its timing's) name."""

    def __init__(self, segmenter: Segmenter, *, name: str, warn_unfused: bool = False, refine: bool = False) -> None:
        self._segmenter = segmenter
        self._upsampler = GridUpsampler()
        self.name = name
        self.refine = refine
        self._warn_unfused = warn_unfused

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        if parse.part_probs is None:
            if self._warn_unfused:
                logger.warning("--person-mask %s: the parser gives no person probability to fuse with; its own "
                               "mask is kept", self.name.removesuffix("-mask"))
                self._warn_unfused = False
            return parse
        frame_hw = parse.labels.shape
        (segmented,) = self._segmenter([np.ascontiguousarray(frame.image)])
        if segmented.shape != frame_hw:
            segmented = cv2.resize(segmented, frame_hw[::-1], interpolation=cv2.INTER_LINEAR)
        if self.refine and parse.person_probs is not None:  # BlazePose's segmentation and the segmenter decide
            grey = cv2.cvtColor(np.ascontiguousarray(frame.image), cv2.COLOR_RGB2GRAY).astype(np.float32)
            grey /= 255.0
            mean = cv2.addWeighted(parse.person_probs, POSE_WEIGHT, segmented, 1 - POSE_WEIGHT, -REFINE_BIAS)
            fused_probs = fast_guided_filter(grey, mean, radius_frac=REFINE_RADIUS)
            np.clip(fused_probs, 0.0, 1.0, out=fused_probs)
            person = fused_probs > 0.5
            people = [one for one in parse.people if one.landmarks is not None]  # BlazePose's people
            unfollowed = _readings_the_segmenter_confirms(parse.people, segmented, person)
            for one in unfollowed:  # a person BlazePose lost (leaning far over, turned away) keeps their pixels
                np.maximum(fused_probs, segmented, out=fused_probs, where=one.mask)  # > 0.5 there: the segmenter's
                person |= one.mask
            people += unfollowed
        else:  # the segmenter alone: it decides only where the parser is unsure
            parser_person = self._upsampler.upsample(parse.part_probs[0], frame_hw)
            fused_probs = parser_person + SEGMENTER_WEIGHT * (segmented - parser_person)
            decided_by_segmenter = (fused_probs > 0.5) != (parser_person > 0.5)
            person = np.where(decided_by_segmenter, fused_probs > 0.5, parse.person_mask)
            people = parse.people
        added = person & ~parse.person_mask
        labels = parse.labels * person
        ys, xs = mask_nonzero(added)
        if len(ys):
            labels[ys, xs] = self._upsampler.argmax_at(np.log(parse.part_probs[1:] + _EPS), frame_hw, ys, xs) + 1
        owned = np.logical_or.reduce([one.mask for one in people]) if people else np.zeros_like(person)
        return replace(parse, labels=labels, person_mask=person, people=_people_within(people, person, person & ~owned),
                       person_probs=fused_probs)

    def reset(self) -> None:
        """The segmenter keeps nothing between frames."""

    def close(self) -> None:
        """Nothing to release (the network is freed with the stage)."""


def _readings_the_segmenter_confirms(people: list[PersonParse], segmented: np.ndarray,
                                     refined: np.ndarray) -> list[PersonParse]:
    """The parser's people BlazePose does not follow (no landmarks) whose reading the segmenter
    confirms, cut to where it does (p > 0.5) and to pixels `refined` (H x W bool: the refined
    mask of BlazePose's people and the segmenter) does not hold: at least CONFIRMED_PIXELS of
    them, CONFIRMED_SHARE of the reading. A person the detector and the landmark network lose for a while (a man leaning far
    over on pose2sim-multi-cam03, frames 44-50: BodyPix reads him, the segmenter agrees on
    76-88 % of the reading) keeps their pixels and their ID; a parser's false reading of the
    background, which the segmenter does not share, still has none."""
    unfollowed = [one for one in people if one.landmarks is None]
    if not unfollowed:
        return []
    free = (segmented > 0.5) & ~refined
    confirmed = []
    for one in unfollowed:
        kept = one.mask & free
        count = int(np.count_nonzero(kept))
        if count >= CONFIRMED_PIXELS and count >= CONFIRMED_SHARE * np.count_nonzero(one.mask):
            confirmed.append(replace(one, mask=kept))
    return confirmed


def _people_within(people: list[PersonParse], person: np.ndarray, added: np.ndarray) -> list[PersonParse]:
    """Each person's mask cut to `person`, and the `added` pixels given to the nearest person
    whose pixels they touch (8-connected within `person`, pieces nearer than the people memory's
    reach joined); added pixels apart from every person
    (someone the pose model has not found yet, walking in) stay nobody's. People with no pixels
    left are gone (a reading the mask removed is nobody: the tracker would give it a new ID on
    every frame)."""
    cut = [kept for one in people if (kept := replace(one, mask=one.mask & person)).mask.any()]
    if not cut or not added.any():
        return cut
    # only the box around the person mask matters: the nearest person pixel of an added pixel
    # lies in it, and the distance transform's paths between them too
    x, y, w, h = cv2.boundingRect(person.view(np.uint8))
    box = np.s_[y:y + h, x:x + w]
    owner = np.full((h, w), -1, np.int32)
    for index, one in enumerate(cut):
        owner[one.mask[box]] = index
    joining = added[box] & touching(person[box], owner >= 0, apart_reach(person.shape))
    nearest = fill_from_nearest(owner) if len(cut) > 1 else np.zeros_like(owner)
    people = []
    for index, one in enumerate(cut):
        mask = one.mask.copy()
        mask[box] |= joining & (nearest == index)
        people.append(replace(one, mask=mask))
    return people
