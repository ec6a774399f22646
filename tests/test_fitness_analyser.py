"""The fitness Analyser: one counter per person id, JSON output, drawing, reset."""
from __future__ import annotations

import json
import math

import numpy as np

from realtime.analysis.exercises import PRESETS, custom_exercise
from realtime.analysis.fitness import FitnessAnalyser
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
    assert squatter["last_rep"]["side_diff_deg"] < 1  # both legs identical
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
