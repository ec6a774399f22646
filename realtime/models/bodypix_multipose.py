"""BodyPix / PoseNet multi-person decoding, in numpy on one image's output grids.

Poses: every keypoint heatmap cell that is a local maximum above `score_threshold` is a
candidate root, strongest first. A root within `nms_radius` of the same keypoint of a pose
already found is skipped; otherwise the pose grows from it along the keypoint tree, each
step following the mid-range displacement of the edge (backward towards the nose, then
forward to the limbs) and snapping to the target keypoint's short offset. A pose scores the
mean of its keypoint scores, counting only keypoints not already claimed (within the NMS
radius) by a stronger pose; a pose that shares more than `max_shared_keypoints` of its
confident keypoints with stronger poses is a second reading of the same person and dropped
(an addition to the published decoder: without it a crouching body can come out twice).

Instances: each grid cell follows its long offsets (refined a few times) to where it
predicts each keypoint of its person lies; it belongs to the pose whose confident keypoints
are nearest on average, plus `skeleton_weight` times the squared distance from the cell itself
to the pose's skeleton (another addition: where one person is half behind another, the
network's long offsets often point the hidden one's pixels at the front one's keypoints,
though the hidden one's own skeleton runs through them). A pose found from a group of person
cells standing apart owns those cells outright (`give_owned_cells`). Positions are in
network-input pixels; offsets hold K y-channels, then K x-channels; displacements E
y-channels, then E x-channels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.imaging import fill_from_nearest
from realtime.models.labels import COCO_SKELETON

# (parent, child) keypoint ids of the COCO keypoint tree rooted at the nose, in the order of
# the displacement channels.
POSE_EDGES = (
    (0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11),
    (11, 13), (13, 15), (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16),
)

_TORSO = (5, 6, 12, 11)  # shoulders and hips, around the torso


@dataclass(frozen=True)
class MultiPoseSettings:
    """The published BodyPix multi-person defaults, in network-input pixels."""

    score_threshold: float = 0.3
    nms_radius: float = 20.0
    local_max_radius: int = 1
    min_pose_score: float = 0.2
    min_keypoint_score: float = 0.3
    refine_steps: int = 10
    min_mask_fill: float = 0.1  # people must own this share of the box around their keypoints
    max_shared_keypoints: float = 0.3  # share of confident keypoints a stronger pose may claim
    skeleton_weight: float = 4.0  # weight of the squared distance from a cell to a pose's skeleton
    skeleton_min_score: float = 0.1  # keypoints drawn into a pose's skeleton score above this
    vote_radius: float = 0.45  # torso lengths between a cell's voted torso centre and its person's
    min_vote_cells: int = 6  # person cells that must vote for a missed person
    min_own_keypoints: float = 0.3  # share of a voted pose's keypoints on its own cells
    min_own_keypoints_decoded: float = 0.2  # the same for a decoded pose, once a voted one is added


@dataclass(frozen=True)
class Pose:
    keypoints: np.ndarray  # K x 3 float32: x, y, score in network-input pixels
    score: float
    cells: np.ndarray | None = None  # h x w bool grid cells the pose owns outright, if any


def decode_multiple_poses(scores: np.ndarray, short_offsets: np.ndarray, displacement_fwd: np.ndarray,
                          displacement_bwd: np.ndarray, *, stride: int, max_poses: int,
                          settings: MultiPoseSettings = MultiPoseSettings()) -> list[Pose]:
    """scores: K x h x w keypoint probabilities; offsets 2K x h x w; displacements 2E x h x w.
    Returns at most `max_poses` poses scoring at least `settings.min_pose_score`, best first."""
    num_keypoints = scores.shape[0]
    squared_radius = settings.nms_radius ** 2
    poses: list[Pose] = []
    for keypoint, cell_y, cell_x in _candidate_roots(scores, settings):
        if len(poses) >= max_poses:
            break
        root = _cell_point(short_offsets, keypoint, cell_y, cell_x, stride)
        if any(_squared_distance(pose.keypoints[keypoint, :2], root) <= squared_radius for pose in poses):
            continue
        keypoints = _grow_pose(keypoint, root, float(scores[keypoint, cell_y, cell_x]), scores, short_offsets,
                               displacement_fwd, displacement_bwd, stride)
        claimed = np.zeros(num_keypoints, dtype=bool)
        for pose in poses:
            claimed |= ((pose.keypoints[:, :2] - keypoints[:, :2]) ** 2).sum(axis=1) <= squared_radius
        score = float(keypoints[~claimed, 2].sum() / num_keypoints)
        confident = keypoints[:, 2] > settings.min_keypoint_score
        shared = (claimed & confident).sum() / max(int(confident.sum()), 1)
        if score >= settings.min_pose_score and shared <= settings.max_shared_keypoints:
            poses.append(Pose(keypoints, score))
    return sorted(poses, key=lambda pose: -pose.score)


def _candidate_roots(scores: np.ndarray, settings: MultiPoseSettings) -> list[tuple[int, int, int]]:
    """(keypoint, y, x) of every local maximum at or above the threshold, strongest first."""
    side = 2 * settings.local_max_radius + 1
    kernel = np.ones((side, side), np.uint8)
    neighbourhood_max = np.stack([cv2.dilate(channel, kernel) for channel in np.ascontiguousarray(scores, np.float32)])
    keypoints, ys, xs = np.nonzero((scores >= settings.score_threshold) & (scores >= neighbourhood_max))
    order = np.argsort(-scores[keypoints, ys, xs], kind="stable")
    return list(zip(keypoints[order].tolist(), ys[order].tolist(), xs[order].tolist()))


def _cell_point(short_offsets: np.ndarray, keypoint: int, cell_y: int, cell_x: int, stride: int) -> tuple[float, float]:
    """(x, y) of `keypoint` as predicted by one cell: the cell's centre plus its short offset."""
    num_keypoints = short_offsets.shape[0] // 2
    return (cell_x * stride + short_offsets.item(num_keypoints + keypoint, cell_y, cell_x),
            cell_y * stride + short_offsets.item(keypoint, cell_y, cell_x))


def _squared_distance(a: np.ndarray, b: tuple[float, float]) -> float:
    return float((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)


def _nearest_cell(x: float, y: float, stride: int, grid_hw: tuple[int, int]) -> tuple[int, int]:
    cell_y = min(max(int(round(y / stride)), 0), grid_hw[0] - 1)
    cell_x = min(max(int(round(x / stride)), 0), grid_hw[1] - 1)
    return cell_y, cell_x


# (edge, source keypoint, target keypoint): towards the root first, then away from it
_BACKWARD_WALKS = tuple((edge, child, parent) for edge, (parent, child) in reversed(list(enumerate(POSE_EDGES))))
_FORWARD_WALKS = tuple((edge, parent, child) for edge, (parent, child) in enumerate(POSE_EDGES))


def _grow_pose(root_keypoint: int, root: tuple[float, float], root_score: float, scores: np.ndarray,
               short_offsets: np.ndarray, displacement_fwd: np.ndarray, displacement_bwd: np.ndarray,
               stride: int) -> np.ndarray:
    found: dict[int, tuple[float, float, float]] = {root_keypoint: (*root, root_score)}
    for walks, displacements in ((_BACKWARD_WALKS, displacement_bwd), (_FORWARD_WALKS, displacement_fwd)):
        for edge, source, target in walks:
            if source in found and target not in found:
                found[target] = _follow_edge(edge, found[source], target, scores, short_offsets, displacements, stride)
    return np.array([found[k] for k in range(scores.shape[0])], np.float32)


def _follow_edge(edge: int, source: tuple[float, float, float], target: int, scores: np.ndarray,
                 short_offsets: np.ndarray, displacements: np.ndarray, stride: int,
                 refine_steps: int = 2) -> tuple[float, float, float]:
    """(x, y, score) of `target`: the source's position plus the edge's displacement at the
    source's nearest cell, snapped `refine_steps` times to the target's short offset at the
    nearest cell (`_cell_point`), scored by the heatmap at its last nearest cell. `_nearest_cell`
    written out in place: the decoder's innermost loop, where the calls cost most of the time."""
    last_y, last_x = scores.shape[1] - 1, scores.shape[2] - 1
    offset = short_offsets.item
    offset_x = short_offsets.shape[0] // 2 + target
    x, y = source[0], source[1]
    cell_y, cell_x = round(y / stride), round(x / stride)
    cell_y, cell_x = 0 if cell_y < 0 else min(cell_y, last_y), 0 if cell_x < 0 else min(cell_x, last_x)
    x += displacements.item(displacements.shape[0] // 2 + edge, cell_y, cell_x)
    y += displacements.item(edge, cell_y, cell_x)
    for _ in range(refine_steps):
        cell_y, cell_x = round(y / stride), round(x / stride)
        cell_y, cell_x = 0 if cell_y < 0 else min(cell_y, last_y), 0 if cell_x < 0 else min(cell_x, last_x)
        x, y = cell_x * stride + offset(offset_x, cell_y, cell_x), cell_y * stride + offset(target, cell_y, cell_x)
    cell_y, cell_x = round(y / stride), round(x / stride)
    cell_y, cell_x = 0 if cell_y < 0 else min(cell_y, last_y), 0 if cell_x < 0 else min(cell_x, last_x)
    return x, y, scores.item(target, cell_y, cell_x)


def long_offset_votes(long_offsets: np.ndarray, cells: np.ndarray, *, stride: int,
                      refine_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """K x N x and y (input pixels): where each grid cell set in `cells` (h x w bool, N of
    them, row-major) predicts every keypoint of its own person lies, its long offsets refined
    `refine_steps` times."""
    num_keypoints = long_offsets.shape[0] // 2
    grid_h, grid_w = long_offsets.shape[1:]
    offset_y = long_offsets[:num_keypoints].reshape(num_keypoints, -1)
    offset_x = long_offsets[num_keypoints:].reshape(num_keypoints, -1)
    cells = np.flatnonzero(cells)
    rows = np.arange(num_keypoints)[:, None]
    y = (cells // grid_w * stride).astype(np.float32) + offset_y[:, cells]
    x = (cells % grid_w * stride).astype(np.float32) + offset_x[:, cells]
    for _ in range(refine_steps):
        cell_y = np.clip(np.rint(y / stride), 0, grid_h - 1).astype(np.intp)
        cell_x = np.clip(np.rint(x / stride), 0, grid_w - 1).astype(np.intp)
        index = cell_y * grid_w + cell_x
        y = y + offset_y[rows, index]
        x = x + offset_x[rows, index]
    return x, y


def instance_distances(votes: tuple[np.ndarray, np.ndarray], poses: list[Pose], *, cells: np.ndarray,
                       settings: MultiPoseSettings = MultiPoseSettings()) -> np.ndarray:
    """P x h x w: for every grid cell where `cells` (h x w bool) is set, the mean squared
    distance (input pixels) from where its refined long offsets place each keypoint (`votes`,
    long_offset_votes on `cells`) to that keypoint of each pose, over the pose's keypoints
    scoring above `min_keypoint_score` (all of them where none does); 0 elsewhere."""
    grid_h, grid_w = cells.shape
    x, y = votes
    cells = np.flatnonzero(cells)
    distances = np.zeros((len(poses), grid_h * grid_w), np.float32)
    for i, pose in enumerate(poses):
        distances[i, cells] = _vote_distances(x, y, pose, settings)
    return distances.reshape(len(poses), grid_h, grid_w)


def _vote_distances(x: np.ndarray, y: np.ndarray, pose: Pose, settings: MultiPoseSettings) -> np.ndarray:
    """N: mean squared distance from the cells' votes (K x N) to the pose's keypoints scoring
    above `min_keypoint_score` (all of them where none does)."""
    used = pose.keypoints[:, 2] > settings.min_keypoint_score
    if not used.any():
        used[:] = True
    squared = (x[used] - pose.keypoints[used, 0, None]) ** 2 + (y[used] - pose.keypoints[used, 1, None]) ** 2
    return squared.mean(axis=0)


def with_voted_poses(votes: tuple[np.ndarray, np.ndarray], scores: np.ndarray, poses: list[Pose], *, stride: int,
                     cells: np.ndarray, max_poses: int, short_offsets: np.ndarray,
                     settings: MultiPoseSettings = MultiPoseSettings()) -> list[Pose]:
    """Best first: `poses` plus poses for people the greedy decoder missed (a person half
    behind another, or moving fast, often grows no pose of their own), found from the person
    cells' long-offset votes. Cells whose voted torso centre lies farther than `vote_radius`
    torso lengths from every pose's are unexplained. A connected group of them standing apart
    is a person of its own (`_detached_people`); among the rest, a group of at least
    `min_vote_cells` voting for one torso centre is a candidate pose at the median of their
    votes (each keypoint scored by the heatmap there). Each cell then belongs to the pose its
    votes (`votes`: long_offset_votes on `cells`) are nearest (as pixels are given to people;
    empty cells to the nearest cell's pose; a detached person's cells to them), and a pose
    whose confident keypoints mostly sit on another pose's cells is a misreading of that
    person: a voted candidate below `min_own_keypoints` is not added, and a decoded pose below
    `min_own_keypoints_decoded` gives way to the candidates."""
    if len(poses) >= max_poses or np.count_nonzero(cells) < settings.min_vote_cells:
        return poses
    x, y = votes
    centre_x, centre_y = x[list(_TORSO)].mean(axis=0), y[list(_TORSO)].mean(axis=0)
    torso_lengths = np.hypot(x[[5, 6]].mean(axis=0) - x[[11, 12]].mean(axis=0),
                             y[[5, 6]].mean(axis=0) - y[[11, 12]].mean(axis=0))

    def torso_distances(pose: Pose) -> np.ndarray:
        centre, length = _torso(pose.keypoints[:, :2], stride)
        return np.hypot(centre_x - centre[0], centre_y - centre[1]) / length

    left = np.ones(len(centre_x), bool)
    for pose in poses:
        left &= torso_distances(pose) > settings.vote_radius
    grid_hw = scores.shape[1:]
    candidates = _detached_people(scores, short_offsets, poses, cells, left, stride=stride,
                                  max_people=max_poses - len(poses), settings=settings)
    for candidate in candidates:
        left &= ~candidate.cells[cells]
    while len(poses) + len(candidates) < max_poses and np.count_nonzero(left) >= settings.min_vote_cells:
        seed_x, seed_y = np.median(centre_x[left]), np.median(centre_y[left])
        length = max(float(np.median(torso_lengths[left])), 2.0 * stride)
        member = left & (np.hypot(centre_x - seed_x, centre_y - seed_y) <= settings.vote_radius * length)
        if np.count_nonzero(member) < settings.min_vote_cells:
            break
        left &= ~member
        keypoints = np.empty((len(x), 3), np.float32)
        keypoints[:, 0], keypoints[:, 1] = np.median(x[:, member], axis=1), np.median(y[:, member], axis=1)
        for keypoint, (point_x, point_y) in enumerate(keypoints[:, :2]):
            cell_y, cell_x = _nearest_cell(float(point_x), float(point_y), stride, grid_hw)
            keypoints[keypoint, 2] = scores[keypoint, cell_y, cell_x]
        candidates.append(Pose(keypoints, float(keypoints[:, 2].mean())))
    if not candidates:
        return poses
    everyone = [*poses, *candidates]
    owner = _cell_owners(np.stack([_vote_distances(x, y, pose, settings) for pose in everyone]), cells, everyone)
    own = [_own_keypoint_share(pose, index, owner, stride, settings) for index, pose in enumerate(everyone)]
    added = [pose for pose, share in zip(candidates, own[len(poses):])
             if pose.cells is not None or share >= settings.min_own_keypoints]
    if not added:
        return poses
    kept = [pose for pose, share in zip(poses, own) if share >= settings.min_own_keypoints_decoded]
    return sorted(kept + added, key=lambda pose: -pose.score)


def _detached_people(scores: np.ndarray, short_offsets: np.ndarray, poses: list[Pose], cells: np.ndarray,
                     unexplained: np.ndarray, *, stride: int, max_people: int,
                     settings: MultiPoseSettings) -> list[Pose]:
    """People the decoder missed who stand apart (a body the network reads badly, such as one
    bent far over, often has keypoints too weak for a pose and long offsets pulled towards a
    neighbour): connected groups (8-neighbours) of at least `min_vote_cells` person cells
    (`cells`, h x w bool), all of them `unexplained` (N bool over `cells`) and none holding a
    pose's confident keypoint. Each owns its cells; a keypoint lies at its strongest heatmap
    cell among them (plus that cell's short offset), scored by the heatmap. Strongest first."""
    count, groups = cv2.connectedComponents(cells.view(np.uint8), connectivity=8)
    explained = np.zeros(cells.shape, bool)
    explained[cells] = ~unexplained
    for pose in poses:
        for x, y in pose.keypoints[pose.keypoints[:, 2] > settings.min_keypoint_score, :2]:
            explained[_nearest_cell(float(x), float(y), stride, cells.shape)] = True
    people = []
    for label in range(1, count):
        group = groups == label
        if np.count_nonzero(group) >= settings.min_vote_cells and not (group & explained).any():
            people.append(_pose_on_cells(scores, short_offsets, group, stride))
    return sorted(people, key=lambda pose: -pose.score)[:max_people]


def _pose_on_cells(scores: np.ndarray, short_offsets: np.ndarray, group: np.ndarray, stride: int) -> Pose:
    """A pose owning the `group` cells, each keypoint at its strongest heatmap cell among them."""
    ys, xs = np.nonzero(group)
    strongest = scores[:, ys, xs].argmax(axis=1)
    keypoints = np.array([(*_cell_point(short_offsets, keypoint, int(ys[cell]), int(xs[cell]), stride),
                           scores[keypoint, ys[cell], xs[cell]]) for keypoint, cell in enumerate(strongest)],
                         np.float32)
    return Pose(keypoints, float(keypoints[:, 2].mean()), cells=group)


def _cell_owners(distances: np.ndarray, cells: np.ndarray, poses: list[Pose]) -> np.ndarray:
    """h x w index of the pose each grid cell belongs to: the cells a pose owns outright go to
    it, the other cells in `cells` to the pose nearest their votes (P x N `distances`), every
    other cell to that of the nearest such cell."""
    votes = np.full(cells.shape, -1, np.int32)
    votes.reshape(-1)[np.flatnonzero(cells)] = distances.argmin(axis=0)
    for index, pose in enumerate(poses):
        if pose.cells is not None:
            votes[pose.cells] = index
    return fill_from_nearest(votes)


def give_owned_cells(distances: np.ndarray, poses: list[Pose]) -> None:
    """In place on P x h x w cell-to-pose distances: a pose owning cells outright is nearest on
    them and on the cells around them, and farthest everywhere else; the other poses are
    farthest on its cells."""
    owning = [(index, pose.cells) for index, pose in enumerate(poses) if pose.cells is not None]
    if not owning:
        return
    farthest = np.float32(distances.max() + 1.0)
    ring = np.ones((3, 3), np.uint8)
    for _, cells in owning:
        distances[:, cells] = farthest
    for index, cells in owning:
        distances[index] = np.where(cv2.dilate(cells.view(np.uint8), ring).view(bool), 0.0, farthest)


def _own_keypoint_share(pose: Pose, index: int, owner: np.ndarray, stride: int,
                        settings: MultiPoseSettings) -> float:
    """Share of the pose's confident keypoints that sit on cells belonging to the pose itself."""
    confident = pose.keypoints[pose.keypoints[:, 2] > settings.min_keypoint_score, :2]
    if not len(confident):
        return 0.0
    cells = [_nearest_cell(float(x), float(y), stride, owner.shape) for x, y in confident]
    return float(np.mean([owner[cell] == index for cell in cells]))


def _torso(points: np.ndarray, stride: int) -> tuple[np.ndarray, float]:
    """Centre of shoulders and hips, and the shoulder-to-hip length (at least two cells)."""
    centre = points[list(_TORSO)].mean(axis=0)
    length = float(np.linalg.norm(points[[5, 6]].mean(axis=0) - points[[11, 12]].mean(axis=0)))
    return centre, max(length, 2.0 * stride)


def skeleton_distances(poses: list[Pose], grid_hw: tuple[int, int], *, stride: int,
                       settings: MultiPoseSettings = MultiPoseSettings()) -> np.ndarray:
    """P x h x w: distance (input pixels) from every grid cell to each pose's skeleton, its
    bones and torso drawn between keypoints scoring above `min_keypoint_score`."""
    distances = np.empty((len(poses), *grid_hw), np.float32)
    for i, pose in enumerate(poses):
        confident = pose.keypoints[:, 2] > settings.skeleton_min_score
        points = np.rint(pose.keypoints[:, :2] / stride).astype(np.int32)
        canvas = np.full(grid_hw, 255, np.uint8)
        if confident[list(_TORSO)].all():
            cv2.fillConvexPoly(canvas, points[list(_TORSO)], 0)
        for a, b in COCO_SKELETON:
            if confident[a] and confident[b]:
                cv2.line(canvas, tuple(points[a].tolist()), tuple(points[b].tolist()), 0)
        for point in points[confident]:
            cv2.circle(canvas, tuple(point.tolist()), 0, 0, -1)
        if canvas.all():
            distances[i] = 0.0
            continue
        distances[i] = cv2.distanceTransform(canvas, cv2.DIST_L2, 3) * stride
    return distances
