"""The fitness Analyser: one counter per person id, JSON output, drawing, reset."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from realtime.analysis.exercises import PRESETS, custom_exercise
from realtime.analysis.fitness import HINTS, FitnessAnalyser
from realtime.analysis.summary import summary_table
from realtime.models.labels import BODYPIX_PARTS, COCO_KEYPOINTS
from realtime.render import FitnessAnnotator
from realtime.types import Frame, ParseResult, PersonParse

H, W = 240, 320
FPS = 30.0


def leg_keypoints(knee_deg: float, x0: float) -> np.ndarray:
    """Both legs bent to `knee_deg` (thigh vertical, shin rotated), shoulders above the hips."""
    keypoints = np.zeros((17, 3), np.float32)
    rad = math.radians(180 - knee_deg)
    for side in ("left", "right"):
        hip, knee = np.array([x0, 80.0]), np.array([x0, 140.0])
        ankle = knee + 60 * np.array([math.sin(rad), math.cos(rad)])
        for name, point in ((f"{side}_shoulder", (x0, 20.0)), (f"{side}_hip", hip), (f"{side}_knee", knee),
                            (f"{side}_ankle", ankle)):
            keypoints[COCO_KEYPOINTS.index(name)] = (*point, 0.9)
    return keypoints


def person(pid: int, keypoints: np.ndarray) -> PersonParse:
    return PersonParse(pid, np.zeros((H, W), bool), keypoints, 0.9)


def parse_of(people: list[PersonParse]) -> ParseResult:
    return ParseResult(np.zeros((H, W), np.uint8), np.zeros((H, W), bool), BODYPIX_PARTS.names,
                       BODYPIX_PARTS.palette, people=people)


def squat_degs(reps: int) -> list[float]:
    dip = [175 - 95 * (0.5 - 0.5 * math.cos(2 * math.pi * i / 45)) for i in range(45)]
    return [175.0] * 15 + dip * reps + [175.0] * 15


def test_each_person_id_has_its_own_counter():
    analyser = FitnessAnalyser(PRESETS["squat"])
    for i, deg in enumerate(squat_degs(3)):
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                              parse_of([person(4, leg_keypoints(deg, 80)), person(7, leg_keypoints(175, 240))]))
    json.dumps(out)
    assert set(out["people"]) == {"4", "7"}
    squatter, stander = out["people"]["4"], out["people"]["7"]
    assert squatter["reps"] == 3 and stander["reps"] == 0
    assert squatter["angles"]["left_knee"]["source"] == "keypoints"
    assert squatter["last_rep"]["number"] == 3 and squatter["last_rep"]["rom_deg"] > 80
    assert squatter["last_rep"]["side_diff_deg"] is None  # keypoints only: no world landmarks to tell the facing
    assert stander["state"] == "start" and stander["last_rep"] is None
    summary = analyser.summary()
    assert summary["reps"] == 3 and [r["person"] for r in summary["per_rep"]] == ["4"] * 3
    assert summary["people"]["7"]["reps"] == 0

    drawn = FitnessAnnotator().annotate(np.zeros((H, W, 3), np.uint8), out)
    assert drawn.shape == (H, W, 3) and drawn[H // 2:].any() and not drawn[: H // 4].any()
    analyser.reset()
    assert analyser.summary()["reps"] == 0 and analyser.summary()["people"] == {}


def test_a_parse_without_people_is_person_zero_with_unknown_angles():
    analyser = FitnessAnalyser(custom_exercise("left_knee", start_deg=160, turn_deg=100))
    for i, deg in enumerate(squat_degs(1)):
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, leg_keypoints(deg, 100))]))
    assert list(out["people"]) == ["0"] and out["people"]["0"]["reps"] == 1
    blind = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), 999, 999 / FPS), parse_of([]))
    angles = blind["people"]["0"]["angles"]
    assert all(a["deg"] is None and a["source"] == "unknown" for a in angles.values())
    assert blind["people"]["0"]["signal_deg"] is None and blind["people"]["0"]["reps"] == 1


def _at(keypoints: np.ndarray, name: str, point) -> None:
    keypoints[COCO_KEYPOINTS.index(name)] = (*point, 0.9)


def situp_keypoints(torso_deg: float, thigh_deg: float = 45.0) -> np.ndarray:
    """Side view, facing right: hips on the floor at (100, 200), thighs raised `thigh_deg` from the
    floor towards the knees (forward, +x), torso raised `torso_deg` from the floor behind (-x)."""
    keypoints = np.zeros((17, 3), np.float32)
    hip = np.array([100.0, 200.0])
    t, f = math.radians(torso_deg), math.radians(thigh_deg)
    for side in ("left", "right"):
        _at(keypoints, f"{side}_hip", hip)
        _at(keypoints, f"{side}_shoulder", hip + 80 * np.array([-math.cos(t), -math.sin(t)]))
        _at(keypoints, f"{side}_knee", hip + 70 * np.array([math.cos(f), -math.sin(f)]))
        _at(keypoints, f"{side}_ankle", hip + np.array([120.0, 0.0]))
    return keypoints


def press_keypoints(abduction_deg: float, x0: float = 160.0) -> np.ndarray:
    """Front view: torso upright, both upper arms raised `abduction_deg` from hanging down (0)
    sideways (90: elbows at shoulder height, 180: straight up)."""
    keypoints = np.zeros((17, 3), np.float32)
    a = math.radians(abduction_deg)
    for side, sign in (("left", 1), ("right", -1)):
        shoulder = np.array([x0 + sign * 30, 60.0])
        _at(keypoints, f"{side}_hip", (x0 + sign * 20, 160.0))
        _at(keypoints, f"{side}_shoulder", shoulder)
        _at(keypoints, f"{side}_elbow", shoulder + 40 * np.array([sign * math.sin(a), math.cos(a)]))
    return keypoints


def _cycles(low: float, high: float, reps: int, *, start_high: bool) -> list[float]:
    """Smooth cycles between `low` and `high`, held 15 frames at the start position before and after."""
    rest = high if start_high else low
    wave = [0.5 - 0.5 * math.cos(2 * math.pi * i / 45) for i in range(45)]
    cycle = [high - (high - low) * w if start_high else low + (high - low) * w for w in wave]
    return [rest] * 15 + cycle * reps + [rest] * 15


def test_situp_preset_counts_on_the_hip_angle():
    """Lying back (torso 0 deg, thighs 45: hip 135) up to sitting (torso 80: hip 55), 3 times;
    crunches that lift the torso only 30 deg (hip 105) never reach the turn."""
    exercise = PRESETS["sit-up"]
    assert exercise.joints == ("left_hip", "right_hip")
    lying, sitting, crunch = situp_keypoints(0), situp_keypoints(80), situp_keypoints(30)
    from realtime.analysis.angles import joint_angles
    degs = [joint_angles(k, None, ())["left_hip"].deg for k in (lying, sitting, crunch)]
    np.testing.assert_allclose(degs, [135, 55, 105], atol=0.5)
    assert degs[0] > exercise.start_deg > degs[2] > exercise.turn_deg > degs[1]

    def count(torso_degs: list[float]) -> int:
        analyser = FitnessAnalyser(exercise)
        for i, torso in enumerate(torso_degs):
            out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, situp_keypoints(torso))]))
        return out["people"]["0"]["reps"]

    assert count(_cycles(0, 80, 3, start_high=False)) == 3
    assert count(_cycles(0, 30, 3, start_high=False)) == 0


def test_shoulder_press_preset_counts_on_the_shoulder_angle():
    """Rack (elbows at shoulder height: 90 deg) to lockout (175) 4 times; half presses to 130 count nothing."""
    exercise = PRESETS["shoulder-press"]
    assert exercise.joints == ("left_shoulder", "right_shoulder")
    from realtime.analysis.angles import joint_angles
    rack = joint_angles(press_keypoints(90), None, ())
    top = joint_angles(press_keypoints(175), None, ())
    for side in ("left", "right"):
        assert abs(rack[f"{side}_shoulder"].deg - 90) < 8 and top[f"{side}_shoulder"].deg > 165
        assert rack[f"{side}_shoulder"].deg < exercise.start_deg < exercise.turn_deg < top[f"{side}_shoulder"].deg

    def count(degs: list[float]) -> int:
        analyser = FitnessAnalyser(exercise)
        for i, deg in enumerate(degs):
            out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, press_keypoints(deg))]))
        return out["people"]["0"]["reps"]

    assert count(_cycles(90, 175, 4, start_high=False)) == 4
    assert count(_cycles(90, 130, 4, start_high=False)) == 0


def test_3d_angles_come_from_the_world_landmarks_and_2d_ignores_them():
    """A knee bent 90 deg towards the camera: the image shows a straight leg (thigh and shin
    overlap in x, y), the world landmarks the true 90 deg."""
    from realtime.analysis.angles import world_angles
    from realtime.models.labels import BLAZEPOSE_LANDMARKS

    index = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARKS)}
    world = np.zeros((33, 3), np.float32)
    landmarks = np.zeros((33, 5), np.float32)
    landmarks[:, 3:] = 0.9
    for side, x in (("left", 0.1), ("right", -0.1)):
        world[index[f"{side}_shoulder"]] = (x, -0.5, 0.0)
        world[index[f"{side}_hip"]] = (x, 0.0, 0.0)
        world[index[f"{side}_knee"]] = (x, 0.4, 0.0)
        world[index[f"{side}_ankle"]] = (x, 0.4, -0.4)  # shin towards the camera
    assert abs(world_angles(world, landmarks[:, 3])["left_knee"].deg - 90) < 1e-3
    assert world_angles(world, landmarks[:, 3])["trunk_lean"].deg < 1e-3
    flat = leg_keypoints(175, 100)
    one = PersonParse(0, np.zeros((H, W), bool), flat, 0.9, landmarks, world)
    frame = Frame(np.zeros((H, W, 3), np.uint8), 0, 0.0)
    three = FitnessAnalyser(PRESETS["squat"], angles="3d").update(frame, parse_of([one]))["people"]["0"]["angles"]
    two = FitnessAnalyser(PRESETS["squat"], angles="2d").update(frame, parse_of([one]))["people"]["0"]["angles"]
    assert three["left_knee"]["source"] == "world" and abs(three["left_knee"]["raw_deg"] - 90) < 0.1
    assert two["left_knee"]["source"] == "keypoints" and two["left_knee"]["raw_deg"] > 170
    # without world landmarks 3d falls back to the image plane
    plain = FitnessAnalyser(PRESETS["squat"], angles="3d").update(frame, parse_of([person(0, flat)]))
    assert plain["people"]["0"]["angles"]["left_knee"]["source"] == "keypoints"


def test_each_reason_for_an_unknown_angle_comes_with_what_to_try():
    """Per frame and person: signal_reason and signal_hint (what the summary's hint and the
    window say); both null while the counted angle is known."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    frame = Frame(np.zeros((H, W, 3), np.uint8), 0, 0.0)
    seen = analyser.update(frame, parse_of([person(0, leg_keypoints(170, 160))]))["people"]["0"]
    assert seen["signal_reason"] is None and seen["signal_hint"] is None
    hidden = leg_keypoints(170, 160)
    hidden[:, 2] = 0.05  # placed, hardly seen
    body = np.zeros((H, W), bool)
    body[20:220, 130:190] = True  # a whole person, 200 px tall, inside the frame
    small = np.zeros((H, W), bool)
    small[100:200, 150:170] = True  # a whole person, 100 px tall: under the 120 px rule
    cases = {"not_visible": (hidden, body), "nobody_found": (hidden, np.zeros((H, W), bool)),
             "too_small": (hidden, small), "out_of_frame": (leg_keypoints(170, 0), body)}  # hips, knees on the edge
    for pid, (reason, (keypoints, mask)) in enumerate(cases.items(), 1):  # one person each: sizes are per person
        out = analyser.update(frame, parse_of([PersonParse(pid, mask, keypoints, 0.9)]))["people"][str(pid)]
        assert out["signal_reason"] == reason and out["signal_hint"] == HINTS[reason]
    assert "--internal-size" not in HINTS["too_small"], "parsing larger adds no pixels to a small person"


def test_a_person_under_120_px_has_no_counted_angle_even_where_the_keypoints_give_one():
    """The 120 px rule holds whatever the parse size: tiny.mp4 parsed at 960 finds a ~46 px person
    whose keypoints give a standing knee angle; it is too_small, not counted, with or without them."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    frame = Frame(np.zeros((H, W, 3), np.uint8), 0, 0.0)
    small = np.zeros((H, W), bool)
    small[100:219, 150:170] = True  # 119 px tall
    out = analyser.update(frame, parse_of([PersonParse(1, small, leg_keypoints(170, 160), 0.9)]))["people"]["1"]
    assert out["angles"]["left_knee"]["deg"] is not None
    assert out["signal_deg"] is None and out["signal_reason"] == "too_small" and out["state"] == "waiting"
    lying = np.zeros((H, W), bool)
    lying[150:190, 40:200] = True  # 40 px tall, 160 px long: a push-up's plank is not small
    out = analyser.update(frame, parse_of([PersonParse(2, lying, leg_keypoints(170, 160), 0.9)]))["people"]["2"]
    assert out["signal_deg"] is not None and out["signal_reason"] is None
    big = np.zeros((H, W), bool)
    big[100:220, 150:170] = True  # 120 px tall: counts
    out = analyser.update(frame, parse_of([PersonParse(3, big, leg_keypoints(170, 160), 0.9)]))["people"]["3"]
    assert out["signal_deg"] is not None and out["signal_reason"] is None
    crouched = np.zeros((H, W), bool)
    crouched[130:220, 150:200] = True  # the same person at a squat's bottom, 90 px: their size is the standing one
    later = Frame(np.zeros((H, W, 3), np.uint8), 30, 1.0)
    out = analyser.update(later, parse_of([PersonParse(3, crouched, leg_keypoints(90, 160), 0.9)]))["people"]["3"]
    assert out["signal_deg"] is not None and out["signal_reason"] is None
    much_later = Frame(np.zeros((H, W, 3), np.uint8), 150, 5.0)  # 4 s on, only ever 90 px since: too small
    out = analyser.update(much_later, parse_of([PersonParse(3, crouched, leg_keypoints(90, 160), 0.9)]))
    assert out["people"]["3"]["signal_reason"] == "too_small"


def test_frames_with_nobody_found_are_a_note_of_how_long_or_advice_when_nobody_ever_was():
    """leave_A's shape: seen, away (parse without people) for 2 s, back: a note, not camera advice;
    nobody in any frame (tiny.mp4 at the default size): what to try; a person found only too
    small, not found in most frames (squat30 ~128 px tall in 1280x720): the advice for too small."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    body = np.zeros((H, W), bool)
    body[20:220, 130:190] = True
    for i in range(150):
        people = [] if 30 <= i < 90 else [PersonParse(0, body, leg_keypoints(170, 160), 0.9)]
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
    person = analyser.summary()["people"]["0"]
    assert person["unknown_reasons"] == {"nobody_found": 60} and person["nobody_s"] == pytest.approx(2.0)
    assert person["hint_reason"] == "nobody_found" and person["hint"] == "nobody in view for 2.0 s"
    assert summary_table(analyser.summary()).splitlines()[-1] == "person 0: nobody in view for 2.0 s"
    others = FitnessAnalyser(PRESETS["squat"])  # person 5 seen, then nobody: the empty frames are person 0's
    for i in range(60):
        people = [] if i >= 30 else [PersonParse(5, body, leg_keypoints(170, 160), 0.9)]
        others.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
    assert others.summary()["people"]["0"]["hint"] == "nobody in view for 1.0 s"  # 29 gaps from its first frame
    never = FitnessAnalyser(PRESETS["squat"])
    for i in range(30):
        never.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([]))
    person = never.summary()["people"]["0"]
    assert person["hint_reason"] == "nobody_found" and person["hint"].startswith("nobody found in any frame")
    assert "closer" in person["hint"] and "--internal-size" not in person["hint"]
    small = np.zeros((H, W), bool)
    small[100:200, 150:170] = True  # 100 px tall: found in a few frames, not in the rest (too small to be)
    far = FitnessAnalyser(PRESETS["squat"])
    for i in range(90):
        people = [PersonParse(0, small, leg_keypoints(170, 160), 0.9)] if i % 4 == 0 else []
        far.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
    person = far.summary()["people"]["0"]
    assert person["unknown_reasons"] == {"nobody_found": 67, "too_small": 23}
    assert person["hint_reason"] == "too_small" and person["hint"] == HINTS["too_small"]


def test_a_person_missing_from_the_parse_must_be_at_the_start_for_0_1_s_again_when_back():
    """Person 4 stands throughout; 7 and 8 stand for one frame, are missing from the parse (hidden
    behind 4, say) for 2 s and come back standing: 7 for a squat, 8 for one frame. Neither was at
    the start for 0.1 s before they went, so neither is armed on coming back (7 armed at once, and
    8's hint said 'no movement', when the absence counted as 2 s at the start position)."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    squat = squat_degs(1)
    states = []
    for i in range(60 + len(squat)):
        people = [person(4, leg_keypoints(175, 60))]
        if i == 0 or i >= 60:
            people.append(person(7, leg_keypoints(squat[max(0, i - 60)], 160)))
        if i in (0, 60):
            people.append(person(8, leg_keypoints(175, 260)))
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
        states.append(out["people"].get("7", {}).get("state"))
    assert states[0] == "waiting" and set(states[1:60]) == {None}
    assert states.index("start") == 63, "armed once back at the start for 0.1 s, frame after frame"
    summary = analyser.summary()["people"]
    assert summary["7"]["reps"] == 1 and summary["4"]["hint_reason"] == "no_movement"
    assert summary["8"]["hint_reason"] == "not_at_start"
    assert "at the start position (150° or more) only in single frames" in summary["8"]["hint"]


@pytest.mark.parametrize(("moved", "reps"), [("body", 2), ("picture", 3), ("landmarks", 3), ("knee", 3)])
def test_a_body_jumping_between_two_frames_drops_the_rep_in_progress_a_misread_joint_does_not(moved, reps):
    """Three squats; at the first one's bottom the person (a 200 px body: 33 landmarks down its
    middle and a 40 px wide mask) jumps and stays there: their body lies down at once (a cut to
    a push-up), or the whole picture shifts 40 px (a camera jolted), or only the landmarks lie
    down (BlazePose re-fitting a body, whose mask stays), or three landmarks (a knee, shin and
    ankle misread) jump 100 px for one frame. The cut drops that squat (the knees coming back up
    after it are no repetition), the counter arms again at the start and counts the next two;
    the others drop nothing."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    landmarks = np.zeros((33, 5), np.float32)
    landmarks[:, 0], landmarks[:, 1], landmarks[:, 3:] = 100, np.linspace(20, 220, 33), 0.9
    body = np.zeros((H, W), bool)
    body[20:220, 80:120] = True
    lying, lying_body = landmarks.copy(), np.zeros((H, W), bool)
    lying[:, 0], lying[:, 1], lying_body[180:220, 60:260] = np.linspace(60, 260, 33), 200, True
    bottom = 15 + 22
    states = []
    for i, deg in enumerate(squat_degs(3)):
        now, mask = landmarks.copy(), body
        if i >= bottom and moved == "body":
            now, mask = lying.copy(), lying_body
        if i >= bottom and moved == "picture":
            now[:, 0], mask = now[:, 0] + 40, np.roll(body, 40, axis=1)
        if i >= bottom and moved == "landmarks":
            now = lying.copy()
        if i == bottom and moved == "knee":
            now[[25, 27, 29], 0] += 100
        people = [PersonParse(0, mask, leg_keypoints(deg, 100), 0.9, landmarks=now)]
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
        states.append(out["people"]["0"]["state"])
    assert analyser.summary()["people"]["0"]["reps"] == reps
    assert states[bottom - 1] == "turned"
    assert states[bottom] == ("waiting" if moved == "body" else "turned")


def test_the_seconds_a_seek_skips_are_no_time_with_nobody_in_view():
    """Nobody found in 15 frames either side of a seek 60 s on: 29 frame steps with nobody in
    view (from the last frame seen, none across the seek), not a minute more (the seek left the
    last frame's time, so the skipped minute was added)."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    body = np.zeros((H, W), bool)
    body[20:220, 130:190] = True
    for i in range(30):
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                        parse_of([PersonParse(0, body, leg_keypoints(170, 160), 0.9)]))
    for start_s in (1.0, 61.0):
        if start_s > 1.0:
            analyser.seek(start_s)
        for i in range(15):
            analyser.update(Frame(np.zeros((H, W, 3), np.uint8), round(start_s * FPS) + i, start_s + i / FPS),
                            parse_of([]))
    assert analyser.summary()["people"]["0"]["nobody_s"] == pytest.approx(29 / FPS, abs=1e-3)


def test_no_rep_with_too_shallow_movements_says_how_deep_against_the_turn():
    analyser = FitnessAnalyser(PRESETS["lunge"])
    shallow = [175.0] * 15 + [175 - 55 * (0.5 - 0.5 * math.cos(2 * math.pi * i / 45)) for i in range(45)] * 2
    for i, deg in enumerate(shallow + [175.0] * 15):  # two dips to 120 degrees, the lunge turns at 110
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, leg_keypoints(deg, 80))]))
    summary = analyser.summary()
    person_out = summary["people"]["0"]
    assert summary["reps"] == 0 and person_out["partials"] == 2
    assert person_out["hint_reason"] == "too_shallow"
    deepest = max(person_out["partial_reps"], key=lambda p: 175 - p["depth_deg"])["depth_deg"]
    assert 118 < deepest < 125  # the dips, smoothed
    assert person_out["hint"] == (f"no rep counted: 2 movements too shallow ({deepest:.0f}° at the deepest; "
                                  "a lunge turns at 110°)")
    assert summary_table(summary).splitlines()[-1] == f"person 0: {person_out['hint']}"
    counted = FitnessAnalyser(PRESETS["lunge"])
    for i, deg in enumerate(shallow + squat_degs(1)):  # then one real lunge: the partials are no reason for a 0
        counted.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, leg_keypoints(deg, 80))]))
    assert counted.summary()["reps"] == 1 and counted.summary()["people"]["0"]["hint"] is None


def curl_keypoints(elbow_deg: float, *, hip_y: float) -> np.ndarray:
    """Front view, upper arms hanging, forearms raised to `elbow_deg` at the elbow; shoulders at
    y 40, hips at `hip_y` (beyond the 240-pixel frame: filmed from the waist up)."""
    keypoints = np.zeros((17, 3), np.float32)
    rad = math.radians(180 - elbow_deg)
    for side, sign in (("left", 1), ("right", -1)):
        elbow = np.array([160 + sign * 40, 120.0])
        _at(keypoints, f"{side}_shoulder", (160 + sign * 40, 40.0))
        _at(keypoints, f"{side}_hip", (160 + sign * 25, hip_y))
        _at(keypoints, f"{side}_elbow", elbow)
        _at(keypoints, f"{side}_wrist", elbow + 60 * np.array([0.0, math.cos(rad)]) + (-30 * sign * math.sin(rad), 0))
    return keypoints


def test_a_body_cut_at_the_waist_is_not_refused_for_its_posture():
    """Curls filmed from the waist up: the hips are out of frame, the trunk's angle unknown, and an
    unknown posture is no reason to refuse a start (the preset asks for an upright body)."""
    exercise = PRESETS["biceps-curl"]
    assert exercise.posture is not None and not exercise.posture.horizontal
    analyser = FitnessAnalyser(exercise)
    for i, deg in enumerate(_cycles(50, 170, 3, start_high=True)):
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                              parse_of([person(0, curl_keypoints(deg, hip_y=300))]))
    person_out = out["people"]["0"]
    assert person_out["angles"]["trunk_lean"]["reason"] == "out_of_frame"
    assert person_out["reps"] == 3 and analyser.summary()["people"]["0"]["off_posture_frames"] == 0


def test_a_start_out_of_the_posture_counts_nothing_and_says_why():
    """The same arm movement lying on one's side (trunk horizontal in the image) is no curl."""
    analyser = FitnessAnalyser(PRESETS["biceps-curl"])
    for i, deg in enumerate(_cycles(50, 170, 3, start_high=True)):
        keypoints = curl_keypoints(deg, hip_y=40)
        keypoints[[COCO_KEYPOINTS.index("left_hip"), COCO_KEYPOINTS.index("right_hip")], 0] = 300  # hips to the right
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, keypoints)]))
    assert out["people"]["0"]["reps"] == 0 and out["people"]["0"]["phase"].startswith("not in position")
    summary = analyser.summary()["people"]["0"]
    assert summary["hint_reason"] == "posture" and summary["hint"] == (
        "no rep counted: the person was lying or in a plank, a biceps-curl starts upright (standing or seated)")


def test_how_squarely_a_body_faces_the_camera_from_its_world_landmarks():
    """Shoulders and hips 0.4 m and 0.3 m wide, the body turned about the vertical axis: facing
    (or its back to) the camera 1, side-on 0; the symmetry figures need 0.7 (45 degrees)."""
    from realtime.analysis.angles import facing_share
    from realtime.models.labels import BLAZEPOSE_LANDMARKS

    index = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARKS)}
    for turn_deg, share in ((0, 1.0), (30, 0.866), (60, 0.5), (90, 0.0), (180, 1.0)):
        world = np.zeros((33, 3))
        c, s = np.cos(np.radians(turn_deg)), np.sin(np.radians(turn_deg))
        for side, x in (("left", 1.0), ("right", -1.0)):
            world[index[f"{side}_shoulder"]] = [0.2 * x * c, -0.5, 0.2 * x * s]
            world[index[f"{side}_hip"]] = [0.15 * x * c, 0.0, 0.15 * x * s]
        assert facing_share(world) == pytest.approx(share, abs=1e-3), turn_deg



def _turned_world(turn_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose landmarks [33, 5] (visibility 0.9) and world landmarks [33, 3] of an upright body
    (shoulders 0.4 m wide, hips 0.3 m) turned `turn_deg` about the vertical from facing the camera."""
    from realtime.models.labels import BLAZEPOSE_LANDMARKS

    index = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARKS)}
    world, landmarks = np.zeros((33, 3), np.float32), np.zeros((33, 5), np.float32)
    landmarks[:, 3:] = 0.9
    c, s = math.cos(math.radians(turn_deg)), math.sin(math.radians(turn_deg))
    for side, x in (("left", 1.0), ("right", -1.0)):
        world[index[f"{side}_shoulder"]] = (0.2 * x * c, -0.5, 0.2 * x * s)
        world[index[f"{side}_hip"]] = (0.15 * x * c, 0.0, 0.15 * x * s)
    return landmarks, world


@pytest.mark.parametrize("facing", ["after the end", "one frame at the bottom"])
def test_symmetry_figures_need_the_body_facing_the_camera_over_the_repetition(facing):
    """A squat turned 60 degrees from the camera (one side behind the other: no symmetry
    figures) read facing it in a few frames: in the hold after the repetition ended (they counted
    on the mannequin clip: 3.88 deg between the knees, a 9.28 area ratio, from frame 239 of a
    repetition that ended at 236) or in one glitch frame mid-repetition."""
    degs = squat_degs(1)
    facing_frames = range(54, len(degs)) if facing == "after the end" else [37]  # the end: frame 53
    analyser = FitnessAnalyser(PRESETS["squat"])
    for i, deg in enumerate(degs):
        landmarks, world = _turned_world(0 if i in facing_frames else 60)
        one = PersonParse(0, np.zeros((H, W), bool), leg_keypoints(deg, 80), 0.9, landmarks, world)
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([one]))
    [rep] = analyser.summary()["per_rep"]
    assert rep["end_frame"] == 53 and rep["side_diff_deg"] is None
    facing_all = FitnessAnalyser(PRESETS["squat"])
    for i, deg in enumerate(degs):
        landmarks, world = _turned_world(60 if i in facing_frames else 0)
        one = PersonParse(0, np.zeros((H, W), bool), leg_keypoints(deg, 80), 0.9, landmarks, world)
        facing_all.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([one]))
    assert facing_all.summary()["per_rep"][0]["side_diff_deg"] < 1  # turned away only where it says


def test_a_glitch_shorter_than_a_repetition_is_too_quick_not_too_shallow():
    """Both knees read at 130 deg for two frames of a standing body (at 30 fps): no partial
    repetition and no 'too shallow' hint, but no 'no movement' either (the angle left the start
    band): too quick; a dip as slow as a repetition still is too shallow."""
    for degs, partials in (([175.0] * 30 + [130.0] * 2 + [175.0] * 30, 0),
                           ([175.0] * 15 + [175 - 40 * (0.5 - 0.5 * math.cos(2 * math.pi * i / 45)) for i in range(45)]
                            + [175.0] * 15, 1)):
        analyser = FitnessAnalyser(PRESETS["squat"])
        for i, deg in enumerate(degs):
            analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                            parse_of([person(0, leg_keypoints(deg, 80))]))
        summary = analyser.summary()["people"]["0"]
        assert summary["partials"] == partials, summary["partial_reps"]
        assert summary["hint_reason"] == ("too_shallow" if partials else "too_quick")
        if not partials:  # the glitch smoothed: short of 130 deg, beyond the start (150)
            words = re.fullmatch(r"no rep counted: every movement away from the start position was quicker than "
                                 r"the 0\.5 s a squat takes \((\d+)° at the deepest\)", summary["hint"])
            assert words and 130 <= int(words[1]) < 150, summary["hint"]


def test_an_angle_never_at_the_start_position_says_so_with_its_range():
    """Knees held at 125-135 deg (a squat's start is 150 or more): no start, no movement, and the
    hint gives the range against the start (it said nothing)."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    for i in range(60):
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS),
                        parse_of([person(0, leg_keypoints(130 + 5 * math.sin(i / 5), 80))]))
    summary = analyser.summary()["people"]["0"]
    assert summary["hint_reason"] == "not_at_start", summary
    low, high = (float(x) for x in summary["hint"].split("the angle was ")[1].split("°")[0].split("-"))
    assert 123 <= low < high <= 137
    assert summary["hint"].endswith("°; a squat starts at 150° or more)")


def test_sides_too_far_apart_to_be_one_movement_count_the_side_nearer_the_signal_before():
    """Both knees straight, the right one unseen until frame 20, read at 20 deg (confidence 0.4)
    there and straight after (as the push-up mannequin's right hip, lying: 6 deg from the parts
    at 0.50 beside the left at 170 from the keypoints, their mean 88): the squat's counted angle
    in that frame is the left knee's, not the mean (97); sides nearer than 90 deg are averaged.
    The misread side seen better by a hair (0.77 against 0.75, as squat30's right shoulder
    with BlazePose on onnxruntime: 153 deg beside the left's 6) loses to the side nearer the
    signal before; with no signal before (the first frame, or back after more than 1 s away), the
    side seen best counts."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    right = [COCO_KEYPOINTS.index(f"right_{joint}") for joint in ("hip", "knee", "ankle")]
    signals = []
    for i in range(40):
        keypoints = leg_keypoints(175, 80)
        if i == 20:
            keypoints[right] = leg_keypoints(20, 80)[right]
        keypoints[right, 2] = 0.0 if i < 20 else 0.4
        out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, keypoints)]))
        signals.append(out["people"]["0"]["signal_deg"])
    assert signals[20] == pytest.approx(175, abs=0.5)
    assert out["people"]["0"]["partials"] == 0 and out["people"]["0"]["state"] == "start"
    both = FitnessAnalyser(PRESETS["squat"])
    for i in range(10):
        keypoints = leg_keypoints(175, 80)
        keypoints[right] = leg_keypoints(95, 80)[right]
        out = both.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, keypoints)]))
    assert out["people"]["0"]["signal_deg"] == pytest.approx(135, abs=0.5)
    left = [COCO_KEYPOINTS.index(f"left_{joint}") for joint in ("hip", "knee", "ankle")]

    def by_a_hair(frames: list[int], misread: tuple[int, int]) -> dict[int, float]:
        """Counted angles of straight knees, the right one misread at 20 deg on the `misread`
        frames, seen at 0.77 beside the left at 0.75."""
        analyser, signals = FitnessAnalyser(PRESETS["squat"]), {}
        for i in frames:
            keypoints = leg_keypoints(175, 80)
            if i in misread:
                keypoints[right] = leg_keypoints(20, 80)[right]
            keypoints[left, 2], keypoints[right, 2] = 0.75, 0.77
            out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, keypoints)]))
            signals[i] = out["people"]["0"]["signal_deg"]
        return signals

    signals = by_a_hair(list(range(40)), (0, 20))
    assert signals[0] == pytest.approx(20, abs=0.5) and signals[20] == pytest.approx(175, abs=0.5), signals
    # the counter's last angle is the signal before; it forgets it after a gap longer than its
    # max_gap_s (1 s), and so does the choice: back after 2 s away, the side seen best counts again
    signals = by_a_hair([*range(10), *range(70, 80)], (5, 70))
    assert signals[5] == pytest.approx(175, abs=0.5) and signals[70] < 45, signals  # the right knee, smoothed towards 20


@pytest.mark.parametrize("exercise, low, high, word", [("shoulder-press", 90, 130, "highest"),
                                                      ("jumping-jack", 20, 100, "highest"),
                                                      ("squat", 130, 175, "deepest")])
def test_too_shallow_says_where_the_turn_is_in_the_exercises_word(exercise, low, high, word):
    """Arms raised short of a shoulder press's turn (150 deg) or a jumping jack's (120), or knees
    bent short of a squat's (120): the hint's superlative is the exercise's
    (Exercise.extreme_word), never 'deepest' for arms that rise."""
    preset = PRESETS[exercise]
    rising = preset.turn_deg > preset.start_deg
    analyser = FitnessAnalyser(preset)
    for i, deg in enumerate(_cycles(low, high, 1, start_high=not rising)):
        keypoints = press_keypoints(deg) if rising else leg_keypoints(deg, 80)
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, keypoints)]))
    person_out = analyser.summary()["people"]["0"]
    [partial] = person_out["partial_reps"]
    assert person_out["hint"] == (f"no rep counted: 1 movement too shallow ({partial['depth_deg']:.0f}° at the "
                                  f"{word}; a {exercise} turns at {preset.turn_deg:.0f}°)")


def _hint_of(degs: list[float]) -> dict:
    analyser = FitnessAnalyser(PRESETS["squat"])
    for i, deg in enumerate(degs):
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of([person(0, leg_keypoints(deg, 80))]))
    return analyser.summary()["people"]["0"]


def test_a_crouch_before_the_start_is_no_movement_of_the_exercise():
    """Crouched (70 deg) for 3 s, then standing still: the counter was never away from its start
    once armed, so 'no movement', measured from the start on, not 'every movement ... was quicker
    than a squat (70° at the deepest)' (the crouch before the start)."""
    summary = _hint_of([70.0] * 90 + [175.0] * 60)
    assert summary["hint_reason"] == "no_movement", summary
    assert re.fullmatch(r"no rep counted: no movement \((1[5-7]\d)° at the deepest; a squat goes from 150° or more "
                        r"to 120°\)", summary["hint"]), summary["hint"]


def test_a_sway_at_the_end_of_the_run_is_no_repetition_in_progress():
    """Standing, then swaying 3 deg under the start position (150) as the run stops: less than an
    attempt (a quarter of the way to the turn), so 'no movement', not 'in progress'."""
    summary = _hint_of([175.0] * 30 + [151.0] * 30 + [147.0] * 3)
    assert summary["hint_reason"] == "no_movement", summary


def test_a_repetition_abandoned_when_its_person_went_unseen_says_so():
    """Person 7 stands 0.5 s, squats down to 95° and is then missing from the parse (hidden,
    out of frame) for the 2 s left while person 4 stands on: the abandoned repetition is the
    hint (it said 'no movement (95° at the deepest ...)', beyond the squat's turn)."""
    analyser = FitnessAnalyser(PRESETS["squat"])
    down = list(np.linspace(175, 95, 15))
    for i in range(15 + len(down) + 60):
        people = [person(4, leg_keypoints(175, 60))]
        if i < 15 + len(down):
            people.append(person(7, leg_keypoints(175 if i < 15 else down[i - 15], 160)))
        analyser.update(Frame(np.zeros((H, W, 3), np.uint8), i, i / FPS), parse_of(people))
    summary = analyser.summary()["people"]["7"]
    assert summary["reps"] == 0 and summary["hint_reason"] == "lost", summary
    words = re.fullmatch(r"no rep counted: a repetition was abandoned when its angle went unseen for over 1 s "
                         r"\((\d+)° at the deepest, not back to 150° or more before that\)", summary["hint"])
    assert words and 95 <= int(words[1]) <= 105, summary["hint"]  # the smoothed knee lags the 95° bottom a little
