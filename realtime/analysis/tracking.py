"""Stable person IDs across frames: the "track" result stage.

Each frame's people are matched to the tracks of earlier frames. A pair is possible when the
reading lies near the track: its place cost, mixing mask overlap (mostly) (1 - IoU with the
track's mask history, a running average, so that one frame where a person's mask breaks up does
not move their ID) and keypoint distance (mean over joints confident in both, divided by the
track's size; mask centroids stand in for models without keypoints), is at most `max_cost`.
Tracks seen in the previous frame take their readings first, then lost ones (as in DeepSORT's
matching cascade: Wojke, Bewley and Paulus, "Simple online and realtime tracking with a deep
association metric", ICIP 2017), each group cheapest first by the place cost mixed with how
unlike the two look (`appearance_weight` of it): the Bhattacharyya distance of colour histograms
of the person's pixels (hue x saturation x value), as in colour-based tracking (Comaniciu,
Ramesh and Meer, "Kernel-based object tracking", TPAMI 2003). A seen track does not take a
reading that a possible lost track looks more like by `reclaim_margin`. A track learns its
colours only while its reading lies apart from every other track's mask history, so when one
person walks across another, the reading of the two together teaches neither the other's
colours; when they part each reading goes back to the ID that looks like it, and a person
hidden behind another for a while gets their ID back from the passer-by's track, which held the
reading of the two (the passer-by used to keep the ID of the person they crossed, who came back
under a new one). The colours only rank and reclaim: a light switched on makes nobody new, and
nobody takes the ID of a person who was somewhere else however alike they look.
A track that finds no match is kept for `keep_lost_s` seconds of presentation time, so a person
who is hidden for a moment or steps out and comes back gets their old ID; unmatched people get
new IDs, never reused. A live source's outage (`Frame.gap`: no frame came) is no time anyone was
seen to be away. With `single_person` (the parser reads at most one person) there is only ever
one ID: whoever is read is that person, however long they were away. Without the frame's pixels
(an image of another size than the result) people are matched on their place alone.

A stray second reading of one body (the parser sometimes splits a partly hidden person in
two): an unmatched reading lying mostly inside the mask history of a person seen in the
previous frame is that person, folded into their reading's mask (or their match if they found
none), for at most `max_stray_frames` frames in a row, so a new person who steps out from
behind someone gets their ID at most that late.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

_MASK_LONG_SIDE = 160  # masks are compared on a subsampled grid about this many pixels long
_HISTOGRAM_BINS = [8, 4, 4]  # hue, saturation, value
_HSV_RANGES = [0, 180, 0, 256, 0, 256]  # OpenCV's 8-bit HSV


@dataclass
class _Track:
    id: int
    mask: np.ndarray  # subsampled float32 mask history in 0..1 (a detection's: its bool mask)
    centroid: np.ndarray  # (x, y) in frame pixels
    keypoints: np.ndarray | None
    scale: float  # frame pixels: the square root of the mask's (history's) area
    last_seen_s: float
    appearance: np.ndarray | None  # the colour histogram (sums to 1); None without the frame's pixels
    strays: int = 0  # consecutive frames in which a stray reading was folded into this person


class PersonTracker(ResultStage):
    """ResultStage that rewrites `parse.people[i].id` to IDs that stay with each person."""

    name = "track"

    def __init__(self, *, keep_lost_s: float = 3.0, max_cost: float = 0.75, min_keypoint_score: float = 0.3,
                 mask_memory: float = 0.7, mask_weight: float = 0.7, max_stray_frames: int = 2,
                 stray_inside: float = 0.6, appearance_weight: float = 0.5, appearance_memory: float = 0.9,
                 apart_overlap: float = 0.1, reclaim_margin: float = 0.3, single_person: bool = False) -> None:
        self.keep_lost_s = keep_lost_s
        self.single_person = single_person
        self.max_cost = max_cost
        self.min_keypoint_score = min_keypoint_score
        self.mask_memory = mask_memory  # weight of the past in a track's mask history
        self.mask_weight = mask_weight  # share of mask overlap (vs keypoint distance) in the cost
        self.max_stray_frames = max_stray_frames
        self.stray_inside = stray_inside  # share of a stray's mask inside a person's history
        self.appearance_weight = appearance_weight  # share of the colour distance in the cost
        self.appearance_memory = appearance_memory  # weight of the past in a track's colour histogram
        self.apart_overlap = apart_overlap  # a reading with more of it inside another track's mask history is not apart
        self.reclaim_margin = reclaim_margin  # how much more alike a lost track must look to take a reading from a seen one
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_pts_s: float | None = None

    def reset(self) -> None:
        self._tracks = []
        self._next_id = 0
        self._last_pts_s = None

    def seek(self, position_s: float) -> None:
        """Playback jumped to `position_s`: every known person counts as lost there (kept for
        `keep_lost_s`), so those found again on the new frames keep their IDs."""
        for track in self._tracks:
            track.last_seen_s = position_s
            track.strays = 0
        self._last_pts_s = None

    def _skip(self, outage_s: float) -> None:
        """Time without frames does not count as anyone's absence: the tracks and the previous
        frame move on by `outage_s` seconds, so the people of the last frame before an outage are
        matched first on the first frame after it, and keep their IDs however long it lasted."""
        for track in self._tracks:
            track.last_seen_s += outage_s
        if self._last_pts_s is not None:
            self._last_pts_s += outage_s

    def merge_people(self, new_id: int, into_id: int) -> None:
        """Person `new_id` is `into_id`: their track takes that ID (and replaces the earlier
        person's lost track); IDs are still never given to anyone else."""
        if any(track.id == new_id for track in self._tracks):
            self._tracks = [track for track in self._tracks if track.id != into_id]
        for track in self._tracks:
            if track.id == new_id:
                track.id = into_id

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        now_s = frame.pts_s
        if frame.gap is not None:  # a live source's outage: nobody was seen leaving while no frame came
            self._skip(frame.gap.to_pts_s - frame.gap.from_pts_s)
        if not self.single_person:
            self._tracks = [t for t in self._tracks if abs(now_s - t.last_seen_s) <= self.keep_lost_s]
        step = max(1, round(max(parse.labels.shape) / _MASK_LONG_SIDE))
        hsv = None
        if frame.image.shape[:2] == parse.labels.shape:
            hsv = cv2.cvtColor(np.ascontiguousarray(frame.image[::step, ::step]), cv2.COLOR_RGB2HSV)
        detections = [self._describe(person, step, now_s, hsv) for person in parse.people]
        active = [i for i, t in enumerate(self._tracks) if t.last_seen_s == self._last_pts_s]
        pairs = self._match(detections, active, with_colours=hsv is not None)
        if self.single_person and self._tracks and detections and not pairs:
            pairs = {0: 0}  # the one person, back after any absence or change of look
        masks = [person.mask for person in parse.people]
        folded = self._fold_strays(detections, active, pairs, masks)
        self._last_pts_s = now_s
        before = list(self._tracks)
        people = []
        for index, person in enumerate(parse.people):
            if index in folded:
                continue
            detection = detections[index]
            if masks[index] is not person.mask:  # a stray was folded into it
                person = replace(person, mask=masks[index])
                detection = self._describe(person, step, now_s, hsv)
            track_index = pairs.get(index)
            if track_index is None:
                detection.id = self._next_id
                self._next_id += 1
                self._tracks.append(detection)
            else:
                track = self._tracks[track_index]
                detection.id = track.id
                detection.strays = track.strays + 1 if track_index in folded.values() else 0
                detection.appearance = self._learnt_look(track, detection, [t for t in before if t is not track])
                if track.mask.shape == detection.mask.shape:
                    detection.mask = self.mask_memory * track.mask + (1 - self.mask_memory) * detection.mask
                    detection.scale = max(float(np.sqrt(detection.mask.sum())) * step, 1.0)
                self._tracks[track_index] = detection
            people.append(replace(person, id=detection.id))
        return replace(parse, people=people)

    def _fold_strays(self, detections: list[_Track], active: list[int], pairs: dict[int, int],
                     masks: list[np.ndarray]) -> dict[int, int]:
        """Unmatched readings lying mostly inside the history of a person seen in the previous
        frame: paired with that person if they found no reading (added to `pairs`), else folded
        into their reading's mask (in `masks`). Returns folded detection index -> track index."""
        folded: dict[int, int] = {}
        detection_of = {track: detection for detection, track in pairs.items()}
        for index, detection in enumerate(detections):
            if index in pairs:
                continue
            area = max(float(detection.mask.sum()), 1.0)
            inside = [(float((track.mask * detection.mask).sum()) / area, t) for t in active
                      if (track := self._tracks[t]).mask.shape == detection.mask.shape
                      and track.strays < self.max_stray_frames]
            share, track_index = max(inside, default=(0.0, -1))
            if share < self.stray_inside:
                continue
            if track_index in detection_of:
                target = detection_of[track_index]
                masks[target] = masks[target] | masks[index]
                folded[index] = track_index
            else:
                pairs[index] = detection_of[track_index] = track_index
        return folded

    def _learnt_look(self, track: _Track, detection: _Track, others: list[_Track]) -> np.ndarray | None:
        """The track's colour histogram after its reading `detection`: a running average of the
        readings that lay apart from the `others` (at most `apart_overlap` of the reading inside
        any other track's mask history, lost ones included: a passer-by over a hidden person's
        place is not apart), the track's own otherwise."""
        if detection.appearance is None or track.appearance is None:
            return detection.appearance if track.appearance is None else track.appearance
        area = max(float(detection.mask.sum()), 1.0)
        if any(other.mask.shape == detection.mask.shape
               and float((other.mask * detection.mask).sum()) > self.apart_overlap * area for other in others):
            return track.appearance
        return self.appearance_memory * track.appearance + (1 - self.appearance_memory) * detection.appearance

    def _describe(self, person: PersonParse, step: int, now_s: float, hsv: np.ndarray | None) -> _Track:
        """The reading as a track: `hsv` is the frame subsampled by `step` in OpenCV's HSV (None:
        no colours)."""
        mask = person.mask[::step, ::step]
        ys, xs = np.nonzero(mask)
        centroid = (np.array([xs.mean(), ys.mean()]) * step) if len(ys) else np.zeros(2)
        appearance = None
        if hsv is not None and len(ys):
            histogram = cv2.calcHist([hsv], [0, 1, 2], mask.astype(np.uint8), _HISTOGRAM_BINS, _HSV_RANGES)
            appearance = histogram / float(histogram.sum())
        return _Track(id=-1, mask=mask.astype(np.float32), centroid=centroid, keypoints=person.keypoints,
                      scale=max(float(np.sqrt(len(ys))) * step, 1.0), last_seen_s=now_s, appearance=appearance)

    def _match(self, detections: list[_Track], active: list[int], *, with_colours: bool) -> dict[int, int]:
        """Detection index -> track index among the pairs whose place cost is at most `max_cost`:
        the `active` tracks (seen in the previous frame) first, then the lost ones, each cheapest
        first by the place cost mixed with the colour distance (`with_colours`; a reading or track
        without a histogram counts as unlike), else by the place cost. An active track does not
        take a reading that a lost track could take and looks more like by `reclaim_margin`."""
        if not detections or not self._tracks:
            return {}
        places = np.array([[self._place_cost(track, detection) for detection in detections] for track in self._tracks])
        possible = places <= self.max_cost
        costs = places
        if with_colours:
            colours = np.array([[self._colour_distance(track, detection) for detection in detections]
                                for track in self._tracks])
            costs = (1 - self.appearance_weight) * places + self.appearance_weight * colours
            lost = np.ones(len(self._tracks), bool)
            lost[active] = False
            likest_lost = np.where(possible & lost[:, None], colours, np.inf).min(axis=0)
            possible[active] &= colours[active] < likest_lost + self.reclaim_margin
        pairs: dict[int, int] = {}
        for group in (active, [t for t in range(len(self._tracks)) if t not in active]):
            used: set[int] = set()
            for flat in np.argsort(costs[group], axis=None, kind="stable"):
                row, detection = divmod(int(flat), len(detections))
                track = group[row]
                if possible[track, detection] and track not in used and detection not in pairs:
                    pairs[detection] = track
                    used.add(track)
        return pairs

    def _place_cost(self, track: _Track, detection: _Track) -> float:
        """0 (the same place) .. 1: mask overlap mixed with keypoint distance."""
        overlap = 0.0
        if track.mask.shape == detection.mask.shape:
            union = float(np.maximum(track.mask, detection.mask).sum())
            overlap = float(np.minimum(track.mask, detection.mask).sum()) / max(union, 1.0)
        return self.mask_weight * (1.0 - overlap) + (1 - self.mask_weight) * min(self._distance(track, detection), 1.0)

    @staticmethod
    def _colour_distance(track: _Track, detection: _Track) -> float:
        """The Bhattacharyya distance of the two colour histograms, 0 (alike) .. 1 (also when
        either has none)."""
        if track.appearance is None or detection.appearance is None:
            return 1.0
        return cv2.compareHist(track.appearance, detection.appearance, cv2.HISTCMP_BHATTACHARYYA)

    def _distance(self, track: _Track, detection: _Track) -> float:
        """Mean joint (or centroid) distance in units of the track's size."""
        if track.keypoints is not None and detection.keypoints is not None:
            both = ((track.keypoints[:, 2] >= self.min_keypoint_score)
                    & (detection.keypoints[:, 2] >= self.min_keypoint_score))
            if both.any():
                gaps = np.linalg.norm(track.keypoints[both, :2] - detection.keypoints[both, :2], axis=1)
                return float(gaps.mean() / track.scale)
        return float(np.linalg.norm(track.centroid - detection.centroid) / track.scale)


class MergeOffers:
    """Which person IDs of one source to offer to merge: a person the tracker lost for longer
    than it keeps a track comes back with a new ID, and only the user can say it is the same
    person. Two IDs ever in one frame together are two people; so the offer is the newest ID in
    frame against the earlier IDs it never shared a frame with and that are not in frame now
    (most recent first). A `declined` ID (someone new) is not offered again, and a merged one
    is gone, also from the frames taken before the merge that still carry it."""

    def __init__(self) -> None:
        self._seen: list[int] = []  # IDs in the order they first appeared
        self._met: dict[int, set[int]] = {}  # each ID: the IDs it shared a frame with
        self._declined: set[int] = set()
        self._merged: set[int] = set()

    def update(self, in_frame: set[int]) -> tuple[int, list[int]] | None:
        """Notes the IDs in this frame; the offer (new ID, earlier IDs it may be) or None."""
        self._seen += [i for i in sorted(in_frame) if i not in self._seen and i not in self._merged]
        for i in in_frame:
            self._met.setdefault(i, set()).update(in_frame)
        for new in reversed([i for i in self._seen if i in in_frame and i not in self._declined]):
            earlier = [i for i in self._seen[: self._seen.index(new)] if i not in in_frame and i not in self._met[new]]
            if earlier:
                return new, earlier[::-1]
        return None

    def merged(self, new_id: int) -> None:
        """`new_id` now counts as an earlier person: it is neither offered again nor offered as
        the one a newer ID may be."""
        self._merged.add(new_id)
        self._seen = [i for i in self._seen if i != new_id]

    def decline(self, new_id: int) -> None:
        """The user said `new_id` is someone new."""
        self._declined.add(new_id)
