"""Recording: annotated video (fragmented MP4, so a killed process leaves a playable file),
a JSONL line per frame and optional label PNGs, written by one recorder thread; at the end the
source's audio streams are added to the MP4 on the video's time base (`add_audio`)."""
from __future__ import annotations

import contextlib
import errno
import heapq
import json
import logging
import math
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

log = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz: every common frame rate lands on a whole tick
_NEW_SOURCE_STEP = 3000  # a 30 fps frame in _TIME_BASE ticks, between the last frame of a source and the next one's first
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
    source_s: float | None = None  # the frame's own time in its source's clock (None: no such clock)


class Recorder:
    """Writes RecordItems on its own thread. `write` blocks while the queue is full, so nothing
    is dropped; `close` drains the queue and finalises the files. With `audio_from` (the source's
    file or URL) the source's audio streams are added when it closes, shifted as the video's
    frames were (their `source_s` against `pts_s`); `audio` then lists what was added ([] when the
    source has none, or is live) and `audio_note` says why audio was left out, if it was."""

    def __init__(self, video_path: str | Path, *, metrics_path: str | Path | None = None,
                 labels_dir: str | Path | None = None, queue_frames: int = 16, crf: int = 23,
                 audio_from: str | None = None) -> None:
        self.video_path = Path(video_path)
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.labels_dir = Path(labels_dir) if labels_dir else None
        self.crf = crf
        self.codec = pick_video_codec()
        self.frames_written = 0
        self.recorded_s = 0.0  # the time of the last frame written: how long the recording is so far
        self.encode_ms = 0.0
        self.error: str | None = None
        self.audio: list[str] | None = None
        self.audio_note: str | None = None
        self._audio_from = audio_from
        self._audio_offset_s: float | None = None  # source time - output time, the same for every frame
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._metrics_fd: int | None = None
        self._metrics_bytes = 0
        self._last_pts = -1
        self._pts_offset = 0  # ticks added to the times of a source the window switched to mid-recording
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

    @property
    def queued(self) -> int:
        """Items waiting for the recorder thread (at most `queue_frames`)."""
        return self._queue.qsize()

    def write(self, item: RecordItem) -> None:
        if self.error:
            raise RecorderError(self.error)
        self._queue.put(item)

    def write_event(self, line: dict) -> None:
        """Queues a JSONL line that is not a frame (a gap in a live source), in order with the frames."""
        if self.error:
            raise RecorderError(self.error)
        self._queue.put(line)

    def close(self, timeout_s: float = 60.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        if self.error:
            raise RecorderError(self.error)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                if isinstance(item, dict):
                    self._write_line(item)
                else:
                    self._write(item)
        except Exception as exc:  # noqa: BLE001 - a full disk or an unencodable frame ends the recording, not the app
            self.error = f"recording to {self.video_path} failed: {getattr(exc, 'strerror', None) or exc}"
            log.exception("recording to %s failed", self.video_path)
            while self._queue.get() is not _STOP:
                pass
        finally:
            self._finish()

    def _open_video(self, width: int, height: int) -> None:
        self._container = av.open(
            str(self.video_path), mode="w", format="mp4",
            # flush_packets: each finished fragment reaches the file at once, not when a 256 KiB buffer fills
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
        )
        stream = self._container.add_stream(self.codec, rate=30)
        stream.width = max(2, width - width % 2)  # yuv420p needs even sizes
        stream.height = max(2, height - height % 2)
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
        if image.shape[:2] != (self._stream.height, self._stream.width):  # a 1-pixel-wide or -high frame
            pad = ((0, self._stream.height - image.shape[0]), (0, self._stream.width - image.shape[1]), (0, 0))
            image = np.pad(image, pad, mode="edge")
        self._follow_audio_offset(item)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        pts = round(item.pts_s / _TIME_BASE) + self._pts_offset
        if pts <= self._last_pts:  # the window switched to a source whose times start again
            self._pts_offset += self._last_pts + _NEW_SOURCE_STEP - pts
            pts = self._last_pts + _NEW_SOURCE_STEP
        self._last_pts = pts
        self.recorded_s = float(pts * _TIME_BASE)
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
            self._write_line(line)
        self.frames_written += 1

    def _follow_audio_offset(self, item: RecordItem) -> None:
        """Audio stays in sync only while every frame keeps the first frame's shift between source
        and output time (a looped file or a switched source breaks it: the audio is left out)."""
        if self._audio_from is None:
            return
        offset_s = None if item.source_s is None else item.source_s - item.pts_s
        if self._audio_offset_s is None and self.frames_written == 0:
            self._audio_offset_s = offset_s
        if offset_s is None or self._audio_offset_s is None or abs(offset_s - self._audio_offset_s) > 1e-3:
            self._audio_from = None
            self.audio_note = "audio left out: the video's times do not follow the source's clock throughout"

    def _write_line(self, line: dict) -> None:
        """Appends one whole JSONL line with one write; a short write (disk full) is cut off again."""
        if self._metrics_fd is None:
            return
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        written = os.write(self._metrics_fd, data)
        if written != len(data):
            with contextlib.suppress(OSError):
                os.ftruncate(self._metrics_fd, self._metrics_bytes)
            raise OSError(errno.ENOSPC, f"{self.metrics_path}: no space left on device")
        self._metrics_bytes += written

    def _finish(self) -> None:
        if self._container is None:
            if self.video_path.is_file() and self.video_path.stat().st_size == 0:
                self.video_path.unlink()  # nothing was recorded: leave no empty file (but never a device)
        else:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            except (OSError, av.error.FFmpegError) as exc:
                self.error = self.error or f"finalising {self.video_path} failed: {exc}"
                log.exception("finalising %s failed", self.video_path)
            else:
                self._add_audio()
        if self._metrics_fd is not None:
            os.close(self._metrics_fd)
            self._metrics_fd = None

    def _add_audio(self) -> None:
        if self._audio_from is None or self.error or not self.frames_written:
            return
        from realtime.sources import redact_url

        try:
            self.audio = add_audio(self.video_path, self._audio_from, self._audio_offset_s)
        except (OSError, av.error.FFmpegError, ValueError) as exc:  # the video stays as it was
            self.audio_note = f"audio left out: {redact_url(str(exc))}"
            log.exception("adding the audio of %s failed", redact_url(self._audio_from))


# Audio codecs an MP4 carries as they are; any other is transcoded to AAC.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


def add_audio(video_path: Path, source: str, offset_s: float) -> list[str]:
    """Rewrites the MP4 at `video_path` with the audio streams of `source` (a file or URL) added:
    an audio time t in the source lands at t - offset_s in the output (the video's own shift: its
    first frame's source time minus its output time), cut to the video's span. Streams whose codec
    fits MP4 are copied, others transcoded to AAC. Returns what was added, e.g. ["aac"]; [] when
    the source has no audio. OSError / av.error.FFmpegError when a file cannot be read or written."""
    with av.open(source) as probe:
        if not probe.streams.audio or probe.duration is None or probe.format.no_file:
            return []  # no audio, or a live stream: it cannot be read again from the start
    partial = video_path.with_name(video_path.name + ".audio.part")
    added = []
    with av.open(str(video_path)) as video_in, av.open(source) as audio_in, \
            av.open(str(partial), "w", format="mp4") as out:  # whole now: an edit list can place the audio
        video = video_in.streams.video[0]
        end_s = float(video.duration * video.time_base) if video.duration else math.inf
        video_out = out.add_stream_from_template(video)
        audio_outs = {}
        for stream in audio_in.streams.audio:
            if stream.codec_context.name in MP4_AUDIO_CODECS:
                audio_outs[stream.index] = (out.add_stream_from_template(stream), None)
                added.append(stream.codec_context.name)
            else:
                # a standard layout of that many channels (AAC refuses unnamed ones); others mixed to stereo
                layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(stream.codec_context.channels, "stereo")
                encoder = out.add_stream("aac", rate=stream.rate or 48000, layout=layout, format="fltp")
                audio_outs[stream.index] = (encoder, av.AudioResampler(format="fltp", layout=layout,
                                                                        rate=stream.rate or 48000, frame_size=1024))
                added.append(f"aac (from {stream.codec_context.name})")
        for packet in heapq.merge(_timed(video_in.demux(video), 0.0),
                                  _timed(audio_in.demux(*audio_in.streams.audio), offset_s), key=lambda item: item[0]):
            start_s, packet = packet
            if packet.stream.type == "video":
                packet.stream = video_out
                out.mux(packet)
                continue
            if start_s < 0 or start_s >= end_s:
                continue
            target, resampler = audio_outs[packet.stream.index]
            shift = round(offset_s / packet.time_base)
            if resampler is None:
                packet.pts -= shift
                packet.dts = None if packet.dts is None else packet.dts - shift
                packet.stream = target
                out.mux(packet)
                continue
            for frame in packet.decode():
                frame.pts -= shift
                for chunk in resampler.resample(frame):
                    for encoded in target.encode(chunk):
                        out.mux(encoded)
        for target, resampler in audio_outs.values():
            if resampler is not None:
                for chunk in resampler.resample(None):
                    for encoded in target.encode(chunk):
                        out.mux(encoded)
                for encoded in target.encode(None):
                    out.mux(encoded)
    os.replace(partial, video_path)
    return added


def _timed(packets, offset_s: float):
    """(start time in output seconds, packet) for demuxed packets that carry data and a time."""
    for packet in packets:
        if packet.size and packet.pts is not None:
            yield float(packet.pts * packet.time_base) - offset_s, packet
