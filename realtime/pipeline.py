"""The Pipeline owns the threads: capture (in the Source), the steps after decoding (this module)
and recording (the Recorder). Callers — the CLI and the window — only talk to a Pipeline.

The steps after decoding — the parser, each result stage in order, then analysis, drawing and
delivery — run on `config.stage_threads` threads, each frame passing from one to the next
through a queue, so that while one thread parses frame n the next smooths frame n-1 and the last
draws frame n-2 (pipeline parallelism). Every step sees the frames in their order, and what the
steps must hear in that order (forget the past, people merged, the recording's clock running
on) travels with the frames. The first thread takes a frame only while fewer than a limit are
in flight: for files processed as fast as they decode, a full pipe (nothing is dropped, every
thread kept busy); for live sources and paced playback PACED_IN_FLIGHT, so the frame taken is
the newest the camera gave, latency does not grow and a pause holds the chain within a frame or
two. Frames made stale by a seek or a new source are dropped wherever they are.

The steps build their graphs on their first frame (about a second on a CPU). While they are cold
(at the start, after a new source, model or stages) the pacing clock is held (Playback.hold_clock)
until the first frame taken since is through every step (delivered, or failed in one), so paced
playback drops no frame for the warm-up; for live sources and paced playback that frame is first
run through the steps once, delivering nothing (Pipeline.warm_up: the parser and the steps that
start afresh; those running on keep their state), so a camera's frames are taken once the graphs
are built and come one after another from the first. Files processed as fast as they decode warm
up on their first frame itself. New analysers build nothing: changing them cools nothing.
"""
from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from realtime.config import X264_PRESETS, PipelineConfig
from realtime.metrics import frame_metrics
from realtime.models import Parser, load_parser
from realtime.playback import Playback
from realtime.recorder import Recorder, RecorderError, RecordItem
from realtime.render import FrameRenderer
from realtime.sources import URL, Source, SourceError, SourceInfo, Timeline, open_source, redact_url
from realtime.stages import Analyser, ResultStage
from realtime.types import Frame, FrameResult, ParseResult, PersonParse

log = logging.getLogger(__name__)

PACED_IN_FLIGHT = 2  # frames in flight at most for live sources and paced playback


@dataclass
class PipelineStats:
    fps: float = 0.0
    latency_ms: float = 0.0
    frames: int = 0
    dropped: int = 0
    model: str = ""
    pose_source: str = "parser"  # what gives the keypoints: "parser" (the model's own) or a pose stage's name
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


@dataclass(frozen=True)
class _Signals:
    """What the steps must hear before a frame, in the frames' order: people the user merged,
    forget the past (a new source or model), the recording's clock runs on (a pause or a new
    source came before the frame)."""

    merges: tuple[tuple[int, int], ...] = ()
    reset: bool = False
    jump: bool = False

    def __or__(self, later: _Signals) -> _Signals:
        return _Signals(self.merges + later.merges, self.reset or later.reset, self.jump or later.jump)


@dataclass
class _InFlight:
    """One frame on its way through the step threads: the source switches (`epoch`), seeks
    (`generation`) and coolings of the steps (`cools`, Pipeline._cool) it was taken after, what
    the steps must hear first, and what was made of it (`work`: the frame as the parser and the
    stages see it, Frame.for_parsing)."""

    frame: Frame
    epoch: int
    generation: int
    cools: int
    signals: _Signals
    timings: dict[str, float]
    parse: ParseResult | None = None
    model: str = ""  # the parser's name (Parser.spec.name) that parsed it: a switch leaves frames in flight
    handed_s: float | None = None  # perf_counter reading when it was handed to the next thread
    work: Frame = field(init=False)

    def __post_init__(self) -> None:
        self.work = self.frame.for_parsing()


@dataclass(frozen=True)
class _Group:
    """The steps one thread runs on each frame, in order: the parser (the first thread's),
    result stages, then analysis, drawing and delivery (the last thread's)."""

    stages: tuple[ResultStage, ...]
    parses: bool
    delivers: bool


def step_groups(stages: Sequence[ResultStage], threads: int) -> list[_Group]:
    """The steps (the parser, each of `stages`, delivery) cut into `threads` runs of consecutive
    steps, as even in count as can be (0: one step per thread)."""
    steps: list[ResultStage | None] = [None, *stages, None]
    count = len(steps) if threads == 0 else min(threads, len(steps))
    bounds = [round(i * len(steps) / count) for i in range(count + 1)]
    return [_Group(stages=tuple(step for step in steps[start:end] if step is not None), parses=start == 0,
                   delivers=end == len(steps)) for start, end in zip(bounds, bounds[1:])]


class Pipeline:
    """source -> parser -> stages -> analysers -> renderer -> subscribers / recorder, on the
    step threads `config.stage_threads` asks for (see the module's docstring), as `config` says
    (realtime.build.build_pipeline makes one with the config's stages).

    The pipeline owns its stages and analysers: it closes them when it stops and closes those
    replaced by `set_stages` / `set_analysers`; with `owns_stages=False` the result stages it
    starts with are lent (with `parser`: a runner that reuses them for one source after another,
    realtime.job.JobModels) and stay open. Errors from the source or model never kill the
    threads: they land in `error` (shown by the window; the traceback goes to the log) and the
    pipeline waits for a new source or model. With `config.frame_limit` the run ends after that
    many frames, as at the end of a file. `pose_source` names what gives the keypoints among
    `stages` (realtime.build.Stages.pose_source; "parser": the parser's own); it is in `stats` and
    each FrameResult.

    `playback` (realtime.playback) plays a file: pause, speed, pacing and loop are set on it
    directly; `seek` and `step` go through the pipeline, which knows where playback stands. A
    pause holds the whole chain, recording time included (the frames in flight are delivered
    first); after a seek the stages forget their motion and the analysers what was in progress
    (Analyser.seek), and frames read before it are dropped wherever they are. A recording's
    times run on from 0 at its first frame whatever playback does (replays, seeks, pauses): its
    MP4 and JSONL never go back in time.
    """

    def __init__(self, config: PipelineConfig, *, stages: Sequence[ResultStage] = (),
                 analysers: Sequence[Analyser] = (), renderer: FrameRenderer | None = None,
                 parser: Parser | None = None, owns_stages: bool = True, pose_source: str = "parser") -> None:
        if config.source is None:
            raise ValueError("a pipeline needs a source")
        self.config = config
        self.renderer = renderer or FrameRenderer()
        self._stages: list[ResultStage] = list(stages)
        self._analysers: list[Analyser] = list(analysers)
        self._groups = step_groups(self._stages, config.stage_threads)
        self._selected_people: frozenset[int] | None = None
        self._id_restarts = 0  # FrameResult.id_restarts of the frames delivered now
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
        self._latest_lock = threading.Lock()  # also orders delivery against source switches (epoch)
        self._commands = _Commands()
        self._commands_lock = threading.Lock()
        self._signals = _Signals()  # for the next frame taken
        self._epoch = 0  # source switches: frames of an earlier epoch are stale
        self._in_flight = 0
        self._in_flight_changed = threading.Condition()
        self._closing = threading.Event()  # the first step thread takes no more frames
        self._stop = threading.Event()  # the other step threads end
        self._finished = threading.Event()
        self._ended = False  # the frame limit was reached
        self._taken = 0
        self._warm = False  # the steps ran on a frame since the latest _cool (warm_up, or one through them)
        self._cools = 0  # _cool calls: only a frame taken after the latest ends the warm-up
        self._warmth = threading.Lock()  # _cool and _warmed_by: a cool never falls between a check and its warm-up's end
        # ids of the stages and analysers that start afresh: run on no frame taken since they came or
        # were told to forget the past (a new source or model); the only ones a warm-up runs
        self._fresh = {id(step) for step in (*self._stages, *self._analysers)}
        self._thread: threading.Thread | None = None
        self._step_threads: list[threading.Thread] = []
        self._inboxes: list[queue.Queue] = []
        self._fps = 0.0
        self._last_result_s: float | None = None
        self.error: str | None = None
        self._delivery_failures: set[str] = set()  # what they said (_delivery_failed logs each traceback once)
        self.source_error: str | None = None  # why no source plays (it failed to open or to deliver)
        self.source_switches = 0  # switch_source requests carried out (opened or failed): results after are the new source's
        self.stats = PipelineStats(model=self._parser.spec.name, pose_source=pose_source,
                                   device=str(self._parser.device))

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> SourceInfo:
        """Opens the source (raising SourceError on failure) and starts the step threads."""
        self.playback.hold_clock()
        self._source = self._open(self.config.source)
        info = self._source.start()
        self.stats.source = info.name
        self._start_step_threads()
        self._thread = threading.Thread(target=self._run, name="partsight-inference", daemon=True)
        self._thread.start()
        return info

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops taking frames, delivers (and records) those in flight, stops and joins every
        thread, finalises a running recording and closes the stages and analysers (also those
        still waiting to replace them). A thread still running `timeout_s` after it was told to end
        (a step building its graphs on a busy machine) is left running (a daemon: it ends with the
        process), and the steps it runs stay open (a warning says so) until stop() is called again
        after it ended, which no caller (run_job, the window's Session) does. A first thread left
        running in a source switch may still start the new source, which nothing then stops."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._drain(time.monotonic() + timeout_s)
        self._stop.set()
        for thread in self._step_threads:
            thread.join(timeout_s)
        if self._source is not None:
            self._source.stop()
        self.stop_recording()
        with self._commands_lock:
            pending, self._commands = self._commands, _Commands()
        held = self._held_steps(timeout_s)
        for step in (*self._stages, *self._analysers, *(pending.stages or ()), *(pending.analysers or ())):
            if id(step) not in held | self._lent_stages:
                step.close()
        self._stages = [step for step in self._stages if id(step) in held]
        self._analysers = [step for step in self._analysers if id(step) in held]
        if not any(thread.is_alive() for thread in (self._thread, *self._step_threads) if thread is not None):
            self._step_threads, self._inboxes = [], []

    def _held_steps(self, timeout_s: float) -> set[int]:
        """The ids of the stages and analysers that a thread still running after stop() joined it
        may be running: every one while the first thread runs (it also replaces them), else those
        of the groups whose threads run."""
        held: set[int] = set()
        for index, thread in enumerate((self._thread, *self._step_threads)):
            if thread is None or not thread.is_alive():
                continue
            log.warning("%s did not end within %g s of the stop; the steps it runs are left open",
                        thread.name, timeout_s)
            group = self._groups[index]
            steps = (*self._stages, *self._analysers) if index == 0 else group.stages
            held |= {id(step) for step in (*steps, *(self._analysers if group.delivers else ()))}
        return held

    def wait(self, timeout_s: float | None = None) -> bool:
        """Waits until a file source has been processed to its end (or failed): every frame taken
        has been delivered."""
        return self._finished.wait(timeout_s)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def in_flight(self) -> int:
        """Frames taken from the source and not yet delivered (or dropped as stale)."""
        with self._in_flight_changed:
            return self._in_flight

    @property
    def step_threads(self) -> int:
        """Threads running the steps after decoding (see `config.stage_threads`)."""
        return len(self._groups)

    @property
    def step_queues(self) -> tuple[tuple[int, int], ...]:
        """(frames queued, bound) of each step thread's inbox after the first, in order."""
        return tuple((inbox.qsize(), inbox.maxsize) for inbox in self._inboxes)

    @property
    def _full_pipe(self) -> int:
        """Frames in flight at most: two per step thread (`_room`), so also the most an inbox holds."""
        return 2 * len(self._groups)

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
        """Replaces the stages after the parser, from the next frame on: those kept run on with
        what they know (a tracker's IDs), new ones are warmed up first (see the module's docstring)."""
        with self._commands_lock:
            self._commands.stages = list(stages)

    def set_analysers(self, analysers: Sequence[Analyser]) -> None:
        """Replaces the analysers, from the next frame on; the stages run on (a tracker keeps its IDs)."""
        with self._commands_lock:
            self._commands.analysers = list(analysers)

    def seek(self, position_s: float) -> None:
        """Plays a file on from `position_s` seconds (while paused: shows that frame), in the pass
        of a looped file that the frame shown is in (its indices and times go on from there).
        Ignored for live sources."""
        info = self.source_info
        if info is None or info.live:
            return
        if info.duration_s is not None:
            position_s = min(position_s, max(0.0, info.duration_s - self._frame_step_s()))
        self._finished.clear()
        shown = self.latest()
        self.playback.seek(position_s, shown.frame.loop_offset if shown is not None else None)

    def step(self, frames: int = 1) -> None:
        """Pauses and shows the next frame (1) or the one before the frame shown (-1)."""
        if frames >= 0:
            self.playback.step()
            return
        latest = self.latest()
        self.playback.pause()
        if latest is not None:
            self.seek(latest.frame.position_s + frames * self._frame_step_s())

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
        return info.step_s if info is not None else 1 / 30

    def set_selected_people(self, ids: set[int] | None) -> None:
        """Analyse only these person IDs (None = everyone in frame); a new source or model chooses
        everyone again from its first frame on (FrameResult.id_restarts)."""
        self._selected_people = None if ids is None else frozenset(ids)

    @property
    def selected_people(self) -> frozenset[int] | None:
        return self._selected_people

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls `callback(result)` on the last step thread for every frame, in order; returns an
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
                        audio: bool = True, preset: str = X264_PRESETS[0]) -> Recorder:
        """Records from the next frame on (Recorder: the annotated MP4, optionally the JSONL, a label
        PNG per frame and the plain MP4 of the frames before drawing, encoded with libx264's
        `preset`). With `audio`, the audio of a file source (a video file or a file URL; not a
        webcam, folder or live stream) is muxed into the MP4s along with the video."""
        spec = self.config.source
        try:  # a URL is no path: Path() would fold its "//" (and a long one raises ENAMETOOLONG, naming it)
            folder = not URL.match(spec) and Path(spec).is_dir()
        except OSError:  # a path that cannot be looked at: opening the source says why (open_source)
            folder = False
        audio_from = spec if audio and not spec.strip().isdigit() and not folder else None
        recorder = Recorder(video_path, metrics_path=metrics_path, labels_dir=labels_dir,
                            plain_video_path=plain_video_path, preset=preset, audio_from=audio_from)
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

    # --- the first step thread: taking frames, commands ------------------------------
    def _load_parser(self, name: str, weights: str | None) -> Parser:
        config = self.config
        return load_parser(name, device=config.device, weights=weights, internal_size=config.internal_size,
                           max_people=config.max_people, backend=config.backend, dtype=config.dtype)

    def _open(self, spec: str) -> Source:
        config = self.config
        return open_source(spec, size=config.size, max_side=config.max_side, playback=self.playback,
                           buffer_frames=config.buffer_frames, loop=config.loop, fps=config.fps,
                           parse_side=config.parse_side)

    def _run(self) -> None:
        """The first step thread: applies commands, takes frames as playback and the in-flight
        limit allow, and runs the first group of steps on them."""
        playback = self.playback
        carry = _Signals()
        while not self._closing.is_set():
            self._apply_commands()
            source = self._source
            if source is None:
                self._settle(None)
                continue
            if not playback.may_take():
                self._signals |= _Signals(jump=True)
                playback.idle(0.1)
                continue
            if not self._room(0.1):
                continue
            if not self._warm and self._paced(source) and not source.finished:
                # the steps warm up on the next frame, left for the read after: none is taken before
                if (next_frame := source.peek(timeout_s=0.1)) is not None:
                    self._warm_up_on(next_frame)
                continue
            frame = source.read(timeout_s=0.1)
            if frame is None:
                if source.error and self.source_error != source.error:
                    self.error = self.source_error = source.error
                    log.info("%s", source.error)  # callers show `error`; a warning would print it twice
                self._settle(source)
                continue
            if not playback.worker_due(frame.pts_s, source.read_generation, self._closing):
                continue  # a seek came while it waited: the frame is stale
            self._finished.clear()
            item = self._take(frame, source.read_generation)
            with self._in_flight_changed:
                self._in_flight += 1
            carry = self._run_group(0, item, carry)
            self._taken += 1
            if self.config.frame_limit is not None and self._taken >= self.config.frame_limit:  # as at a file's end
                self._source, self._ended = None, True
                source.stop()

    def _room(self, timeout_s: float) -> bool:
        """Waits up to `timeout_s` until fewer frames than the limit are in flight: a full pipe
        (two per thread) for files processed as fast as they decode, PACED_IN_FLIGHT for live
        sources and paced playback; one until a frame has been through every step after the
        start or a switch (the steps build their graphs on their first frame: the frames behind
        it would only wait, and grow stale)."""
        source = self._source
        paced = source is not None and self._paced(source)
        limit = min(PACED_IN_FLIGHT, len(self._groups)) if paced else self._full_pipe
        limit = limit if self._warm else 1
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight < limit, timeout_s)

    def _paced(self, source: Source) -> bool:
        """A live source or paced playback: frames come due by a clock, and late ones are dropped
        (or, playing every frame, played late)."""
        return source.live or self.playback.speed is not None

    def _warm_up_on(self, frame: Frame) -> None:
        """Warms the steps on the source's next frame (left for the read after). A failure is
        logged and the frames go on: each then says what failed."""
        try:
            self.warm_up(frame)
        except Exception:  # noqa: BLE001 - the frames after it report the failure the user sees
            log.exception("warming up the steps on frame %d failed", frame.index)
        self._warm = True

    def _cool(self) -> None:
        """The steps are to build their graphs again (a new source, model or stages): the frames in
        flight were taken before and do not end the warm-up (_warmed_by)."""
        with self._warmth:
            self._cools += 1
            self._warm = False
            self.playback.hold_clock()

    def _warmed_by(self, item: _InFlight) -> None:
        """`item` went through the steps (delivered, or failed in one): taken after the latest
        `_cool`, it ends the warm-up, and the held pacing clock runs from it."""
        with self._warmth:
            if item.cools == self._cools:
                self._warm = True
                self.playback.start_clock(item.frame.pts_s)

    def _take(self, frame: Frame, generation: int) -> _InFlight:
        """`frame`, read after seek `generation`, as taken now: it carries the signals gathered
        for it, and every step runs on it (none starts afresh any more)."""
        timings = {"decode": frame.decode_ms, "queue": (time.monotonic() - frame.captured_s) * 1000}
        item = _InFlight(frame, self._epoch, generation, self._cools, self._signals, timings)
        self._signals = _Signals()
        self._fresh = set()
        return item

    def _settle(self, source: Source | None) -> None:
        """No frame came: a file played to its end (or the frame limit reached) is finished once
        its last frame is delivered; without a source, waits a moment for a command."""
        ended = self._ended if source is None else source.finished
        if ended and not self._finished.is_set():
            with self._in_flight_changed:
                if self._in_flight_changed.wait_for(lambda: self._in_flight == 0, 0.1):
                    self._finished.set()
        elif source is None:
            self._closing.wait(0.1)

    def _drain(self, deadline: float | None = None) -> None:
        """Waits until every frame in flight is delivered (or dropped), or `deadline` (monotonic s)."""
        with self._in_flight_changed:
            while self._in_flight and (deadline is None or time.monotonic() < deadline) and not self._stop.is_set():
                self._in_flight_changed.wait(0.1)

    def _apply_commands(self) -> None:
        with self._commands_lock:
            commands, self._commands = self._commands, _Commands()
        if commands.stages is not None or commands.analysers is not None:
            self._drain()  # the steps change threads: none may be running them
            self._stop_step_threads()
            if commands.stages is not None:
                if self._replace(self._stages, commands.stages):
                    self._cool()  # the new stages build their graphs
                self._stages = commands.stages
            if commands.analysers is not None:
                self._replace(self._analysers, commands.analysers)
                self._analysers = commands.analysers
            self._groups = step_groups(self._stages, self.config.stage_threads)
            if self._thread is not None:
                self._start_step_threads()
        if commands.merges:
            self._signals |= _Signals(merges=tuple(commands.merges))
        if commands.model is not None or commands.source is not None:
            self._cool()  # before the load: the clock held meanwhile, paced playback drops no frame for it
        switched = commands.model is not None and self._switch_model(*commands.model)
        if switched or commands.source is not None:
            self._signals |= _Signals(reset=True)
            self._fresh = {id(step) for step in (*self._stages, *self._analysers)}
        if commands.source is not None:
            self._switch_source(commands.source)

    def _switch_model(self, name: str, weights: str | None) -> bool:
        """Parses with model `name` from the next frame on; whether it loaded. A model that fails
        to load changes nothing (the stages and analysers run on with what they know); `error`
        says why."""
        try:
            self._parser = self._load_parser(name, weights)
        except Exception as exc:  # noqa: BLE001 - any load failure is shown, the worker goes on
            self.error = f"cannot load model {name}: {redact_url(str(exc))}; still parsing with {self.stats.model}"
            log.exception("cannot load model %s", name)
            return False
        self.stats.model, self.stats.device = self._parser.spec.name, str(self._parser.device)
        self.error = self.source_error
        return True

    def _switch_source(self, spec: str) -> None:
        """Opens `spec` in place of the current source; the old source's frames in flight are
        dropped, so every result after this is the new source's."""
        try:
            new_source = self._open(spec)
            info = new_source.start()
        except (SourceError, ValueError) as exc:  # the old source stops: the user asked for another
            self.error = self.source_error = str(exc)
            log.info("cannot open the source: %s", exc, exc_info=True)
            new_source, info = None, None
        with self._latest_lock:
            self._epoch += 1
            self._latest = None
        old, self._source = self._source, new_source
        if old is not None:
            old.stop()
        self.playback.resume()  # a new source plays from its start
        self._signals |= _Signals(jump=True)
        self._finished.clear()
        self._ended = False
        self.stats.source = info.name if info is not None else ""
        self.stats.resolution = None
        self.source_switches += 1
        if info is not None:
            self.error = self.source_error = None

    def _replace(self, old: Sequence[ResultStage | Analyser], new: Sequence[ResultStage | Analyser]) -> bool:
        """Closes the steps of `old` that `new` does not keep (lent ones stay open); those `new`
        brings start afresh. Whether it brings any."""
        kept = {id(step) for step in new} | self._lent_stages
        for step in old:
            if id(step) not in kept:
                step.close()
        came = {id(step) for step in new} - {id(step) for step in old}
        self._fresh |= came
        return bool(came)

    # --- the other step threads -------------------------------------------------------
    def _start_step_threads(self) -> None:
        """One thread for each group of steps after the first (which runs on `_run`'s thread)."""
        self._inboxes = [queue.Queue(maxsize=self._full_pipe) for _ in self._groups[1:]]
        self._step_threads = [threading.Thread(target=self._run_steps, args=(index,), daemon=True,
                                               name=f"partsight-steps-{index}")
                              for index in range(1, len(self._groups))]
        for thread in self._step_threads:
            thread.start()

    def _stop_step_threads(self) -> None:
        """Ends the step threads after the first (nothing in flight) and joins them."""
        if self._inboxes:
            self._inboxes[0].put(None)  # each thread passes it on and ends
        for thread in self._step_threads:
            thread.join()
        self._step_threads, self._inboxes = [], []

    def _run_steps(self, index: int) -> None:
        inbox = self._inboxes[index - 1]
        carry = _Signals()
        while not self._stop.is_set():
            try:
                item = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                if index < len(self._groups) - 1:
                    self._inboxes[index].put(None)
                return
            item.timings["handoff"] = item.timings.get("handoff", 0.0) + (time.perf_counter() - item.handed_s) * 1000
            carry = self._run_group(index, item, carry)

    def _run_group(self, index: int, item: _InFlight, carry: _Signals) -> _Signals:
        """Runs group `index`'s steps on `item` and hands it on (or delivers it). What the steps
        must hear is heard even from a stale frame, which is then dropped: its signals go on
        with the next frame (returned: the `carry` of this thread for the next call)."""
        group = self._groups[index]
        try:
            self._hear(group, item)
            if self._stale(item):
                self._done()
                return carry | item.signals
            item.signals = carry | item.signals
            result = self._steps(group, item)
        except Exception as exc:  # a model failure must not kill the thread
            frame = item.frame
            self.error = f"processing frame {frame.index} failed: {redact_url(str(exc))}"
            log.exception("processing frame %d failed", frame.index)
            self._warmed_by(item)  # the frames after it go on
            self._done()
            return item.signals
        if result is not None:
            self._deliver(result, item)
        else:
            item.handed_s = time.perf_counter()
            self._inboxes[index].put(item)
        return _Signals()

    def _hear(self, group: _Group, item: _InFlight) -> None:
        """Tells the group's stages (and analysers, in the last group) what they must hear before
        the frame: merges, a reset, a seek."""
        steps = (*group.stages, *(self._analysers if group.delivers else ()))
        for step in steps:
            for new_id, into_id in item.signals.merges:
                step.merge_people(new_id, into_id)
            if item.signals.reset:
                step.reset()
        if item.signals.reset and group.delivers:  # the IDs start again: a choice made before names someone else
            self._id_restarts += 1
            self._selected_people = None
        if item.frame.seeked and not self._stale(item):
            for step in steps:
                step.seek(item.frame.pts_s)

    def _stale(self, item: _InFlight) -> bool:
        return item.epoch != self._epoch or item.generation != self.playback.generation

    def _done(self) -> None:
        with self._in_flight_changed:
            self._in_flight -= 1
            self._in_flight_changed.notify_all()

    def process(self, frame: Frame) -> FrameResult:
        """Runs one frame through parser, stages, analysers and renderer on the caller's thread
        (benchmarks, the service); only for a pipeline that was not started."""
        if self._thread is not None:
            raise RuntimeError("process() is for pipelines that were not started")
        self._apply_commands()
        item = self._take(frame, self.playback.generation)
        whole = _Group(tuple(self._stages), parses=True, delivers=True)
        self._hear(whole, item)
        return self._steps(whole, item)

    def warm_up(self, frame: Frame) -> None:
        """Runs `frame` (any picture of the source's size: a blank one will do) through the parser,
        the stages (ResultStage.warm_up) and analysers that start afresh, and the renderer, on the
        caller's thread, delivering and recording nothing, then resets those stages and analysers:
        the networks build their graphs for that size now rather than on the first frames that
        count. Steps that have run on frames taken and keep running (a tracker's IDs, after new
        stages or analysers came) are passed over and keep their state; the stages after one get the
        parse without its changes. Only while no frame is in flight (the service's FrameRunner,
        before its first frame; `_run`, while the steps are cold)."""
        fresh = [step for step in (*self._stages, *self._analysers) if id(step) in self._fresh]
        work = frame.for_parsing()
        parse = self._parser.parse(work.image)
        for stage in self._stages:
            if id(stage) in self._fresh:
                parse = stage.warm_up(work, parse)
        if work is not frame:
            parse = parse.scaled_to(frame.size)
        analysis = {analyser.name: analyser.update(frame, parse) for analyser in self._analysers
                    if id(analyser) in self._fresh}
        self.renderer.render(FrameResult(frame, parse, {}, latency_ms=0.0, fps=0.0, model=self.stats.model,
                                         pose_source=self.stats.pose_source, live=False, analysis=analysis))
        for step in fresh:
            step.reset()

    def _steps(self, group: _Group, item: _InFlight) -> FrameResult | None:
        """The group's steps on one frame: the FrameResult from the last group, else None (`item`
        holds the parse so far)."""
        frame, work, timings = item.frame, item.work, item.timings
        clock = time.perf_counter()
        if group.parses:
            parser = self._parser
            item.model = parser.spec.name
            prepared = parser.preprocess([work.image])
            timings["preprocess"], clock = _lap(clock)
            outputs = parser.infer(prepared.batch)
            timings["infer"], clock = _lap(clock)
            item.parse = parser.postprocess(outputs, prepared)[0]
            timings["postprocess"], clock = _lap(clock)
        for stage in group.stages:
            item.parse = stage(work, item.parse)
            timings[stage.name], clock = _lap(clock)
        if not group.delivers:
            return None
        parse = item.parse
        if work is not frame:
            parse = parse.scaled_to(frame.size)
            timings["scale_up"], clock = _lap(clock)
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
                             fps=self._fps, model=item.model, pose_source=self.stats.pose_source,
                             live=source is not None and source.live,
                             analysis=analysis, selected_people=self._selected_people,
                             id_restarts=self._id_restarts)
        result.image = self.renderer.render(result)
        timings["render"], clock = _lap(clock)
        return result

    def _analysed_people(self, parse: ParseResult) -> ParseResult:
        """What the analysers see: the chosen people only. With none of them in frame (others in
        view, or nobody), each chosen person with no pixels and no keypoints (not in view, as a
        person the parser finds nowhere; the analysers gave those frames to a person "0" nobody
        chose), and nobody's pixels either (the masks and part maps are the unchosen people's)."""
        selected = self._selected_people
        if selected is None:
            return parse
        chosen = [person for person in parse.people if person.id in selected]
        if chosen:
            return replace(parse, people=chosen)
        nobody = np.zeros_like(parse.person_mask)
        return replace(parse, people=[PersonParse(pid, nobody, None, 0.0) for pid in sorted(selected)],
                       labels=np.zeros_like(parse.labels), person_mask=nobody, part_probs=None, person_probs=None)

    def _deliver(self, result: FrameResult, item: _InFlight) -> None:
        """Records a result, then publishes it (unless a source switch made it stale meanwhile): a
        frame on screen is already in a running recording, so Stop keeps what was seen. A failure
        (making the frame's record, or a subscriber's: the others still get the frame) lands in
        `error` and the frames after it go on: it must not end the thread, nor leave the frames
        behind it undelivered."""
        try:
            with self._latest_lock:
                if item.epoch != self._epoch:
                    return
            try:
                self._record(result, item.signals.jump)
                with self._latest_lock:
                    self._latest = result
                self.stats.fps = result.fps
                self.stats.latency_ms = result.latency_ms
                self.stats.frames += 1
                self.stats.dropped = self._source.dropped if self._source else 0
                self.stats.resolution = result.frame.size
            except Exception as exc:  # noqa: BLE001 - whatever failed, the run goes on to its end
                self._delivery_failed(item.frame.index, exc)
                return
            finally:
                self._warmed_by(item)  # the frames after it go on
            with self._subscribers_lock:
                subscribers = list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(result)
                except Exception as exc:  # noqa: BLE001 - whoever raised, the others and the run go on
                    self._delivery_failed(item.frame.index, exc)
        finally:
            self._done()

    def _delivery_failed(self, index: int, exc: Exception) -> None:
        """`error` says why delivering frame `index` failed; the traceback is logged the first time
        a failure says this, later ones at debug level (a subscriber failing on every frame)."""
        message = redact_url(str(exc))
        self.error = f"delivering frame {index} failed: {message}"
        said = f"{type(exc).__name__}: {message}"
        level = logging.DEBUG if said in self._delivery_failures else logging.ERROR
        self._delivery_failures.add(said)
        log.log(level, "delivering frame %d failed", index, exc_info=True)

    def _record(self, result: FrameResult, jump: bool) -> None:
        with self._recorder_lock:  # held while queueing, so a Stop comes wholly before or after a frame
            recorder, clock = self._recorder, self._record_clock
            if recorder is None:
                return
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
                return
            except RecorderError as exc:  # the live view goes on without the recording
                self.error = str(exc)
                log.exception("recording stopped")
                self._recorder = None
        with contextlib.suppress(RecorderError):
            recorder.close()  # ends its thread; the error is already in self.error


def _lap(start: float) -> tuple[float, float]:
    now = time.perf_counter()
    return (now - start) * 1000, now
