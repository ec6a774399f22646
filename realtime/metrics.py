"""The JSONL line written for each frame (format: see README, "Output files")."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from realtime.types import ParseResult, PersonParse

if TYPE_CHECKING:
    from realtime.pipeline import FrameResult


def frame_metrics(result: FrameResult) -> dict:
    """The JSONL line for one frame."""
    keypoints = result.parse.keypoints
    return {
        "index": result.frame.index,
        "pts_s": round(result.frame.pts_s, 6),
        "areas": result.parse.part_areas(),
        "keypoints": None if keypoints is None else np.round(keypoints, 2).tolist(),
        "people": [person_metrics(result.parse, person) for person in result.parse.people],
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        "latency_ms": round(result.latency_ms, 2),
        **({"analysis": result.analysis} if result.analysis else {}),
    }


def person_metrics(parse: ParseResult, person: PersonParse) -> dict:
    """One person's entry of the JSONL line: id, score, keypoints, part areas, mask bbox."""
    return {
        "id": person.id,
        "score": round(person.score, 4),
        "keypoints": None if person.keypoints is None else np.round(person.keypoints, 2).tolist(),
        "areas": parse.part_areas(person.mask),
        "bbox": person.bbox(),
    }
