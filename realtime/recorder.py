"""Recording: annotated video with the source's sound (fragmented MP4, so a killed process leaves
a playable file, with its sound: the audio is muxed with the video as it is written, `AudioFeed`),
a JSONL line per frame and optional label PNGs, written by one recorder thread."""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from realtime.config import X264_PRESETS

log = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, 90000)  # MPEG's 90 kHz: every common frame rate lands on a whole tick
_FRAME_S = Fraction(1, 30)  # the stream's nominal frame duration: what the encoder gives the last frame
_NEW_SOURCE_STEP = round(_FRAME_S / _TIME_BASE)  # ticks between the last frame of a source and the next one's first
_STOP = object()
_LABEL_MAP = "{:06d}.png"  # a label PNG's name from its frame index
_LABEL_MAP_NAME = re.compile(r"\d{6,}\.png")  # every name _LABEL_MAP gives
# how a PNG starts: its signature, then the IHDR chunk's length (13) and type
_PNG_IHDR = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
_LABEL_PNG_DEPTH_AND_COLOUR = (8, 0)  # IHDR's bit depth and colour type (grey) of what cv2 writes for H x W uint8


def write_problem(target: Path | str, exc: OSError) -> str:
    """Why `target` (a file or folder to write) could not be made, from the OSError of making it or
    its folders: "it is a file, not a folder" or "FILE is a file, not a folder" when a file stands
    where a folder must (mkdir's "File exists", "Not a directory"), else the system's reason, with
    the path it names when that is not `target`."""
    target = Path(target)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and exc.filename is not None:
        named = Path(os.fsdecode(exc.filename))
        blocker = next((path for path in (named, *named.parents) if path.exists() and not path.is_dir()), None)
        if blocker is not None:
            return f"{'it' if blocker == target else blocker} is a file, not a folder"
    reason = exc.strerror or str(exc)
    if exc.filename is not None and Path(os.fsdecode(exc.filename)) != target:
        return f"{reason} ({os.fsdecode(exc.filename)})"
    return reason


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
    """One frame to record: the image to encode (the annotated frame), the JSON-ready metrics line,
    the label map for a label PNG and the frame before anything was drawn on it for a plain video."""

    image: np.ndarray
    index: int
    pts_s: float
    metrics: dict = field(default_factory=dict)
    labels: np.ndarray | None = None
    plain: np.ndarray | None = None
    source_s: float | None = None  # the frame's own time in its source's clock (None: no such clock)
    queued_s: float = field(default_factory=time.monotonic)  # when it was handed to the recorder


class Recorder:
    """Writes RecordItems on its own thread. `write` blocks while the queue is full, so nothing
    is dropped; `close` drains the queue and finalises the files. With `audio_from` (the source's
    file or URL) the source's audio streams are muxed along with the video, shifted as the video's
    frames were (their `source_s` against `pts_s`); `audio` then lists what the MP4 carries ([]
    when the source has none, or is live) and `audio_note` says why it was left out ("left out:
    ...") or where it stops ("stops at 4.20 s: ..."), if it was or does. With `plain_video_path`
    a second MP4 holds the items' `plain` frames (nothing drawn on them) at the same times and
    size, with the same sound: a video a client draws its own overlay on. Label PNGs of an
    earlier recording into `labels_dir` (the recorder's own names, %06d.png, and its own kind of
    PNG, 8-bit grey: is_label_png) are removed, so the folder holds this recording's only;
    `labels_removed` counts them. The videos' size is the first frame's with odd sides cut by a
    pixel (yuv420p stores colour for 2 x 2 pixels; a side of 1 is padded to 2): `size_note` says
    so when that changed it ("32x16 (the frames are 33x17: yuv420p video needs even sides)"),
    else None. Nothing is created, truncated or removed before the first frame
    (or JSONL event) arrives, so a source that never gives one leaves every output as it was; the
    paths are only checked at once (check_writable): RecorderError for one that cannot be
    written. `preset`: libx264's speed preset, one of X264_PRESETS (the mpeg4 fallback has
    none)."""

    def __init__(self, video_path: str | Path, *, metrics_path: str | Path | None = None,
                 labels_dir: str | Path | None = None, plain_video_path: str | Path | None = None,
                 queue_frames: int = 16, crf: int = 23, preset: str = X264_PRESETS[0],
                 audio_from: str | None = None) -> None:
        if preset not in X264_PRESETS:
            raise ValueError(f"unknown x264 preset '{preset}'; choose from {', '.join(X264_PRESETS)}")
        self.video_path = Path(video_path)
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.labels_dir = Path(labels_dir) if labels_dir else None
        self.codec = pick_video_codec()
        self._videos = [_VideoFile(Path(path), self.codec, crf, preset, audio_from)
                        for path in (video_path, plain_video_path) if path]
        self.frames_written = 0
        self.recorded_s = 0.0  # the time of the last frame written: how long the recording is so far
        self.encode_ms = 0.0  # the last frame's
        self.encode_ms_total = 0.0  # every frame's: encoding, and waiting in the queue before it
        self.queue_wait_ms_total = 0.0
        self.error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._size: tuple[int, int] | None = None  # (width, height) of the videos, set by the first frame
        self.size_note: str | None = None
        self._metrics_fd: int | None = None
        self.labels_removed = 0
        self._metrics_bytes = 0
        self._last_pts = -1
        # ticks added to frame times: the first frame lands at 0, a source switched to goes on after the last
        self._pts_offset = 0
        self._opened = False  # the outputs are created at the first item (_open_outputs)
        self._check_outputs()
        self._thread = threading.Thread(target=self._run, name="partsight-recorder", daemon=True)
        self._thread.start()

    def _check_outputs(self) -> None:
        """RecorderError when an output could not be written; changes nothing."""
        targets = [(video.path, False) for video in self._videos]
        targets += [(self.metrics_path, False)] if self.metrics_path else []
        targets += [(self.labels_dir, True)] if self.labels_dir else []
        for target, folder in targets:
            try:
                check_writable(target, folder=folder)
            except OSError as exc:
                raise RecorderError(f"cannot write {target}: {write_problem(target, exc)}") from None

    def _open_outputs(self) -> None:
        """Creates the outputs' folders, removes the label PNGs of an earlier recording and
        creates (or truncates) the JSONL: at the first item, the source having given it."""
        self._opened = True
        for video in self._videos:
            video.path.parent.mkdir(parents=True, exist_ok=True)
        if self.labels_dir:
            self.labels_dir.mkdir(parents=True, exist_ok=True)
            earlier = [path for path in label_map_files(self.labels_dir) if is_label_png(path)]
            for path in earlier:
                path.unlink()
            self.labels_removed = len(earlier)
        if self.metrics_path:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self._metrics_fd = os.open(self.metrics_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    @property
    def audio(self) -> list[str] | None:
        return self._videos[0].audio

    @property
    def audio_note(self) -> str | None:
        return self._videos[0].audio_note

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
                if not self._opened:
                    self._open_outputs()
                if isinstance(item, dict):
                    self._write_line(item)
                else:
                    self._write(item)
        except Exception as exc:  # noqa: BLE001 - a full disk or an unencodable frame ends the recording, not the app
            failed = getattr(exc, "filename", None) or self.video_path  # an OSError names the file it was writing
            self.error = f"recording to {failed} failed: {getattr(exc, 'strerror', None) or exc}"
            log.exception("recording to %s failed", failed)
            while self._queue.get() is not _STOP:
                pass
        finally:
            self._finish()

    def _write(self, item: RecordItem) -> None:
        self.queue_wait_ms_total += (time.monotonic() - item.queued_s) * 1000
        start = time.perf_counter()
        if self._size is None:
            height, width = item.image.shape[:2]
            self._size = max(2, width - width % 2), max(2, height - height % 2)
            if self._size != (width, height):
                self.size_note = (f"{self._size[0]}x{self._size[1]} (the frames are {width}x{height}: yuv420p "
                                  "video needs even sides)")
            for video in self._videos:
                video.open(*self._size)
            self._pts_offset = -round(item.pts_s / _TIME_BASE)
            for video in self._videos:
                video.open_audio(item.source_s)
        pts = round(item.pts_s / _TIME_BASE) + self._pts_offset
        if pts <= self._last_pts:  # the window switched to a source whose times start again
            self._pts_offset += self._last_pts + _NEW_SOURCE_STEP - pts
            pts = self._last_pts + _NEW_SOURCE_STEP
        self._last_pts = pts
        self.recorded_s = float(pts * _TIME_BASE)
        for video, image in zip(self._videos, (item.image, item.plain)):
            video.feed_audio(item.source_s, self.recorded_s)
            video.encode(self._fitted(image), pts)
        if self.labels_dir is not None and item.labels is not None:
            path = self.labels_dir / _LABEL_MAP.format(item.index)
            if not cv2.imwrite(str(path), item.labels):
                raise OSError(f"cannot write {path}")
        self.encode_ms = (time.perf_counter() - start) * 1000
        self.encode_ms_total += self.encode_ms
        self.frames_written += 1  # the frame is in the video, whether or not its JSONL line can be written
        if self._metrics_fd is not None:
            line = dict(item.metrics)
            line.setdefault("timings_ms", {})["encode"] = round(self.encode_ms, 2)
            self._write_line(line)

    def _fitted(self, image: np.ndarray) -> np.ndarray:
        """`image` cut (or, 1 pixel wide or high, padded) to the videos' even size."""
        width, height = self._size
        image = image[:height, :width]
        if image.shape[:2] != (height, width):
            image = np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge")
        return image

    def _write_line(self, line: dict) -> None:
        """Appends one whole JSONL line with one write; a short write (disk full) is cut off again."""
        if self._metrics_fd is None:
            return
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        try:
            written = os.write(self._metrics_fd, data)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.metrics_path)) from None
        if written != len(data):
            with contextlib.suppress(OSError):
                os.ftruncate(self._metrics_fd, self._metrics_bytes)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.metrics_path))
        self._metrics_bytes += written

    def _finish(self) -> None:
        end_s = float(self._last_pts * _TIME_BASE + _FRAME_S)  # the last frame shows for _FRAME_S
        for video in self._videos:
            try:
                video.finish(end_s)
            except (OSError, av.error.FFmpegError) as exc:
                self.error = self.error or f"finalising {video.path} failed: {exc}"
                log.exception("finalising %s failed", video.path)
        if self._metrics_fd is not None:
            os.close(self._metrics_fd)
            self._metrics_fd = None


def check_writable(path: str | Path, *, folder: bool = False) -> None:
    """OSError naming `path` (or the file in its way) when it could not be written: as a file, or
    with `folder` as a folder to write files into. What exists is opened for writing without being
    truncated; a missing path's nearest existing folder gets a file created and removed at once (a
    real try: to root, os.access calls /sys writable too). Creates nothing that stays."""
    path = Path(path)
    if path.exists():
        if path.is_dir() != folder:
            code = errno.EISDIR if path.is_dir() else errno.ENOTDIR
            raise OSError(code, os.strerror(code), str(path))
        if not folder:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # O_NONBLOCK: a FIFO with no reader fails, not hangs
            return
        parent = path
    else:
        parent = next(above for above in path.parents if above.exists())
        if not parent.is_dir():
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
    probe = parent / f".partsight-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    probe.unlink()


def label_map_files(folder: Path) -> list[Path]:
    """The files in `folder` named as the Recorder names label PNGs (%06d.png), whatever they
    hold; [] when it is no folder."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if _LABEL_MAP_NAME.fullmatch(path.name) and path.is_file()]


def is_label_png(path: Path) -> bool:
    """Whether `path` is a PNG of the kind the Recorder writes as a label map (8-bit grey), read
    from its IHDR chunk, nothing decoded."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(_PNG_IHDR) + 10)  # then width and height (4 bytes each), bit depth, colour type
    except OSError:
        return False
    return head.startswith(_PNG_IHDR) and tuple(head[len(_PNG_IHDR) + 8:]) == _LABEL_PNG_DEPTH_AND_COLOUR


class _VideoFile:
    """One MP4 of a Recorder, a fragmented one, so a killed process leaves a playable file: its
    container and video stream, opened at the first frame, and the source's audio muxed along with
    the video (AudioFeed). `audio` and `audio_note` as the Recorder's."""

    def __init__(self, path: Path, codec: str, crf: int, preset: str, audio_from: str | None) -> None:
        self.path = path
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.audio_from = audio_from
        self.audio: list[str] | None = None
        self.audio_note: str | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: AudioFeed | None = None

    def open(self, width: int, height: int) -> None:
        self._container = av.open(
            str(self.path), mode="w", format="mp4",
            # delay_moov: the header waits for the first fragment, so that its edit lists can place
            # an audio track that starts after the video; flush_packets: each finished fragment
            # reaches the file at once, not when a 256 KiB buffer fills
            options={"movflags": "frag_keyframe+delay_moov+default_base_moof", "flush_packets": "1"},
        )
        stream = self._container.add_stream(self.codec, rate=round(1 / _FRAME_S))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = _TIME_BASE
        stream.codec_context.time_base = _TIME_BASE
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": self.preset, "g": "30", "bf": "0"}
        else:
            stream.bit_rate = 4_000_000
            stream.codec_context.gop_size = 30
            stream.codec_context.max_b_frames = 0
        self._stream = stream

    def encode(self, image: np.ndarray, pts: int) -> None:
        """H x W x 3 uint8 RGB at the stream's size, shown from `pts` (ticks of _TIME_BASE)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = pts
        frame.time_base = _TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def open_audio(self, source_s: float | None) -> None:
        """Adds the audio streams of `audio_from` before the first packet (the MP4's header names
        every stream); the first frame's shift between its source time `source_s` and output time
        (0) places them."""
        if self.audio_from is None or source_s is None:  # no source times: a live stream, whose sound is not kept
            return
        try:
            self._audio = AudioFeed.open(self.audio_from, self._container, offset_s=source_s, start_s=0.0)
        except (OSError, av.error.FFmpegError, ValueError) as exc:
            self._audio_failed(0.0, exc)
            return
        self.audio = [] if self._audio is None else self._audio.codecs

    def feed_audio(self, source_s: float | None, out_s: float) -> None:
        """Muxes the audio up to the output time `out_s` of a frame whose source time is `source_s`.
        Audio stays in sync only while every frame keeps the first frame's shift between source and
        output time; where a looped file or a switched source breaks it, the audio ends."""
        if self._audio is None:
            return
        if source_s is None or abs(source_s - out_s - self._audio.offset_s) > 1e-3:
            self._end_audio(out_s)
            if self.audio_note is None:
                self.audio_note = (f"stops at {out_s:.2f} s: the video's times stop following the source's "
                                   "clock there (a looped file or a switched source)")
            return
        try:
            self._audio.mux_until(out_s)
        except (OSError, av.error.FFmpegError, ValueError) as exc:
            self._audio_failed(out_s, exc)

    def finish(self, end_s: float) -> None:
        """Flushes the encoder, muxes the audio up to `end_s` (output seconds) and closes the file;
        without a frame there is no file (`open` creates it). OSError / av.error.FFmpegError when
        finalising fails."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._end_audio(end_s)
            self._container.close()
        finally:
            self._end_audio(0.0)  # closes the audio source if finishing failed before it

    def _end_audio(self, end_s: float) -> None:
        """Muxes the rest of the audio up to `end_s` (output seconds), flushes it and closes its source."""
        if self._audio is None:
            return
        try:
            self._audio.finish(end_s)
        except (OSError, av.error.FFmpegError, ValueError) as exc:
            self._audio_failed(end_s, exc)
        finally:
            if self._audio is not None:
                self._audio.close()
                self._audio = None

    def _audio_failed(self, at_s: float, exc: BaseException) -> None:
        from realtime.sources import redact_url

        log.exception("the audio of %s failed", redact_url(self.audio_from))
        reason = redact_url(str(exc))
        self.audio_note = f"stops at {at_s:.2f} s: {reason}" if self.audio else f"left out: {reason}"
        if self._audio is not None:
            self._audio.close()
            self._audio = None


# Audio codecs an MP4 carries as they are; any other is transcoded to AAC.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})


class AudioFeed:
    """A file source's audio streams, muxed into a recording while its video is written, in time
    order with it, so that a killed process leaves a fragmented MP4 with sound up to its last
    fragment. An audio time t in the source lands at t - `offset_s` in the output (the video's own
    shift: its first frame's source time minus its output time); audio before `start_s` (the
    first frame's output time) is left out. Streams whose codec fits MP4 are copied, others
    transcoded to AAC; `codecs` lists what each output stream holds, e.g. ["aac"] or
    ["aac (from pcm_s16le)"]."""

    def __init__(self, source: av.container.InputContainer, out: av.container.OutputContainer, *,
                 offset_s: float, start_s: float) -> None:
        self.offset_s = offset_s
        self.codecs: list[str] = []
        self._source = source
        self._out = out
        self._start_s = start_s
        self._targets = {}  # source stream index -> (output stream, resampler for AAC or None to copy)
        for stream in source.streams.audio:
            name = stream.codec_context.name
            if name in MP4_AUDIO_CODECS:
                self._targets[stream.index] = (out.add_stream_from_template(stream), None)
                self.codecs.append(name)
                continue
            # a standard layout of that many channels (AAC refuses unnamed ones); others mixed to stereo
            layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(stream.codec_context.channels, "stereo")
            rate = stream.rate or 48000
            encoder = out.add_stream("aac", rate=rate, layout=layout, format="fltp")
            self._targets[stream.index] = (encoder, av.AudioResampler(format="fltp", layout=layout, rate=rate,
                                                                      frame_size=1024))
            self.codecs.append(f"aac (from {name})")
        self._packets = _timed(source.demux(*source.streams.audio), offset_s)
        self._next = next(self._packets, None)

    @classmethod
    def open(cls, url: str, out: av.container.OutputContainer, *, offset_s: float, start_s: float,
             timeout_s: float = 10.0) -> AudioFeed | None:
        """The feed of `url`'s audio into `out`, which has not written its header yet; None when the
        source has no audio or is live (it cannot be read a second time alongside). OSError /
        av.error.FFmpegError when it cannot be opened."""
        source = av.open(url, timeout=(timeout_s, timeout_s))
        try:
            if not source.streams.audio or source.duration is None or source.format.no_file:
                source.close()
                return None
            return cls(source, out, offset_s=offset_s, start_s=start_s)
        except BaseException:
            source.close()
            raise

    def mux_until(self, until_s: float) -> None:
        """Muxes every audio packet that starts before `until_s` (output seconds)."""
        while self._next is not None and self._next[0] < until_s:
            start_s, packet = self._next
            if start_s >= self._start_s:
                self._mux(packet)
            self._next = next(self._packets, None)

    def finish(self, end_s: float) -> None:
        """Muxes the audio up to `end_s` and flushes the AAC encoders; nothing after it."""
        self.mux_until(end_s)
        self._next = None
        for target, resampler in self._targets.values():
            if resampler is not None:
                self._encode(target, resampler, None)
                for encoded in target.encode(None):
                    self._out.mux(encoded)

    def close(self) -> None:
        self._source.close()

    def _mux(self, packet: av.Packet) -> None:
        target, resampler = self._targets[packet.stream.index]
        shift = round(self.offset_s / packet.time_base)
        if resampler is None:
            packet.pts -= shift
            packet.dts = None if packet.dts is None else packet.dts - shift
            packet.stream = target
            self._out.mux(packet)
            return
        for frame in packet.decode():
            frame.pts -= shift
            self._encode(target, resampler, frame)

    def _encode(self, target, resampler: av.AudioResampler, frame: av.AudioFrame | None) -> None:
        for chunk in resampler.resample(frame):
            for encoded in target.encode(chunk):
                self._out.mux(encoded)


def _timed(packets, offset_s: float):
    """(start time in output seconds, packet) for demuxed packets that carry data and a time."""
    for packet in packets:
        if packet.size and packet.pts is not None:
            yield float(packet.pts * packet.time_base) - offset_s, packet
