"""`/v1/live`: a camera's frames from the page over a WebSocket, run through a FrameRunner as a live
source (temporal smoothing, tracking and the repetition count carry from frame to frame). The
server keeps only the newest frame that arrived while it was busy (NewestFrame), so a camera faster
than the parser never builds up lag.

Protocol (JSON text messages, binary frames):
1. client: {"token"?, "model"?, "max_people"?, "people"?, "person_mask"?, "pose"?, "angles"?, "exercise"?}
2. server, once the run's networks are built for a 640 x 480 camera (FrameRunner.warm_up):
   {"type": "ready", "model", "labels", "palette", "exercise"}, or {"type": "error", "code",
   "error"} and the connection closes (1008 token, 1013 busy, 1003 bad options).
3. client: binary messages, each a 4-byte big-endian frame number and a JPEG (or PNG) image.
4. server, for the newest frame each time the last one is done: {"type": "result", "seq",
   "dropped" (frames skipped by the time it is sent, each replaced unparsed by a newer one, those
   that came while frame seq was parsed included), "fps", "latency_ms", "frame" (the --metrics
   JSONL line, reps under frame.analysis.fitness), "label_map" (class ids as base64 PNG)}; a
   message that is no frame (text, fewer than 4 bytes, a frame number without an image) or a frame
   that cannot be decoded gets {"type": "error", "seq" (None when the message has none), "code",
   "error"} and the connection stays."""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.analysis.exercises import PRESETS
from realtime.config import PipelineConfig, default
from realtime.models.registry import get_spec
from realtime.serve.engine import FrameRunner, ModelUnavailable, check_available, result_json
from realtime.serve.limits import MAX_PEOPLE_RULE, ApiError, checked_option, option_error, read_image
from realtime.serve.service import WARM_UP_HW, Service

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">I")
HELLO_TIMEOUT_S = 10.0
CLOSE_BAD_DATA, CLOSE_POLICY, CLOSE_TRY_LATER = 1003, 1008, 1013


class NewestFrame:
    """A one-frame slot: `put` replaces a frame not yet taken (counted in `dropped`), `take` waits
    for the next one."""

    def __init__(self) -> None:
        self._item: Any = None
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, item: Any) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    async def take(self) -> Any:
        await self._ready.wait()
        self._ready.clear()
        item, self._item = self._item, None
        return item


def live_config(hello: dict[str, Any], service: Service) -> PipelineConfig:
    """The run's config from the client's first message. ValueError for bad options."""
    known = {"token", "model", "max_people", "people", "person_mask", "pose", "angles", "exercise"}
    unknown = sorted(set(hello) - known)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; options: {', '.join(sorted(known - {'token'}))}")
    settings = service.settings
    exercise = str(hello.get("exercise") or "")
    if exercise and exercise not in PRESETS:  # a custom exercise's joint and angles have no options here
        what = "custom exercises are not available on the live socket" if exercise == "custom" \
            else f"unknown exercise {exercise!r}"
        raise ValueError(f"{what}; choose a preset: {', '.join(PRESETS)}")
    max_people = hello.get("max_people")
    max_people = default("max_people") if max_people is None else \
        checked_option("max_people", max_people, int, **MAX_PEOPLE_RULE)
    people = str(hello.get("people") or settings.people)
    config = PipelineConfig(source="camera", model=str(hello.get("model") or settings.model), device=settings.device,
                            dtype=settings.dtype, max_people=max_people,
                            people=people, people_size=settings.people_size_for(people),
                            person_mask=str(hello.get("person_mask") or default("person_mask")),
                            pose=str(hello.get("pose") or default("pose")),
                            angles=str(hello.get("angles") or default("angles")),
                            exercise=PRESETS[exercise] if exercise else None)
    check_available(config)
    return config


async def serve_live(ws: WebSocket, service: Service) -> None:
    await ws.accept()
    try:
        hello = await asyncio.wait_for(ws.receive_json(), HELLO_TIMEOUT_S)
        if not isinstance(hello, dict):
            raise ValueError("the first message must be a JSON object of options")
    except (asyncio.TimeoutError, ValueError, KeyError):
        await _refuse(ws, CLOSE_BAD_DATA, "bad_hello", "send a JSON object of options first")
        return
    except WebSocketDisconnect:
        return
    if not service.token_ok(hello.get("token")):
        await _refuse(ws, CLOSE_POLICY, "token", "missing or wrong token")
        return
    try:
        config = live_config(hello, service)
    except (ValueError, TypeError) as exc:
        code = "model_unavailable" if isinstance(exc, ModelUnavailable) else "bad_option"
        await _refuse(ws, CLOSE_BAD_DATA, code, option_error(exc))
        return
    if not service.live_gate.try_enter():
        await _refuse(ws, CLOSE_TRY_LATER, "busy", f"this server takes {service.live_gate.capacity} cameras at "
                                                   "once; try again later")
        return
    runner = None
    try:
        runner = await run_in_threadpool(FrameRunner, config)
        # the first frames are answered at speed: the graphs are built for the page's camera size first
        await run_in_threadpool(runner.warm_up, WARM_UP_HW)
        spec = get_spec(config.model)
        await ws.send_json({"type": "ready", "model": config.model, "labels": list(spec.labels.names),
                            "palette": spec.labels.palette.tolist(),
                            "exercise": None if config.exercise is None else config.exercise.to_dict()})
        await _stream(ws, service, runner)
    except WebSocketDisconnect:
        pass
    except Exception:  # noqa: BLE001 - logged here; the client only sees the connection close
        log.exception("live connection failed")
        if ws.client_state == WebSocketState.CONNECTED:
            await ws.close(1011)
    finally:
        if runner is not None:
            await run_in_threadpool(runner.close)
        service.live_gate.leave()


async def _stream(ws: WebSocket, service: Service, runner: FrameRunner) -> None:
    slot = NewestFrame()
    started_s = time.monotonic()
    max_pixels = service.settings.limits.max_image_pixels
    sending = asyncio.Lock()  # the receiver's refusals and the results go out one message at a time

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await ws.send_json(message)

    async def receive() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            refusal = frame_refusal(message)
            if refusal is not None:
                await send({"type": "error", **refusal})
                continue
            data = message["bytes"]
            slot.put((FRAME_HEADER.unpack_from(data)[0], data[FRAME_HEADER.size:], time.monotonic()))

    receiver = asyncio.create_task(receive())
    try:
        while True:
            taker = asyncio.create_task(slot.take())
            done, _ = await asyncio.wait({taker, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if taker not in done:
                taker.cancel()
                return
            seq, data, arrived_s = taker.result()
            try:  # decoding a large frame takes milliseconds the event loop owes the other connections
                rgb, decode_ms = await run_in_threadpool(read_image, data, max_pixels)
            except ApiError as exc:
                await send({"type": "error", "seq": seq, "code": exc.code, "error": exc.message})
                continue
            result = await run_in_threadpool(runner.process, rgb, index=seq, pts_s=arrived_s - started_s,
                                             captured_s=arrived_s, decode_ms=decode_ms)
            await send({"type": "result", "seq": seq, "dropped": slot.dropped, "fps": round(result.fps, 2),
                        "latency_ms": round(result.latency_ms, 1), **result_json(result, label_map=True)})
    finally:
        receiver.cancel()


def frame_refusal(message: dict[str, Any]) -> dict[str, Any] | None:
    """Why a message after the options is not a frame ({"seq", "code", "error"}; seq None when the
    message has none), or None for a frame: a binary message of a 4-byte frame number and an
    image (read_image then checks the image)."""
    data = message.get("bytes")
    if data is None:
        return {"seq": None, "code": "not_a_frame", "error": "after the options, send frames as binary messages "
                                                             "(a 4-byte big-endian frame number and a JPEG), not text"}
    if len(data) < FRAME_HEADER.size:
        return {"seq": None, "code": "not_a_frame", "error": f"a frame is a 4-byte big-endian frame number and a "
                                                             f"JPEG; this message has {len(data)} byte(s)"}
    if len(data) == FRAME_HEADER.size:
        return {"seq": FRAME_HEADER.unpack_from(data)[0], "code": "empty_upload",
                "error": "the frame number came without an image after it"}
    return None


async def _refuse(ws: WebSocket, code: int, error_code: str, message: str) -> None:
    try:
        await ws.send_json({"type": "error", "code": error_code, "error": message})
        await ws.close(code)
    except (WebSocketDisconnect, RuntimeError):
        pass
