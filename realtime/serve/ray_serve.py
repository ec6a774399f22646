"""`partsight serve --ray-address ADDRESS --replicas N`: the same app as a Ray Serve deployment with
FastAPI ingress (each replica a Service of its own, loading its models on its share of the GPUs),
and video jobs as Ray tasks. One JobBoard, a named Ray actor, holds every job, so any replica answers
for any job: it admits and queues jobs as on one machine and runs each through `run_job_task`,
which receives the video's bytes and returns the output files, so the task may run on any node."""
from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

import ray
from ray import serve

import realtime
from realtime.logs import STOP_SIGNALS, ray_notes_to_log_file, stop_exception
from realtime.serve.app import create_app
from realtime.serve.jobs import INPUT_NAME, JobSpec, JobWork, run_in_process
from realtime.serve.server import serving_line
from realtime.serve.service import Service, local_board
from realtime.serve.settings import ServeSettings

NAMESPACE = "partsight"
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"
PROXY_READY_S = 60
PROGRESS_EVERY_S = 0.5


@ray.remote
def run_job_task(data: bytes, spec: JobSpec, job_id: str, board) -> tuple[str | None, dict[str, bytes]]:
    """One video job on a Ray worker: `data` is the video; progress goes to the `board` actor.
    Returns (why it ended early or None, {output file's path in the job folder: bytes})."""
    with tempfile.TemporaryDirectory(prefix="partsight-job-") as tmp:
        folder = Path(tmp)
        (folder / INPUT_NAME).write_bytes(data)
        last_s = 0.0

        def progress(frames: int, total: int | None) -> None:
            nonlocal last_s
            now = time.monotonic()
            if now - last_s >= PROGRESS_EVERY_S or frames == total:
                last_s = now
                board.report.remote(job_id, frames, total)

        error = run_in_process(JobWork(job_id, folder, spec, threading.Event(), progress))
        return error, {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
                       if path.is_file() and path.name != INPUT_NAME}


class RayTaskExecutor:
    """Runs a JobWork as a `run_job_task` with the replicas' resources; cancels it when the job is
    stopped and writes the files it returns into the job's folder."""

    def __init__(self, num_cpus: float, num_gpus: float) -> None:
        self.options = {"num_cpus": num_cpus, "num_gpus": num_gpus}

    def __call__(self, work: JobWork) -> str | None:
        board = ray.get_runtime_context().current_actor
        data = (work.folder / INPUT_NAME).read_bytes()
        ref = run_job_task.options(**self.options).remote(data, work.spec, work.id, board)
        while not ray.wait([ref], timeout=0.5)[0]:
            if work.stop.is_set():
                ray.cancel(ref)
                return "cancelled"
        error, files = ray.get(ref)
        for name, content in files.items():
            target = work.folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return error


@ray.remote(num_cpus=0, max_concurrency=64)
class JobBoardActor:
    """The service's JobBoard as a named actor; replicas call it through RayJobs."""

    def __init__(self, settings: ServeSettings) -> None:
        self._board, self._made = local_board(
            settings, execute=RayTaskExecutor(settings.cpus_per_replica, settings.gpus_per_replica))

    def reserve(self) -> str:
        return self._board.reserve()

    def submit_bytes(self, job_id: str, data: bytes, spec: JobSpec) -> dict:
        return self._board.submit_bytes(job_id, data, spec)

    def release(self, job_id: str) -> None:
        self._board.release(job_id)

    def status(self, job_id: str) -> dict:
        return self._board.status(job_id)

    def read_output(self, job_id: str, kind: str) -> bytes:
        return self._board.read_output(job_id, kind)

    def read_labels(self, job_id: str, index: int) -> bytes:
        return self._board.read_labels(job_id, index)

    def delete(self, job_id: str) -> dict:
        return self._board.delete(job_id)

    def report(self, job_id: str, frames: int, total: int | None) -> None:
        self._board.report(job_id, frames, total)

    def close(self) -> None:
        self._board.close()
        if self._made is not None:
            self._made.remove()


class RayJobs:
    """The JobBoardActor, called as a replica's app calls LocalJobs (its exceptions arrive as the
    same types: JobsBusy, JobNotFound, JobNotReady, FrameNotFound)."""

    def __init__(self, board) -> None:
        self.board = board

    def reserve(self) -> str:
        return ray.get(self.board.reserve.remote())

    def submit(self, job_id: str, upload: Path, spec: JobSpec) -> dict:
        return ray.get(self.board.submit_bytes.remote(job_id, upload.read_bytes(), spec))

    def release(self, job_id: str) -> None:
        ray.get(self.board.release.remote(job_id))

    def status(self, job_id: str) -> dict:
        return ray.get(self.board.status.remote(job_id))

    def output(self, job_id: str, kind: str) -> bytes:
        return ray.get(self.board.read_output.remote(job_id, kind))

    def labels(self, job_id: str, index: int) -> bytes:
        return ray.get(self.board.read_labels.remote(job_id, index))

    def delete(self, job_id: str) -> dict:
        return ray.get(self.board.delete.remote(job_id))

    def stop(self) -> None:
        """The board outlives a replica: the command that started it stops its jobs."""

    def close(self) -> None:
        """The board outlives a replica: the command that started it closes it."""


@serve.deployment
@serve.ingress()
class PartSightIngress:
    """One replica: a Service whose jobs are the shared board's, serving create_app's app."""

    def __init__(self, settings: ServeSettings, board) -> None:
        self.service = Service(settings, RayJobs(board))

    def __serve_build_asgi_app__(self):
        return create_app(self.service)

    def __del__(self) -> None:
        """Ray Serve's shutdown hook: the replica calls it once as it shuts down (serve.shutdown,
        the deployment deleted or scaled down; serve.ingress's wrapper passes the call on)."""
        self.service.close()


def run_ray_serve(settings: ServeSettings) -> NoReturn:
    """Starts (or joins) the Ray cluster, the job board and the deployment; serves until Ctrl+C or
    SIGTERM, then shuts the deployment, the board and this driver's Ray down and raises what that
    signal raises (logs.stop_exception), so the command ends as every command does (130 Ctrl+C,
    143 SIGTERM)."""
    code_dir = str(Path(realtime.__file__).resolve().parents[1])
    env = {name: value for name, value in os.environ.items() if name.startswith("PARTSIGHT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (code_dir, os.environ.get("PYTHONPATH"))))
    # Ray Serve gives its HTTP proxy 5 s to be ready and kills it after three misses, which a
    # loaded machine's proxy can take (serve.start then fails with ActorDiedError); the local
    # cluster's processes inherit this
    os.environ.setdefault(PROXY_READY_ENV, str(PROXY_READY_S))
    env[PROXY_READY_ENV] = os.environ[PROXY_READY_ENV]
    with ray_notes_to_log_file():  # Ray's and Ray Serve's notes: the log file, not the console
        # "local" (or only --replicas): a new cluster on this machine, never one that happens to run here
        ray.init(address=settings.ray_address or "local", namespace=NAMESPACE, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False, runtime_env={"env_vars": env})
        stopped_by: list[int] = []
        stop = threading.Event()

        def on_stop(signum: int, _frame: object) -> None:
            stopped_by.append(signum)
            stop.set()

        previous = {signum: signal.signal(signum, on_stop) for signum in STOP_SIGNALS}
        board = None
        try:
            board = JobBoardActor.options(name=f"partsight-jobs-{settings.port}").remote(settings)
            serve.start(http_options={"host": settings.host, "port": settings.port})
            limits = settings.limits
            deployment = PartSightIngress.options(
                num_replicas=settings.replicas,
                # above the app's own limits, so the app answers 429 before Ray Serve would answer 503
                max_ongoing_requests=limits.parse_queue + limits.max_live + limits.max_jobs + limits.job_queue + 16,
                ray_actor_options={"num_cpus": settings.cpus_per_replica, "num_gpus": settings.gpus_per_replica})
            serve.run(deployment.bind(settings, board), name="partsight", route_prefix="/", blocking=False)
            print(serving_line(settings, f"Ray Serve, {settings.replicas} replica(s)"), flush=True)
            while not stop.wait(1.0):
                pass
        finally:
            try:
                serve.shutdown()
                if board is not None:
                    ray.get(board.close.remote())
            finally:
                ray.shutdown()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
    raise stop_exception(stopped_by[0])
