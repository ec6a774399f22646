"""Temporal smoothing of parse results, a ResultStage named "smooth".

Per frame:
  1. the model's grid scores (person logit, part log-probabilities, from part_probs) are laid on
     a grid `fine_factor` times finer, corner-aligned, so it holds the model's bilinear scores
     exactly and warping it blurs far less than warping the coarse grid would (a finer person
     probability, `person_probs`, is sampled onto it instead of the grid's);
  2. dense optical flow (OpenCV DIS on a small grey copy of the frame, this frame -> the
     previous one) carries the smoothed scores of the previous frame onto this one, so the
     memory follows motion instead of trailing it;
  3. where the flow explains the picture (the previous frame, warped, matches this one) the
     warped memory is blended in with a weight set by `strength`; where it does not (fast
     limbs, occlusion, uncovered background) the current scores win;
  4. labels and the person mask are derived from the blend as the parser derives them
     (bilinear scores, exact argmax), so a still scene converges to the parser's own labels; a
     finer person probability (`person_probs`, at the frame's size) is blended at that size with
     the same flow and trust, and decides the person mask, so its edges stay as sharp as given;
  5. the people's masks are split from the smoothed person mask by an owner map carried with the
     same flow (realtime.people_memory: who the parser read where, who was there a moment ago);
  6. each person's keypoints go through One Euro filters (one per person id).
A scene cut (most of the picture unexplained by the flow) or a new frame size resets the memory;
strength 0 returns the parser's result untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from realtime.analysis.one_euro import OneEuroFilter
from realtime.imaging import dense_flow, resample_corner_aligned, sample_at, sigmoid, warp_by_flow
from realtime.models.grid_upsample import GridUpsampler, part_labels_inside, person_part_labels
from realtime.people_memory import PeopleMemory
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

DEFAULT_STRENGTH = 0.8
_EPS = 1e-6


@dataclass(frozen=True)
class SmoothingTuning:
    """The smoother's constants. At strength s the memory's half-life is s * max_half_life_frames
    frames where the flow explains the picture, and shorter where it does not."""

    max_half_life_frames: float = 90.0
    error_low: float = 6.0  # grey-level error of the warped previous frame below which it is trusted fully
    error_high: float = 24.0  # ... and above which it is not trusted at all
    cut_share: float = 0.5  # a scene cut: more than this share of the frame is unexplained
    fine_factor: int = 4  # the memory's grid is this much finer than the model's
    flow_long_side: int = 320  # pixels of the grey image the flow is computed on
    # a frame-size person probability (`person_probs`) that changed by more than change_high from
    # its carried past is a new decision the flow could not carry (a limb swung over a floor of its
    # colour): it replaces the memory there; changes under change_low are smoothed fully
    change_low: float = 0.1
    change_high: float = 0.4

    def trust(self, error: np.ndarray) -> np.ndarray:
        """How far the flow explains the picture, 0..1, from the warped previous frame's grey-level
        error: fully below error_low, not at all above error_high."""
        return np.clip((self.error_high - error) / (self.error_high - self.error_low), 0.0, 1.0)

    def memory_weight(self, strength: float) -> float:
        """The weight of the warped past where it is fully trusted."""
        return 0.5 ** (1.0 / (strength * self.max_half_life_frames)) if strength > 0 else 0.0


@dataclass
class _Memory:
    gray: np.ndarray  # hs x ws uint8, blurred
    probs: np.ndarray  # fh x fw x C: person probability, then part probabilities, on the fine grid
    frame_hw: tuple[int, int]
    person: np.ndarray | None  # H x W person probability at the frame's size (`person_probs`), or None


@dataclass
class _Past:
    """The memory carried onto this frame by the flow."""

    probs: np.ndarray  # fh x fw x C
    trust: np.ndarray  # fh x fw, 0..1: how far the flow explains each fine cell
    sources: tuple[np.ndarray, np.ndarray]  # fine-grid (x, y) each cell came from
    person: np.ndarray | None  # H x W, the frame-size person probability carried
    person_trust: np.ndarray | None  # H x W, 0..1


class TemporalSmoother(ResultStage):
    """Smooths a stream of ParseResults from one source; `strength` in 0..1 (0 = off) may be
    changed from another thread between frames."""

    name = "smooth"

    def __init__(self, strength: float = DEFAULT_STRENGTH, *, tuning: SmoothingTuning = SmoothingTuning(),
                 keypoint_min_cutoff_hz: float = 1.0, keypoint_beta: float = 0.02,
                 min_keypoint_score: float = 0.2) -> None:
        self.strength = strength
        self.tuning = tuning
        self._keypoints = KeypointSmoother(min_cutoff_hz=keypoint_min_cutoff_hz, beta=keypoint_beta,
                                           min_score=min_keypoint_score)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._upsampler = GridUpsampler()
        self._people = PeopleMemory()
        self._memory: _Memory | None = None
        self.scene_cuts = 0

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength = float(min(max(value, 0.0), 1.0))

    def reset(self) -> None:
        self._memory = None
        self._keypoints.reset()
        self._people.reset()

    def merge_people(self, new_id: int, into_id: int) -> None:
        """`new_id` is `into_id` from now on: their pixels and keypoint filters become that person's."""
        self._people.merge(new_id, into_id)
        self._keypoints.merge(new_id, into_id)

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        strength = self._strength
        if strength <= 0.0:
            self.reset()
            return parse
        frame_hw = parse.labels.shape
        memory = self._memory
        if memory is not None and memory.frame_hw != frame_hw:
            memory = None
        if parse.part_probs is None:
            return replace(parse, people=self._keypoints(parse.people, frame.pts_s, strength))
        gray = _small_gray(frame.image, self.tuning.flow_long_side)
        probs = _probabilities(self._fine_scores(parse.part_probs))
        sharp = parse.person_probs
        if sharp is not None:
            probs[..., 0] = resample_corner_aligned(sharp, probs.shape[:2], cv2.INTER_LINEAR)
        if memory is not None and memory.probs.shape != probs.shape:
            memory = None
        past = None if memory is None else self._warp_memory(memory, gray)
        if memory is not None and past is None:
            self.scene_cuts += 1
            self._keypoints.reset()
            self._people.reset()
        if past is not None:
            memory_weight = self.tuning.memory_weight(strength)
            pull = past.probs  # probs += weight * (past - probs), in place
            pull -= probs
            pull *= (memory_weight * past.trust)[..., None]
            probs += pull
            if sharp is not None and past.person is not None:
                low, high = self.tuning.change_low, self.tuning.change_high
                change = past.person - sharp
                settled = np.abs(change)  # settled = clip((high - |change|) / (high - low), 0, 1)
                settled -= high
                settled *= -1.0 / (high - low)
                np.clip(settled, 0.0, 1.0, out=settled)
                settled *= past.person_trust
                settled *= memory_weight
                change *= settled
                sharp = sharp + change
        labels, person = self._labels(probs, frame_hw, sharp)
        sources = None if past is None else past.sources
        people = self._people(parse.people, person, probs[..., 0] > 0.5, sources, frame.pts_s)
        people = self._keypoints(people, frame.pts_s, strength)
        self._memory = _Memory(gray, probs, frame_hw, sharp)
        factor = self.tuning.fine_factor
        return replace(parse, labels=labels, person_mask=person, people=people,
                       part_probs=np.ascontiguousarray(np.moveaxis(probs[::factor, ::factor], -1, 0)),
                       person_probs=None)

    # --- steps -------------------------------------------------------------------------
    def _fine_scores(self, part_probs: np.ndarray) -> np.ndarray:
        """C x gh x gw probabilities -> fh x fw x C scores (person logit, part log-probabilities),
        bilinear with corners aligned."""
        person = np.clip(part_probs[0], _EPS, 1.0 - _EPS)
        coarse = np.concatenate([np.log(person / (1.0 - person))[..., None],
                                 np.log(np.moveaxis(part_probs[1:], 0, -1) + _EPS)], axis=-1).astype(np.float32)
        factor = self.tuning.fine_factor
        grid_h, grid_w = coarse.shape[:2]
        return resample_corner_aligned(coarse, ((grid_h - 1) * factor + 1, (grid_w - 1) * factor + 1), cv2.INTER_LINEAR)

    def _warp_memory(self, memory: _Memory, gray: np.ndarray) -> _Past | None:
        """The memory carried onto this frame, or None at a scene cut."""
        tuning = self.tuning
        flow = dense_flow(self._flow, gray, memory.gray)  # this frame -> the previous one
        explained = warp_by_flow(memory.gray, flow, cv2.INTER_LINEAR)
        error = cv2.absdiff(explained, gray).astype(np.float32)
        if (error > tuning.error_high).mean() > tuning.cut_share:
            return None
        fine_h, fine_w = memory.probs.shape[:2]
        # fine cells sit on frame pixels i * (H - 1) / (fh - 1) (corner-aligned geometry)
        height, width = memory.frame_hw
        small_h, small_w = gray.shape
        sx, sy = small_w / width, small_h / height
        cols = np.arange(fine_w, dtype=np.float32)
        rows = np.arange(fine_h, dtype=np.float32)
        map_x, map_y = np.meshgrid((cols * ((width - 1) / max(fine_w - 1, 1)) + 0.5) * sx - 0.5,
                                   (rows * ((height - 1) / max(fine_h - 1, 1)) + 0.5) * sy - 0.5)
        cell_flow = sample_at(flow, map_x, map_y, cv2.INTER_LINEAR)
        error = cv2.blur(error, (3, 3))
        cell_error = sample_at(error, map_x, map_y, cv2.INTER_LINEAR)
        from_x = cols[None, :] + cell_flow[..., 0] * ((fine_w - 1) / max(width - 1, 1) / sx)
        from_y = rows[:, None] + cell_flow[..., 1] * ((fine_h - 1) / max(height - 1, 1) / sy)
        past = sample_at(memory.probs, from_x, from_y, cv2.INTER_LINEAR)
        inside = _lands_inside(from_x, from_y, (fine_h, fine_w))
        trust = tuning.trust(cell_error)
        person = person_trust = None
        if memory.person is not None:
            person, person_trust = _carry_frame_size(memory.person, flow, error, tuning)
        return _Past(past.reshape(memory.probs.shape), trust * inside, (from_x, from_y), person, person_trust)

    def _labels(self, probs: np.ndarray, frame_hw: tuple[int, int],
                sharp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Frame labels and person mask from the fine probabilities, as the parser makes them
        (from scores, where bilinear interpolation gives the parser's own result on a still
        scene); the person mask from `sharp` (H x W person probability) when there is one."""
        part_logits = probs[..., 1:] + _EPS
        part_logits = np.moveaxis(np.log(part_logits, out=part_logits), -1, 0)
        if sharp is not None:
            person = sharp > 0.5
            return part_labels_inside(self._upsampler, part_logits, person), person
        person = np.clip(probs[..., 0], _EPS, 1.0 - _EPS)
        return person_part_labels(self._upsampler, np.log(person / (1.0 - person)), part_logits, frame_hw, 0.0)


class KeypointSmoother:
    """One Euro filters over each person's keypoint positions, keyed by person id. Keypoints
    below `min_score` pass through unfiltered and restart their filter."""

    def __init__(self, *, min_cutoff_hz: float, beta: float, min_score: float) -> None:
        self._min_cutoff_hz = min_cutoff_hz
        self._beta = beta
        self._min_score = min_score
        self._filters: dict[int, OneEuroFilter] = {}
        self._strength: float | None = None

    def reset(self) -> None:
        self._filters = {}

    def merge(self, new_id: int, into_id: int) -> None:
        if new_id in self._filters:
            self._filters[into_id] = self._filters.pop(new_id)

    def __call__(self, people: list[PersonParse], time_s: float, strength: float) -> list[PersonParse]:
        if strength != self._strength:
            self._strength = strength
            self.reset()
        smoothed = []
        filters = {}
        for person in people:
            person_filter = self._filters.get(person.id) or self._new_filter(strength)
            filters[person.id] = person_filter
            keypoints = None if person.keypoints is None else self._filtered(person_filter, person.keypoints, time_s)
            smoothed.append(replace(person, keypoints=keypoints))
        self._filters = filters
        return smoothed

    def _new_filter(self, strength: float) -> OneEuroFilter:
        # strength 1 -> the configured cutoff; weaker smoothing lets faster changes through
        return OneEuroFilter(min_cutoff_hz=self._min_cutoff_hz / strength, beta=self._beta)

    def _filtered(self, one_euro: OneEuroFilter, keypoints: np.ndarray, time_s: float) -> np.ndarray:
        positions = keypoints[:, :2].astype(np.float64)
        positions[keypoints[:, 2] < self._min_score] = np.nan
        smoothed = one_euro(positions, time_s)
        missing = np.isnan(smoothed)
        smoothed[missing] = keypoints[:, :2][missing]
        return np.concatenate([smoothed, keypoints[:, 2:]], axis=1).astype(keypoints.dtype)


def _carry_frame_size(person: np.ndarray, flow: np.ndarray, error: np.ndarray,
                      tuning: SmoothingTuning) -> tuple[np.ndarray, np.ndarray]:
    """An H x W probability of the previous frame carried onto this one by the small flow (hs x ws
    x 2, this frame -> the previous, small pixels), and the trust 0..1 of each pixel (from the
    small, blurred grey error, as the fine cells' trust; 0 where the flow points outside the
    frame). The map of where each pixel comes from is made at the flow's size and resized, so
    only the resize, the remap and the blend run at the frame's size."""
    height, width = person.shape
    small_h, small_w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(small_w, dtype=np.float32), np.arange(small_h, dtype=np.float32))
    sources = np.dstack([(xs + flow[..., 0] + 0.5) * (width / small_w) - 0.5,
                         (ys + flow[..., 1] + 0.5) * (height / small_h) - 0.5])
    small_trust = tuning.trust(error) * _lands_inside(sources[..., 0], sources[..., 1], (height, width))
    carried = cv2.remap(person, cv2.resize(sources, (width, height), interpolation=cv2.INTER_LINEAR), None,
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return carried, cv2.resize(small_trust, (width, height), interpolation=cv2.INTER_LINEAR)


def _lands_inside(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which positions (xs, ys) fall on a pixel of an H x W grid."""
    height, width = shape
    return (xs > -0.5) & (xs < width - 0.5) & (ys > -0.5) & (ys < height - 0.5)


def _small_gray(rgb: np.ndarray, long_side: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(round(width * scale), 1), max(round(height * scale), 1))
    gray = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(gray, (3, 3), 0)


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """... x C float32 scores (person logit, part log-probabilities) -> probabilities (sigmoid,
    softmax). The part scores interpolate log(p + _EPS) with p in 0..1, so they lie in
    log(_EPS)..~0 and their exponentials need no max shift to stay finite and above 0."""
    probs = np.exp(scores)
    probs[..., 0] = sigmoid(scores[..., 0])
    parts = probs[..., 1:]
    parts /= (parts @ np.ones(parts.shape[-1], np.float32))[..., None]  # a matrix product sums fastest
    return probs
