"""`partsight serve` and `partsight bench-serve`: their command-line options, and the handler that
checks the [serve] extra is installed before anything imports FastAPI (the rest of the command line
never needs it)."""
from __future__ import annotations

import argparse
import importlib.util
import sys

from realtime.cli_options import frame_size, non_negative_int, port_number, positive_float, positive_int
from realtime.config import default
from realtime.models.backends import DTYPES
from realtime.models.instance_people import PEOPLE_SOURCES
from realtime.models.registry import DEFAULT_MODEL, MODEL_SPECS
from realtime.ray_address import check_ray_address
from realtime.serve.settings import TOKEN_ENV, Limits, MB

# Limits fields given as they are: (field, argparse type, what it limits)
LIMIT_OPTIONS = (
    ("max_image_pixels", positive_int, "largest width x height of an image or video frame, read from the header "
                                       "before decoding"),
    ("max_video_s", positive_float, "longest video a job takes, in seconds"),
    ("max_video_frames", positive_int, "most frames a job takes"),
    ("max_jobs", positive_int, "video jobs running at once"),
    ("job_queue", non_negative_int, "jobs waiting behind them; more get 429"),
    ("job_ttl_s", positive_float, "seconds a finished job's files are kept"),
    ("parse_queue", positive_int, "/v1/parse requests running or waiting per process; more get 429"),
    ("max_live", positive_int, "live camera connections per process"),
)
SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "multipart": "python-multipart",
                 "websockets": "websockets", "PIL": "pillow"}


def add_serve_commands(commands: argparse._SubParsersAction) -> None:
    add_serve_command(commands)
    add_bench_serve_command(commands)


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    limits = Limits()
    serve = commands.add_parser("serve", help="the parsing service: HTTP API, web page and live camera "
                                              "(the [serve] extra)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; any other needs "
                            "--token or --insecure)")
    serve.add_argument("--port", type=port_number, default=8000,
                       help="port to listen on (default 8000; 0 = any free port, the line 'serving on' names it)")
    serve.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODEL_SPECS),
                       help=f"model loaded at start and the page's default (default {DEFAULT_MODEL})")
    serve.add_argument("--people", default=default("people"), choices=PEOPLE_SOURCES,
                       help="default source of several people: the parser's own people, or a multi-person model "
                            "whose person instances split the parts among people; loaded at start, requests may "
                            "choose another (default parser)")
    serve.add_argument("--people-size", type=positive_int, metavar="PIXELS",
                       help="the --people model's internal size (default: its own, e.g. 800 short side; smaller "
                            "is faster on a CPU)")
    serve.add_argument("--device", default=default("device"), help="auto (CUDA when available), cpu or cuda")
    serve.add_argument("--dtype", default=default("dtype"), choices=DTYPES,
                       help="what the networks compute in, for every request (default fp32; see 'partsight "
                            "process --help')")
    serve.add_argument("--token", help=f"bearer token every /v1 call must carry (better: set {TOKEN_ENV}, "
                                       "which other users cannot read in the process list)")
    serve.add_argument("--insecure", action="store_true",
                       help="serve a non-loopback --host without a token: anyone who reaches the port can use it")
    group = serve.add_argument_group("limits (a request over one gets a 4xx JSON error)")
    group.add_argument("--max-upload-mb", type=positive_float, default=limits.max_upload_bytes / MB,
                       help=f"largest request body (default {limits.max_upload_bytes / MB:g})")
    for field, kind, text in LIMIT_OPTIONS:
        value = getattr(limits, field)
        shown = f"{value:g}" if isinstance(value, float) else value
        group.add_argument(f"--{field.replace('_', '-')}", type=kind, default=value, help=f"{text} (default {shown})")
    group.add_argument("--jobs-dir", help="folder for the job folders (default: a temporary folder removed at exit)")
    group.add_argument("--allow-url-host", action="append", metavar="HOST",
                       help="let clients send an http(s) 'url' on HOST for the server to fetch (repeat for "
                            "more hosts; default: the server fetches nothing)")
    scale = serve.add_argument_group("scaling with Ray Serve (the [cluster] extra)")
    scale.add_argument("--ray-address", help="Ray cluster to run on (e.g. auto, ray://head:10001; local = start "
                                             "one here); without it and with one replica: plain uvicorn")
    scale.add_argument("--replicas", type=positive_int, default=1, help="copies of the service behind Ray Serve")
    scale.add_argument("--gpus-per-replica", type=float, default=0.0, metavar="F",
                       help="share of a GPU each replica (and each video job) takes, e.g. 0.5")
    scale.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="F",
                       help="CPUs each replica (and each video job) reserves in Ray (default 1)")
    serve.set_defaults(handler=_serve)


def add_bench_serve_command(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench-serve", help="load a running service's /v1/parse; prints JSON")
    bench.add_argument("url", help="the service, e.g. http://127.0.0.1:8000")
    bench.add_argument("--image", required=True, help="image or video whose first frame is sent")
    bench.add_argument("--size", type=frame_size, default="640x480", help="scale the frame to WxH first (default 640x480)")
    bench.add_argument("--requests", type=positive_int, default=200, help="measured requests (default 200)")
    bench.add_argument("--concurrency", type=positive_int, default=4, help="clients at once (default 4)")
    bench.add_argument("--rate", type=positive_float,
                       help="open loop: start this many requests a second whatever the answers")
    bench.add_argument("--warmup", type=non_negative_int, default=4, help="unmeasured requests first (default 4)")
    bench.add_argument("--server-pid", type=positive_int, help="sample this process's resident memory")
    bench.add_argument("--rss-every", type=positive_int, default=100,
                       help="requests between memory samples (default 100)")
    bench.add_argument("--token", help=f"bearer token (default ${TOKEN_ENV})")
    bench.set_defaults(handler=_bench_serve)


def _bench_serve(args: argparse.Namespace) -> int:
    import json
    import os

    import cv2

    from realtime.bench_cli import first_frame
    from realtime.serve.bench import bench_serve
    from realtime.sources import parse_size

    size = parse_size(args.size)
    rgb = first_frame(args.image)
    rgb = rgb if size is None else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    report = bench_serve(args.url, jpeg.tobytes(), requests=args.requests, concurrency=args.concurrency,
                         rate=args.rate, warmup=args.warmup, token=args.token or os.environ.get(TOKEN_ENV),
                         server_pid=args.server_pid, rss_every=args.rss_every)
    if set(report["status"]) == {"0"}:  # not one answer: nothing was measured
        from realtime.cli import CliError

        why = ", ".join(f"{count} x {error}" for error, count in report["no_answer"].items())
        raise CliError(f"no request got an answer from {args.url} ({why}); is the service running there?")
    print(json.dumps({"image": f"{args.image} at {rgb.shape[1]}x{rgb.shape[0]} (JPEG {len(jpeg)} bytes)",
                      **report}))
    return 0


def missing_serve_modules() -> list[str]:
    """The [serve] extra's packages that are not installed (pip names)."""
    return [package for module, package in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]


def _serve(args: argparse.Namespace) -> int:
    from realtime.cli import CliError
    from realtime.serve.settings import is_loopback, settings_from_args

    missing = missing_serve_modules()
    if missing:
        raise CliError(f"partsight serve needs the [serve] extra (missing {', '.join(missing)}): "
                       "pip install 'partsight[serve]'")
    settings = settings_from_args(args)
    if not is_loopback(settings.host) and settings.token is None:
        for line in ("WARNING: serving without a token (--insecure) on a non-loopback address:",
                     f"WARNING: anyone who can reach {settings.host}:{settings.port} can use this server.",
                     f"WARNING: give --token (or set {TOKEN_ENV}) unless this network is yours alone."):
            print(line, file=sys.stderr)
    if settings.uses_ray:
        try:
            from realtime.serve.ray_serve import run_ray_serve
        except ImportError as exc:
            raise CliError(f"--ray-address and --replicas need Ray Serve ({exc}): pip install 'ray[serve]' "
                           "(with the [cluster] extra)") from None
        try:
            check_ray_address(settings.ray_address)
        except ConnectionError as exc:
            raise CliError(f"cannot reach the Ray cluster at {settings.ray_address}: {exc}") from None
        return run_ray_serve(settings)
    from realtime.serve.server import run_uvicorn

    return run_uvicorn(settings)
