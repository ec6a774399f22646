"""Several people from a second, instance-level model (`--people mask2former-r50-panoptic`, or
`m2fp-cihp`, `bodypix`): a ResultStage before the pose stages and the tracker that runs that model on the
frame and splits the part parser's person pixels among its person instances, which then become
the result's people (the tracker gives them stable IDs, the pose stages their keypoints).

Any part parser gains several people this way, single-person ones included (SCHP, M2FP-LIP,
single-person BodyPix): their labels cover everyone in the frame, only the split is missing.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from realtime.imaging import fill_from_nearest
from realtime.models.common import Parser
from realtime.models.registry import MODEL_SPECS
from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

# the models that report each person's own mask (BodyPix does when asked for more than one person)
PEOPLE_SOURCES = ("parser", *(name for name, spec in MODEL_SPECS.items() if spec.multi_person or spec.family == "bodypix"))


def split_among_instances(parse: ParseResult, instances: list[PersonParse]) -> list[PersonParse]:
    """The parser's person pixels split among `instances` (H x W masks, strongest first): a pixel
    inside an instance's mask is that instance's (the strongest one's where masks overlap), any
    other person pixel goes to the instance whose mask is nearest. One person per instance that
    receives pixels, with the instance's score. Each of the parser's people hands its keypoints
    and landmarks to the new person holding most of its keypoints (most of its pixels when it has
    none), at most one parser person per new person."""
    if not instances:
        return []
    owner = np.full(parse.person_mask.shape, -1, np.int32)
    for index in reversed(range(len(instances))):
        owner[instances[index].mask] = index
    nearest = fill_from_nearest(owner)
    people = []
    for index, instance in enumerate(instances):
        mask = parse.person_mask & (nearest == index)
        if mask.any():
            people.append(PersonParse(id=len(people), mask=mask, keypoints=None, score=instance.score))
    return _with_poses(people, parse.people)


def _with_poses(people: list[PersonParse], parsed: list[PersonParse]) -> list[PersonParse]:
    taken: set[int] = set()
    for source in sorted(parsed, key=lambda p: -p.score):
        holds = [(-1 if i in taken else _held(person.mask, source), i) for i, person in enumerate(people)]
        amount, index = max(holds, default=(0, -1))
        if amount > 0:
            taken.add(index)
            people[index] = replace(people[index], keypoints=source.keypoints, landmarks=source.landmarks,
                                    world_landmarks=source.world_landmarks)
    return people


def _held(mask: np.ndarray, source: PersonParse) -> int:
    """How many of `source`'s keypoints lie in `mask` (its pixels in `mask` when it has none)."""
    if source.keypoints is None:
        return int((mask & source.mask).sum())
    height, width = mask.shape
    xs, ys = np.round(source.keypoints[:, 0]).astype(int), np.round(source.keypoints[:, 1]).astype(int)
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    return int(mask[ys[inside], xs[inside]].sum())


class InstancePeopleStage(ResultStage):
    """ResultStage: `parser` (a model reporting people with their own masks) runs on each frame and
    its people split the part parser's person pixels (`split_among_instances`)."""

    name = "people"

    def __init__(self, parser: Parser) -> None:
        self.parser = parser

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        instances = self.parser.parse(np.ascontiguousarray(frame.image)).people
        return replace(parse, people=split_among_instances(parse, instances))

    def reset(self) -> None:
        """The instance model keeps nothing between frames."""

    def close(self) -> None:
        """Nothing to release (the network is freed with the stage)."""
