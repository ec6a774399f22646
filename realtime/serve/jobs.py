"""Video jobs: each runs realtime.job.run_job, what `process` runs, so a job writes the files
`process` writes for the same options, in a folder of its own named by a random id (a client's
file name is never a path). A JobBoard runs at most `max_jobs` at once with `queue` more waiting,
refuses more (JobsBusy, with when to retry), and removes a finished job's folder `ttl_s` after it
ended. It runs jobs through an executor: `run_in_process` here, or a Ray task
(realtime.serve.ray_serve)."""
from __future__ import annotations

import logging
import math
import re
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from realtime.config import PipelineConfig
from realtime.job import JobOutputs, run_job, write_summary
from realtime.logs import one_line

log = logging.getLogger(__name__)

INPUT_NAME = "input"
# kind -> (file in the job's folder, media type)
OUTPUTS = {"video": ("annotated.mp4", "video/mp4"), "plain": ("plain.mp4", "video/mp4"),
           "metrics": ("metrics.jsonl", "application/x-ndjson"), "summary": ("summary.json", "application/json")}
LABELS_DIR = "labels"  # a job's label maps: labels/%06d.png by frame index, class ids as pixel values
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_UNSAFE = re.compile(r"[^\w .,()+-]")

RESERVED, QUEUED, RUNNING, DONE, FAILED, CANCELLED = "reserved", "queued", "running", "done", "failed", "cancelled"
ENDED = (DONE, FAILED, CANCELLED)


class JobsBusy(Exception):
    """Every job slot and queue place is taken; `retry_after_s` estimates when one frees."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server is busy with other videos; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        shown = job_id if _JOB_ID.fullmatch(job_id) else "with that id"
        super().__init__(f"no job {shown}: it never existed, was deleted, or expired")


class JobNotReady(Exception):
    """The job has not finished, or finished without that output."""


class JobWithoutFrames(JobNotReady):
    """The job ended (failed or cancelled) before it wrote a frame: it has no outputs."""


class FrameNotFound(LookupError):
    """A finished job with label maps has none for that frame index."""


Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class JobSpec:
    """What a job runs: `config` (its source is replaced by the uploaded file), the client's file
    `name` (shown in the summary in place of the server's path), whether the MP4s keep the video's
    sound, and whether it also keeps every frame's label map and the plain MP4 (`label_maps`: for a
    client that draws the parts itself)."""

    config: PipelineConfig
    name: str = "upload"
    audio: bool = True
    label_maps: bool = False


@dataclass
class JobWork:
    """One job for an executor: run `spec` on `folder`/input into `folder`, call
    `progress(frames done, frames expected or None)`, end early when `stop` is set."""

    id: str
    folder: Path
    spec: JobSpec
    stop: threading.Event
    progress: Progress


Executor = Callable[[JobWork], "str | None"]


def run_in_process(work: JobWork) -> str | None:
    """Runs the job here (realtime.job.run_job) and returns why it ended early (None: it did not)."""
    folder = work.folder
    config = replace(work.spec.config, source=str(folder / INPUT_NAME))
    label_maps = work.spec.label_maps
    outputs = JobOutputs(video=str(folder / OUTPUTS["video"][0]), metrics=str(folder / OUTPUTS["metrics"][0]),
                         summary=str(folder / OUTPUTS["summary"][0]) if config.exercise is not None else None,
                         labels_dir=str(folder / LABELS_DIR) if label_maps else None,
                         plain_video=str(folder / OUTPUTS["plain"][0]) if label_maps else None,
                         audio=work.spec.audio)
    frames, total = 0, None

    def on_start(info) -> None:
        nonlocal total
        counts = [n for n in (info.frame_count, config.frame_limit) if n]
        total = min(counts) if counts else None
        work.progress(0, total)

    def on_result(_result) -> None:
        nonlocal frames
        frames += 1
        work.progress(frames, total)

    result = run_job(config, outputs, on_start=on_start, on_result=on_result, stop=work.stop)
    if result.summary_error:
        return _one_line(result.summary_error, folder)
    if result.summary is not None and outputs.summary is not None:
        result.summary["source"]["name"] = work.spec.name
        write_summary(outputs.summary, result.summary)
    if result.error:
        return _one_line(result.error, folder)
    if result.frames == 0 and not result.stopped:
        return "the video gave no frames"
    return None


def display_name(name: str | None) -> str:
    """A client's file name as shown back (never a path): its last component, odd characters
    replaced, at most 100 characters."""
    base = re.split(r"[\\/]", name or "")[-1].strip()
    return _UNSAFE.sub("_", base)[:100] or "upload"


@dataclass
class _Job:
    id: str
    folder: Path
    state: str = RESERVED
    spec: JobSpec | None = None
    created_s: float = field(default_factory=time.time)
    started_s: float | None = None
    ended_s: float | None = None
    frames: int = 0
    total: int | None = None
    error: str | None = None
    deleted: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def eta_s(self, now: float) -> float | None:
        if self.state != RUNNING or not self.frames or not self.total or self.started_s is None:
            return None
        return (now - self.started_s) / self.frames * max(self.total - self.frames, 0)


class JobBoard:
    """The jobs of one service under `root` (created if missing). Worker threads (one per running
    slot) take queued jobs in order and hand them to `execute`; a janitor removes ended jobs after
    `ttl_s`. `stop` tells every job to stop; `close` also joins the threads and removes the job
    folders."""

    def __init__(self, root: Path, *, max_jobs: int, queue: int, ttl_s: float,
                 execute: Executor = run_in_process) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_jobs, self.queue, self.ttl_s = max_jobs, queue, ttl_s
        self._execute = execute
        self._jobs: dict[str, _Job] = {}
        self._pending: deque[str] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"partsight-job-{i}", daemon=True)
                         for i in range(max_jobs)]
        self._threads.append(threading.Thread(target=self._sweep, name="partsight-job-janitor", daemon=True))
        for thread in self._threads:
            thread.start()

    # --- what clients ask -------------------------------------------------------------
    def reserve(self) -> str:
        """A new job id and its empty folder, or JobsBusy when max_jobs + queue jobs are already
        reserved, queued or running."""
        with self._changed:
            if self._closed:
                raise JobsBusy(5)
            active = [job for job in self._jobs.values() if job.state not in ENDED and not job.deleted]
            if len(active) >= self.max_jobs + self.queue:
                raise JobsBusy(self._retry_after_s())
            job_id = uuid.uuid4().hex
            job = _Job(job_id, self.root / job_id)
            job.folder.mkdir()
            self._jobs[job.id] = job
            return job.id

    def input_path(self, job_id: str) -> Path:
        """Where a reserved job's video goes."""
        return self._get(job_id).folder / INPUT_NAME

    def submit(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """Queues a reserved job whose video is at input_path(job_id); its status."""
        with self._changed:
            job = self._get(job_id)
            if job.state != RESERVED:
                raise JobNotReady(f"job {job_id} was already submitted")
            job.spec, job.state = replace(spec, name=display_name(spec.name)), QUEUED
            self._pending.append(job_id)
            self._changed.notify_all()
            return self._status(job)

    def submit_bytes(self, job_id: str, data: bytes, spec: JobSpec) -> dict[str, Any]:
        """submit() with the video's bytes (a client on another machine)."""
        self.input_path(job_id).write_bytes(data)
        return self.submit(job_id, spec)

    def release(self, job_id: str) -> None:
        """Drops a reservation whose upload was refused."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None or job.state != RESERVED:
                return
            del self._jobs[job_id]
        shutil.rmtree(job.folder, ignore_errors=True)

    def status(self, job_id: str) -> dict[str, Any]:
        with self._changed:
            return self._status(self._get(job_id))

    def output_path(self, job_id: str, kind: str) -> Path:
        """The file of an ended job's output `kind` (OUTPUTS). JobNotFound, JobNotReady,
        JobWithoutFrames."""
        with self._changed:
            job = self._with_frames(job_id)
            path = job.folder / OUTPUTS[kind][0]
            if not path.is_file():
                why = {"summary": " (a summary needs an exercise)" if job.spec.config.exercise is None else "",
                       "plain": "" if job.spec.label_maps else " (it was started without label_maps)"}.get(kind, "")
                raise JobNotReady(f"job {job_id} has no {kind} output{why}")
            return path

    def label_path(self, job_id: str, index: int) -> Path:
        """The label PNG of frame `index` (the JSONL's "index") of an ended job that kept its label
        maps. JobNotFound, JobNotReady (not ended, or no label maps), JobWithoutFrames,
        FrameNotFound."""
        with self._changed:
            job = self._with_frames(job_id)
            folder = job.folder / LABELS_DIR
            if not folder.is_dir():
                raise JobNotReady(f"job {job_id} kept no label maps (it was started without label_maps)")
            path = folder / f"{index:06d}.png"
            if not path.is_file():
                raise FrameNotFound(f"job {job_id} has no frame {index}: its metrics list the frames it parsed")
            return path

    def read_output(self, job_id: str, kind: str) -> bytes:
        return self.output_path(job_id, kind).read_bytes()

    def read_labels(self, job_id: str, index: int) -> bytes:
        return self.label_path(job_id, index).read_bytes()

    def delete(self, job_id: str) -> dict[str, Any]:
        """Stops the job if it runs, forgets it and removes its folder (once its executor let go)."""
        with self._changed:
            job = self._get(job_id)
            job.deleted = True
            job.stop.set()
            del self._jobs[job_id]
            if job_id in self._pending:
                self._pending.remove(job_id)
            running = job.state == RUNNING
        if not running:
            shutil.rmtree(job.folder, ignore_errors=True)
        return {"id": job_id, "deleted": True}

    def report(self, job_id: str, frames: int, total: int | None) -> None:
        """Progress from the job's executor."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is not None:
                job.frames, job.total = frames, total

    def stop(self) -> None:
        """Tells every job to stop and the board to take no more (reserve: JobsBusy), without
        waiting for them: `close` does."""
        with self._changed:
            self._closed = True
            for job in self._jobs.values():
                if job.state == RUNNING and not job.stop.is_set():
                    log.info("job %s told to stop", job.id)
                job.stop.set()
            self._changed.notify_all()

    def close(self, timeout_s: float = 10.0) -> None:
        self.stop()
        with self._changed:
            jobs = list(self._jobs.values())
        for thread in self._threads:
            thread.join(timeout_s)
        for job in jobs:
            shutil.rmtree(job.folder, ignore_errors=True)

    # --- inside -----------------------------------------------------------------------
    def _get(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id) if _JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _ended(self, job_id: str) -> _Job:
        """The job, when it has ended; JobNotFound, JobNotReady."""
        job = self._get(job_id)
        if job.state not in ENDED:
            done = self._status(job)["progress"]
            raise JobNotReady(f"job {job_id} is {job.state}" + (f" ({done:.0f}% done)" if done is not None else ""))
        return job

    def _with_frames(self, job_id: str) -> _Job:
        """The job, when it has ended with at least one frame written (its annotated MP4 is made
        at the first); JobNotFound, JobNotReady, JobWithoutFrames."""
        job = self._ended(job_id)
        if not (job.folder / OUTPUTS["video"][0]).is_file():
            why = f" ({job.error})" if job.error else ""
            raise JobWithoutFrames(f"job {job_id} {job.state} before writing a frame{why}: it has no outputs")
        return job

    def _status(self, job: _Job) -> dict[str, Any]:
        now = time.time()
        ended = job.state in ENDED
        progress = 100.0 if job.state == DONE else (
            round(100.0 * min(job.frames / job.total, 1.0), 1) if job.total else None)
        eta = job.eta_s(now)
        outputs = {kind: f"/v1/jobs/{job.id}/{kind}" for kind, (file, _) in OUTPUTS.items()
                   if ended and (job.folder / file).is_file()}
        if ended and (job.folder / LABELS_DIR).is_dir():
            outputs["labels"] = f"/v1/jobs/{job.id}/labels/{{index}}"
        return {
            "id": job.id,
            "state": job.state,
            "name": None if job.spec is None else job.spec.name,
            "model": None if job.spec is None else job.spec.config.model,
            "frames": job.frames,
            "total_frames": job.total,
            "progress": progress,
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": None if job.started_s is None else round((job.ended_s or now) - job.started_s, 2),
            "error": job.error,
            "outputs": outputs,
            "expires_in_s": round(max(self.ttl_s - (now - job.ended_s), 0.0), 1) if ended else None,
        }

    def _retry_after_s(self) -> int:
        now = time.time()
        etas = [eta for job in self._jobs.values() if (eta := job.eta_s(now)) is not None]
        return int(min(max(math.ceil(min(etas)) if etas else 10, 1), 3600))

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                job = self._jobs[self._pending.popleft()]
                job.state, job.started_s = RUNNING, time.time()
            work = JobWork(job.id, job.folder, job.spec, job.stop,
                           lambda frames, total, job_id=job.id: self.report(job_id, frames, total))
            try:
                error = self._execute(work)
                state = CANCELLED if job.stop.is_set() else (FAILED if error else DONE)
            except Exception as exc:  # noqa: BLE001 - the job fails, the board goes on
                log.exception("job %s failed", job.id)
                error, state = _one_line(exc, job.folder), FAILED
            with self._changed:
                job.state, job.error, job.ended_s = state, error, time.time()
                if state == DONE and job.total is None:
                    job.total = job.frames
            if job.deleted:
                shutil.rmtree(job.folder, ignore_errors=True)
            log.info("job %s %s: %d frames%s", job.id, state, job.frames, f" ({error})" if error else "")

    def _sweep(self) -> None:
        period_s = min(max(self.ttl_s / 4, 0.2), 60.0)
        while True:
            with self._changed:
                if self._changed.wait_for(lambda: self._closed, timeout=period_s):
                    return
                now = time.time()
                expired = [job for job in self._jobs.values()
                           if (job.state in ENDED and now - job.ended_s > self.ttl_s)
                           or (job.state == RESERVED and now - job.created_s > self.ttl_s)]
                for job in expired:
                    del self._jobs[job.id]
            for job in expired:
                shutil.rmtree(job.folder, ignore_errors=True)
                log.info("job %s expired; its folder is removed", job.id)


def _one_line(error: BaseException | str, folder: Path) -> str:
    """An error (an exception's message, or a job's own words) for a client, as logs.one_line
    writes it, the server's folder taken out."""
    return one_line(error).replace(str(folder / INPUT_NAME), "the upload").replace(str(folder), "the job")
