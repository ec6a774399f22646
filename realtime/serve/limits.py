"""The checks that apply a service's Limits to what clients send: images are measured from their
header before anything is decoded (a small file can declare a 50000 x 50000 image) and then decoded,
videos are probed for size, duration and frame count and their first frame decoded, so content is
judged by decoding, never by a file name or Content-Type; URLs are fetched only from listed hosts,
redirects included. A refusal raises ApiError: an HTTP 4xx status, a short code and a one-line
message that the client gets as JSON."""
from __future__ import annotations

import io
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field, TypeAdapter, ValidationError

from realtime.serve.settings import MB
from realtime.sources import basic_auth_request, frames_shown, quiet_opencv, redact_url

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
_CHUNK_BYTES = 1 << 20


# max_people's rule on every endpoint: the forms' Form(**MAX_PEOPLE_RULE), /v1/live's checked_option
MAX_PEOPLE_RULE = {"ge": 1, "le": 32}


def checked_option(name: str, value: Any, kind: type, **rule: Any) -> Any:
    """`value` of option `name` validated as a form field declared `Annotated[kind, Form(**rule)]`
    is (pydantic, lax as for JSON: "3" passes as 3); ValueError in the forms' 422 words
    ("max_people: Input should be greater than or equal to 1")."""
    try:
        return TypeAdapter(Annotated[kind, Field(**rule)]).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{name}: {exc.errors()[0]['msg']}") from None


def option_error(exc: Exception) -> str:
    """An engine's error about a request's options, in the API's words: its first line, the
    command-line flags it names (`--person-mask`) as the request's fields (`person_mask`)."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda flag: flag.group(1).replace("-", "_"), str(exc).splitlines()[0])


class ApiError(Exception):
    """A request the service refuses: `status` (4xx), a machine-readable `code`, a one-line
    `message` for the client, and `headers` for the response (e.g. Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def read_image(data: bytes, max_pixels: int) -> tuple[np.ndarray, float]:
    """Encoded PNG / JPEG / WebP / BMP / TIFF bytes -> (H x W x 3 uint8 RGB, upright by its EXIF
    orientation; decoding time in ms). The header's width x height is checked against `max_pixels`
    before decoding. ApiError: 400 empty, 415 not one of those formats, 413 too many pixels, 422
    damaged (one of them by its signature that does not decode, its header included)."""
    if not data:
        raise ApiError(400, "empty_upload", "the upload is empty")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            kind, (width, height) = header.format, header.size
    except Image.DecompressionBombError:
        raise _too_many_pixels("the image", None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        kind = _signature_format(data)
        if kind is not None:  # a TIFF cut before its directory, a WebP before its end: PIL cannot read the header
            raise _damaged(kind) from None
        raise ApiError(415, "not_an_image", f"the upload is not an image ({', '.join(IMAGE_FORMATS)}; "
                                            "judged by its content, not its name)") from None
    if kind not in IMAGE_FORMATS:
        raise ApiError(415, "unsupported_image", f"{kind} images are not accepted; send {', '.join(IMAGE_FORMATS)}")
    if width * height > max_pixels:
        raise _too_many_pixels("the image", (width, height), max_pixels)
    damaged = _damaged(kind)
    start = time.perf_counter()
    try:  # the file's structure first (PNG: every chunk and its CRC): libpng prints what it finds to stderr
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError):
        raise damaged from None
    with quiet_opencv:  # a damaged image is the client's 422, not the decoder's text on the console
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # EXIF orientation applied
    if bgr is None or bgr.size == 0:
        raise damaged
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb, (time.perf_counter() - start) * 1000


def _signature_format(data: bytes) -> str | None:
    """The one of IMAGE_FORMATS whose signature `data` starts with (PIL's own test for each format,
    on the 16 bytes it reads first), or None."""
    Image.init()
    return next((kind for kind in IMAGE_FORMATS if Image.OPEN[kind][1](data[:16])), None)


def _damaged(kind: str) -> ApiError:
    return ApiError(422, "damaged_image", f"the {kind} image cannot be decoded: it is damaged or truncated")


@dataclass(frozen=True)
class VideoFacts:
    """What a video's container says: display size in pixels, frames per second, duration in
    seconds and frames (a player's count)."""

    width: int
    height: int
    fps: float | None
    duration_s: float
    frames: int


def probe_video(path: Path, *, max_pixels: int, max_s: float, max_frames: int) -> VideoFacts:
    """Opens the video at `path`, checks its frame size, duration and frame count against the limits
    and decodes its first frame. ApiError: 400 empty, 415 not a video (or a still image), 413 over a
    limit, 422 unreadable (also a file with a video container's signature that FFmpeg cannot open: an
    MP4 cut short before its index)."""
    if path.stat().st_size == 0:
        raise ApiError(400, "empty_upload", "the upload is empty")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError):
        with path.open("rb") as file:
            kind = _video_signature(file.read(16))
        if kind is not None:  # e.g. an MP4 with its index (moov) at the end, cut short: an interrupted upload
            raise ApiError(422, "damaged_video", f"the upload is {kind} video (by its signature) that cannot be "
                                                 "opened: it is damaged or truncated") from None
        raise ApiError(415, "not_a_video", "the upload is not a video FFmpeg can read (judged by its content, "
                                           "not its name)") from None
    with container:
        if not container.streams.video:
            raise ApiError(415, "not_a_video", "the upload has no video stream")
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise ApiError(415, "still_image", "the upload is a still image: send it to /v1/parse")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise _too_many_pixels("the video's frames", (width, height), max_pixels)
        fps = float(stream.average_rate) if stream.average_rate else None
        duration_s = _duration_s(container, stream)
        frames = frames_shown(stream) or (round(duration_s * fps) if duration_s and fps else None)
        if duration_s is None and frames and fps:
            duration_s = frames / fps
        if duration_s is None or frames is None:
            raise ApiError(422, "unknown_length", "the video's duration cannot be read from its container")
        if duration_s > max_s:
            raise ApiError(413, "video_too_long", f"the video lasts {duration_s:.1f} s; this server takes at most "
                                                  f"{max_s:g} s")
        if frames > max_frames:
            raise ApiError(413, "too_many_frames", f"the video has {frames} frames; this server takes at most "
                                                   f"{max_frames}")
        try:
            next(container.decode(stream))
        except (av.error.FFmpegError, OSError, ValueError, StopIteration):
            raise ApiError(422, "damaged_video", "the video's first frame cannot be decoded: it is damaged "
                                                 "or truncated") from None
    return VideoFacts(width, height, fps, duration_s, frames)


# ISO base media (MP4, MOV) major brands of still images (HEIF, AVIF) and of sound alone (M4A)
_NOT_VIDEO_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis", b"M4A ",
                               b"M4B ", b"M4P "})


def _video_signature(head: bytes) -> str | None:
    """The video container whose signature the file's first 16 bytes `head` carry, in words ("an
    MP4 (or MOV)", "a Matroska (or WebM)", "an AVI"), or None."""
    if head[4:8] == b"ftyp" and head[8:12] not in _NOT_VIDEO_BRANDS:
        return "an MP4 (or MOV)"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a Matroska (or WebM)"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "an AVI"
    return None


def _duration_s(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _too_many_pixels(what: str, size: tuple[int, int] | None, max_pixels: int) -> ApiError:
    given = f" of {size[0]}x{size[1]}" if size else ""
    return ApiError(413, "too_many_pixels", f"{what}{given} has more than this server's limit of "
                                            f"{max_pixels} pixels (read from its header; nothing was decoded)")


class _HostCheckingRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allowed_hosts: tuple[str, ...]) -> None:
        self.allowed_hosts = allowed_hosts

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allowed_hosts)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_url(url: str, allowed_hosts: tuple[str, ...]) -> None:
    """ApiError 403 unless URL fetching is on (`allowed_hosts` not empty) and `url` is http(s) on
    one of those hosts; 422 for a malformed URL."""
    if not allowed_hosts:
        raise ApiError(403, "url_fetch_off", "this server does not fetch URLs: upload the file instead (the "
                                             "server's operator can allow hosts with --allow-url-host)")
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise ApiError(422, "bad_url", "the url is malformed") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, "bad_url", "only http:// and https:// URLs are fetched")
    if host not in allowed_hosts:
        raise ApiError(403, "host_not_allowed", f"this server does not fetch from {host}; allowed hosts: "
                                                f"{', '.join(allowed_hosts)}")


def fetch_url(url: str, target: Path, *, allowed_hosts: tuple[str, ...], max_bytes: int,
              timeout_s: float = 30.0) -> None:
    """Downloads `url` to `target` when check_url allows it (every redirect is checked the same
    way), at most `max_bytes`; a user:password@ in it is sent as HTTP Basic authentication to that
    host only (not on to a redirect's) and is never in a message. ApiError: 403 / 422 as
    check_url, 413 too large, 422 url_status when the server answers with an HTTP error status,
    422 url_unreachable when it cannot be reached."""
    request = basic_auth_request(url)
    check_url(request.full_url, allowed_hosts)
    opener = urllib.request.build_opener(_HostCheckingRedirects(allowed_hosts))
    received = 0
    try:
        with opener.open(request, timeout=timeout_s) as response, open(target, "wb") as out:
            while chunk := response.read(_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise ApiError(413, "upload_too_large", f"the file at the url is larger than this server's "
                                                            f"limit of {math.ceil(max_bytes / MB)} MB")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise ApiError(422, "url_status", redact_url(f"cannot fetch {request.full_url}: the server answered "
                                                     f"HTTP {exc.code} {exc.reason}")) from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ApiError(422, "url_unreachable", redact_url(f"cannot fetch {request.full_url}: {reason}")) from None
