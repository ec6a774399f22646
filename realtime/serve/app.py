"""The FastAPI app: the versioned API (/v1, documented by the generated OpenAPI at /docs), the
web page at / and the live WebSocket, for one Service. uvicorn serves it as it is; Ray Serve runs
it in each replica (realtime.serve.ray_serve). Every refusal is a 4xx JSON body {"error", "code"};
anything unexpected is logged with its traceback and answered 500 {"error", "code": "internal"}
without one."""
from __future__ import annotations

import argparse
import logging
import shutil
import time
import types
import typing
import urllib.parse
import uuid
from collections import Counter
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    Path as PathParam,
    Query,
    Request,
    Security,
    UploadFile,
    WebSocket,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from realtime import weights as weights_cache
from realtime.analysis.angles import ANGLE_MODES, JOINTS
from realtime.analysis.exercises import PRESETS
from realtime.analysis.summary import REP_COLUMNS
from realtime.config import PipelineConfig, config_from_args, default
from realtime.models import resolve_device
from realtime.models.blazepose import POSE_SOURCES, available_pose_sources
from realtime.models.instance_people import PEOPLE_SOURCES
from realtime.models.labels import COCO_KEYPOINTS, COCO_SKELETON
from realtime.models.registry import MODEL_SPECS
from realtime.models.person_mask import PERSON_MASK_SOURCES
from realtime.render import KeypointAnnotator, ViewSettings
from realtime.serve.engine import (
    UPLOAD_SOURCE,
    ModelUnavailable,
    check_available,
    overlay,
    png_bytes,
    result_json,
)
from realtime.serve.jobs import (
    OUTPUTS,
    FrameNotFound,
    JobNotFound,
    JobNotReady,
    JobsBusy,
    JobSpec,
    JobWithoutFrames,
)
from realtime.serve.limits import MAX_PEOPLE_RULE, ApiError, fetch_url, option_error, probe_video, read_image
from realtime.serve.live import serve_live
from realtime.serve.service import Service
from realtime.serve.settings import MB
from realtime.sources import redact_url
from realtime.version import version
from realtime.weights import WeightsError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PEOPLE_HELP = (f"{', '.join(PEOPLE_SOURCES)}: where several people come from, the parser's own people or a "
               "multi-person model whose person instances split the parts among people")
# The page loads only its own files; it talks to this server and shows blob: URLs it made.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(413)


class _BodyCutShort(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(400, "the multipart body ends before its closing boundary")


class RequestChecks:
    """ASGI middleware, before a request's body is read: requests a browser sends from another site
    (an Origin that is not this server) are refused, HTTP with 403 and the WebSocket at its
    handshake, so no web page can drive a server on a user's machine; /v1 HTTP requests without the
    settings' bearer token get 401 (the live WebSocket checks the token in its first message); and
    bodies over `max_body_bytes` get 413, by their Content-Length or, without one, once that many
    bytes came (FastAPI's own body limit answers plain text when Content-Length says too much); a
    multipart body that ends before its closing delimiter, one cut short, is a 400 malformed_body."""

    def __init__(self, app, service: Service, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket" and cross_site(Headers(scope=scope)):
            await receive()  # the handshake; closing before accepting answers it with 403
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope["path"], headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        received = 0
        closing = _closing_delimiter(headers)
        tail = b""  # the body's last bytes, where a closing delimiter split between two reads begins

        async def counted():
            nonlocal received, closing, tail
            message = await receive()
            body = message.get("body", b"")
            received += len(body)
            if received > self.max_body_bytes:
                raise _BodyTooLarge()
            if closing is not None and message["type"] == "http.request":
                seen = tail + body
                tail = seen[1 - len(closing):]
                if closing in seen:
                    closing = None
                elif not message.get("more_body", False) and received:  # an empty body is no upload, not one cut
                    raise _BodyCutShort()
            return message

        await self.app(scope, counted, send)

    def _refusal(self, path: str, headers: Headers) -> JSONResponse | None:
        if cross_site(headers):
            return error_response(403, "cross_site", "requests from another site's page are refused")
        if path.startswith("/v1/") and self.service.settings.token is not None:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                return error_response(401, "token_missing", "this server needs a token: send the header "
                                      "'Authorization: Bearer TOKEN'", {"WWW-Authenticate": "Bearer"})
            if not self.service.token_ok(given.strip()):
                return error_response(401, "token_wrong", "the bearer token is wrong",
                                      {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return too_large(self.max_body_bytes)
        return None


def _closing_delimiter(headers: Headers) -> bytes | None:
    """A multipart/form-data body's closing delimiter (`--BOUNDARY--`, RFC 2046 section 5.1.1),
    None for another body. Python-multipart, which parses the form, ends a body that stops before
    it without a word: the parts cut off are just missing from the form."""
    content_type = EmailMessage()
    content_type["content-type"] = headers.get("content-type", "")
    boundary = content_type.get_param("boundary")
    if content_type.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        return None
    return b"--" + boundary.encode("latin-1") + b"--"


def cross_site(headers: Headers) -> bool:
    """Whether a browser sent the request from a page of another origin (Origin names another host
    or port, or is "null"); clients that are not browsers send no Origin."""
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urllib.parse.urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


def too_large(max_body_bytes: int) -> JSONResponse:
    return error_response(413, "upload_too_large", f"the upload is larger than this server's limit of "
                                                   f"{max_body_bytes / MB:g} MB")


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="PartSight", version=version(),
                  description="Human parsing into body parts: parse an image, run a video job (the files "
                              "`partsight process` writes), or stream a camera over /v1/live.")
    limits = service.settings.limits
    app.add_middleware(RequestChecks, service=service, max_body_bytes=limits.max_upload_bytes)
    _add_error_handlers(app, limits.max_upload_bytes)
    _add_page_and_health(app, service)
    # documents the scheme in /docs (its Authorize button); RequestChecks enforces it
    api = APIRouter(prefix="/v1",
                    dependencies=[Security(HTTPBearer(auto_error=False))] if service.settings.token else [])
    _add_vocabulary(api, service)
    _add_parse(api, service)
    _add_jobs(api, service)
    app.include_router(api)

    @app.websocket("/v1/live")
    async def live(ws: WebSocket) -> None:
        await serve_live(ws, service)

    return app


def _add_page_and_health(app: FastAPI, service: Service) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY,
                                                             "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", tags=["health"], summary="the process answers")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="the default model is loaded (503 until then); the models "
                                                  "loaded, the device and the dtype the networks compute in")
    def readyz() -> JSONResponse:
        headers = {"X-PartSight-Replica": service.replica}
        if service.ready:
            return JSONResponse({"status": "ready", "models": service.parsers.loaded,
                                 "device": str(resolve_device(service.settings.device)),
                                 "dtype": service.settings.dtype}, headers=headers)
        status = "error" if service.warm_error else "loading"
        return JSONResponse({"status": status, "error": service.warm_error}, status_code=503, headers=headers)


def _add_vocabulary(api: APIRouter, service: Service) -> None:
    settings, limits = service.settings, service.settings.limits

    @api.get("/models", tags=["models"], summary="the parsers, their labels and palette, and which are here",
             description="`available`: its weights are on this server; `default`: the server's model; "
                         "`people_source`: usable as the `people` option (its person instances split the "
                         "parts among people; the other choice is `parser`, the model's own people); "
                         "`default_people`: the server's default `people` source.")
    def models() -> list[dict]:
        loaded = set(service.parsers.loaded)
        return [{"name": name, "family": spec.family, "description": spec.description, "licence": spec.licence,
                 "licence_notice": spec.licence_notice, "multi_person": spec.multi_person,
                 "labels": list(spec.labels.names), "palette": spec.labels.palette.tolist(),
                 "groups": {group: list(ids) for group, ids in spec.labels.groups.items()},
                 "available": weights_cache.cached_path(spec.weights).is_file(), "loaded": name in loaded,
                 "default": name == settings.model, "people_source": name in PEOPLE_SOURCES,
                 "default_people": name == settings.people} for name, spec in MODEL_SPECS.items()]

    @api.get("/exercises", tags=["models"], summary="exercise presets, joints, keypoints, options and limits")
    def exercises() -> dict:
        return {"exercises": [preset.to_dict() for preset in PRESETS.values()], "joints": list(JOINTS),
                "rep_columns": list(REP_COLUMNS), "pose_sources": list(available_pose_sources()),
                "person_mask_sources": list(PERSON_MASK_SOURCES), "angle_modes": list(ANGLE_MODES),
                "keypoints": {"names": list(COCO_KEYPOINTS), "skeleton": [list(bone) for bone in COCO_SKELETON],
                              "min_score": KeypointAnnotator().min_score},
                "limits": {"max_upload_mb": round(limits.max_upload_bytes / MB, 1),
                           "max_image_pixels": limits.max_image_pixels, "max_video_s": limits.max_video_s,
                           "max_video_frames": limits.max_video_frames}}


def _add_parse(api: APIRouter, service: Service) -> None:
    settings, limits = service.settings, service.settings.limits

    @api.post("/parse", tags=["parse"], summary="parse one image", dependencies=[Depends(options_in_the_form)],
              responses={200: {"content": {"application/json": {}, "image/png": {}},
                               "description": "JSON: the model, the frame as a --metrics JSONL line "
                                              "(partsight.frame/1), joint angles per person found ({} without "
                                              "anyone), optionally the label map; image/png: the label map (class ids) or the overlay"},
                         413: {"description": "upload or image too large"}, 415: {"description": "not an image"},
                         429: {"description": "busy: retry after Retry-After seconds"}})
    def parse(request: Request,
              image: Annotated[UploadFile | None, File(description="PNG, JPEG, WebP, BMP or TIFF")] = None,
              url: Annotated[str | None, Form(description="instead of image: an http(s) URL on a host the "
                                                          "server allows (--allow-url-host)")] = None,
              model: Annotated[str, Form()] = settings.model,
              max_people: Annotated[int, Form(**MAX_PEOPLE_RULE)] = default("max_people"),
              people: Annotated[str, Form(description=PEOPLE_HELP)] = settings.people,
              person_mask: Annotated[str, Form(description=", ".join(PERSON_MASK_SOURCES))] = default("person_mask"),
              pose: Annotated[str, Form(description=", ".join(POSE_SOURCES))] = default("pose"),
              angles: Annotated[Literal["none", "2d", "3d"], Form()] = "2d",
              label_map: Annotated[bool, Form(description="add the label map (base64 PNG) to the JSON")] = False,
              opacity: Annotated[float, Form(ge=0.0, le=1.0, description="overlay output")] = ViewSettings().opacity,
              keypoints: Annotated[bool, Form(description="overlay output: draw the skeleton")] = True,
              output: Annotated[Literal["json", "labels", "overlay"] | None,
                                Query(description="default: json, or labels for 'Accept: image/png'")] = None,
              ) -> Response:
        options = service.parse_options(model=model, max_people=max_people, people=people, person_mask=person_mask,
                                        pose=pose, angles=None if angles == "none" else angles)
        _check_options(lambda: check_available(options.config(settings.device, settings.dtype)))
        if not service.parse_gate.try_enter():
            raise ApiError(429, "busy", "the server is parsing as many images as it takes; retry shortly",
                           {"Retry-After": str(service.parse_gate.retry_after_s())})
        arrived_s = time.monotonic()
        try:
            rgb, decode_ms = read_image(_upload_bytes(service, image, url, "image"), limits.max_image_pixels)
            result = service.parsers.parse(rgb, options, decode_ms=decode_ms, captured_s=arrived_s)
        finally:
            service.parse_gate.leave(time.monotonic() - arrived_s)
        accept = request.headers.get("accept", "")
        kind = output or ("labels" if "image/png" in accept and "json" not in accept else "json")
        headers = {"X-PartSight-Model": result.model, "X-PartSight-Replica": service.replica}
        if kind == "labels":
            return Response(png_bytes(result.parse.labels), media_type="image/png", headers=headers)
        if kind == "overlay":
            return Response(png_bytes(overlay(result, opacity=opacity, keypoints=keypoints)), media_type="image/png",
                            headers=headers)
        return JSONResponse(result_json(result, angles=options.angles, label_map=label_map), headers=headers)


async def options_in_the_form(request: Request) -> None:
    """A POST's options travel in its form, where their declarations check them; one in the URL
    instead (`/v1/parse?output=overlay&opacity=7`) would go unread, so it is a 422 bad_option, as is
    a URL parameter the route does not know, and a form field it does not know (a misspelled
    `excercise`), naming the fields it knows. A field or URL parameter sent more than once where
    the route takes one value (FastAPI would keep the last) is a 422 repeated_field. A file field
    sent as text (`curl -F image=photo.jpg`, without the @) is a 400 no_upload saying so."""
    dependant = request.scope["route"].dependant
    in_url = {param.alias for param in dependant.query_params}
    in_form = {param.alias for param in dependant.body_params}
    for name in request.query_params:
        if name in in_url:
            continue
        where = "a form field, not a URL parameter" if name in in_form else "not an option here"
        takes = f"the URL takes only {', '.join(sorted(in_url))}" if in_url else "the URL takes no options"
        raise ApiError(422, "bad_option", f"{name}: {where} ({takes})")
    # FastAPI has already read the form for the route's own fields; this reads its cached copy
    form = await request.form()
    for name in form.keys():
        if name not in in_form:
            where = "a URL parameter, not a form field" if name in in_url else "not a form field here"
            raise ApiError(422, "bad_option", f"{name}: {where} (the form takes {', '.join(sorted(in_form))})")
    declared = {param.alias: _alternatives(param.field_info.annotation)
                for param in (*dependant.query_params, *dependant.body_params)}
    sent = Counter(name for name, _ in (*request.query_params.multi_items(), *form.multi_items()))
    for name, count in sent.items():
        if count > 1 and not any(typing.get_origin(kind) in (list, tuple, set) for kind in declared[name]):
            raise ApiError(422, "repeated_field", f"{name}: sent {count} times; send it once")
    for name, value in form.multi_items():
        if isinstance(value, str) and UploadFile in declared[name]:
            raise ApiError(400, "no_upload", f"{name} came as a text field, not a file: send the file itself as a "
                                             f"file upload (curl: -F {name}=@FILE, with the @)")


def _alternatives(annotation: object) -> tuple[object, ...]:
    """The types a parameter declared as `annotation` takes: (list[str], None) for `list[str] | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _one_upload(upload: UploadFile | None, url: str | None, field: str) -> None:
    """400 no_upload for neither a file in `field` nor a `url`, 422 upload_and_url for both."""
    if upload is None and not url:
        raise ApiError(400, "no_upload", f"send the file as the multipart form field '{field}' (or a 'url')")
    if upload is not None and url:
        raise ApiError(422, "upload_and_url", f"send either the file '{field}' or a 'url', not both")


def _upload_bytes(service: Service, upload: UploadFile | None, url: str | None, field: str) -> bytes:
    """The uploaded file's bytes, or those fetched from `url` (limits.fetch_url); refused for
    neither and for both (_one_upload)."""
    limits = service.settings.limits
    _one_upload(upload, url, field)
    if upload is not None:
        return upload.file.read()
    target = service.scratch / uuid.uuid4().hex
    try:
        fetch_url(url, target, allowed_hosts=limits.allow_url_hosts, max_bytes=limits.max_upload_bytes)
        return target.read_bytes()
    finally:
        target.unlink(missing_ok=True)


def _add_jobs(api: APIRouter, service: Service) -> None:
    settings, limits = service.settings, service.settings.limits

    @api.post("/jobs", tags=["jobs"], status_code=202, summary="start a video job (the outputs of `process`)",
              dependencies=[Depends(options_in_the_form)],
              responses={202: {"description": "accepted: the job's status; poll GET /v1/jobs/{id}"},
                         413: {"description": "upload too large, video too long or too many frames"},
                         415: {"description": "not a video"}, 429: {"description": "busy: retry after Retry-After"}})
    def create_job(video: Annotated[UploadFile | None, File(description="the video (any format FFmpeg reads)")] = None,
                   url: Annotated[str | None, Form(description="instead of video: an http(s) URL on an "
                                                               "allowed host")] = None,
                   model: Annotated[str, Form()] = settings.model,
                   max_people: Annotated[int, Form(**MAX_PEOPLE_RULE)] = default("max_people"),
                   people: Annotated[str, Form(description=PEOPLE_HELP)] = settings.people,
                   person_mask: Annotated[str, Form()] = default("person_mask"),
                   pose: Annotated[str, Form()] = default("pose"),
                   angles: Annotated[Literal["2d", "3d"], Form()] = default("angles"),
                   smoothing: Annotated[float, Form(ge=0.0, le=1.0)] = default("smoothing"),
                   exercise: Annotated[str | None, Form(description=f"{', '.join(PRESETS)} or custom")] = None,
                   joint: Annotated[list[str] | None, Form(description="custom exercise: joints")] = None,
                   start_deg: Annotated[float | None, Form(description="custom exercise")] = None,
                   turn_deg: Annotated[float | None, Form(description="custom exercise")] = None,
                   frames: Annotated[int | None, Form(ge=1, description="stop after this many frames")] = None,
                   max_side: Annotated[int | None, Form(ge=16, description="scale frames down to this long "
                                                                           "side first")] = None,
                   audio: Annotated[bool, Form(description="keep the video's sound")] = True,
                   label_maps: Annotated[bool, Form(description="also keep every frame's label map "
                                                                "(GET /v1/jobs/{id}/labels/{index}) and the plain "
                                                                "video (GET /v1/jobs/{id}/plain), to draw the parts "
                                                                "client-side")] = False,
                   ) -> JSONResponse:
        args = argparse.Namespace(source=UPLOAD_SOURCE, model=model, device=settings.device, dtype=settings.dtype,
                                  max_people=max_people, people=people, people_size=settings.people_size_for(people),
                                  person_mask=person_mask,
                                  pose=pose, angles=angles, smoothing=smoothing, exercise=exercise or None,
                                  joint=joint or None, start_deg=start_deg, turn_deg=turn_deg, frames=frames,
                                  max_side=max_side, summary=None)
        _one_upload(video, url, "video")
        config: PipelineConfig = _check_options(lambda: config_from_args(args))
        _check_options(lambda: check_available(config))
        config = replace(config, frame_limit=min(config.frame_limit or limits.max_video_frames,
                                                 limits.max_video_frames))
        job_id = _jobs_call(service.jobs.reserve)
        upload = service.scratch / uuid.uuid4().hex
        try:
            if video is not None:
                with open(upload, "wb") as out:
                    shutil.copyfileobj(video.file, out)
            else:
                fetch_url(url, upload, allowed_hosts=limits.allow_url_hosts, max_bytes=limits.max_upload_bytes)
            probe_video(upload, max_pixels=limits.max_image_pixels, max_s=limits.max_video_s,
                        max_frames=limits.max_video_frames)
            name = video.filename if video is not None else redact_url(url.rsplit("?", 1)[0])
            status = service.jobs.submit(job_id, upload, JobSpec(config, name=name, audio=audio, label_maps=label_maps))
        except BaseException:
            service.jobs.release(job_id)
            raise
        finally:
            upload.unlink(missing_ok=True)
        return JSONResponse(status, status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})

    @api.get("/jobs/{job_id}", tags=["jobs"], summary="a job's state, progress %, frames and ETA")
    def job_status(job_id: str) -> dict:
        return _jobs_call(service.jobs.status, job_id)

    @api.get("/jobs/{job_id}/labels/{index}", tags=["jobs"], summary="a finished job's label map of one frame",
             description="The label map (PNG, class ids as pixel values, in the pixels of the plain and the "
                         "annotated video) of the frame whose JSONL line has this `index`; for jobs started with "
                         "`label_maps`. A page plays the plain video and colours the label map of the frame "
                         "shown: the JSONL's `pts_s` is that frame's time in both videos.",
             responses={200: {"content": {"image/png": {}}},
                        404: {"description": "no such job, or no such frame in it"},
                        409: {"description": "the job has not finished, or kept no label maps"}})
    def job_labels(job_id: str, index: Annotated[int, PathParam(ge=0, le=10_000_000)]) -> Response:
        return _file_response(_jobs_call(service.jobs.labels, job_id, index), "image/png",
                              f"partsight-{job_id[:8]}-labels-{index:06d}.png")

    @api.get("/jobs/{job_id}/{kind}", tags=["jobs"],
             summary="a finished job's annotated MP4, plain MP4, JSONL or summary",
             description="`video`: the annotated MP4 (what `process` writes); `plain`: the same frames with "
                         "nothing drawn on them, at the same times and size (jobs started with `label_maps`); "
                         "`metrics`: the JSONL, a line per frame; `summary`: the repetition summary (jobs with "
                         "an exercise).",
             responses={200: {"content": {media: {} for _, media in OUTPUTS.values()}},
                        409: {"description": "the job has not finished, or has no such output"}})
    def job_output(job_id: str, kind: Literal["video", "plain", "metrics", "summary"]) -> Response:
        file, media = OUTPUTS[kind]
        return _file_response(_jobs_call(service.jobs.output, job_id, kind), media, f"partsight-{job_id[:8]}-{file}")

    @api.delete("/jobs/{job_id}", tags=["jobs"], summary="stop a job and remove its files")
    def delete_job(job_id: str) -> dict:
        return _jobs_call(service.jobs.delete, job_id)


def _file_response(found: Path | bytes, media: str, filename: str) -> Response:
    """A job's file (a path here, or its bytes from a Ray actor), shown inline under `filename`."""
    if isinstance(found, Path):
        return FileResponse(found, media_type=media, filename=filename, content_disposition_type="inline")
    return Response(found, media_type=media, headers={"Content-Disposition": f'inline; filename="{filename}"'})


def _check_options(make):
    """make() with its ValueError (bad options, unknown or missing model) as a 422."""
    try:
        return make()
    except ModelUnavailable as exc:
        raise ApiError(422, "model_unavailable", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "bad_option", option_error(exc)) from None


def _jobs_call(call, *args):
    """A job board call with its refusals as HTTP errors."""
    try:
        return call(*args)
    except JobsBusy as exc:
        raise ApiError(429, "busy", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
    except JobNotFound as exc:
        raise ApiError(404, "no_such_job", str(exc)) from None
    except FrameNotFound as exc:
        raise ApiError(404, "no_such_frame", str(exc)) from None
    except JobWithoutFrames as exc:
        raise ApiError(409, "no_frames", str(exc)) from None
    except JobNotReady as exc:
        raise ApiError(409, "not_ready", str(exc)) from None


def _add_error_handlers(app: FastAPI, max_upload_bytes: int) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        log.info("%s %s refused: %d %s: %s", request.method, request.url.path, exc.status, exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 413:
            return too_large(max_upload_bytes)
        if isinstance(exc, _BodyCutShort):
            return error_response(400, "malformed_body",
                                  f"{exc.detail} (cut short?): send the whole multipart/form-data body")
        if exc.status_code == 400:  # what FastAPI raises for a form it cannot parse; its text says no more
            log.info("%s %s: %s", request.method, request.url.path, exc.detail)
            return error_response(400, "malformed_body", "the request body is not a well-formed form: send "
                                  "multipart/form-data (with the file) or application/x-www-form-urlencoded")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return error_response(422, "bad_option", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(WeightsError)
    async def weights_error(request: Request, exc: WeightsError) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(422, "model_unavailable", "the model's weights cannot be loaded on this server "
                                                        "(its log says why)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.error("%s %s failed (incident %s)", request.method, request.url.path, incident, exc_info=exc)
        return error_response(500, "internal", f"internal error; the server's log has the details "
                                               f"(incident {incident})")
