"""Recording: annotated video (fragmented MP4, so a killed process leaves a playable file),
a JSONL line per frame and optional label PNGs, written by one recorder thread."""
from __future__ import annotations

import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

_TIME_BASE = Fraction(1, 1000)
_STOP = object()


class RecorderError(RuntimeError):
    """The output cannot be written; the message is safe to show."""


def pick_video_codec() -> str:
    """libx264 when this FFmpeg has it, else mpeg4 (always built in)."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.error.FFmpegError, ValueError):
        return "mpeg4"


@dataclass
class RecordItem:
    """One frame to record: the image to encode and the JSON-ready metrics line."""

    image: np.ndarray
    index: int
    pts_s: float
    metrics: dict = field(default_factory=dict)
    labels: np.ndarray | None = None


class Recorder:
    """Writes RecordItems on its own thread. `write` blocks while the queue is full, so nothing
    is dropped; `close` drains the queue and finalises the files."""

    def __init__(self, video_path: str | Path, *, metrics_path: str | Path | None = None,
                 labels_dir: str | Path | None = None, queue_frames: int = 16, crf: int = 23) -> None:
        self.video_path = Path(video_path)
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.labels_dir = Path(labels_dir) if labels_dir else None
        self.crf = crf
        self.codec = pick_video_codec()
        self.frames_written = 0
        self.encode_ms = 0.0
        self.error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._metrics_fd: int | None = None
        self._last_pts = -1
        self._prepare_outputs()
        self._thread = threading.Thread(target=self._run, name="partsight-recorder", daemon=True)
        self._thread.start()

    def _prepare_outputs(self) -> None:
        try:
            self.video_path.parent.mkdir(parents=True, exist_ok=True)
            if self.labels_dir:
                self.labels_dir.mkdir(parents=True, exist_ok=True)
            if self.metrics_path:
                self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
                self._metrics_fd = os.open(self.metrics_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with open(self.video_path, "wb"):
                pass
        except OSError as exc:
            raise RecorderError(f"cannot write {exc.filename or self.video_path}: {exc.strerror}") from None

    def write(self, item: RecordItem) -> None:
        if self.error:
            raise RecorderError(self.error)
        self._queue.put(item)

    def close(self, timeout_s: float = 60.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        if self.error:
            raise RecorderError(self.error)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                self._write(item)
        except (OSError, av.error.FFmpegError) as exc:
            self.error = f"recording to {self.video_path} failed: {getattr(exc, 'strerror', None) or exc}"
            while self._queue.get() is not _STOP:
                pass
        finally:
            self._finish()

    def _open_video(self, width: int, height: int) -> None:
        self._container = av.open(
            str(self.video_path), mode="w", format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
        )
        stream = self._container.add_stream(self.codec, rate=30)
        stream.width = width - width % 2
        stream.height = height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = _TIME_BASE
        stream.codec_context.time_base = _TIME_BASE
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast", "g": "30", "bf": "0"}
        else:
            stream.bit_rate = 4_000_000
            stream.codec_context.gop_size = 30
            stream.codec_context.max_b_frames = 0
        self._stream = stream

    def _write(self, item: RecordItem) -> None:
        start = time.perf_counter()
        if self._container is None:
            self._open_video(item.image.shape[1], item.image.shape[0])
        image = item.image[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = max(round(item.pts_s / _TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        if self.labels_dir is not None and item.labels is not None:
            path = self.labels_dir / f"{item.index:06d}.png"
            if not cv2.imwrite(str(path), item.labels):
                raise OSError(f"cannot write {path}")
        self.encode_ms = (time.perf_counter() - start) * 1000
        if self._metrics_fd is not None:
            line = dict(item.metrics)
            line.setdefault("timings_ms", {})["encode"] = round(self.encode_ms, 2)
            os.write(self._metrics_fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())
        self.frames_written += 1

    def _finish(self) -> None:
        if self._container is None:
            self.video_path.unlink(missing_ok=True)  # nothing was recorded: leave no empty file
        else:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            except (OSError, av.error.FFmpegError) as exc:
                self.error = self.error or f"finalising {self.video_path} failed: {exc}"
        if self._metrics_fd is not None:
            os.close(self._metrics_fd)
            self._metrics_fd = None
