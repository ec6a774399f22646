"""Broken and hostile input through the real CLI, run as a user runs it (a subprocess): every file
either works, or ends with one line `partsight: error: ...` and exit status 1 (2 for a usage
error), never a traceback; what was written before a failure stays playable."""
from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import MAIN, engine_threads, kill_process_after_lines

from realtime.models import load_parser
from realtime.models.humanseg import letterbox as humanseg_letterbox
from realtime.models.m2fp import SINGLE_HUMAN_CANVAS_WH, center_on_canvas, short_side_size
from realtime.models.mask2former_panoptic import rescale_size
from realtime.models.uniparser import rescaled_size
from realtime.config import PipelineConfig
from realtime.pipeline import Pipeline

pytestmark = pytest.mark.usefixtures("engine_threads_joined")


def _cli(*args: str, timeout_s: float = 300, env: dict[str, str] | None = None,
         **popen) -> subprocess.CompletedProcess:
    env = {key: value for key, value in (env or os.environ).items() if key != "PARTSIGHT_DEBUG"}
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True, timeout=timeout_s,
                          env=env, **popen)


def _assert_one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("partsight: error:")]
    assert run.returncode == 1 and errors == lines[-1:], run.stderr
    assert not [line for line in lines if line.startswith("[")], f"library log noise: {run.stderr}"
    for fragment in fragments:
        assert fragment in errors[0]
    return errors[0]


def _decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def _playable_frames(path: Path) -> int:
    """Frames a player shows before it reaches damaged data (a fragment cut off by a full disk)."""
    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(video=0):
                count += 1
        except av.error.InvalidDataError:
            pass
    return count


def _write_video(path: Path, images: list[np.ndarray], *, codec: str, pix_fmt: str, fmt: str = "rgb24",
                 options: dict | None = None) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = images[0].shape[1], images[0].shape[0], pix_fmt
        stream.options = options or {}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, single_clip, single_frames, truncated_tiff) -> Path:
    """Every kind of file a user may drop on the app, made from the real clip and its frames."""
    folder = tmp_path_factory.mktemp("bad")
    frame = single_frames[1]  # RGB, 1920 high, 1080 wide
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    small = cv2.resize(frame, (216, 384))
    clip = single_clip.read_bytes()
    (folder / "zero-bytes.mp4").write_bytes(b"")
    (folder / "cut-before-index.mp4").write_bytes(clip[: len(clip) // 2])  # this clip keeps its index at the end
    (folder / "text.mp4").write_text("this is a shopping list, not a video\n")
    (folder / "text.png").write_text("not a picture either\n")
    (folder / "notes.txt").write_text("squats: 3 x 10, lunges: 3 x 8\n" * 50)  # FFmpeg draws a text this long as ANSI art
    (folder / "truncated.tif").write_bytes(truncated_tiff)
    (folder / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n')  # FFmpeg has no SVG decoder here
    cv2.imwrite(str(folder / "photo.png"), bgr)
    cv2.imwrite(str(folder / "one-pixel.png"), bgr[900:901, 500:501])
    cv2.imwrite(str(folder / "odd-17x13.png"), bgr[900:913, 500:517])
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / "16-bit.png"), bgr.astype(np.uint16) * 257)
    with av.open(str(single_clip)) as source, av.open(str(folder / "index-first.mp4"), "w",
                                                      options={"movflags": "faststart"}) as remuxed:
        stream = remuxed.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                remuxed.mux(packet)
    whole = (folder / "index-first.mp4").read_bytes()
    (folder / "cut-mid-stream.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    # opens (its index is whole) but holds no whole frame
    (folder / "cut-after-index.mp4").write_bytes(whole[: whole.index(b"mdat") + 400])
    x264 = {"preset": "ultrafast"}
    _write_video(folder / "10-bit.mp4", [small] * 5, codec="libx264", pix_fmt="yuv420p10le", options=x264)
    _write_video(folder / "odd-size-17x13.mp4", [small[100:113, 100:117]] * 5, codec="libx264", pix_fmt="yuv444p",
                 options=x264)
    _write_video(folder / "gray.mov", [cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)] * 5, codec="png", pix_fmt="gray",
                 fmt="gray")
    rgba = np.dstack([small, np.full(small.shape[:2], 100, np.uint8)])
    _write_video(folder / "alpha.mov", [rgba] * 5, codec="png", pix_fmt="rgba", fmt="rgba")
    _write_video(folder / "8k.mp4", [cv2.resize(frame, (4320, 7680))] * 2, codec="libx264", pix_fmt="yuv420p",
                 options=x264)
    return folder


# name -> (frames, width, height) of the annotated MP4 it gives
WORKS = {
    "photo.png": (1, 1080, 1920),
    "one-pixel.png": (1, 2, 2),
    "odd-17x13.png": (1, 16, 12),
    "gray.png": (1, 1080, 1920),
    "alpha.png": (1, 1080, 1920),
    "16-bit.png": (1, 1080, 1920),
    "10-bit.mp4": (5, 216, 384),
    "odd-size-17x13.mp4": (5, 16, 12),
    "gray.mov": (5, 216, 384),
    "alpha.mov": (5, 216, 384),
    "8k.mp4": (2, 4320, 7680),
}
# name -> words the one-line error must hold
FAILS = {
    "zero-bytes.mp4": "cannot open",
    "cut-before-index.mp4": "cannot open",
    "text.mp4": "cannot open",
    "text.png": "not a readable image",
    "notes.txt": "is a text file, not a video",
    "truncated.tif": "not a readable image",
    "drawing.svg": "cannot open",
    "no-such-file.mp4": "no such file",
    "cut-after-index.mp4": "no frame was written",
}


@pytest.mark.parametrize("name", sorted(WORKS))
def test_unusual_files_work(bad_files, tmp_path, name):
    out = tmp_path / "out.mp4"
    run = _cli("process", str(bad_files / name), "-o", str(out), "--metrics", str(tmp_path / "out.jsonl"),
               "--device", "cpu")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    frames, width, height = WORKS[name]
    written = _decoded(out)
    assert len(written) == frames and (written[0].width, written[0].height) == (width, height)
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == frames


@pytest.mark.parametrize("name", sorted(FAILS))
def test_unreadable_files_end_with_one_line_and_leave_earlier_outputs_as_they_were(media_dir, bad_files, tmp_path,
                                                                                    name):
    """A run whose source gives no frame creates, truncates and removes nothing: the outputs of
    an earlier run on the same paths (its MP4, JSONL, label PNGs and summary) stay byte for byte."""
    earlier = tmp_path / "earlier"
    (earlier / "labels").mkdir(parents=True)
    (earlier / "out.mp4").write_bytes((media_dir / "faults" / "squat30.mp4").read_bytes())
    (earlier / "out.jsonl").write_text('{"index": 0}\n')
    (earlier / "reps.json").write_text('{"schema": "partsight.summary/1"}\n')
    for index in range(3):
        cv2.imwrite(str(earlier / "labels" / f"{index:06d}.png"), np.full((7, 5), 3, np.uint8))
    before = _snapshot(earlier)
    run = _cli("process", str(bad_files / name), "-o", str(earlier / "out.mp4"), "--metrics",
               str(earlier / "out.jsonl"), "--labels-dir", str(earlier / "labels"), "--exercise", "squat",
               "--summary", str(earlier / "reps.json"), "--pose", "parser", "--device", "cpu")
    _assert_one_line_error(run, FAILS[name], name)
    assert "squat" not in run.stdout, "no summary table for a run without a frame"
    assert _snapshot(earlier) == before


def test_a_labels_dir_of_someone_elses_pngs_is_refused_and_kept(single_clip, single_frames, tmp_path):
    """A folder of photos that ffmpeg named %06d.png, as label PNGs are, and among them a label
    PNG of an earlier run: refused up front by a photo's name, nothing removed, no MP4 made."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(1, 9):
        cv2.imwrite(str(photos / f"{index:06d}.png"), cv2.cvtColor(cv2.resize(single_frames[1], (54, 96)),
                                                                   cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "000000.png"), np.full((96, 54), 3, np.uint8))
    before = _snapshot(photos)
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--labels-dir", str(photos),
               "--frames", "3", "--pose", "parser", "--device", "cpu")
    error = _assert_one_line_error(run, "--labels-dir: ", "is not a label PNG", "choose another folder")
    assert "details in" not in error and any(str(photos / f"{index:06d}.png") in error for index in range(1, 9)), error
    assert _snapshot(photos) == before
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("size", ["1280x100", "1920x60", "3840x1", "1x3840"])
def test_a_thin_frame_size_is_processed_whole(media_dir, tmp_path, size):
    """Frame sizes whose smoothing flow image was under OpenCV DIS's smallest (1280x100 segfaulted,
    1920x60 failed a resize to 0 pixels inside it), down to one pixel across."""
    out = tmp_path / "out.mp4"
    run = _cli("process", str(media_dir / "faults" / "squat30.mp4"), "--size", size, "--frames", "30", "-o", str(out),
               "--device", "cpu")
    assert run.returncode == 0 and "Traceback" not in run.stderr, (run.returncode, run.stderr)
    width, height = (max(2, side - side % 2) for side in map(int, size.split("x")))  # H.264 4:2:0: even sides
    written = _decoded(out)
    assert len(written) == 30 and {(frame.width, frame.height) for frame in written} == {(width, height)}


def test_a_format_ffmpeg_opens_but_cannot_decode_is_refused_before_any_output(bad_files, tmp_path):
    run = _cli("process", str(bad_files / "drawing.svg"), "-o", str(tmp_path / "out.mp4"), "--exercise", "squat",
               "--device", "cpu")
    _assert_one_line_error(run, "drawing.svg: it is not a video PartSight can read")
    assert run.stdout == "" and not list(tmp_path.iterdir())


@pytest.mark.parametrize("width, height", [(3840, 1), (1, 3840), (1920, 2)])
def test_every_network_input_of_a_thin_frame_keeps_a_pixel_a_side(single_frames, width, height):
    """The parsers' own scalings (ported from their references' truncating arithmetic) of a real
    frame scaled thin: none may give a side of 0 pixels, which cv2.resize refuses."""
    frame = cv2.resize(single_frames[1], (width, height), interpolation=cv2.INTER_AREA)
    canvas, (x0, y0, x1, y1) = center_on_canvas(frame)
    assert x1 > x0 and y1 > y0 and canvas.shape[:2] == SINGLE_HUMAN_CANVAS_WH[::-1]
    box = humanseg_letterbox((height, width), 192)
    assert min(box.content_hw) >= 1
    for scaled in (short_side_size(height, width, 512), rescaled_size(height, width), rescale_size(height, width)):
        assert min(scaled) >= 1, scaled


def test_a_file_cut_mid_stream_keeps_what_was_written(bad_files, tmp_path):
    out = tmp_path / "out.mp4"
    run = _cli("process", str(bad_files / "cut-mid-stream.mp4"), "-o", str(out), "--size", "180x320",
               "--device", "cpu")
    error = _assert_one_line_error(run, "truncated or damaged", "of its 100 frames")
    written = len(_decoded(out))
    assert 0 < written < 100 and f"the {written} frames before it are in {out}" in error


def test_kill_9_while_recording_leaves_a_playable_mp4_and_whole_jsonl_lines(single_clip, tmp_path):
    video, metrics = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    kill_process_after_lines(["process", str(single_clip), "-o", str(video), "--metrics", str(metrics), "--size",
                              "180x320", "--loop", "--frames", "100000", "--device", "cpu"], metrics, 95)

    text = metrics.read_text()
    assert text.endswith("\n"), "the JSONL ends with a whole line"
    indices = [json.loads(line)["index"] for line in text.splitlines()]
    assert indices == list(range(len(indices))) and len(indices) >= 95
    decoded = len(_decoded(video))
    print(f"kill -9 after {len(indices)} JSONL lines: the MP4 decodes {decoded} frames")
    assert 60 <= decoded <= len(indices), "every finished fragment (a keyframe every 30 frames) is readable"


def test_an_unwritable_output_folder_is_one_line(single_clip, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a file, so nothing can be created under it (even by root)")
    run = _cli("process", str(single_clip), "-o", str(blocker / "out.mp4"), "--device", "cpu")
    _assert_one_line_error(run, "cannot write", "a-file")


@pytest.mark.parametrize("outputs, words", [
    (["-o", "{file}/out.mp4"], "cannot write {file}/out.mp4: {file} is a file, not a folder"),
    (["-o", "{file}/sub/out.mp4"], "cannot write {file}/sub/out.mp4: {file} is a file, not a folder"),
    (["-o", "{folder}/out.mp4", "--labels-dir", "{file}"], "cannot write {file}: it is a file, not a folder"),
    (["-o", "{folder}/out.mp4", "--exercise", "squat", "--summary", "{file}/s.json"],
     "--summary: cannot write {file}/s.json: {file} is a file, not a folder"),
], ids=["-o", "-o deeper", "--labels-dir", "--summary"])
def test_a_file_where_an_output_folder_must_be_is_named(single_clip, tmp_path, outputs, words):
    """(It said "cannot write FILE: File exists".)"""
    blocker = tmp_path / "a.json"
    blocker.write_text("{}")
    paths = {"file": blocker, "folder": tmp_path}
    run = _cli("process", str(single_clip), *(arg.format(**paths) for arg in outputs), "--frames", "2",
               "--pose", "parser", "--device", "cpu")
    _assert_one_line_error(run, words.format(**paths))
    assert blocker.read_text() == "{}"


def test_a_batch_output_folder_that_cannot_be_made_says_so(single_clip):
    """sysfs refuses anything new, even to root (it said "[Errno 1] Operation not permitted: '/sys/out'"):
    found by a file tried there, before Ray starts and leaving nothing behind."""
    run = _cli("batch", str(single_clip), "--out", "/sys/partsight-out")
    assert run.returncode == 1 and run.stderr.splitlines() == [
        "partsight: error: --out: cannot create the folder /sys/partsight-out: Permission denied"], run.stderr


def test_an_unwritable_summary_is_refused_before_the_run(single_clip, tmp_path):
    """--summary is written only at the run's end: a path that cannot be written is found first,
    named by its option, before any output is made."""
    blocker = tmp_path / "a-file"
    blocker.write_text("a file, so nothing can be created under it (even by root)")
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--exercise", "squat", "--summary",
               str(blocker / "s.json"), "--frames", "3", "--pose", "parser", "--device", "cpu")
    _assert_one_line_error(run, "--summary: cannot write", "a-file")
    assert not (tmp_path / "out.mp4").exists()


def test_a_summary_in_a_folder_no_one_may_write_is_refused_before_the_run(single_clip, tmp_path):
    """/sys refuses a new file even to root, whom os.access lets through: the path is tried."""
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--exercise", "squat", "--summary",
               "/sys/partsight-summary.json", "--frames", "3", "--pose", "parser", "--device", "cpu")
    _assert_one_line_error(run, "--summary: cannot write /sys/partsight-summary.json: ")
    assert not (tmp_path / "out.mp4").exists() and not Path("/sys/partsight-summary.json").exists()


def test_a_summary_that_fails_at_the_end_comes_after_what_the_run_did(media_dir, tmp_path):
    """/dev/full opens (the check at the start passes) but takes no byte: the run's lines and
    table are printed, then the one-line error, exit 1."""
    out = tmp_path / "out.mp4"
    run = _cli("process", str(media_dir / "faults" / "squat30.mp4"), "-o", str(out), "--exercise", "squat",
               "--summary", "/dev/full", "--frames", "3", "--pose", "parser", "--device", "cpu")
    _assert_one_line_error(run, "cannot write the summary /dev/full: No space left on device")
    assert f"wrote {out}: 3 frames in " in run.stdout and "squat: 0 reps" in run.stdout, run.stdout
    assert "summary /dev/full" not in run.stdout and "details in" not in run.stderr
    assert len(_decoded(out)) == 3


def _own_copy(media_dir: Path, folder: Path) -> tuple[Path, Path]:
    """A user's only copy of squat30 in `folder`, and a folder of two of its frames as PNGs."""
    video = folder / "session.mp4"
    video.write_bytes((media_dir / "faults" / "squat30.mp4").read_bytes())
    frames = folder / "frames"
    frames.mkdir()
    with av.open(str(video)) as container:
        for index, frame in zip(range(2), container.decode(video=0)):
            cv2.imwrite(str(frames / f"{index:06d}.png"), frame.to_ndarray(format="bgr24"))
    return video, frames


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("source, outputs, refusal", [
    ("session.mp4", ["-o", "session.mp4"], "-o is the input file"),
    ("session.mp4", ["-o", "x.mp4", "--metrics", "frames/../session.mp4"], "--metrics is the input file"),
    ("session.mp4", ["-o", "x.mp4", "--exercise", "squat", "--summary", "link.mp4"], "--summary is the input file"),
    ("session.mp4", ["-o", "hard.mp4"], "-o is the input file"),
    ("frames", ["-o", "x.mp4", "--labels-dir", "./frames"], "--labels-dir is the input folder"),
    ("session.mp4", ["-o", "m.mp4", "--metrics", "m.mp4"], "-o and --metrics are the same file"),
    ("session.mp4", ["-o", "m.mp4", "--labels-dir", "labels", "--metrics", "link-to-m.jsonl"],
     "-o and --metrics are the same file"),
], ids=["-o", "relative --metrics", "symlinked --summary", "hard-linked -o", "--labels-dir", "two outputs",
        "two outputs through a symlink"])
def test_an_output_on_the_input_or_on_another_output_is_refused_before_anything_is_written(
        media_dir, tmp_path, source, outputs, refusal):
    """The user's video (or frames folder) stays byte for byte as it was, and nothing is created."""
    _own_copy(media_dir, tmp_path)
    (tmp_path / "link.mp4").symlink_to(tmp_path / "session.mp4")
    os.link(tmp_path / "session.mp4", tmp_path / "hard.mp4")
    (tmp_path / "link-to-m.jsonl").symlink_to(tmp_path / "m.mp4")  # dangling: m.mp4 is not written yet
    before = _snapshot(tmp_path)
    run = _cli("process", source, *outputs, "--frames", "3", "--pose", "parser", "--device", "cpu", cwd=tmp_path)
    error = _assert_one_line_error(run, refusal)
    assert "details in" not in error
    assert _snapshot(tmp_path) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["session.mp4", "frames", "link.mp4", "hard.mp4", "link-to-m.jsonl"])


@pytest.mark.parametrize("start, turn, flag", [("400", "100", "--start-deg"), ("160", "-20", "--turn-deg"),
                                               ("abc", "100", "--start-deg")])
def test_a_custom_angle_outside_0_to_180_is_a_usage_error(single_clip, tmp_path, start, turn, flag):
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--exercise", "custom", "--joint",
               "left_knee", "--start-deg", start, "--turn-deg", turn, "--device", "cpu")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.splitlines() == [f"partsight: error: argument {flag}: expected a joint angle from 0 to 180 "
                                       f"degrees, not '{start if flag == '--start-deg' else turn}' "
                                       "(see 'partsight process --help')"]
    assert not list(tmp_path.iterdir())


def test_an_empty_output_path_is_refused_by_name(single_clip, tmp_path):
    run = _cli("process", str(single_clip), "-o", "", "--frames", "2", "--device", "cpu", cwd=tmp_path)
    assert _assert_one_line_error(run, "-o is empty: give a file name")
    assert not list(tmp_path.iterdir())


def test_an_unknown_option_points_at_its_commands_help(tmp_path):
    run = _cli("process", "clip.mp4", "-o", str(tmp_path / "out.mp4"), "--exercize", "squat")
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "partsight: error: unrecognized arguments: --exercize squat (see 'partsight process --help')"]
    assert not list(tmp_path.iterdir())


def test_an_image_folder_skips_its_unreadable_images_and_says_so(media_dir, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 7):
        (folder / f"{number}.jpg").write_bytes((media_dir / "faults" / "frames_unpadded" / f"{number}.jpg").read_bytes())
    (folder / "3.jpg").write_bytes((folder / "3.jpg").read_bytes()[:3000])  # a JPEG cut short
    (folder / "4.png").write_text("not a picture\n")
    (folder / "5.png").mkdir()  # a folder named like a frame is no frame
    # A whole JPEG with data after its end marker, as a phone's motion photo carries its video, is read.
    (folder / "7.jpg").write_bytes((folder / "6.jpg").read_bytes() + b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 40)
    png = cv2.imencode(".png", cv2.imread(str(folder / "6.jpg")))[1].tobytes()
    (folder / "8.png").write_bytes(png[:len(png) // 2])  # a PNG cut short: libpng says "Read Error" on stderr
    (folder / "9.jpg").symlink_to(tmp_path / "moved-away.jpg")
    (folder / "10.png").write_bytes(b"")  # cv2.imdecode raised on no bytes, in the capture thread
    out, labels, summary = tmp_path / "out.mp4", tmp_path / "labels", tmp_path / "summary.json"
    run = _cli("process", str(folder), "-o", str(out), "--labels-dir", str(labels), "--size", "180x320",
               "--pose", "parser", "--max-people", "1", "--device", "cpu", "--exercise", "squat",
               "--summary", str(summary))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    skipped = ["3.jpg", "4.png", "8.png", "9.jpg", "10.png"]
    assert run.stderr.splitlines() == [
        *(f"partsight: warning: {folder / name} is not a readable image; skipped" for name in skipped),
        f"partsight: error: 5 unreadable images skipped (3.jpg, 4.png, 8.png, ...); the other 6 frames are in {out}"]
    assert len(_decoded(out)) == 6
    assert sorted(path.name for path in labels.iterdir()) == [f"{index:06d}.png" for index in (0, 1, 3, 5, 6, 7)]
    assert json.loads(summary.read_text())["source"]["unreadable"] == skipped


@pytest.mark.parametrize("command, frames", [(["eval", "flicker"], 3), (["pose-quality"], 3),
                                             (["bench", "--frames", "4", "--warmup", "1"], 4)])
def test_a_report_on_an_image_folder_ends_with_process_words_for_its_unreadable_images(media_dir, tmp_path,
                                                                                        command, frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 5):
        (folder / f"{number}.jpg").write_bytes((media_dir / "faults" / "frames_unpadded" / f"{number}.jpg").read_bytes())
    (folder / "2.jpg").write_bytes((folder / "2.jpg").read_bytes()[:3000])
    run = _cli(*command, str(folder), "--pose", "parser", "--max-people", "1", "--device", "cpu")
    assert run.returncode == 1 and run.stderr.splitlines() == [
        f"partsight: warning: {folder / '2.jpg'} is not a readable image; skipped",
        f"partsight: error: 1 unreadable image skipped (2.jpg); the report covers the other {frames} frames"], run.stderr
    report = json.loads(run.stdout)
    assert (report["frames"], report["unreadable"]) == (frames, ["2.jpg"])


def test_a_folder_run_answers_for_the_frames_it_took_and_loops(media_dir, tmp_path):
    """With --frames, an unreadable image the capture thread read past the last frame taken is no
    loss (exit 0, no warning); one before it is. With --loop the folder plays again, times running on (it
    played once and ended, silently)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 11):
        (folder / f"{number}.jpg").write_bytes((media_dir / "faults" / "frames_unpadded" / f"{number}.jpg").read_bytes())
    (folder / "7.jpg").write_bytes((folder / "7.jpg").read_bytes()[:3000])
    options = ("--size", "180x320", "--pose", "parser", "--max-people", "1", "--device", "cpu")
    within = _cli("process", str(folder), "-o", str(tmp_path / "five.mp4"), "--frames", "5", *options)
    assert within.returncode == 0 and "7.jpg" not in within.stderr, within.stderr  # not even warned of
    past = _cli("process", str(folder), "-o", str(tmp_path / "seven.mp4"), "--frames", "7", *options)
    assert past.returncode == 1 and past.stderr.splitlines()[-1] == (
        f"partsight: error: 1 unreadable image skipped (7.jpg); the other 7 frames are in {tmp_path / 'seven.mp4'}")
    metrics = tmp_path / "loop.jsonl"
    looped = _cli("process", str(folder), "-o", str(tmp_path / "loop.mp4"), "--metrics", str(metrics),
                  "--frames", "20", "--loop", *options)
    assert looped.returncode == 1, looped.stderr  # 7.jpg was passed over
    times = [json.loads(line)["pts_s"] for line in metrics.read_text().splitlines()]
    assert len(times) == len(_decoded(tmp_path / "loop.mp4")) == 20
    assert times == sorted(times) and len(set(times)) == 20 and times[9] == pytest.approx(10 / 30)


@pytest.mark.parametrize("args, status, words", [
    (["process", "{clip}", "-o", "{out}.mp4", "--size", "abc"], 2,
     "argument --size: size must look like 640x480, not 'abc' (see 'partsight process --help')"),
    (["bench", "{clip}", "--size", "640"], 2, "argument --size: size must look like 640x480, not '640'"),
    (["process", "{clip}", "-o", "{out}.mp4", "--size", "100000x100000"], 2,
     "argument --size: size 100000x100000 has a side over 8192 pixels (8K)"),
    (["bench", "{clip}", "--frames", "1"], 2, "argument --frames: expected a whole number of at least 2, not '1'"),
    (["process", "{clip}", "-o", "{out}.mp4", "--fps", "inf"], 2, "argument --fps: expected a positive number, not 'inf'"),
    (["eval", "flicker", "{clip}", "--size", "0x1"], 2, "(see 'partsight eval flicker --help')"),
    (["process", "{clip}", "-o", "{out}.mp4", "--loop"], 2,
     "--loop needs --frames: a looped file never ends (see 'partsight process --help')"),
    (["bench", "{clip}", "--exercise", "squat", "--angles", "3d", "--pose", "parser"], 2,
     "--angles 3d needs BlazePose's 3-D world landmarks (--pose auto), not --pose parser (see 'partsight bench --help')"),
    (["process", "{clip}", "-o", "{out}.mp4", "--angles", "3d"], 2,
     "--angles needs --exercise: the joint angles are measured for the repetitions (see 'partsight process --help')"),
    (["batch", "{clip}", "--out", "{out}", "--angles", "2d"], 2, "--angles needs --exercise"),
    (["process", "{clip}", "-o", "{out}.mp4", "--exercise", "custom", "--joint", "left_knee", "--start-deg", "100",
      "--turn-deg", "100"], 2, "start and turn angles must differ (see 'partsight process --help')"),
    (["process", "{clip}", "-o", "{out}.avi"], 2,
     "argument -o/--output: the annotated video is an MP4: give a name ending in .mp4, not '"),
    (["eval", "part-iou", "{clip}", "--parts", "top-down"], 2,
     "unrecognized arguments: --parts top-down (see 'partsight eval part-iou --help')"),
    (["batch", "{clip}", "--out", "{out}", "--joint", "left_knee"], 2,
     "--joint needs --exercise (see 'partsight batch --help')"),
    (["eval", "jitter", "{clip}", "--frames", "1"], 2,
     "argument --jitter-frames/--frames: expected a whole number of at least 2, not '1' (see 'partsight eval jitter --help')"),
    (["eval", "flicker", "{clip}", "--frames", "1"], 2,
     "argument --frames: expected a whole number of at least 2, not '1' (see 'partsight eval flicker --help')"),
    (["serve", "--host", "0.0.0.0"], 2, "lets other machines call the service"),
    (["process", "{clip}", "-o", "{out}.mp4", "--dtyp", "fp32"], 2,
     "unrecognized arguments: --dtyp fp32 (see 'partsight process --help')"),
    (["eval", "person-iou", "--bogus"], 2, "unrecognized arguments: --bogus (see 'partsight eval person-iou --help')"),
    (["weights", "fetch", "bodypix", "--bogus"], 2, "(see 'partsight weights fetch --help')"),
    (["process", "{out}-in.mp4", "-o", "{out}.mp4"], 1, "no such file"),
    (["process", "{clip}", "-o", "{out}.mp4", "--metrics", "-"], 2,
     "argument --metrics: writing to standard output ('-') is not supported, as it carries the run's own lines: give "
     "a file name (see 'partsight process --help')"),
    (["process", "{clip}", "-o", "{out}.mp4", "--exercise", "squat", "--summary", "-"], 2,
     "argument --summary: writing to standard output ('-') is not supported"),
    (["process", "{clip}", "-o", "{out}.mp4", "--labels-dir", "-"], 2,
     "argument --labels-dir: writing to standard output ('-') is not supported, as it carries the run's own lines: "
     "give a folder name (see 'partsight process --help')"),
    (["process", "-", "-o", "{out}.mp4"], 1, "reading standard input ('-') is not supported: give a video file"),
    (["process", "", "-o", "{out}.mp4"], 2, "SOURCE is empty: give a video file, image folder, webcam index or URL"),
    (["process", "{out}-" + "a" * 300, "-o", "{out}.mp4"], 1, "a" * 300 + ": File name too long"),
    (["process", "~partsight-no-such-user/a.mp4", "-o", "{out}.mp4"], 1,
     "~partsight-no-such-user/a.mp4: no such user, so no home folder to start from"),
    (["eval", "flicker", " "], 2, "SOURCE is empty"),
    (["batch", "{clip}", "", "--out", "{out}"], 2, "an INPUT is empty"),
])
def test_usage_errors_exit_2_and_input_errors_1_in_every_command(single_clip, tmp_path, args, status, words):
    """Nothing is written, in the working folder either (where '-' would be a file)."""
    run = _cli(*(arg.format(clip=single_clip, out=tmp_path / "out") for arg in args), cwd=tmp_path)
    lines = run.stderr.splitlines()
    assert run.returncode == status and len(lines) == 1 and lines[0].startswith("partsight: error: "), run.stderr
    assert words in lines[0]
    assert not list(tmp_path.iterdir())


def test_the_window_and_process_list_the_same_exercises():
    """`gui --exercise` takes the presets `process --exercise` lists (not "custom": the window's picker
    has none), named in its help and checked as the command line is read (its help named none, and
    a bad name failed only once the engine had loaded)."""
    from realtime.analysis.exercises import PRESETS

    def exercise_help(command: str) -> str:
        text = " ".join(_cli(command, "--help", env={**os.environ, "COLUMNS": "1000"}).stdout.split())  # unwrapped
        return text.split("--exercise EXERCISE ", 1)[1].split(" --", 1)[0]

    presets = f"{', '.join(list(PRESETS)[:-1])} or {list(PRESETS)[-1]}"
    assert exercise_help("gui") == f"count repetitions of this preset from the start: {presets}"
    assert exercise_help("process").startswith(f"count repetitions: {', '.join(PRESETS)} or custom")
    for name in ("dance", "custom"):
        run = _cli("gui", "--exercise", name)
        assert run.returncode == 2 and run.stderr.splitlines() == [
            f"partsight: error: argument --exercise: invalid choice: '{name}' (choose from "
            f"{', '.join(repr(preset) for preset in PRESETS)}) (see 'partsight gui --help')"], run.stderr


@pytest.mark.parametrize("module, signal_name", [("torch", "SIGINT"), ("realtime.cli", "SIGINT"), ("av", "SIGINT"),
                                                 ("torch", "SIGTERM"), ("realtime.cli", "SIGTERM")])
def test_a_stop_signal_while_the_engine_loads_is_one_line(single_clip, tmp_path, module, signal_name):
    """A real SIGINT (or SIGTERM, which stops a command the same way) the moment `module` starts
    loading (the first seconds of any command): the entry point says so in one line, no
    traceback; importing the entry point itself loads none of it, so main.py and the console
    script reach that handler first. (SIGTERM in those seconds killed the command silently.) The
    exit status is 128 + the signal, as a shell reports it: 130 for SIGINT, 143 for SIGTERM."""
    script = f"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also when run in the background
from gui.cli import main
assert not {{"torch", "realtime.cli", "av"}} & set(sys.modules), "the entry point loads the engine at import"
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{signal_name})
        return None
sys.meta_path.insert(0, CtrlC())
sys.exit(main(["process", {str(single_clip)!r}, "-o", {str(tmp_path / "out.mp4")!r}, "--device", "cpu"]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=MAIN.parent)
    assert (run.returncode, run.stderr) == (128 + getattr(signal, signal_name), "partsight: interrupted\n"), run.stderr
    assert not (tmp_path / "out.mp4").exists()


def _file_size_limit(limit_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_a_disk_that_fills_up_mid_recording_keeps_what_was_written(single_clip, tmp_path):
    """The job ends where its recording failed (it went on to the clip's end, its summary counting
    frames none of its files held) and says so, its summary written whole."""
    video, metrics, summary = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "summary.json"
    # any file reaching the limit fills the disk: with BlazePose's landmarks a JSONL line of this
    # clip is ~13 kB (~4 kB without), so 600 kB is ~45 lines, past the MP4's first 30-frame fragment
    run = _cli("process", str(single_clip), "-o", str(video), "--metrics", str(metrics), "--size", "360x640",
               "--exercise", "squat", "--summary", str(summary), "--device", "cpu",
               preexec_fn=_file_size_limit(600_000))
    message = _assert_one_line_error(run, "recording to", "(the recording stopped after ",
                                     f" frames: {video} plays those that reached the disk)")
    assert "File too large" in message or "no space left on device" in message.lower(), message
    lines = metrics.read_text().splitlines()
    assert all(json.loads(line)["index"] == i for i, line in enumerate(lines))
    playable = _playable_frames(video)
    print(f"the disk filled up after {len(lines)} JSONL lines; the MP4 plays {playable} frames")
    assert playable >= 30, "the fragments written before the disk filled up play"
    analysed = json.loads(summary.read_text())["people"]["0"]["frames"]
    assert analysed <= len(lines) + 30 < 100, "the job went on after its recording failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.mp4", "summary.json"]


def test_a_summary_cut_short_by_a_full_disk_leaves_the_earlier_one_whole(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text('{"an": "earlier run"}\n')
    script = (f"from realtime.job import write_summary\n"
              f"write_summary({str(summary)!r}, {{'frames': ['x' * 1000] * 2000}})")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=MAIN.parent, preexec_fn=_file_size_limit(600_000))
    assert run.returncode == 1 and "File too large" in run.stderr, run.stderr
    assert json.loads(summary.read_text()) == {"an": "earlier run"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"], "a cut-off temporary file was left"


def test_a_summary_through_a_symbolic_link_writes_the_linked_file_with_its_mode(tmp_path):
    from realtime.job import write_summary

    (tmp_path / "real").mkdir()
    linked, link, plain = tmp_path / "real" / "s.json", tmp_path / "s.json", tmp_path / "plain.json"
    linked.write_text("{}")
    link.symlink_to(linked)
    plain.write_text("{}")
    plain.chmod(0o600)
    write_summary(str(link), {"reps": 2})
    write_summary(str(plain), {"reps": 3})
    assert link.is_symlink() and json.loads(linked.read_text()) == {"reps": 2}
    assert json.loads(plain.read_text()) == {"reps": 3} and plain.stat().st_mode & 0o777 == 0o600


def test_the_live_view_goes_on_when_the_disk_is_full(single_clip, tmp_path):
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), size=(180, 320), device="cpu", max_people=1))
    results = []
    pipeline.subscribe(lambda r: results.append(r.frame.index))
    recorder = pipeline.start_recording(tmp_path / "out.mp4", metrics_path="/dev/full")
    pipeline.start()
    try:
        assert pipeline.wait(120)
    finally:
        pipeline.stop()
    assert results == list(range(100)), "every frame was still parsed and delivered"
    assert "No space left on device" in recorder.error and pipeline.error == f"{recorder.error}"
    assert not pipeline.recording
    assert not engine_threads(), "the failed recorder's thread ended"


def test_full_disk_for_the_metrics_is_one_line_from_the_cli(single_clip, tmp_path):
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "out.mp4"), "--metrics", "/dev/full",
               "--frames", "5", "--device", "cpu")
    out = tmp_path / "out.mp4"
    _assert_one_line_error(run, "recording to /dev/full failed: No space left on device",
                           f"(the recording stopped after 1 frame: {out} plays those that reached the disk)")
    assert len(_decoded(out)) == 1, "the MP4 holds the frame whose JSONL line could not be written"
    assert Path("/dev/full").is_char_device(), "the device is never removed"


# --- weights -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pickled_code_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint whose unpickling would run a shell command that creates a marker file."""
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = folder / "model.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(2)}, "extra": RunsCode()}, path)
    return path, marker


@pytest.mark.parametrize("model", ["schp-lip", "m2fp-lip", "uniparser-cihp"])
def test_a_checkpoint_that_carries_code_is_refused(pickled_code_checkpoint, tmp_path, single_clip, model):
    path, marker = pickled_code_checkpoint
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--model", model, "--weights", str(path),
               "--device", "cpu")
    error = _assert_one_line_error(run, "was refused", "pickled code", "'posix.system'", "no plain checkpoint",
                                   "could run code")
    assert "weights_only" not in run.stderr and "Warning" not in run.stderr, "torch's words stay off the console"
    assert not marker.exists(), "the pickled command ran"


def test_a_plain_pickle_given_as_a_checkpoint_is_refused_in_our_words(tmp_path, single_clip):
    """A pickle written by pickle.dumps (protocol 4), not torch.save: torch's text around it (a
    warning about the protocol, advice to load it with weights_only=False) stays off the console."""
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": {"conv.weight": RunsCode()}}, protocol=4))
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--model", "schp-lip",
               "--weights", str(path), "--device", "cpu")
    error = _assert_one_line_error(run, f"{path} was refused", "other than tensors", "no plain checkpoint",
                                   "could run code")
    assert run.stderr.strip() == error, "one line, the error alone"
    assert "weights_only" not in error and "torch.load" not in error
    assert not marker.exists(), "the pickled command ran"


def test_truncated_weights_are_refused_by_sha256(tmp_path, weights_dir, single_clip):
    cache = tmp_path / "cache"
    cache.mkdir()
    name = "bodypix-mobilenetv1-050-stride16.onnx"
    (cache / name).write_bytes((weights_dir / name).read_bytes()[:100_000])
    for other in weights_dir.glob("mediapipe-*.tflite"):  # the default stages' own weights, intact
        (cache / other.name).symlink_to(other)
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--device", "cpu",
               env={**os.environ, "PARTSIGHT_WEIGHTS_DIR": str(cache)})
    _assert_one_line_error(run, "failed its sha256 check", "truncated or altered", "weights fetch")


def test_truncated_files_given_with_weights_are_one_line(tmp_path, weights_dir, single_clip, pickled_code_checkpoint):
    onnx_cut = tmp_path / "my-bodypix.onnx"  # another name: no pinned sha256 to compare with
    onnx_cut.write_bytes((weights_dir / "bodypix-mobilenetv1-050-stride16.onnx").read_bytes()[:1_000_000])
    with pytest.raises(Exception, match="not a readable ONNX model: truncated, damaged or another kind of file"):
        load_parser("bodypix", device="cpu", weights=onnx_cut)
    checkpoint_cut = tmp_path / "my-schp.pth"
    checkpoint_cut.write_bytes(pickled_code_checkpoint[0].read_bytes()[:300])
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--model", "schp-lip",
               "--weights", str(checkpoint_cut), "--device", "cpu")
    _assert_one_line_error(run, "not a readable PyTorch checkpoint")


@pytest.mark.parametrize("name, content", [("settings.json", b'{"schema": 1}\n'), ("empty.onnx", b"")])
def test_a_file_that_is_no_onnx_model_given_with_weights_says_so(tmp_path, name, content):
    """onnx.load reads a .json name as protobuf JSON text ('has no field named "schema"'), and
    takes a zero-byte file for an empty model."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=f"^{path} is not (a readable|an) ONNX model"):
        load_parser("bodypix", device="cpu", weights=path)


@pytest.mark.parametrize("name, content", [("settings.json", b'{"schema": 1}\n'), ("empty.pth", b"")])
def test_a_file_that_is_no_checkpoint_given_with_weights_says_so(tmp_path, name, content):
    """torch.load took a JSON file for a pickle and the message said it carried pickled code."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=f"^{path} is not a PyTorch checkpoint: (another kind of file|it is empty)"):
        load_parser("schp-lip", device="cpu", weights=path)


def test_missing_weights_say_how_to_get_them(tmp_path, single_clip, weights_dir):
    """Every file the run needs and lacks is named in the one line (it named the first it tried to
    load, and the user fixing them one at a time ran it again for each)."""
    from realtime.models.registry import weight_files

    empty = tmp_path / "empty"
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--device", "cpu",
               env={**os.environ, "PARTSIGHT_WEIGHTS_DIR": str(empty)})
    needed = ["bodypix", "blazepose-detector", "blazepose-full", "selfie"]
    _assert_one_line_error(run, f"4 weights files are missing from {empty}: run 'partsight weights fetch NAME' "
                                "for each of " + ", ".join(f"{name} ({weight_files()[name][1].filename})"
                                                           for name in needed),
                           "(or set PARTSIGHT_WEIGHTS_DIR to a folder holding them)")
    empty.mkdir()
    for name in needed[1:]:  # the last one missing: named with where to download it
        file = weight_files()[name][1].filename
        (empty / file).symlink_to(weights_dir / file)
    run = _cli("process", str(single_clip), "-o", str(tmp_path / "o.mp4"), "--device", "cpu",
               env={**os.environ, "PARTSIGHT_WEIGHTS_DIR": str(empty)})
    _assert_one_line_error(run, f"the weights file {weight_files()['bodypix'][1].filename} is missing: run "
                                "'partsight weights fetch bodypix', or download https://", "PARTSIGHT_WEIGHTS_DIR")


def test_part_iou_names_a_label_value_outside_the_label_set():
    from _paths import datasets_dir

    run = _cli("eval", "part-iou", str(datasets_dir() / "lip"), "--device", "cpu", "--pose", "parser")
    error = _assert_one_line_error(run, "is not a class of --labels pascal-person-part (0-6); "
                                        "its values fit --labels lip")
    assert int(error.split("label value ")[1].split()[0]) > 6


def test_part_iou_says_a_colour_label_image_is_no_part_labelling():
    """ccp_dev's labels are palette PNGs of a person mask (OpenCV reads them as colours)."""
    from _paths import datasets_dir

    run = _cli("eval", "part-iou", str(datasets_dir() / "ccp_dev"), "--device", "cpu", "--pose", "parser")
    _assert_one_line_error(run, "ann_0002.png: a colour or palette image, not a single-channel label image of "
                                "class ids (grey values); person masks are for eval person-iou")


@pytest.mark.parametrize("unbuffered", ["1", None])
def test_a_reader_that_closes_stdout_ends_the_command_quietly(unbuffered):
    """Exit status 0, as when the reader (`| head -1`) leaves after the last line: which of the two
    happens is timing. A line-buffered stdout (PYTHONUNBUFFERED) met the closed pipe in a print
    (exit status 1); a block-buffered one in the interpreter's last flush (120, with a complaint)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes its first line (`| head -0`)
    with os.fdopen(write, "wb") as stdout:
        run = subprocess.run([sys.executable, str(MAIN), "weights", "list"], stdout=stdout, stderr=subprocess.PIPE,
                             text=True, timeout=120, env=env)
    assert run.returncode == 0 and run.stderr == ""


def test_a_webcam_that_never_opens_is_one_line(tmp_path):
    run = _cli("process", "57", "-o", str(tmp_path / "o.mp4"), "--device", "cpu")
    _assert_one_line_error(run, "webcam 57 is not connected")


def test_a_path_holding_a_line_break_stays_whole_in_the_one_line_error(tmp_path):
    """The line break is written as \\n: the error stays one line, and its reason, after the path,
    is not cut off."""
    missing, damaged = tmp_path / "a\nb.mp4", tmp_path / "c\r\nd.mp4"
    damaged.write_bytes(b"not a video")
    run = _cli("process", str(missing), "-o", str(tmp_path / "o.mp4"))
    _assert_one_line_error(run, f"{tmp_path}/a\\nb.mp4: no such file")
    run = _cli("process", str(damaged), "-o", str(tmp_path / "o.mp4"))
    _assert_one_line_error(run, f"cannot open {tmp_path}/c\\r\\nd.mp4: it is not a video PartSight can read")
    run = _cli("process", str(damaged), "-o", str(damaged))
    _assert_one_line_error(run, f"({tmp_path}/c\\r\\nd.mp4); choose another path for the output")
    run = _cli("process", str(damaged), "-o", str(tmp_path / "o.mp4"), "--no\nsuch")
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "partsight: error: unrecognized arguments: --no\\nsuch (see 'partsight process --help')"], run.stderr
