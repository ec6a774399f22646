"""RepCounter on synthetic angle traces: clean, noisy, partial, paused, with dropouts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.analysis.reps import AT_TURN, BACK, OUT, START, TURNED, WAITING, RepCounter

FPS = 30.0


def squat_trace(reps: int, *, period_s: float = 2.0, rest_s: float = 1.0, top: float = 175.0,
                bottom: float = 80.0) -> np.ndarray:
    """Standing `rest_s`, then `reps` cosine dips from top to bottom and back, standing again."""
    rest = np.full(int(rest_s * FPS), top)
    t = np.arange(int(period_s * FPS)) / FPS
    dip = bottom + (top - bottom) * (0.5 + 0.5 * np.cos(2 * math.pi * t / period_s))
    return np.concatenate([rest, *([dip] * reps), rest])


def run(counter: RepCounter, trace) -> list:
    done = []
    for i, deg in enumerate(trace):
        rep = counter.update(None if deg is None else float(deg), i / FPS, i)
        if rep is not None:
            done.append(rep)
    return done


def squat_counter(**kwargs) -> RepCounter:
    return RepCounter(start_deg=150, turn_deg=105, **kwargs)


def test_clean_reps_count_with_range_of_motion_and_tempo():
    counter = squat_counter()
    reps = run(counter, squat_trace(3))
    assert counter.count == 3 and len(reps) == 3
    for n, rep in enumerate(reps):
        assert rep.number == n + 1
        assert rep.max_deg == pytest.approx(175.0) and rep.min_deg == pytest.approx(80.0, abs=0.2)
        assert rep.rom_deg == pytest.approx(95.0, abs=0.2)
        bottom_frame = 30 + 60 * n + 30  # the cosine's minimum, half a period into the dip
        assert rep.turn_frame == bottom_frame
        assert rep.out_s == pytest.approx(rep.back_s, abs=2 / FPS)
        assert rep.start_frame < rep.turn_frame < rep.end_frame
    assert counter.state == START and counter.partials == 0


def test_noise_inside_the_hysteresis_band_counts_nothing_extra():
    rng = np.random.default_rng(0)
    trace = squat_trace(4) + rng.normal(0, 6, size=len(squat_trace(4)))
    counter = squat_counter()
    run(counter, trace)
    assert counter.count == 4


def test_jitter_around_one_threshold_is_not_a_rep():
    trace = np.concatenate([np.full(30, 170.0), 150 + 8 * np.sign(np.sin(np.arange(120)))])
    counter = squat_counter()
    run(counter, trace)
    assert counter.count == 0


def test_partial_rep_that_never_reaches_the_turn_is_counted_as_partial():
    shallow = squat_trace(1, bottom=120.0)
    counter = squat_counter()
    run(counter, np.concatenate([shallow, squat_trace(1)]))
    assert counter.count == 1 and counter.partials == 1


def test_a_rep_counts_only_when_back_at_the_start_position():
    trace = squat_trace(2)
    counter = squat_counter()
    run(counter, np.concatenate([trace, squat_trace(1, rest_s=0.5)[:45]]))  # ends at the bottom
    assert counter.count == 2 and counter.state == TURNED


def test_starting_mid_rep_does_not_count_the_half_seen_rep():
    trace = squat_trace(2, rest_s=0.5)
    counter = squat_counter()
    run(counter, trace[15 + 30:])  # starts at the bottom of the first dip
    assert counter.count == 1


def test_pause_at_the_bottom_still_counts_once_and_is_its_hold():
    down = np.linspace(175, 80, 30)
    trace = np.concatenate([np.full(30, 175.0), down, np.full(90, 80.0), down[::-1], np.full(30, 175.0)])
    counter = squat_counter()
    (rep,) = run(counter, trace)
    assert counter.count == 1
    assert rep.turn_frame == 59  # the extreme is the first bottom sample
    # the last two samples down and the first two up are within 5 degrees of it (3.3 degrees a frame)
    assert rep.hold_s == pytest.approx(93 / FPS) and rep.out_s == pytest.approx(21 / FPS)
    assert rep.out_s + rep.hold_s + rep.back_s == pytest.approx(rep.end_s - rep.start_s)


def test_held_reps_that_sway_at_the_bottom_read_the_same_tempo():
    """Two goblet squats held 2.5 s, one settling 2 degrees deeper over the hold, the other rising 2
    degrees: the extreme is at the hold's end in one, its start in the other (which read one rep
    0.6 s down and 3.1 s up, the other the other way round); the way down, the hold and the way
    up do not depend on it."""
    down = np.linspace(175, 70, 18)
    held = [np.concatenate([down, hold, down[::-1], np.full(30, 175.0)])
            for hold in (np.linspace(70, 68, 75), np.linspace(68, 70, 75))]
    (settling, rising) = run(squat_counter(), np.concatenate([np.full(30, 175.0), *held]))
    assert settling.turn_s - settling.start_s > rising.turn_s - rising.start_s + 2.0, "the extremes land apart"
    for rep in (settling, rising):
        assert rep.hold_s == pytest.approx(76 / FPS), rep
        assert rep.out_s == pytest.approx(rep.back_s, abs=1.5 / FPS) and rep.out_s < 0.6, rep


def test_a_bounce_between_two_dips_is_no_hold():
    """Down to 62 degrees, up to 95, down to 60 and up: at the turn is only the second dip's
    bottom, not everything from the first dip's (0.6 s, as if held)."""
    down, bounce, dip, up = (np.linspace(175, 62, 20), np.linspace(62, 95, 10), np.linspace(95, 60, 10),
                             np.linspace(60, 175, 20))
    trace = np.concatenate([np.full(30, 175.0), down, bounce[1:], dip[1:], up[1:], np.full(30, 175.0)])
    (rep,) = run(squat_counter(), trace)
    assert rep.turn_frame == 30 + 19 + 9 + 9 and rep.hold_s == pytest.approx(1 / FPS)
    assert rep.out_s + rep.hold_s + rep.back_s == pytest.approx(rep.end_s - rep.start_s)


def test_short_dropouts_are_bridged_and_long_ones_abandon_the_rep():
    trace: list[float | None] = list(squat_trace(1))
    for i in range(50, 60):  # a third of a second at the bottom: bridged
        trace[i] = math.nan
    counter = squat_counter()
    run(counter, trace)
    assert counter.count == 1

    trace = list(squat_trace(1))
    for i in range(35, 85):  # the whole bottom lost for 1.7 s: not counted, waits for the start again
        trace[i] = None
    counter = squat_counter(max_gap_s=1.0)
    run(counter, trace)
    assert counter.count == 0 and counter.state == START


@pytest.mark.parametrize("lost, deeper, seen", [
    (range(53, 68), None, False),  # the bottom (frame 60) unknown for 0.5 s: the turn is the last sample before
    (range(53, 64), None, False),  # unknown to just past it: the turn is the first sample after
    (range(55, 66), 67, False),  # the second sample after it 1.5 degrees deeper than any: still next to the gap
    (range(59, 62), None, True),  # 3 frames at the bottom: unknown for 0.1 s
    (range(35, 46), None, True),  # a gap on the way down, the bottom seen
    (range(41, 49), None, True),  # one ending 0.37 s (28 degrees) above the bottom: the way down to it seen
])
def test_a_rep_whose_turn_the_angle_was_unknown_at_says_its_turn_was_not_seen(lost, deeper, seen):
    trace: list[float | None] = list(squat_trace(1))
    if deeper is not None:
        trace[deeper] = trace[deeper - 1] - 1.5
    for i in lost:
        trace[i] = None
    (rep,) = run(squat_counter(), trace)
    assert rep.turn_seen is seen
    if seen:
        assert abs(rep.turn_frame - 60) <= 2
    else:  # the nearest sample seen, short of the bottom
        assert rep.turn_frame in (lost.start - 1, lost.stop, deeper) and rep.depth_deg > 82.0
    assert run(squat_counter(max_turn_gap_s=1.0), trace)[0].turn_seen  # a gap within max_turn_gap_s is none


@pytest.mark.parametrize("wrong, lost", [
    ({50: 40.0, 51: 120.0}, range(52, 66)),  # a body being hidden: one frame far too deep, one wild, then unknown
    ({62: 100.0, 63: 96.0, 64: 93.0, 65: 91.0}, range(45, 62)),  # coming out from behind someone: read too open
])
def test_a_rep_whose_turn_was_read_a_frame_or_more_from_a_long_gap_says_its_turn_was_not_seen(wrong, lost):
    """Readings next to a hidden bottom are not the movement's: its extreme may be a wrong sample
    or one some degrees away from the gap, and the real bottom lay in the gap (a passer-by)."""
    trace: list[float | None] = list(squat_trace(1))
    for i, deg in wrong.items():
        trace[i] = deg
    for i in lost:
        trace[i] = None
    (rep,) = run(squat_counter(), trace)
    assert rep.turn_frame not in lost and not rep.turn_seen
    clean = list(squat_trace(1))
    for i, deg in wrong.items():
        clean[i] = deg
    (rep,) = run(squat_counter(), clean)
    assert rep.turn_seen  # the same readings with nothing unknown


def test_a_hidden_bottom_read_once_in_the_middle_is_not_seen():
    """The bottom (frame 60) hidden for 0.5 s but read once, wrongly, in the middle: two gaps of
    0.23 s around one known sample are one gap."""
    trace: list[float | None] = list(squat_trace(1))
    trace[50:65] = [None] * 7 + [120.0] + [None] * 7
    (rep,) = run(squat_counter(), trace)
    assert not rep.turn_seen
    trace[58] = 118.0  # two readings in a row: the gaps are apart
    (rep,) = run(squat_counter(), trace)
    assert rep.turn_seen


@pytest.mark.parametrize("lost", [range(31, 40), range(54, 62)])
def test_a_quick_rep_with_a_gap_just_after_it_left_the_start_or_before_it_came_back_is_seen(lost):
    """A squat of one second (bottom at frame 45): a gap ending 5 frames before the bottom, or one
    from 9 frames after it, is not at its turn."""
    trace: list[float | None] = list(squat_trace(1, period_s=1.0))
    for i in lost:
        trace[i] = None
    (rep,) = run(squat_counter(), trace)
    assert rep.turn_frame == 45 and rep.turn_seen


def test_a_turn_between_samples_far_apart_but_none_unknown_is_seen():
    """Frames the pipeline did not analyse (a live source dropping late frames) are no unknown
    angle: three squats sampled 3.3 times a second are seen at every turn."""
    counter, reps = squat_counter(), []
    for i, deg in list(enumerate(squat_trace(3)))[::9]:
        if (rep := counter.update(float(deg), i / FPS, i)) is not None:
            reps.append(rep)
    assert len(reps) == 3 and all(rep.turn_seen for rep in reps)


def test_a_glitch_to_the_start_angle_at_the_bottom_does_not_end_the_rep():
    trace = squat_trace(1)
    trace[58:60] = 170.0  # two frames (67 ms) of a wrong "standing" reading at the bottom (frame 60)
    counter = squat_counter(min_hold_s=0.1)
    (rep,) = run(counter, trace)
    assert counter.count == 1 and rep.turn_frame == 60 and rep.end_frame > 70
    counter = squat_counter(min_hold_s=0.0)
    run(counter, trace)
    assert counter.count == 2, "without the hold the glitch splits the rep in two"


def test_cycles_shorter_than_the_minimum_duration_are_rejected():
    spike = np.array([175] * 6 + [90, 175, 175], float)  # armed, then 0.1 s through the turn and back
    counter = squat_counter(min_rep_s=0.5)
    run(counter, np.concatenate([spike, squat_trace(1)]))
    assert counter.count == 1 and counter.rejected == 1


def test_the_start_position_must_be_seen_a_while_in_a_row_to_arm_the_counter():
    """cut_edge.mp4's shape: one known standing sample among unknown ones, then a squat's bottom.
    It is no start (the person was never seen standing); the start seen for min_start_s is."""
    glimpse = [None] * 5 + [167.0] + [None] * 10 + [64.0] * 5
    counter = squat_counter()
    run(counter, glimpse)
    assert counter.state == WAITING
    counter = squat_counter()
    run(counter, [167.0, None, 167.0, 167.0] + [64.0] * 5)  # a gap breaks the row, so still two samples
    assert counter.state == WAITING
    counter = squat_counter()
    run(counter, [167.0] * 4 + [64.0] * 5)  # 0.1 s at the start: armed, then at the bottom
    assert counter.state == TURNED
    counter = squat_counter(min_start_s=0.0)
    run(counter, glimpse)
    assert counter.state == TURNED, "without min_start_s the glimpse arms it"


def test_increasing_exercises_count_the_other_way_and_reset_forgets():
    arms = 200 - squat_trace(2, top=170, bottom=20)  # 30 -> 180 -> 30, like a jumping jack
    counter = RepCounter(start_deg=45, turn_deg=120, min_rep_s=0.3)
    run(counter, arms)
    assert counter.count == 2
    counter.reset()
    assert counter.count == 0 and counter.state == WAITING


def test_equal_thresholds_are_refused():
    with pytest.raises(ValueError, match="differ"):
        RepCounter(start_deg=100, turn_deg=100)


def test_a_start_out_of_the_posture_is_no_start_but_the_way_back_is_not_checked():
    """A sit-up's hips open at the start as a standing person's do: out of the posture the start
    position starts nothing; once started in it, a repetition ends wherever it comes back."""
    trace = squat_trace(2)
    counter = squat_counter()
    for i, deg in enumerate(trace):
        counter.update(float(deg), i / FPS, i, in_posture=False)
    assert counter.count == 0 and counter.state == WAITING and counter.partials == 0
    counter = squat_counter()
    started = 0
    for i, deg in enumerate(trace):
        started += counter.state == START
        counter.update(float(deg), i / FPS, i, in_posture=counter.state != TURNED)  # off posture only on the way back
    assert counter.count == 2 and started > 0


@pytest.mark.parametrize("bottom", ["sink", "sway"])
def test_the_way_down_ends_where_the_bottom_slows_and_the_bottom_lasts_while_held(bottom):
    """At 60 fps: down at 150 deg/s to 92, then either sinking 40 deg/s to 80 over 0.3 s (the
    push-up mannequin's second bottom) or held 2 s swaying 3 deg either side, back up at 150 deg/s:
    out, at the turn, back, once each (no flicker), the turn from where the way down slows to
    where the angle is well on its way back."""
    fps = 60.0
    down = list(np.arange(170.0, 92.0, -150 / fps))
    held = (list(np.arange(92.0, 80.0, -40 / fps)) if bottom == "sink"
            else [89.0 + 3 * math.sin(2 * math.pi * i / fps) for i in range(int(2 * fps))])
    up = list(np.arange(held[-1], 171.0, 150 / fps))
    trace = [170.0] * 30 + down + held + up + [171.0] * 30
    counter, phases = squat_counter(), []
    for i, deg in enumerate(trace):
        counter.update(deg, i / fps, i)
        phases.append(counter.phase)
    changes = [p for n, p in enumerate(phases) if n == 0 or p != phases[n - 1]]
    assert changes == [None, OUT, AT_TURN, BACK, None], changes
    turn = [i for i, phase in enumerate(phases) if phase == AT_TURN]
    assert 30 + len(down) - 3 <= turn[0] <= 30 + len(down) + 1  # the way down slowing
    assert 30 + len(down) + len(held) + 1 <= turn[-1] + 1 <= 30 + len(down) + len(held) + 5  # 10 deg back up
    assert counter.count == 1
