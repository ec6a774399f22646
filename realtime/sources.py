"""Frame sources. Each owns one capture thread and the capture object inside it.

A source is live or a file by what it is, not by its URL scheme: an input with a duration read
from a byte stream (a local file, a file served over http(s)) is a file; one without a duration,
or a session protocol such as RTSP, is live. Live sources (webcams, streams) keep only the newest
frame, so a slow consumer never builds up lag, and reconnect. File and folder sources deliver
every frame in order through a bounded queue (backpressure: nothing is dropped), as their
Playback (realtime.playback) paces, pauses, repositions and loops them; a file played in real
time with late frames dropped keeps only the newest frame too.
"""
from __future__ import annotations

import base64
import configparser
import errno
import json
import logging
import math
import re
import shlex
import socket
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Sequence
from urllib.parse import quote, unquote, urlsplit

import av
import cv2
import numpy as np

from realtime.playback import Playback
from realtime.geometry import (
    SWAPS_AXES,
    OutputSize,
    display_turn,
    frame_display_matrix,
    square_pixel_width,
    turned,
)
from realtime.reconnect import Backoff
from realtime.types import Frame, Gap, Placement

log = logging.getLogger(__name__)

BUFFER_FRAMES = 8  # decoded frames a file's capture thread queues ahead, by default

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                            ".mpeg", ".wmv", ".flv", ".3gp"})
URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
DEFAULT_SEQUENCE_FPS = 30.0
MAX_FRAME_SIDE = 8192  # --size: an 8K frame; 100000x100000 failed as "reading the input failed: Invalid argument"
MEASURED_RATE_FRAMES = 5  # frames a live source stating no rate gives in one connection before Source.fps measures it
AVFMT_NOTIMESTAMPS = 0x80  # FFmpeg's format flag (PyAV names none): its packets carry no timestamps (mpjpeg, raw mjpeg)


class SourceError(RuntimeError):
    """A source cannot be opened or stopped delivering; the message is safe to show."""


# The characters str.splitlines() breaks a line at: never part of an address (open_source refuses them).
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# scheme://, then everything up to the last "@" on the line before the next scheme://: the user-info
# whole, whatever the password holds (spaces, quotes, brackets, "@", ":", "/", %-escapes); a path
# holding "@", or an "@" later on the line of an address without user-info, is cut too.
_USER_INFO = re.compile(rf"({URL.pattern})(?:(?!{URL.pattern})[^{LINE_BREAKS}])*@")


def redact_url(text: str) -> str:
    """`text` with the user-info part (user:password@) of every URL in it replaced whole by ***@."""
    return _USER_INFO.sub(r"\1***@", text)


# one address's user-info: up to its authority's last "@" (the authority ends at the first "/", "?" or "#")
_AUTHORITY_USER_INFO = re.compile(rf"({URL.pattern})([^/?#]*)@")


def basic_auth_request(url: str) -> urllib.request.Request:
    """An urllib request for `url` without its user-info part (user:password@ before the host,
    %-escapes decoded), which it carries as an HTTP Basic Authorization header that a redirect
    does not pass on (RFC 7617)."""
    found = _AUTHORITY_USER_INFO.match(url)
    if found is None:
        return urllib.request.Request(url)
    request = urllib.request.Request(found[1] + url[found.end():])
    user, _, password = found[2].partition(":")
    token = f"{unquote(user)}:{unquote(password)}".encode()
    request.add_unredirected_header("Authorization", f"Basic {base64.b64encode(token).decode()}")
    return request


@dataclass(frozen=True)
class SourceInfo:
    """name: safe to display (credentials removed); live: newest-frame policy and reconnection;
    frame_count: frames the source says it holds (None = unknown or endless); fps: its frame rate
    as it states it (None = unknown: an HTTP MJPEG camera's; Source.fps measures it);
    note: one line for the user about how it is read (e.g. an image sequence's count and rate);
    duration_s: how long it plays, in seconds (None = unknown or endless); own_rate: its times come
    from the source itself (a video file, a stream, a webcam), which --fps does not change; False
    for an image sequence and a local file without timestamps (a raw .h264), read at a rate."""

    name: str
    live: bool
    frame_count: int | None
    fps: float | None
    note: str | None = None
    duration_s: float | None = None
    own_rate: bool = True

    @property
    def seekable(self) -> bool:
        """A file of known length: it can be played from any position."""
        return not self.live and self.duration_s is not None

    @property
    def step_s(self) -> float:
        """Seconds from one frame to the next: 1 / fps, or 1/30 when the rate is unknown."""
        return 1.0 / self.fps if self.fps else 1 / 30


class FrameReader:
    """Opens a capture in the capture thread and yields Frames; subclasses know one kind.
    `frames(start_s)` yields from the frame at `start_s` seconds from the first frame (a seek;
    files and folders only) or, with None, from the start (or from where a live source is).
    `unreadable`: the files it left out as unreadable (an image folder's), each with the index its
    frame would have had, in the order met."""

    live = False
    unreadable: Mapping[Path, int] = MappingProxyType({})

    def open(self) -> SourceInfo:
        raise NotImplementedError

    def frames(self, start_s: float | None = None) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _fitted(output: OutputSize, bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int], Placement]:
    """A BGR picture (H x W x 3 uint8) as RGB on `output`'s canvas (area averaging, letterboxed as
    OutputSize.fit says), with its own (W, H) and its Placement there."""
    own = bgr.shape[1], bgr.shape[0]
    scaled, placement = output.fit(*own)
    if scaled != own:
        bgr = cv2.resize(bgr, scaled, interpolation=cv2.INTER_AREA)
    return output.letterboxed(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), placement), own, placement


def _parse_copy(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray | None:
    """The copy of `image` the parser works on (Frame.parse_image), None when it works on `image`.
    Area averaging by a whole factor (geometry.parse_copy_size), OpenCV's fast path: 1.1 ms from
    1080x1920 here, against 4.7 ms for swscale scaling the decoded picture a second time."""
    return None if size is None else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class PyAVReader(FrameReader):
    """Video files and network streams through FFmpeg. Every open and read of a stream gives up
    after `timeout_s` (RTSP runs over TCP; an RTSP camera that stops sending is given up on
    `timeout_s` after its last packet), so a dead camera never hangs the capture thread.
    With `loop`, a file starts again at its end, its frame indices and times running on (the
    first frame of each later pass has `seeked` set: the picture jumps back). `live=None` decides
    at open: live when FFmpeg knows no duration or the demuxer reads no byte stream (RTSP and
    other session protocols); a finite file over http(s) is a file. Frames whose
    output is longer than `parse_side` carry a copy scaled to it (Frame.parse_image), made by the
    decoder's scaler from the decoded picture. A live network stream whose format carries no
    timestamps (an HTTP MJPEG camera: FFmpeg would time it at a guessed 25 fps) is timed by each
    frame's arrival on the monotonic clock. A local file whose format carries no timestamps (a raw
    elementary stream: .h264, .hevc, .mjpeg) is timed index / `fps` from 0, every frame kept; with
    `fps` None at the rate its stream header states (H.264 SPS timing), else at the rate FFmpeg
    assumes (25); SourceInfo.note says which."""

    def __init__(self, url: str, *, size: tuple[int, int] | None = None, max_side: int | None = None,
                 live: bool | None = False, timeout_s: float = 10.0, loop: bool = False,
                 parse_side: int | None = None, fps: float | None = None) -> None:
        self.url = url
        self.live = live
        self.fps = fps
        self.timeout_s = timeout_s
        self.loop = loop
        self._output = OutputSize(size, max_side, parse_side)  # kept across loops and reconnections
        self._frames_shown: int | None = None
        self.timeline: Timeline | None = None  # of the current pass of frames()
        self._container: av.container.InputContainer | None = None
        self._arrival_timed = False  # set at open: a live stream without timestamps
        self._untimed = False  # set at open: a local file without timestamps, timed by its rate
        self._step_s = 1 / 30  # set at open: seconds from frame to frame where frames lack times (SourceInfo.step_s)

    def open(self) -> SourceInfo:
        options, read_timeout_s = {}, self.timeout_s
        if self.url.startswith(("rtsp://", "rtsps://")):
            options = {"rtsp_transport": "tcp", "timeout": str(int(self.timeout_s * 1e6))}
            # FFmpeg holds a camera's last frame back until the next one starts and hands it over
            # when a read times out; the read after it times out too: two reads make up timeout_s
            read_timeout_s = self.timeout_s / 2
        started_s = time.monotonic()
        try:
            self._container = av.open(self.url, options=options, timeout=(self.timeout_s, read_timeout_s))
        except (av.error.FFmpegError, OSError) as exc:
            timed_out = time.monotonic() - started_s >= self.timeout_s  # FFmpeg's wait cut off, whatever it says
            raise _source_error(f"cannot open {redact_url(self.url)}", exc, self.url, opening=True,
                                timed_out=timed_out) from None
        if not self._container.streams.video:
            self.close()
            raise SourceError(f"{redact_url(self.url)} has no video stream")
        if self._container.format.name == "tty":  # FFmpeg draws any text file (.txt, .nfo, ...) as ANSI art
            self.close()
            raise SourceError(f"{redact_url(self.url)} is a text file, not a video")
        if self._container.streams.video[0].codec_context is None:  # FFmpeg knows the format but cannot decode it (SVG)
            self.close()
            raise SourceError(f"cannot open {redact_url(self.url)}: {_NOT_READABLE}")
        if self.live is None:
            self.live = self._container.duration is None or self._container.format.no_file
            self.loop = self.loop and not self.live
        no_timestamps = _no_timestamps(self._container)
        self._arrival_timed = bool(self.live and URL.match(self.url) and no_timestamps)  # a camera's stream
        self._untimed = no_timestamps and not URL.match(self.url)
        stream = _video_stream(self._container)
        fps = float(stream.average_rate) if stream.average_rate else None
        note = None
        if self._untimed:
            if self.fps is not None:
                fps, rate = self.fps, "given by --fps"
            elif stream.codec_context.framerate:  # the stream's header states it (H.264 SPS/VUI timing)
                fps, rate = float(stream.codec_context.framerate), "as its stream header states; --fps overrides it"
            else:
                fps = fps or DEFAULT_SEQUENCE_FPS
                rate = "assumed: the stream states no rate; --fps sets it"
            note = f"{redact_url(self.url)} has no timestamps (a raw video stream): read as {fps:g} fps ({rate})"
        self._frames_shown = None if self.live else frames_shown(stream)
        frame_count = None if self.loop else self._frames_shown
        duration_s = None
        if not self.live and not self.loop:
            if self._frames_shown and fps:
                duration_s = self._frames_shown / fps
            elif self._container.duration:
                duration_s = self._container.duration / av.time_base
        info = SourceInfo(redact_url(self.url), self.live, frame_count, fps, note, duration_s=duration_s,
                          own_rate=not self._untimed)
        self._step_s = info.step_s
        return info

    def frames(self, start_s: float | None = None) -> Iterator[Frame]:
        stream = self._container.streams.video[0]
        step_s = self._step_s
        timeline = Timeline(step_s, max_jump_s=math.inf if self.live else Timeline.MAX_FILE_JUMP_S)
        origin_s = self.timeline.origin_s if self.timeline is not None else None
        self.timeline = timeline
        index, skip_before_s = 0, None
        if start_s is not None and not self.live:
            index, skip_before_s = round(start_s / step_s), start_s - step_s / 2
            stream = self._seek(stream, origin_s, start_s, timeline)
        whole = index == 0  # a pass from the first frame: it must show every frame the file holds
        looped = False  # the pass is a loop's: its first frame is a jump in time, as after a seek (Frame.seeked)
        while True:
            pass_start = index
            for image, parse_image, decoded_s, own_size, placement in self._decoded(stream, index):
                if self._untimed:
                    decoded_s = None  # FFmpeg's guess, if any: the frame is timed by its place
                pts_s = timeline.place(time.monotonic() if self._arrival_timed else decoded_s)
                if skip_before_s is not None and pts_s < skip_before_s:
                    continue  # decoded from the key frame before a seek's target
                skip_before_s = None
                yield Frame(image=image, index=index, pts_s=pts_s, own_size=own_size, placement=placement,
                            source_s=decoded_s, parse_image=parse_image, seeked=looped and index == pass_start)
                index += 1
            shown = index - pass_start
            if whole and self._frames_shown is not None and shown < self._frames_shown:
                raise SourceError(f"{redact_url(self.url)} ended after {shown} of its {self._frames_shown} "
                                  f"frames: the file is truncated or damaged")
            if not self.loop or not shown:
                return
            whole = looped = True
            timeline.restart()
            stream = self._seek(stream, None, 0.0, None)

    def _seek(self, stream: av.video.stream.VideoStream, origin_s: float | None, position_s: float,
              timeline: Timeline | None) -> av.video.stream.VideoStream:
        """Moves the demuxer to the key frame at or before `position_s` seconds from the first
        frame shown, whose own time was `origin_s` (None: unknown, from the very start); the
        `timeline` then places frames at their position in the file. Returns the stream to read:
        a file without timestamps, which has no index to seek in (FFmpeg refuses), is opened
        again at its first frame (its frames are timed by their place: those before the position
        are skipped as any decoded before a seek's target are)."""
        if timeline is not None and origin_s is not None:
            timeline.start_at(origin_s)
        target = 0 if origin_s is None else int((origin_s + position_s) / stream.time_base)
        try:
            if not self._untimed:
                self._container.seek(target, stream=stream, backward=True)
                return stream
            reopened = av.open(self.url)
        except (av.error.FFmpegError, OSError) as exc:
            raise _source_error(f"{redact_url(self.url)} cannot be played from {position_s:.2f} s", exc) from None
        self._container.close()
        self._container = reopened
        return _video_stream(reopened)

    def _decoded(self, stream: av.video.stream.VideoStream, index: int) -> Iterator[tuple]:
        """(image as displayed in the output size, its parse copy or None, time in s or None, own
        displayed (W, H), Placement) per decoded frame: turned upright by its display matrix,
        scaled to square pixels by the stream's sample aspect ratio, and letterboxed when its aspect
        differs from the output's (OutputSize.fit). The decoder's scaler converts and scales in one
        pass."""
        try:
            for decoded in self._pictures(stream):
                turn = display_turn(frame_display_matrix(decoded))
                sar = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
                width, height = square_pixel_width(decoded.width, sar), decoded.height
                own = (height, width) if turn in SWAPS_AXES else (width, height)
                scaled, placement = self._output.fit(*own)
                image = self._output.letterboxed(turned(_rgb(decoded, scaled, turn), turn), placement)
                parse_image = _parse_copy(image, self._output.parse_size)
                yield image, parse_image, (float(decoded.time) if decoded.time is not None else None), own, placement
                index += 1
        except (av.error.FFmpegError, OSError) as exc:
            what = f"reading {redact_url(self.url)} failed at frame {index}"
            if index == 0 and "mp4" in self._container.format.name and not _server_seeks(self.url, self.timeout_s):
                log.info("%s: %s", what, redact_url(str(exc)))
                raise SourceError(f"{what}: the MP4's index (moov) is at its end and the server does not allow "
                                  f"seeking back to the frames (no HTTP Range requests); re-encode it with faststart "
                                  f"(ffmpeg -i IN -c copy -movflags +faststart OUT) or serve it with Range "
                                  f"support") from None
            raise _source_error(what, exc, self.url) from None

    def _pictures(self, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
        """The stream's decoded pictures; when reading fails (a damaged file, a concat list's
        missing entry), first those the decoder still holds (its frame threads keep a few), then
        the error."""
        try:
            yield from self._container.decode(stream)
        except (av.error.FFmpegError, OSError):
            try:
                held = stream.codec_context.decode(None)
            except (av.error.FFmpegError, OSError):
                held = []
            yield from held
            raise

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _rgb(decoded: av.VideoFrame, size: tuple[int, int], turn: str | None) -> np.ndarray:
    """The decoded picture as RGB, scaled so that turned by `turn` it is `size` (W, H): swscale's
    area averaging (1080x1920 to 540x960: 4.7 ms here, its bilinear 6.9 ms)."""
    stored = size[::-1] if turn in SWAPS_AXES else size
    if stored != (decoded.width, decoded.height):
        return decoded.to_ndarray(format="rgb24", width=stored[0], height=stored[1], interpolation="AREA")
    return decoded.to_ndarray(format="rgb24")


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The container's first video stream, decoded on FFmpeg's threads (frame or slice, as it chooses)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _no_timestamps(container: av.container.InputContainer) -> bool:
    """Whether the container's format carries no timestamps (a raw elementary stream, an MJPEG
    camera's multipart stream): FFmpeg times its frames at a rate it assumes."""
    return bool(container.format.flags & AVFMT_NOTIMESTAMPS)


def frames_shown(stream: av.video.stream.VideoStream) -> int | None:
    """Frames a player shows of a file's video stream: its index entries less those an edit list
    hides (FFmpeg marks them discarded), else the container's frame count; None when unknown."""
    entries = stream.index_entries
    if len(entries):
        return sum(not entry.is_discard for entry in entries)
    return stream.frames or None


class Timeline:
    """Presentation times in seconds from 0 at the first frame shown, strictly increasing: the
    first frame's own time (a stream's start offset) is taken off, and a timestamp that goes back
    or jumps ahead by more than `max_jump_s` (a 33-bit MPEG-TS wrap, recordings joined end to end,
    a camera's clock reset) continues the timeline one frame step (`step_s`) after the last frame.
    `origin_s` is the first frame's own time, in the stream's clock (for other streams' times)."""

    MAX_FILE_JUMP_S = 10.0

    def __init__(self, step_s: float, *, max_jump_s: float = MAX_FILE_JUMP_S) -> None:
        self.step_s = step_s
        self.max_jump_s = max_jump_s
        self.origin_s: float | None = None
        self.last_s: float | None = None
        self._offset_s: float | None = None

    def place(self, own_s: float | None) -> float:
        """A frame's own time in seconds (None when it has none: one step on) -> its time here."""
        expected = 0.0 if self.last_s is None else self.last_s + self.step_s
        if own_s is None:
            self.last_s = expected
            return expected
        if self._offset_s is None:
            self._offset_s = expected - own_s
            self.origin_s = own_s if self.origin_s is None else self.origin_s
        placed = own_s + self._offset_s
        if self.last_s is not None and not self.last_s < placed <= self.last_s + self.max_jump_s:
            self._offset_s += expected - placed
            placed = expected
        self.last_s = placed
        return placed

    def restart(self) -> None:
        """The stream starts again (a looped file): its next frame comes one step after the last."""
        self._offset_s = None

    def start_at(self, origin_s: float) -> None:
        """A seek: frames are placed at their own time less `origin_s` (the first frame's own
        time), their position in the file, wherever the last frame was."""
        self.origin_s = origin_s
        self._offset_s = -origin_s
        self.last_s = None


class WebcamReader(FrameReader):
    live = True

    def __init__(self, index: int, *, size: tuple[int, int] | None = None, max_side: int | None = None,
                 parse_side: int | None = None) -> None:
        self.index = index
        self._output = OutputSize(size, max_side, parse_side)
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> SourceInfo:
        if sys.platform.startswith("linux") and not Path(f"/dev/video{self.index}").exists():
            raise SourceError(f"webcam {self.index} is not connected (there is no /dev/video{self.index})")
        with quiet_opencv:
            self._capture = cv2.VideoCapture(self.index)
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"webcam {self.index} cannot be opened (not connected, or in use by another program)")
        fps = self._capture.get(cv2.CAP_PROP_FPS) or None
        return SourceInfo(f"webcam {self.index}", True, None, fps)

    def frames(self, start_s: float | None = None) -> Iterator[Frame]:
        index = 0
        start = time.monotonic()
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                raise SourceError(f"webcam {self.index} stopped delivering frames")
            image, own, placement = _fitted(self._output, bgr)
            yield Frame(image=image, index=index, pts_s=time.monotonic() - start, own_size=own, placement=placement,
                        parse_image=_parse_copy(image, self._output.parse_size))
            index += 1

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class _QuietOpenCV:
    """`with quiet_opencv:` OpenCV's own log (one level per process) is silent inside, for calls
    whose failure PartSight reports in its own words (a missing camera: every backend tried; a
    damaged upload: the decoder's complaint). Threads may overlap: the level from before the
    first comes back after the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._level = None

    def __enter__(self) -> None:
        with self._lock:
            if not self._inside:
                self._level = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            self._inside += 1

    def __exit__(self, *_exc) -> None:
        with self._lock:
            self._inside -= 1
            if not self._inside:
                cv2.utils.logging.setLogLevel(self._level)


quiet_opencv = _QuietOpenCV()


def read_image_file(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """The image file decoded by OpenCV (colour: H x W x 3 uint8 BGR, upright by its EXIF
    orientation), None for a file that is not a readable image: one that cannot be read (a
    broken symlink, a folder), an empty one, a JPEG or PNG cut short (which libjpeg would fill
    with grey, and over which libpng prints "libpng error: Read Error"), or any other that OpenCV
    cannot decode, without the decoder's complaints on the console (libtiff's on a truncated
    TIFF, libjpeg's "Premature end of JPEG file"): the caller says so in its own words. The file
    is read once."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data or _jpeg_cut_short(data) or _png_cut_short(data):  # imdecode raises on no bytes
        return None
    with quiet_opencv:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)


def _jpeg_cut_short(data: bytes) -> bool:
    """Whether `data` is a JPEG (it starts with the SOI marker) whose markers run out before the
    EOI marker: a file cut short. Walks the marker segments (ITU-T T.81, Annex B: each segment's
    2-byte length; after each SOS, the entropy-coded data up to the next marker that is neither a
    stuffed 0xFF00 nor a restart marker), so data after the EOI (a phone's motion photo carries
    its video there) does not matter. A file that breaks the syntax otherwise is left to the
    decoder (False)."""
    if not data.startswith(b"\xff\xd8"):
        return False
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xD9:
            return False
        if marker == 0xFF:  # fill bytes before a marker
            position += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if marker == 0xDA:
                scan_end = _JPEG_SCAN_END.search(data, position)
                if scan_end is None:
                    return True
                position = scan_end.start()
    return True


_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_cut_short(data: bytes) -> bool:
    """Whether `data` is a PNG (it starts with the PNG signature) whose chunks run out before the
    IEND chunk: a file cut short. Walks the chunks (PNG specification, 5.3: a 4-byte length, the
    type, the data, a 4-byte CRC) without reading their data."""
    if not data.startswith(_PNG_SIGNATURE):
        return False
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        if data[position + 4:position + 8] == b"IEND":
            return False
        position += 12 + int.from_bytes(data[position:position + 4], "big")
    return True


def natural_key(name: str) -> list:
    """Sort key that orders the digits in names by value: 2.jpg before 10.jpg, frame9 before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


RATE_KEYS = ("fps", "frame_rate", "framerate", "frameRate")


def _rate(value: object, where: Path) -> float:
    """A frame rate as a sidecar states it: a number or a fraction such as "30000/1001"."""
    try:
        rate = float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        rate = math.nan
    if not rate > 0 or math.isinf(rate):
        raise SourceError(f"{where} gives the frame rate {value!r}, which is not a positive number; fix it or "
                          "pass --fps")
    return rate


def _json_rate(path: Path) -> float | None:
    """The rate a JSON sidecar states: a top-level RATE_KEYS entry, or the first video stream's
    avg_frame_rate (else r_frame_rate) in ffprobe's `-show_streams -of json` output."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for key in RATE_KEYS:
        if key in data:
            return _rate(data[key], path)
    streams = data.get("streams")
    videos = [s for s in streams if isinstance(s, dict) and s.get("codec_type") == "video"] \
        if isinstance(streams, list) else []
    for key in ("avg_frame_rate", "r_frame_rate"):
        if videos and videos[0].get(key) not in (None, "0/0"):
            return _rate(videos[0][key], path)
    return None


def sequence_rate(folder: Path) -> tuple[float, Path] | None:
    """The frame rate an image sequence's own metadata gives, and the file that gives it; None
    when nothing in it does. Looked for, in this order:
    - `seqinfo.ini` (the MOTChallenge layout: `frameRate=` in `[Sequence]`) in the folder, or in
      its parent when that file's `imDir` names the folder;
    - JSON files in the folder (`*.json`, in natural name order, each under 1 MiB): the first
      with a top-level "fps", "frame_rate", "framerate" or "frameRate" (a number or "N/D"), or
      ffprobe's JSON of the video the frames came from (`ffprobe -show_streams -of json`).
    SourceError when such a file states a rate that is not a positive number."""
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        parser = configparser.ConfigParser()
        try:
            parser.read(ini, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        sequence = parser["Sequence"] if parser.has_section("Sequence") else {}
        if "frameRate" in sequence and (ini.parent == folder or sequence.get("imDir", "").strip("/") == folder.name):
            return _rate(sequence["frameRate"], ini), ini
    sidecars = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()
                       and p.stat().st_size < 2**20), key=lambda p: natural_key(p.name))
    for path in sidecars:
        rate = _json_rate(path)
        if rate is not None:
            return rate, path
    return None


class ImageFolderReader(FrameReader):
    """A folder's image files (other files are ignored) in natural name order (2.jpg before
    10.jpg) as an image sequence at `fps` frames per second; None: the rate the folder's own
    metadata gives (see sequence_rate), else DEFAULT_SEQUENCE_FPS. A file that is not a readable
    image (truncated, not an image at all, a symlink to nothing) is skipped and listed in
    `unreadable` (Source warns of it once a frame after it is read); the frames after it keep
    their places in time. With `loop` the folder plays again from its first image at its end,
    indices and times running on (a later pass's first frame has `seeked` set)."""

    skip_unreadable = True

    def __init__(self, folder: Path, *, size: tuple[int, int] | None = None, max_side: int | None = None,
                 fps: float | None = None, parse_side: int | None = None, loop: bool = False) -> None:
        self.unreadable: dict[Path, int] = {}
        self.folder = folder
        self.fps = fps
        self.loop = loop
        self._output = OutputSize(size, max_side, parse_side)
        self._paths: list[Path] = []

    def open(self) -> SourceInfo:
        self._paths = sorted((p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                              and (p.is_file() or not p.exists())),  # a broken symlink: an unreadable image
                             key=lambda p: natural_key(p.name))
        if not self._paths:
            raise SourceError(f"folder {self.folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if self.fps is not None:
            rate = "given by --fps"
        elif (found := sequence_rate(self.folder)) is not None:
            self.fps, where = found
            rate = f"from {where}; --fps overrides it"
        else:
            self.fps = DEFAULT_SEQUENCE_FPS
            rate = "the default: the folder states no rate; --fps sets it"
        count = len(self._paths)
        note = f"{self.folder}: {count} image{'s' if count != 1 else ''} in name order, read as {self.fps:g} fps ({rate})"
        if self.loop:
            return SourceInfo(str(self.folder), False, None, self.fps, note, own_rate=False)
        return SourceInfo(str(self.folder), False, count, self.fps, note, duration_s=count / self.fps, own_rate=False)

    def frames(self, start_s: float | None = None) -> Iterator[Frame]:
        index = 0 if start_s is None else round(start_s * self.fps)
        count = len(self._paths)
        shown = index - 1  # the last frame yielded: a looped pass over no readable image ends the run
        while index < count or (self.loop and index - shown <= count):
            path = self._paths[index % count]
            bgr = read_image_file(path)
            if bgr is None and self.skip_unreadable:
                self.unreadable.setdefault(path, index)  # once, also when a seek or a loop comes by it again
                index += 1
                continue
            if bgr is None:
                raise SourceError(f"{path} is not a readable image")
            image, own, placement = _fitted(self._output, bgr)
            yield Frame(image=image, index=index, pts_s=index / self.fps, own_size=own, placement=placement,
                        parse_image=_parse_copy(image, self._output.parse_size),
                        seeked=shown >= 0 and index // count > shown // count)  # a loop's first frame
            shown = index
            index += 1

    def close(self) -> None:
        self._paths = []


class _FrameBuffer:
    """Frames from the capture thread to the worker, each with the seek generation it was decoded
    in. Bounded FIFO (the producer waits while it is full, so nothing is dropped) or, while
    `newest_only()` says so, one slot that a put replaces (the dropped frame's gap marker is
    kept, and so is its `seeked` flag within one generation: the first frame after a seek or
    loop may be dropped, not the news of it). A frame's capture time is when it entered, as a
    camera frame's is when it arrives."""

    def __init__(self, capacity: int, newest_only: Callable[[], bool]) -> None:
        self._condition = threading.Condition()
        self._items: deque[tuple[int, Frame]] = deque()
        self._capacity = max(1, capacity)
        self._newest_only = newest_only
        self.dropped = 0

    def put(self, generation: int, frame: Frame, cancelled: Callable[[], bool]) -> None:
        with self._condition:
            if self._newest_only():
                while self._items:
                    old_generation, old = self._items.popleft()
                    self.dropped += 1
                    frame.gap = frame.gap or old.gap
                    frame.seeked = frame.seeked or (old.seeked and old_generation == generation)
            while len(self._items) >= self._capacity:
                if cancelled():
                    return
                self._condition.wait(0.1)
            frame.captured_s = time.monotonic()
            self._items.append((generation, frame))
            self._condition.notify_all()

    def get(self, timeout_s: float) -> tuple[int, Frame] | None:
        with self._condition:
            if not self._items:
                self._condition.wait(timeout_s)
            if not self._items:
                return None
            item = self._items.popleft()
            self._condition.notify_all()
            return item

    def peek(self, timeout_s: float) -> Frame | None:
        """The frame `get` would return next, left in the buffer (None if none came within the timeout)."""
        with self._condition:
            if not self._items:
                self._condition.wait(timeout_s)
            return self._items[0][1] if self._items else None

    def wake(self) -> None:
        """Lets a producer waiting on a full buffer check whether it was cancelled."""
        with self._condition:
            self._condition.notify_all()

    def empty(self) -> bool:
        with self._condition:
            return not self._items

    def size(self) -> int:
        with self._condition:
            return len(self._items)


class Source:
    """A capture thread around a FrameReader.

    `read(timeout_s)` returns the next Frame, or None if none came within the timeout; after
    the end of a file `finished` is True, and after a failure `error` holds the message.

    A file is played as its `playback` says: paced or not, paused, repositioned by seeks (the
    first frame after one has `seeked` set; frames decoded before it are never returned) and
    looped (each pass starts as a seek to 0 does, its indices and times running on from the
    pass before: Frame.loop_offset; a seek continues in the pass its request names,
    SeekRequest.loop_offset). At its end the capture thread waits for a seek until stopped, so a
    file that ended can be played again from any position.

    An image folder's unreadable files (FrameReader.unreadable) are each warned of once, when a
    frame after it is read (or a read finds the end), never for those the capture thread read
    ahead of the frames taken.

    A live source that fails or ends after it opened reconnects with exponential backoff until
    stopped: meanwhile `status` says why and when it tries next, and the first frame after it
    carries a Gap. Indices and times run on across reconnections. `fps` is the rate it states, or
    the one its frames come at.
    """

    def __init__(self, reader: FrameReader, *, buffer_frames: int = BUFFER_FRAMES, playback: Playback | None = None,
                 backoff: Backoff | None = None) -> None:
        self._reader = reader
        self.playback = playback or Playback()
        self._buffer = _FrameBuffer(buffer_frames, self._newest_only)
        self._backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._at_end = threading.Event()
        self._thread: threading.Thread | None = None
        self.info: SourceInfo | None = None
        self.error: str | None = None
        self.status: str | None = None  # set while a live source is reconnecting
        self.reconnections = 0
        self.frames_read = 0
        self.read_generation = 0
        self._last_read_index = -1  # the index of the last frame read: how far the run has come
        self._read_to_end = False  # a read found the file played to its end: every file was passed over
        self._warned: set[Path] = set()
        self._last_pts_s = 0.0
        self._last_index = -1  # of the last frame put in the buffer
        self._loop_offset = (0, 0.0)  # (index, s) a looped file's current pass runs on by
        # a live source's time 0 on the monotonic clock: the least delayed frame's arrival less
        # its time (frames FFmpeg held back arrive late, after their time)
        self._clock_origin_s = 0.0
        self._times = (0, 0.0)  # a live source's frame steps within its connections, and the seconds they span

    @property
    def live(self) -> bool:
        return bool(self.info.live if self.info is not None else self._reader.live)

    def _newest_only(self) -> bool:
        playback = self.playback
        return self.live or (playback.paced_at_capture and not playback.paused)

    @property
    def dropped(self) -> int:
        return self._buffer.dropped

    @property
    def fps(self) -> float | None:
        """Frames per second: the rate the source states (SourceInfo.fps); for a live source that
        states none (an HTTP MJPEG camera, timed by its frames' arrival) the rate its frames came
        at: frame steps over the seconds they span, within connections (not across a
        reconnection's gap), once MEASURED_RATE_FRAMES came in one; None before that, and before
        the source opened."""
        info = self.info
        if info is None:
            return None
        if info.fps or not info.live:
            return info.fps
        steps, span_s = self._times
        return steps / span_s if steps >= MEASURED_RATE_FRAMES - 1 and span_s > 0 else None

    @property
    def skipped(self) -> list[str]:
        """The names (no folder) of the files left out as unreadable (FrameReader.unreadable) that
        the frames read so far passed over (the capture thread reads ahead of them: a run stopped
        at a frame limit passed over none after it), all of them once a read found the file played
        to its end; in the order they were met, each once. The one list every report of them
        gives (`unreadable` fields; realtime.job.unreadable_words puts it in words)."""
        return [path.name for path in self._skipped_paths()]

    def _skipped_paths(self) -> list[Path]:
        reached = math.inf if self._read_to_end else self._last_read_index
        return [path for path, at in self._reader.unreadable.items() if at < reached]

    @property
    def buffered(self) -> int:
        """Frames captured and not read yet (at most the buffer's capacity)."""
        return self._buffer.size()

    @property
    def finished(self) -> bool:
        """True once the file was played to its end (or the capture thread ended) and every
        delivered frame was read."""
        return (self._done.is_set() or self._at_end.is_set()) and self._buffer.empty()

    def start(self, *, open_timeout_s: float = 20.0) -> SourceInfo:
        """Starts the capture thread and waits until the capture opened (or raises SourceError)."""
        self._thread = threading.Thread(target=self._run, name="partsight-capture", daemon=True)
        self._thread.start()
        if not self._opened.wait(open_timeout_s):
            self.stop()
            raise SourceError(f"opening the source took longer than {open_timeout_s:.0f} s")
        if self.info is None:
            self.stop()
            raise SourceError(self.error or "the source could not be opened")
        return self.info

    def read(self, timeout_s: float = 0.5) -> Frame | None:
        """The next frame of the latest seek, or None (frames decoded before a seek are skipped);
        `read_generation` is then the seek generation it belongs to."""
        deadline = time.monotonic() + timeout_s
        while (item := self._buffer.get(max(0.0, deadline - time.monotonic()))) is not None:
            generation, frame = item
            if generation == self.playback.generation:
                self.read_generation, self._last_read_index = generation, frame.index
                self._warn_skipped()
                return frame
        if self._at_end.is_set() and self._buffer.empty():
            self._read_to_end = True
            self._warn_skipped()
        return None

    def peek(self, timeout_s: float) -> Frame | None:
        """The frame a `read` would return next (or, after a seek, one decoded before it), left
        for that read; None if none came within the timeout."""
        return self._buffer.peek(timeout_s)

    def _warn_skipped(self) -> None:
        for path in self._skipped_paths():
            if path not in self._warned:
                self._warned.add(path)
                log.warning("%s is not a readable image; skipped", path)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._buffer.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            try:
                info = self._reader.open()
                self.info = info
            except SourceError as exc:
                self.error = str(exc)
                log.info("cannot open the source", exc_info=True)
                return
            finally:
                self._opened.set()
            self._clock_origin_s = time.monotonic()  # a source that fails before its first frame: from the open
            if not info.live:
                self.error = self._play()
                return
            gap_reason = None
            while True:
                failure = self._deliver(gap_reason)
                if self._stop.is_set():
                    return
                gap_reason = failure or f"{self.info.name} stopped sending frames"
                if not self._reconnect(gap_reason):
                    return
        except Exception as exc:  # noqa: BLE001 - a reader's unforeseen failure ends the run as an error, not silently
            log.exception("the capture thread failed")
            self.error = f"reading the frames failed unexpectedly ({type(exc).__name__}; the log file has the details)"
        finally:
            self._reader.close()
            self._done.set()

    def _play(self) -> str | None:
        """Plays a file as its playback says until stop(), or a failure (returns the message). A
        new source starts from its first frame, whatever was asked of the one before it."""
        playback = self.playback
        playback.claim_seek()
        generation, start_s = playback.generation, None
        while not self._stop.is_set():
            claimed = playback.claim_seek()
            if claimed is not None:
                generation, start_s = claimed.generation, claimed.position_s
                if claimed.loop_offset is not None:  # the pass of the frame shown, not the one read ahead
                    self._loop_offset = claimed.loop_offset
            try:
                self._pass(generation, start_s)
            except SourceError as exc:
                log.info("the source stopped delivering", exc_info=True)
                return str(exc)
            if self._stop.is_set() or playback.generation != generation:
                continue  # a seek: start again from its position
            if playback.loop:
                start_s = 0.0  # a loop is a seek to the start (the stages start afresh) that runs on
                self._loop_offset = (self._last_index + 1, self._last_pts_s + self.info.step_s)
                continue
            self._at_end.set()
            playback.wait_for_seek(generation, self._stop)
            self._at_end.clear()
        return None

    def _pass(self, generation: int, start_s: float | None) -> None:
        """Delivers the file's frames from `start_s` (None: the start) until its end, stop() or a seek."""
        playback = self.playback
        frames = self._reader.frames(start_s)
        seeked = start_s is not None
        cancelled = lambda: self._stop.is_set() or playback.generation != generation  # noqa: E731
        try:
            while not cancelled():
                decode_start = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    return
                frame.decode_ms = (time.perf_counter() - decode_start) * 1000
                frame.seeked, seeked = seeked or frame.seeked, False
                frame.loop_offset = self._loop_offset
                frame.index += frame.loop_offset[0]
                frame.pts_s += frame.loop_offset[1]
                if not playback.capture_due(frame.pts_s, generation, self._stop):
                    return
                self._buffer.put(generation, frame, cancelled)
                self._last_index, self._last_pts_s = frame.index, frame.pts_s
                self.frames_read += 1
        finally:
            frames.close()

    def _deliver(self, gap_reason: str | None) -> str | None:
        """Passes a live reader's frames on until it ends (None), fails (the message) or stop()."""
        index_offset = self.frames_read
        pts_offset_s = 0.0
        previous_s = None  # the last frame's time in this connection
        frames = self._reader.frames()
        try:
            while not self._stop.is_set():
                decode_start = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    return None
                frame.decode_ms = (time.perf_counter() - decode_start) * 1000
                if gap_reason is not None:  # the first frame after a reconnection: at its time since time 0
                    pts_offset_s = time.monotonic() - self._clock_origin_s - frame.pts_s
                    frame.gap = Gap(self._last_pts_s, frame.pts_s + pts_offset_s, gap_reason)
                    gap_reason = None
                frame.index += index_offset
                frame.pts_s += pts_offset_s
                self._buffer.put(self.playback.generation, frame, self._stop.is_set)
                self._last_pts_s = frame.pts_s
                if previous_s is not None:
                    self._times = (self._times[0] + 1, self._times[1] + frame.pts_s - previous_s)
                previous_s = frame.pts_s
                origin_s = time.monotonic() - frame.pts_s
                if self.frames_read == 0 or origin_s < self._clock_origin_s:
                    self._clock_origin_s = origin_s
                self.frames_read += 1
        except SourceError as exc:
            log.info("the source stopped delivering", exc_info=True)
            return str(exc)
        finally:
            frames.close()
        return None

    def _reconnect(self, reason: str) -> bool:
        """Reopens the reader with backoff until it opens (True) or stop() is called (False)."""
        self._reader.close()
        self._backoff.reset()
        last_failure = reason
        while True:
            delay_s = self._backoff.next_delay_s()
            self.status = (f"{last_failure}; reconnecting in {delay_s:.1f} s "
                           f"(attempt {self._backoff.attempts})")
            log.info("%s", self.status)  # callers show `status`; a warning would print it twice
            if self._stop.wait(delay_s):
                return False
            try:
                self._reader.open()
            except SourceError as exc:
                last_failure = str(exc)
                log.debug("reconnecting failed", exc_info=True)
                continue
            self.status = None
            self.reconnections += 1
            log.info("%s reconnected", self.info.name)
            return True


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'WxH' -> (W, H) pixels, each 1 to MAX_FRAME_SIDE; None for no text. ValueError otherwise."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"size must look like 640x480, not '{text}'")
    if max(int(match[1]), int(match[2])) > MAX_FRAME_SIDE:
        raise ValueError(f"size {text.strip()} has a side over {MAX_FRAME_SIDE} pixels (8K)")
    return int(match[1]), int(match[2])


def is_device_or_stream(spec: str) -> bool:
    """A webcam index or a URL: a source that may work on a later try, unlike a bad file."""
    spec = spec.strip()
    return bool(re.fullmatch(r"\d+", spec)) or bool(URL.match(spec))


def keeps_own_rate(spec: str) -> bool:
    """Whether the source `spec` names keeps its own frame rate, which --fps does not change: a
    video file, a stream or a webcam (only an image folder, a single image or a local file without
    timestamps, such as a raw .h264 stream, is read at --fps). Probes only a regular file (a named
    pipe would lose the frames the probe reads); anything else, or a file FFmpeg cannot open: True.
    Where the source is open, SourceInfo.own_rate says it without a probe."""
    if is_device_or_stream(spec):
        return True
    path = Path(spec.strip()).expanduser()
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    if not path.is_file():
        return True
    try:
        with av.open(str(path)) as container:
            return not _no_timestamps(container)
    except (av.error.FFmpegError, OSError):
        return True


def open_source(spec: str, *, size: tuple[int, int] | None = None, max_side: int | None = None,
                playback: Playback | None = None, buffer_frames: int = BUFFER_FRAMES, timeout_s: float = 10.0,
                loop: bool = False, fps: float | None = None, parse_side: int | None = None) -> Source:
    """One `--source` string -> a Source (not started): an integer is a webcam, a folder an image
    sequence at `fps` (None: the rate its own metadata gives, see sequence_rate, else
    DEFAULT_SEQUENCE_FPS), a local file without timestamps (a raw .h264 stream) a video at `fps`
    (None: the rate its header states, else FFmpeg's assumed one, see PyAVReader), anything else a video file or URL, which is live or a file by what
    FFmpeg finds at open (see PyAVReader); a file or a folder runs on endlessly from its start at
    its end with `loop` (indices and times rising). Files are played as `playback` says (None: every frame, as
    fast as they are read). Frames are fitted into `size` (W, H) with their aspect kept (black
    bars: geometry.OutputSize), or scaled down to at most `max_side` pixels on their long side; those still longer than `parse_side` carry a copy scaled to it
    for the parser (Frame.parse_image). SourceError for '-' (standard input, which is not read),
    a path that does not exist or cannot be looked at (a name too long, a folder on its way that
    may not be searched, "~name" of no user), and a URL holding a line break (which no message
    could show whole, so redact_url could not hide it)."""
    spec = spec.strip()
    if spec == "-":
        raise SourceError("reading standard input ('-') is not supported: give a video file, image folder, webcam "
                          "index or stream URL")
    if re.fullmatch(r"\d+", spec):
        return Source(WebcamReader(int(spec), size=size, max_side=max_side, parse_side=parse_side), playback=playback)
    if URL.match(spec):
        if broken := re.search(f"[{LINE_BREAKS}]", spec):
            raise SourceError(f"the stream URL holds a line break ({ascii(broken[0])}): write it as "
                              f"{quote(broken[0])}")
        reader = PyAVReader(spec, size=size, max_side=max_side, live=None, timeout_s=timeout_s, loop=loop,
                            parse_side=parse_side)
        return Source(reader, buffer_frames=buffer_frames, playback=playback)
    try:
        path = Path(spec).expanduser()
        folder = path.is_dir()
        found = folder or path.exists()
    except RuntimeError:  # "~name/..." where no user is called name
        raise SourceError(f"{redact_url(spec)}: no such user, so no home folder to start from") from None
    except OSError as exc:  # a name too long, a folder on the way that may not be searched
        raise SourceError(f"{redact_url(spec)}: {exc.strerror or exc}") from None
    if folder:
        return Source(ImageFolderReader(path, size=size, max_side=max_side, fps=fps, parse_side=parse_side, loop=loop),
                      buffer_frames=buffer_frames, playback=playback)
    if not found:
        raise SourceError(f"{spec}: no such file, folder, webcam index or stream URL")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source(_SingleImageReader(path, size=size, max_side=max_side, fps=fps, parse_side=parse_side),
                      buffer_frames=buffer_frames, playback=playback)
    reader = PyAVReader(str(path), size=size, max_side=max_side, timeout_s=timeout_s, loop=loop,
                        parse_side=parse_side, fps=fps)
    return Source(reader, buffer_frames=buffer_frames, playback=playback)


class _SingleImageReader(ImageFolderReader):
    skip_unreadable = False  # the only frame: its failure is the source's

    def open(self) -> SourceInfo:
        self._paths = [self.folder]
        self.fps = self.fps or DEFAULT_SEQUENCE_FPS
        return SourceInfo(str(self.folder), False, 1, self.fps, duration_s=1 / self.fps, own_rate=False)


def _server_seeks(url: str, timeout_s: float) -> bool:
    """Whether the http(s) server of `url` answers a Range request (206) and so lets FFmpeg seek
    in the file; True for other addresses, and when asking fails (nothing is then known)."""
    if not url.lower().startswith(("http://", "https://")):
        return True
    try:
        request = basic_auth_request(url)
        request.add_header("Range", "bytes=0-0")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status == 206
    except (OSError, ValueError):
        return True


def _source_error(what: str, exc: BaseException, url: str | None = None, *, opening: bool = False,
                  timed_out: bool = False) -> SourceError:
    """SourceError 'what: why' in plain words; FFmpeg's own text goes to the log. `url`: the
    address that failed, whose own mistakes (_user_info_problem, a concat list's bad entry:
    _concat_entry_problem) are the reason given; `opening`: it failed to open (else to read),
    `timed_out`: after FFmpeg gave up waiting for it."""
    log.info("%s: %s", what, redact_url(str(exc)))
    own = url and (_user_info_problem(url) or _concat_entry_problem(url))
    return SourceError(f"{what}: {own or _reason(exc, url, opening=opening, timed_out=timed_out)}")


def _concat_entry_problem(url: str) -> str | None:
    """What is wrong with the first bad `file` entry of `url` when it is an FFmpeg concat list
    (a local file starting "ffconcat version"), named as the list names it: a file that is not
    there (relative to the list's folder), or one FFmpeg's concat reader refuses as unsafe
    ("permission denied"): outside that folder (an absolute path or '..'), a URL, or a name it
    does not take (each folder and file name of letters, digits, '_', '-' and '.', not starting
    with '.': its safe_filename, libavformat/concatdec.c). None otherwise."""
    path = Path(url)
    try:
        with path.open("rb") as file:
            if not file.read(16).startswith(b"ffconcat version"):
                return None
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        directive, _, rest = line.strip().partition(" ")
        if directive != "file" or not rest.strip():
            continue
        try:
            entry = shlex.split(rest)[0]
        except ValueError:  # an unclosed quote: FFmpeg's own reason stands
            return None
        if URL.match(entry):
            return (f"its entry '{entry}' is a URL, which FFmpeg's concat reader refuses: list local files "
                    "beside the list, or in folders under it")
        target = path.parent / entry
        if not target.exists():
            where = "" if PurePosixPath(entry).is_absolute() else f" in {path.parent}"
            return f"its entry '{entry}' is missing (no such file{where})"
        if PurePosixPath(entry).is_absolute() or ".." in PurePosixPath(entry).parts:
            return (f"its entry '{entry}' is outside the list's folder (an absolute path or '..'), which FFmpeg's "
                    "concat reader refuses: name files beside the list, or in folders under it")
        if not _CONCAT_SAFE_NAME.fullmatch(entry):
            return (f"its entry '{entry}' has a name FFmpeg's concat reader refuses (it takes letters, digits, "
                    "'_', '-' and '.', not first, in each folder and file name): rename the file")
    return None


_CONCAT_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")


def _user_info_problem(url: str) -> str | None:
    """What is wrong with the password in `url`'s user-info part (user:password@), said without
    the credential: "the password holds '/': write it as %2F" when it holds a character that
    ends the address's authority ('/', '?' or '#': FFmpeg, as RFC 3986 says, then reads the
    rest as the path and the password's first part as the port). None when nothing is wrong,
    when there is no user-info, and for an address whose host:port/path holds an '@'."""
    found = re.match(rf"{URL.pattern}(.*)@", url)
    stop = re.search(r"[/?#]", found[1]) if found else None
    if stop is None:
        return None
    user_and_password = found[1][:stop.start()]
    if ":" not in user_and_password or user_and_password.split(":", 1)[1].isdigit():
        return None  # no password before it, or host:port and a path
    return f"the password holds '{stop[0]}': write it as %{ord(stop[0]):02X}"


def _reason(exc: BaseException, url: str | None = None, *, opening: bool = False, timed_out: bool = False) -> str:
    """Why FFmpeg or the system failed, in plain words (the raw text goes to the log with the
    traceback; credentials removed either way); `url`: the address that failed, when one did;
    `opening`: it failed to open (else to read), `timed_out`: after FFmpeg gave up waiting."""
    running = "the server is running" if url is not None and _names_a_file(url) else "the camera is on"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing answered at that address (connection refused): check the address and that {running}"
    if timed_out or isinstance(exc, (TimeoutError, av.error.ExitError)):
        return f"no answer in time: check the address and that {running} and reachable"
    if opening and url is not None and URL.match(url) and (unreached := _unreached(exc, url, running)):
        return unreached
    if isinstance(exc, av.error.HTTPUnauthorizedError) and url is not None and not _AUTHORITY_USER_INFO.match(url):
        return "it asks for a user name and password: add them to the address, before the host"
    for kind, words in _PLAIN_REASONS:
        if isinstance(exc, kind):
            return words
    text = getattr(exc, "strerror", None) or str(exc)
    return redact_url(text.strip().rstrip("."))


def _unreached(exc: BaseException, url: str, running: str) -> str | None:
    """What FFmpeg's bare "Input/output error" or "Invalid data" meant for the stream at `url`, in
    a user's words with what to check (`running`: "the camera is on" or "the server is running"):
    the host name is not known (asked of the system again: it does not resolve), or the connection
    was closed before a video came (a reset; for RTSP also FFmpeg's "Invalid data", which is what a
    server closing the connection, or one that speaks no RTSP, gives it); None otherwise."""
    try:
        host = urlsplit(_USER_INFO.sub(r"\1", url)).hostname
    except ValueError:  # a host in brackets that is no IPv6 address
        return None
    if not host:
        return None
    check = f"check the address and that {running}"
    if isinstance(exc, ConnectionError):
        return f"the connection was closed before a video came: {check}"
    if isinstance(exc, av.error.InvalidDataError) and url.lower().startswith(("rtsp://", "rtsps://")):
        return f"the connection was closed before a video came, or what answered is no RTSP camera: {check}"
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror:
            return f"the host name '{host}' is not known: check the address and the network"
        except (OSError, UnicodeError):
            return None
    return None


def _names_a_file(url: str) -> bool:
    """An http(s) address of a video file (its path ends in a video suffix), not of a camera."""
    try:
        parts = urlsplit(_USER_INFO.sub(r"\1", url))  # a password's "[", "/" or "?" would mislead urlsplit
    except ValueError:  # a host in brackets that is no IPv6 address
        return False
    return parts.scheme.lower() in ("http", "https") and PurePosixPath(parts.path).suffix.lower() in VIDEO_SUFFIXES


_NOT_READABLE = "it is not a video PartSight can read"
_PLAIN_REASONS = (
    (av.error.InvalidDataError, f"{_NOT_READABLE}, or it is damaged"),
    (av.error.DemuxerNotFoundError, _NOT_READABLE),
    (av.error.DecoderNotFoundError, "its video format cannot be decoded here"),
    (av.error.HTTPUnauthorizedError, "the user name or password was not accepted"),
    (av.error.HTTPForbiddenError, "access was refused (HTTP 403)"),
    (av.error.HTTPNotFoundError, "there is nothing at that address (HTTP 404)"),
    (PermissionError, "permission denied"),
    (FileNotFoundError, "no such file"),
)


class WebcamProbe:
    """Finds which of `devices` (webcam indices, or device paths such as /dev/video0) open: each
    is opened by OpenCV on its own thread, all at once (on Linux an index only when its
    /dev/videoN exists: opening a missing V4L2 device only prints warnings). An open can hang (a
    busy or broken device, for ever) and cannot be interrupted: `found` answers at any time, `done`
    says whether every probe has answered, and `close` joins the probe threads, for at most its
    timeout: a probe still opening then is left running (a daemon thread, ending with its open or
    with the process) and named in the log, as no owner can stop it."""

    def __init__(self, devices: Sequence[int | str] = range(4)) -> None:
        self._devices = list(devices)
        self._opened: dict[int | str, bool] = {}
        self._threads = {device: threading.Thread(target=self._probe, args=(device,), name="partsight-webcam-probe",
                                                  daemon=True)
                         for device in self._devices
                         if isinstance(device, str) or not sys.platform.startswith("linux")
                         or Path(f"/dev/video{device}").exists()}
        for thread in self._threads.values():
            thread.start()

    def _probe(self, device: int | str) -> None:
        capture = cv2.VideoCapture(device)
        self._opened[device] = capture.isOpened()
        capture.release()

    @property
    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads.values())

    def found(self) -> list[int | str]:
        """The devices that opened, in the order given; one still opening is not among them."""
        opened = dict(self._opened)
        return [device for device in self._devices if opened.get(device)]

    def close(self, timeout_s: float | None = None) -> list[int | str]:
        """Joins every probe thread, waiting `timeout_s` seconds in all (None: until every open
        has returned); returns the devices still opening then, in the order given (each left
        running, with a warning naming it). Calling it again joins those left."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads.values():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        opening = [device for device, thread in self._threads.items() if thread.is_alive()]
        if opening:
            log.warning("webcam probe: %s still opening after %.1f s, left running (an open cannot be interrupted)",
                        ", ".join(map(str, opening)), timeout_s)
        return opening
