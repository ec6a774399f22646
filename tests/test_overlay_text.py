"""Text drawn over the video: words a coach reads out ("1 rep", "95°", "going down"), fixed
slots that never overlap, person labels that never sit on a face."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from realtime.analysis.exercises import PRESETS
from realtime.models.labels import BODYPIX_PARTS
from realtime.render import (
    FitnessAnnotator,
    FrameRenderer,
    PersonLabelAnnotator,
    ViewSettings,
    plural,
    put_text,
    text_size,
)
from realtime.types import Frame, FrameResult, ParseResult, PersonParse


def fitness_output(people: dict) -> dict:
    return {"exercise": PRESETS["squat"].to_dict(), "people": people}


def person_output(reps: int, deg: float | None, *, state="out", phase="going down", reason=None, partial=None,
                  last=None) -> dict:
    return {"reps": reps, "signal_deg": deg, "signal_reason": reason, "state": state, "phase": phase,
            "partials": 0, "last_rep": last, "last_partial": partial, "angles": {}}


def test_reps_are_counted_in_words_with_degrees_and_phases():
    assert plural(1, "rep") == "1 rep" and plural(2, "rep") == "2 reps" and plural(0, "rep") == "0 reps"
    one = FitnessAnnotator().lines(fitness_output({"0": person_output(1, 95.4)}))
    assert one == ["SQUAT", "1 rep  95°  going down"]
    two = FitnessAnnotator().lines(fitness_output({"0": person_output(2, None, reason="out_of_frame"),
                                                   "3": person_output(0, 160.0, state="start", phase="ready")}))
    assert two == ["SQUAT", "#0  2 reps  angle unknown: out of frame", "#3  0 reps  160°  ready"]


def test_a_shallow_movement_is_said_until_the_next_one_starts():
    partial = {"start_s": 3.0, "turn_s": 3.5, "end_s": 4.0, "depth_deg": 131.2}
    last = {"end_s": 2.0}
    ready = FitnessAnnotator().lines(fitness_output({"0": person_output(1, 170, state="start", phase="ready",
                                                                       partial=partial, last=last)}))
    assert ready[-1] == "not counted: too shallow (131°, needs 120°)"
    moving = FitnessAnnotator().lines(fitness_output({"0": person_output(1, 140, partial=partial, last=last)}))
    assert not any("shallow" in line for line in moving)


def test_the_degree_sign_is_drawn_not_dropped():
    assert text_size("95°", 1.0, 2)[0] > text_size("95", 1.0, 2)[0]
    scene = np.zeros((60, 200, 3), np.uint8)
    put_text(scene, "95°", (5, 40), 1.0, (255, 255, 255), 2)
    digits = np.zeros_like(scene)
    put_text(digits, "95", (5, 40), 1.0, (255, 255, 255), 2)
    assert (scene.any(axis=2) & ~digits.any(axis=2)).sum() > 10, "a ring after the digits"


def _result(height: int, width: int, people: list[PersonParse], analysis: dict) -> FrameResult:
    labels = np.zeros((height, width), np.uint8)
    parse = ParseResult(labels, labels > 0, BODYPIX_PARTS.names, BODYPIX_PARTS.palette, people=people)
    return FrameResult(Frame(np.zeros((height, width, 3), np.uint8), 12, 0.4), parse, {}, 35.0, 29.5, "bodypix",
                       live=False, analysis=analysis)


@pytest.mark.parametrize("height, width", [(848, 384), (960, 540), (540, 960), (240, 320)])
def test_the_text_slots_never_overlap(height, width):
    people = {str(i): person_output(i, 100.0 + i) for i in range(3)}
    result = _result(height, width, [], {"fitness": fitness_output(people)})
    renderer = FrameRenderer(ViewSettings(show_stats=True, show_legend=True))
    boxes = [panel.box((height, width)) for panel in renderer.panels(result, None, (height, width))]
    assert len(boxes) == 3
    for a, b in itertools.combinations(boxes, 2):
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_a_label_never_sits_on_the_face_of_a_person_reaching_the_top():
    height, width = 400, 600
    mask = np.zeros((height, width), bool)
    mask[0:380, 250:350] = True  # the head is cut by the top edge: no room above
    scene = PersonLabelAnnotator().annotate(np.zeros((height, width, 3), np.uint8),
                                            _result(height, width, [PersonParse(4, mask, None, 0.9)], {}).parse)
    drawn = scene.any(axis=2)
    assert not drawn[6:60, 256:344].any(), "nothing on the head but its outline"
    assert drawn[:60, 352:].any(), "the label is beside the head"
