"""Repetition counting on one angle signal: a state machine with hysteresis.

A repetition starts at the start position (the angle on the start side of `start_deg`), passes
the turn (beyond `turn_deg`) and counts only once the angle is back at the start position. The
band between the two thresholds is the hysteresis: noise inside it changes nothing. A movement
that leaves the start position far enough to be an attempt (`partial_share` of the band) and
comes back without reaching the turn, over at least `min_rep_s` as a repetition must, is a
partial repetition: not counted, too shallow (quicker, it is a glitch of a frame or two). The
counter arms (waiting -> start) only once the start position has been seen for `min_start_s`
without a gap: one known sample among unknown ones (a body cut by the frame's edge, read once)
is no start. A repetition starts only in the exercise's posture: a sample at the start position out of it
(`in_posture=False`: a standing person's open hips are not a sit-up's lying start) is no start,
and the counter waits for the start position again. The way back is not checked: a repetition
that started in the posture ends wherever it returns to the start angle. A repetition with the angle
unknown for longer than `max_turn_gap_s` at a stretch (one known sample among unknown ones does
not end it) next to its turn or a sample or two from it (knees out of the frame at a squat's
bottom; a body hidden by a passer-by, read wrongly just before, after or once in between) is
counted with `turn_seen` False: its depth and tempo are those of the samples seen, not the
movement's.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

WAITING = "waiting"  # the start position has not been seen yet
START = "start"  # at the start position
OUT = "out"  # left the start position, turn not reached yet
TURNED = "turned"  # reached the turn, on the way back
# The angle within this many degrees of a repetition's extreme is at its turn (Rep.hold_s).
HOLD_DEG = 5.0
# Where a repetition in progress is (RepCounter.phase): on its way out, at its turn, on its way back.
AT_TURN = "at_turn"
BACK = "back"
# Past turn_deg, a sample that goes further than all before it this fast (deg/s) or faster is still
# on the way out: squat30's knees close at ~150 deg/s going down and slow under 60 0.1 s before the
# deepest; the push-up mannequin's elbows sink ~45 deg/s at its bottom.
FURTHER_DPS = 60.0
# A gap next to this many known samples on each side of those at the turn is also at the turn
# (Rep.turn_seen): a body being hidden reads wrongly a frame or two before and after the gap.
TURN_NEIGHBOURS = 2


@dataclass
class Rep:
    """One counted repetition. Frames and times are those of the source; the turn is the extreme
    sample, and the samples in a row around it within the counter's hold_deg of its angle are at
    the turn. Tempo: out_s from leaving the start position to the first of those, hold_s from the
    first to the last, back_s from the last to the start again: out_s + hold_s + back_s =
    end_s - start_s."""

    number: int
    start_frame: int
    turn_frame: int
    end_frame: int
    start_s: float
    turn_s: float
    end_s: float
    min_deg: float
    max_deg: float
    out_s: float
    hold_s: float
    back_s: float
    # mean |left - right| angle and left/right limb part area over the repetition's samples, start
    # to end; None when measured in fewer than half of them
    side_diff_deg: float | None = None
    area_ratio: float | None = None
    depth_deg: float | None = None  # the extreme angle: min_deg when the turn is below the start, else max_deg
    # False when the angle was unknown for longer than the counter's max_turn_gap_s at a stretch
    # next to a sample at the turn or to one of the TURN_NEIGHBOURS known samples on each side of
    # them: the real extreme may lie in that gap, so depth_deg, turn_s and the tempo are those of
    # the samples seen
    turn_seen: bool = True

    @property
    def rom_deg(self) -> float:
        return self.max_deg - self.min_deg

    def to_dict(self) -> dict:
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["rom_deg"] = round(self.rom_deg, 3)
        return out


@dataclass(frozen=True)
class PartialRep:
    """A movement that left the start position and came back without reaching the turn: not
    counted, too shallow. depth_deg is the extreme angle it reached (times in seconds)."""

    start_s: float
    turn_s: float
    end_s: float
    depth_deg: float

    def to_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass
class _Sample:
    frame: int
    time_s: float
    deg: float


class _Tracked(NamedTuple):
    """A sample of the repetition in progress, with the time the angle was unknown just before it
    (from the first unknown sample in a row to it, a lone known sample between unknown ones not
    ending the row; 0 after a known one) and its symmetry figures."""

    time_s: float
    deg: float
    unknown_s: float
    side_diff_deg: float | None
    area_ratio: float | None


@dataclass
class _Attempt:
    """What is known about the repetition in progress."""

    start: _Sample
    extreme: _Sample
    low: float
    high: float
    samples: list[_Tracked] = field(default_factory=list)  # since the start
    phase: str = OUT  # OUT, AT_TURN or BACK (RepCounter.phase)


class RepCounter:
    """Counts repetitions of one angle signal.

    start_deg / turn_deg: the start position is on start_deg's side away from turn_deg, the
        turn is at or beyond turn_deg (exercises.PRESETS: a squat's knees start at 150 and turn
        at 120, closing; a jumping jack's shoulders start at 45 and turn at 120, opening).
    min_rep_s: shorter start -> turn -> start cycles are noise, not repetitions.
    min_hold_s: after the turn, the angle must stay at the start position this long before the
        repetition counts, so a glitch at the bottom that looks like the start does not end it.
    min_start_s: while waiting, the start position must be seen this long, sample after sample
        with no unknown one between, before the counter is at the start (armed).
    max_gap_s: a gap in the signal (NaN / None) longer than this abandons the repetition in
        progress (an attempt's extreme is kept in `lost_deg`); the counter waits for the start
        position again.
    partial_share: a movement back to the start without the turn is a partial repetition when its
        extreme got this share of the way from start_deg to turn_deg (less is sway, not an attempt)
        and it lasted min_rep_s (less is a glitch, not a movement).
    max_turn_gap_s: a repetition with the angle unknown for longer than this at a stretch just
        before or after one of its samples at the turn (Rep) or of the TURN_NEIGHBOURS known
        samples nearest them on each side is counted with `turn_seen` False.
    hold_deg: the samples in a row around the extreme within this of its angle are at the turn,
        for the tempo (Rep): a held bottom is its hold wherever its sway puts the extreme.
    """

    def __init__(self, *, start_deg: float, turn_deg: float, min_rep_s: float = 0.5, min_hold_s: float = 0.1,
                 min_start_s: float = 0.1, max_gap_s: float = 1.0, partial_share: float = 0.25,
                 max_turn_gap_s: float = 0.25, hold_deg: float = HOLD_DEG) -> None:
        if start_deg == turn_deg:
            raise ValueError("start and turn thresholds must differ")
        if min_rep_s < 0 or min_hold_s < 0 or min_start_s < 0 or hold_deg < 0 or max_gap_s <= 0 or max_turn_gap_s <= 0:
            raise ValueError("min_rep_s, min_hold_s, min_start_s and hold_deg must be >= 0, max_gap_s and "
                             "max_turn_gap_s > 0")
        self.start_deg = start_deg
        self.turn_deg = turn_deg
        self.min_rep_s = min_rep_s
        self.min_hold_s = min_hold_s
        self.min_start_s = min_start_s
        self.max_gap_s = max_gap_s
        self.partial_share = partial_share
        self.max_turn_gap_s = max_turn_gap_s
        self.hold_deg = hold_deg
        self._sign = 1.0 if turn_deg > start_deg else -1.0  # direction of travel towards the turn
        self.reset()

    def reset(self) -> None:
        self.reps: list[Rep] = []
        self.partial_reps: list[PartialRep] = []  # too shallow: left the start and came back without the turn
        self.rejected = 0  # full cycles shorter than min_rep_s
        # the farthest extreme of the attempts (is_attempt) back at the start sooner than min_rep_s
        self.quick_deg: float | None = None
        # the farthest extreme of the attempts (is_attempt) abandoned by a gap longer than max_gap_s
        self.lost_deg: float | None = None
        self.longest_start_s = 0.0  # while waiting: the longest stay at the start position, sample after sample
        self._forget_progress()

    def _forget_progress(self) -> None:
        self.state = WAITING
        self._attempt: _Attempt | None = None
        self._back: _Sample | None = None  # first sample back at the start after the turn
        self._seen_start: _Sample | None = None  # while waiting: the first of the samples in a row at the start
        self._last: _Sample | None = None
        self._unknown_since: float | None = None  # the time of the first unknown sample since the last known one
        # while the latest known sample is the only one since unknown ones: when those began
        self._lone_after: float | None = None

    def seek(self, time_s: float) -> None:
        """The signal continues from `time_s` (a seek): the repetition in progress is dropped and
        so is every repetition (and partial one) that ended after `time_s`; those before stay."""
        self._forget_progress()
        self.reps = [rep for rep in self.reps if rep.end_s <= time_s]
        self.partial_reps = [partial for partial in self.partial_reps if partial.end_s <= time_s]

    def absorb(self, earlier: RepCounter) -> None:
        """Adds the repetitions of `earlier` (the same person under an earlier ID) to these, in
        time order and numbered again; the repetition in progress stays this counter's."""
        reps = sorted([*earlier.reps, *self.reps], key=lambda rep: rep.start_s)
        self.reps = [replace(rep, number=n) for n, rep in enumerate(reps, 1)]
        self.partial_reps = sorted([*earlier.partial_reps, *self.partial_reps], key=lambda p: p.start_s)
        self.rejected += earlier.rejected
        if earlier.quick_deg is not None:
            self._note_quick(earlier.quick_deg)
        if earlier.lost_deg is not None:
            self._note_lost(earlier.lost_deg)
        self.longest_start_s = max(self.longest_start_s, earlier.longest_start_s)

    @property
    def count(self) -> int:
        return len(self.reps)

    @property
    def partials(self) -> int:
        return len(self.partial_reps)

    def last_deg(self, time_s: float) -> float | None:
        """The latest sample's angle (degrees) as the counter holds it at `time_s`: None before the
        first, after a seek, and more than max_gap_s after it (the gap drops it)."""
        return None if self._last is None or self._gap_at(time_s) else self._last.deg

    def _gap_at(self, time_s: float) -> bool:
        """Whether `time_s` is more than max_gap_s after the latest sample (False without one)."""
        return self._last is not None and time_s - self._last.time_s > self.max_gap_s

    @property
    def progress_deg(self) -> float | None:
        """The extreme angle of the repetition in progress (it left the start position and is not
        back yet: state OUT or TURNED); None when none is."""
        return self._attempt.extreme.deg if self.state in (OUT, TURNED) else None

    @property
    def phase(self) -> str | None:
        """Where the repetition in progress is at the latest known sample: OUT until it passed
        turn_deg and then while each sample goes further than all before it at FURTHER_DPS or
        faster; then AT_TURN until it is more than twice hold_deg back from its extreme, BACK
        from there, AT_TURN again within hold_deg of it (a hysteresis: sway at a held bottom
        changes nothing). None when none is in progress."""
        return self._attempt.phase if self.state in (OUT, TURNED) else None

    def beyond_turn(self, deg: float) -> bool:
        """Whether `deg` is at or past the turn."""
        return self._sign * (deg - self.turn_deg) >= 0

    def at_start(self, deg: float) -> bool:
        """Whether `deg` is at the start position (on start_deg's side away from the turn)."""
        return self._sign * (deg - self.start_deg) <= 0

    def would_start(self, deg: float) -> bool:
        """Whether a sample at `deg` would be a start: at the start position with no repetition
        in progress (the samples that `in_posture=False` refuses)."""
        return self.state in (WAITING, START) and self.at_start(deg)

    def update(self, deg: float | None, time_s: float, frame: int, *, side_diff_deg: float | None = None,
               area_ratio: float | None = None, in_posture: bool = True) -> Rep | None:
        """Feeds one sample; returns the repetition it completed, if any. None or NaN = no
        measurement this frame. side_diff_deg / area_ratio: this sample's symmetry figures (None:
        not measured, e.g. one side hidden behind the other). in_posture=False: the body is not in the exercise's posture, so
        this sample cannot start a repetition (see the module's docstring)."""
        if deg is None or math.isnan(deg):
            self._seen_start = None
            if self._unknown_since is None:  # one known sample between unknown ones does not end them
                self._unknown_since = time_s if self._lone_after is None else self._lone_after
            if self._gap_at(time_s):
                self._abandon()
                self._last = None
            return None
        if self._gap_at(time_s):
            self._abandon()
        sample = _Sample(frame, time_s, float(deg))
        unknown_s = 0.0 if self._unknown_since is None else time_s - self._unknown_since
        self._last, self._lone_after, self._unknown_since = sample, self._unknown_since, None
        at_start, past_turn = self.at_start(deg), self.beyond_turn(deg)
        if not in_posture and self.would_start(deg):
            self.state, self._attempt, self._seen_start = WAITING, None, None
            return None
        if self.state == WAITING:
            self._seen_start = (self._seen_start or sample) if at_start else None
            if self._seen_start is not None:
                self.longest_start_s = max(self.longest_start_s, time_s - self._seen_start.time_s)
            if self._seen_start is not None and time_s - self._seen_start.time_s >= self.min_start_s:
                self.state, self._seen_start = START, None
                self._attempt = _Attempt(sample, sample, deg, deg)
            return None
        if self.state == START:
            if at_start:
                self._rest(sample)
            else:
                self.state = TURNED if past_turn else OUT
                self._track(sample, unknown_s, side_diff_deg, area_ratio)
            return None
        if past_turn:
            self.state = TURNED
        self._track(sample, unknown_s, side_diff_deg, area_ratio)
        if not at_start:
            self._back = None
            return None
        completed = None
        if self.state == OUT:
            self._note_partial(sample)
        else:
            self._back = self._back or sample
            if sample.time_s - self._back.time_s < self.min_hold_s:
                return None
            completed = self._finish(self._back)
        self.state, self._back = START, None
        self._attempt = _Attempt(sample, sample, deg, deg)
        return completed

    def is_attempt(self, deg: float) -> bool:
        """Whether an extreme at `deg` went far enough from the start to be an attempt
        (partial_share of the way to the turn; less is sway)."""
        return self._sign * (deg - self.start_deg) >= self.partial_share * abs(self.turn_deg - self.start_deg)

    def _note_partial(self, end: _Sample) -> None:
        attempt = self._attempt
        if not self.is_attempt(attempt.extreme.deg):
            return
        if end.time_s - attempt.start.time_s >= self.min_rep_s:
            self.partial_reps.append(PartialRep(attempt.start.time_s, attempt.extreme.time_s, end.time_s,
                                                attempt.extreme.deg))
        else:
            self._note_quick(attempt.extreme.deg)

    def _note_quick(self, deg: float) -> None:
        if self.quick_deg is None or self._sign * (deg - self.quick_deg) > 0:
            self.quick_deg = deg

    def _abandon(self) -> None:
        """A gap longer than max_gap_s: the repetition in progress is dropped, its extreme noted
        (lost_deg) when it was an attempt."""
        if self.state in (OUT, TURNED) and self.is_attempt(self._attempt.extreme.deg):
            self._note_lost(self._attempt.extreme.deg)
        self.state, self._attempt, self._back = WAITING, None, None

    def _note_lost(self, deg: float) -> None:
        if self.lost_deg is None or self._sign * (deg - self.lost_deg) > 0:
            self.lost_deg = deg

    def _rest(self, sample: _Sample) -> None:
        """At the start position: the repetition will start from here; the range of motion
        includes the whole rest."""
        attempt = self._attempt
        attempt.start = attempt.extreme = sample
        attempt.low, attempt.high = min(attempt.low, sample.deg), max(attempt.high, sample.deg)

    def _track(self, sample: _Sample, unknown_s: float, side_diff_deg: float | None,
               area_ratio: float | None) -> None:
        attempt = self._attempt
        attempt.low, attempt.high = min(attempt.low, sample.deg), max(attempt.high, sample.deg)
        further = self._sign * (sample.deg - attempt.extreme.deg)
        going = further > 0 and further >= FURTHER_DPS * (sample.time_s - attempt.extreme.time_s)
        if further > 0:
            attempt.extreme = sample
        attempt.samples.append(_Tracked(sample.time_s, sample.deg, unknown_s, side_diff_deg, area_ratio))
        if attempt.phase == OUT and self.state == TURNED and not going:
            attempt.phase = AT_TURN
        back = self._sign * (attempt.extreme.deg - sample.deg)
        if attempt.phase == AT_TURN and back > 2 * self.hold_deg:
            attempt.phase = BACK
        elif attempt.phase == BACK and back <= self.hold_deg:
            attempt.phase = AT_TURN

    def _finish(self, end: _Sample) -> Rep | None:
        attempt = self._attempt
        start, turn = attempt.start, attempt.extreme
        if end.time_s - start.time_s < self.min_rep_s:
            self.rejected += 1
            self._note_quick(turn.deg)
            return None
        samples = [sample for sample in attempt.samples if sample.time_s <= end.time_s]
        first = last = next(i for i, sample in enumerate(samples) if sample.time_s == turn.time_s)
        while first > 0 and abs(samples[first - 1].deg - turn.deg) <= self.hold_deg:
            first -= 1
        while last + 1 < len(samples) and abs(samples[last + 1].deg - turn.deg) <= self.hold_deg:
            last += 1
        reached, left = samples[first].time_s, samples[last].time_s
        # the gaps before and after each sample at the turn and its TURN_NEIGHBOURS nearest on each side
        near = samples[max(first - TURN_NEIGHBOURS, 0):last + 2 + TURN_NEIGHBOURS]
        unseen = any(sample.unknown_s > self.max_turn_gap_s for sample in near)
        rep = Rep(
            number=len(self.reps) + 1, start_frame=start.frame, turn_frame=turn.frame, end_frame=end.frame,
            start_s=start.time_s, turn_s=turn.time_s, end_s=end.time_s,
            min_deg=min(attempt.low, end.deg), max_deg=max(attempt.high, end.deg),
            out_s=reached - start.time_s, back_s=end.time_s - left, hold_s=left - reached,
            side_diff_deg=_mean_of_most([sample.side_diff_deg for sample in samples]),
            area_ratio=_mean_of_most([sample.area_ratio for sample in samples]), depth_deg=turn.deg,
            turn_seen=not unseen,
        )
        self.reps.append(rep)
        return rep


def _mean_of_most(values: list[float | None]) -> float | None:
    """The mean of the measured values (not None or NaN) when they are at least half of all,
    else None: a figure measured in fewer of a repetition's samples is not the repetition's (one
    frame read facing the camera in a repetition turned away from it is no symmetry figure)."""
    measured = [value for value in values if value is not None and math.isfinite(value)]
    return sum(measured) / len(measured) if measured and 2 * len(measured) >= len(values) else None
