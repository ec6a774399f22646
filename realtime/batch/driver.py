"""The batch on Ray (https://docs.ray.io): one actor per worker (realtime.batch.worker's
BatchWorker, the models loaded once), the inputs handed out largest first to whichever worker is
free, an input whose worker process dies retried on another (at most MAX_RETRIES times; Ray
restarts the dead worker), progress polled from the actors into two tqdm bars (videos, frames),
Ctrl-C that stops the workers and removes what they had half written. Only the driver writes the
manifest. Imported only by `batch`: the rest of PartSight never needs Ray."""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import av
import ray
from ray.exceptions import RayError, RayTaskError
from tqdm import tqdm

from realtime.analysis.exercises import Exercise, get_exercise
from realtime.batch.inputs import BatchInput, output_names
from realtime.batch.outputs import DONE_STATUSES, Manifest, OutputSet, already_done, fingerprint
from realtime.batch.worker import BatchWorker, Task
from realtime.config import PipelineConfig
from realtime.job import unreadable_words
from realtime.logs import STOP_SIGNALS, one_line, ray_notes_to_log_file, stop_exception, stop_signal
from realtime.ray_address import check_ray_address
from realtime.render import plural
from realtime.sources import URL, frames_shown, redact_url

MAX_RETRIES = 2
POLL_S = 0.5
STOP_WAIT_S = 30.0

log = logging.getLogger(__name__)


class BatchError(Exception):
    """The batch cannot run (no cluster, no worker could start, too few resources): one line."""


class BatchActor(BatchWorker):
    """BatchWorker as a Ray actor: says which node it runs on, and a failure to load the models
    is kept as one line for `ready()` instead of a dead actor's traceback."""

    def __init__(self, config: PipelineConfig, *, threads: int, audio: bool, readout: bool) -> None:
        self.node = ray.get_runtime_context().get_node_id()
        self.error: str | None = None
        try:
            super().__init__(config, threads=threads, audio=audio, readout=readout, node=self.node)
        except Exception as exc:  # reported by ready() as one line
            log.exception("a batch worker could not start")
            self.error = one_line(exc)

    def ready(self) -> tuple[str, str | None]:
        return self.node, self.error


@dataclass(frozen=True)
class BatchOptions:
    """out: DIR; config: the options of every input (its source unset, its exercise the
    command's --exercise); ray_address: an existing cluster (None: a local one on this machine's
    cores); workers: None = what the cluster's CPUs/GPUs allow; force: redo inputs already done;
    labels: write label PNGs; audio: keep each source's sound; readout: draw the speed readout into
    the MP4s; progress: show the bars."""

    out: Path
    config: PipelineConfig
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    threads_per_worker: int = 1
    force: bool = False
    labels: bool = False
    audio: bool = True
    readout: bool = False
    progress: bool = True


@dataclass
class BatchReport:
    """The manifest lines this run wrote (skipped, then in the order inputs finished); the inputs
    it did not finish (Ctrl-C: their input and output fields); each input's place on the command
    line; the workers it ran and its wall time in seconds; the stop signal that ended it (SIGINT
    for Ctrl-C, SIGTERM; None when none did)."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    unfinished: list[dict[str, Any]] = field(default_factory=list)
    order: dict[str, int] = field(default_factory=dict)
    workers: int = 0
    startup_s: float = 0.0
    wall_s: float = 0.0
    stop_signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return bool(self.unfinished)

    def count(self, status: str) -> int:
        return sum(line["status"] == status for line in self.lines)


@dataclass
class _Job:
    """A task with its manifest fields and its attempts so far."""

    task: Task
    line: dict[str, Any]
    frames_estimate: int | None
    attempts: int = 0
    died_on: set = field(default_factory=set)


def run_batch(inputs: list[BatchInput], options: BatchOptions) -> BatchReport:
    """Processes every input not already done into options.out, appending one manifest line per
    input as it finishes. BatchError (one line) when the cluster cannot run it."""
    start = time.monotonic()
    manifest = Manifest(options.out)
    report = BatchReport()
    jobs = _plan(inputs, options, manifest, report)
    if jobs:
        connecting = time.monotonic()
        try:
            with _ctrl_c_held_while_ray_starts():
                _connect(options.ray_address)
            _Driver(jobs, options, manifest, report, since=connecting).run()
        finally:
            ray.shutdown()  # a local cluster stops with it: every process this run started
    report.wall_s = time.monotonic() - start
    return report


def _plan(inputs: list[BatchInput], options: BatchOptions, manifest: Manifest, report: BatchReport) -> list[_Job]:
    """Skips (with a manifest line) the inputs already done with these options, records those
    whose exercise is unknown as failed, and returns the others, largest first."""
    earlier = manifest.latest()
    names = output_names(inputs, {shown: line["output"] for shown, line in earlier.items()
                                  if isinstance(line.get("output"), str)})
    jobs = []
    report.order = {redact_url(item.source): index for index, item in enumerate(inputs)}
    for index, item in enumerate(inputs):
        line: dict[str, Any] = {"input": redact_url(item.source), "output": names[item.source], "exercise": None}
        try:
            exercise = _exercise_of(item, options.config.exercise)
        except ValueError as exc:
            report.lines.append(manifest.append({**line, "status": "failed", "error": one_line(exc), "attempts": 0}))
            continue
        line["exercise"] = exercise.name if exercise else None
        config = replace(options.config, source=item.source, exercise=exercise)
        line["fingerprint"] = fingerprint(config, labels=options.labels, audio=options.audio,
                                          readout=options.readout)
        outputs = OutputSet(options.out / names[item.source], summary=exercise is not None, labels=options.labels)
        previous = earlier.get(line["input"])
        if not options.force and already_done(previous, line["fingerprint"], outputs):
            kept = {key: previous.get(key) for key in ("frames", "duration_s", "reps", "node", "unreadable")}
            report.lines.append(manifest.append({**line, "status": "skipped", **kept, "seconds": 0.0, "attempts": 0,
                                                 "error": None}))
            continue
        earlier_done = previous is not None and previous.get("status") in DONE_STATUSES and outputs.complete()
        jobs.append(_Job(Task(index, item.source, exercise, outputs, earlier_done), line,
                         _frames_estimate(item.source, options.config.frame_limit)))
    return sorted(jobs, key=lambda job: (-(job.frames_estimate if job.frames_estimate is not None else math.inf),
                                         job.task.index))


def _exercise_of(item: BatchInput, command_line: Exercise | None) -> Exercise | None:
    """The exercise `item` counts: its manifest row's preset; the command line's (`command_line`)
    for a row naming none, or naming custom (whose joints and angles only the command line gives).
    ValueError (one line) for an unknown name, or custom without --exercise custom."""
    if item.exercise is None:
        return command_line
    if item.exercise == "custom":
        if command_line is None or command_line.name != "custom":
            raise ValueError("a manifest row naming custom counts the command line's custom exercise: give "
                             "--exercise custom --joint JOINT --start-deg DEG --turn-deg DEG")
        return command_line
    return get_exercise(item.exercise)


def _frames_estimate(source: str, limit: int | None) -> int | None:
    """Frames the input holds (read from its header; at most `limit`), None when unknown (URLs,
    image folders, unreadable files: handed out first)."""
    if URL.match(source) or not Path(source).is_file():
        return None
    try:
        with av.open(source) as container:
            count = frames_shown(container.streams.video[0]) if container.streams.video else None
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return min(count, limit) if count and limit else count


def _connect(address: str | None) -> None:
    """The cluster at `address`, else at $RAY_ADDRESS (Ray's own convention), else a new local
    cluster on this machine's cores (without the dashboard: it starts faster). Ray's notes on its
    token authentication (a local cluster gets a token, Ray's default, kept) go to the log file."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        check_ray_address(address)
        with ray_notes_to_log_file():
            ray.init(address=address or "local", logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=None if address else False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise BatchError(f"cannot start or reach {where}: {_ray_error_line(exc)}") from None


def _ray_error_line(exc: BaseException) -> str:
    """What the user is told of an error from Ray (a RayError, or ray.init's), as one line
    (logs.one_line): the exception a worker's code raised, which a RayTaskError wraps, else the
    first line of Ray's message (the rest is Ray's detail: a remote traceback, the actor's ID)."""
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        return _ray_error_line(exc.cause) if isinstance(exc.cause, RayError) else one_line(exc.cause)
    text = str(exc).strip()
    return one_line(text.splitlines()[0] if text else exc)


@contextmanager
def _ctrl_c_held_while_ray_starts() -> Iterator[None]:
    """A Ctrl-C while Ray starts takes effect once it has started (KeyboardInterrupt at the end of
    the block), so that ray.shutdown stops every process of a local cluster: cut short inside
    ray.init, the processes started so far are nobody's, and its agents outlive the command by
    minutes. A second Ctrl-C raises at once; SIGTERM alike, until ray.init sets Ray's own handler
    for it (which exits at once: Ray's, not held). Only the main thread gets signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked: int | None = None  # the stop signal that came

    def hold(signum, _frame) -> None:
        nonlocal asked
        if asked is not None:
            raise stop_exception(signum)
        asked = signum
        print("partsight: interrupted: Ray is starting; it is stopped as soon as it has (Ctrl-C again to quit now)",
              file=sys.stderr)

    previous = {signum: signal.signal(signum, hold) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():  # Ray's own SIGTERM handler, set in ray.init, goes too
            signal.signal(signum, handler)
    if asked is not None:
        raise stop_exception(asked)


def worker_count(options: BatchOptions, resources: dict[str, float], tasks: int) -> int:
    """--workers, or as many as the cluster's CPUs (and GPUs, with --gpus-per-worker) hold, at
    most one per task. BatchError when the cluster cannot hold what is asked."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = int(cpus // options.threads_per_worker)
    if options.gpus_per_worker:
        fit = min(fit, int(gpus // options.gpus_per_worker + 1e-9))
    held = f"{cpus:g} CPUs and {gpus:g} GPUs"
    asked = f"{options.threads_per_worker} CPU(s)" + (f" and {options.gpus_per_worker:g} GPU" if options.gpus_per_worker else "")
    if fit < 1:
        raise BatchError(f"the Ray cluster has {held}: not enough for one worker of {asked}")
    if options.workers is not None and options.workers > fit:
        raise BatchError(f"the Ray cluster has {held}: {fit} workers of {asked} fit, not {options.workers}")
    return min(options.workers or fit, tasks)


class _Driver:
    """Hands the jobs to the actors and collects their results (one thread: the caller's)."""

    def __init__(self, jobs: list[_Job], options: BatchOptions, manifest: Manifest, report: BatchReport, *,
                 since: float) -> None:
        self.since = since  # when connecting to Ray began
        self.options = options
        self.manifest = manifest
        self.report = report
        self.pending: deque[_Job] = deque(jobs)
        self.running: dict[Any, tuple[Any, _Job]] = {}  # ObjectRef of run() -> (actor, job)
        self.restarting: dict[Any, Any] = {}  # ObjectRef of ready() on an actor Ray restarts -> the actor
        self.idle: list[Any] = []
        self.workers: dict[Any, int] = {}  # the live actors -> how often each died
        self.frames_done = 0
        self.live_frames: dict[int, int] = {}  # task index -> frames so far
        self.videos = self.frames = None
        self.stop_asked: int | None = None  # the stop signal that asked to stop

    def run(self) -> None:
        """Runs the jobs to the end or to a Ctrl-C. Once the workers are up, Ctrl-C only asks to
        stop (the loop acts on it within POLL_S, never halfway through recording a result); a
        second one stops waiting for the workers."""
        ctrl_c = None
        try:
            self._start_actors()
            self._open_bars()
            if threading.current_thread() is threading.main_thread():
                ctrl_c = {signum: signal.signal(signum, self._ask_to_stop) for signum in STOP_SIGNALS}
            while (self.pending or self.running) and self.stop_asked is None:
                self._hand_out()
                waited = [*self.running, *self.restarting]
                ready, _ = ray.wait(waited, num_returns=1, timeout=POLL_S) if waited else ([], [])
                for ref in ready:
                    if ref in self.restarting:
                        self._restarted(ref)
                    else:
                        self._finished(ref)
                self._poll_progress()
            if self.stop_asked is not None:
                self._interrupt(self.stop_asked)
        except KeyboardInterrupt as exc:
            self._interrupt(stop_signal(exc))
        finally:
            for signum, handler in (ctrl_c or {}).items():
                signal.signal(signum, handler)
            for bar in (self.videos, self.frames):
                if bar is not None:
                    bar.close()
            for actor in self.workers:
                ray.kill(actor)

    def _ask_to_stop(self, signum, _frame) -> None:
        if self.stop_asked is not None:
            raise stop_exception(signum)
        self.stop_asked = signum

    # --- workers --------------------------------------------------------------------------
    def _start_actors(self) -> None:
        options = self.options
        count = worker_count(options, ray.cluster_resources(), len(self.pending))
        actor_class = ray.remote(BatchActor).options(
            num_cpus=options.threads_per_worker, num_gpus=options.gpus_per_worker, max_restarts=MAX_RETRIES,
            max_concurrency=2)
        actors = [actor_class.remote(options.config, threads=options.threads_per_worker, audio=options.audio,
                                     readout=options.readout) for _ in range(count)]
        self.workers = {actor: 0 for actor in actors}
        errors = []
        for actor in actors:
            try:
                _node, error = ray.get(actor.ready.remote())
            except RayError as exc:
                error = _ray_error_line(exc)
            if error:
                errors.append(error)
                ray.kill(actor)
                del self.workers[actor]
            else:
                self.idle.append(actor)
        if not self.idle:
            raise BatchError(f"no batch worker could start: {errors[0]}")
        for error in dict.fromkeys(errors):
            tqdm.write(f"partsight: warning: a batch worker could not start: {error}", file=sys.stderr)
        self.report.workers = len(self.idle)
        self.report.startup_s = time.monotonic() - self.since

    def _open_bars(self) -> None:
        """The videos and frames bars, their clocks started once the workers are ready (so rates
        and ETAs are the work's, not Ray's start)."""
        show = self.options.progress
        self.videos = tqdm(total=len(self.pending), unit="video", desc="videos", position=0, file=sys.stderr,
                           dynamic_ncols=True, disable=not show)
        estimate = sum(job.frames_estimate or 0 for job in self.pending)
        self.frames = tqdm(total=estimate or None, unit="frame", desc="frames", position=1, file=sys.stderr,
                           dynamic_ncols=True, disable=not show)

    def _hand_out(self) -> None:
        """Each idle actor takes the first pending job that has not killed it already (a retried
        job waits for another worker while one is alive)."""
        for actor in list(self.idle):
            job = next((j for j in self.pending if actor not in j.died_on or self.workers.keys() <= j.died_on), None)
            if job is None:
                continue
            self.pending.remove(job)
            self.idle.remove(actor)
            job.attempts += 1
            self.live_frames[job.task.index] = 0
            self.running[actor.run.remote(job.task)] = (actor, job)

    def _finished(self, ref) -> None:
        actor, job = self.running.pop(ref)
        self.live_frames.pop(job.task.index, None)
        try:
            record = ray.get(ref)
        except RayTaskError as exc:  # the worker's own code failed outside the job (a bug): one line
            record = {"status": "failed", "error": _ray_error_line(exc)}
        except RayError as exc:  # the worker process died (killed, out of memory, node lost)
            self._worker_died(actor, job, exc)
            return
        self.idle.append(actor)
        self._record(job, record)

    def _worker_died(self, actor, job: _Job, exc: RayError) -> None:
        self.workers[actor] += 1
        if self.workers[actor] > MAX_RETRIES:
            del self.workers[actor]  # Ray gives up restarting it
            ray.kill(actor)
        else:  # Ray restarts it; a call meanwhile fails (ActorUnavailableError) unless it is retried until then
            self.restarting[actor.ready.options(max_task_retries=-1).remote()] = actor
        job.died_on.add(actor)
        reason = f"its worker died ({_ray_error_line(exc)})"
        if job.attempts <= MAX_RETRIES and self.workers:
            tqdm.write(f"partsight: warning: {one_line(job.task.source)}: {reason}; retrying", file=sys.stderr)
            self.pending.appendleft(job)
            return
        job.task.outputs.discard()
        self._record(job, {"status": "failed", "error": f"{reason} on each of {job.attempts} attempts"})
        self._fail_pending_without_workers()

    def _restarted(self, ref) -> None:
        """An actor Ray restarted is ready again (its models loaded) or could not start."""
        actor = self.restarting.pop(ref)
        try:
            _node, error = ray.get(ref)
        except RayError as exc:
            error = _ray_error_line(exc)
        if not error:
            self.idle.append(actor)
            return
        tqdm.write(f"partsight: warning: a batch worker could not restart: {error}", file=sys.stderr)
        del self.workers[actor]
        ray.kill(actor)
        self._fail_pending_without_workers()

    def _fail_pending_without_workers(self) -> None:
        if not self.workers:
            for left in list(self.pending):
                self.pending.remove(left)
                self._record(left, {"status": "failed", "error": "every batch worker died"})

    # --- results and progress -----------------------------------------------------------
    def _record(self, job: _Job, record: dict[str, Any]) -> None:
        line = self.manifest.append({**job.line, **record, "attempts": job.attempts})
        self.report.lines.append(line)
        frames = line.get("frames") or 0
        self.frames_done += frames
        if self.frames.total is not None:
            self.frames.total += frames - (job.frames_estimate or 0)
        if line["status"] != "ok":
            tqdm.write(f"partsight: warning: {one_line(job.task.source)} failed: {line['error']}", file=sys.stderr)
        self.videos.set_postfix(ok=self.report.count("ok"), failed=self.report.count("failed"), refresh=False)
        self.videos.update(1)
        self._show_frames()

    def _poll_progress(self) -> None:
        asked = {actor.progress.remote(): actor for actor, _job in self.running.values()}
        if not asked:
            return
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=POLL_S)
        for ref in ready:
            try:
                progress = ray.get(ref)
            except RayError:
                continue  # a dead worker: its run() says so
            if progress.task in self.live_frames:
                self.live_frames[progress.task] = progress.frames
        self._show_frames()

    def _show_frames(self) -> None:
        self.frames.update(self.frames_done + sum(self.live_frames.values()) - self.frames.n)

    # --- Ctrl-C -------------------------------------------------------------------------
    def _interrupt(self, signum: int) -> None:
        """Stop signal `signum` came: stops every worker's job (each removes its temporary outputs) and waits up to
        STOP_WAIT_S: a job that finished before its stop is recorded as usual. Kills the workers
        that did not answer and waits for them to die before removing what they left, then lists
        the unfinished inputs."""
        tqdm.write("partsight: interrupted: stopping the workers, removing unfinished outputs", file=sys.stderr)
        try:
            for actor, _job in self.running.values():
                actor.stop.remote()
            for ref in self._wait_running():
                self._stopped(ref)
            for actor, _job in self.running.values():
                ray.kill(actor, no_restart=True)
            self._wait_running()
        except (KeyboardInterrupt, RayError):
            pass
        unfinished = [job for _actor, job in self.running.values()] + list(self.pending)
        for job in unfinished:
            job.task.outputs.discard()
        self.report.unfinished = [{"input": job.line["input"], "output": job.line["output"]} for job in unfinished]
        self.report.stop_signal = signum

    def _wait_running(self) -> list:
        """The running jobs' results that came within STOP_WAIT_S."""
        if not self.running:
            return []
        ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=STOP_WAIT_S)
        return ready

    def _stopped(self, ref) -> None:
        """A job that answered its stop: handled as any finished job when it had ended on its own
        (its outputs in place, or failed), left in `running` as unfinished when the stop ended it."""
        try:
            if ray.get(ref)["status"] == "interrupted":
                return
        except RayError:
            return
        self._finished(ref)


def result_table(report: BatchReport) -> str:
    """Per input: output folder, status, frames, reps (all people's; the manifest has them per
    person), seconds, node (first 8 characters) and
    error; then the totals: counts per status, frames, wall time, frames/s and videos/min."""
    rows = [("output", "status", "frames", "reps", "seconds", "node", "error")]
    unfinished = [{**line, "status": "unfinished", "error": "interrupted"} for line in report.unfinished]
    for line in sorted(report.lines + unfinished, key=lambda line: report.order.get(line["input"], -1)):
        reps = line.get("reps")
        rows.append((line["output"], line["status"], str(line.get("frames") or 0),
                     "-" if reps is None else str(sum(reps.values())),
                     f"{line.get('seconds') or 0:.1f}", (line.get("node") or "-")[:8],
                     line.get("error") or unreadable_words(line.get("unreadable") or [])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    processed = [line for line in report.lines if line["status"] != "skipped"]
    frames = sum(line.get("frames") or 0 for line in processed)
    wall = max(report.wall_s, 1e-9)
    ok = report.count("ok")
    lines.append(f"{len(report.lines) + len(report.unfinished)} inputs: {ok} ok, {report.count('skipped')} skipped, "
                 f"{report.count('failed')} failed" + (f", {len(report.unfinished)} unfinished" if report.unfinished else "")
                 + f"; {plural(frames, 'frame')} in {report.wall_s:.1f} s on {report.workers} worker(s) "
                 f"({report.startup_s:.1f} s to start them): {frames / wall:.1f} frames/s, {ok * 60 / wall:.1f} videos/min")
    return "\n".join(line.rstrip() for line in lines)


def progress_wanted() -> bool:
    """Bars on a terminal, or anywhere with PARTSIGHT_PROGRESS=1 (as `process`)."""
    return sys.stderr.isatty() or os.environ.get("PARTSIGHT_PROGRESS") == "1"
