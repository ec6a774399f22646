"""A real `partsight serve` for the service's tests: the command line in a subprocess on a free
127.0.0.1 port, waited for until /readyz answers 200, stopped with Ctrl+C (SIGINT) at the end; and
small inputs made on the spot (clips cut from the shared media, a PNG that only claims to be huge)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


@contextlib.contextmanager
def running_server(*args: str, ready_timeout_s: float = 240.0, headers: dict | None = None,
                   env: dict[str, str] | None = None, preexec_fn: Callable[[], None] | None = None):
    """`main.py serve --port PORT *args` (with `env` over this process's environment, `preexec_fn`
    run in the child before it starts), yielded once
    /readyz says ready; stopped with SIGINT (the way a user stops it) and killed only if it does not
    exit within 60 s."""
    port = free_port()
    output = Path(tempfile.mkstemp(prefix="partsight-serve-", suffix=".out")[1])
    with open(output, "wb") as sink:
        process = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "serve", "--port", str(port), *args],
                                   stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})},
                                   preexec_fn=preexec_fn)
    server = Server(f"http://127.0.0.1:{port}", port, process, output)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=5, headers=headers).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {ready_timeout_s:.0f} s:\n{server.log()}")
            time.sleep(1.0)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        output.unlink(missing_ok=True)


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR for a width x height RGB image, followed by a few bytes of
    pixel data and IEND: a decompression bomb's header without the bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def synthetic_video(path: Path, *, frames: int, fps: int, size: tuple[int, int] = (16, 16)) -> Path:
    """A real H.264 MP4 of `frames` small grey frames at `fps` (a 10-minute video at 1 fps costs
    600 tiny frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def clip_cut(source: Path, path: Path, frames: int) -> Path:
    """The first `frames` frames of `source` re-encoded as H.264 at its own size and rate."""
    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream("libx264", rate=Fraction(video.average_rate).limit_denominator(1000))
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        for i, frame in enumerate(src.decode(video)):
            if i >= frames:
                break
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def frame_png(source: Path, index: int, size: tuple[int, int] | None = None) -> tuple[bytes, np.ndarray]:
    """Frame `index` of a clip (optionally resized to size (W, H)) as PNG bytes and RGB array."""
    with av.open(str(source)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                rgb = frame.to_ndarray(format="rgb24")
                break
    if size is not None:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes(), rgb


def decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a PNG"
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"job {job_id} not done within {timeout_s:.0f} s: {status}"
        time.sleep(0.5)


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
