"""What one serving process (uvicorn, or one Ray Serve replica) works with: its settings, the
loaded parsers (ParsePool), the video jobs (a JobBoard here, or a Ray actor's through RayJobs),
and the gates that bound /v1/parse requests and live connections."""
from __future__ import annotations

import hmac
import logging
import math
import shutil
import threading
import uuid
from pathlib import Path

import numpy as np

from realtime.serve.engine import ParseOptions, ParsePool
from realtime.serve.folders import JOBS_PREFIX, UPLOADS_PREFIX, OwnedFolder, remove_orphans
from realtime.serve.jobs import Executor, JobBoard, JobSpec, run_in_process
from realtime.serve.settings import ServeSettings

log = logging.getLogger(__name__)

WARM_UP_HW = (480, 640)  # the frame parsed at start and a /v1/live connection's warm-up: the page's camera size


class Gate:
    """At most `capacity` callers inside at once: `try_enter` says False to the next one.
    `retry_after_s` estimates in whole seconds when a place frees, from the recent time spent
    inside."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._inside = 0
        self._mean_s: float | None = None
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self._inside >= self.capacity:
                return False
            self._inside += 1
            return True

    def leave(self, spent_s: float | None = None) -> None:
        with self._lock:
            self._inside -= 1
            if spent_s is not None:
                self._mean_s = spent_s if self._mean_s is None else 0.8 * self._mean_s + 0.2 * spent_s

    def retry_after_s(self) -> int:
        with self._lock:
            return int(min(max(math.ceil(self._mean_s or 1.0), 1), 600))


class LocalJobs:
    """The JobBoard of this process, as the app calls it (RayJobs offers the same)."""

    def __init__(self, board: JobBoard) -> None:
        self.board = board

    def reserve(self) -> str:
        return self.board.reserve()

    def submit(self, job_id: str, upload: Path, spec: JobSpec) -> dict:
        shutil.move(upload, self.board.input_path(job_id))
        return self.board.submit(job_id, spec)

    def release(self, job_id: str) -> None:
        self.board.release(job_id)

    def status(self, job_id: str) -> dict:
        return self.board.status(job_id)

    def output(self, job_id: str, kind: str) -> Path | bytes:
        return self.board.output_path(job_id, kind)

    def labels(self, job_id: str, index: int) -> Path | bytes:
        return self.board.label_path(job_id, index)

    def delete(self, job_id: str) -> dict:
        return self.board.delete(job_id)

    def stop(self) -> None:
        self.board.stop()

    def close(self) -> None:
        self.board.close()


def local_board(settings: ServeSettings, execute: Executor = run_in_process) -> tuple[JobBoard, OwnedFolder | None]:
    """The settings' JobBoard running jobs through `execute`, and the temporary folder made for it
    (None with --jobs-dir), once the temporary folders of killed servers are removed
    (folders.remove_orphans: they hold their clients' videos)."""
    remove_orphans()
    made = None if settings.jobs_dir else OwnedFolder(JOBS_PREFIX)
    limits = settings.limits
    board = JobBoard(Path(settings.jobs_dir) if settings.jobs_dir else made.path, max_jobs=limits.max_jobs,
                     queue=limits.job_queue, ttl_s=limits.job_ttl_s, execute=execute)
    return board, made


class Service:
    """One process's share of the service. Loads the settings' model in the background at start
    (`ready` once it is loaded; `warm_error` says why not). `stop` tells the jobs to stop; `close`
    stops them and waits for them, unloads the models and removes its temporary folders."""

    def __init__(self, settings: ServeSettings, jobs, *, cleanup: OwnedFolder | None = None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.parsers = ParsePool(settings.device, settings.dtype)
        self.parse_gate = Gate(settings.limits.parse_queue)
        self.live_gate = Gate(settings.limits.max_live)
        self.replica = uuid.uuid4().hex[:8]  # names this process in responses (X-PartSight-Replica)
        self._uploads = OwnedFolder(f"{UPLOADS_PREFIX}{self.replica}-")  # named by its replica
        self.scratch = self._uploads.path
        self.warm_error: str | None = None
        self._cleanup = cleanup
        self._ready = threading.Event()
        self._warm = threading.Thread(target=self._warm_up, name="partsight-warm-up", daemon=True)
        self._warm.start()

    @classmethod
    def local(cls, settings: ServeSettings) -> Service:
        board, made = local_board(settings)
        return cls(settings, LocalJobs(board), cleanup=made)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def parse_options(self, **chosen) -> ParseOptions:
        """The ParseOptions of a request that chose `chosen` (ParseOptions fields but people_size):
        the settings' model and people source where it chose none."""
        settings = self.settings
        options = {"model": settings.model, "people": settings.people, **chosen}
        return ParseOptions(**options, people_size=settings.people_size_for(options["people"]))

    def token_ok(self, given: str | None) -> bool:
        """Whether `given` is the settings' token (always, when there is none); constant time."""
        token = self.settings.token
        return token is None or (given is not None and hmac.compare_digest(given.encode(), token.encode()))

    def stop(self) -> None:
        """Tells the running jobs to stop, without waiting for them (a local service's; `close`
        waits): a stopping server's first step, so that they end while it waits for its
        connections."""
        self.jobs.stop()

    def close(self) -> None:
        self._warm.join(60)
        self.jobs.close()
        self.parsers.close()
        self._uploads.remove()
        if self._cleanup is not None:
            self._cleanup.remove()

    def _warm_up(self) -> None:
        try:  # loads the models and parses one blank frame: a first parse pays one-time costs
            self.parsers.parse(np.zeros(WARM_UP_HW + (3,), np.uint8), self.parse_options())
            self._ready.set()
        except Exception as exc:  # noqa: BLE001 - /readyz reports it; parse requests say it again
            log.exception("cannot load model %s", self.settings.model)
            self.warm_error = f"cannot load model {self.settings.model} ({type(exc).__name__}; the server's log says why)"
