"""How usable a pose source's keypoints are for joint angles, measured on a clip.

Per joint, from the keypoints alone (no part fallback, no smoothing):
- known: share of frames whose three keypoints all reach `min_score`;
- jitter_deg: median |angle change| between consecutive frames where both are known;
- jumps: share of those changes above `jump_deg` (at video frame rates a real joint does not
  turn that far in one frame, so these are decoding errors).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from realtime.analysis.angles import JOINTS, joint_angles


def pose_quality(keypoint_frames: list[np.ndarray | None], *, min_score: float = 0.3,
                 jump_deg: float = 30.0) -> dict[str, Any]:
    """keypoint_frames: one 17 x 3 array (or None) per consecutive frame."""
    series = {name: [] for name in JOINTS}
    for keypoints in keypoint_frames:
        angles = joint_angles(keypoints, None, (), min_score=min_score)
        for name, angle in angles.items():
            series[name].append(math.nan if angle.deg is None else angle.deg)
    joints = {}
    for name, values in series.items():
        degs = np.array(values)
        steps = np.abs(np.diff(degs))
        steps = steps[~np.isnan(steps)]
        joints[name] = {
            "known": round(float(np.mean(~np.isnan(degs))), 3) if len(degs) else 0.0,
            "jitter_deg": round(float(np.median(steps)), 2) if len(steps) else None,
            "jumps": round(float(np.mean(steps > jump_deg)), 3) if len(steps) else None,
        }
    known = [j["known"] for j in joints.values()]
    jumps = [j["jumps"] for j in joints.values() if j["jumps"] is not None]
    return {"frames": len(keypoint_frames), "min_score": min_score, "jump_deg": jump_deg,
            "mean_known": round(float(np.mean(known)), 3),
            "mean_jumps": round(float(np.mean(jumps)), 3) if jumps else None, "joints": joints}
