"""What one batch worker (a Ray actor: realtime.batch.driver) does: loads the models once, then
runs the tasks handed to it one after another through realtime.job.run_job, the code `process`
runs, so each input's outputs are those of `process` with the same options. Nothing here imports
Ray; the driver asks `progress()` from another thread of the actor while `run()` works."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from realtime.analysis.exercises import Exercise
from realtime.batch.outputs import OutputSet
from realtime.config import PipelineConfig
from realtime.job import JobModels, run_job
from realtime.logs import one_line
from realtime.render import plural
from realtime.sources import redact_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One input for a worker: `index` in the batch, `source`, the `exercise` it counts (None:
    none), its `outputs`, and whether those hold a finished earlier result (`earlier_done`: its
    latest manifest line ok or skipped), which a failed job never replaces."""

    index: int
    source: str
    exercise: Exercise | None
    outputs: OutputSet
    earlier_done: bool = False


@dataclass(frozen=True)
class Progress:
    """The task a worker is on (None: idle), its frames done so far and the frames it will have
    (None until the source is open, or unknown)."""

    task: int | None
    frames: int
    total: int | None


class BatchWorker:
    """Runs tasks with `config`'s options (its source and exercise are each task's) on `threads`
    CPU threads; `audio`: keep each source's sound in its MP4; `readout`: draw the speed readout
    into it; `node`: where it runs (a Ray node ID), for the manifest. The parser and the stages
    are loaded here, once (realtime.job.JobModels), so a bad model or weights file fails the
    worker's start, not every task."""

    def __init__(self, config: PipelineConfig, *, threads: int, audio: bool = True, readout: bool = False,
                 node: str | None = None) -> None:
        import cv2
        import torch

        from realtime.logs import configure_logging

        configure_logging()
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        self.config = config
        self.audio = audio
        self.readout = readout
        self.node = node
        self._models = JobModels()
        self._models.lend(config)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress = Progress(None, 0, None)

    def run(self, task: Task) -> dict[str, Any]:
        """Processes `task` into its OutputSet, renamed into place when complete, or when the job
        failed after writing frames, its recording whole (a truncated file: what it wrote is kept,
        as `process` keeps it), unless the task's earlier result is done. Returns the
        manifest fields the worker knows: status ("ok", "failed" or "interrupted" after `stop()`),
        frames, duration_s, reps, seconds, node, unreadable, error (one line). Never raises for a bad input."""
        self._stop.clear()
        with self._lock:
            self._progress = Progress(task.index, 0, None)
        outputs = task.outputs
        start = time.monotonic()
        record: dict[str, Any] = {"frames": 0, "duration_s": None, "reps": None, "node": self.node, "unreadable": []}
        try:
            outputs.prepare()
            config = replace(self.config, source=task.source, exercise=task.exercise)
            job = run_job(config, outputs.job_outputs(audio=self.audio, readout=self.readout),
                          on_start=self._started, on_result=self._counted, stop=self._stop, models=self._models)
            fps = job.source.fps
            record.update(frames=job.frames, duration_s=round(job.frames / fps, 3) if fps else None,
                          unreadable=job.skipped)
            if job.summary is not None:
                record["reps"] = {pid: person["reps"] for pid, person in job.summary["people"].items()}
            if job.stopped:
                record.update(status="interrupted", error="interrupted")
            elif job.error:
                kept = bool(job.frames) and not job.recording_failed and not task.earlier_done and _commit(outputs)
                where = f"its {plural(job.frames, 'frame')} kept in {outputs.name}/" if kept \
                    else f"after {plural(job.frames, 'frame')}"
                record.update(status="failed", error=f"{job.error} ({where})")
            elif job.frames == 0:
                record.update(status="failed", error=f"{job.source.name} gave no frames")
            elif job.summary_error:
                record.update(status="failed", error=job.summary_error)
            else:
                outputs.commit()
                record.update(status="ok", error=None)
        except Exception as exc:  # a bad input is a failed line, never a dead worker
            log.exception("batch input %s failed", redact_url(task.source))
            record.update(status="failed", error=exc)
        finally:
            if record.get("status") != "ok":
                outputs.discard()
            with self._lock:
                self._progress = Progress(None, 0, None)
        if record["error"] is not None:
            record["error"] = one_line(record["error"])
        record["seconds"] = round(time.monotonic() - start, 3)
        return record

    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    def stop(self) -> None:
        """Ends the task in progress: its temporary outputs are removed and it returns
        "interrupted"."""
        self._stop.set()

    def close(self) -> None:
        self._models.close()

    def _started(self, info) -> None:
        limit = self.config.frame_limit
        total = min(filter(None, (info.frame_count, limit)), default=None)
        with self._lock:
            self._progress = replace(self._progress, total=total)

    def _counted(self, _result) -> None:
        with self._lock:
            self._progress = replace(self._progress, frames=self._progress.frames + 1)


def _commit(outputs: OutputSet) -> bool:
    """Puts the outputs of a job that failed after writing frames in place; whether it could."""
    try:
        outputs.commit()
    except FileNotFoundError:  # an output the job never opened: nothing is half kept
        return False
    return True
