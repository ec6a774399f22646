"""Joint angles: known geometry, the part-mask fallback, unknown instead of a guess, and real frames."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from realtime.analysis.angles import JOINTS, PartMasks, angle_at, joint_angles, keypoint_angle, part_angle, side_areas
from realtime.models.labels import BODYPIX_PARTS, COCO_KEYPOINTS

from conftest import read_frames

NAMES = BODYPIX_PARTS.names


def keypoints_at(points: dict[str, tuple[float, float]], score: float = 0.9) -> np.ndarray:
    keypoints = np.zeros((17, 3), np.float32)
    for name, (x, y) in points.items():
        keypoints[COCO_KEYPOINTS.index(name)] = (x, y, score)
    return keypoints


def limb_labels(joint: tuple[float, float], proximal_dir_deg: float, distal_dir_deg: float,
                proximal: str, distal: str, length: int = 120, width: int = 24) -> np.ndarray:
    """Two thick segments leaving `joint` in the given image directions (0 = +x, 90 = down)."""
    labels = np.zeros((400, 400), np.uint8)
    for name, direction in ((proximal, proximal_dir_deg), (distal, distal_dir_deg)):
        rad = math.radians(direction)
        start = np.array(joint) + 10 * np.array([math.cos(rad), math.sin(rad)])
        end = np.array(joint) + length * np.array([math.cos(rad), math.sin(rad)])
        cv2.line(labels, tuple(map(int, start)), tuple(map(int, end)), NAMES.index(name), width)
    return labels


def test_angle_at_known_triangles():
    assert angle_at(np.array([0, 1]), np.zeros(2), np.array([1, 0])) == pytest.approx(90)
    assert angle_at(np.array([-1, 0]), np.zeros(2), np.array([1, 0])) == pytest.approx(180)
    assert angle_at(np.array([1, 1]), np.zeros(2), np.array([1, 0])) == pytest.approx(45)
    assert angle_at(np.zeros(2), np.zeros(2), np.array([1, 0])) is None


def test_knee_hip_and_trunk_lean_from_keypoints():
    keypoints = keypoints_at({
        "left_shoulder": (100, 0), "right_shoulder": (100, 0), "left_hip": (100, 100), "right_hip": (100, 100),
        "left_knee": (200, 100), "left_ankle": (200, 200),
    })
    assert keypoint_angle(keypoints, JOINTS["left_knee"]).deg == pytest.approx(90)
    assert keypoint_angle(keypoints, JOINTS["left_hip"]).deg == pytest.approx(90)
    assert keypoint_angle(keypoints, JOINTS["trunk_lean"]).deg == pytest.approx(0)
    leaning = keypoints_at({"left_shoulder": (200, 0), "right_shoulder": (200, 0),
                            "left_hip": (100, 100), "right_hip": (100, 100)})
    assert keypoint_angle(leaning, JOINTS["trunk_lean"]).deg == pytest.approx(45)


@pytest.mark.parametrize("bend_deg", [180, 135, 90, 60])
def test_part_axes_give_the_angle_between_the_limb_segments(bend_deg):
    # thigh pointing up-left from the knee, shin at `bend_deg` from it
    labels = limb_labels((200, 200), 270 - 20, 270 - 20 + bend_deg, "left_upper_leg_front", "left_lower_leg_front")
    angle = part_angle(PartMasks(labels, NAMES), JOINTS["left_knee"])
    assert angle.source == "parts" and angle.deg == pytest.approx(bend_deg, abs=3)
    assert 0.5 < angle.conf <= 1


def test_weak_keypoints_fall_back_to_the_parts_else_unknown():
    labels = limb_labels((200, 200), 250, 250 + 100, "left_upper_leg_back", "left_lower_leg_back")
    weak = keypoints_at({"left_hip": (0, 0), "left_knee": (50, 0), "left_ankle": (50, 50)}, score=0.1)
    angles = joint_angles(weak, labels, NAMES, joints=("left_knee", "right_knee"))
    assert angles["left_knee"].source == "parts" and angles["left_knee"].deg == pytest.approx(100, abs=3)
    assert angles["right_knee"].deg is None and angles["right_knee"].source == "unknown"
    strong = keypoints_at({"left_hip": (0, 0), "left_knee": (50, 0), "left_ankle": (50, 50)})
    assert joint_angles(strong, labels, NAMES, joints=("left_knee",))["left_knee"].deg == pytest.approx(90)
    # a label set without BodyPix limbs and no keypoints: unknown, never a number
    nothing = joint_angles(None, np.zeros((50, 50), np.uint8), ("background", "person"))
    assert all(a.deg is None and a.conf == 0 for a in nothing.values())


def test_a_blob_is_not_a_limb():
    labels = np.zeros((200, 200), np.uint8)
    cv2.circle(labels, (60, 60), 30, NAMES.index("left_upper_arm_front"), -1)
    cv2.circle(labels, (140, 140), 30, NAMES.index("left_lower_arm_front"), -1)
    angle = joint_angles(None, labels, NAMES, joints=("left_elbow",))["left_elbow"]
    assert angle.deg is None  # round parts have no axis: elongation ~0 -> confidence too low


def _arm_with_the_body_at_the_edges(hand_reaches_edge: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A side-view push-up's arm, drawn: upper arm from the shoulder (100, 150) down-right to the
    elbow (130, 230), forearm to the wrist (115, 300), a hand beyond it; the head touches the left
    edge at the shoulder's height, and the feet, which the parser labels as a hand, the right edge.
    With `hand_reaches_edge`, the forearm is longer and the hand beyond the wrist touches the
    bottom edge (the wrist keypoint itself stays inside)."""
    labels = np.zeros((360, 400), np.uint8)
    wrist = (115, 340) if hand_reaches_edge else (115, 300)
    cv2.line(labels, (100, 150), (130, 230), NAMES.index("left_upper_arm_front"), 22)
    cv2.line(labels, (130, 230), wrist, NAMES.index("left_lower_arm_front"), 18)
    cv2.circle(labels, (wrist[0] - 2, wrist[1] + 12), 10, NAMES.index("left_hand"), -1)
    cv2.circle(labels, (30, 130), 40, NAMES.index("left_face"), -1)  # the head, cut by the left edge
    cv2.rectangle(labels, (370, 270), (399, 300), NAMES.index("left_hand"), -1)  # feet, mislabelled
    keypoints = keypoints_at({"left_shoulder": (100, 150), "left_elbow": (130, 230), "left_wrist": wrist})
    return labels, labels > 0, keypoints


def test_only_the_limbs_own_pixels_at_the_edge_cut_it():
    labels, person, keypoints = _arm_with_the_body_at_the_edges(hand_reaches_edge=False)
    box = (0, 0, 400, 360)
    inside = joint_angles(keypoints, labels, NAMES, person, joints=("left_elbow",), frame_box=box)["left_elbow"]
    assert inside.reason is None and inside.deg == pytest.approx(angle_at(np.array([100, 150]), np.array([130, 230]),
                                                                          np.array([115, 300])))
    labels, person, keypoints = _arm_with_the_body_at_the_edges(hand_reaches_edge=True)
    cut = joint_angles(keypoints, labels, NAMES, person, joints=("left_elbow",), frame_box=box)["left_elbow"]
    assert cut.deg is None and cut.reason == "out_of_frame"


def test_a_limb_heading_out_where_the_parser_drew_nothing_is_cut():
    """The shin runs out of the bottom edge, but the parser labelled only the top of it: the
    person's mask at the edge, along the limb's path, still cuts the knee."""
    labels = np.zeros((300, 300), np.uint8)
    cv2.line(labels, (150, 100), (150, 200), NAMES.index("left_upper_leg_front"), 30)
    cv2.line(labels, (150, 200), (150, 250), NAMES.index("left_lower_leg_front"), 24)
    person = labels > 0
    person[250:, 138:162] = True  # the rest of the shin, unlabelled, to the edge
    keypoints = keypoints_at({"left_hip": (150, 100), "left_knee": (150, 200), "left_ankle": (150, 280)})
    cut = joint_angles(keypoints, labels, NAMES, person, joints=("left_knee",), frame_box=(0, 0, 300, 300))
    assert cut["left_knee"].reason == "out_of_frame"
    person[250:, 138:162] = False
    person[280:, 0:40] = True  # something else of the body at the bottom edge, off the limb's path
    kept = joint_angles(keypoints, labels, NAMES, person, joints=("left_knee",), frame_box=(0, 0, 300, 300))
    assert kept["left_knee"].reason is None and kept["left_knee"].deg == pytest.approx(180)


def test_side_areas_compare_the_left_and_right_limb():
    labels = np.zeros((100, 100), np.uint8)
    labels[:50, :20] = NAMES.index("left_upper_leg_front")
    labels[:50, 50:60] = NAMES.index("right_lower_leg_back")
    assert side_areas(labels, NAMES, "left_knee") == (1000, 500)
    person = np.zeros((100, 100), bool)
    person[:, :10] = True
    assert side_areas(labels, NAMES, "knee", person) == (500, 0)
    assert side_areas(labels, NAMES, "trunk_lean") is None


@pytest.fixture(scope="module")
def squat_parses(media_dir, bodypix):
    frames = read_frames(media_dir / "cg-mannequin-squat.mp4", [30, 86])
    return [bodypix.postprocess(bodypix.infer(p.batch), p)[0] for p in (bodypix.preprocess([f]) for f in frames)]


def test_real_squat_frames_parts_agree_with_the_keypoints_or_say_unknown(squat_parses):
    standing, bottom = squat_parses
    for parse, low, high in ((standing, 160, 181), (bottom, 50, 95)):
        from_keypoints = keypoint_angle(parse.keypoints, JOINTS["left_knee"])
        assert from_keypoints.conf > 0.5 and low <= from_keypoints.deg <= high
    # Standing, BodyPix's thigh is a short wide band under the torso: no usable axis, so the
    # fallback must say unknown; squatting, the thigh is long and the axes say the knee is bent
    # (roughly: the shin's mask is a foreshortened blob at the bottom).
    no_keypoints = {"keypoints": None, "labels": None, "label_names": NAMES}
    standing_parts = joint_angles(**{**no_keypoints, "labels": standing.labels}, person=standing.person_mask)
    assert standing_parts["left_knee"].deg is None
    bottom_parts = joint_angles(**{**no_keypoints, "labels": bottom.labels}, person=bottom.person_mask)
    assert bottom_parts["left_knee"].source == "parts" and bottom_parts["left_knee"].deg < 120


def test_a_frame_letterboxed_in_a_larger_image_reads_as_the_frame_alone():
    """The same shin scene as above, its frame placed at (300, 200) in a 1000 x 1000 image
    (frame_box says where): a person near the frame's edge is judged by the frame's edges, not the
    image's, and the angles match the frame alone."""
    labels = np.zeros((300, 300), np.uint8)
    cv2.line(labels, (150, 100), (150, 200), NAMES.index("left_upper_leg_front"), 30)
    cv2.line(labels, (150, 200), (150, 250), NAMES.index("left_lower_leg_front"), 24)
    keypoints = keypoints_at({"left_hip": (150, 100), "left_knee": (150, 200), "left_ankle": (150, 280)})
    for shin_to_edge, reason in ((True, "out_of_frame"), (False, None)):
        person = labels > 0
        person[250:, 138:162] = shin_to_edge
        alone = joint_angles(keypoints, labels, NAMES, person, frame_box=(0, 0, 300, 300))
        big_labels, big_person = np.zeros((1000, 1000), np.uint8), np.zeros((1000, 1000), bool)
        big_labels[200:500, 300:600], big_person[200:500, 300:600] = labels, person
        moved = keypoints.copy()
        moved[:, :2] += (300, 200)
        placed = joint_angles(moved, big_labels, NAMES, big_person, frame_box=(300, 200, 600, 500))
        assert placed == alone and placed["left_knee"].reason == reason


@pytest.mark.parametrize("clip, index", [("pose2sim-multi-cam03.mp4", 72), ("cg-mannequin-squat.mp4", 11)])
def test_real_straight_knees_read_from_the_parts_are_not_folded(media_dir, bodypix, clip, index):
    """Straight knees, sure from BodyPix's own keypoints: the part masks give about their angle
    or say unknown, never a knee folded shut. BodyPix labels pieces of the other leg (or the
    other person's) with the same part, and the axis through both pieces used to read these
    knees at 11-30 deg."""
    frame, = read_frames(media_dir / clip, [index])
    prepared = bodypix.preprocess([frame])
    parse = bodypix.postprocess(bodypix.infer(prepared.batch), prepared)[0]
    knees = ("left_knee", "right_knee")
    parts = joint_angles(None, parse.labels, parse.label_names, parse.person_mask, joints=knees)
    answered = 0
    for name in knees:
        truth = keypoint_angle(parse.keypoints, JOINTS[name])
        if truth.conf < 0.9 or parts[name].deg is None:
            continue
        answered += 1
        assert truth.deg > 150 and abs(parts[name].deg - truth.deg) < 45, (name, truth, parts[name])
    assert answered >= 1
