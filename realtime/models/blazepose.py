"""Optional BlazePose keypoints (MediaPipe Pose, bundled in the mediapipe 0.10.14 wheel, no
download) as a ResultStage: it replaces the parser's keypoints, the parts still come from the parser.

BodyPix's keypoints lose the elbows and knees whenever the body is small or lying down (a
push-up's bottom); BlazePose tracks them there. The test reference of the PyTorch BlazePose
(models/blazepose_torch.py): the `mediapipe` extra pins protobuf 4 and replaces opencv-python, so
it lives in a venv of its own (`make test-mediapipe`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np

from realtime.stages import ResultStage
from realtime.types import Frame, ParseResult, PersonParse

# BlazePose's 33 landmarks at the COCO-17 keypoints, in COCO order.
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
POSE_SOURCES = ("auto", "parser", "blazepose", "blazepose-torch")  # -torch: realtime.models.blazepose_torch


MEDIAPIPE_NEEDED = ("--pose blazepose needs the mediapipe wheel, which runs only in a venv of its own "
                    "(make test-mediapipe builds one; --pose auto needs none)")


def blazepose_available() -> bool:
    return importlib.util.find_spec("mediapipe") is not None


def available_pose_sources() -> tuple[str, ...]:
    """POSE_SOURCES that run here ("blazepose" only where the mediapipe wheel is installed)."""
    return tuple(source for source in POSE_SOURCES if source != "blazepose" or blazepose_available())


class BlazePoseStage(ResultStage):
    """Runs MediaPipe Pose on each frame and gives its landmarks (visibility as the score) to the
    person whose mask holds most of them; a parse with a person mask but no people gets one
    person (id 0) holding them. A frame where BlazePose finds nobody keeps the parser's keypoints."""

    name = "blazepose"

    def __init__(self, *, model_complexity: int = 1, min_confidence: float = 0.5) -> None:
        try:
            from mediapipe.python.solutions.pose import Pose
        except ImportError as exc:
            raise RuntimeError(f"{MEDIAPIPE_NEEDED}: {exc}") from None
        self._make = lambda: Pose(static_image_mode=False, model_complexity=model_complexity,
                                  smooth_landmarks=True, min_detection_confidence=min_confidence,
                                  min_tracking_confidence=min_confidence)
        self._pose = self._make()

    def __call__(self, frame: Frame, parse: ParseResult) -> ParseResult:
        found = self._pose.process(np.ascontiguousarray(frame.image)).pose_landmarks
        if found is None:
            return parse
        h, w = frame.image.shape[:2]
        landmarks = found.landmark
        keypoints = np.array([[landmarks[i].x * w, landmarks[i].y * h, landmarks[i].visibility]
                              for i in BLAZEPOSE_TO_COCO], dtype=np.float32)
        if not parse.people:
            if not parse.person_mask.any():
                return parse
            score = float(keypoints[:, 2].mean())
            return replace(parse, people=[PersonParse(0, parse.person_mask, keypoints, score)])
        owner = max(parse.people, key=lambda p: _points_inside(p.mask, keypoints))
        return replace(parse, people=[replace(p, keypoints=keypoints) if p is owner else p for p in parse.people])

    def reset(self) -> None:
        """Drops the landmark tracking of the previous source."""
        self._pose.close()
        self._pose = self._make()

    def close(self) -> None:
        self._pose.close()


def _points_inside(mask: np.ndarray, keypoints: np.ndarray) -> int:
    h, w = mask.shape
    xy = np.round(keypoints[:, :2]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return int(mask[xy[inside, 1], xy[inside, 0]].sum())
