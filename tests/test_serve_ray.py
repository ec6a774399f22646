"""`partsight serve --replicas 2`: the same app as a Ray Serve deployment on a local Ray cluster that
the command starts (small CPU shares), answering 20 concurrent /v1/parse requests from both replicas
and running a video job as a Ray task (its files, label maps included, coming back through Ray);
Ctrl+C shuts Serve and Ray down, and each replica's Service closes (its upload folder removed)."""
from __future__ import annotations

import signal
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from _serve import decode_png, decoded_frames, frame_png, running_server, wait_for_job

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def server():
    with running_server("--replicas", "2", "--cpus-per-replica", "0.5", "--parse-queue", "20",
                        ready_timeout_s=420) as running:
        yield running
        process = running.process
    assert process.returncode == 130  # stopped by Ctrl+C (SIGINT), as every command


def ready_replicas(client: httpx.Client, wanted: int, timeout_s: float) -> set[str]:
    """The replicas seen ready through the proxy, polled until `wanted` of them answered (the
    command is ready when one is; Ray's router favours replicas that answer its probes quickly, so
    one still loading its model gets little until it is done)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < wanted and time.monotonic() < deadline:
        with ThreadPoolExecutor(4) as pool:
            for response in pool.map(lambda _: client.get("/readyz"), range(4)):
                if response.status_code == 200:
                    seen.add(response.headers["x-partsight-replica"])
        time.sleep(1.0)
    return seen


def test_ray_says_nothing_on_the_console(server):
    """Ray's notes (its token authentication, on by default for the local cluster the command
    starts; "Started a local Ray instance"; Ray Serve's progress) go to the log file: the console
    has PartSight's lines only."""
    console = server.log().splitlines()
    assert console and all(line.startswith("partsight: ") for line in console), console


def test_two_replicas_answer_20_concurrent_parses(server, media_dir):
    png, _ = frame_png(media_dir / "cg-mannequin-squat.mp4", 20, (640, 480))
    with httpx.Client(base_url=server.url, timeout=600) as client, ThreadPoolExecutor(20) as pool:
        assert len(ready_replicas(client, 2, timeout_s=180)) == 2
        responses = list(pool.map(lambda _: client.post("/v1/parse", files={"image": ("frame.png", png)}), range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    assert all(r.json()["frame"]["people"] for r in responses)
    replicas = Counter(r.headers["x-partsight-replica"] for r in responses)
    assert len(replicas) == 2, replicas


def test_a_video_job_runs_as_a_ray_task(server, media_dir, tmp_path):
    with httpx.Client(base_url=server.url, timeout=600) as client:
        video = (media_dir / "faults" / "squat30.mp4").read_bytes()
        response = client.post("/v1/jobs", files={"video": ("squat30.mp4", video)},
                               data={"frames": "3", "exercise": "squat", "pose": "parser", "label_maps": "true"})
        assert response.status_code == 202, response.text
        status = wait_for_job(client, response.json()["id"])
        assert status["state"] == "done" and status["frames"] == 3, status
        (tmp_path / "job.mp4").write_bytes(client.get(status["outputs"]["video"]).content)
        assert client.get(status["outputs"]["summary"]).json()["source"]["name"] == "squat30.mp4"
        (tmp_path / "plain.mp4").write_bytes(client.get(status["outputs"]["plain"]).content)
        labels = [client.get(status["outputs"]["labels"].format(index=index)) for index in range(4)]
    assert len(decoded_frames(tmp_path / "job.mp4")) == len(decoded_frames(tmp_path / "plain.mp4")) == 3
    assert [response.status_code for response in labels] == [200, 200, 200, 404]
    assert all(decode_png(response.content).shape == (424, 192) for response in labels[:3])


def test_stopping_closes_each_replicas_service(server):
    """Last: it stops the command (serve.shutdown()). Ray Serve calls a deployment's __del__ once,
    as the replica shuts down (its documented shutdown hook): the replica's Service closes and its
    upload folder, named by the replica, is gone."""
    with httpx.Client(base_url=server.url, timeout=600) as client:
        replicas = ready_replicas(client, 2, timeout_s=180)
    scratch = Path(tempfile.gettempdir())
    folders = [path for replica in replicas for path in scratch.glob(f"partsight-uploads-{replica}-*")]
    assert len(replicas) == 2 and len(folders) == 2, (replicas, folders)
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(120) == 130, server.log()
    assert not [path for path in folders if path.exists()]
