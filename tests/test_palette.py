"""The BodyPix part palette tells body regions apart at a glance (CIEDE2000, from colour-science),
and the legend names them on the video."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from realtime.models.labels import BODYPIX_PARTS
from realtime.render import FrameRenderer, ViewSettings, legend_lines
from realtime.types import Frame, FrameResult, ParseResult

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # colour-science notes that SciPy and Matplotlib are absent
    import colour

PARTS = BODYPIX_PARTS.names[1:]


def _region(part: str) -> str:
    return part.removesuffix("_front").removesuffix("_back")


def _delta_e(rgb_a, rgb_b) -> float:
    lab = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.array([rgb_a, rgb_b], float) / 255))
    return float(colour.delta_E(lab[0], lab[1], method="CIE 2000"))


def test_fifteen_regions_each_with_its_front_and_back():
    regions = {_region(part) for part in PARTS}
    assert len(regions) == 15  # face sides, upper/lower arms, hands, torso, upper/lower legs, feet; L and R
    assert all(f"{side}_{limb}" in regions for side in ("left", "right")
               for limb in ("face", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot"))


def test_any_two_body_regions_differ_by_at_least_15_and_front_from_back_by_5():
    colours = dict(zip(BODYPIX_PARTS.names, BODYPIX_PARTS.colors))
    across, within = [], []
    for a, b in itertools.combinations(PARTS, 2):
        delta = _delta_e(colours[a], colours[b])
        (within if _region(a) == _region(b) else across).append((delta, a, b))
    assert len(within) == 9  # upper and lower arms and legs on each side, and the torso, have a front and a back
    assert min(across)[0] >= 15, min(across)
    assert min(within)[0] >= 5, min(within)


def test_the_delta_e_is_the_standard_one():
    # Sharma, Wu and Dalal (2005), the CIEDE2000 test data, pair 1
    lab = np.array([[50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485]])
    assert float(colour.delta_E(lab[0], lab[1], method="CIE 2000")) == pytest.approx(2.0425, abs=1e-4)


def test_the_legend_names_each_region_once_with_its_left_and_right_colours():
    colours = dict(zip(BODYPIX_PARTS.names, BODYPIX_PARTS.colors))
    lines = legend_lines(BODYPIX_PARTS.names, BODYPIX_PARTS.palette)
    assert lines[0] == ("", ["L", "R"])
    rows = dict(lines[1:])
    assert list(rows) == ["face", "upper arm", "lower arm", "hand", "torso", "upper leg", "lower leg", "foot"]
    assert rows["upper arm"] == [colours["left_upper_arm_front"], colours["right_upper_arm_front"]]
    assert rows["torso"] == [colours["torso_front"]] * 2
    hidden = np.ones(len(BODYPIX_PARTS.names), bool)
    hidden[[1, 2]] = False
    assert "face" not in dict(legend_lines(BODYPIX_PARTS.names, BODYPIX_PARTS.palette, hidden))

    height, width = 848, 384
    labels = np.zeros((height, width), np.uint8)
    parse = ParseResult(labels, labels > 0, BODYPIX_PARTS.names, BODYPIX_PARTS.palette)
    result = FrameResult(Frame(np.zeros((height, width, 3), np.uint8), 0, 0.0), parse, {}, 0.0, 30.0, "bodypix",
                         live=False)
    plain = FrameRenderer(ViewSettings(show_stats=False)).render(result)
    legend = FrameRenderer(ViewSettings(show_stats=False, show_legend=True)).render(result)
    changed = np.flatnonzero((legend != plain).any(axis=2).any(axis=0))
    assert len(changed) and changed.min() > width * 0.6, "the legend sits at the right"
    swatch = np.array(BODYPIX_PARTS.colors[BODYPIX_PARTS.names.index("left_upper_arm_front")], np.uint8)
    assert (legend == swatch).all(axis=2).sum() > 20, "each line has its colour"
