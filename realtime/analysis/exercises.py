"""Exercise presets as data: which joints to watch and the thresholds of a repetition."""
from __future__ import annotations

import math
from dataclasses import dataclass

from realtime.analysis.angles import JOINTS

REDUCTIONS = ("mean", "min", "max")
JOINT_ANGLE_RANGE_DEG = (0.0, 180.0)  # a joint angle between two limb segments (analysis.angles)
HORIZONTAL_DEG = 45.0  # a trunk further than this from the vertical is lying (or in a plank), nearer is upright
LYING_DEG = 65.0  # in words, a trunk between HORIZONTAL_DEG and this is bent over (a plank on the clip: 77-87)


@dataclass(frozen=True)
class Posture:
    """Where an exercise's start position is, from the trunk's angle to the vertical (angles'
    trunk_lean: 0 upright, 90 horizontal, in 2-D or from the 3-D world landmarks): upright (nearer
    the vertical than HORIZONTAL_DEG: standing, or sitting up) or horizontal (lying down, a plank).
    `words` is how a coach says it ("standing", "lying down", "in a plank")."""

    name: str
    horizontal: bool
    words: str

    def holds(self, trunk_lean_deg: float) -> bool:
        """Whether a trunk at `trunk_lean_deg` from the vertical is in this posture; an unknown
        trunk (NaN: the hips or shoulders out of frame, e.g. a curl filmed from the waist up)
        is taken to be."""
        if math.isnan(trunk_lean_deg):
            return True
        return (_tilt(trunk_lean_deg) > HORIZONTAL_DEG) == self.horizontal


STANDING = Posture("standing", horizontal=False, words="standing")
UPRIGHT = Posture("upright", horizontal=False, words="upright (standing or seated)")
LYING = Posture("lying", horizontal=True, words="lying down")
PLANK = Posture("plank", horizontal=True, words="in a plank")


def _tilt(trunk_lean_deg: float) -> float:
    """The trunk's line against the vertical line, 0-90: a trunk read upside down (hips above
    the shoulders, as a pose model may read a body cut at the waist) is as upright as one
    the right way up."""
    return min(trunk_lean_deg, 180.0 - trunk_lean_deg)


def seen_posture(trunk_lean_deg: float) -> str:
    """A trunk's posture in words, for saying what was seen: upright (up to HORIZONTAL_DEG from
    the vertical), bent over (up to LYING_DEG) or lying."""
    tilt = _tilt(trunk_lean_deg)
    if tilt <= HORIZONTAL_DEG:
        return "standing or sitting up"
    return "bent over" if tilt <= LYING_DEG else "lying or in a plank"


@dataclass(frozen=True)
class Exercise:
    """joints: the angles combined into the counted signal by `reduce` (mean of the known
    sides, or the side seen best when they are too far apart to be one movement; min/max follow
    the side that moves most, e.g. a lunge's front knee).
    start_deg / turn_deg: see RepCounter. min_rep_s: shortest real repetition. phases: what the
    person is doing, in words, on the way out, at the turn and on the way back (None: "going
    down", "at the bottom", "coming up" for an angle that closes, the reverse for one that opens).
    posture: the body's position at the start position (a sit-up starts lying down, a squat
    standing: the hips fold in both); a start out of it is no start (RepCounter). None: any.
    extreme: the superlative that says where the turn is, as in "96° at the highest" (None:
    "deepest" for an angle that closes at the turn, "widest" for one that opens)."""

    name: str
    joints: tuple[str, ...]
    start_deg: float
    turn_deg: float
    reduce: str = "mean"
    min_rep_s: float = 0.5
    phases: tuple[str, str, str] | None = None
    posture: Posture | None = None
    extreme: str | None = None

    def __post_init__(self) -> None:
        unknown = [j for j in self.joints if j not in JOINTS]
        if not self.joints or unknown:
            raise ValueError(f"exercise {self.name}: unknown joint(s) {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(JOINTS)}")
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"exercise {self.name}: reduce must be one of {', '.join(REDUCTIONS)}")
        low, high = JOINT_ANGLE_RANGE_DEG
        for what, value in (("start", self.start_deg), ("turn", self.turn_deg)):
            if not low <= value <= high:
                raise ValueError(f"exercise {self.name}: the {what} angle must be {low:g}-{high:g} degrees, "
                                 f"not {value:g}")
        if self.start_deg == self.turn_deg:
            raise ValueError(f"exercise {self.name}: start and turn angles must differ")
        if self.min_rep_s < 0:
            raise ValueError(f"exercise {self.name}: min_rep_s must be >= 0")

    @property
    def phase_words(self) -> tuple[str, str, str]:
        if self.phases is not None:
            return self.phases
        if self.turn_deg < self.start_deg:
            return "going down", "at the bottom", "coming up"
        return "going up", "at the top", "coming down"

    @property
    def extreme_word(self) -> str:
        if self.extreme is not None:
            return self.extreme
        return "deepest" if self.turn_deg < self.start_deg else "widest"

    def to_dict(self) -> dict:
        return {"name": self.name, "joints": list(self.joints), "start_deg": self.start_deg,
                "turn_deg": self.turn_deg, "reduce": self.reduce, "min_rep_s": self.min_rep_s,
                "posture": None if self.posture is None else self.posture.name}


PRESETS: dict[str, Exercise] = {
    "squat": Exercise("squat", ("left_knee", "right_knee"), start_deg=150, turn_deg=120, posture=STANDING),
    "push-up": Exercise("push-up", ("left_elbow", "right_elbow"), start_deg=145, turn_deg=105, posture=PLANK),
    "lunge": Exercise("lunge", ("left_knee", "right_knee"), start_deg=150, turn_deg=110, reduce="min",
                      posture=STANDING),
    "jumping-jack": Exercise("jumping-jack", ("left_shoulder", "right_shoulder"), start_deg=45, turn_deg=120,
                             min_rep_s=0.3, phases=("arms going up", "arms up", "arms coming down"), posture=STANDING,
                             extreme="highest"),
    "biceps-curl": Exercise("biceps-curl", ("left_elbow", "right_elbow"), start_deg=140, turn_deg=70,
                            reduce="min", phases=("curling up", "at the top", "lowering"), posture=UPRIGHT),
    # Hip angle = shoulder-hip-knee (angles.JOINTS). Seen from the side with the thighs raised
    # phi from the floor (knees bent, feet down: phi ~ 40-50) and the torso raised theta, it is
    # 180 - phi - theta: ~135 lying back, ~45-65 sitting up (theta 70-90). 120 = back within
    # ~15 deg of the floor; 80 = torso raised past ~55 deg (a sit-up, not a crunch).
    "sit-up": Exercise("sit-up", ("left_hip", "right_hip"), start_deg=120, turn_deg=80,
                       phases=("sitting up", "sitting up straight", "lying back"), posture=LYING),
    # Shoulder angle = hip-shoulder-elbow (upper arm against the torso). Rack position (hands at
    # the shoulders, elbows out and a little below them) ~70-95 from the front, ~20-50 from
    # the side; lockout (arms straight up beside the head) ~165-180. 100 = elbows at or below
    # shoulder height; 150 = arms overhead, with margin for an imperfect lockout.
    "shoulder-press": Exercise("shoulder-press", ("left_shoulder", "right_shoulder"), start_deg=100, turn_deg=150,
                               phases=("pressing up", "arms locked out", "lowering"), posture=UPRIGHT,
                               extreme="highest"),
}


def custom_exercise(joint: str | list[str], *, start_deg: float, turn_deg: float, reduce: str = "mean",
                    min_rep_s: float = 0.5) -> Exercise:
    joints = (joint,) if isinstance(joint, str) else tuple(joint)
    return Exercise("custom", joints, start_deg=start_deg, turn_deg=turn_deg, reduce=reduce, min_rep_s=min_rep_s)


def get_exercise(name: str) -> Exercise:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown exercise {name!r}; choose from {', '.join(PRESETS)} or custom") from None
