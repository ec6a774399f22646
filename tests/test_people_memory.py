"""The smoother's people memory on its own (realtime.people_memory): who owns each smoothed
person pixel when readings come and go. The clips' cases are in test_multiperson.py; here the
one case no shared clip shows reliably, on plain masks."""
from __future__ import annotations

import numpy as np
import pytest

from realtime.people_memory import PeopleMemory
from realtime.types import PersonParse

FRAME_HW = (121, 241)
FINE_HW = (31, 61)  # fine cells on frame pixels i * 4 (corner-aligned)


def _block(x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(FRAME_HW, bool)
    mask[30:100, x0:x1] = True
    return mask


def _step(memory: PeopleMemory, readings: list[PersonParse], time_s: float) -> dict[int, np.ndarray]:
    person = np.logical_or.reduce([reading.mask for reading in readings])
    person_fine = person[::4, ::4]
    still = np.meshgrid(np.arange(FINE_HW[1], dtype=np.float32), np.arange(FINE_HW[0], dtype=np.float32))
    return {one.id: one.mask for one in memory(readings, person, person_fine, tuple(still), time_s)}


@pytest.mark.parametrize("touching", [False, True])
def test_a_new_persons_first_pixels_do_not_make_them_someone_else(touching):
    """A new reading's first frame goes to the person whose pixels it touches, or to nobody when
    it is apart from everyone (a single-frame misreading must not become a person, nor be added
    to someone far away); when the one person there then leaves and the new one is read again
    at the same place, the new one is a person of their own, not the one who left (in sports2d
    the man landing at the right took the ID of the woman walking out at the left)."""
    memory = PeopleMemory()
    left, right = _block(10, 60), _block(60, 110) if touching else _block(150, 200)
    for index in range(4):
        assert set(_step(memory, [PersonParse(2, left, None, 0.9)], index / 30)) == {2}
    first = _step(memory, [PersonParse(2, left, None, 0.9), PersonParse(7, right, None, 0.9)], 4 / 30)
    assert set(first) == {2} and (first[2][right].all() if touching else not first[2][right].any())
    after = _step(memory, [PersonParse(7, right, None, 0.9)], 5 / 30)
    assert 2 not in after or not after[2][right].any()
    assert 7 in after and after[7][right].all()
