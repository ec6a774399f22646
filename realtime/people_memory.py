"""Who owns each smoothed person pixel: the temporal smoother's memory of people.

The smoother's person mask is a blend of past and present, so the parser's per-person masks do
not cover it; this memory gives every smoothed person pixel to exactly one person. It keeps an
owner map (person IDs, -1 for nobody) on the smoother's fine grid, carried from frame to frame
with the smoother's optical flow, and each frame:
  1. a person the parser reads whole (their reading covers at least `kept_share` of the cells
     they owned, carried onto this frame) owns their reading, and their carried cells where no
     one was read;
  2. a person who is missing from this frame's readings, or whose reading shrank below that
     share, keeps all the carried cells that are still person, even where the parser gave them
     to someone else (a person behind another is often missed or read as a piece, and their
     visible pixels land in the front person's mask), for at most `coast_s` after they were
     last read, whole or as a piece (and only if read whole on two frames at least): they
     "coast". A missing one is reported with their last keypoints at score 0;
  3. a new ID whose reading (where the smoothed mask is person) lies mostly in one person's
     carried cells is that person: a coasting person read again after the tracker lost them
     (it takes their ID from then on), or a stray second reading of someone read now (folded
     into them, for at most `max_folds` frames in a row, so a new person stepping out from
     behind someone is delayed that long at most);
  4. any other new ID counts from its second frame in a row on (its first frame's pixels go to
     the others on that frame, but the memory keeps them unowned, so the second frame's reading
     is not taken for the person they went to), so a single-frame misreading never becomes a
     person;
  5. person cells still without an owner go to the nearest owned cell of their blob (8-connected
     person cells, pieces closer than 2 * APART_SHARE of the frame's longer side joined); a blob
     without one (someone walking in, not yet proven a person) is nobody's.
Pixels keep the parser's exact boundaries wherever its reading was kept.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from realtime.imaging import fill_from_nearest, resample_corner_aligned, sample_at, touching
from realtime.types import PersonParse

_NOBODY = -1
_APART = -2  # a cell of a blob apart from every owner, while filling
APART_SHARE = 0.02  # pieces of the person mask further than twice this share of the frame from everyone are nobody's


class PeopleMemory:
    """State: the owner map, when each person was last read (whole, and at all), their last
    output, and the IDs taken over by coasting people."""

    def __init__(self, *, coast_s: float = 0.4, kept_share: float = 0.75, alias_share: float = 0.5,
                 max_folds: int = 2) -> None:
        self.coast_s = coast_s
        self.kept_share = kept_share
        self.alias_share = alias_share  # share of a new reading inside someone's carried cells
        self.max_folds = max_folds
        self.reset()

    def reset(self) -> None:
        self._owner: np.ndarray | None = None  # fh x fw int32 person IDs on the fine grid
        self._whole_s: dict[int, float] = {}
        self._read_s: dict[int, float] = {}
        self._last: dict[int, PersonParse] = {}
        self._aliases: dict[int, int] = {}
        self._first_s: dict[int, float] = {}  # when each person was first read (IDs are never reused)
        self._folds: dict[int, int] = {}  # new IDs folded into someone: frames in a row
        self._pending: set[int] = set()  # new IDs read on the previous frame only

    def merge(self, new_id: int, into_id: int) -> None:
        """Person `new_id` is `into_id` from now on: their cells, times and last reading become
        that person's (the earlier person's are dropped)."""
        if self._owner is not None:
            self._owner[self._owner == into_id] = _NOBODY
            self._owner[self._owner == new_id] = into_id
        for times in (self._whole_s, self._read_s, self._first_s):
            if new_id in times:
                first = times.pop(new_id)
                times[into_id] = min(first, times[into_id]) if times is self._first_s and into_id in times else first
        if new_id in self._last:
            self._last[into_id] = replace(self._last.pop(new_id), id=into_id)
        self._aliases = {reading: into_id if person == new_id else person for reading, person in self._aliases.items()}
        self._folds.pop(new_id, None)
        self._pending.discard(new_id)

    def __call__(self, people: list[PersonParse], person: np.ndarray, person_fine: np.ndarray,
                 flow_from: tuple[np.ndarray, np.ndarray] | None, now_s: float) -> list[PersonParse]:
        """people: this frame's readings (tracker IDs, frame-size masks); person: the smoothed
        H x W bool person mask; person_fine: the same on the fine grid (fh x fw bool, cells on
        frame pixels i * (H - 1) / (fh - 1)); flow_from: fh x fw float32 fine-grid (x, y) each
        cell came from in the previous frame, or None where the memory cannot be carried over.
        Returns the people with masks that split `person` between them (but for its blobs apart
        from every person, step 5)."""
        frame_hw, fine_hw = person.shape, person_fine.shape
        sample = np.ix_(_fine_positions(fine_hw[0], frame_hw[0]), _fine_positions(fine_hw[1], frame_hw[1]))
        past = None
        if flow_from is not None and self._owner is not None and self._owner.shape == fine_hw:
            past = sample_at(self._owner.astype(np.float32), *flow_from, cv2.INTER_NEAREST,
                             border_value=_NOBODY).astype(np.int32)
            past[~person_fine] = _NOBODY
        readings, unproven = self._merged_readings(people, sample, past, person_fine, now_s)
        read = np.full(fine_hw, _NOBODY, np.int32)
        for person_id, reading in readings.items():
            read[reading.mask[sample]] = person_id
        owner, coasting = self._owners(readings, read, past, now_s)
        ids = sorted(set(readings) | set(coasting))
        if not ids:
            self._owner = None
            return []
        # blobs apart from every owner are nobody's, also the cells next to them (frame pixels at
        # the blob's edge take their nearest cell)
        apart = person_fine & ~touching(person_fine, owner != _NOBODY, apart_reach(fine_hw))
        filled = fill_from_nearest(np.where(apart, _APART, owner), _NOBODY)
        filled[filled == _APART] = _NOBODY
        self._owner = np.where(person_fine & ~unproven, filled, _NOBODY)
        positions = np.where(filled == _NOBODY, -1, np.searchsorted(ids, filled)).astype(np.int16)
        owner_full = resample_corner_aligned(positions, frame_hw, cv2.INTER_NEAREST)
        overruled = owner != read  # cells the memory decided, not the reading
        kept = None
        if overruled.any():
            kept = ~resample_corner_aligned(overruled.view(np.uint8), frame_hw, cv2.INTER_NEAREST).view(bool)
        for person_id, reading in readings.items():  # the parser's own boundaries where it was kept
            np.copyto(owner_full, ids.index(person_id), where=reading.mask if kept is None else reading.mask & kept)
        np.copyto(owner_full, -1, where=~person)
        result = []
        for position, person_id in enumerate(ids):
            mask = owner_full == position
            if not mask.any():
                continue
            if person_id in readings:
                result.append(replace(readings[person_id], mask=mask))
            elif person_id in self._last:
                last = self._last[person_id]
                keypoints = None if last.keypoints is None else last.keypoints * np.array([1, 1, 0], np.float32)
                result.append(PersonParse(person_id, mask, keypoints, last.score))
        self._last = {p.id: p for p in result if p.id in readings} | {
            i: p for i, p in self._last.items() if i in coasting}
        self._read_s = {i: t for i, t in self._read_s.items() if now_s - t <= self.coast_s}
        self._read_s.update(dict.fromkeys(readings, now_s))
        self._whole_s = {i: t for i, t in self._whole_s.items() if i in self._read_s}
        return result

    def _owners(self, readings: dict[int, PersonParse], read: np.ndarray, past: np.ndarray | None,
                now_s: float) -> tuple[np.ndarray, list[int]]:
        """The fine owner map before filling (steps 1 and 2), and the IDs coasting."""
        owner = read.copy()
        coasting: list[int] = []
        carried_ids = set() if past is None else set(np.unique(past[past >= 0]).tolist())
        for person_id in carried_ids | set(readings):
            carried = past == person_id if person_id in carried_ids else None
            if carried is None or (person_id in readings
                                   and (read == person_id).sum() >= self.kept_share * carried.sum()):
                self._whole_s[person_id] = now_s
                if carried is not None:
                    owner[carried & (read == _NOBODY)] = person_id
            elif self._coasts(person_id, now_s):
                owner[carried] = person_id
                coasting.append(person_id)
        return owner, coasting

    def _coasts(self, person_id: int, now_s: float) -> bool:
        """Whether a person read whole on at least two frames, and read at all within `coast_s`,
        may coast."""
        whole_s = self._whole_s.get(person_id)
        read_s = self._read_s.get(person_id, whole_s)
        return whole_s is not None and whole_s > self._first_s[person_id] and now_s - read_s <= self.coast_s

    def _merged_readings(self, people: list[PersonParse], sample: tuple, past: np.ndarray | None,
                         person_fine: np.ndarray, now_s: float) -> tuple[dict[int, PersonParse], np.ndarray]:
        """This frame's readings by person ID: aliases applied (new ones taken where a new ID
        lies in someone's carried cells), readings sharing an ID merged; and the fine cells of
        the new IDs read for the first time (fh x fw bool), which are left out."""
        present = {self._aliases.get(p.id, p.id) for p in people}
        readings: dict[int, PersonParse] = {}
        folds: dict[int, int] = {}
        pending: set[int] = set()
        unproven = np.zeros(person_fine.shape, bool)
        for reading in people:
            person_id = self._aliases.get(reading.id, reading.id)
            if past is not None and person_id not in self._first_s:
                cells = reading.mask[sample] & person_fine
                carried = past[cells]
                carried = carried[carried >= 0]
                candidate = int(np.bincount(carried).argmax()) if len(carried) else _NOBODY
                if candidate != _NOBODY and (carried == candidate).sum() >= self.alias_share * cells.sum():
                    if candidate not in present and self._coasts(candidate, now_s):
                        self._aliases[reading.id] = person_id = candidate
                    elif candidate in present and self._folds.get(person_id, 0) < self.max_folds:
                        folds[person_id] = self._folds.get(person_id, 0) + 1
                        person_id = candidate
                if person_id not in self._first_s and person_id not in self._pending:
                    pending.add(person_id)
                    unproven |= cells
                    continue
            if person_id in readings:
                first = readings[person_id]
                strongest = first if first.score >= reading.score else reading
                readings[person_id] = replace(strongest, id=person_id, mask=first.mask | reading.mask)
            else:
                readings[person_id] = replace(reading, id=person_id)
        self._folds, self._pending = folds, pending
        for person_id in readings:
            self._first_s.setdefault(person_id, now_s)
        return readings, unproven


def apart_reach(hw: tuple[int, int]) -> int:
    """How near (cells of an h x w map) a piece of the person mask must come to a person to be
    theirs: APART_SHARE of the map's longer side."""
    return max(1, round(APART_SHARE * max(hw)))


def _fine_positions(cells: int, pixels: int) -> np.ndarray:
    """Frame pixel index of each fine cell along one axis (corner-aligned)."""
    return np.rint(np.arange(cells) * ((pixels - 1) / max(cells - 1, 1))).astype(np.intp)
