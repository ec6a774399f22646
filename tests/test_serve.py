"""`partsight serve` through its HTTP API: a real uvicorn started by the command line on 127.0.0.1,
called with httpx. An image is parsed as the engine parses it; a video job writes what `process`
writes; every bad input gets its 4xx JSON error and the server stays up; a full job queue answers 429
with Retry-After; tokens are checked; finished jobs expire; the live WebSocket keeps only the newest
frame."""
from __future__ import annotations

import base64
import inspect
import http.server
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import pytest
from jsonschema import Draft202012Validator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from _http_files import serve_folder
from _serve import (
    ROOT,
    decode_png,
    decoded_frames,
    frame_png,
    free_port,
    png_claiming_size,
    running_server,
    synthetic_video,
    wait_for_job,
)
from realtime.metrics import schema_path
from realtime.models.blazepose import blazepose_available
from realtime.serve.service import LocalJobs

K_JOBS, JOB_QUEUE = 2, 2
MAX_UPLOAD_MB = 20
MAX_FRAMES = 400
TOKEN = "s3cret-token-for-tests"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def server(jobs_dir):
    with running_server("--max-jobs", str(K_JOBS), "--job-queue", str(JOB_QUEUE), "--max-video-frames",
                        str(MAX_FRAMES), "--max-upload-mb", str(MAX_UPLOAD_MB), "--jobs-dir", str(jobs_dir)) as running:
        yield running
    assert not list(jobs_dir.iterdir()), "the server left job folders behind"


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=300) as http:
        yield http


@pytest.fixture(scope="module")
def squat30(media_dir) -> Path:
    return media_dir / "faults" / "squat30.mp4"


@pytest.fixture(scope="module")
def still(media_dir) -> tuple[bytes, np.ndarray]:
    """A frame of the squat clip (384 x 848) as PNG bytes and RGB."""
    return frame_png(media_dir / "cg-mannequin-squat.mp4", 20)


READOUT_ROWS = 60  # the speed readout's panel at the top of a 192 x 424 frame


def video_layout(path: Path) -> dict:
    """Streams, frame size, frame times and audio samples of an MP4."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [frame.time for frame in container.decode(video)]
        container.seek(0)
        audio = container.streams.audio
        samples = sum(frame.samples for frame in container.decode(audio[0])) if audio else 0
        return {"streams": [s.codec_context.name for s in container.streams], "size": (video.width, video.height),
                "times": times, "audio_samples": samples}


def chunks(size: int, step: int = 1 << 20):
    """`size` bytes of a multipart body, sent without a Content-Length (chunked)."""
    yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
    for _ in range(size // step):
        yield b"\0" * step


def assert_refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["error"] and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body


def test_health_models_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": ["bodypix"], "device": "cpu", "dtype": "fp32"}
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models["bodypix"]["available"] and models["bodypix"]["default"] and models["bodypix"]["loaded"]
    assert len(models["bodypix"]["labels"]) == len(models["bodypix"]["palette"]) == 25
    # the `people` choices besides "parser": the multi-person models; the server's default is "parser"
    people_sources = {name for name, m in models.items() if m["people_source"]}
    assert people_sources == {"bodypix", "bodypix-s8", "m2fp-cihp", "mask2former-r50-panoptic", "uniparser-cihp"}
    assert not any(m["default_people"] for m in models.values())
    vocab = client.get("/v1/exercises").json()
    assert "squat" in [e["name"] for e in vocab["exercises"]] and "person" in vocab["rep_columns"]
    assert ("blazepose" in vocab["pose_sources"]) == blazepose_available()
    assert "auto" in vocab["pose_sources"]
    assert "swagger" in client.get("/docs").text.lower()
    openapi = client.get("/openapi.json").json()
    assert {"/v1/parse", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/{kind}", "/v1/jobs/{job_id}/labels/{index}",
            "/v1/models"} <= set(openapi["paths"])
    forms = openapi["components"]["schemas"]
    assert "people" in forms["Body_parse_v1_parse_post"]["properties"]
    assert {"people", "label_maps"} <= set(forms["Body_create_job_v1_jobs_post"]["properties"])
    labels_doc = openapi["paths"]["/v1/jobs/{job_id}/labels/{index}"]["get"]
    assert {"200", "404", "409"} <= set(labels_doc["responses"]) and "pts_s" in labels_doc["description"]
    page = client.get("/")
    assert page.status_code == 200 and "Use my camera" in page.text
    assert "'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("running", [True, False], ids=["server", "nothing-there"])
def test_bench_serve_measures_the_service_and_says_when_nothing_answers(server, media_dir, running):
    """`bench-serve` on the running service counts its 200s; at a port where nothing listens it
    is one line, exit 1 (it printed a report of 670 "completed" requests a second, exit 0)."""
    url = server.url if running else f"http://127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "bench-serve", url, "--image",
                           str(media_dir / "faults" / "squat30.mp4"), "--size", "320x240", "--requests", "3",
                           "--concurrency", "1", "--warmup", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if running:
        report = json.loads(done.stdout)
        assert (done.returncode, report["status"], report["no_answer"]) == (0, {"200": 3}, {}), done.stderr
    else:
        assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [
            f"partsight: error: no request got an answer from {url} (3 x ConnectionRefusedError); is the service "
            "running there?"])


def test_parse_image_as_the_engine_does(client, still):
    """JSON (the JSONL line's schema, people, angles, label map), the label PNG and the overlay PNG;
    the labels agree with the engine run here on the same image."""
    from realtime.serve.engine import FrameRunner, ParseOptions

    png, rgb = still
    response = client.post("/v1/parse", files={"image": ("frame.png", png, "image/png")}, data={"label_map": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "bodypix"
    frame = body["frame"]
    assert "encode" not in frame["timings_ms"]  # a JSONL line less the recorder's encoding time: still valid
    assert not list(Draft202012Validator(json.loads(schema_path("frame").read_text())).iter_errors(frame))
    assert frame["frame_size"] == [rgb.shape[1], rgb.shape[0]]
    assert frame["people"] and len(frame["people"][0]["keypoints"]) == 17
    assert frame["areas"]["torso_front"] > 1000
    person = str(frame["people"][0]["id"])
    assert body["angles"][person]["left_knee"]["deg"] > 120  # standing
    labels = decode_png(base64.b64decode(body["label_map"]["data"]))
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint8

    as_png = client.post("/v1/parse", files={"image": ("frame.png", png)}, headers={"Accept": "image/png"})
    assert as_png.headers["content-type"] == "image/png"
    assert np.array_equal(decode_png(as_png.content), labels)

    runner = FrameRunner(ParseOptions().config("auto", "fp32"))
    try:
        here = runner.process(rgb).parse.labels
    finally:
        runner.close()
    assert (here == labels).mean() > 0.995  # the same engine; thread counts may flip a few border pixels

    drawn = client.post("/v1/parse?output=overlay", files={"image": ("frame.png", png)},
                        data={"keypoints": "false", "opacity": "0.5"})
    overlay = decode_png(drawn.content)
    assert overlay.shape == rgb.shape
    background = labels == 0
    assert np.array_equal(overlay[background], rgb[background])
    assert np.abs(overlay[~background].astype(int) - rgb[~background]).mean() > 10


def test_angles_are_only_for_the_people_found(client):
    """An image without anyone (a 1 x 1 PNG, an empty 1280 x 100 wall) has no people and so no
    angles: {} (a person 0 of unknown angles was invented for it)."""
    for width, height in ((1, 1), (1280, 100)):
        ok, png = cv2.imencode(".png", np.full((height, width, 3), 200, np.uint8))
        assert ok
        response = client.post("/v1/parse", files={"image": ("empty.png", png.tobytes(), "image/png")})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["frame"]["people"] == [], (width, height)
        assert body["angles"] == {}, (width, height, body["angles"])


def test_video_job_writes_what_process_writes(client, server, jobs_dir, squat30, tmp_path):
    """The annotated MP4, JSONL and summary of `process`; with label_maps also its label PNGs (one
    per JSONL line, by its index) and the plain MP4: the same frames, times and size with nothing
    drawn on them, for a page that draws the parts itself."""
    options = {"frames": "10", "exercise": "squat", "pose": "parser"}
    response = client.post("/v1/jobs", files={"video": ("squat30.mp4", squat30.read_bytes(), "video/mp4")},
                           data={**options, "label_maps": "true"})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    status = wait_for_job(client, job_id)
    assert status["state"] == "done", status
    assert (status["frames"], status["total_frames"], status["progress"]) == (10, 10, 100.0)
    assert (jobs_dir / job_id).is_dir()
    outputs = {}
    assert status["model"] == "bodypix" and status["outputs"]["labels"] == f"/v1/jobs/{job_id}/labels/{{index}}"
    for kind in ("video", "plain", "metrics", "summary"):
        got = client.get(status["outputs"][kind])
        assert got.status_code == 200, got.text
        outputs[kind] = got.content
    (tmp_path / "job.mp4").write_bytes(outputs["video"])

    run = subprocess.run([sys.executable, "main.py", "process", str(squat30), "-o", str(tmp_path / "cli.mp4"),
                          "--metrics", str(tmp_path / "cli.jsonl"), "--summary", str(tmp_path / "cli.json"),
                          "--labels-dir", str(tmp_path / "cli-labels"), "--frames", "10", "--exercise", "squat",
                          "--pose", "parser"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr

    def without_timings(text: str) -> list[dict]:
        lines = [json.loads(line) for line in text.splitlines()]
        for line in lines:
            line.pop("timings_ms", None)
            line.pop("latency_ms", None)
        return lines

    # every frame's parts, people, keypoints and fitness analysis, and the repetition summary
    assert without_timings(outputs["metrics"].decode()) == without_timings((tmp_path / "cli.jsonl").read_text())
    job_summary, cli_summary = json.loads(outputs["summary"]), json.loads((tmp_path / "cli.json").read_text())
    assert job_summary["source"].pop("name") == "squat30.mp4"  # the client's name, not the server's path
    cli_summary["source"].pop("name")
    assert job_summary == cli_summary
    # The MP4s: the same frames at the same times with the same sound. Their pixels differ only
    # through the speed readout in the corner (a timing, like the JSONL's), whose text changes the
    # encoder's choices for the whole frame: far below the drawing's own contrast.
    assert video_layout(tmp_path / "job.mp4") == video_layout(tmp_path / "cli.mp4")
    job_frames, cli_frames = decoded_frames(tmp_path / "job.mp4"), decoded_frames(tmp_path / "cli.mp4")
    assert len(job_frames) == len(cli_frames) == 10
    for job_frame, cli_frame in zip(job_frames, cli_frames):
        below_readout = np.abs(job_frame[READOUT_ROWS:].astype(int) - cli_frame[READOUT_ROWS:])
        assert below_readout.mean() < 2.0 and np.percentile(below_readout, 99) < 40

    # every frame's label map, as `process --labels-dir` writes it, in the videos' pixels
    lines = [json.loads(line) for line in outputs["metrics"].decode().splitlines()]
    label_maps = []
    for line in lines:
        got = client.get(status["outputs"]["labels"].format(index=line["index"]))
        assert got.status_code == 200 and got.headers["content-type"] == "image/png", got.text
        labels = decode_png(got.content)
        cli_labels = cv2.imread(str(tmp_path / "cli-labels" / f"{line['index']:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(labels, cli_labels) and [labels.shape[1], labels.shape[0]] == line["frame_size"]
        label_maps.append(labels)
    assert_refused(client.get(status["outputs"]["labels"].format(index=10)), 404, "no_such_frame")
    # the plain MP4: the annotated one's layout (times, size, sound), the source's pixels
    (tmp_path / "plain.mp4").write_bytes(outputs["plain"])
    assert video_layout(tmp_path / "plain.mp4") == video_layout(tmp_path / "job.mp4")
    source = decoded_frames(squat30)[:10]
    for plain, annotated, original, labels in zip(decoded_frames(tmp_path / "plain.mp4"), job_frames, source,
                                                   label_maps):
        parts = labels > 0
        assert parts.sum() > 1000
        assert np.abs(plain.astype(int) - original).mean() < 3.0  # encoding noise only
        plain_error = np.abs(plain[parts].astype(int) - original[parts]).mean()
        drawn = np.abs(annotated[parts].astype(int) - original[parts]).mean()
        assert plain_error < 10.0 and drawn > 4 * plain_error, (plain_error, drawn)  # the parts drawn on one only

    assert client.delete(f"/v1/jobs/{job_id}").json() == {"id": job_id, "deleted": True}
    assert_refused(client.get(f"/v1/jobs/{job_id}"), 404, "no_such_job")
    assert not (jobs_dir / job_id).exists()


def test_bad_inputs_get_4xx_and_the_server_stays_up(client, server, jobs_dir, squat30, still, truncated_tiff,
                                                    tmp_path):
    png, _ = still
    console_before = len(server.log())
    cases = [
        ("no body", lambda: client.post("/v1/parse"), 400, "no_upload"),
        ("empty file", lambda: client.post("/v1/parse", files={"image": ("a.png", b"")}), 400, "empty_upload"),
        ("text as image", lambda: client.post("/v1/parse", files={"image": ("photo.png", b"just some text\n" * 20,
                                                                             "image/png")}), 415, "not_an_image"),
        ("50000x50000 PNG header", lambda: client.post("/v1/parse", files={
            "image": ("bomb.png", png_claiming_size(50000, 50000), "image/png")}), 413, "too_many_pixels"),
        ("truncated PNG", lambda: client.post("/v1/parse", files={"image": ("cut.png", png[: len(png) // 3])}),
         422, "damaged_image"),
        ("truncated TIFF", lambda: client.post("/v1/parse", files={"image": ("cut.tif", truncated_tiff)}),
         422, "damaged_image"),
        ("over the upload limit", lambda: client.post("/v1/parse", files={
            "image": ("big.png", b"\0" * (MAX_UPLOAD_MB + 1) * (1 << 20))}), 413, "upload_too_large"),
        ("over the limit, chunked", lambda: client.post("/v1/parse", content=chunks((MAX_UPLOAD_MB + 1) << 20),
                                                        headers={"Content-Type": "multipart/form-data; boundary=b"}),
         413, "upload_too_large"),
        ("unknown model", lambda: client.post("/v1/parse", files={"image": ("a.png", png)}, data={"model": "nope"}),
         422, "bad_option"),
        ("model without weights", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                      data={"model": "schp-lip"}), 422, "model_unavailable"),
        ("person mask without weights", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                            data={"person_mask": "humanseg-unet-resnet18"}),
         422, "model_unavailable"),
        ("job: person mask without weights", lambda: client.post(
            "/v1/jobs", files={"video": ("a.mp4", b"x")}, data={"person_mask": "humanseg-unet-resnet18"}),
         422, "model_unavailable"),
        ("malformed multipart body", lambda: client.post(
            "/v1/parse", content=b"xxxx", headers={"Content-Type": "multipart/form-data; boundary=abc"}),
         400, "malformed_body"),
        ("an image and a url", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                   data={"url": "http://127.0.0.1:1/x.png"}), 422, "upload_and_url"),
        ("job: a video and a url", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                       data={"url": "http://127.0.0.1:1/x.mp4"}), 422, "upload_and_url"),
        ("a field sent twice", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                   data={"max_people": ["1", "2"]}), 422, "repeated_field"),
        ("job: a field sent twice", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                        data={"exercise": ["squat", "lunge"]}), 422, "repeated_field"),
        ("job: two joints (a field that takes several), one angle out of range", lambda: client.post(
            "/v1/jobs", files={"video": ("a.mp4", b"x")}, data={
                "exercise": "custom", "joint": ["left_knee", "right_knee"], "start_deg": "400", "turn_deg": "100"}),
         422, "bad_option"),
        ("zero people", lambda: client.post("/v1/parse", files={"image": ("a.png", png)}, data={"max_people": "0"}),
         422, "bad_option"),
        ("unknown pose source", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                    data={"pose": "psychic"}), 422, "bad_option"),
        ("unknown people source", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                      data={"people": "crowd"}), 422, "bad_option"),
        *([("mediapipe's BlazePose without its wheel", lambda: client.post(
            "/v1/parse", files={"image": ("a.png", png)}, data={"pose": "blazepose"}), 422, "bad_option"),
           ("job: mediapipe's BlazePose without its wheel", lambda: client.post(
               "/v1/jobs", files={"video": ("a.mp4", b"x")}, data={"pose": "blazepose"}), 422, "bad_option")]
          if not blazepose_available() else []),
        ("people model without weights", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                             data={"people": "mask2former-r50-panoptic"}),
         422, "model_unavailable"),
        ("job: unknown people source", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                           data={"people": "crowd"}), 422, "bad_option"),
        ("job: people model without weights", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                                  data={"people": "uniparser-cihp"}),
         422, "model_unavailable"),
        *[(f"overlay {field}={value} {where}", partial(
            lambda field, value, where: client.post(
                f"/v1/parse?output=overlay{f'&{field}={value}' if where == 'in the URL' else ''}",
                files={"image": ("a.png", png)}, data={field: value} if where == "in the form" else {}),
            field, value, where), 422, "bad_option")
          for field, value in (("opacity", "7"), ("opacity", "-3"), ("opacity", "abc"), ("keypoints", "maybe"))
          for where in ("in the URL", "in the form")],
        ("a good option in the URL instead of the form", lambda: client.post(
            "/v1/parse?output=overlay&opacity=0.5", files={"image": ("a.png", png)}), 422, "bad_option"),
        ("job: an option in the URL", lambda: client.post("/v1/jobs?exercise=squat", files={"video": ("a.mp4", b"x")}),
         422, "bad_option"),
        ("a misspelled form field", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                        data={"max_peopel": "1"}), 422, "bad_option"),
        ("job: a misspelled form field", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                             data={"excercise": "squat", "frames": "5"}),
         422, "bad_option"),
        ("url fetching is off", lambda: client.post("/v1/parse", data={"url": "http://127.0.0.1:1/x.png"}),
         403, "url_fetch_off"),
        ("10-minute video", lambda: client.post("/v1/jobs", files={"video": ("long.mp4", synthetic_video(
            tmp_path / "long.mp4", frames=600, fps=1).read_bytes())}), 413, "video_too_long"),
        ("too many frames", lambda: client.post("/v1/jobs", files={"video": ("many.mp4", synthetic_video(
            tmp_path / "many.mp4", frames=MAX_FRAMES + 50, fps=100).read_bytes())}), 413, "too_many_frames"),
        ("text as video", lambda: client.post("/v1/jobs", files={"video": ("clip.mp4", b"not a video at all" * 50,
                                                                           "video/mp4")}), 415, "not_a_video"),
        ("image as video", lambda: client.post("/v1/jobs", files={"video": ("clip.mp4", png)}), 415, "still_image"),
        ("no video", lambda: client.post("/v1/jobs", data={"exercise": "squat"}), 400, "no_upload"),
        ("custom exercise without joints", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                               data={"exercise": "custom"}), 422, "bad_option"),
        ("custom angle over 180", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")}, data={
            "exercise": "custom", "joint": "left_knee", "start_deg": "400", "turn_deg": "100"}), 422, "bad_option"),
        ("unknown exercise", lambda: client.post("/v1/jobs", files={"video": ("a.mp4", b"x")},
                                                 data={"exercise": "yoga"}), 422, "bad_option"),
        ("unknown job", lambda: client.get(f"/v1/jobs/{'0' * 32}"), 404, "no_such_job"),
        ("job id as a path", lambda: client.get("/v1/jobs/%2E%2E"), 404, "no_such_job"),
        ("no such output", lambda: client.get(f"/v1/jobs/{'0' * 32}/passwd"), 422, "bad_option"),
        ("labels of an unknown job", lambda: client.get(f"/v1/jobs/{'0' * 32}/labels/0"), 404, "no_such_job"),
        ("label index not a number", lambda: client.get(f"/v1/jobs/{'0' * 32}/labels/passwd"), 422, "bad_option"),
        ("negative label index", lambda: client.get(f"/v1/jobs/{'0' * 32}/labels/-1"), 422, "bad_option"),
        ("no such route", lambda: client.get("/v1/nothing"), 404, "not_found"),
        ("another site's page", lambda: client.post("/v1/parse", files={"image": ("a.png", png)},
                                                    headers={"Origin": "https://elsewhere.example"}), 403, "cross_site"),
    ]
    errors = {}
    for name, call, status, code in cases:
        response = call()
        assert (response.status_code, response.json().get("code")) == (status, code), f"{name}: {response.text}"
        assert code != "bad_option" or "--" not in response.json()["error"], f"{name}: a flag in {response.text}"
        assert_refused(response, status, code)
        assert client.get("/healthz").status_code == 200, f"the server died after: {name}"
        errors[name] = response.json()["error"]
    assert not list(jobs_dir.iterdir()), "a refused upload left a job folder"
    assert errors["model without weights"] == "model schp-lip is not available on this server: its weights are not " \
                                              "installed"
    assert errors["an image and a url"] == "send either the file 'image' or a 'url', not both"
    assert errors["job: a video and a url"] == "send either the file 'video' or a 'url', not both"
    assert errors["a field sent twice"] == "max_people: sent 2 times; send it once"
    assert errors["job: a field sent twice"] == "exercise: sent 2 times; send it once"
    assert "multipart/form-data" in errors["malformed multipart body"]
    assert errors["job: a misspelled form field"].startswith("excercise: not a form field here (the form takes ")
    assert "exercise, frames" in errors["job: a misspelled form field"]
    assert "max_people" in errors["a misspelled form field"]
    assert errors["person mask without weights"] == errors["job: person mask without weights"] == \
           "person mask humanseg-unet-resnet18 is not available on this server: its weights are not installed"
    # the client got its JSON; the console gets PartSight's own lines at most, never a library's text
    # (OpenCV's or libpng's on a truncated PNG, PIL's on a truncated TIFF, the multipart parser's on a
    # malformed body)
    console = server.log()[console_before:].splitlines()
    assert [line for line in console if not line.startswith("partsight: ")] == [], console
    assert not [line for line in console if "boundary" in line], console

    # a client's file name is shown back, never used as a path
    before = Path("/etc/passwd").stat().st_mtime_ns
    parsed = client.post("/v1/parse", files={"image": ("../../etc/passwd", png, "image/png")})
    assert parsed.status_code == 200
    job = client.post("/v1/jobs", files={"video": ("../../etc/passwd", squat30.read_bytes())}, data={"frames": "2"})
    assert job.status_code == 202, job.text
    status = wait_for_job(client, job.json()["id"])
    assert status["name"] == "passwd" and status["state"] == "done"
    assert sorted(p.name for p in (jobs_dir / status["id"]).iterdir()) == ["annotated.mp4", "input", "metrics.jsonl"]
    assert Path("/etc/passwd").stat().st_mtime_ns == before
    assert_refused(client.get(status["outputs"]["video"].replace("/video", "/summary")), 409, "not_ready")
    assert "plain" not in status["outputs"] and "labels" not in status["outputs"]  # not asked for
    assert_refused(client.get(status["outputs"]["video"].replace("/video", "/plain")), 409, "not_ready")
    assert_refused(client.get(status["outputs"]["video"].replace("/video", "/labels/0")), 409, "not_ready")
    client.delete(f"/v1/jobs/{status['id']}")
    assert "Traceback" not in server.log()


def test_what_is_wrong_with_an_upload_is_named_for_what_it_is(client, server, still, squat30):
    """A TIFF or WebP cut in half is a damaged image of a format the service takes (422, as a
    truncated JPEG or PNG), not an unsupported one (415), and so is an MP4 cut short before its
    index (a phone's file whose upload was interrupted: FFmpeg cannot open it at all, and it was
    415 not_a_video); a multipart body without its closing boundary is a malformed body, not a
    missing upload; an image sent as a text field (curl's -F
    without the @) says the field must be a file upload; a URL parameter sent twice is refused as a
    form field sent twice is."""
    png, rgb = still
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    halves = {ext: (encoded := cv2.imencode(ext, bgr)[1].tobytes())[: len(encoded) // 2]
              for ext in (".jpg", ".tif", ".webp")}
    head = b'--b0undary\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    cut_mp4 = squat30.read_bytes()[:20000]
    assert cut_mp4[4:8] == b"ftyp" and b"moov" not in cut_mp4, "its index (moov) is at its end"
    console_before = len(server.log())
    cases = {
        "JPEG cut in half": (lambda: client.post("/v1/parse", files={"image": ("a.jpg", halves[".jpg"])}),
                             422, "damaged_image"),
        "TIFF cut in half": (lambda: client.post("/v1/parse", files={"image": ("a.tif", halves[".tif"])}),
                             422, "damaged_image"),
        "WebP cut in half": (lambda: client.post("/v1/parse", files={"image": ("a.webp", halves[".webp"])}),
                             422, "damaged_image"),
        "MP4 cut short": (lambda: client.post("/v1/jobs", files={"video": ("clip.mp4", cut_mp4)}),
                          422, "damaged_video"),
        "no closing boundary": (lambda: client.post(
            "/v1/parse", content=head + png, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}),
            400, "malformed_body"),
        "an empty multipart body": (lambda: client.post(
            "/v1/parse", content=b"", headers={"Content-Type": "multipart/form-data; boundary=b0undary"}),
            400, "no_upload"),
        "image as a text field": (lambda: client.post("/v1/parse", files={"image": (None, "photo.jpg")}),
                                  400, "no_upload"),
        "video as a text field": (lambda: client.post("/v1/jobs", files={"video": (None, "clip.mp4")}),
                                  400, "no_upload"),
        "output twice in the URL": (lambda: client.post("/v1/parse?output=labels&output=json",
                                                        files={"image": ("a.png", png)}), 422, "repeated_field"),
    }
    answers = {name: call() for name, (call, _, _) in cases.items()}
    assert {name: (answer.status_code, answer.json().get("code")) for name, answer in answers.items()} == \
           {name: (status, code) for name, (_, status, code) in cases.items()}
    for answer in answers.values():
        assert_refused(answer, answer.status_code, answer.json()["code"])
    errors = {name: answer.json()["error"] for name, answer in answers.items()}
    assert errors["TIFF cut in half"] == "the TIFF image cannot be decoded: it is damaged or truncated"
    assert errors["WebP cut in half"] == "the WEBP image cannot be decoded: it is damaged or truncated"
    assert errors["MP4 cut short"] == ("the upload is an MP4 (or MOV) video (by its signature) that cannot be "
                                       "opened: it is damaged or truncated")
    assert errors["no closing boundary"].startswith("the multipart body ends before its closing boundary")
    assert errors["image as a text field"].startswith("image came as a text field, not a file")
    assert "-F image=@" in errors["image as a text field"] and "-F video=@" in errors["video as a text field"]
    assert errors["output twice in the URL"] == "output: sent 2 times; send it once"
    # the closing boundary is all the body lacked; with it, the same upload is parsed
    whole = client.post("/v1/parse", content=head + png + b"\r\n--b0undary--\r\n",
                        headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert whole.status_code == 200, whole.text
    body = head + png + b"\r\n--b0undary--\r\n"

    def pieces():  # chunked, split inside the closing delimiter
        yield body[:-9]
        time.sleep(0.2)
        yield body[-9:]

    streamed = client.post("/v1/parse", content=pieces(),
                           headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert streamed.status_code == 200, streamed.text
    console = server.log()[console_before:].splitlines()
    assert [line for line in console if not line.startswith("partsight: ")] == [], console


def test_a_job_that_wrote_no_frame_says_so_for_each_output(tmp_path):
    """An upload without a decodable frame is refused before it is a job (415 not_a_video, 422
    damaged_video); a job that still ends before its first frame (here: an audio-only MP4 handed
    to the job board itself) answers every output with that (409 no_frames), not with 'no frame
    0' or 'started without label_maps'."""
    from realtime.config import PipelineConfig
    from realtime.serve.jobs import ENDED, JobBoard, JobSpec, JobWithoutFrames

    audio_only = tmp_path / "audio.mp4"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=44100, layout="mono")
        for index in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    board = JobBoard(tmp_path / "jobs", max_jobs=1, queue=1, ttl_s=600)
    try:
        job = board.reserve()
        board.submit_bytes(job, audio_only.read_bytes(),
                           JobSpec(PipelineConfig(device="cpu", pose="parser"), label_maps=True))
        deadline = time.monotonic() + 120
        while (status := board.status(job))["state"] not in ENDED and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status["state"] == "failed" and status["frames"] == 0 and status["outputs"] == {}, status
        said = f"job {job} failed before writing a frame ({status['error']}): it has no outputs"
        assert "no video stream" in status["error"]
        for ask in (lambda: board.label_path(job, 0), *(partial(board.output_path, job, kind)
                                                        for kind in ("video", "plain", "metrics", "summary"))):
            with pytest.raises(JobWithoutFrames) as refused:
                ask()
            assert str(refused.value) == said
    finally:
        board.close()


def test_a_full_job_queue_answers_429_with_retry_after(client, jobs_dir, squat30):
    """20 jobs at once against K=2 running and 2 queued: the rest get 429 and Retry-After, none 5xx."""
    video = squat30.read_bytes()

    def submit(_):
        return client.post("/v1/jobs", files={"video": ("squat30.mp4", video)}, data={"frames": "3"})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(submit, range(20)))
    statuses = [r.status_code for r in responses]
    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    busy = [r for r in responses if r.status_code == 429]
    assert len(accepted) + len(busy) == 20, statuses
    assert K_JOBS + JOB_QUEUE <= len(accepted) < 20 and busy, statuses
    for response in busy:
        assert_refused(response, 429, "busy")
        assert int(response.headers["retry-after"]) >= 1
    _delete_all(client, jobs_dir, accepted)

    # every running slot busy with a whole clip: a job submitted behind them is held back, its video not ready
    running = [client.post("/v1/jobs", files={"video": ("squat30.mp4", video)}) for _ in range(K_JOBS)]
    assert [r.status_code for r in running] == [202] * K_JOBS, [r.text for r in running]
    running = [r.json()["id"] for r in running]
    deadline = time.monotonic() + 120  # a guard against a hang: the slots fill as soon as a worker is free
    while any(client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued" for job_id in running):
        assert time.monotonic() < deadline, [client.get(f"/v1/jobs/{job_id}").json() for job_id in running]
        time.sleep(0.05)
    held = client.post("/v1/jobs", files={"video": ("squat30.mp4", video)}, data={"frames": "1"})
    assert held.status_code == 202, held.text
    held = client.get(f"/v1/jobs/{held.json()['id']}").json()
    assert held["state"] == "queued", ([client.get(f"/v1/jobs/{job_id}").json() for job_id in running], held)
    assert_refused(client.get(f"/v1/jobs/{held['id']}/video"), 409, "not_ready")
    _delete_all(client, jobs_dir, [*running, held["id"]])


def _delete_all(client: httpx.Client, jobs_dir: Path, job_ids: list[str]) -> None:
    """Deletes the jobs and waits for their folders to go (a running job's, when it stops)."""
    for job_id in job_ids:
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    deadline = time.monotonic() + 60
    while list(jobs_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not list(jobs_dir.iterdir())


def test_live_websocket_keeps_the_newest_frame(server, media_dir):
    """A burst of 24 camera frames: the server answers fewer, always the newest, the last one
    included, counting the rest as dropped; a frame that is not an image, and a message that is no
    frame (under 4 bytes, a frame number alone, text after the options), each get an error and the
    connection stays."""
    _, rgb = frame_png(media_dir / "cg-mannequin-squat.mp4", 20)
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    with connect(f"ws://127.0.0.1:{server.port}/v1/live", open_timeout=30, max_size=None) as ws:
        ws.send(json.dumps({"model": "bodypix", "exercise": "squat", "pose": "parser"}))
        ready = json.loads(ws.recv(timeout=120))
        assert ready["type"] == "ready" and ready["exercise"]["name"] == "squat", ready
        ws.send((1).to_bytes(4, "big") + b"this is not an image")
        error = json.loads(ws.recv(timeout=120))
        assert error == {"type": "error", "seq": 1, "code": "not_an_image", "error": error["error"]}
        for message, seq, code in ((b"ab", None, "not_a_frame"), ((7).to_bytes(4, "big"), 7, "empty_upload"),
                                   (json.dumps({"model": "bodypix"}), None, "not_a_frame")):
            ws.send(message)
            error = json.loads(ws.recv(timeout=120))
            assert error == {"type": "error", "seq": seq, "code": code, "error": error["error"]}, message
            assert error["error"] and "\n" not in error["error"]
        for seq in range(2, 26):
            ws.send(seq.to_bytes(4, "big") + jpeg)
        results = []
        while not results or results[-1]["seq"] != 25:
            message = json.loads(ws.recv(timeout=120))
            assert message["type"] == "result", message
            results.append(message)
    with pytest.raises(InvalidStatus) as refused:  # a page of another site cannot open it
        connect(f"ws://127.0.0.1:{server.port}/v1/live", open_timeout=30,
                additional_headers={"Origin": "https://elsewhere.example"})
    assert refused.value.response.status_code == 403
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and len(seqs) < 24, seqs
    assert results[-1]["dropped"] == 24 - len(results)
    assert results[-1]["frame"]["analysis"]["fitness"]["exercise"]["name"] == "squat"
    assert decode_png(base64.b64decode(results[-1]["label_map"]["data"])).shape == rgb.shape[:2]


@pytest.mark.parametrize("options, words", [
    ({"max_people": 0}, "max_people: Input should be greater than or equal to 1"),
    ({"max_people": 1.5}, "max_people: Input should be a valid integer"),
    ({"max_people": "abc"}, "max_people: Input should be a valid integer"),
    ({"max_people": 33}, "max_people: Input should be less than or equal to 32"),
    ({"exercise": "custom"}, "custom exercises are not available on the live socket; choose a preset: squat, "),
    ({"exercise": "yoga"}, "unknown exercise 'yoga'; choose a preset: squat, ")],
    ids=["max_people 0", "max_people 1.5", "max_people abc", "max_people 33", "custom", "yoga"])
def test_live_options_are_checked_as_the_forms_check_them(server, client, still, options, words):
    """The live socket's options are refused in the words /v1/parse's form answers (0 and 1.5 people
    were taken, "abc" answered with Python's int() text); it takes preset exercises only, and says
    so instead of listing custom as a choice."""
    with connect(f"ws://127.0.0.1:{server.port}/v1/live", open_timeout=30) as ws:
        ws.send(json.dumps({"model": "bodypix", "pose": "parser", **options}))
        refusal = json.loads(ws.recv(timeout=120))
    assert refusal["type"] == "error" and refusal["code"] == "bad_option", refusal
    assert refusal["error"].startswith(words) and "\n" not in refusal["error"], refusal
    assert "custom" not in refusal["error"].split("preset")[-1], refusal
    if "max_people" in options:  # the form says it alike
        form = client.post("/v1/parse", files={"image": ("a.png", still[0])},
                           data={"max_people": str(options["max_people"])})
        assert form.status_code == 422 and form.json()["error"].split(",")[0] == refusal["error"].split(",")[0]


def test_live_answers_a_cameras_first_frames(server, media_dir):
    """The networks are built before 'ready' (for the page's 640 x 480 camera): frames sent two a
    second from the first on are each answered, none dropped. Built on the first frame instead
    (over a second on a CPU), the frames that came meanwhile were dropped."""
    _, rgb = frame_png(media_dir / "cg-mannequin-squat.mp4", 20, size=(640, 480))
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    with connect(f"ws://127.0.0.1:{server.port}/v1/live", open_timeout=30, max_size=None) as ws:
        ws.send(json.dumps({"exercise": "squat"}))
        ready = json.loads(ws.recv(timeout=120))
        assert ready["type"] == "ready", ready
        results = []

        def gather() -> None:
            while not results or results[-1]["seq"] != 6:
                results.append(json.loads(ws.recv(timeout=120)))

        gathering = threading.Thread(target=gather)
        gathering.start()
        for seq in range(1, 7):
            ws.send(seq.to_bytes(4, "big") + jpeg)
            time.sleep(0.5)
        gathering.join(300)
    assert [(r["type"], r["seq"]) for r in results] == [("result", seq) for seq in range(1, 7)], \
        [(r["seq"], r.get("dropped"), r.get("latency_ms")) for r in results]
    assert results[-1]["dropped"] == 0


def test_serve_refuses_a_public_host_without_a_token():
    port = free_port()
    run = subprocess.run([sys.executable, "main.py", "serve", "--host", "0.0.0.0", "--port", str(port)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PARTSIGHT_SERVE_TOKEN"})
    assert run.returncode == 2  # a usage error
    assert run.stderr.strip().count("\n") == 0 and "--token" in run.stderr and "Traceback" not in run.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_serve_takes_only_a_port_it_can_listen_on_and_says_serving_on_once_it_listens():
    """A port over 65535 is a usage error; a port in use is one line and no 'serving on'; port 0
    serves on a free port, the one the 'serving on' line names."""
    over = subprocess.run([sys.executable, "main.py", "serve", "--port", "99999"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert over.returncode == 2 and over.stdout == "", over
    assert over.stderr.startswith("partsight: error: argument --port:") and over.stderr.count("\n") == 1, over.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "main.py", "serve", "--port", str(port)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    assert busy.returncode == 1 and "serving on" not in busy.stdout + busy.stderr, busy
    assert busy.stderr.splitlines() == [f"partsight: error: port {port} on 127.0.0.1 is in use (another server?); "
                                        "choose another --port"], busy.stderr
    process = subprocess.Popen([sys.executable, "main.py", "serve", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        chosen = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        assert chosen and int(chosen.group(1)) > 0, line
        assert httpx.get(f"http://127.0.0.1:{chosen.group(1)}/healthz", timeout=60).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def test_a_stop_signal_stops_the_running_job_and_leaves_nothing_behind(squat30, tmp_path):
    """SIGTERM with a job running: the job is cancelled and its folder removed, what the server
    logged reached its log file, and it exits as every command does on a SIGTERM (143,
    "partsight: interrupted")."""
    jobs_dir, log_file = tmp_path / "jobs", tmp_path / "serve.log"
    jobs_dir.mkdir()
    with running_server("--jobs-dir", str(jobs_dir), env={"PARTSIGHT_LOG_FILE": str(log_file)}) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            job = client.post("/v1/jobs", files={"video": ("squat30.mp4", squat30.read_bytes())}).json()
            while (status := client.get(f"/v1/jobs/{job['id']}").json())["frames"] == 0:
                assert status["state"] in ("queued", "running"), status
                time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 143
        console = server.log().splitlines()
    assert console[-1] == "partsight: interrupted", console
    assert [line for line in console if not line.startswith("partsight: ")] == [], console
    assert list(jobs_dir.iterdir()) == []
    assert re.search(rf"job {job['id']} cancelled: \d+ frames", log_file.read_text()), log_file.read_text()


def test_a_token_a_client_puts_in_the_query_string_never_reaches_the_log(tmp_path):
    """uvicorn's access line held `GET /healthz?token=...` (the service takes tokens only in the
    Authorization header, but a client may try the query string)."""
    log_file = tmp_path / "serve.log"
    with running_server(env={"PARTSIGHT_LOG_FILE": str(log_file)}) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert client.get("/healthz", params={"token": "hunter2-secret"}).status_code == 200
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(60) == 130
        console = server.log()
    logged = log_file.read_text()
    assert "hunter2" not in logged and "hunter2" not in console
    assert '"GET /healthz?(query left out) HTTP/1.1" 200' in logged, logged


@pytest.mark.parametrize("stop, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_with_a_camera_streaming_and_a_job_running_ends_both_at_once(media_dir, tmp_path, stop, status):
    """A stop signal while a job runs and a camera streams 12 frames a second over /v1/live: the
    job is told to stop before uvicorn closes the connections and waits for them, so it ends
    while the live frame in progress does (it was told only once that wait was over: 13 s to
    exit, longer than a service manager's 10 s stop timeout); the camera's client gets 1012
    ("service restart"), the job is cancelled, the server's temporary folders (jobs, uploads) are
    removed and it exits as every command does on that signal."""
    log_file, temp = tmp_path / "serve.log", tmp_path / "tmp"
    temp.mkdir()
    clip = media_dir / "cg-mannequin-squat.mp4"
    _, rgb = frame_png(clip, 20, size=(640, 480))
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    with running_server(env={"PARTSIGHT_LOG_FILE": str(log_file), "TMPDIR": str(temp)}) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client, \
                connect(f"ws://127.0.0.1:{server.port}/v1/live", open_timeout=30, max_size=None) as ws:
            ws.send(json.dumps({"exercise": "squat"}))
            assert json.loads(ws.recv(timeout=120))["type"] == "ready"

            def camera() -> None:
                try:
                    for seq in range(100_000):
                        ws.send(seq.to_bytes(4, "big") + jpeg)
                        time.sleep(1 / 12)
                except ConnectionClosed:
                    pass

            streaming = threading.Thread(target=camera)
            streaming.start()
            assert json.loads(ws.recv(timeout=120))["type"] == "result"
            job = client.post("/v1/jobs", files={"video": (clip.name, clip.read_bytes())}).json()
            deadline = time.monotonic() + 120  # a hang guard: a job left queued, a stuck worker
            while (job_status := client.get(f"/v1/jobs/{job['id']}").json())["frames"] == 0:
                assert job_status["state"] in ("queued", "running"), job_status
                assert time.monotonic() < deadline, f"no frame of the job done after 120 s: {job_status}"
                time.sleep(0.2)
            server.process.send_signal(stop)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=60)
            streaming.join(60)
        assert server.process.wait(30) == status  # a hang guard, not a measure
        console = server.log().splitlines()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012, closed.value
    assert console[-1] == "partsight: interrupted", console
    assert [line for line in console if not line.startswith("partsight: ")] == [], console
    assert sorted(temp.glob("partsight-*")) == []
    logged = log_file.read_text()
    told, shutting = logged.find(f"job {job['id']} told to stop"), logged.find("uvicorn.error: Shutting down")
    assert 0 <= told < shutting, logged
    assert re.search(rf"job {job['id']} cancelled: \d+ frames", logged), logged


def test_a_job_whose_recording_fails_says_why_without_the_servers_folders(media_dir, tmp_path):
    """The disk fills up mid-job (a file size limit on the server: a write past it fails with
    EFBIG): the job fails and says why, naming its output as the job's, not by the server's path
    (it said "recording to /tmp/.../annotated.mp4 failed")."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    upload = media_dir / "faults" / "tiny.mp4"  # 22 kB: 151 frames of 640x480, whose outputs outgrow the limit

    def file_size_limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    with running_server("--jobs-dir", str(jobs_dir), env={"PARTSIGHT_LOG_FILE": str(tmp_path / "serve.log")},
                        preexec_fn=file_size_limit) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            job = client.post("/v1/jobs", files={"video": ("tiny.mp4", upload.read_bytes())})
            assert job.status_code == 202, job.text
            status = wait_for_job(client, job.json()["id"])
    assert status["state"] == "failed", json.dumps(status)
    assert re.fullmatch(r"recording to the job/(annotated\.mp4|metrics\.jsonl) failed: "
                        r"(File too large|No space left on device)", status["error"]), status["error"]
    assert str(jobs_dir) not in json.dumps(status) and "/tmp" not in json.dumps(status)


def test_the_next_server_removes_a_killed_ones_job_folders_not_a_running_ones(squat30, tmp_path):
    """`kill -9` leaves the killed server's job folders, with the clients' videos in them; the next
    `serve` removes them at start and says so, and leaves those of a server running beside it."""
    env = {"TMPDIR": str(tmp_path)}  # where each server makes its temporary folders
    with running_server(env=env) as beside:
        with running_server(env=env) as killed:
            job = httpx.post(f"{killed.url}/v1/jobs", files={"video": ("squat30.mp4", squat30.read_bytes())},
                             timeout=300).json()
            (video,) = tmp_path.glob(f"partsight-jobs-*/{job['id']}/input")
            killed.process.kill()
            killed.process.wait(60)
        kept = sorted(tmp_path.glob("partsight-*"))
        assert video.is_file() and len(kept) == 4  # each server's job and upload folders
        with running_server(env=env) as after:
            console = after.log()
            left = sorted(set(kept) - set(tmp_path.glob("partsight-*")))  # removed
            # the killed server's job folder (with the video) and its uploads folder; the other two are beside's
            assert len(left) == 2 and video.parents[1] in left, console
            assert httpx.get(f"{beside.url}/readyz", timeout=60).status_code == 200
        assert sum(f"partsight: warning: removed {folder}, left by a server that was killed (process "
                   f"{killed.process.pid})" in console for folder in left) == 2, console


def test_ray_jobs_offers_every_call_local_jobs_does():
    """The app and Service call a replica's RayJobs as they call LocalJobs: the same methods, the
    same parameters (Service.stop called RayJobs.stop, which it lacked)."""
    ray_serve = pytest.importorskip("realtime.serve.ray_serve")

    def calls(cls) -> dict[str, list[str]]:
        return {name: list(inspect.signature(method).parameters) for name, method in vars(cls).items()
                if not name.startswith("_") and callable(method)}

    assert calls(ray_serve.RayJobs) == calls(LocalJobs)


def test_a_stop_signal_during_a_stalled_upload_says_only_that_it_was_interrupted(squat30, tmp_path):
    """SIGTERM while a client's upload has stalled halfway: uvicorn waits for it, gives up after its
    graceful-shutdown timeout and cancels it; its words for that ("Cancel 1 running task(s),
    timeout graceful shutdown exceeded") went to the console as PartSight's own error. Now they go
    to the log file; the console's last line is "partsight: interrupted", with no error before it."""
    log_file = tmp_path / "serve.log"
    with running_server(env={"PARTSIGHT_LOG_FILE": str(log_file)}) as server:
        body = squat30.read_bytes()
        head = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {len(body) + 200}\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"video\"; "
                f"filename=\"squat30.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port)) as stalled:
            stalled.sendall(head + body[: len(body) // 2])  # and nothing more
            time.sleep(1.0)  # the request is being read
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(60) == 143
        console = server.log().splitlines()
    assert console[-1] == "partsight: interrupted", console
    assert not [line for line in console if line.startswith("partsight: error")], console
    assert "timeout graceful shutdown exceeded" in log_file.read_text()


@pytest.fixture(scope="module")
def restricted(tmp_path_factory):
    """A server with a token, a 3 s job TTL, URL fetching from 127.0.0.1 only, one parse at a time."""
    jobs_dir = tmp_path_factory.mktemp("restricted-jobs")
    with running_server("--token", TOKEN, "--job-ttl-s", "3", "--jobs-dir", str(jobs_dir), "--allow-url-host",
                        "127.0.0.1", "--parse-queue", "1") as server:
        server.jobs_dir = jobs_dir
        yield server
        assert TOKEN not in server.log()


@pytest.fixture(scope="module")
def authorized(restricted):
    with httpx.Client(base_url=restricted.url, timeout=300, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def test_every_v1_call_needs_the_token(restricted, authorized, squat30):
    """The health checks and the page need none; the live socket checks it in its first message."""
    with httpx.Client(base_url=restricted.url, timeout=300) as anonymous:
        assert anonymous.get("/healthz").status_code == 200 and anonymous.get("/").status_code == 200
        body = assert_refused(anonymous.get("/v1/models"), 401, "token_missing")
        assert TOKEN not in json.dumps(body)
        refused = anonymous.post("/v1/jobs", files={"video": ("a.mp4", squat30.read_bytes())})
        assert_refused(refused, 401, "token_missing")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert_refused(anonymous.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "token_wrong")
        assert_refused(anonymous.get("/v1/models", headers={"Authorization": f"Basic {TOKEN}"}), 401,
                       "token_missing")
    with connect(f"ws://127.0.0.1:{restricted.port}/v1/live", open_timeout=30) as ws:
        ws.send(json.dumps({"token": "wrong"}))
        assert json.loads(ws.recv(timeout=60))["code"] == "token"
    assert authorized.get("/v1/models").status_code == 200


def test_a_finished_job_expires_with_its_folder(restricted, authorized, squat30):
    job = authorized.post("/v1/jobs", files={"video": ("squat30.mp4", squat30.read_bytes())},
                          data={"frames": "2", "label_maps": "true"})
    assert job.status_code == 202, job.text
    status = wait_for_job(authorized, job.json()["id"])
    assert status["state"] == "done" and 0 < status["expires_in_s"] <= 3
    assert len(list((restricted.jobs_dir / status["id"] / "labels").iterdir())) == 2
    deadline = time.monotonic() + 30
    while authorized.get(f"/v1/jobs/{status['id']}").status_code != 404:
        assert time.monotonic() < deadline, "the job did not expire"
        time.sleep(0.5)
    assert not (restricted.jobs_dir / status["id"]).exists()


class _Files(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /elsewhere redirects to the same file on "localhost" (a host not allowed)."""

    def do_GET(self) -> None:
        if self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/frame.png")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


def test_urls_are_fetched_only_from_allowed_hosts(authorized, still, tmp_path):
    png, rgb = still
    (tmp_path / "frame.png").write_bytes(png)
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(tmp_path)))
    thread = threading.Thread(target=files.serve_forever, daemon=True)
    thread.start()
    port = files.server_address[1]
    try:
        parsed = authorized.post("/v1/parse?output=labels", data={"url": f"http://127.0.0.1:{port}/frame.png"})
        assert parsed.status_code == 200, parsed.text
        assert decode_png(parsed.content).shape == rgb.shape[:2]
        assert_refused(authorized.post("/v1/parse", data={"url": f"http://localhost:{port}/frame.png"}), 403,
                       "host_not_allowed")
        assert_refused(authorized.post("/v1/parse", data={"url": f"http://127.0.0.1:{port}/elsewhere"}), 403,
                       "host_not_allowed")
        assert_refused(authorized.post("/v1/parse", data={"url": "file:///etc/passwd"}), 422, "bad_url")
        missing = assert_refused(authorized.post("/v1/parse", data={"url": f"http://127.0.0.1:{port}/missing.png"}),
                                 422, "url_status")
        assert missing["error"].endswith("/missing.png: the server answered HTTP 404 File not found"), missing
        assert_refused(authorized.post("/v1/parse", data={"url": f"http://127.0.0.1:{_closed_port()}/frame.png"}),
                       422, "url_unreachable")
    finally:
        files.shutdown()
        files.server_close()
        thread.join(10)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("password", ["hunter2", "p@ss:w0rd", "p ace\"'<[(x)]>", "s3cr%2Fet"])
def test_a_url_behind_a_login_is_fetched_with_its_credentials_never_shown(password, restricted, authorized, still,
                                                                         tmp_path):
    """user:password@ in a `url` is sent as HTTP Basic authentication (%-escapes decoded); a
    wrong password is the remote's 401, and neither the answer nor the server's log shows it."""
    png, rgb = still
    (tmp_path / "frame.png").write_bytes(png)
    files, thread = serve_folder(tmp_path, password.replace("%2F", "/"))
    address = f"127.0.0.1:{files.server_port}/frame.png"
    try:
        parsed = authorized.post("/v1/parse?output=labels", data={"url": f"http://coach:{password}@{address}"})
        assert parsed.status_code == 200, parsed.text
        assert decode_png(parsed.content).shape == rgb.shape[:2]
        wrong = assert_refused(authorized.post("/v1/parse", data={"url": f"http://coach:{password}x@{address}"}), 422,
                               "url_status")
        assert wrong["error"] == f"cannot fetch http://{address}: the server answered HTTP 401 Unauthorized", wrong
    finally:
        files.shutdown()
        thread.join(10)
    assert "coach" not in restricted.log() and password not in restricted.log()


def test_a_job_from_a_url_behind_a_login_shows_no_credential(restricted, authorized, squat30, tmp_path):
    """A video fetched from an address with no path of its own (the web server answers "/" with
    it): the job's name, status and summary hold neither the user nor the password."""
    (tmp_path / "index.html").write_bytes(squat30.read_bytes())  # judged by decoding, not by its name
    files, thread = serve_folder(tmp_path, "hunter2")
    try:
        response = authorized.post("/v1/jobs", data={"url": f"http://coach:hunter2@127.0.0.1:{files.server_port}",
                                                     "frames": "3", "pose": "parser", "exercise": "squat"})
        assert response.status_code == 202, response.text
        status = wait_for_job(authorized, response.json()["id"])
    finally:
        files.shutdown()
        thread.join(10)
    assert status["state"] == "done", status
    summary = authorized.get(status["outputs"]["summary"]).text
    for text in (response.text, json.dumps(status), summary, restricted.log()):
        assert "coach" not in text and "hunter2" not in text


def test_a_full_parse_queue_answers_429_with_retry_after(authorized, still):
    """--parse-queue 1: of 4 parses at once one runs, the others are told when to come back."""
    png, _ = still
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: authorized.post("/v1/parse", files={"image": ("a.png", png)}), range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200 and statuses[-1] == 429 and set(statuses) <= {200, 429}, statuses
    for response in responses:
        if response.status_code == 429:
            assert_refused(response, 429, "busy")
            assert int(response.headers["retry-after"]) >= 1


def test_the_command_line_loads_no_web_stack_and_names_a_missing_extra(monkeypatch, capsys):
    """`partsight` (the window's entry point included) imports no FastAPI until `serve` runs, and
    `serve` without the [serve] extra says so in one line."""
    imported = subprocess.run([sys.executable, "-c", "import sys, gui.cli, realtime.cli; "
                               "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'realtime.serve.app') "
                               "if m in sys.modules))"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imported.stdout.strip() == "[]", imported.stderr
    import importlib.util

    from realtime import cli

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "fastapi" else find_spec(name, *args))
    assert cli.main(["serve"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "[serve] extra" in error and "fastapi" in error
