"""The window's hold on the engine: one Pipeline at a time, its models loaded and its source
opened off the UI thread, the FrameRenderer that draws its results (also again, for a paused
frame), and the playback settings (speed, pacing, loop) that every pipeline it starts plays
files with.

No Qt here. A Pipeline needs a source that opens before its worker runs, so the session builds
one the first time a source opens; once it runs, new sources and models go to it as commands.
If a start fails (no webcam, bad file, missing weights) the session keeps no pipeline, keeps the
error, and the next `open` builds a fresh one with the same settings. Settings changed while a
start runs reach the new pipeline when the start is collected (`poll`).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import numpy as np

from realtime.analysis.exercises import get_exercise
from realtime.build import Stages, build_analysers, build_run
from realtime.config import PipelineConfig
from realtime.job import fitness_summary
from realtime.models.labels import LabelSet
from realtime.models.registry import get_spec
from realtime.pipeline import Pipeline
from realtime.render import FrameRenderer, ViewSettings
from realtime.sources import redact_url
from realtime.stages import Analyser
from realtime.types import FrameResult

log = logging.getLogger(__name__)


class Session:
    """Runs `config` (its source, frame limit and pacing aside: the window opens sources itself and
    plays files as its playback settings say, every frame at normal speed by default) and keeps
    the window's settings across pipelines."""

    def __init__(self, config: PipelineConfig) -> None:
        self._config = replace(config, source=None, frame_limit=None, pacing="every-frame")
        self.renderer = FrameRenderer(ViewSettings(show_stats=False, stats_slot=True))
        self.speed = 1.0
        self.drop_late = False
        self.loop = False
        self._pipeline: Pipeline | None = None
        self._stages: Stages | None = None
        self._start_error: str | None = None
        self._opening: threading.Thread | None = None
        self._opened: list[tuple[Pipeline | None, Stages | None, str | None]] = []
        self._selected_people: frozenset[int] | None = None
        self.source_spec: str | None = None

    # --- state the window observes ---------------------------------------------------
    @property
    def config(self) -> PipelineConfig:
        return self._config

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
    def source_error(self) -> str | None:
        """Why nothing plays: the source (or, at a start, the model) failed; None otherwise."""
        if self._pipeline is not None:
            return self._pipeline.source_error
        return self._start_error

    @property
    def model(self) -> str:
        return self._pipeline.stats.model if self._pipeline is not None else self._config.model

    @property
    def labels(self) -> LabelSet:
        if self._pipeline is not None:
            return self._pipeline.parser.spec.labels
        return get_spec(self._config.model).labels

    @property
    def fitness(self) -> Analyser | None:
        """The running exercise analyser (with `summary()`), None when no exercise is picked."""
        return self._stages.analysers[0] if self._stages is not None and self._stages.analysers else None

    def summary(self) -> dict[str, Any] | None:
        """The repetition summary of the source playing, as `process --summary` writes it
        (realtime.job.fitness_summary: schema partsight.summary/1, with the pose source and the
        source's name and frame rate); None without an exercise or a running pipeline."""
        pipeline, stages = self._pipeline, self._stages
        source = pipeline.source if pipeline is not None else None
        if source is None or source.info is None or stages is None:
            return None
        return fitness_summary(stages, source.info, source.skipped, dropped=source.dropped, fps=source.fps)

    @property
    def smoothing(self) -> float:
        return self._config.smoothing

    def poll(self) -> None:
        """Collects the outcome of a start once it finished."""
        if self._opening is None or self._opening.is_alive():
            return
        self._opening.join()
        self._opening = None
        self._pipeline, self._stages, self._start_error = self._opened.pop()
        if self._pipeline is not None:
            self._configure(self._pipeline, self._stages)
            if self._pipeline.config.model != self._config.model:  # another model was picked meanwhile
                self._pipeline.switch_model(self._config.model)

    # --- playback (files) ------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._pipeline is not None and self._pipeline.playback.paused

    def set_paused(self, paused: bool) -> None:
        """Holds or plays on the whole pipeline (parsing, analysis, recording time)."""
        if self._pipeline is None:
            return
        if paused:
            self._pipeline.playback.pause()
        else:
            self._pipeline.playback.resume()

    def seek(self, position_s: float) -> None:
        if self._pipeline is not None:
            self._pipeline.seek(position_s)

    def step(self, frames: int) -> None:
        if self._pipeline is not None:
            self._pipeline.step(frames)

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        if self._pipeline is not None:
            self._pipeline.playback.set_speed(speed)

    def set_drop_late(self, drop_late: bool) -> None:
        """True: real time (late frames dropped); False: every frame, later if need be."""
        self.drop_late = drop_late
        if self._pipeline is not None:
            self._pipeline.playback.set_drop_late(drop_late)

    def set_loop(self, loop: bool) -> None:
        self.loop = loop
        if self._pipeline is not None:
            self._pipeline.playback.set_loop(loop)

    def merge_people(self, new_id: int, into_id: int) -> None:
        """`new_id` is the same person as the earlier `into_id`: one person from now on, their
        repetitions added up (a choice of `new_id` becomes one of `into_id`)."""
        if self._pipeline is None:
            return
        self._pipeline.merge_people(new_id, into_id)

    def render(self, result: FrameResult, *, presentation: bool = False):
        """`result` drawn with the current view settings (H x W x 3 uint8 RGB); for the
        presentation view without the speed readout and the analysis text (it shows them large)."""
        view = self.renderer.view
        if presentation:
            view = replace(view, show_stats=False, stats_slot=False, show_analysis=False)
        return self.renderer.render(result, view)

    # --- intent ----------------------------------------------------------------------
    def open(self, spec: str, *, paused: bool = False) -> bool:
        """Switches the running pipeline to `spec`, or starts a pipeline on it in the background
        (False while another start is still opening). Whoever was chosen on the source before is
        forgotten (IDs belong to one source). `paused`: a pipeline started for it takes no frame
        until `set_paused(False)` (a recording started meanwhile has its first frame); a running
        pipeline plays a new source at once."""
        if self._opening is not None:
            return False
        self.source_spec = spec
        self.select_people(None)
        if self._pipeline is not None:
            self._pipeline.switch_source(spec)
            return True
        self._start_error = None
        self._opening = threading.Thread(target=self._start, args=(replace(self._config, source=spec), paused),
                                         name="partsight-gui-start", daemon=True)
        self._opening.start()
        return True

    def switch_model(self, name: str) -> None:
        self._config = replace(self._config, model=name, weights=None)
        if self._pipeline is not None:
            self._pipeline.switch_model(name)
        elif self.source_spec is not None:
            self.open(self.source_spec)

    def set_exercise(self, name: str) -> None:
        """Counts `name` from the next frame on, from zero ("" stops the analysis); the running
        stages (and the tracker's IDs) stay."""
        self._config = replace(self._config, exercise=get_exercise(name) if name else None)
        if self._pipeline is None or self._stages is None:
            return
        self._stages.analysers = build_analysers(self._config)
        self._pipeline.set_analysers(self._stages.analysers)

    def set_opacity(self, opacity: float) -> None:
        self.renderer.view.opacity = float(min(max(opacity, 0.0), 1.0))

    def set_show_keypoints(self, show: bool) -> None:
        self.renderer.view.show_keypoints = bool(show)

    def set_visible_parts(self, visible: np.ndarray | None) -> None:
        self.renderer.view.visible_parts = None if visible is None else np.asarray(visible, dtype=bool).copy()

    def set_show_legend(self, show: bool) -> None:
        self.renderer.view.show_legend = bool(show)

    def set_stats_in_recordings(self, burned: bool) -> None:
        """Whether the speed readout is drawn into the frames (recordings and screenshots get it)
        or only shown by the window over them."""
        self.renderer.view.show_stats = bool(burned)

    def set_mirror(self, mirror: bool) -> None:
        self.renderer.view.mirror = bool(mirror)

    def set_smoothing(self, strength: float) -> None:
        """Temporal smoothing strength, 0 (off) to 1, from the next frame on."""
        self._config = replace(self._config, smoothing=float(min(max(strength, 0.0), 1.0)))
        if self._stages is not None:
            self._stages.smoother.strength = self._config.smoothing

    @property
    def selected_people(self) -> frozenset[int] | None:
        """The person IDs analysed (None: everyone): the running pipeline's (a merge moves them, a new
        source or model makes them everyone again), else those a pipeline started now gets."""
        return self._pipeline.selected_people if self._pipeline is not None else self._selected_people

    def select_people(self, ids: set[int] | None) -> None:
        """Analyse only these person IDs (None: everyone)."""
        self._selected_people = None if ids is None else frozenset(ids)
        if self._pipeline is not None:
            self._pipeline.set_selected_people(self._selected_people)

    def close(self) -> None:
        """Waits for a start in progress, then stops every engine thread (finalising a recording
        and closing the stages)."""
        if self._opening is not None:
            self._opening.join()
            self.poll()
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
        self._stages = None

    def _start(self, config: PipelineConfig, paused: bool) -> None:
        """Loads the models (seconds with BlazePose on a CPU) and opens the source (seconds for a
        stream) off the UI thread, paused before it takes a frame if asked. (OpenMP's workers sleep
        while idle, realtime/__init__.py, so models loaded on this short-lived thread run as fast
        as on any other.)"""
        try:
            stages, pipeline = build_run(config, renderer=self.renderer)
        except Exception as exc:  # shown in the banner, never raised into Qt
            log.exception("cannot load model %s", config.model)
            self._opened.append((None, None, f"cannot load model {config.model}: {_message(exc)}"))
            return
        self._configure(pipeline, stages)
        if paused:
            pipeline.playback.pause()
        try:
            pipeline.start()
        except Exception as exc:  # shown in the banner, never raised into Qt
            log.info("cannot open %s", redact_url(config.source or ""), exc_info=True)
            pipeline.stop()
            self._opened.append((None, None, _message(exc)))
            return
        self._opened.append((pipeline, stages, None))

    def _configure(self, pipeline: Pipeline, stages: Stages) -> None:
        """The session's settings as they are now on a pipeline it starts: playback, the person
        choice, the smoothing strength and the exercise's analysers."""
        playback = pipeline.playback
        playback.set_speed(self.speed)
        playback.set_drop_late(self.drop_late)
        playback.set_loop(self.loop)
        pipeline.set_selected_people(self._selected_people)
        stages.smoother.strength = self._config.smoothing
        if pipeline.config.exercise != self._config.exercise:
            stages.analysers = build_analysers(self._config)
            pipeline.set_analysers(stages.analysers)


def _message(exc: BaseException) -> str:
    return redact_url(str(exc).strip() or type(exc).__name__)
