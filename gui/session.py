"""The window's hold on the engine: one Pipeline at a time, its source opened off the UI thread.

No Qt here. A Pipeline needs a source that opens before its worker runs, so the session builds
one the first time a source opens; once it runs, new sources and models go to it as commands.
If a start fails (no webcam, bad file, missing weights) the session keeps no pipeline, keeps the
error, and the next `open` builds a fresh one with the same view settings.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from realtime.analysis.exercises import get_exercise
from realtime.analysis.fitness import FitnessAnalyser
from realtime.models.blazepose import pose_stages
from realtime.models.labels import LabelSet
from realtime.models.registry import get_spec
from realtime.models.selfie_mask import person_mask_stages
from realtime.pipeline import Pipeline
from realtime.smoothing import DEFAULT_STRENGTH
from realtime.sources import redact_url
from realtime.stages import result_stages


class Session:
    def __init__(self, *, model: str, device: str = "auto", weights: str | Path | None = None,
                 internal_size: int | None = None, smoothing: float = DEFAULT_STRENGTH,
                 max_people: int | None = None, max_side: int | None = None, person_mask: str = "auto") -> None:
        self._model = model
        self._max_side = max_side
        self._max_people = max_people
        self._device = device
        self._weights = weights
        self._internal_size = internal_size
        self._opacity = 0.6
        self._show_keypoints = True
        self._visible: np.ndarray | None = None
        self._smoothing = smoothing
        self._selected_people: frozenset[int] | None = None
        self._pipeline: Pipeline | None = None
        self._start_error: str | None = None
        self._opening: threading.Thread | None = None
        self._opened: list[tuple[Pipeline | None, str | None]] = []
        self._fitness: FitnessAnalyser | None = None
        self._pose_stages: list | None = None  # built when the first exercise is picked
        self._person_mask_stages = person_mask_stages(person_mask)
        self.source_spec: str | None = None

    # --- state the window observes ---------------------------------------------------
    @property
    def pipeline(self) -> Pipeline | None:
        """The running pipeline, or None before a source opened or after a failed start."""
        return self._pipeline

    @property
    def opening(self) -> bool:
        return self._opening is not None

    @property
    def error(self) -> str | None:
        if self._pipeline is not None:
            return self._pipeline.error
        return self._start_error

    @property
    def model(self) -> str:
        return self._pipeline.stats.model if self._pipeline is not None else self._model

    @property
    def labels(self) -> LabelSet:
        if self._pipeline is not None:
            return self._pipeline.parser.spec.labels
        return get_spec(self._model).labels

    @property
    def fitness(self) -> FitnessAnalyser | None:
        """The running exercise analyser, None when no exercise is picked."""
        return self._fitness

    def poll(self) -> None:
        """Collects the outcome of a start once it finished."""
        if self._opening is None or self._opening.is_alive():
            return
        self._opening.join()
        self._opening = None
        self._pipeline, self._start_error = self._opened.pop()

    # --- intent ----------------------------------------------------------------------
    def open(self, spec: str) -> None:
        """Switches the running pipeline to `spec`, or starts a pipeline on it in the background."""
        if self._opening is not None:
            return
        self.source_spec = spec
        if self._pipeline is not None:
            self._pipeline.switch_source(spec)
            return
        # The model loads here, on the caller's thread: a model loaded on a short-lived thread leaves
        # an OpenMP team behind that spins and slows inference about tenfold on small machines.
        try:
            pipeline = Pipeline(spec, model=self._model, device=self._device, weights=self._weights,
                                max_side=self._max_side, realtime=True, internal_size=self._internal_size,
                                max_people=self._max_people,
                                stages=self._stages(),
                                analysers=[self._fitness] if self._fitness else [])
        except Exception as exc:  # shown in the banner, never raised into Qt
            self._start_error = f"cannot load model {self._model}: {_message(exc)}"
            return
        pipeline.set_opacity(self._opacity)
        pipeline.set_show_keypoints(self._show_keypoints)
        pipeline.set_visible_parts(self._visible)
        pipeline.set_selected_people(self._selected_people)
        self._start_error = None
        self._opening = threading.Thread(target=self._start, args=(pipeline,), name="partsight-gui-start",
                                         daemon=True)
        self._opening.start()

    def switch_model(self, name: str) -> None:
        self._model = name
        self._weights = None
        if self._pipeline is not None:
            self._pipeline.switch_model(name)
        elif self.source_spec is not None:
            self.open(self.source_spec)

    def set_exercise(self, name: str) -> None:
        """Counts `name` from the next frame on, from zero ("" stops the analysis). BlazePose
        gives the keypoints when mediapipe is installed."""
        self._fitness = FitnessAnalyser(get_exercise(name)) if name else None
        new_pose_stages = self._fitness is not None and self._pose_stages is None
        if new_pose_stages:
            self._pose_stages = pose_stages("auto")
        if self._pipeline is not None:
            if new_pose_stages and self._pose_stages:  # otherwise the running tracker keeps its IDs
                self._pipeline.set_stages(self._stages())
            self._pipeline.set_analysers([self._fitness] if self._fitness else [])

    def set_opacity(self, opacity: float) -> None:
        self._opacity = opacity
        if self._pipeline is not None:
            self._pipeline.set_opacity(opacity)

    def set_show_keypoints(self, show: bool) -> None:
        self._show_keypoints = show
        if self._pipeline is not None:
            self._pipeline.set_show_keypoints(show)

    def set_visible_parts(self, visible: np.ndarray | None) -> None:
        self._visible = visible
        if self._pipeline is not None:
            self._pipeline.set_visible_parts(visible)

    def set_smoothing(self, strength: float) -> None:
        self._smoothing = strength
        if self._pipeline is not None:
            self._pipeline.set_smoothing(strength)
    @property
    def selected_people(self) -> frozenset[int] | None:
        return self._selected_people

    def select_people(self, ids: set[int] | None) -> None:
        """Analyse only these person IDs (None: everyone)."""
        self._selected_people = None if ids is None else frozenset(ids)
        if self._pipeline is not None:
            self._pipeline.set_selected_people(self._selected_people)

    def close(self) -> None:
        """Waits for a start in progress, then stops every engine thread (finalising a recording)."""
        if self._opening is not None:
            self._opening.join()
            self.poll()
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
        for stage in [*(self._pose_stages or []), *self._person_mask_stages]:
            stage.close()
        self._pose_stages = None
        self._person_mask_stages = []

    def _stages(self) -> list:
        return result_stages(pose=self._pose_stages or [], smoothing=self._smoothing,
                             person_mask=self._person_mask_stages)

    def _start(self, pipeline: Pipeline) -> None:
        """Opens the source, which can take seconds for a stream, off the UI thread."""
        try:
            pipeline.start()
        except Exception as exc:  # shown in the banner, never raised into Qt
            pipeline.stop()
            self._opened.append((None, _message(exc)))
            return
        self._opened.append((pipeline, None))


def _message(exc: BaseException) -> str:
    return redact_url(str(exc).strip() or type(exc).__name__)
