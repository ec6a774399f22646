"""One service's settings: where it listens, who may call it (a bearer token), what it accepts (Limits)
and how it scales (Ray Serve). Built once from the command line (`settings_from_args`)."""
from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, field

from realtime.config import OptionsError, default
from realtime.models.backends import check_dtype
from realtime.models.registry import DEFAULT_MODEL

TOKEN_ENV = "PARTSIGHT_SERVE_TOKEN"
MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What the service accepts. max_upload_bytes: a request body (file and form together);
    max_image_pixels: width x height of an image or of a video's frames, read from the header before
    decoding; max_video_s / max_video_frames: a video job's length (also enforced while it runs, so a
    file whose header lies stops there); max_jobs: video jobs running at once (K), job_queue: jobs
    waiting behind them, more are refused with 429 and Retry-After; job_ttl_s: seconds a finished
    job's files are kept; parse_queue: /v1/parse requests running or waiting per process, more get
    429; max_live: live camera connections per process; allow_url_hosts: hosts the server may fetch
    a `url` from (none: fetching is off)."""

    max_upload_bytes: int = 200 * MB
    max_image_pixels: int = 40_000_000
    max_video_s: float = 300.0
    max_video_frames: int = 18_000
    max_jobs: int = 2
    job_queue: int = 8
    job_ttl_s: float = 3600.0
    parse_queue: int = 8
    max_live: int = 2
    allow_url_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_image_pixels", "max_video_frames", "max_jobs", "parse_queue",
                     "max_live"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.job_queue < 0:
            raise ValueError(f"job-queue must be 0 or more, not {self.job_queue}")
        if not (self.max_video_s > 0 and self.job_ttl_s > 0):
            raise ValueError("max-video-s and job-ttl-s must be positive")


@dataclass(frozen=True)
class ServeSettings:
    """host/port: where uvicorn (or Ray Serve's HTTP proxy) listens; model: the one loaded at start
    and the page's default; people: the default people source (PipelineConfig.people), loaded at
    start too; people_size: that people model's internal size (None: its own); device: auto, cpu
    or cuda; dtype: what the networks compute in (PipelineConfig.dtype), one for every request;
    token: the bearer token every /v1 call must carry (None: no check; never printed);
    jobs_dir: the folder job folders go in (None: a fresh temporary folder, removed at exit);
    ray_address: a Ray cluster to run on ("local" starts one here), None with one replica = plain
    uvicorn; replicas, gpus/cpus_per_replica: the Ray Serve deployment's replicas and each one's
    share of a GPU and CPUs (video jobs' Ray tasks get the same)."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = DEFAULT_MODEL
    people: str = default("people")
    people_size: int | None = None
    device: str = "auto"
    dtype: str = default("dtype")
    token: str | None = field(default=None, repr=False)
    limits: Limits = Limits()
    jobs_dir: str | None = None
    ray_address: str | None = None
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0

    def people_size_for(self, people: str) -> int | None:
        """The internal size a request's people model runs at: people_size for the settings' own
        people model, None (the model's default) for any other."""
        return self.people_size if people == self.people else None

    @property
    def uses_ray(self) -> bool:
        return self.ray_address is not None or self.replicas > 1


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """The settings of `partsight serve`'s command line. ValueError (one line) for a host other than
    loopback without --token (or $PARTSIGHT_SERVE_TOKEN) or --insecure, and for bad limits
    (OptionsError where the command line is at fault)."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host) and token is None and not args.insecure:
        raise OptionsError(f"--host {args.host} lets other machines call the service: give --token "
                           f"(or set {TOKEN_ENV}), or --insecure to serve without one")
    if args.replicas < 1:
        raise OptionsError(f"--replicas must be at least 1, not {args.replicas}")
    if args.gpus_per_replica < 0 or args.cpus_per_replica <= 0:
        raise OptionsError("--gpus-per-replica must be 0 or more and --cpus-per-replica positive")
    limits = Limits(max_upload_bytes=round(args.max_upload_mb * MB), max_image_pixels=args.max_image_pixels,
                    max_video_s=args.max_video_s, max_video_frames=args.max_video_frames, max_jobs=args.max_jobs,
                    job_queue=args.job_queue, job_ttl_s=args.job_ttl_s, parse_queue=args.parse_queue,
                    max_live=args.max_live,
                    allow_url_hosts=tuple(sorted({host.lower() for host in args.allow_url_host or ()})))
    device = "cuda" if args.gpus_per_replica > 0 and args.device == "auto" else args.device
    if args.dtype != "fp32":  # refused at the start, not by every request
        from realtime.models import resolve_device

        check_dtype(args.dtype, "auto", resolve_device(device))
    return ServeSettings(host=args.host, port=args.port, model=args.model, people=args.people,
                         people_size=args.people_size, device=device, dtype=args.dtype, token=token, limits=limits,
                         jobs_dir=args.jobs_dir, ray_address=args.ray_address, replicas=args.replicas,
                         gpus_per_replica=args.gpus_per_replica, cpus_per_replica=args.cpus_per_replica)
