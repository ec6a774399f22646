"""Joint angles of one person: from COCO-17 keypoints when they are confident, else from the
axes of the body-part masks (PCA of each limb segment's pixels), else unknown (None).

Angles are in degrees in the image plane. A joint angle is the angle at the joint between its
two segments: 180 = straight limb. `trunk_lean` is the torso's tilt from vertical (0 = upright).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.imaging import mask_box
from realtime.models.labels import BLAZEPOSE_LANDMARKS, COCO_KEYPOINTS

_KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}


@dataclass(frozen=True)
class JointSpec:
    """A joint as keypoints (proximal end, joint, distal end) and, for the mask fallback, the
    part names of its proximal and distal segments. `vertical` joints measure the proximal ->
    distal segment against the image vertical instead of a second segment. `end_parts` are the
    parts beyond the distal segment (a foot, a hand): where they reach the frame's edge, the limb
    goes on out of the frame and the distal segment cannot be trusted. `far_parts` are the parts
    beyond the proximal and the distal segment's far ends (away from the joint), which tell
    part_angle which end of each segment is not the joint's."""

    keypoints: tuple[str, str, str]
    proximal_parts: tuple[str, ...]
    distal_parts: tuple[str, ...]
    vertical: bool = False
    end_parts: tuple[str, ...] = ()
    far_parts: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())


def _leg(side: str) -> tuple[str, ...]:
    return (f"{side}_upper_leg_front", f"{side}_upper_leg_back")


def _shin(side: str) -> tuple[str, ...]:
    return (f"{side}_lower_leg_front", f"{side}_lower_leg_back")


def _arm(side: str) -> tuple[str, ...]:
    return (f"{side}_upper_arm_front", f"{side}_upper_arm_back")


def _forearm(side: str) -> tuple[str, ...]:
    return (f"{side}_lower_arm_front", f"{side}_lower_arm_back")


TORSO_PARTS = ("torso_front", "torso_back")

SIDES = ("left", "right")

FACE_PARTS = ("left_face", "right_face")

LEG_PARTS = _leg("left") + _leg("right")

JOINTS: dict[str, JointSpec] = {
    **{f"{s}_knee": JointSpec((f"{s}_hip", f"{s}_knee", f"{s}_ankle"), _leg(s), _shin(s), end_parts=(f"{s}_foot",),
                              far_parts=(TORSO_PARTS, (f"{s}_foot",))) for s in SIDES},
    **{f"{s}_hip": JointSpec((f"{s}_shoulder", f"{s}_hip", f"{s}_knee"), TORSO_PARTS, _leg(s),
                             far_parts=(FACE_PARTS, _shin(s))) for s in SIDES},
    **{f"{s}_elbow": JointSpec((f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist"), _arm(s), _forearm(s),
                               end_parts=(f"{s}_hand",), far_parts=(TORSO_PARTS, (f"{s}_hand",))) for s in SIDES},
    **{f"{s}_shoulder": JointSpec((f"{s}_hip", f"{s}_shoulder", f"{s}_elbow"), TORSO_PARTS, _arm(s),
                                  far_parts=(LEG_PARTS, _forearm(s))) for s in SIDES},
    # Keypoints: mid-hip -> mid-shoulder against vertical; parts: the torso's long axis.
    "trunk_lean": JointSpec(("hips", "shoulders", "shoulders"), TORSO_PARTS, (), vertical=True),
}

# Parts whose areas are compared left against right for a joint's symmetry.
LIMB_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "knee": {s: _leg(s) + _shin(s) for s in SIDES},
    "hip": {s: _leg(s) + _shin(s) for s in SIDES},
    "elbow": {s: _arm(s) + _forearm(s) for s in SIDES},
    "shoulder": {s: _arm(s) + _forearm(s) for s in SIDES},
}


# Why an angle is unknown: a segment cut by the frame's edge or a keypoint on it, or its
# keypoints and parts not seen well enough.
OUT_OF_FRAME = "out_of_frame"
NOT_VISIBLE = "not_visible"


@dataclass(frozen=True)
class Angle:
    """deg is None when unknown; conf in [0, 1]; source is "keypoints", "parts" or "unknown";
    reason (OUT_OF_FRAME or NOT_VISIBLE) says why an unknown angle is unknown, else None."""

    deg: float | None
    conf: float
    source: str
    reason: str | None = None


UNKNOWN = Angle(None, 0.0, "unknown", NOT_VISIBLE)
CUT_OFF = Angle(None, 0.0, "unknown", OUT_OF_FRAME)


def angle_at(a: np.ndarray, joint: np.ndarray, c: np.ndarray) -> float | None:
    """The angle a-joint-c in degrees, None when a segment has no length."""
    u, v = np.asarray(a, float) - joint, np.asarray(c, float) - joint
    norms = np.linalg.norm(u) * np.linalg.norm(v)
    if norms < 1e-9:
        return None
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / norms, -1.0, 1.0))))


# COCO keypoint -> BlazePose landmark index (realtime.models.labels.BLAZEPOSE_LANDMARKS).
_WORLD = {name: i for i, name in enumerate(BLAZEPOSE_LANDMARKS)}
ANGLE_MODES = ("2d", "3d")


def world_angles(world: np.ndarray, visibility: np.ndarray, joints: tuple[str, ...] = tuple(JOINTS)) -> dict[str, Angle]:
    """Every joint's angle in 3-D from BlazePose's world landmarks ([33, 3] metres, y down) with
    `visibility` [33] as the confidence (the weakest of the joint's landmarks); trunk_lean is the
    mid-hip -> mid-shoulder segment against straight up (-y). Source "world"."""
    out = {}
    for name in joints:
        spec = JOINTS[name]
        if spec.vertical:
            ids = [_WORLD["left_hip"], _WORLD["right_hip"], _WORLD["left_shoulder"], _WORLD["right_shoulder"]]
            hips, shoulders = world[ids[:2]].mean(axis=0), world[ids[2:]].mean(axis=0)
            deg = angle_at(shoulders - hips, np.zeros(3), np.array([0.0, -1.0, 0.0]))
        else:
            ids = [_WORLD[k] for k in spec.keypoints]
            deg = angle_at(world[ids[0]], world[ids[1]], world[ids[2]])
        conf = float(np.min(visibility[ids]))
        out[name] = UNKNOWN if deg is None else Angle(deg, conf, "world")
    return out


def facing_share(world: np.ndarray) -> float:
    """How squarely the body faces the camera (or turns its back to it), from BlazePose's world
    landmarks ([33, 3] metres, x right, z away from the camera): the mean of |cos| of the
    shoulder line's and the hip line's angles to the image plane, on the floor plane (x, z).
    1: both sides in view side by side; 0: side-on, one side behind the other."""
    shares = []
    for left, right in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        dx, _, dz = world[_WORLD[left]] - world[_WORLD[right]]
        length = math.hypot(dx, dz)
        shares.append(abs(dx) / length if length > 0 else 0.0)
    return float(np.mean(shares))


def tilt_from_vertical(bottom: np.ndarray, top: np.ndarray) -> float | None:
    """Degrees between the segment bottom -> top and straight up in the image (y grows down)."""
    return angle_at(np.asarray(top, float) - bottom, np.zeros(2), np.array([0.0, -1.0]))


def keypoint_angle(keypoints: np.ndarray, spec: JointSpec) -> Angle:
    """The joint angle from a 17 x 3 (x, y, score) array; conf = the weakest keypoint's score."""
    if spec.vertical:
        ids = [_KP["left_hip"], _KP["right_hip"], _KP["left_shoulder"], _KP["right_shoulder"]]
        conf = float(keypoints[ids, 2].min())
        hips = keypoints[ids[:2], :2].mean(axis=0)
        shoulders = keypoints[ids[2:], :2].mean(axis=0)
        deg = tilt_from_vertical(hips, shoulders)
    else:
        a, j, c = (keypoints[_KP[name]] for name in spec.keypoints)
        conf = float(min(a[2], j[2], c[2]))
        deg = angle_at(a[:2], j[:2], c[:2])
    return UNKNOWN if deg is None else Angle(deg, conf, "keypoints")


@dataclass(frozen=True)
class SegmentAxis:
    """A part's pixels summarised: centroid (x, y), unit long axis, the two ends of the pixels
    along that axis (2 x 2), pixel count and elongation (1 - minor/major variance: 0 for a
    blob, near 1 for a thin limb)."""

    centroid: np.ndarray
    axis: np.ndarray
    ends: np.ndarray
    pixels: int
    elongation: float


def segment_axis(mask: np.ndarray, *, min_pixels: int) -> SegmentAxis | None:
    """PCA of a bool mask's pixel coordinates; None below `min_pixels`."""
    ys, xs = np.nonzero(mask)
    if len(xs) < min_pixels:
        return None
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    centroid = points.mean(axis=0)
    variances, vectors = np.linalg.eigh(np.cov((points - centroid).T))
    axis = vectors[:, 1]
    along = (points - centroid) @ axis
    ends = centroid + np.outer([along.min(), along.max()], axis)
    major = max(variances[1], 1e-9)
    return SegmentAxis(centroid, axis, ends, len(xs), float(1.0 - max(variances[0], 0.0) / major))


class PartMasks:
    """The bool masks of sets of parts (by name) in one H x W uint8 label map, each made once:
    `masks(parts, within)` is that mask, inside `within` (H x W bool) when given; None when the
    label set lacks all of those parts."""

    def __init__(self, labels: np.ndarray, label_names: tuple[str, ...]) -> None:
        self.labels = labels
        self.label_names = label_names
        self._made: dict[tuple[str, ...], np.ndarray | None] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def __call__(self, parts: tuple[str, ...], within: np.ndarray | None = None) -> np.ndarray | None:
        if parts not in self._made:
            ids = [self.label_names.index(p) for p in parts if p in self.label_names]
            wanted = np.zeros(256, dtype=bool)
            wanted[ids] = True
            self._made[parts] = wanted[self.labels] if ids else None
        mask = self._made[parts]
        return mask if mask is None or within is None else mask & within


def part_angle(masks: PartMasks, spec: JointSpec,
               person: np.ndarray | None = None, *, min_pixels: int = 40) -> Angle:
    """The joint angle from the long axes of its two segments' part masks.

    Each segment is its mask's largest 8-connected piece (a label the parser also put on the
    other leg would otherwise turn the axis across both legs). The joint is where the segments'
    nearest ends meet; each axis points from there along its segment. UNKNOWN where a segment's
    far parts (spec.far_parts, at least `min_pixels` of them) lie nearer that joint end than the
    other end: the segment is read the wrong way round. conf is the product of both segments'
    elongation and how far each passes `min_pixels` (capped at 1)."""
    proximal_mask = masks(spec.proximal_parts, person)
    if spec.vertical:
        proximal = None if proximal_mask is None else segment_axis(proximal_mask, min_pixels=min_pixels)
        if proximal is None:
            return UNKNOWN
        up = proximal.axis if proximal.axis[1] < 0 else -proximal.axis
        deg = tilt_from_vertical(np.zeros(2), up)
        return Angle(deg, _axis_conf(proximal, min_pixels), "parts")
    distal_mask = masks(spec.distal_parts, person)
    if proximal_mask is None or distal_mask is None:
        return UNKNOWN
    proximal = segment_axis(_largest_piece(proximal_mask), min_pixels=min_pixels)
    distal = segment_axis(_largest_piece(distal_mask), min_pixels=min_pixels)
    if proximal is None or distal is None:
        return UNKNOWN
    gaps = np.linalg.norm(proximal.ends[:, None] - distal.ends[None, :], axis=2)
    near_p, near_d = np.unravel_index(np.argmin(gaps), gaps.shape)
    for segment, near, far_parts in zip((proximal, distal), (near_p, near_d), spec.far_parts):
        beyond = masks(far_parts, person) if far_parts else None
        if beyond is not None and _nearest_end(segment, beyond, min_pixels) == near:
            return UNKNOWN
    to_proximal = proximal.ends[1 - near_p] - proximal.ends[near_p]
    to_distal = distal.ends[1 - near_d] - distal.ends[near_d]
    deg = angle_at(to_proximal, np.zeros(2), to_distal)
    if deg is None:
        return UNKNOWN
    return Angle(deg, _axis_conf(proximal, min_pixels) * _axis_conf(distal, min_pixels), "parts")


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    """The bool mask's largest 8-connected component (the mask itself when it has one or none)."""
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    return pieces == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _nearest_end(segment: SegmentAxis, mask: np.ndarray, min_pixels: int) -> int | None:
    """Which of the segment's two ends (0 or 1) lies nearer the bool mask's pixels; None under
    `min_pixels` of them."""
    ys, xs = np.nonzero(mask)
    if len(xs) < min_pixels:
        return None
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    return int(np.argmin([np.min(np.linalg.norm(points - end, axis=1)) for end in segment.ends]))


def _axis_conf(segment: SegmentAxis, min_pixels: int) -> float:
    return min(1.0, segment.pixels / (4 * min_pixels)) * segment.elongation


def _keypoint_names(spec: JointSpec) -> tuple[str, ...]:
    if spec.vertical:
        return "left_hip", "right_hip", "left_shoulder", "right_shoulder"
    return spec.keypoints


def limb_path(keypoints: np.ndarray | None, spec: JointSpec) -> tuple[np.ndarray, float] | None:
    """Where the joint's own pixels can be, from its placed keypoints (any score above 0): a
    polyline (N x 2, x y) and a radius in pixels. For a limb joint, proximal end -> joint -> distal
    end, continued half a distal segment on (the hand or foot), within 0.35 of the longer segment
    (a limb's half-width with room to spare); for a vertical joint, mid-hip -> mid-shoulder within
    half its length. None when a keypoint is not placed or the path has no length."""
    if keypoints is None or len(keypoints) != len(COCO_KEYPOINTS):
        return None
    points = keypoints[[_KP[name] for name in _keypoint_names(spec)]]
    if (points[:, 2] <= 0).any():
        return None
    xy = points[:, :2].astype(np.float64)
    if spec.vertical:
        path = np.stack([xy[:2].mean(axis=0), xy[2:].mean(axis=0)])
        radius = 0.5 * np.linalg.norm(path[1] - path[0])
    else:
        path = np.vstack([xy, xy[2] + 0.5 * (xy[2] - xy[1])])
        radius = 0.35 * max(np.linalg.norm(xy[0] - xy[1]), np.linalg.norm(xy[2] - xy[1]))
    return (path, float(radius)) if radius > 0 else None


def path_region(shape: tuple[int, int], path: np.ndarray, radius: float) -> np.ndarray:
    """H x W bool: the pixels within about `radius` of the polyline `path` (N x 2, x y), drawn as
    round-capped lines 2 x radius thick."""
    region = np.zeros(shape, dtype=np.uint8)
    points = np.round(path).astype(np.int32)
    thickness = max(1, int(round(2 * radius)))
    for start, end in zip(points[:-1], points[1:]):
        cv2.line(region, (int(start[0]), int(start[1])), (int(end[0]), int(end[1])), 1, thickness)
    return region.view(bool)


def _inner_box(frame_box: tuple[int, int, int, int], edge_px: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), image pixels clipped at 0: the frame's own pixels farther than
    `edge_px` from its edges (frame_box may lie partly outside the image: the image is then a
    crop of the frame)."""
    x0, y0, x1, y1 = frame_box
    return max(0, x0 + edge_px), max(0, y0 + edge_px), max(0, x1 - edge_px), max(0, y1 - edge_px)


def _inside_band(shape: tuple[int, int], frame_box: tuple[int, int, int, int], edge_px: int) -> np.ndarray:
    """H x W bool: the pixels of _inner_box."""
    left, top, right, bottom = _inner_box(frame_box, edge_px)
    inside = np.zeros(shape, dtype=bool)
    inside[top:bottom, left:right] = True
    return inside


def cut_by_edge(keypoints: np.ndarray | None, parts: PartMasks | None,
                spec: JointSpec, person: np.ndarray | None, frame_box: tuple[int, int, int, int],
                *, edge_px: int) -> bool:
    """Whether the joint's own limb reaches the frame's edge: one of its keypoints (any score
    above 0: the model placing a joint on the edge is evidence enough) lies within `edge_px` of
    it or beyond; the part pixels of one of its segments or of the parts beyond (end_parts) touch
    that band; or the person's mask touches an edge that the distal segment or end parts come
    nearer to than the proximal segment is long (the limb goes on out of the frame, whatever the
    parser drew). With its keypoints placed, only pixels along the limb count (see limb_path):
    a parser's stray labels elsewhere (a foot labelled as a hand) and other body parts at the
    edge (a head in a side-view push-up) do not cut it.
    frame_box (x0, y0, x1, y1), exclusive ends, is where the frame's own pixels are in the image
    (all of it unless letterboxed)."""
    x0, y0, x1, y1 = frame_box
    if keypoints is not None and len(keypoints) == len(COCO_KEYPOINTS):
        points = keypoints[[_KP[name] for name in _keypoint_names(spec)]]
        placed = points[points[:, 2] > 0]
        if ((placed[:, 0] < x0 + edge_px) | (placed[:, 0] >= x1 - edge_px)
                | (placed[:, 1] < y0 + edge_px) | (placed[:, 1] >= y1 - edge_px)).any():
            return True
    if parts is None:
        return False
    path = limb_path(keypoints, spec)
    along = None if path is None else path_region(parts.shape, *path)

    def own(mask: np.ndarray | None) -> np.ndarray | None:
        """The mask's pixels along the limb (all of them without a path)."""
        return mask if mask is None or along is None else mask & along

    inner = _inside_band(parts.shape, frame_box, edge_px)
    segments = (spec.proximal_parts, spec.distal_parts, spec.end_parts)
    masks = [own(parts(names, person & ~inner if person is not None else ~inner)) if names else None
             for names in segments]
    if any(mask is not None and mask.any() for mask in masks):
        return True
    if person is None or spec.vertical:
        return False
    masks = [own(parts(names, person)) if names else None for names in segments]
    if masks[0] is None or not masks[0].any():
        return False
    px0, py0, px1, py1 = mask_box(masks[0])
    reach = max(px1 - px0, py1 - py0) - 1  # the proximal segment's length, about
    limb = np.zeros(parts.shape, dtype=bool)
    for mask in masks[1:]:
        if mask is not None:
            limb |= mask
    box = mask_box(limb)
    if box is None:
        return False
    lx0, ly0, lx1, ly1 = box
    touches = own(person & ~inner)
    left, top, right, bottom = _inner_box(frame_box, edge_px)
    sides = ((touches[:, :left].any(), lx0 - x0), (touches[:, right:].any(), x1 - lx1),
             (touches[:top].any(), ly0 - y0), (touches[bottom:].any(), y1 - ly1))
    return any(touched and distance < reach for touched, distance in sides)


def _person_crop(labels: np.ndarray, person: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
    """`labels` and `person` cut to the person's box (every part mask read inside `person` lies in
    it) and the box's corner (x, y); as they are, corner (0, 0), without a person or pixels."""
    box = mask_box(person) if person is not None else None
    if box is None:
        return labels, person, (0, 0)
    x0, y0, x1, y1 = box
    return labels[y0:y1, x0:x1], person[y0:y1, x0:x1], (x0, y0)


def joint_angles(keypoints: np.ndarray | None, labels: np.ndarray | None, label_names: tuple[str, ...],
                 person: np.ndarray | None = None, *, min_score: float = 0.3,
                 min_part_conf: float = 0.5, joints: tuple[str, ...] = tuple(JOINTS),
                 frame_box: tuple[int, int, int, int] | None = None) -> dict[str, Angle]:
    """Every joint's angle: CUT_OFF (reason out_of_frame) when `frame_box` (x0, y0, x1, y1 of the
    frame's own pixels in the image) is given and a keypoint or segment of the joint reaches its
    edge (see cut_by_edge; 1% of its short side, at least 2 px); else keypoints at or above
    `min_score`, else the part-mask axes at or above `min_part_conf` (CUT_OFF when one of those
    segments reaches the edge band: segments_at_edge), else UNKNOWN (reason not_visible) — never
    a guess."""
    angles = {}
    coco = keypoints is not None and len(keypoints) == len(COCO_KEYPOINTS)
    edge_px = 0 if frame_box is None else max(2, round(0.01 * min(frame_box[2] - frame_box[0],
                                                                      frame_box[3] - frame_box[1])))
    if labels is not None:
        labels, person, (bx, by) = _person_crop(labels, person)
        if coco:
            keypoints = keypoints.copy()
            keypoints[:, :2] -= (bx, by)
        if frame_box is not None:
            frame_box = (frame_box[0] - bx, frame_box[1] - by, frame_box[2] - bx, frame_box[3] - by)
    parts = None if labels is None else PartMasks(labels, label_names)
    for name in joints:
        spec = JOINTS[name]
        if frame_box is not None and cut_by_edge(keypoints, parts, spec, person, frame_box,
                                                 edge_px=edge_px):
            angles[name] = CUT_OFF
            continue
        angle = keypoint_angle(keypoints, spec) if coco else UNKNOWN
        if angle.deg is None or angle.conf < min_score:
            fallback = part_angle(parts, spec, person) if parts is not None else UNKNOWN
            angle = fallback if fallback.deg is not None and fallback.conf >= min_part_conf else UNKNOWN
            if angle.source == "parts" and frame_box is not None and segments_at_edge(
                    parts, spec, person, frame_box, edge_px=edge_px):
                angle = CUT_OFF
        angles[name] = angle
    return angles


def segments_at_edge(masks: PartMasks, spec: JointSpec, person: np.ndarray | None,
                     frame_box: tuple[int, int, int, int], *, edge_px: int) -> bool:
    """Whether the limb that part_angle reads (inside `person`) reaches the band `edge_px` wide
    along the frame's edge: a pixel of its two segments, or a person pixel no farther from the
    distal segment than that segment is long (whatever its label: the parser's labels on a body
    cut by the edge are often another part's), lies in the band. An axis through a segment that
    goes on out of the frame is a stub's, not the limb's (a shin cut at mid-length folds the
    knee to a few degrees); the person's pixels at the edge far from the limb (a push-up's head
    and feet) do not count."""
    band = ~_inside_band(masks.shape, frame_box, edge_px) & (masks.labels > 0 if person is None else person)
    if any(mask is not None and mask.any()
           for mask in (masks(parts, band) for parts in (spec.proximal_parts, spec.distal_parts)
                        if parts)):
        return True
    distal = masks(spec.distal_parts, person) if spec.distal_parts else None
    if distal is None or not distal.any() or not band.any():
        return False
    dx0, dy0, dx1, dy1 = mask_box(distal)
    length = max(dx1 - dx0, dy1 - dy0)
    to_distal = cv2.distanceTransform((~distal).astype(np.uint8), cv2.DIST_L2, 3)
    return bool((to_distal[band] <= length).any())


def side_areas(labels: np.ndarray, label_names: tuple[str, ...], joint: str,
               person: np.ndarray | None = None) -> tuple[int, int] | None:
    """Pixel areas of the left and right limb that `joint` (e.g. "left_knee" or "knee")
    belongs to; None for joints without sides or label sets without those parts."""
    limb = LIMB_PARTS.get(joint.split("_")[-1])
    if limb is None:
        return None
    labels, person, _ = _person_crop(labels, person)
    parts = PartMasks(labels, label_names)
    masks = [parts(limb[side], person) for side in SIDES]
    if any(m is None for m in masks):
        return None
    return int(masks[0].sum()), int(masks[1].sum())
