"""BlazePose keypoints from the PyTorch networks (no mediapipe): a top-down ResultStage.

Per frame: the people tracked from the previous frame give their ROIs (from their auxiliary
landmarks, as MediaPipe does; none after the frame's size or placement changed); when fewer than
`max_people` are tracked the detector looks for more (every frame while nobody is tracked, on the
frame after a followed person was lost, else every `redetect_every` frames), new detections
centred on a tracked person's hips are dropped, and the parser's people that no ROI is centred
in get an ROI around their mask (the detector misses people small in the frame or facing away);
the most likely reading small in the frame is also looked for by the detector on a crop around
it, batched with the frame (a person ~160 px tall in 1280 x 720 is ~28 px in the detector's view of
the frame; a parser that reads no person gives its person mask as the one reading);
the landmark network runs once over all ROIs as one batch. People whose pose flag falls under
`min_presence` are dropped; a person found on the crop (and lying in it) or in a parser's ROI is
kept only when the network is sure of them, in a parser's ROI also only when their landmarks lie
in that reading (MIN_READING_*).

Each person's COCO-17 keypoints (BLAZEPOSE_TO_COCO, visibility as the score, frame pixels) go to
the parsed person whose mask holds most of them, whose score becomes their mean visibility (so
the best person is the one BlazePose sees most of); a person no parsed person owns joins the result
with the landmark network's segmentation (warped back from its ROI) as its mask. The result holds
at most `max_people`: parsed people BlazePose does not follow make way, the weakest first (with
one person, BodyPix reading one and BlazePose following another gave two). With
`segmentation`, when two or more people are followed, their pixels are split by their
segmentations (_split_by_segmentation: BodyPix gives a limb swinging past someone to them), and
the people's segmentations, as one frame-size probability (the most likely person at each
pixel), become the result's `person_probs`, which the person-mask stage refines.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import cv2
import numpy as np
import torch

from realtime.models.blazepose import BLAZEPOSE_TO_COCO
from realtime.models.blazepose_detector import BlazePoseDetector
from realtime.models.blazepose_landmark import (
    INPUT_SIZE,
    NUM_LANDMARKS,
    ROI_SCALE,
    BlazePoseLandmarker,
    PoseLandmarks,
    Roi,
    roi_from_points,
)
from realtime.imaging import mask_box, sigmoid
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

MIN_PRESENCE = 0.5
# A parser's reading no ROI covers gets one of its own when it has this many pixels; the person
# found there is followed when the network is this sure of them and this share of their visible
# landmarks lie in the reading (a close-up's crop, a torso without a head, gets pose flags of
# 0.6-0.8 and a poor segmentation; people seen whole, 0.97-1.0).
MIN_READING_PIXELS = 1024
MIN_READING_PRESENCE = 0.9
MIN_READING_INSIDE = 0.4
# A reading this small in the frame (its box's longer side at most this share of the frame's longer
# side) is also looked for by the detector on a crop around it, this multiple of that side (of
# 2.5-8, the one that found the person most often on squat and push-up clips shrunk into 1280 x 720).
SMALL_READING_SHARE = 0.125
MIN_SMALL_READING_PIXELS = 64
CROP_SCALE = 4.0
MAX_CROP_ROI = 2.0


class BlazePoseTorchStage(ResultStage):
    name = "blazepose-torch"

    def __init__(self, *, max_people: int = 1, device: str | torch.device = "cpu",
                 min_presence: float = MIN_PRESENCE, redetect_every: int = 10, segmentation: bool = True,
                 backend: str = "auto", dtype: str = "fp32") -> None:
        from realtime.models import resolve_device

        target = resolve_device(device)
        self.detector = BlazePoseDetector(device=target, backend=backend, dtype=dtype)
        self.landmarker = BlazePoseLandmarker(device=target, backend=backend, dtype=dtype)
        self.max_people = max_people
        self.min_presence = min_presence
        self.redetect_every = redetect_every
        self.segmentation = segmentation
        self._tracked: list[Roi] = []
        self._since_detection = 0
        self._geometry: tuple | None = None  # the last frame's own size and placement in the image

    def people(self, rgb: np.ndarray, readings: Sequence[np.ndarray] = ()) -> list[PoseLandmarks]:
        """BlazePose landmarks of up to max_people people in `rgb`, updating the tracked ROIs.
        `readings`: the parser's people (H x W bool masks, most likely first). At a detection, the
        most likely reading that no ROI's centre falls in and that is small in the frame
        (_crop_box) is also looked for by the detector on a crop around it, in one batch with the
        frame; then each reading no ROI's centre falls in gets an upright ROI around its mask. A
        person found on the crop or in a reading's ROI is followed when the network is sure of
        them (MIN_READING_PRESENCE), and, in a reading's ROI, when enough of their visible
        landmarks lie in that mask (MIN_READING_INSIDE: a person too small or too turned away for
        the detector)."""
        rois = list(self._tracked)
        hinted: list[np.ndarray] = []
        found_on_crop: set[int] = set()  # indices in `rois`
        self._since_detection += 1
        if len(rois) < self.max_people and (not rois or self._since_detection >= self.redetect_every):
            self._since_detection = 0
            crop = next((box for mask in readings if not any(_centre_in(roi, mask) for roi in rois)
                         and (box := _crop_box(mask)) is not None), None)
            images = [rgb] if crop is None else [rgb, rgb[crop[1]:crop[3], crop[0]:crop[2]]]
            found = self.detector(images, max_people=self.max_people)
            candidates = [(roi_from_points(*d.keypoints[:2]), False) for d in found[0]]
            if crop is not None:
                on_crop = [roi_from_points(*(d.keypoints[:2] + crop[:2])) for d in found[1]]
                candidates += [(roi, True) for roi in on_crop if _fits(roi, crop)]
            for roi, cropped in candidates:
                if len(rois) < self.max_people and not any(_same_body(roi, other) for other in rois):
                    if cropped:
                        found_on_crop.add(len(rois))
                    rois.append(roi)
            for mask in readings:
                if len(rois) + len(hinted) < self.max_people and mask.sum() >= MIN_READING_PIXELS \
                        and not any(_centre_in(roi, mask) for roi in rois):
                    hinted.append(mask)
        found = self.landmarker(rgb, rois + [_upright_roi(mask) for mask in hinted])
        if any(p.score < self.min_presence for p in found[:len(self._tracked)]):
            self._since_detection = self.redetect_every  # someone followed was lost: look again next frame
        people = [p for i, p in enumerate(found[:len(rois)])
                  if p.score >= (MIN_READING_PRESENCE if i in found_on_crop else self.min_presence)]
        people += [p for p, mask in zip(found[len(rois):], hinted)
                   if p.score >= MIN_READING_PRESENCE and _landmarks_inside(p, mask) >= MIN_READING_INSIDE]
        people = _distinct(people)
        self._tracked = [p.next_roi() for p in people]
        return people

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        geometry = frame.geometry
        if geometry != self._geometry:  # a stream whose size changed: the tracked ROIs are of another picture
            self._tracked = []
            self._geometry = geometry
        people = list(parse.people)
        if not people and parse.person_mask.any():  # a parser that reads no person: its person mask is one
            people = [PersonParse(0, parse.person_mask, None, 0.0)]
        found = self.people(frame.image, [p.mask for p in sorted(people, key=lambda p: -p.score)])
        if not found:
            return parse
        h, w = frame.image.shape[:2]
        poses = [np.column_stack([p.xyz[BLAZEPOSE_TO_COCO, :2], p.visibility[list(BLAZEPOSE_TO_COCO)]]).astype(np.float32)
                 for p in found]
        taken: set[int] = set()
        followed: dict[int, int] = {}  # index in `found` -> index in `people`
        # each a full-frame warp: made for the person-mask stage only when it refines with them
        segmentations = [_frame_logits(person, (h, w)) for person in found] if self.segmentation else None
        for index, (pose, person) in enumerate(zip(poses, found)):
            landmarks = np.column_stack([person.xyz[:NUM_LANDMARKS], person.visibility[:NUM_LANDMARKS],
                                         person.presence[:NUM_LANDMARKS]]).astype(np.float32)
            world = person.world[:NUM_LANDMARKS].astype(np.float32)
            owners = [(_points_inside(p.mask, pose), i) for i, p in enumerate(people) if i not in taken]
            count, best = max(owners, default=(0, -1))
            if count > 0:
                taken.add(best)
                people[best] = replace(people[best], keypoints=pose, score=float(pose[:, 2].mean()),
                                       landmarks=landmarks, world_landmarks=world)
                followed[index] = best
            else:
                logits = segmentations[index] if segmentations is not None else _frame_logits(person, (h, w))
                mask = logits > 0
                people.append(PersonParse(max((p.id for p in people), default=-1) + 1, mask, pose,
                                          float(pose[:, 2].mean()), landmarks, world))
                taken.add(len(people) - 1)
                followed[index] = len(people) - 1
        if len(people) > self.max_people:  # parsed people BlazePose does not follow are dropped first, weakest first
            spare = sorted((i for i in range(len(people)) if i not in taken), key=lambda i: people[i].score)
            dropped = set(spare[:len(people) - self.max_people])
            kept = [i for i in range(len(people)) if i not in dropped]
            people = [people[i] for i in kept]
            followed = {index: kept.index(at) for index, at in followed.items()}
        if not self.segmentation:
            return replace(parse, people=people)
        if len(followed) > 1:
            people = _split_by_segmentation(people, followed, segmentations)
        logits = segmentations[0]  # the most likely person at each pixel, in place: the warps are this call's own
        for other in segmentations[1:]:
            np.maximum(logits, other, out=logits)
        person_probs = sigmoid(np.clip(logits, -30.0, 30.0, out=logits))  # float32, as its logits
        return replace(parse, people=people, person_probs=person_probs)

    def warm_up(self, frame: Frame, parse: ParseResult) -> ParseResult:
        """Also runs the landmark network on one ROI over the whole frame and the detector on the
        frame and a crop (the batch of two `people` sends): a frame where nobody is detected (a
        blank one) or no reading is small would not reach them, and a graph takes a second to
        build."""
        height, width = frame.image.shape[:2]
        self.landmarker(frame.image, [_upright_roi(np.ones((height, width), bool))])
        self.detector([frame.image, frame.image[:height // 2, :width // 2]])
        return self(frame, parse)

    def reset(self) -> None:
        """Forgets the tracked people (a new source)."""
        self._tracked = []
        self._since_detection = 0
        self._geometry = None

    def close(self) -> None:
        self._tracked = []


def _same_body(roi: Roi, other: Roi) -> bool:
    """Two ROIs centred on nearly the same hips (within a fifth of the larger ROI's side)."""
    return np.hypot(roi.cx - other.cx, roi.cy - other.cy) < 0.2 * max(roi.size, other.size)


def _centre_in(roi: Roi, mask: np.ndarray) -> bool:
    x, y = int(round(roi.cx)), int(round(roi.cy))
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and bool(mask[y, x])


def _crop_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """A square crop (x0, y0, x1, y1, clipped to the frame) centred on a parser's reading too small
    for the detector on the whole frame (its box's longer side at most SMALL_READING_SHARE of the
    frame's longer side, at least MIN_SMALL_READING_PIXELS pixels), CROP_SCALE times that side:
    a 160 px tall person in 1280 x 720 is ~28 px in the detector's 224 x 224 input, and BodyPix
    may read only their torso. None for any other reading."""
    box = mask_box(mask)
    if box is None or mask.sum() < MIN_SMALL_READING_PIXELS:
        return None
    height, width = mask.shape
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    if side > SMALL_READING_SHARE * max(height, width):
        return None
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, CROP_SCALE * side / 2
    return (max(0, int(cx - half)), max(0, int(cy - half)),
            min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half))))


def _fits(roi: Roi, box: tuple[int, int, int, int]) -> bool:
    """Whether a person the detector found on the crop `box` (x0, y0, x1, y1) is one it holds: the
    ROI centred in it and at most MAX_CROP_ROI times its longer side (the detector also "finds"
    a body ten times the crop's size, centred off the frame, in a crop of a street's background)."""
    x0, y0, x1, y1 = box
    return x0 <= roi.cx < x1 and y0 <= roi.cy < y1 and roi.size <= MAX_CROP_ROI * max(x1 - x0, y1 - y0)


def _upright_roi(mask: np.ndarray) -> Roi:
    """An upright square ROI centred on the mask's bounding box, its longer side plus a quarter
    (what a detection of that body would give: MediaPipe's 1.25 scale)."""
    x0, y0, x1, y1 = mask_box(mask)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * ROI_SCALE, 0.0)


def _landmarks_inside(person: PoseLandmarks, mask: np.ndarray) -> float:
    """The share of the person's visible landmarks (visibility >= 0.5; all when none is) that
    lie in `mask`."""
    visible = person.visibility[:NUM_LANDMARKS] >= 0.5
    points = person.xyz[:NUM_LANDMARKS][visible if visible.any() else slice(None)]
    return _points_inside(mask, points) / len(points)


def _distinct(people: list[PoseLandmarks]) -> list[PoseLandmarks]:
    """Drops a person whose hips are a stronger person's (two ROIs that found one body)."""
    kept: list[PoseLandmarks] = []
    for person in sorted(people, key=lambda p: -p.score):
        hips = person.xyz[33, :2]
        if not any(np.hypot(*(hips - other.xyz[33, :2])) < 0.2 * other.roi.size for other in kept):
            kept.append(person)
    return kept


def _split_by_segmentation(people: list[PersonParse], followed: dict[int, int],
                           segmentations: list[np.ndarray]) -> list[PersonParse]:
    """The people BlazePose follows (`followed`: landmark person -> index in `people`) split by
    the landmark network's segmentation of each (`segmentations`: H x W logits, one per landmark
    person): a pixel where one of them finds a person (logit > 0) goes to the one that finds it
    likeliest; a pixel of a person's reading that no segmentation finds a person at goes to
    nobody (the person-mask stage gives it to the nearest person if its mask keeps it). BodyPix
    splits people by its pixels' offsets to the nearest pose, so a limb that swings past another
    person's head joins that person (pose2sim-multi-cam01 from frame ~60: the man's arm and
    shoulder in the standing woman's reading). The pixels of people BlazePose does not follow
    stay theirs, and nobody takes them."""
    indices = list(followed.values())
    box = mask_box(np.logical_or.reduce([people[i].mask for i in indices]))
    if box is None:
        return people
    x0, y0, x1, y1 = box
    region = np.s_[y0:y1, x0:x1]
    likeliest = None
    owner = np.zeros((y1 - y0, x1 - x0), np.intp)  # slot k: landmark person list(followed)[k]
    for slot, index in enumerate(followed):
        logits = segmentations[index][region]
        if likeliest is None:
            likeliest = logits.copy()
            continue
        owner[logits > likeliest] = slot
        np.maximum(likeliest, logits, out=likeliest)
    owner[likeliest <= 0.0] = -1
    for i, person in enumerate(people):
        if i not in indices:
            owner[person.mask[region]] = -1
    split = list(people)
    for slot, i in enumerate(indices):
        mask = people[i].mask.copy()
        mask[region] = owner == slot
        split[i] = replace(people[i], mask=mask)
    return split


def _frame_logits(person: PoseLandmarks, shape: tuple[int, int]) -> np.ndarray:
    """The landmark network's segmentation (ROI logits) warped back onto the frame (H x W float32;
    far negative outside the ROI)."""
    h, w = shape
    return cv2.warpAffine(person.segmentation.astype(np.float32), person.roi.to_roi_matrix(INPUT_SIZE), (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=-100.0)


def _points_inside(mask: np.ndarray, keypoints: np.ndarray) -> int:
    h, w = mask.shape
    xy = np.round(keypoints[:, :2]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return int(mask[xy[inside, 1], xy[inside, 0]].sum())
