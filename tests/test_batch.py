"""`partsight batch` on a real Ray cluster: a head and a second node on 127.0.0.1 started with the
`ray` CLI (one CPU each, so two workers), shared by the tests of this module, over real clips.

Each input's JSONL and summary equal those `process` writes for the same clip (timings aside);
a worker killed with SIGKILL mid-run loses nothing; a rerun skips what is done; a missing and a
corrupt input fail alone; Ctrl-C leaves nothing half-written counted as done. Plus the inputs'
expansion and the atomic outputs, on real files, without Ray."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import av
import numpy as np
import pytest
import torch

from _http_files import serve_folder
from _ray_cluster import RayCluster
from _serve import free_port
from realtime.batch.inputs import BatchInput, expand_inputs, output_names
from realtime.batch.outputs import Manifest, OutputSet, fingerprint
from realtime.cli import main
from realtime.config import PipelineConfig

pytest.importorskip("ray", reason='batch needs the cluster extra: pip install -e ".[cluster]"')

REPO = Path(__file__).resolve().parents[1]
FRAMES = 10
# every option of `process` that batch shares, the same on both sides
OPTIONS = ["--frames", str(FRAMES), "--max-side", "480", "--exercise", "squat"]
CLIPS = ("faults/squat30.mp4", "cg-mannequin-pushup.mp4", "pose2sim-single-cam01.mp4", "pose2sim-multi-cam01.mp4")
TIMINGS = ("timings_ms", "latency_ms")


@pytest.fixture(scope="module")
def clips(media_dir: Path) -> list[Path]:
    return [media_dir / clip for clip in CLIPS]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    """The environment of the nodes and the driver: this checkout importable by the Ray workers,
    the shared weights, the tests' log file."""
    return {"PYTHONPATH": str(REPO), "PARTSIGHT_WEIGHTS_DIR": os.environ["PARTSIGHT_WEIGHTS_DIR"],
            "PARTSIGHT_LOG_FILE": os.environ["PARTSIGHT_LOG_FILE"], "PARTSIGHT_PROGRESS": "1"}


@pytest.fixture(scope="module")
def cluster(env):
    """In a folder of a short path, as Ray's socket names need (107 bytes at most): pytest's own,
    under an xdist worker's, is too long."""
    root = Path(tempfile.mkdtemp(prefix="psray-", dir="/tmp"))
    try:
        nodes = RayCluster(root, num_cpus=1, extra_nodes=1, env=env)
        try:
            yield nodes
        finally:
            nodes.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def processed(clips, tmp_path_factory) -> dict[str, Path]:
    """What `process` writes for each clip (output folder per clip stem), on one torch thread as
    each batch worker runs (--threads-per-worker 1)."""
    out = tmp_path_factory.mktemp("process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for clip in clips:
            folder = out / clip.stem
            assert main(["process", str(clip), "-o", str(folder / f"{clip.stem}.mp4"),
                         "--metrics", str(folder / f"{clip.stem}.jsonl"),
                         "--summary", str(folder / f"{clip.stem}.summary.json"), *OPTIONS]) == 0
    finally:
        torch.set_num_threads(threads)
    return {clip.stem: out / clip.stem for clip in clips}


def batch_command(cluster: RayCluster, out: Path, *inputs, options=OPTIONS) -> list[str]:
    return [sys.executable, str(REPO / "main.py"), "batch", *map(str, inputs), "--out", str(out),
            "--ray-address", cluster.address, *options]


def run_batch(cluster, out, *inputs, options=OPTIONS, timeout_s=300) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(cluster, out, *inputs, options=options), capture_output=True, text=True,
                          env=cluster.env, timeout=timeout_s)


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def latest(out: Path) -> dict[str, dict]:
    return {line["input"]: line for line in manifest(out)}


def frame_lines(path: Path) -> list[dict]:
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    return [{key: value for key, value in line.items() if key not in TIMINGS} for line in lines]


def assert_same_as_process(out: Path, processed: dict[str, Path]) -> None:
    for stem, reference in processed.items():
        folder = out / stem
        assert frame_lines(folder / f"{stem}.jsonl") == frame_lines(reference / f"{stem}.jsonl"), stem
        assert (json.loads((folder / f"{stem}.summary.json").read_text())
                == json.loads((reference / f"{stem}.summary.json").read_text())), stem
        with av.open(str(folder / f"{stem}.mp4")) as video:
            assert sum(1 for _ in video.decode(video=0)) == FRAMES
    assert not list(out.rglob(".part-*")), "temporary outputs were left"


def wait_until(condition, process: subprocess.Popen, what: str, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def writing(out: Path) -> int:
    """Inputs whose temporary JSONL holds a frame or more: workers in the middle of a video."""
    return sum(p.stat().st_size > 0 for p in out.glob("*/.part-*.jsonl"))


def test_outputs_equal_process_and_a_rerun_skips_them(cluster, clips, processed, tmp_path):
    out = tmp_path / "out"
    done = run_batch(cluster, out, *clips)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = latest(out)
    assert set(lines) == {str(clip) for clip in clips}
    for clip in clips:
        line = lines[str(clip)]
        assert (line["status"], line["frames"], line["attempts"], line["output"]) == ("ok", FRAMES, 1, clip.stem)
        summary = json.loads((processed[clip.stem] / f"{clip.stem}.summary.json").read_text())
        assert line["reps"] == {pid: person["reps"] for pid, person in summary["people"].items()}
        assert line["node"] and line["error"] is None and line["seconds"] > 0
    assert len({line["node"] for line in lines.values()}) == 2, "both nodes worked"
    assert_same_as_process(out, processed)
    # the frames bar was fed by the actors while they worked, not only when a video ended
    counts = {int(n) for n in re.findall(rf"frames:.*?(\d+)/{FRAMES * len(clips)}\b", done.stderr)}
    assert FRAMES * len(clips) in counts and counts - {0, FRAMES, 2 * FRAMES, 3 * FRAMES, 4 * FRAMES}
    assert "4 inputs: 4 ok, 0 skipped, 0 failed" in done.stdout

    again = run_batch(cluster, out, *clips)
    assert again.returncode == 0, again.stderr
    assert "4 inputs: 0 ok, 4 skipped, 0 failed" in again.stdout
    assert [line["status"] for line in manifest(out)[-4:]] == ["skipped"] * 4
    assert_same_as_process(out, processed)


def test_a_worker_killed_mid_video_loses_nothing(cluster, clips, tmp_path):
    """Longer videos than the other tests' (the steps of a frame overlap on their threads, so 10
    frames pass in a moment next to loading the models), so that both workers are seen in the
    middle of one; the one killed restarts its video elsewhere and every output is whole."""
    out, frames = tmp_path / "out", 4 * FRAMES
    options = ["--frames", str(frames), *OPTIONS[2:]]
    driver = subprocess.Popen(batch_command(cluster, out, *clips, options=options), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        wait_until(lambda: writing(out) == 2, driver, "both workers are in the middle of a video")
        workers = cluster.worker_pids("BatchActor")
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr
    assert "retrying" in stderr and "Traceback" not in stderr
    lines = manifest(out)
    assert len(lines) == 4 and {line["status"] for line in lines} == {"ok"}
    assert max(line["attempts"] for line in lines) == 2
    for clip in clips:
        folder = out / clip.stem
        assert [line["index"] for line in frame_lines(folder / f"{clip.stem}.jsonl")] == list(range(frames))
        assert json.loads((folder / f"{clip.stem}.summary.json").read_text())["exercise"]["name"] == "squat"
        with av.open(str(folder / f"{clip.stem}.mp4")) as video:
            assert sum(1 for _ in video.decode(video=0)) == frames
    assert not list(out.rglob(".part-*")), "temporary outputs were left"


def test_a_lone_worker_killed_mid_video_is_waited_for_while_ray_restarts_it(cluster, clips, tmp_path):
    """One worker (a laptop's batch): killed mid-video, its video is tried again on the same worker
    once Ray has restarted it (a call while it restarts fails at once: it must not cost an attempt)."""
    out, frames = tmp_path / "out", 4 * FRAMES
    options = ["--workers", "1", "--frames", str(frames), *OPTIONS[2:]]
    driver = subprocess.Popen(batch_command(cluster, out, *clips[:2], options=options), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        wait_until(lambda: writing(out) == 1, driver, "the worker is in the middle of a video")
        (worker,) = cluster.worker_pids("BatchActor")
        os.kill(worker, signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr
    assert stderr.count("retrying") == 1 and "Traceback" not in stderr
    lines = manifest(out)
    assert sorted((line["status"], line["attempts"]) for line in lines) == [("ok", 1), ("ok", 2)], lines
    for clip in clips[:2]:
        folder = out / clip.stem
        assert [line["index"] for line in frame_lines(folder / f"{clip.stem}.jsonl")] == list(range(frames))


def test_a_missing_and_a_corrupt_input_fail_alone(cluster, media_dir, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_text("this is not a video\n" * 100)
    frames = tmp_path / "frames"  # an image folder with one JPEG cut short: the rest is processed, the file named
    shutil.copytree(media_dir / "faults" / "frames_unpadded", frames)
    (frames / "3.jpg").write_bytes((frames / "3.jpg").read_bytes()[:3000])
    listed = tmp_path / "inputs.csv"
    listed.write_text(f"path,exercise\n{media_dir / 'faults/squat30.mp4'},squat\nmissing.mp4,\ncorrupt.mp4,\n"
                      f"{media_dir / 'faults/tiny.mp4'},\nframes,\n")
    out = tmp_path / "out"
    done = run_batch(cluster, out, listed, options=["--frames", "8"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "partsight: error: 2 of 5 inputs failed (see the table and the manifest)"
    assert "Traceback" not in done.stderr
    lines = latest(out)
    missing, bad = lines[str(tmp_path / "missing.mp4")], lines[str(corrupt)]
    assert missing["status"] == bad["status"] == "failed"
    assert "no such file" in missing["error"] and "\n" not in missing["error"]
    assert bad["error"].startswith(f"cannot open {corrupt}") and "\n" not in bad["error"]
    squat = lines[str(media_dir / "faults/squat30.mp4")]
    assert (squat["status"], squat["exercise"], squat["frames"]) == ("ok", "squat", 8)
    assert (out / "squat30" / "squat30.summary.json").is_file() and squat["reps"] == {"0": 0}
    tiny = lines[str(media_dir / "faults/tiny.mp4")]
    assert (tiny["status"], tiny["exercise"], tiny["reps"]) == ("ok", None, None)
    assert not (out / "tiny" / "tiny.summary.json").exists()
    folder = lines[str(frames)]
    assert (folder["status"], folder["frames"], folder["unreadable"]) == ("ok", 8, ["3.jpg"]), folder
    assert squat["unreadable"] == []
    assert re.search(r"^frames +ok +8 .*  1 unreadable image skipped \(3\.jpg\)$", done.stdout, re.M), done.stdout
    again = latest(out) if run_batch(cluster, out, listed, options=["--frames", "8"]).returncode == 1 else {}
    assert (again[str(frames)]["status"], again[str(frames)]["unreadable"]) == ("skipped", ["3.jpg"]), again
    assert not (out / "missing").exists() and not list((out / "corrupt").glob("*"))


def test_a_truncated_input_keeps_the_frames_before_the_cut_unless_a_complete_result_is_there(cluster, media_dir,
                                                                                                tmp_path):
    """A video cut short (a copy interrupted): its line is failed, saying where it ended, and what
    the job wrote from the frames before the cut is put in its folder, as `process` keeps it. An
    earlier finished result of the input is not replaced by a cut one; an earlier cut one is."""
    whole = (media_dir / "faults" / "squat30_faststart.mp4").read_bytes()
    clip, out = tmp_path / "clip.mp4", tmp_path / "out"
    clip.write_bytes(whole)
    options = ["--pose", "parser", "--max-side", "480"]
    assert run_batch(cluster, out, clip, options=[*options, "--frames", "30"]).returncode == 0
    clip.write_bytes(whole[:len(whole) // 5])  # 24 of its 151 frames decode
    kept = run_batch(cluster, out, clip, options=options)
    line = latest(out)[str(clip)]
    assert (kept.returncode, line["status"], line["frames"]) == (1, "failed", 24), kept.stderr
    cut = f"{clip} ended after 24 of its 151 frames: the file is truncated or damaged"
    assert line["error"] == f"{cut} (after 24 frames)"
    with av.open(str(out / "clip" / "clip.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 30  # the earlier, complete result
    shutil.rmtree(out / "clip")
    done = run_batch(cluster, out, clip, options=options)
    line = latest(out)[str(clip)]
    assert (done.returncode, line["status"]) == (1, "failed") and "Traceback" not in done.stderr
    assert line["error"] == f"{cut} (its 24 frames kept in clip/)"
    with av.open(str(out / "clip" / "clip.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == 24
    assert len((out / "clip" / "clip.jsonl").read_text().splitlines()) == 24
    clip.write_bytes(whole[:len(whole) * 3 // 10])  # the copy went on, still cut: 37 frames replace the 24
    assert run_batch(cluster, out, clip, options=options).returncode == 1
    assert latest(out)[str(clip)]["error"].endswith("(its 37 frames kept in clip/)")
    assert len((out / "clip" / "clip.jsonl").read_text().splitlines()) == 37
    assert not list(out.rglob(".part-*")), "temporary outputs were left"


def test_an_input_named_with_a_line_break_fails_on_one_line_with_its_reason(cluster, tmp_path):
    """A corrupt input whose name holds a line break (a shell passes one): its error in the
    manifest and the table, and its warning, are each one line, the path's line break escaped
    and the reason after it kept (cut at the line break, the reason was lost)."""
    corrupt = tmp_path / "bad\nname.mp4"
    corrupt.write_text("this is not a video\n" * 100)
    out = tmp_path / "out"
    done = run_batch(cluster, out, corrupt, options=["--frames", "8"])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    shown = str(corrupt).replace("\n", "\\n")
    [line] = manifest(out)
    assert (line["input"], line["status"]) == (str(corrupt), "failed"), line
    assert line["error"] == f"cannot open {shown}: it is not a video PartSight can read, or it is damaged", line
    warning = f"partsight: warning: {shown} failed: {line['error']}"  # after the progress bars' cursor moves
    assert re.search(rf"{re.escape(warning)}$", done.stderr, re.M), done.stderr
    assert re.search(rf"^bad_name +failed +0 .*  {re.escape(line['error'])}$", done.stdout, re.M), done.stdout


def test_a_manifest_row_naming_custom_counts_the_command_lines_custom_exercise(cluster, media_dir, tmp_path):
    """A row's `custom` is the custom exercise of the command line (its joints and angles); without
    one, the row fails saying what to give, before Ray starts (it was refused as an unknown exercise,
    "choose from ... or custom", even with --exercise custom --joint ... given)."""
    squat30 = media_dir / "faults/squat30.mp4"
    listed = tmp_path / "inputs.csv"
    listed.write_text(f"path,exercise\n{squat30},custom\n")
    alone = subprocess.run([sys.executable, str(REPO / "main.py"), "batch", str(listed), "--out", str(tmp_path / "no"),
                            "--frames", "70"], capture_output=True, text=True, env=cluster.env, timeout=300)
    assert alone.returncode == 1 and "Traceback" not in alone.stderr
    error = ("a manifest row naming custom counts the command line's custom exercise: give --exercise custom "
             "--joint JOINT --start-deg DEG --turn-deg DEG")
    assert latest(tmp_path / "no")[str(squat30)]["error"] == error
    assert error in alone.stdout and len(alone.stderr.splitlines()) == 1, alone.stderr
    assert alone.stderr.startswith("partsight: error: 1 of 1 input"), alone.stderr

    custom = ["--frames", "70", "--exercise", "custom", "--joint", "left_knee", "--start-deg", "160", "--turn-deg", "100"]
    done = run_batch(cluster, tmp_path / "out", listed, options=custom)
    assert done.returncode == 0, done.stderr
    line = latest(tmp_path / "out")[str(squat30)]
    assert (line["status"], line["exercise"], line["reps"]) == ("ok", "custom", {"0": 1}), line


def assert_complete(out: Path, line: dict, frames: int) -> None:
    """The manifest line's outputs are in place: every frame in the JSONL and the MP4, a summary."""
    folder = out / line["output"]
    assert (line["status"], line["frames"]) == ("ok", frames), line
    assert [frame["index"] for frame in frame_lines(folder / f"{line['output']}.jsonl")] == list(range(frames))
    assert (folder / f"{line['output']}.summary.json").is_file()
    with av.open(str(folder / f"{line['output']}.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == frames


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_only_finished_outputs_and_a_rerun_finishes(cluster, clips, tmp_path, stop):
    """Ctrl-C, or SIGTERM (`kill`, a service manager's stop; Ray's own handler printed a stack
    and left half-written outputs and no manifest), halfway through the second of two inputs."""
    # 100 frames a video: the second is still far from done when Ctrl-C reaches its worker
    out, clips, frames = tmp_path / "out", clips[:2], 100
    options = ["--frames", str(frames), *OPTIONS[2:], "--workers", "1"]
    driver = subprocess.Popen(batch_command(cluster, out, *clips, options=options),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:  # Ctrl-C once the first input is done and the second half-written
        wait_until(lambda: (out / "manifest.jsonl").exists() and writing(out), driver,
                   "one input is done and the next half-written")
        driver.send_signal(stop)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 128 + stop, stderr  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    assert "1 input(s) unfinished" in stderr and "Traceback" not in stderr and "SIGTERM received" not in stderr
    assert not list(out.rglob(".part-*")), "half-written outputs were left"
    (first,) = manifest(out)
    assert first["input"] == str(clips[0])
    assert_complete(out, first, frames)
    assert sorted(path.name for path in out.iterdir()) == sorted([first["output"], "manifest.jsonl"])

    again = run_batch(cluster, out, *clips, options=options)
    assert again.returncode == 0, again.stderr
    skipped, second = manifest(out)[1:]
    assert (skipped["input"], skipped["status"], second["input"]) == (str(clips[0]), "skipped", str(clips[1]))
    assert_complete(out, second, frames)
    assert not list(out.rglob(".part-*")), "temporary outputs were left"


def test_inputs_expand_in_natural_order_with_unique_names(tmp_path, media_dir):
    clip = media_dir / "faults/squat30.mp4"
    for name in ("a/clip10.mp4", "a/clip2.mp4", "a/deeper/clip1.MOV", "a/notes.txt", "b/clip2.mp4",
                 "frames/2.jpg", "frames/10.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text(f"# sessions\n{clip}\n\nb/clip2.mp4\nhttp://example.invalid/x/session.mp4\n")
    (tmp_path / "rows.csv").write_text("path,exercise\na/clip2.mp4,lunge\nframes,\n")
    found = expand_inputs([str(tmp_path / "a"), str(tmp_path / "list.txt"), str(tmp_path / "rows.csv"),
                           str(tmp_path / "b" / "*.mp4"), str(tmp_path / "nope.mp4")])
    assert found == [BatchInput(str(tmp_path / "a/clip2.mp4")), BatchInput(str(tmp_path / "a/clip10.mp4")),
                     BatchInput(str(tmp_path / "a/deeper/clip1.MOV")), BatchInput(str(clip)),
                     BatchInput(str(tmp_path / "b/clip2.mp4")), BatchInput("http://example.invalid/x/session.mp4"),
                     BatchInput(str(tmp_path / "frames")), BatchInput(str(tmp_path / "nope.mp4"))]
    # names an earlier run gave stay taken, also by inputs not in this run
    assert list(output_names(found, {str(clip): "earlier", "/elsewhere/clip2.mp4": "clip2"}).values()) == [
        "clip2-2", "clip10", "clip1", "earlier", "clip2-3", "session", "frames", "nope"]
    # the output folder inside an input folder is not an input
    assert expand_inputs([str(tmp_path / "a")], exclude=tmp_path / "a" / "deeper") == found[:2]
    with pytest.raises(ValueError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mkv")])
    (tmp_path / "bad.csv").write_text("file,exercise\nx.mp4,squat\n")
    with pytest.raises(ValueError, match=r"no 'path' column \(its first row names: file, exercise; a CSV manifest"):
        expand_inputs([str(tmp_path / "bad.csv")])


def test_output_names_keep_unicode_letters_and_digits(tmp_path):
    """Letters and digits of any script stay in the output folder names (they became 'bung_1',
    'input', 'Jos_squat', 'squat'); only characters unsafe in a file name become '_'; names stay
    unique ignoring case, a macOS (decomposed) name is the same name, and each is a folder here."""
    decomposed = unicodedata.normalize("NFD", "übung 1.mkv")
    names = ("Übung 1.mp4", "スクワット.mp4", "José squat.mov", "squat ü.mp4", "a:b*c?.mp4", decomposed)
    for name in names:
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([str(tmp_path / name) for name in names]
                          + ["http://example.invalid/x/%C3%9Cbung%202.mp4", "https://example.invalid/x/%2F%2F.mp4",
                             f"http://example.invalid/{quote('ス' * 100)}.mp4"])
    made = list(output_names(found, {}).values())
    assert made == ["Übung_1", "スクワット", "José_squat", "squat_ü", "a_b_c", "übung_1-2", "Übung_2", "input", "ス" * 66]
    for name in made:
        (tmp_path / "out" / name).mkdir(parents=True)


def test_an_image_folder_repaired_in_place_is_done_again(media_dir, tmp_path):
    """A folder's fingerprint holds its files' sizes and times: an image rewritten in place (the
    folder's own time unchanged) makes a re-run process the folder again."""
    folder = tmp_path / "frames"
    shutil.copytree(media_dir / "faults" / "frames_unpadded", folder)
    config = PipelineConfig(source=str(folder))
    before = fingerprint(config, labels=False, audio=True, readout=False)
    assert fingerprint(config, labels=False, audio=True, readout=False) == before
    folder_time = folder.stat().st_mtime_ns
    (folder / "3.jpg").write_bytes((folder / "3.jpg").read_bytes()[:3000])
    os.utime(folder, ns=(folder_time, folder_time))
    assert fingerprint(config, labels=False, audio=True, readout=False) != before


def test_outputs_appear_only_when_complete(tmp_path):
    outputs = OutputSet(tmp_path / "clip", summary=True, labels=True)
    outputs.prepare()
    written = outputs.job_outputs(audio=True)
    for path in (written.video, written.metrics, written.summary):
        Path(path).write_text("x")
    with pytest.raises(FileNotFoundError):
        outputs.commit()  # the label folder is missing: nothing is renamed
    assert not outputs.complete() and not (tmp_path / "clip" / "clip.mp4").exists()
    Path(written.labels_dir).mkdir()
    outputs.commit()
    assert outputs.complete() and not list((tmp_path / "clip").glob(".part-*"))
    outputs.prepare()  # a new attempt: the finished result stays until its own commit
    Path(outputs.job_outputs(audio=True).video).write_text("half")
    outputs.discard()
    assert outputs.complete() and not list((tmp_path / "clip").glob(".part-*"))


def test_a_manifest_line_a_crash_cut_short_stays_apart_from_the_next(tmp_path):
    """The next run's first line went onto the cut one: both lost as one line that is no JSON."""
    manifest = Manifest(tmp_path)
    manifest.append({"input": "a.mp4", "status": "ok"})
    with manifest.path.open("ab") as out:
        out.write(b'{"schema": "partsight.batch/1", "input": "b.mp4", "sta')  # killed mid-line
    manifest.append({"input": "c.mp4", "status": "ok"})
    assert sorted(manifest.latest()) == ["a.mp4", "c.mp4"]
    assert manifest.path.read_bytes().endswith(b"\n") and len(manifest.path.read_text().splitlines()) == 3


def test_the_window_and_process_never_load_ray_and_batch_without_it_says_so(tmp_path, media_dir):
    """Builds every command line (the window's too) without importing Ray; `batch` where Ray
    cannot be imported ends with one line saying which extra to install."""
    script = f"""
import sys
from gui.cli import main
import realtime.batch.cli, realtime.job
assert "ray" not in sys.modules, "importing the commands loaded Ray"
sys.modules["ray"] = None  # as where the cluster extra is not installed
sys.exit(main(["batch", {str(media_dir / 'faults/tiny.mp4')!r}, "--out", {str(tmp_path / 'out')!r}]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == 'partsight: error: batch needs Ray: pip install "partsight[cluster]" (or: pip install "ray[default]")'
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["batch", "serve"])
def test_a_ray_address_where_nothing_listens_is_one_line(tmp_path, media_dir, command):
    """`batch` and `serve --ray-address` at a port where nothing listens: one line, exit 1 (ray.init
    retried there for more than ten minutes, printing Ray's own lines)."""
    address = f"127.0.0.1:{free_port()}"
    args = ([str(media_dir / "faults/tiny.mp4"), "--out", str(tmp_path / "out")] if command == "batch"
            else ["--port", str(free_port())])
    done = subprocess.run([sys.executable, str(REPO / "main.py"), command, *args, "--ray-address", address],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(REPO)})
    reach = "start or reach" if command == "batch" else "reach"
    assert (done.returncode, done.stderr.splitlines()) == (
        1, [f"partsight: error: cannot {reach} the Ray cluster at {address}: nothing answers there (Connection refused)"])


@pytest.mark.parametrize("out", ["notes.txt", "notes.txt/out"])
def test_a_file_as_the_output_folder_is_one_line_before_ray_starts(tmp_path, media_dir, out):
    (tmp_path / "notes.txt").write_text("a file the user keeps")
    script = f"""
import sys
from realtime.cli import main
code = main(["batch", {str(media_dir / 'faults/tiny.mp4')!r}, "--out", {str(tmp_path / out)!r}])
assert "ray" not in sys.modules, "Ray was loaded before --out was checked"
sys.exit(code)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    blocker = "it" if out == "notes.txt" else tmp_path / "notes.txt"
    assert done.stderr.splitlines() == [
        f"partsight: error: --out: cannot create the folder {tmp_path / out}: {blocker} is a file, not a folder"]
    assert (tmp_path / "notes.txt").read_text() == "a file the user keeps"


@pytest.mark.parametrize("holding", [(), ("notes.txt",), ("deeper/notes.txt",)])
def test_a_folder_without_videos_is_one_line_as_a_glob_matching_nothing(tmp_path, holding):
    """An empty folder, or one holding only other files, is an error as a glob matching no file is
    (it was '0 inputs: 0 ok ...' and exit 0), naming the folder and the suffixes looked for."""
    folder = tmp_path / "sessions"
    folder.mkdir()
    for name in holding:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("notes")
    runs = [subprocess.run([sys.executable, str(REPO / "main.py"), "batch", spec, "--out", str(tmp_path / "out")],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
            for spec in (str(folder), str(tmp_path / "*.mkv"))]
    assert [run.returncode for run in runs] == [1, 1], [run.stderr for run in runs]
    assert runs[1].stderr.splitlines() == [f"partsight: error: {tmp_path / '*.mkv'} matches no file"]
    assert len(runs[0].stderr.splitlines()) == 1 and not runs[0].stdout, runs[0].stdout
    message = runs[0].stderr.strip()
    assert message.startswith(f"partsight: error: {folder} holds no video")
    assert all(f" {suffix} " in message for suffix in (".mp4", ".mov", ".mkv", ".webm"))
    assert not (tmp_path / "out").exists()


def test_ctrl_c_before_any_input_is_done_names_no_manifest(cluster, clips, tmp_path):
    out, options = tmp_path / "out", ["--frames", "100", *OPTIONS[2:], "--workers", "1"]
    driver = subprocess.Popen(batch_command(cluster, out, *clips[:2], options=options),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:  # Ctrl-C while the first input is half-written: nothing is done, so there is no manifest
        wait_until(lambda: writing(out), driver, "the first input is half-written")
        assert not (out / "manifest.jsonl").exists()
        driver.send_signal(signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 130, stderr
    assert not (out / "manifest.jsonl").exists()
    assert "manifest" not in stdout and "2 input(s) unfinished" in stderr and "Traceback" not in stderr, stdout


@pytest.fixture
def local_ray() -> Iterator[tuple[Path, dict[str, str]]]:
    """A folder for the Ray that `batch` starts itself (RAY_TMPDIR: a short path, as its socket
    names need) and the environment that makes it start one: no cluster address, Ray's default
    authentication (no RAY_AUTH_MODE: Ray then enables its token and says so)."""
    root = Path(tempfile.mkdtemp(prefix="psray-", dir="/tmp"))
    drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(PYTHONPATH=str(REPO), RAY_TMPDIR=str(root), RAY_USAGE_STATS_ENABLED="0")
    yield root, env
    shutil.rmtree(root, ignore_errors=True)


def ray_processes_of(driver_pid: int, ray_dir: Path) -> list[str]:
    """The command lines of the processes of one `batch` run's local Ray: those naming its Ray
    folder, and those in the driver's process group (Ray's agents rename themselves
    "ray::DashboardAgent"), the driver started as a process group of its own."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            group = os.getpgid(int(proc.name))
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile
        if command and (str(ray_dir) in command or group == driver_pid):
            found.append(command[:120])
    return found


def test_a_local_ray_says_nothing_on_the_console_and_fps_and_readout_reach_the_workers(local_ray, media_dir, tmp_path):
    """`batch` without a cluster starts a local Ray (token authentication on, Ray's default): none
    of Ray's notes on the console; --fps on a video is one note; --readout draws the readout into
    the workers' MP4s (squat30's top left is empty floor and wall: the source's picture without it)."""
    ray_dir, env = local_ray
    clip, out = media_dir / "faults" / "squat30.mp4", tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "main.py"), "batch", str(clip), "--out", str(out), "--frames", "3",
                           "--pose", "parser", "--person-mask", "parser", "--max-people", "1", "--fps", "60",
                           "--readout"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "authentication" not in done.stderr and "RAY_AUTH_MODE" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[0] == ("partsight: note: --fps applies to image folders and raw video streams; "
                                           "1 input(s) (videos, streams) keep their own rates"), done.stderr
    with av.open(str(out / "squat30" / "squat30.mp4")) as video, av.open(str(clip)) as source:
        drawn = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
        original = [frame.to_ndarray(format="rgb24") for _, frame in zip(drawn, source.decode(video=0))]
    assert len(drawn) == 3
    for with_readout, picture in zip(drawn, original):
        assert (np.abs(with_readout[:24, :80].astype(int) - picture[:24, :80]).max(axis=2) > 60).mean() > 0.5


def test_ctrl_c_while_ray_starts_stops_every_ray_process(local_ray, media_dir, tmp_path):
    """Ctrl-C once Ray's agents run but before ray.init returns: the command waits for Ray to have
    started, stops it (ray.shutdown) and exits 130; none of that run's Ray processes outlives it
    (cut short inside ray.init, its dashboard and runtime-env agents lived on for minutes)."""
    ray_dir, env = local_ray
    driver = subprocess.Popen([sys.executable, str(REPO / "main.py"), "batch", str(media_dir / "faults/squat30.mp4"),
                               "--out", str(tmp_path / "out"), "--frames", "3", "--pose", "parser"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_until(lambda: any(command.startswith("ray::") for command in ray_processes_of(driver.pid, ray_dir)),
                   driver, "Ray's agents run", timeout_s=180)
        driver.send_signal(signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("partsight: interrupted"), stderr
    deadline = time.monotonic() + 30
    while (left := ray_processes_of(driver.pid, ray_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Ray processes outlived the command: {left}"


def test_the_manifest_holds_no_credential_and_a_rerun_still_knows_the_inputs(local_ray, media_dir, tmp_path):
    """A CSV of URLs with user:password@ (a web server behind a login on 127.0.0.1, two cameras
    that refuse): neither run's manifest, console nor log holds a user or a password, and the
    second run knows the file done in the first by its redacted address and skips it."""
    _, env = local_ray
    env["PARTSIGHT_LOG_FILE"] = str(tmp_path / "partsight.log")
    server, thread = serve_folder(media_dir / "faults", "hunter2")
    closed = free_port()  # closed again: nothing listens there
    login = f"http://127.0.0.1:{server.server_port}/squat30_faststart.mp4"
    listed = tmp_path / "week.csv"
    listed.write_text(f"path\n{login.replace('://', '://coach:hunter2@')}\n"
                      f"rtsp://coach:p@ss:w0rd@127.0.0.1:{closed}/cam1\n"
                      f'"rtsp://coach:p ace\t""q\'<x>[y](z)@127.0.0.1:{closed}/cam2"\n')
    command = [sys.executable, str(REPO / "main.py"), "batch", str(listed), "--out", str(tmp_path / "res3"),
               "--frames", "3", "--workers", "1", "--pose", "parser", "--person-mask", "parser", "--max-people", "1"]
    try:
        runs = [subprocess.run(command, capture_output=True, text=True, env=env, timeout=300) for _ in range(2)]
    finally:
        server.shutdown()
        thread.join()
    assert [run.returncode for run in runs] == [1, 1], runs[-1].stderr
    cams = [f"rtsp://***@127.0.0.1:{closed}/cam1", f"rtsp://***@127.0.0.1:{closed}/cam2"]
    lines = manifest(tmp_path / "res3")
    shown = login.replace("://", "://***@")
    statuses = {(line["input"], line["status"]) for line in lines}
    assert statuses == {(shown, "ok"), (shown, "skipped"), *((cam, "failed") for cam in cams)}, lines
    assert len(lines) == 6 and len({line["fingerprint"] for line in lines}) == 3
    written = [(tmp_path / "res3" / "manifest.jsonl").read_text(), (tmp_path / "partsight.log").read_text(),
               *(run.stdout + run.stderr for run in runs)]
    for text in written:
        for secret in ("coach", "hunter2", "w0rd", "p@ss", "p ace", "<x>"):
            assert secret not in text, (secret, text)
