"""The stages between the parser and the analysers, in the one order they must run: pose
keypoints and a sharper person mask from second models (BlazePose, the selfie segmenter) ->
person tracking (stable IDs) -> temporal smoothing (its per-person keypoint filters are keyed by
the tracker's IDs)."""
from __future__ import annotations

from collections.abc import Sequence

from realtime.analysis.tracking import PersonTracker
from realtime.pipeline import ResultStage
from realtime.smoothing import TemporalSmoother


def result_stages(*, pose: Sequence[ResultStage] = (), smoothing: float = 0.0,
                  person_mask: Sequence[ResultStage] = ()) -> list[ResultStage]:
    """Fresh tracker and smoother (strength 0 leaves the smoother out) after the given pose and
    person-mask stages."""
    stages: list[ResultStage] = [*pose, *person_mask, PersonTracker()]
    if smoothing > 0:
        stages.append(TemporalSmoother(smoothing))
    return stages
