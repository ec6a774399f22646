"""The JSONL line written for each frame (format: see README, "Output files", and the JSON Schemas
in realtime/schemas/, whose paths `schema_path` gives)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.types import FrameResult, ParseResult, PersonParse, Placement

# The "schema" value of each format; a breaking change bumps the number after the slash.
FRAME_SCHEMA = "partsight.frame/1"
SUMMARY_SCHEMA = "partsight.summary/1"
SCHEMAS = ("frame", "summary")


def schema_path(name: str) -> Path:
    """The JSON Schema file (draft 2020-12) of a format: "frame" (a JSONL line: a frame or a gap
    event) or "summary" (the --summary JSON)."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; choose from {', '.join(SCHEMAS)}")
    return Path(__file__).with_name("schemas") / f"{name}.schema.json"


def frame_metrics(result: FrameResult, *, pts_s: float | None = None) -> dict:
    """The JSONL line for one frame; coordinates in the frame's own displayed pixels
    (`frame_size`), areas in the parsed image's pixels; `pts_s` is the frame's time in the
    recording (None: its own time)."""
    frame = result.frame
    keypoints = result.parse.keypoints
    own_size = frame.own_size or frame.size
    return {
        "schema": FRAME_SCHEMA,
        "index": frame.index,
        "pts_s": round(frame.pts_s if pts_s is None else pts_s, 6),
        "frame_size": list(own_size),
        "areas": result.parse.part_areas(),
        "keypoints": _own_keypoints(frame.placement, keypoints),
        "people": [person_metrics(result.parse, person, frame.placement, own_size)
                   for person in result.parse.people],
        "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        "latency_ms": round(result.latency_ms, 2),
        **({"analysis": result.analysis} if result.analysis else {}),
    }


def person_metrics(parse: ParseResult, person: PersonParse, placement: Placement = Placement(),
                   own_size: tuple[int, int] | None = None) -> dict:
    """One person's entry of the JSONL line: id, score, keypoints, mask bbox (inside the frame's
    own `own_size`, default the parsed image's) and BlazePose's 33 landmarks (in the frame's own
    pixels, through `placement`; a joint the model places beyond the frame's edge keeps its
    coordinates there), part areas, and world landmarks in metres (landmarks null when the pose
    source gives none)."""
    box = person.bbox()
    return {
        "id": person.id,
        "score": round(person.score, 4),
        "keypoints": _own_keypoints(placement, person.keypoints),
        "areas": {} if box is None else parse.part_areas(person.mask, box),
        "bbox": None if box is None else placement.box_to_own(box, own_size or parse.size),
        "landmarks": None if person.landmarks is None else _rounded(placement.to_own(person.landmarks), 3),
        "world_landmarks": None if person.world_landmarks is None else _rounded(person.world_landmarks, 4),
    }


def _own_keypoints(placement: Placement, keypoints: np.ndarray | None) -> list | None:
    return None if keypoints is None else _rounded(placement.to_own(keypoints), 2)


def _rounded(values: np.ndarray, decimals: int) -> list:
    """`values` rounded to `decimals` as nested lists of floats, rounded in float64: a float32
    rounded to 63.95 is 63.95000076293945 once JSON writes it."""
    return np.round(np.asarray(values, np.float64), decimals).tolist()
