"""Single frames through the engine: a FrameRunner is a Pipeline (realtime.build) that is fed frames
by the caller instead of opening a source, so an uploaded image or a camera frame from the page goes
through the same parser, stages, analysers and renderer as a `process` run; a ParsePool keeps one
runner per set of ParseOptions for /v1/parse, forgetting each frame before the next."""
from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import cv2
import numpy as np

from realtime.analysis.angles import Angle
from realtime.analysis.fitness import person_angles
from realtime.build import build_run, missing_weights
from realtime.config import PipelineConfig, default
from realtime.metrics import frame_metrics
from realtime.models.registry import DEFAULT_MODEL
from realtime.render import FrameRenderer, ViewSettings
from realtime.types import Frame, FrameResult

UPLOAD_SOURCE = "upload"  # the source a FrameRunner's config names: frames come from requests, nothing is opened
T = TypeVar("T")


class ModelUnavailable(ValueError):
    """The model's weights are not on this server (the message is safe to show)."""


def check_available(config: PipelineConfig) -> None:
    """UnknownModelError (a ValueError) for an unknown model name, ModelUnavailable when a model
    `config` runs (realtime.build.model_weights: the parser, the people model, the pose networks,
    the person segmenter) has no weights in the weights cache (missing_weights: the first named)."""
    if missing := missing_weights(config):
        role, name, _ = missing[0]
        raise ModelUnavailable(f"{role} {name} is not available on this server: its weights are not installed")


class FrameRunner:
    """A Pipeline built from `config` (its stages kept at hand) that processes frames handed to it on
    the caller's thread; not thread-safe: one caller at a time. `close` stops it."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.stages, self.pipeline = build_run(config, renderer=FrameRenderer(ViewSettings(show_stats=False)))

    def process(self, rgb: np.ndarray, *, index: int = 0, pts_s: float = 0.0, captured_s: float | None = None,
                decode_ms: float = 0.0) -> FrameResult:
        """H x W x 3 uint8 RGB -> its FrameResult; pts_s: the frame's time in seconds (increasing
        along a stream); captured_s: the monotonic clock when it arrived (latency starts there)."""
        frame = Frame(rgb, index, pts_s, captured_s=time.monotonic() if captured_s is None else captured_s,
                      decode_ms=decode_ms)
        return self.pipeline.process(frame)

    def warm_up(self, shape_hw: tuple[int, int]) -> None:
        """Builds the networks' graphs for frames of `shape_hw` (height, width) on a blank frame
        (Pipeline.warm_up), so the first frames are processed at speed; the next frame is parsed as
        the first one."""
        self.pipeline.warm_up(Frame(np.zeros((*shape_hw, 3), np.uint8), 0, 0.0))

    def reset(self) -> None:
        """Forgets the frames before: the next one is parsed as a still."""
        for step in (*self.stages.result, *self.stages.analysers):
            step.reset()

    def close(self) -> None:
        self.pipeline.stop()


@dataclass(frozen=True)
class ParseOptions:
    """What /v1/parse is asked for: model, max_people, people, person_mask and pose as in
    PipelineConfig (people_size: the server's); angles: "2d" or "3d" joint angles per person, None
    for none."""

    model: str = DEFAULT_MODEL
    max_people: int = default("max_people")
    people: str = default("people")
    people_size: int | None = None
    person_mask: str = default("person_mask")
    pose: str = default("pose")
    angles: str | None = None

    def config(self, device: str, dtype: str) -> PipelineConfig:
        """A still has no past: no temporal smoothing. ValueError for bad options."""
        return PipelineConfig(source=UPLOAD_SOURCE, model=self.model, device=device, dtype=dtype,
                              max_people=self.max_people,
                              people=self.people, people_size=self.people_size, person_mask=self.person_mask,
                              pose=self.pose, angles=self.angles or "2d", smoothing=0.0)


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runner: FrameRunner | None = None
        self.closed = False


class ParsePool:
    """One FrameRunner per ParseOptions, built on first use, at most `capacity` (the least recently
    used is closed), on `device` in `dtype`. Requests with the same options take turns; each
    starts from a reset runner."""

    def __init__(self, device: str = "auto", dtype: str = "fp32", capacity: int = 4) -> None:
        self.device = device
        self.dtype = dtype
        self.capacity = capacity
        self._slots: OrderedDict[ParseOptions, _Slot] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, rgb: np.ndarray, options: ParseOptions, *, decode_ms: float = 0.0,
              captured_s: float | None = None) -> FrameResult:
        """One still through the options' runner. ValueError for bad options, ModelUnavailable,
        WeightsError for damaged weights."""
        def run(runner: FrameRunner) -> FrameResult:
            runner.reset()
            return runner.process(rgb, captured_s=captured_s, decode_ms=decode_ms)

        return self._with_runner(options, run)

    @property
    def loaded(self) -> list[str]:
        with self._lock:
            return sorted({options.model for options, slot in self._slots.items() if slot.runner is not None})

    def close(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), OrderedDict()
        for slot in slots:
            self._close(slot)

    def _with_runner(self, options: ParseOptions, call: Callable[[FrameRunner], T]) -> T:
        config = options.config(self.device, self.dtype)  # bad options fail here, before anything loads
        check_available(config)
        while True:
            slot, evicted = self._slot(options)
            for old in evicted:
                self._close(old)
            with slot.lock:
                if slot.closed:  # evicted while this request waited for it
                    continue
                if slot.runner is None:
                    slot.runner = FrameRunner(config)
                return call(slot.runner)

    def _slot(self, options: ParseOptions) -> tuple[_Slot, list[_Slot]]:
        with self._lock:
            slot = self._slots.get(options)
            if slot is None:
                slot = self._slots[options] = _Slot()
            self._slots.move_to_end(options)
            evicted = []
            while len(self._slots) > self.capacity:
                evicted.append(self._slots.popitem(last=False)[1])
            return slot, evicted

    @staticmethod
    def _close(slot: _Slot) -> None:
        with slot.lock:
            slot.closed = True
            if slot.runner is not None:
                slot.runner.close()
                slot.runner = None


def angle_json(angle: Angle) -> dict[str, Any]:
    return {"deg": None if angle.deg is None else round(angle.deg, 1), "conf": round(angle.conf, 3),
            "source": angle.source, "reason": angle.reason}


def people_angles(result: FrameResult, mode: str) -> dict[str, dict[str, Any]]:
    """Every person's joint angles (analysis.fitness.person_angles) by person id, for the people
    found: a single-person model that lists no people but masks a person gives that person as id 0,
    as the fitness analysis counts it; a frame without a person pixel gives {}."""
    parse, frame = result.parse, result.frame
    people = [(p.id, p.keypoints, p.mask, p) for p in parse.people]
    if not people and parse.person_mask.any():
        people = [(0, None, parse.person_mask, None)]
    return {str(pid): {name: angle_json(angle) for name, angle in
                       person_angles(frame, parse, keypoints, mask, person, mode=mode).items()}
            for pid, keypoints, mask, person in people}


def png_bytes(image: np.ndarray) -> bytes:
    """H x W uint8 (e.g. a label map) or H x W x 3 uint8 RGB -> PNG bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def result_json(result: FrameResult, *, angles: str | None = None, label_map: bool = False) -> dict[str, Any]:
    """The answer for one parsed frame: the model, its "frame" as a --metrics JSONL line
    (realtime.metrics, schema partsight.frame/1), with `angles` ("2d"/"3d") every person's joint
    angles, with `label_map` the class-id map as base64 PNG."""
    out: dict[str, Any] = {"model": result.model, "frame": frame_metrics(result)}
    if angles:
        out["angles"] = people_angles(result, angles)
    if label_map:
        out["label_map"] = {"format": "png", "encoding": "base64",
                            "data": base64.b64encode(png_bytes(result.parse.labels)).decode("ascii")}
    return out


def overlay(result: FrameResult, *, opacity: float, keypoints: bool) -> np.ndarray:
    """The result drawn by the engine's FrameRenderer (parts at `opacity`, optionally the skeleton,
    no speed readout): H x W x 3 uint8 RGB."""
    view = ViewSettings(opacity=opacity, show_keypoints=keypoints, show_stats=False)
    return FrameRenderer(view).render(result)
