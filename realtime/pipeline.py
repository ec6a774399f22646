"""The Pipeline owns the threads: capture (in the Source), inference (this module's worker) and
recording (the Recorder). Callers — the CLI and the window — only talk to a Pipeline."""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from realtime.config import PipelineConfig
from realtime.metrics import frame_metrics
from realtime.models import Parser, load_parser
from realtime.playback import Playback
from realtime.recorder import Recorder, RecorderError, RecordItem
from realtime.render import FrameRenderer
from realtime.sources import Source, SourceError, SourceInfo, Timeline, open_source, redact_url
from realtime.stages import Analyser, ResultStage
from realtime.types import Frame, FrameResult, ParseResult

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    fps: float = 0.0
    latency_ms: float = 0.0
    frames: int = 0
    dropped: int = 0
    model: str = ""
    device: str = ""
    source: str = ""
    resolution: tuple[int, int] | None = None


Subscriber = Callable[[FrameResult], None]


@dataclass
class _Commands:
    source: str | None = None
    model: tuple[str, str | None] | None = None
    stages: list[ResultStage] | None = None
    analysers: list[Analyser] | None = None
    merges: list[tuple[int, int]] | None = None


class Pipeline:
    """source -> parser -> stages -> analysers -> renderer -> subscribers / recorder, on one
    inference thread, as `config` says (realtime.build.build_pipeline makes one with the
    config's stages).

    The pipeline owns its stages and analysers: it closes them when it stops and closes those
    replaced by `set_stages` / `set_analysers`; with `owns_stages=False` the result stages it
    starts with are lent (with `parser`: a runner that reuses them for one source after another,
    realtime.job.JobModels) and stay open. Errors from the source or model never kill the
    worker: they land in `error` (shown by the window; the traceback goes to the log) and the
    pipeline waits for a new source or model. With `config.frame_limit` the run ends after that
    many frames, as at the end of a file.

    `playback` (realtime.playback) plays a file: pause, speed, pacing and loop are set on it
    directly; `seek` and `step` go through the pipeline, which knows where playback stands. A
    pause holds the whole chain, recording time included; after a seek the stages forget their
    motion and the analysers what was in progress (Analyser.seek). A recording's times run on
    from 0 at its first frame whatever playback does (replays, seeks, pauses): its MP4 and JSONL
    never go back in time.
    """

    def __init__(self, config: PipelineConfig, *, stages: Sequence[ResultStage] = (),
                 analysers: Sequence[Analyser] = (), renderer: FrameRenderer | None = None,
                 parser: Parser | None = None, owns_stages: bool = True) -> None:
        if config.source is None:
            raise ValueError("a pipeline needs a source")
        self.config = config
        self.renderer = renderer or FrameRenderer()
        self._stages: list[ResultStage] = list(stages)
        self._analysers: list[Analyser] = list(analysers)
        self._selected_people: frozenset[int] | None = None
        self._lent_stages = frozenset() if owns_stages else frozenset(map(id, stages))
        self.playback = Playback(speed=1.0 if config.realtime else None, drop_late=config.realtime)
        self._parser: Parser = parser or self._load_parser(config.model, config.weights)
        self._source: Source | None = None
        self._recorder: Recorder | None = None
        self._record_clock: Timeline | None = None  # the recording's times, from 0
        self._record_last_s: float | None = None
        self._recorder_lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self._latest: FrameResult | None = None
        self._latest_lock = threading.Lock()
        self._commands = _Commands()
        self._commands_lock = threading.Lock()
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._fps = 0.0
        self._last_result_s: float | None = None
        self._record_jump = False  # a pause or a new source since the last frame: the recording runs on
        self.error: str | None = None
        self.source_error: str | None = None  # why no source plays (it failed to open or to deliver)
        self.source_switches = 0  # switch_source requests carried out (opened or failed): results after are the new source's
        self.stats = PipelineStats(model=self._parser.spec.name, device=str(self._parser.device))

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> SourceInfo:
        """Opens the source (raising SourceError on failure) and starts the inference thread."""
        self._source = self._open(self.config.source)
        info = self._source.start()
        self.stats.source = info.name
        self._thread = threading.Thread(target=self._run, name="partsight-inference", daemon=True)
        self._thread.start()
        return info

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops and joins every thread, finalises a running recording and closes the stages and
        analysers (also those still waiting to replace them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._source is not None:
            self._source.stop()
        self.stop_recording()
        with self._commands_lock:
            pending, self._commands = self._commands, _Commands()
        for step in (*self._stages, *self._analysers, *(pending.stages or ()), *(pending.analysers or ())):
            if id(step) not in self._lent_stages:
                step.close()
        self._stages, self._analysers = [], []

    def wait(self, timeout_s: float | None = None) -> bool:
        """Waits until a file source has been processed to its end (or failed)."""
        return self._finished.wait(timeout_s)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def parser(self) -> Parser:
        return self._parser

    @property
    def source_info(self) -> SourceInfo | None:
        return self._source.info if self._source else None

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    @property
    def source_status(self) -> str | None:
        """Why a live source is not delivering and when it retries (None while it delivers)."""
        return self._source.status if self._source else None

    # --- intent from callers ---------------------------------------------------------
    def switch_source(self, spec: str) -> None:
        with self._commands_lock:
            self._commands.source = spec

    def switch_model(self, name: str, weights: str | None = None) -> None:
        with self._commands_lock:
            self._commands.model = (name, weights)

    def set_stages(self, stages: Sequence[ResultStage]) -> None:
        """Replaces the stages after the parser, from the next frame on."""
        with self._commands_lock:
            self._commands.stages = list(stages)

    def set_analysers(self, analysers: Sequence[Analyser]) -> None:
        """Replaces the analysers, from the next frame on."""
        with self._commands_lock:
            self._commands.analysers = list(analysers)

    def seek(self, position_s: float) -> None:
        """Plays a file on from `position_s` seconds (while paused: shows that frame). Ignored
        for live sources."""
        info = self.source_info
        if info is None or info.live:
            return
        if info.duration_s is not None:
            position_s = min(position_s, max(0.0, info.duration_s - self._frame_step_s()))
        self._finished.clear()
        self.playback.seek(position_s)

    def step(self, frames: int = 1) -> None:
        """Pauses and shows the next frame (1) or the one before the frame shown (-1)."""
        if frames >= 0:
            self.playback.step()
            return
        latest = self.latest()
        self.playback.pause()
        if latest is not None:
            self.seek(latest.frame.pts_s + frames * self._frame_step_s())

    def merge_people(self, new_id: int, into_id: int) -> None:
        """Person `new_id` is `into_id` (the user said so): the stages and analysers make them one
        from the next frame on (their repetitions are added up), and a selection of `new_id`
        becomes one of `into_id`."""
        if new_id == into_id:
            raise ValueError("a person cannot be merged into themselves")
        with self._commands_lock:
            self._commands.merges = [*(self._commands.merges or ()), (new_id, into_id)]
        selected = self._selected_people
        if selected is not None and new_id in selected:
            self._selected_people = frozenset(into_id if i == new_id else i for i in selected)

    def _frame_step_s(self) -> float:
        info = self.source_info
        return 1.0 / info.fps if info is not None and info.fps else 1 / 30

    def set_selected_people(self, ids: set[int] | None) -> None:
        """Analyse only these person IDs (None = everyone in frame)."""
        self._selected_people = None if ids is None else frozenset(ids)

    @property
    def selected_people(self) -> frozenset[int] | None:
        return self._selected_people

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(result)` on the inference thread for every frame; returns an
        unsubscribe function. Callbacks must be quick (queue the result, don't process it)."""
        with self._subscribers_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def latest(self) -> FrameResult | None:
        with self._latest_lock:
            return self._latest

    def start_recording(self, video_path: str | Path, *, metrics_path: str | Path | None = None,
                        labels_dir: str | Path | None = None, plain_video_path: str | Path | None = None,
                        audio: bool = True) -> Recorder:
        """Records from the next frame on (Recorder: the annotated MP4, optionally the JSONL, a label
        PNG per frame and the plain MP4 of the frames before drawing). With `audio`, the audio of a
        file source (a video file or a file URL; not a webcam, folder or live stream) is muxed into
        the MP4s along with the video."""
        spec = self.config.source
        audio_from = spec if audio and not spec.strip().isdigit() and not Path(spec).is_dir() else None
        recorder = Recorder(video_path, metrics_path=metrics_path, labels_dir=labels_dir,
                            plain_video_path=plain_video_path, audio_from=audio_from)
        with self._recorder_lock:
            previous, self._recorder = self._recorder, recorder
            self._record_clock, self._record_last_s = Timeline(self._frame_step_s(), max_jump_s=math.inf), None
        if previous is not None:
            previous.close()
        return recorder

    def stop_recording(self) -> Recorder | None:
        with self._recorder_lock:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        return recorder

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    # --- the inference thread --------------------------------------------------------
    def _load_parser(self, name: str, weights: str | None) -> Parser:
        config = self.config
        return load_parser(name, device=config.device, weights=weights, internal_size=config.internal_size,
                           max_people=config.max_people, backend=config.backend)

    def _open(self, spec: str) -> Source:
        config = self.config
        return open_source(spec, size=config.size, max_side=config.max_side, playback=self.playback,
                           buffer_frames=config.buffer_frames, loop=config.loop, fps=config.fps)

    def _run(self) -> None:
        playback = self.playback
        while not self._stop.is_set():
            self._apply_commands()
            source = self._source
            frame = None
            if source is not None and playback.may_take():
                frame = source.read(timeout_s=0.1)
            elif source is not None:
                self._record_jump = True
                playback.idle(0.1)
            if frame is None:
                if source is not None and source.error and self.source_error != source.error:
                    self.error = self.source_error = source.error
                    log.info("%s", source.error)  # callers show `error`; a warning would print it twice
                if source is not None and source.finished:
                    self._finished.set()
                continue
            if not playback.worker_due(frame.pts_s, source.read_generation, self._stop):
                continue  # a seek came while it waited: the frame is stale
            self._finished.clear()
            if frame.seeked:
                for step in (*self._stages, *self._analysers):
                    step.seek(frame.pts_s)
            try:
                result = self._process(frame)
            except Exception as exc:  # a model failure must not kill the worker
                self.error = f"processing frame {frame.index} failed: {redact_url(str(exc))}"
                log.exception("processing frame %d failed", frame.index)
                continue
            self._deliver(result)
            if self.config.frame_limit is not None and self.stats.frames >= self.config.frame_limit:
                self._source = None
                source.stop()
                self._finished.set()

    def _apply_commands(self) -> None:
        with self._commands_lock:
            commands, self._commands = self._commands, _Commands()
        if commands.stages is not None:
            self._replace(self._stages, commands.stages)
            self._stages = commands.stages
        if commands.analysers is not None:
            self._replace(self._analysers, commands.analysers)
            self._analysers = commands.analysers
        for new_id, into_id in commands.merges or ():
            for step in (*self._stages, *self._analysers):
                step.merge_people(new_id, into_id)
        if commands.model is not None or commands.source is not None:
            self._reset_history()
        if commands.model is not None:
            name, weights = commands.model
            try:
                self._parser = self._load_parser(name, weights)
                self.stats.model, self.stats.device = self._parser.spec.name, str(self._parser.device)
                self.error = self.source_error
            except Exception as exc:  # noqa: BLE001 - any load failure is shown, the worker goes on
                self.error = f"cannot load model {name}: {redact_url(str(exc))}; still parsing with {self.stats.model}"
                log.exception("cannot load model %s", name)
        if commands.source is not None:
            try:
                new_source = self._open(commands.source)
                info = new_source.start()
            except (SourceError, ValueError) as exc:  # the old source stops: the user asked for another
                self.error = self.source_error = str(exc)
                log.info("cannot open the source: %s", exc, exc_info=True)
                new_source, info = None, None
            old, self._source = self._source, new_source
            if old is not None:
                old.stop()
            with self._latest_lock:
                self._latest = None
            self.playback.resume()  # a new source plays from its start
            self._record_jump = True
            self._finished.clear()
            self.stats.source = info.name if info is not None else ""
            self.stats.resolution = None
            self.source_switches += 1
            if info is not None:
                self.error = self.source_error = None

    def _replace(self, old: Sequence[ResultStage | Analyser], new: Sequence[ResultStage | Analyser]) -> None:
        """Closes the steps of `old` that `new` does not keep (lent ones stay open)."""
        kept = {id(step) for step in new} | self._lent_stages
        for step in old:
            if id(step) not in kept:
                step.close()

    def _reset_history(self) -> None:
        for step in (*self._stages, *self._analysers):
            step.reset()

    def process(self, frame: Frame) -> FrameResult:
        """Runs one frame through parser, stages, analysers and renderer on the caller's thread
        (benchmarks); only for a pipeline that was not started."""
        if self._thread is not None:
            raise RuntimeError("process() is for pipelines that were not started")
        self._apply_commands()
        return self._process(frame)

    def _process(self, frame: Frame) -> FrameResult:
        # queue: the time the decoded frame waited for this thread
        timings = {"decode": frame.decode_ms, "queue": (time.monotonic() - frame.captured_s) * 1000}
        parser = self._parser
        clock = time.perf_counter()
        prepared = parser.preprocess([frame.image])
        timings["preprocess"], clock = _lap(clock)
        outputs = parser.infer(prepared.batch)
        timings["infer"], clock = _lap(clock)
        parse = parser.postprocess(outputs, prepared)[0]
        timings["postprocess"], clock = _lap(clock)
        for stage in self._stages:
            parse = stage(frame, parse)
            timings[stage.name], clock = _lap(clock)
        analysis = {}
        analysed = self._analysed_people(parse)
        for analyser in self._analysers:
            analysis[analyser.name] = analyser.update(frame, analysed)
        if self._analysers:
            timings["analyse"], clock = _lap(clock)
        now = time.monotonic()
        if self._last_result_s is not None:
            instant = 1.0 / max(now - self._last_result_s, 1e-6)
            self._fps = instant if self._fps == 0 else 0.9 * self._fps + 0.1 * instant
        self._last_result_s = now
        source = self._source
        # one latency figure everywhere (the overlay, the status bar, the JSONL): capture to analysed
        result = FrameResult(frame, parse, timings, latency_ms=(now - frame.captured_s) * 1000 + frame.decode_ms,
                             fps=self._fps, model=self.stats.model, live=source is not None and source.live,
                             analysis=analysis, selected_people=self._selected_people)
        result.image = self.renderer.render(result)
        timings["render"], clock = _lap(clock)
        return result

    def _analysed_people(self, parse: ParseResult) -> ParseResult:
        selected = self._selected_people
        if selected is None or not parse.people:
            return parse
        return replace(parse, people=[person for person in parse.people if person.id in selected])

    def _deliver(self, result: FrameResult) -> None:
        jump, self._record_jump = self._record_jump, False
        self.stats.fps = result.fps
        self.stats.latency_ms = result.latency_ms
        self.stats.frames += 1
        self.stats.dropped = self._source.dropped if self._source else 0
        self.stats.resolution = result.frame.size
        with self._latest_lock:
            self._latest = result
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(result)
        with self._recorder_lock:
            recorder, clock = self._recorder, self._record_clock
        if recorder is not None:
            frame = result.frame
            if frame.seeked or jump:
                clock.restart()  # the recording runs on one frame after its last
            last_s, record_s = self._record_last_s, clock.place(frame.pts_s)
            self._record_last_s = record_s
            try:
                if frame.gap is not None:
                    recorder.write_event(replace(frame.gap, from_pts_s=last_s if last_s is not None else record_s,
                                                 to_pts_s=record_s).to_json())
                recorder.write(RecordItem(
                    image=result.image, index=frame.index, pts_s=record_s,
                    metrics=frame_metrics(result, pts_s=record_s), labels=result.parse.labels, plain=frame.image,
                    source_s=frame.source_s,
                ))
            except RecorderError as exc:  # the live view goes on without the recording
                self.error = str(exc)
                log.exception("recording stopped")
                with self._recorder_lock:
                    if self._recorder is recorder:
                        self._recorder = None
                with contextlib.suppress(RecorderError):
                    recorder.close()  # ends its thread; the error is already in self.error


def _lap(start: float) -> tuple[float, float]:
    now = time.perf_counter()
    return (now - start) * 1000, now
