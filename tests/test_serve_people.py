"""The service's `people` option (issue 20, item 5): /v1/parse, /v1/jobs and /v1/live take a people
source, `partsight serve --people` sets the default and /v1/models lists the choices, against a real
uvicorn whose weights folder holds Mask2Former R50 panoptic made by the parity fixture's weight rule
(fixtures/README.md, section 7; the random network finds nobody, so its people split the parts among
no one). A job's outputs equal those of `process --people ...` on the same clip, with that model and
with multi-person BodyPix splitting the people of single-person BodyPix."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import torch
from _paths import fixtures_dir
from _serve import ROOT, decode_png, frame_png, running_server, wait_for_job
from _weight_rule import generate, read_keys
from websockets.sync.client import connect

from realtime.models.registry import MODEL_SPECS

PANOPTIC = "mask2former-r50-panoptic"
PANOPTIC_FIXTURE = fixtures_dir() / "m2f_r50_cocopan"
PEOPLE_SIZE = "128"  # the panoptic model's internal short side: a CPU runs it in about a second
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, weights_dir) -> Path:
    """The shared weights, and the panoptic model's file built from the fixture's rule (EasyCV's
    checkpoint layout), in one folder."""
    if not PANOPTIC_FIXTURE.is_dir():
        pytest.skip(f"parity fixture not found at {PANOPTIC_FIXTURE}")
    folder = tmp_path_factory.mktemp("weights")
    for file in weights_dir.iterdir():
        (folder / file.name).symlink_to(file)
    torch.save({"meta": {}, "state_dict": generate(read_keys(PANOPTIC_FIXTURE / "keys.txt"))},
               folder / MODEL_SPECS[PANOPTIC].weights.filename)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(weights):
    with running_server("--people", PANOPTIC, "--people-size", PEOPLE_SIZE,
                        env={"PARTSIGHT_WEIGHTS_DIR": str(weights)}) as running:
        yield running
        assert "Traceback" not in running.log()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=600) as http:
        yield http


def refused(response: httpx.Response, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (422, code), response.text


def test_models_list_the_people_choices_and_the_default(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models[PANOPTIC]["available"] and models[PANOPTIC]["people_source"] and models[PANOPTIC]["default_people"]
    assert [name for name, m in models.items() if m["default_people"]] == [PANOPTIC]
    assert models["bodypix"]["people_source"] and not models["schp-lip"]["people_source"]
    assert not models["uniparser-cihp"]["available"]


def test_parse_takes_a_people_source(client, media_dir):
    """The server's default splits the parts among the panoptic model's people (none); "parser"
    keeps BodyPix's own person; unknown sources and models without weights are refused."""
    png, _ = frame_png(media_dir / "cg-mannequin-squat.mp4", 20)
    image = {"image": ("frame.png", png, "image/png")}
    by_default = client.post("/v1/parse", files=image, data={"pose": "parser"}).json()["frame"]
    assert "people" in by_default["timings_ms"] and by_default["people"] == []
    own = client.post("/v1/parse", files=image, data={"pose": "parser", "people": "parser"}).json()["frame"]
    assert "people" not in own["timings_ms"] and len(own["people"]) == 1
    assert own["areas"] == by_default["areas"]  # the same parts, split among other people
    split = client.post("/v1/parse", files=image, data={"model": "bodypix-s8", "people": "bodypix",
                                                         "pose": "parser"}).json()["frame"]
    assert "people" in split["timings_ms"] and len(split["people"]) == 1
    refused(client.post("/v1/parse", files=image, data={"people": "crowd"}), "bad_option")
    refused(client.post("/v1/parse", files=image, data={"people": "uniparser-cihp"}), "model_unavailable")
    refused(client.post("/v1/jobs", files={"video": ("a.mp4", b"x")}, data={"people": "crowd"}), "bad_option")
    refused(client.post("/v1/jobs", files={"video": ("a.mp4", b"x")}, data={"people": "uniparser-cihp"}),
            "model_unavailable")


def without_timings(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        line.pop("timings_ms")
        line.pop("latency_ms")
    return lines


@pytest.mark.parametrize(("clip", "form", "options"), [
    ("faults/squat30.mp4", {}, ["--people", PANOPTIC, "--people-size", PEOPLE_SIZE]),
    ("pose2sim-multi-cam01.mp4", {"model": "bodypix-s8", "people": "bodypix", "max_side": "480"},
     ["--model", "bodypix-s8", "--people", "bodypix", "--max-side", "480"]),
], ids=["server-default-panoptic", "bodypix-people"])
def test_a_job_with_people_writes_what_process_writes(client, weights, media_dir, tmp_path, clip, form, options):
    video = media_dir / clip
    response = client.post("/v1/jobs", files={"video": (video.name, video.read_bytes())},
                           data={**form, "frames": "3", "pose": "parser", "label_maps": "true"})
    assert response.status_code == 202, response.text
    status = wait_for_job(client, response.json()["id"], timeout_s=600)
    assert status["state"] == "done", status
    metrics = client.get(status["outputs"]["metrics"]).text
    run = subprocess.run([sys.executable, "main.py", "process", str(video), "-o", str(tmp_path / "cli.mp4"),
                          "--metrics", str(tmp_path / "cli.jsonl"), "--labels-dir", str(tmp_path / "labels"),
                          "--frames", "3", "--pose", "parser", *options],
                         cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PARTSIGHT_WEIGHTS_DIR": str(weights)})
    assert run.returncode == 0, run.stderr
    lines = without_timings(metrics)
    assert lines == without_timings((tmp_path / "cli.jsonl").read_text())
    assert len(lines) == 3 and all("people" in json.loads(line)["timings_ms"] for line in metrics.splitlines())
    people = [len(line["people"]) for line in lines]
    if "--model" in options:
        assert min(people) >= 2, people  # several people from one person's parts
    else:
        assert people == [0, 0, 0]  # the random network finds nobody
    for line in lines:
        labels = decode_png(client.get(status["outputs"]["labels"].format(index=line["index"])).content)
        assert np.array_equal(labels, cv2.imread(str(tmp_path / "labels" / f"{line['index']:06d}.png"),
                                                 cv2.IMREAD_UNCHANGED))
    client.delete(f"/v1/jobs/{status['id']}")


def test_live_takes_a_people_source(server, media_dir):
    _, rgb = frame_png(media_dir / "cg-mannequin-squat.mp4", 20)
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    url = f"ws://127.0.0.1:{server.port}/v1/live"
    for hello, split in (({"pose": "parser"}, True), ({"pose": "parser", "people": "parser"}, False)):
        with connect(url, open_timeout=30, max_size=None) as ws:
            ws.send(json.dumps(hello))
            assert json.loads(ws.recv(timeout=300))["type"] == "ready"
            ws.send((1).to_bytes(4, "big") + jpeg)
            result = json.loads(ws.recv(timeout=300))
            assert result["type"] == "result", result
            assert ("people" in result["frame"]["timings_ms"]) == split
            assert (result["frame"]["people"] == []) == split
    with connect(url, open_timeout=30) as ws:
        ws.send(json.dumps({"people": "crowd"}))
        answer = json.loads(ws.recv(timeout=60))
        assert answer["type"] == "error" and answer["code"] == "bad_option" and "people source" in answer["error"]
