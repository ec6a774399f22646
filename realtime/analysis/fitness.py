"""The fitness Analyser: per person, smoothed joint angles and a repetition counter for one exercise.

Output of `update` (also the JSONL line's analysis["fitness"]):
    {"exercise": {...preset...}, "people": {"<id>": {"angles": {joint: {"deg", "raw_deg", "conf",
     "source", "reason"}}, "signal_deg", "signal_reason", "signal_hint", "reps", "partials", "state",
     "phase", "last_rep", "last_partial"}}}
A counted angle that is unknown says why (signal_reason): nobody was found, the person is too
small (under MIN_PERSON_PX: their angle is not counted even where the keypoints give one), their
joints are cut by the frame's edge, or not seen, and what to try (signal_hint, from HINTS); the
summary counts those frames and gives the hint of the most frequent reason (for frames with nobody
found, a note of how long nobody was in view when the person was seen at other times), or, with
no repetition, why nothing was counted (out of the posture, too shallow). `phase` says the counter's
state in words ("going down", "at the bottom", ...; at the start position out of the exercise's
posture, e.g. standing for a sit-up, "not in position" and what the start needs: such a start
is no start, reps.RepCounter, and the summary's hint says why nothing was counted when most
were); `last_partial` is the latest movement that was too shallow to count. People come from
`parse.people`; a parse without people is one person, id 0. A person missing from a frame's
parse (occluded, briefly out of frame) is an unknown angle to their counter: back in view, their
start position must be seen for min_start_s again before the counter arms. After a seek (`seek`)
each counter keeps the repetitions completed before the seek point; `merge_people` adds one
person's repetitions to another's. A person whose body jumps between two frames
(_PersonTrack.cut: a cut in the video, a clip joined to itself or to another, a person taken for
another) is to their counter as after a seek to that frame: the repetition in progress is
dropped, the completed ones stay, their angle filter starts again and the start position must be
seen for min_start_s again.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.analysis.angles import (
    ANGLE_MODES,
    JOINTS,
    Angle,
    NOT_VISIBLE,
    OUT_OF_FRAME,
    facing_share,
    joint_angles,
    side_areas,
    world_angles,
)
from realtime.analysis.exercises import PRESETS, Exercise, seen_posture
from realtime.analysis.one_euro import OneEuroFilter
from realtime.analysis.reps import AT_TURN, BACK, OUT, START, WAITING, PartialRep, RepCounter
from realtime.imaging import mask_box, mask_iou
from realtime.stages import Analyser
from realtime.types import Frame, ParseResult, PersonParse

ANGLE_NAMES = tuple(JOINTS)
NOBODY = "nobody_found"
TOO_SMALL = "too_small"
MIN_PERSON_PX = 120  # a person smaller than this (own pixels, the body's longer side) gives no reliable joints
SIZE_WINDOW_S = 3.0  # a person's size is the largest in this long: a squat's bottom is no smaller person
SURE_SIDE_CONF = 0.7  # a side enters a min/max reduction (a lunge's front knee, a curl's working arm) when seen this surely
# Two sides averaged (_reduce) further apart than this are no one movement. Measured on the shared
# clips (the mannequins, squat30, leave_A, pose2sim-multi-cam01-03): knees both seen at 0.7 or more
# are this far apart in 3 of 920 frames, with one side seen less surely in 11 of 334; hips 0 of
# 923 and 1 of 447 (the push-up mannequin's, _reduce).
SIDES_APART_DEG = 90.0
CLOSER = "move the camera closer or record at a higher resolution"
# What to try when a person's counted angle is unknown, by reason. A larger --internal-size is no
# cure for too_small: the rule is in the frame's own pixels, which parsing at a larger size does not add.
HINTS = {
    NOBODY: f"nobody in view; if someone is there, they are too small or unclear to be found: {CLOSER}",
    TOO_SMALL: f"the person is under {MIN_PERSON_PX} px tall, too small for reliable joints: {CLOSER}",
    OUT_OF_FRAME: "the counted joints are cut by the frame's edge: step back or aim the camera so the whole "
                  "body stays in view",
    NOT_VISIBLE: "the counted joints are not seen clearly: turn side-on to the camera, add light, or wear "
                 "clothes that show the limbs",
}
# A cut (_PersonTrack.cut): the median step of a person's BlazePose landmarks between two frames,
# less their median shift, as a share of their body's size, and their person masks' overlap
# (IoU). Measured with --max-people 2 on the 18 shared clips and 23 made from them (panned,
# zoomed, shaken by up to 4 % of the frame every frame, at 10 and 15 fps, joined): the seams step
# 0.16 (the squat mannequin 1 s on), 0.18 (squat30 written 3 times, 30 fps, 5 sizes a second;
# faults/camera.mp4's loops), 0.23 (pose2sim cam01 to cam02), 0.25 (the squat mannequin to the
# push-up one); their masks overlap 0.21-0.44. BlazePose re-fitting a body steps as far without a
# cut (0.34 in pose2sim-single-cam02), but its mask stays: they overlap 0.64-0.97. Where the masks
# overlap less (a shaken camera, a backflip in sports2d-demo, the small body of faults/reschange.ts)
# the landmarks stepped at most 0.09, or 0.17 over 3 frames: slower than CUT_SPEED, which keeps a
# real movement at a low frame rate (large steps, a body's real speed) from being a cut.
CUT_SHARE = 0.15
CUT_SPEED = 3.0
CUT_MASK_IOU = 0.55
MIN_CUT_LANDMARKS = 8  # fewer landmarks seen in both frames decide nothing
# the symmetry figures need the body within 45 degrees of facing the camera (cos 45 = 0.71)
MIN_FACING_SHARE = 0.7
HINT_SHARE = 0.2  # a hint is given when the counted angle is unknown in at least this share of a person's frames
WAITING_WORDS = "waiting for the start position"
READY_WORDS = "ready"
POSTURE = "posture"  # the hint's reason when starts out of the exercise's posture were refused
TOO_SHALLOW = "too_shallow"  # the hint's reason when no repetition counted and some movements were too shallow
NO_MOVEMENT = "no_movement"  # the hint's reason when the counted angle was at the start position but did not move
NOT_AT_START = "not_at_start"  # the hint's reason when the counted angle was known but never armed the counter
IN_PROGRESS = "in_progress"  # the hint's reason when the only repetition was cut off by the end of the run
TOO_QUICK = "too_quick"  # the hint's reason when every movement away from the start was quicker than a repetition
LOST = "lost"  # the hint's reason when a repetition was abandoned because its angle went unseen too long
# hints that say why no repetition counted
NO_REP_REASONS = (POSTURE, TOO_SHALLOW, NO_MOVEMENT, NOT_AT_START, IN_PROGRESS, TOO_QUICK, LOST)


@dataclass
class _PersonTrack:
    smoother: OneEuroFilter
    counter: RepCounter
    frames: int = 0
    unknown: dict[str, int] | None = None  # reason -> frames with the counted angle unknown
    start_frames: int = 0  # frames that could start a repetition (RepCounter.would_start), in any posture
    off_posture: dict[str, int] | None = None  # posture seen (seen_posture) -> those frames out of the exercise's
    nobody_s: float = 0.0  # seconds with nobody found (from the frame before each such frame)
    low_deg: float = math.inf  # the least and greatest counted angle known (inf, -inf: none known)
    high_deg: float = -math.inf
    armed_low_deg: float = math.inf  # low_deg / high_deg over the frames since the counter was armed
    armed_high_deg: float = -math.inf
    last_s: float | None = None  # the time of the latest frame
    # per joint (ANGLE_NAMES): whether its latest reading was known but below SURE_SIDE_CONF
    unsure: np.ndarray = field(default_factory=lambda: np.zeros(len(ANGLE_NAMES), dtype=bool))
    sizes: deque[tuple[float, int]] = field(default_factory=deque)  # (time, size px) over SIZE_WINDOW_S
    # the latest landmarks' time, BlazePose landmarks, the person's mask and Frame.geometry (cut)
    pose: tuple[float, np.ndarray, np.ndarray, Hashable] | None = None
    step: float = 0.0  # the latest step of the landmarks (cut; 0 when not measured, inf after a change of picture)

    @property
    def armed(self) -> bool:
        """Whether the counter was ever at the start position (RepCounter left WAITING, which it
        does on a known angle, so the armed extremes hold one)."""
        return self.armed_low_deg <= self.armed_high_deg

    def cut(self, landmarks: np.ndarray | None, mask: np.ndarray, time_s: float, min_score: float,
            geometry: Hashable) -> bool:
        """Whether the body jumped to `landmarks` (BlazePose's [33, 5] in image pixels, visibility
        in column 3; None: none this frame, e.g. `--pose parser`) and `mask` (the person's [H, W]
        bool) at `time_s` from the latest ones: the median step of the landmarks seen (visibility
        at or above `min_score`) in both, less their median shift (a camera panned or shaken moves
        them all), is at least CUT_SHARE of the body's size (the longer side of those landmarks'
        extent, the larger of the two) and CUT_SPEED sizes a second, the step before it was under
        half of CUT_SHARE, and the two masks overlap (IoU) less than CUT_MASK_IOU. A misread joint
        moves a few landmarks, not the median; a body moving gets there over frames, not at once;
        BlazePose re-fitting a body (cut by the frame's edge, panned) moves its landmarks at once,
        not its mask. Landmarks of frames of another `geometry` (Frame.geometry: a stream that
        changed size, letterboxed into the run's) are not compared, nor is the step after them:
        the picture moved, not the body, and BlazePose finds it anew there (a fresh detection's
        landmarks move 17 % of the body as it re-fits them on the next frame in
        faults/reschange.ts)."""
        before = self.pose
        if landmarks is not None:
            self.pose = (time_s, landmarks, mask, geometry)
        if before is not None and landmarks is not None and geometry != before[3]:
            self.step = math.inf  # no step before the next one in this picture (BlazePose re-fits the body)
            return False
        if before is None or landmarks is None or time_s <= before[0]:
            return False
        seen = (before[1][:, 3] >= min_score) & (landmarks[:, 3] >= min_score)
        if seen.sum() < MIN_CUT_LANDMARKS:
            self.step = 0.0
            return False
        size = max(float(np.ptp(points[seen, :2], axis=0).max()) for points in (before[1], landmarks))
        moved = landmarks[seen, :2] - before[1][seen, :2]
        moved = np.linalg.norm(moved - np.median(moved, axis=0), axis=1)  # less the picture's shift
        step, previous = float(np.median(moved)) / max(size, 1.0), self.step
        self.step = step
        jumped = step >= CUT_SHARE and step / (time_s - before[0]) >= CUT_SPEED and previous < CUT_SHARE / 2
        return jumped and mask_iou(before[2], mask) < CUT_MASK_IOU

    def size_px(self, time_s: float, size: int | None) -> int | None:
        """The person's size: the largest body (its box's longer side, own pixels) found in the
        last SIZE_WINDOW_S including `size` (None: not found now); None when not found in it."""
        if size is not None:
            self.sizes.append((time_s, size))
        while self.sizes and (time_s - self.sizes[0][0] > SIZE_WINDOW_S or time_s < self.sizes[0][0]):
            self.sizes.popleft()
        return max((s for _, s in self.sizes), default=None)


def _reduce(values: list[float], how: str, confidences: list[float], previous: float | None = None) -> float:
    """The counted signal from the joints' angles (NaN: unknown) and their confidences: their mean,
    or the least or greatest of those seen surely (SURE_SIDE_CONF; the one seen best when none
    is): an extreme picks out noise, so a hidden far arm read at 0.4 with a wild angle must not
    win over the near arm seen whole (a standing body counted a curl before). Sides more than
    SIDES_APART_DEG apart are not one movement, and one of them is misread: the mean is then the
    side nearer the `previous` counted signal (degrees; None: none since the person was found, a
    seek, a cut or a gap the counter dropped its repetition at), else the side seen best. The
    lying push-up mannequin's right hip, read once at 6 deg from the parts at 0.50 beside the left
    at 170 from the keypoints at 0.96, made its hips 88 deg (a sit-up too shallow); squat30's
    right shoulder, read on one frame at 153 deg beside the left at 6 (0.77 and 0.75, BlazePose on
    onnxruntime), made a shoulder-press's signal leap to 153 for one frame when the side seen best
    by a hair won."""
    known = [(value, confidence) for value, confidence in zip(values, confidences) if not math.isnan(value)]
    if not known:
        return math.nan
    best = max(known, key=lambda pair: pair[1])[0]
    if how == "mean":
        apart = max(value for value, _ in known) - min(value for value, _ in known) > SIDES_APART_DEG
        if not apart:
            return sum(value for value, _ in known) / len(known)
        return best if previous is None else min((value for value, _ in known), key=lambda v: abs(v - previous))
    sure = [value for value, confidence in known if confidence >= SURE_SIDE_CONF] or [best]
    return min(sure) if how == "min" else max(sure)


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


class FitnessAnalyser(Analyser):
    """Counts `exercise` repetitions for every person. `summary()` may be called from any
    thread (the window's table, the CLI at the end)."""

    name = "fitness"

    def __init__(self, exercise: Exercise, *, min_score: float = 0.3, min_cutoff_hz: float = 1.5,
                 beta: float = 0.02, angles: str = "2d") -> None:
        if angles not in ANGLE_MODES:
            raise ValueError(f"unknown angle mode {angles!r}; choose from {', '.join(ANGLE_MODES)}")
        self.exercise = exercise
        self.angles = angles
        self._min_score = min_score
        self._filter_args = {"min_cutoff_hz": min_cutoff_hz, "beta": beta}
        self._tracks: dict[int, _PersonTrack] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._tracks.clear()

    def seek(self, position_s: float) -> None:
        """Playback jumped to `position_s`: every person's angle filter starts again, their
        counter drops the repetition in progress and those completed after `position_s`, and the
        seconds skipped are no time with nobody in view (nobody_s)."""
        with self._lock:
            for track in self._tracks.values():
                track.smoother.reset()
                track.counter.seek(position_s)
                track.last_s = None
                track.pose, track.step = None, 0.0

    def merge_people(self, new_id: int, into_id: int) -> None:
        """`new_id` is the same person as `into_id`: their repetitions are added to that person's
        (in time order, numbered again) and they are counted as `into_id` from now on."""
        with self._lock:
            track = self._tracks.pop(new_id, None)
            if track is None:
                return
            earlier = self._tracks.get(into_id)
            if earlier is not None:
                track.counter.absorb(earlier.counter)
                track.frames += earlier.frames
                track.start_frames += earlier.start_frames
                track.unknown = _added(earlier.unknown, track.unknown)
                track.off_posture = _added(earlier.off_posture, track.off_posture)
                track.nobody_s += earlier.nobody_s
                track.low_deg = min(track.low_deg, earlier.low_deg)
                track.high_deg = max(track.high_deg, earlier.high_deg)
                track.armed_low_deg = min(track.armed_low_deg, earlier.armed_low_deg)
                track.armed_high_deg = max(track.armed_high_deg, earlier.armed_high_deg)
            self._tracks[into_id] = track

    def update(self, frame: Frame, parse: ParseResult) -> dict[str, Any]:
        people = [(p.id, p.keypoints, p.mask, p) for p in parse.people] or [(0, None, parse.person_mask, None)]
        with self._lock:
            out = {str(pid): self._update_person(pid, keypoints, mask, frame, parse, person)
                   for pid, keypoints, mask, person in people}
            for pid in self._tracks.keys() - {pid for pid, *_ in people}:  # not found in this frame
                self._tracks[pid].counter.update(None, frame.pts_s, frame.index)
        return {"exercise": self.exercise.to_dict(), "people": out}

    def _update_person(self, pid: int, keypoints: np.ndarray | None, mask: np.ndarray, frame: Frame,
                       parse: ParseResult, person=None) -> dict[str, Any]:
        exercise = self.exercise
        track = self._tracks.get(pid)
        if track is None:
            track = _PersonTrack(OneEuroFilter(**self._filter_args),
                                 RepCounter(start_deg=exercise.start_deg, turn_deg=exercise.turn_deg,
                                            min_rep_s=exercise.min_rep_s))
            self._tracks[pid] = track
        if track.cut(None if person is None else person.landmarks, mask, frame.pts_s, self._min_score, frame.geometry):
            track.smoother.reset()
            track.counter.seek(frame.pts_s)
        raw = person_angles(frame, parse, keypoints, mask, person, mode=self.angles, min_score=self._min_score)
        raw_deg = np.array([math.nan if raw[n].deg is None else raw[n].deg for n in ANGLE_NAMES])
        # A joint seen surely after unsure readings starts its smoothing afresh: the unsure ones (a
        # hidden knee read at 33-58 deg, conf 0.4-0.6, left out of a min/max reduction) must not pull
        # the sure reading that enters the counted signal (118 deg smoothed to 94, a phantom turn).
        sure = np.array([raw[n].conf >= SURE_SIDE_CONF for n in ANGLE_NAMES]) & ~np.isnan(raw_deg)
        track.smoother.restart(sure & track.unsure)
        track.unsure = ~sure & ~np.isnan(raw_deg)
        smooth = dict(zip(ANGLE_NAMES, track.smoother(raw_deg, frame.pts_s).tolist()))
        signal = _reduce([smooth[j] for j in exercise.joints], exercise.reduce, [raw[j].conf for j in exercise.joints],
                         track.counter.last_deg(frame.pts_s))
        box = mask_box(mask)
        own = None if box is None else frame.placement.box_to_own(box, frame.own_size or frame.size)
        size = track.size_px(frame.pts_s, None if own is None else max(own[2] - own[0], own[3] - own[1]))
        reason = _why_unknown(box, size, [raw[j].reason for j in exercise.joints], _frame_box(frame),
                              math.isnan(signal))
        if reason is not None:
            signal = math.nan
        track.frames += 1
        if reason is not None:
            track.unknown = track.unknown or {}
            track.unknown[reason] = track.unknown.get(reason, 0) + 1
        if reason == NOBODY and track.last_s is not None:
            track.nobody_s += max(0.0, frame.pts_s - track.last_s)
        track.last_s = frame.pts_s
        counter = track.counter
        lean = _posture_lean(person, smooth["trunk_lean"], self._min_score)
        in_posture = exercise.posture is None or exercise.posture.holds(lean)
        could_start = not math.isnan(signal) and counter.would_start(signal)
        track.start_frames += could_start
        off_posture = could_start and not in_posture
        if off_posture:
            track.off_posture = track.off_posture or {}
            seen = seen_posture(lean)
            track.off_posture[seen] = track.off_posture.get(seen, 0) + 1
        sides = _both_sides_in_view(person)
        rep = counter.update(signal, frame.pts_s, frame.index, side_diff_deg=self._side_diff(smooth) if sides else None,
                             area_ratio=self._area_ratio(parse, mask) if sides else None, in_posture=in_posture)
        if not math.isnan(signal):
            track.low_deg, track.high_deg = min(track.low_deg, signal), max(track.high_deg, signal)
        if (track.armed or counter.state != WAITING) and not math.isnan(signal):
            track.armed_low_deg, track.armed_high_deg = min(track.armed_low_deg, signal), max(track.armed_high_deg, signal)
        last = rep or (counter.reps[-1] if counter.reps else None)
        partial = counter.partial_reps[-1] if counter.partial_reps else None
        return {
            "angles": {n: {"deg": _round(smooth[n]), "raw_deg": _round(raw_deg[i]), "conf": round(raw[n].conf, 3),
                           "source": raw[n].source, "reason": raw[n].reason} for i, n in enumerate(ANGLE_NAMES)},
            "signal_deg": _round(signal),
            "signal_reason": reason,
            "signal_hint": HINTS.get(reason),
            "reps": counter.count,
            "partials": counter.partials,
            "state": counter.state,
            "phase": (f"not in position: {_start_posture(exercise)}" if off_posture
                      else _phase(counter, exercise)),
            "last_rep": None if last is None else last.to_dict(),
            "last_partial": None if partial is None else partial.to_dict(),
        }

    def _side_diff(self, smooth: dict[str, float]) -> float | None:
        """|left - right| of the exercise's joint, when it has both sides and both are known."""
        joint = self.exercise.joints[0].removeprefix("left_").removeprefix("right_")
        left, right = smooth.get(f"left_{joint}", math.nan), smooth.get(f"right_{joint}", math.nan)
        diff = abs(left - right)
        return None if math.isnan(diff) else diff

    def _area_ratio(self, parse: ParseResult, mask: np.ndarray) -> float | None:
        areas = side_areas(parse.labels, parse.label_names, self.exercise.joints[0], mask)
        if areas is None or min(areas) == 0:
            return None
        return areas[0] / areas[1]

    def summary(self) -> dict[str, Any]:
        """{"exercise", "reps" (all people), "per_rep" (each with its "person"), "people"}; each
        person also has "frames", "unknown_frames" (counted angle unknown), "unknown_reasons"
        (reason -> frames), "nobody_s" (seconds with nobody found), "off_posture_frames" (at the
        start position out of the exercise's posture: no start), "hint" and "hint_reason": without
        a repetition, when most frames at the start position were out of the posture, why nothing
        was counted (reason POSTURE), else when some movements were too shallow, how far the
        farthest went against the turn (TOO_SHALLOW); else, when the angle was unknown in at least
        HINT_SHARE of the frames, for the most frequent reason: nobody_found, how long nobody was
        in view (a note) or, when nobody was found in any frame, what to try (a person found only
        too small is too_small: the frames they were not found in tell nothing else); another
        reason, what to try (HINTS); else, without a repetition and with the angle known, that one was in
        progress when the run stopped (IN_PROGRESS), that one was abandoned when its angle went
        unseen too long (LOST), that every movement away from the start position was quicker
        than a repetition (TOO_QUICK), that it did not move (NO_MOVEMENT) or
        never armed the counter (NOT_AT_START: never at the start position, or not long enough),
        with its extent against the thresholds (_no_movement); else null."""
        with self._lock:
            anyone_seen = any(t.frames > (t.unknown or {}).get(NOBODY, 0) for t in self._tracks.values())
            people = {str(pid): {"reps": t.counter.count, "partials": t.counter.partials,
                                 "partial_reps": [p.to_dict() for p in t.counter.partial_reps],
                                 "rejected_short": t.counter.rejected,
                                 "per_rep": [r.to_dict() for r in t.counter.reps],
                                 **_unknown_summary(t, self.exercise, anyone_seen)}
                      for pid, t in sorted(self._tracks.items())}
        per_rep = [{"person": pid, **rep} for pid, person in people.items() for rep in person["per_rep"]]
        return {"exercise": self.exercise.to_dict(), "reps": len(per_rep), "per_rep": per_rep, "people": people}


def person_angles(frame: Frame, parse: ParseResult, keypoints: np.ndarray | None, mask: np.ndarray,
                  person: PersonParse | None = None, *, mode: str = "2d", min_score: float = 0.3) -> dict[str, Angle]:
    """Every joint's unsmoothed angle for one person (keypoints K x 3 and H x W bool mask in the
    frame's image pixels): image-plane angles (angles.joint_angles, cut-off joints judged against
    the frame's own pixels), or with mode "3d" BlazePose's world-landmark angles wherever
    `person` carries them with visibility at or above `min_score` and the joint is not cut off."""
    raw = joint_angles(keypoints, parse.labels, parse.label_names, mask, min_score=min_score,
                       frame_box=_frame_box(frame))
    if mode == "3d" and person is not None and person.world_landmarks is not None and person.landmarks is not None:
        world = world_angles(person.world_landmarks, person.landmarks[:, 3])
        raw = {n: world[n] if world[n].deg is not None and world[n].conf >= min_score
               and raw[n].reason != OUT_OF_FRAME else raw[n] for n in raw}
    return raw


def _both_sides_in_view(person: PersonParse | None) -> bool:
    """Whether the left and right sides can be compared (the symmetry figures): the body within
    45 degrees of facing the camera (or of turning its back to it) by BlazePose's world landmarks
    (`facing_share` >= MIN_FACING_SHARE); without them (`--pose parser`) not known, so not
    compared. Turned further, one side hides behind the other: on the CG mannequin, symmetric but
    turned ~60 degrees (shares 0.4-0.6), the 2-D knees differed by 15 degrees and the limb part
    areas by a ratio of 2-16 per repetition (with BodyPix's keypoints, faults/squat30.mp4 side-on:
    6-13 degrees and 4-4.4)."""
    if person is None or person.world_landmarks is None:
        return False
    return facing_share(person.world_landmarks) >= MIN_FACING_SHARE


def _posture_lean(person: PersonParse | None, image_lean_deg: float, min_score: float) -> float:
    """The trunk's angle to the vertical (degrees, NaN unknown) that decides the posture: from
    BlazePose's world landmarks where the person has them (a plank or a lying body filmed from the
    head or the feet is foreshortened to near vertical in the image, not in 3-D), else
    `image_lean_deg`, the image-plane trunk_lean."""
    if person is not None and person.world_landmarks is not None and person.landmarks is not None:
        lean = world_angles(person.world_landmarks, person.landmarks[:, 3], ("trunk_lean",))["trunk_lean"]
        if lean.deg is not None and lean.conf >= min_score:
            return lean.deg
    return image_lean_deg


def _phase(counter: RepCounter, exercise: Exercise) -> str:
    """The counter's state in words: waiting, ready, or the exercise's words for the repetition's
    phase (RepCounter.phase) at the latest known angle."""
    if counter.state == WAITING:
        return WAITING_WORDS
    if counter.state == START:
        return READY_WORDS
    out, turn, back = exercise.phase_words
    return {OUT: out, AT_TURN: turn, BACK: back}[counter.phase]


def _frame_box(frame: Frame) -> tuple[int, int, int, int]:
    """Where the frame's own pixels are in its image (x0, y0, x1, y1, exclusive ends): all of it
    unless a frame of another size was letterboxed into the run's output size."""
    width, height = frame.size
    if frame.own_size is None:
        return 0, 0, width, height
    place = frame.placement
    x0, y0 = round(place.offset_x), round(place.offset_y)
    return (x0, y0, min(width, x0 + round(frame.own_size[0] * place.scale_x)),
            min(height, y0 + round(frame.own_size[1] * place.scale_y)))


def _why_unknown(box: tuple[int, int, int, int] | None, size_px: int | None, joint_reasons: list[str | None],
                 frame_box: tuple[int, int, int, int], unknown: bool) -> str | None:
    """Why a person's counted angle is (or is taken as) unknown; None when it is known and counts.
    box: the person's mask's box in the image (None: empty); size_px: their size in the frame's
    own pixels (_PersonTrack.size_px: a frame scaled into the run's output size is judged as shot).
    With the angle unknown: out_of_frame when a counted joint is cut by the frame's edge or the
    person's mask reaches it (the body goes on outside), nobody_found when the mask is empty,
    too_small when the person is under MIN_PERSON_PX, else not_visible. A known angle of a person
    wholly in the frame and under MIN_PERSON_PX is too_small all the same: keypoints that small
    are guesses (a 46 px person's standing knees read, their squatting knees do not, so the
    counter never sees a squat)."""
    x0, y0, x1, y1 = frame_box
    at_edge = box is not None and (box[1] <= y0 or box[3] >= y1 or box[0] <= x0 or box[2] >= x1)
    small = box is not None and size_px is not None and size_px < MIN_PERSON_PX
    if not unknown:
        return TOO_SMALL if small and not at_edge else None
    if OUT_OF_FRAME in joint_reasons or at_edge:
        return OUT_OF_FRAME
    if box is None:
        return NOBODY
    return TOO_SMALL if small else NOT_VISIBLE


def _added(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    """Frame counts by key of two tracks of one person, added (None for none)."""
    total = dict(a or {})
    for key, frames in (b or {}).items():
        total[key] = total.get(key, 0) + frames
    return total or None


def _start_posture(exercise: Exercise) -> str:
    """'a sit-up starts lying down': the posture of an exercise that has one."""
    return f"a {exercise.name} starts {exercise.posture.words}"


def _unknown_summary(track: _PersonTrack, exercise: Exercise, anyone_seen: bool) -> dict[str, Any]:
    """The summary's per-person counts and hint (FitnessAnalyser.summary); anyone_seen: whether
    the run found a person (any person) in some frame, so that frames with nobody are a note."""
    unknown, off_posture = track.unknown or {}, track.off_posture or {}
    frames = sum(unknown.values())
    worst = max(unknown, key=unknown.get, default=None)
    reason = worst if worst is not None and frames >= HINT_SHARE * track.frames else None
    hint = HINTS.get(reason)
    found = track.frames - unknown.get(NOBODY, 0)
    if reason == NOBODY and 0 < found == unknown.get(TOO_SMALL, 0):  # unseen, as far as can be told, for being small
        reason = TOO_SMALL
        hint = HINTS[TOO_SMALL]
    if reason == NOBODY:
        hint = (f"nobody in view for {track.nobody_s:.1f} s" if anyone_seen
                else f"nobody found in any frame: if someone is there, they are too small or unclear to be "
                     f"found: {CLOSER}")
    partials = track.counter.partial_reps
    if not track.counter.reps and partials:
        reason, hint = TOO_SHALLOW, f"no rep counted: {_too_shallow(partials, exercise)}"
    if not track.counter.reps and 2 * sum(off_posture.values()) > track.start_frames:
        seen = max(off_posture, key=off_posture.get)
        reason = POSTURE
        hint = f"no rep counted: the person was {seen}, {_start_posture(exercise)}"
    if reason is None and not track.counter.reps and track.low_deg <= track.high_deg:
        reason, hint = _no_movement(track, exercise)
    return {"frames": track.frames, "unknown_frames": frames, "unknown_reasons": dict(sorted(unknown.items())),
            "nobody_s": round(track.nobody_s, 3), "off_posture_frames": sum(off_posture.values()),
            "hint": hint, "hint_reason": reason}


def _no_movement(track: _PersonTrack, exercise: Exercise) -> tuple[str, str]:
    """The hint's reason and words for a person with no repetition and no partial one whose
    counted angle was known, from the counter and the angle's range against the exercise's
    thresholds (angles of the frames whose counted angle was known and counted):
    "no rep counted: a repetition was in progress when the run stopped (55° at the deepest so
    far, not yet back to 150° or more)" (IN_PROGRESS: the run ended, by --frames, Ctrl-C or the
    clip's end, during an attempt, reps.RepCounter.is_attempt); "no rep counted: a repetition was
    abandoned when its angle went unseen for over 1 s (95° at the deepest, not back to 150° or
    more before that)" (LOST: the person hidden or out of the parse mid-way, RepCounter.lost_deg);
    "no rep counted: every movement
    away from the start position was quicker than the 0.5 s a squat takes (61° at the deepest)"
    (TOO_QUICK: attempts back at the start sooner than RepCounter.min_rep_s, the farthest of them,
    RepCounter.quick_deg); "no rep counted: no movement (96° at the highest; a shoulder-press goes
    from 100° or less to 150°)" (NO_MOVEMENT: since it was first at the start position it left it
    by less than an attempt, the farthest since then); "no rep
    counted: at the start position (150° or more) only 0.08 s at a time, a squat needs 0.1 s
    there to start (the angle was 59-171°)" (NOT_AT_START: the counter never armed,
    RepCounter.min_start_s) or "no rep counted: never at the start position (the angle was
    112-140°; a squat starts at 150° or more)" (NOT_AT_START)."""
    counter = track.counter
    side = "less" if exercise.turn_deg > exercise.start_deg else "more"
    name = f"a {exercise.name}" if exercise.name in PRESETS else "the exercise"
    start = f"{exercise.start_deg:.0f}° or {side}"
    if counter.progress_deg is not None and counter.is_attempt(counter.progress_deg):
        return IN_PROGRESS, (f"no rep counted: a repetition was in progress when the run stopped "
                             f"({counter.progress_deg:.0f}° at the {exercise.extreme_word} so far, not yet back to "
                             f"{start})")
    if counter.lost_deg is not None:
        return LOST, (f"no rep counted: a repetition was abandoned when its angle went unseen for over "
                      f"{counter.max_gap_s:g} s ({counter.lost_deg:.0f}° at the {exercise.extreme_word}, not back to "
                      f"{start} before that)")
    span = f"the angle was {track.low_deg:.0f}-{track.high_deg:.0f}°"
    if track.armed:
        if counter.quick_deg is not None:
            return TOO_QUICK, (f"no rep counted: every movement away from the start position was quicker than "
                               f"the {exercise.min_rep_s:g} s {name} takes ({counter.quick_deg:.0f}° at the "
                               f"{exercise.extreme_word})")
        farthest = track.armed_high_deg if side == "less" else track.armed_low_deg
        return NO_MOVEMENT, (f"no rep counted: no movement ({farthest:.0f}° at the {exercise.extreme_word}; {name} "
                             f"goes from {start} to {exercise.turn_deg:.0f}°)")
    if counter.at_start(track.low_deg if side == "less" else track.high_deg):
        stay = (f"{counter.longest_start_s:.2f} s at a time" if counter.longest_start_s > 0
                else "in single frames")
        return NOT_AT_START, (f"no rep counted: at the start position ({start}) only {stay}, {name} needs "
                              f"{counter.min_start_s:g} s there to start ({span})")
    return NOT_AT_START, f"no rep counted: never at the start position ({span}; {name} starts at {start})"


def _too_shallow(partials: list[PartialRep], exercise: Exercise) -> str:
    """'1 movement too shallow (120° at the deepest; a lunge turns at 110°)': the one that went
    farthest from the start, in the exercise's word for its turn (Exercise.extreme_word)."""
    farthest = max(partials, key=lambda p: abs(p.depth_deg - exercise.start_deg)).depth_deg
    turn = (f"a {exercise.name} turns at" if exercise.name in PRESETS else "the turn is at")
    return (f"{len(partials)} movement{'' if len(partials) == 1 else 's'} too shallow "
            f"({farthest:.0f}° at the {exercise.extreme_word}; {turn} {exercise.turn_deg:.0f}°)")
