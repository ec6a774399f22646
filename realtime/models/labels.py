"""Label sets: class names, display colours and part groups for each dataset convention."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class LabelSet:
    """Class ids 0..N-1 with names, an N x 3 uint8 RGB palette and named groups of ids.

    Id 0 is always background. `groups` maps a group name (shown in the window) to the ids
    it contains, in display order.
    """

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(f"label set {self.name}: {len(self.names)} names but {len(self.colors)} colours")
        if self.names[0] != "background":
            raise ValueError(f"label set {self.name}: id 0 must be 'background'")
        grouped = [i for ids in self.groups.values() for i in ids]
        if grouped and sorted(grouped) != list(range(1, len(self.names))):
            raise ValueError(f"label set {self.name}: groups must cover every part id exactly once")

    @cached_property
    def palette(self) -> np.ndarray:
        return np.array(self.colors, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.names)


BODYPIX_PARTS = LabelSet(
    name="bodypix",
    names=(
        "background",
        "left_face", "right_face",
        "left_upper_arm_front", "left_upper_arm_back",
        "right_upper_arm_front", "right_upper_arm_back",
        "left_lower_arm_front", "left_lower_arm_back",
        "right_lower_arm_front", "right_lower_arm_back",
        "left_hand", "right_hand",
        "torso_front", "torso_back",
        "left_upper_leg_front", "left_upper_leg_back",
        "right_upper_leg_front", "right_upper_leg_back",
        "left_lower_leg_front", "left_lower_leg_back",
        "right_lower_leg_front", "right_lower_leg_back",
        "left_foot", "right_foot",
    ),
    # Told apart at a glance: left is warm (reds, yellows, magentas), right cool (greens, blues);
    # front and back of a part share a hue, the back darker. Any two body regions differ by a
    # CIEDE2000 of at least 23, the front and back of one region by at least 9 (chosen by search;
    # tests/test_palette.py holds them to 15 and 5).
    colors=(
        (0, 0, 0),
        (255, 243, 0), (0, 137, 80),
        (255, 0, 99), (200, 0, 69),
        (27, 190, 255), (0, 151, 207),
        (115, 109, 21), (79, 75, 0),
        (47, 255, 231), (10, 212, 192),
        (255, 44, 238), (0, 104, 110),
        (255, 173, 24), (207, 138, 0),
        (255, 188, 172), (210, 152, 138),
        (190, 181, 235), (152, 144, 191),
        (172, 77, 17), (126, 47, 0),
        (29, 249, 40), (0, 206, 14),
        (136, 4, 125), (0, 86, 175),
    ),
    groups={
        "head": (1, 2),
        "torso": (13, 14),
        "left arm": (3, 4, 7, 8),
        "right arm": (5, 6, 9, 10),
        "hands": (11, 12),
        "left leg": (15, 16, 19, 20),
        "right leg": (17, 18, 21, 22),
        "feet": (23, 24),
    },
)

# LIP / CIHP share the 20-class convention (CIHP adds multi-person instances).
_LIP_NAMES = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat",
    "socks", "pants", "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm",
    "left_leg", "right_leg", "left_shoe", "right_shoe",
)
_LIP_COLORS = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0),
    (0, 0, 85), (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128),
    (0, 128, 0), (0, 0, 255), (51, 170, 221), (0, 255, 255), (85, 255, 170),
    (170, 255, 85), (255, 255, 0), (255, 170, 0),
)
_LIP_GROUPS = {
    "head": (1, 2, 4, 13),
    "clothes": (5, 6, 7, 10, 11),
    "arms": (3, 14, 15),
    "legs": (9, 12, 16, 17),
    "feet": (8, 18, 19),
}

LIP_PARTS = LabelSet(name="lip", names=_LIP_NAMES, colors=_LIP_COLORS, groups=_LIP_GROUPS)
# CIHP uses LIP's ids and colours, but id 10 is torso skin where LIP has jumpsuits.
CIHP_PARTS = LabelSet(name="cihp", names=_LIP_NAMES[:10] + ("torso_skin",) + _LIP_NAMES[11:],
                      colors=_LIP_COLORS, groups=_LIP_GROUPS)

# Person / background segmenters (Human_seg): channel 1 of their two logits is the person.
PERSON_BACKGROUND = LabelSet(name="person", names=("background", "person"), colors=((0, 0, 0), (255, 255, 255)))

ATR_PARTS = LabelSet(
    name="atr",
    names=(
        "background", "hat", "hair", "sunglasses", "upper_clothes", "skirt", "pants", "dress",
        "belt", "left_shoe", "right_shoe", "face", "left_leg", "right_leg", "left_arm",
        "right_arm", "bag", "scarf",
    ),
    colors=(
        (0, 0, 0), (128, 0, 0), (255, 0, 0), (170, 0, 51), (255, 85, 0), (0, 128, 0),
        (0, 85, 85), (0, 0, 85), (85, 51, 0), (255, 255, 0), (255, 170, 0), (0, 0, 255),
        (85, 255, 170), (170, 255, 85), (51, 170, 221), (0, 255, 255), (85, 85, 0),
        (52, 86, 128),
    ),
    groups={
        "head": (1, 2, 3, 11),
        "clothes": (4, 5, 6, 7, 8, 17),
        "arms": (14, 15),
        "legs": (12, 13),
        "feet": (9, 10),
        "accessories": (16,),
    },
)

PASCAL_PERSON_PARTS = LabelSet(
    name="pascal-person-part",
    names=("background", "head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"),
    colors=(
        (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128),
        (0, 128, 128),
    ),
    groups={"head": (1,), "torso": (2,), "arms": (3, 4), "legs": (5, 6)},
)

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# BlazePose's 33 landmarks in model order (the JSONL's per-person `landmarks` and
# `world_landmarks` rows; MediaPipe Pose's PoseLandmark enum).
BLAZEPOSE_LANDMARKS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

COCO_SKELETON = (
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12), (11, 13),
    (13, 15), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4),
)

# COCO panoptic (Kirillov et al., 2019): 80 thing classes then 53 stuff classes, in the order of
# detectron2's / EasyCV's `CLASSES` (the class index the network predicts); id = index + 1 here,
# id 0 being "no segment" (EasyCV's VOID). Colours: the COCO panoptic palette those projects draw.
COCO_THING_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
COCO_STUFF_CLASSES = (
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff", "floor-wood",
    "flower", "fruit", "gravel", "house", "light", "mirror-stuff", "net", "pillow", "platform",
    "playingfield", "railroad", "river", "road", "roof", "sand", "sea", "shelf", "snow", "stairs",
    "tent", "towel", "wall-brick", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "window-blind", "window-other", "tree-merged", "fence-merged", "ceiling-merged",
    "sky-other-merged", "cabinet-merged", "table-merged", "floor-other-merged", "pavement-merged",
    "mountain-merged", "grass-merged", "dirt-merged", "paper-merged", "food-other-merged",
    "building-other-merged", "rock-merged", "wall-other-merged", "rug-merged",
)
_COCO_PANOPTIC_COLORS = (
    (220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230), (106, 0, 228), (0, 60, 100),
    (0, 80, 100), (0, 0, 70), (0, 0, 192), (250, 170, 30), (100, 170, 30), (220, 220, 0),
    (175, 116, 175), (250, 0, 30), (165, 42, 42), (255, 77, 255), (0, 226, 252), (182, 182, 255),
    (0, 82, 0), (120, 166, 157), (110, 76, 0), (174, 57, 255), (199, 100, 0), (72, 0, 118),
    (255, 179, 240), (0, 125, 92), (209, 0, 151), (188, 208, 182), (0, 220, 176), (255, 99, 164),
    (92, 0, 73), (133, 129, 255), (78, 180, 255), (0, 228, 0), (174, 255, 243), (45, 89, 255),
    (134, 134, 103), (145, 148, 174), (255, 208, 186), (197, 226, 255), (171, 134, 1),
    (109, 63, 54), (207, 138, 255), (151, 0, 95), (9, 80, 61), (84, 105, 51), (74, 65, 105),
    (166, 196, 102), (208, 195, 210), (255, 109, 65), (0, 143, 149), (179, 0, 194),
    (209, 99, 106), (5, 121, 0), (227, 255, 205), (147, 186, 208), (153, 69, 1), (3, 95, 161),
    (163, 255, 0), (119, 0, 170), (0, 182, 199), (0, 165, 120), (183, 130, 88), (95, 32, 0),
    (130, 114, 135), (110, 129, 133), (166, 74, 118), (219, 142, 185), (79, 210, 114),
    (178, 90, 62), (65, 70, 15), (127, 167, 115), (59, 105, 106), (142, 108, 45), (196, 172, 0),
    (95, 54, 80), (128, 76, 255), (201, 57, 1), (246, 0, 122), (191, 162, 208), (255, 255, 128),
    (147, 211, 203), (150, 100, 100), (168, 171, 172), (146, 112, 198), (210, 170, 100),
    (92, 136, 89), (218, 88, 184), (241, 129, 0), (217, 17, 255), (124, 74, 181), (70, 70, 70),
    (255, 228, 255), (154, 208, 0), (193, 0, 92), (76, 91, 113), (255, 180, 195),
    (106, 154, 176), (230, 150, 140), (60, 143, 255), (128, 64, 128), (92, 82, 55),
    (254, 212, 124), (73, 77, 174), (255, 160, 98), (255, 255, 255), (104, 84, 109),
    (169, 164, 131), (225, 199, 255), (137, 54, 74), (135, 158, 223), (7, 246, 231),
    (107, 255, 200), (58, 41, 149), (183, 121, 142), (255, 73, 97), (107, 142, 35),
    (190, 153, 153), (146, 139, 141), (70, 130, 180), (134, 199, 156), (209, 226, 140),
    (96, 36, 108), (96, 96, 96), (64, 170, 64), (152, 251, 152), (208, 229, 228),
    (206, 186, 171), (152, 161, 64), (116, 112, 0), (0, 114, 143), (102, 102, 156),
    (250, 141, 255),
)
COCO_PANOPTIC = LabelSet(
    name="coco-panoptic",
    names=("background", *COCO_THING_CLASSES, *COCO_STUFF_CLASSES),
    colors=((0, 0, 0), *_COCO_PANOPTIC_COLORS),
    groups={
        "person": (1,),
        "things": tuple(range(2, 1 + len(COCO_THING_CLASSES))),
        "stuff": tuple(range(1 + len(COCO_THING_CLASSES), 1 + len(COCO_THING_CLASSES) + len(COCO_STUFF_CLASSES))),
    },
)
