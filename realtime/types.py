"""Data carriers that flow between the stages: source -> parser -> stages -> analysers -> sinks."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from realtime.imaging import mask_box


@dataclass(frozen=True)
class Gap:
    """A live source lost its connection between two frames and reconnected."""

    from_pts_s: float  # the last frame before the outage
    to_pts_s: float  # the first frame after it
    reason: str  # why the source was lost (credentials removed)

    def to_json(self) -> dict:
        return {"event": "gap", "from_pts_s": round(self.from_pts_s, 6), "to_pts_s": round(self.to_pts_s, 6),
                "reason": self.reason}


@dataclass(frozen=True)
class Placement:
    """Where a frame's own displayed pixels landed in the output image:
    output = own * scale + offset, per axis. Identity for a frame used as it is."""

    scale_x: float = 1.0
    scale_y: float = 1.0
    offset_x: float = 0.0
    offset_y: float = 0.0

    def to_own(self, points: np.ndarray) -> np.ndarray:
        """N x (2+) array whose first two columns are output x, y -> the same in the frame's own
        pixels (other columns, e.g. scores, unchanged)."""
        own = np.array(points, dtype=np.float32, copy=True)
        own[:, 0] = (own[:, 0] - self.offset_x) / self.scale_x
        own[:, 1] = (own[:, 1] - self.offset_y) / self.scale_y
        return own

    def scaled(self, scale_x: float, scale_y: float) -> Placement:
        """The placement in a copy of the output image scaled by (scale_x, scale_y)."""
        return Placement(self.scale_x * scale_x, self.scale_y * scale_y, self.offset_x * scale_x,
                         self.offset_y * scale_y)

    def box_to_own(self, box: tuple[int, int, int, int], own_size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) exclusive ends in output pixels -> the frame's own pixels (rounded),
        inside the frame's own `own_size` (width, height): a mask can spill over a letterboxed
        frame's edge into the border around it."""
        (x0, y0), (x1, y1) = self.to_own(np.array([box[:2], box[2:]], dtype=np.float32))
        width, height = own_size
        return (min(max(round(float(x0)), 0), width), min(max(round(float(y0)), 0), height),
                min(max(round(float(x1)), 0), width), min(max(round(float(y1)), 0), height))


@dataclass
class Frame:
    """One decoded frame: HxWx3 uint8 RGB as displayed (upright, square pixels, in the run's
    output size), its index in the source, its presentation time in seconds from the first frame
    shown, the monotonic clock reading when it was captured and how long decoding took. `gap` is
    set on the first frame after a live source reconnected. `own_size` (width, height) is the
    frame's own displayed size before it was scaled into `image` (None: the image's size) and
    `placement` maps those own pixels into `image`; coordinates are reported in own pixels.
    `source_s` is the frame's own time in its source's clock (None for sources without one), what
    the source's other streams (audio) are timed against. `seeked` is set on the first frame after
    a seek or a loop back to the start (in real time, the first not dropped): the picture jumps there, stages forget their motion and
    analysers what was in progress (Analyser.seek at `pts_s`). A seek goes back or ahead in the
    file, and so in time; a loop runs on: a file its Playback loops (the window's Loop) numbers
    its frames and times on from pass to pass, as `process --loop` does, and `loop_offset` is
    how far this frame's pass moved its (index, time in seconds) ((0, 0.0) in the first pass), so
    that `position_s` is its place in the file, where a seek goes, in that pass (a reader that
    loops itself, `process --loop`, leaves it (0, 0.0): nothing seeks there).
    `parse_image` is a smaller copy of `image` (same aspect) that the parser and the stages work on
    when the run parses large frames at a reduced size (PipelineConfig.parse_side); None: they
    work on `image`."""

    image: np.ndarray
    index: int
    pts_s: float
    captured_s: float = field(default_factory=time.monotonic)
    decode_ms: float = 0.0
    gap: Gap | None = None
    own_size: tuple[int, int] | None = None
    placement: Placement = field(default_factory=lambda: Placement())
    source_s: float | None = None
    seeked: bool = False
    loop_offset: tuple[int, float] = (0, 0.0)
    parse_image: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]

    @property
    def geometry(self) -> tuple[tuple[int, int] | None, Placement]:
        """What places the picture in `image`: its own size and placement. A change between two
        frames (a stream that changed size, letterboxed into the run's) moves every pixel."""
        return self.own_size, self.placement

    @property
    def position_s(self) -> float:
        """Seconds from the file's first frame to this one, where Pipeline.seek goes (`pts_s`
        less the earlier passes of a looped file)."""
        return self.pts_s - self.loop_offset[1]

    def for_parsing(self) -> Frame:
        """The frame the parser and the stages see: `parse_image` as its image (its placement
        scaled alike), or this frame when it has none."""
        if self.parse_image is None:
            return self
        scale_x, scale_y = self.parse_image.shape[1] / self.image.shape[1], self.parse_image.shape[0] / self.image.shape[0]
        return replace(self, image=self.parse_image, parse_image=None, placement=self.placement.scaled(scale_x, scale_y))


@dataclass
class PersonParse:
    """One person of a result: `id` (stable across frames once a tracker has run), an H x W
    bool mask, 17 x 3 keypoints (x, y, score in image pixels; None for models without
    keypoints, such as M2FP-CIHP) and a detection score. With a BlazePose pose source also
    `landmarks` [33, 5] (x, y in image pixels, z relative to the hips in the same pixel scale,
    visibility, presence) and `world_landmarks` [33, 3] (metres, origin between the hips), in
    the order of realtime.models.labels.BLAZEPOSE_LANDMARKS; None otherwise."""

    id: int
    mask: np.ndarray
    keypoints: np.ndarray | None
    score: float
    landmarks: np.ndarray | None = None
    world_landmarks: np.ndarray | None = None

    def bbox(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the mask, exclusive ends; None for an empty mask."""
        return mask_box(self.mask)


@dataclass
class ParseResult:
    """A parsed frame, everything in image pixel coordinates.

    labels: H x W uint8 class ids (0 = background) of `label_names`.
    person_mask: H x W bool.
    part_probs: C x h x w float32 class probabilities at the model's grid (for smoothing and
        analysis), or None.
    people: one entry per person found, strongest first (BodyPix with max_people > 1 and
        M2FP-CIHP give each person's own mask; single-person BodyPix gives one entry holding
        the whole person mask; other single-person models leave it empty). People are the
        one place keypoints live: `keypoints` is derived from them.
    person_probs: H x W float32 person probability sharper than part_probs' grid (from a
        second, finer person model), which the smoother then uses instead; or None.
    """

    labels: np.ndarray
    person_mask: np.ndarray
    label_names: tuple[str, ...]
    palette: np.ndarray
    part_probs: np.ndarray | None = None
    people: list[PersonParse] = field(default_factory=list)
    person_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labels.ndim != 2 or self.labels.dtype != np.uint8:
            raise ValueError(f"labels must be H x W uint8, got {self.labels.shape} {self.labels.dtype}")
        if self.person_mask.shape != self.labels.shape or self.person_mask.dtype != np.bool_:
            raise ValueError("person_mask must be an H x W bool array matching labels")
        if len(self.palette) != len(self.label_names):
            raise ValueError("palette and label_names differ in length")
        for person in self.people:
            if person.keypoints is not None and (person.keypoints.ndim != 2 or person.keypoints.shape[1] != 3):
                raise ValueError(f"keypoints must be K x 3, got {person.keypoints.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.labels.shape[1], self.labels.shape[0]

    @property
    def best_person(self) -> PersonParse | None:
        """The highest-scoring person, None without people."""
        return max(self.people, key=lambda person: person.score, default=None)

    @property
    def keypoints(self) -> np.ndarray | None:
        """K x 3 float32 (x, y, score) of the best person; None without people or keypoints."""
        best = self.best_person
        return None if best is None else best.keypoints

    def scaled_to(self, size: tuple[int, int]) -> ParseResult:
        """This result on an image of `size` (width, height), the same picture scaled: label maps
        and masks by nearest neighbour, `person_probs` bilinearly, coordinates scaled (BlazePose's
        z with x); grid probabilities and world landmarks as they are. Itself at its own size."""
        if size == self.size:
            return self
        scale_x, scale_y = size[0] / self.size[0], size[1] / self.size[1]
        points = np.array([scale_x, scale_y], np.float32)

        def scaled_points(values: np.ndarray | None, depth: bool = False) -> np.ndarray | None:
            if values is None:
                return None
            out = values.copy()
            out[:, :2] *= points
            if depth:
                out[:, 2] *= scale_x
            return out

        people = [replace(person, mask=_nearest(person.mask, size), keypoints=scaled_points(person.keypoints),
                          landmarks=scaled_points(person.landmarks, depth=True)) for person in self.people]
        person_probs = None if self.person_probs is None else cv2.resize(self.person_probs, size,
                                                                         interpolation=cv2.INTER_LINEAR)
        return replace(self, labels=_nearest(self.labels, size), person_mask=_nearest(self.person_mask, size),
                       people=people, person_probs=person_probs)

    def part_areas(self, mask: np.ndarray | None = None,
                   box: tuple[int, int, int, int] | None = None) -> dict[str, int]:
        """Pixel count of every non-background class present in the frame (or in the H x W bool
        `mask`, all of whose pixels lie in `box`, (x0, y0, x1, y1) exclusive ends, when given)."""
        labels = self.labels
        if mask is not None and box is not None:
            x0, y0, x1, y1 = box
            labels, mask = labels[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        classes = len(self.label_names)
        # one pass in OpenCV: a frame-size boolean index (labels[mask]) costs more than the count
        counts = cv2.calcHist([labels], [0], None if mask is None else mask.view(np.uint8), [classes], [0, classes])
        return {self.label_names[i]: int(c) for i, c in enumerate(counts.ravel()) if i and c}


def _nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H x W uint8 or bool map scaled to `size` (width, height) by nearest neighbour."""
    if image.dtype == np.bool_:
        return cv2.resize(image.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).view(np.bool_)
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


@dataclass
class FrameResult:
    """Everything the pipeline produced for one frame, what the sinks (window, recorder, files)
    receive. `image` is the annotated RGB frame (FrameRenderer's drawing of this result);
    `selected_people` the person IDs analysed (None = everyone); `live` whether the source is
    live (latency matters) or a file (every frame waits its turn); `model` the parser's name and
    `pose_source` what gave the keypoints ("parser": the parser itself, else a pose stage's name,
    realtime.build.Stages.pose_source); `id_restarts` how many times the person IDs started again
    from 0 before this frame (a new source or model: the tracker forgets everyone, and the choice
    of people is everyone again): results with other counts number other people."""

    frame: Frame
    parse: ParseResult
    timings_ms: dict[str, float]
    latency_ms: float
    fps: float
    model: str
    live: bool
    analysis: dict[str, dict[str, Any]] = field(default_factory=dict)
    selected_people: frozenset[int] | None = None
    image: np.ndarray | None = None
    pose_source: str = "parser"
    id_restarts: int = 0
