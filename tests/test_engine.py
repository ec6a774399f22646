"""The engine end to end: sources, pipeline threads, recorder, `process` and `bench`."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import engine_threads, read_frames

from realtime.cli import main
from realtime.config import PipelineConfig
from realtime.models import load_parser
from realtime.pipeline import PACED_IN_FLIGHT, Pipeline
from realtime.reconnect import Backoff
from realtime.sources import PyAVReader, Source, SourceError, WebcamProbe, open_source, redact_url
from realtime.stages import ResultStage


def _decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    return frames


pytestmark = pytest.mark.usefixtures("engine_threads_joined")


@pytest.fixture(scope="module")
def processed(tmp_path_factory, single_clip):
    out = tmp_path_factory.mktemp("process")
    code = main(["process", str(single_clip), "-o", str(out / "out.mp4"), "--metrics", str(out / "out.jsonl"),
                 "--labels-dir", str(out / "labels"), "--smoothing", "0", "--person-mask", "parser"])  # the parser's own labels
    assert code == 0
    return out


def test_process_writes_a_video_with_every_frame_and_the_source_timing(processed, single_clip):
    source = _decoded(single_clip)
    written = _decoded(processed / "out.mp4")
    assert len(written) == len(source) == 100
    frame_s = 1 / 60
    assert abs(written[-1].time - source[-1].time) <= frame_s + 1e-6
    assert abs(written[0].time - source[0].time) <= frame_s + 1e-6
    assert (written[0].width, written[0].height) == (source[0].width, source[0].height)


def test_process_writes_one_metrics_line_per_frame(processed):
    lines = (processed / "out.jsonl").read_text().splitlines()
    assert len(lines) == 100
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == list(range(100))
    assert records[-1]["pts_s"] == pytest.approx(99 / 60, abs=1e-3)
    for record in records:
        assert set(record["timings_ms"]) >= {"decode", "preprocess", "infer", "postprocess", "render", "encode"}
        assert len(record["keypoints"]) == 17
        assert sum(record["areas"].values()) > 10_000


def test_label_pngs_put_person_pixels_where_the_person_is(processed, single_clip, bodypix):
    pngs = sorted((processed / "labels").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(100)]
    frames = read_frames(single_clip, [10, 70])
    for index, frame in zip([10, 70], frames):
        labels = cv2.imread(str(processed / "labels" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == frame.shape[:2] and labels.dtype == np.uint8
        assert labels.max() <= 24
        parsed_copy = cv2.resize(frame, (540, 960), interpolation=cv2.INTER_AREA)  # --parse-side 960's copy
        direct = bodypix.parse(parsed_copy).scaled_to(frame.shape[1::-1]).person_mask
        person = labels > 0
        iou = (person & direct).sum() / (person | direct).sum()
        assert iou > 0.95


def test_annotated_video_shows_part_colours_on_the_person(processed, single_clip):
    source = read_frames(single_clip, [50])[0].astype(int)
    written = _decoded(processed / "out.mp4")[50].to_ndarray(format="rgb24").astype(int)
    labels = cv2.imread(str(processed / "labels" / "000050.png"), cv2.IMREAD_UNCHANGED)
    person = labels > 0
    change = np.abs(written - source).sum(axis=2)
    assert change[person].mean() > 3 * change[~person].mean()


def test_newest_frame_policy_keeps_latency_bounded_with_a_slow_parser(single_clip):
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), pacing="realtime", size=(320, 568), max_people=1))
    parser = pipeline.parser
    parser.parse(np.zeros((568, 320, 3), np.uint8))  # its graph built (and its backend chosen) before the clip runs
    slow_infer = parser.infer

    def slower(batch, *args, **kwargs):
        time.sleep(0.08)  # the parser now runs far below the clip's 60 fps
        return slow_infer(batch, *args, **kwargs)

    parser.infer = slower
    indices, queued = [], []  # per result: its frame's index; frames in flight and in the source's buffer
    pipeline.subscribe(lambda r: (indices.append(r.frame.index), queued.append((pipeline.in_flight, pipeline.source.buffered))))
    pipeline.start()
    assert pipeline.wait(60)
    source = pipeline.source
    pipeline.stop()
    assert not pipeline.source_info.live, "a file played in real time is still a file"
    assert 2 <= len(indices) < 60, "frames were dropped, not queued"
    assert pipeline.stats.dropped > 30
    print(f"{len(indices)} frames delivered, {pipeline.stats.dropped} dropped of {source.frames_read}; "
          f"most queued (in flight, buffered) {max(queued)}")
    assert indices == sorted(set(indices)) and indices[-1] == source.frames_read - 1 == 99, "the newest frame is taken"
    assert len(indices) + pipeline.stats.dropped == source.frames_read, "a frame not delivered was dropped, not kept"
    assert all(flight <= min(PACED_IN_FLIGHT, pipeline.step_threads) and buffered <= 1 for flight, buffered in queued), \
        f"latency grows with what waits: {max(queued)}"
    assert not engine_threads()


def test_file_processing_drops_nothing_even_when_slow(single_clip):
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), size=(180, 320), buffer_frames=2, max_people=1))
    seen = []
    pipeline.subscribe(lambda r: (seen.append(r.frame.index), time.sleep(0.005)))
    pipeline.start()
    assert pipeline.wait(60)
    pipeline.stop()
    assert seen == list(range(100))
    assert pipeline.stats.dropped == 0


def test_stop_mid_run_joins_every_thread(single_clip, tmp_path):
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), size=(180, 320), max_people=1))
    pipeline.start_recording(tmp_path / "partial.mp4")
    pipeline.start()
    time.sleep(1.0)
    pipeline.stop()
    assert not engine_threads()
    assert len(_decoded(tmp_path / "partial.mp4")) > 0


def test_switching_source_while_running(single_clip, media_dir):
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), size=(180, 320), max_people=1))
    names = set()
    pipeline.subscribe(lambda r: names.add(pipeline.stats.source))
    pipeline.start()
    time.sleep(0.5)
    pipeline.switch_source(str(media_dir / "cg-mannequin-squat.mp4"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any("squat" in n for n in names):
        time.sleep(0.1)
    pipeline.stop()
    assert any("squat" in n for n in names)
    assert not engine_threads()


def test_a_source_whose_path_cannot_be_looked_at_is_shown_and_the_engine_goes_on(single_clip, tmp_path):
    """A name too long for the file system made `is_dir` raise OSError on the inference thread,
    which died: no error was shown and the window stayed on "playing"."""
    too_long = str(tmp_path / ("a" * 300))
    pipeline = Pipeline(PipelineConfig(source=str(single_clip), size=(180, 320), max_people=1))
    pipeline.start()
    pipeline.switch_source(too_long)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pipeline.source_switches < 1:
        time.sleep(0.05)
    assert pipeline.error == pipeline.source_error == f"{too_long}: File name too long"
    names = set()
    pipeline.subscribe(lambda r: names.add(pipeline.stats.source))
    pipeline.switch_source(str(single_clip))  # the inference thread still takes commands
    while time.monotonic() < deadline and not names:
        time.sleep(0.05)
    pipeline.stop()
    assert names == {str(single_clip)} and pipeline.source_error is None


def test_folder_source_reads_an_image_sequence(tmp_path, single_frames):
    for i, frame in enumerate(single_frames):
        cv2.imwrite(str(tmp_path / f"img{i:03d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    source = open_source(str(tmp_path))
    info = source.start()
    frames = [source.read(5) for _ in single_frames]
    source.stop()
    assert info.frame_count == len(single_frames) and not info.live
    assert [f.index for f in frames] == list(range(len(single_frames)))
    assert frames[1].pts_s == pytest.approx(1 / 30)


def test_missing_source_is_a_one_line_error(tmp_path, capsys):
    assert main(["process", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("partsight: error:") and len(err.strip().splitlines()) == 1


def test_unopenable_webcam_fails_fast():
    source = open_source("57")
    before = set(engine_threads())
    with pytest.raises(SourceError, match="webcam 57"):
        source.start()
    assert set(engine_threads()) <= before


def test_a_webcam_probe_that_hangs_is_left_out_and_joined_at_close(tmp_path, caplog):
    """A device whose open hangs (a FIFO: OpenCV waits for a writer) is not found while it
    hangs; `close(timeout_s)` gives up on it after the timeout and names it (close waited for
    the open for ever, and so did the window's exit, Ctrl-C and SIGTERM included: an open cannot
    be interrupted); its thread stays tracked and `close()` joins it once the open returns."""
    device = tmp_path / "video-that-hangs"
    os.mkfifo(device)
    probe = WebcamProbe([str(device)])
    time.sleep(0.5)
    assert not probe.done and probe.found() == [] and engine_threads() == ["partsight-webcam-probe"]
    with caplog.at_level(logging.WARNING, logger="realtime.sources"):
        assert probe.close(timeout_s=0.2) == [str(device)]
    assert not probe.done and f"webcam probe: {device} still opening after 0.2 s" in caplog.text
    closing = threading.Thread(target=probe.close)
    closing.start()
    closing.join(0.5)
    assert closing.is_alive(), "close waits for the open still hanging"
    deadline = time.monotonic() + 30
    while closing.is_alive() and time.monotonic() < deadline:  # each backend OpenCV tries opens it again
        with contextlib.suppress(OSError):  # no reader at this moment
            os.close(os.open(device, os.O_WRONLY | os.O_NONBLOCK))
        closing.join(0.02)
    assert not closing.is_alive() and probe.done and probe.found() == [] and not engine_threads()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists the open files in /proc/self/fd")
def test_a_webcam_probe_holds_no_device_open_once_it_answered(media_dir):
    """Each probe releases its capture as soon as it knows whether the device opens: a device it
    found is not held open until the probe is closed or the process exits. A video file given
    as the device runs the same code (WebcamProbe._probe) as a webcam, which this machine lacks."""
    clip = str((media_dir / "pose2sim-single-cam01.mp4").resolve())
    probe = WebcamProbe([clip])
    assert probe.close(timeout_s=30) == [] and probe.done and probe.found() == [clip]
    opened = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since it was listed
            opened.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert clip not in opened


def test_credentials_are_redacted():
    assert redact_url("cannot open rtsp://admin:secret@10.0.0.5/live") == "cannot open rtsp://***@10.0.0.5/live"


def test_bench_prints_one_json_object(single_clip, capsys):
    assert main(["bench", str(single_clip), "--size", "320x240", "--frames", "20", "--record"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 20 and report["fps"] > 0
    assert report["input_size"] == "320x240" and report["model"] == "bodypix"
    assert report["backend"] in ("torch", "onnxruntime", "openvino")
    assert set(report["latency_ms"]) == {"p50", "p95"}
    assert set(report["stages_ms"]) == {"decode", "queue", "preprocess", "infer", "postprocess", "blazepose-torch",
                                        "selfie-mask", "track", "smooth", "render", "encode", "encode_queue",
                                        "handoff"}
    assert report["cpu_ms_per_frame"] > 0 and report["peak_rss_mb"] > 100


def test_bench_parser_compares_every_backend_on_the_same_graph(capsys):
    assert main(["bench-parser", "--repeats", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["size"] for row in report["sizes"]] == ["321x241", "449x337", "641x481"]
    assert report["backends"] == ["torch", "onnxruntime", "openvino"]
    for row in report["sizes"]:
        assert all(row[f"{name}_ms"] > 0 for name in ("parser", "torch", "onnxruntime", "openvino"))
        assert row["parser_backend"] in report["backends"]
        best_peer = min(row["onnxruntime_ms"], row["openvino_ms"])
        assert row["parser_over_best_peer"] == pytest.approx(row["parser_ms"] / best_peer, abs=2e-3)


def test_process_stops_after_the_requested_frames(single_clip, tmp_path):
    out = tmp_path / "ten.mp4"
    assert main(["process", str(single_clip), "-o", str(out), "--frames", "10", "--size", "180x320"]) == 0
    assert 10 <= len(_decoded(out)) < 20


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_success():
    backoff = Backoff(first_s=0.5, max_s=3.0)
    assert [backoff.next_delay_s() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay_s() == 0.5


def test_a_looped_file_runs_on_with_rising_indices_and_times(single_clip):
    source = open_source(str(single_clip), size=(90, 160), loop=True)
    info = source.start()
    try:
        frames = [source.read(10) for _ in range(230)]
    finally:
        source.stop()
    assert info.frame_count is None, "a looped file has no end"
    assert [f.index for f in frames] == list(range(230))
    times = [f.pts_s for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[100] - times[99] == pytest.approx(1 / 60, abs=1e-3), "the second pass follows the first"
    assert np.array_equal(frames[0].image, frames[100].image)


def test_max_side_scales_large_frames_down_with_their_aspect_and_never_up(single_clip, tmp_path):
    frames = {}
    for max_side in (320, 4000):
        source = open_source(str(single_clip), max_side=max_side)
        source.start()
        try:
            frames[max_side] = source.read(10)
        finally:
            source.stop()
    assert frames[320].size == (180, 320), "1080x1920 portrait fits 320 on its long side"
    assert frames[4000].size == (1080, 1920), "a frame smaller than the limit is left as it is"
    native = cv2.resize(frames[4000].image, (180, 320), interpolation=cv2.INTER_AREA)
    assert np.abs(native.astype(int) - frames[320].image.astype(int)).mean() < 4, "the same picture, smaller"
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), cv2.cvtColor(frames[4000].image, cv2.COLOR_RGB2BGR))
    source = open_source(str(still), size=(64, 48), max_side=320)
    source.start()
    try:
        assert source.read(10).size == (64, 48), "an exact --size wins over --max-side"
    finally:
        source.stop()


def test_process_with_max_side_records_the_smaller_copy(single_clip, tmp_path):
    out = tmp_path / "small.mp4"
    assert main(["process", str(single_clip), "-o", str(out), "--frames", "5", "--max-side", "480"]) == 0
    written = _decoded(out)
    assert len(written) == 5
    assert (written[0].width, written[0].height) == (270, 480)


class LateCamera(PyAVReader):
    """The clip as a camera whose first frame comes `first_s` after it opened (a stream sends its
    first key frame some time after the connection), then one every 1/30 s. No camera or stream
    server runs in the tests: the real reader decodes the real clip, only the wait is added."""

    def __init__(self, clip: Path, first_s: float) -> None:
        super().__init__(str(clip), live=True)
        self.first_s = first_s

    def frames(self, start_s: float | None = None):
        time.sleep(self.first_s)
        for frame in super().frames(start_s):
            yield frame
            time.sleep(1 / 30)


class Runs(ResultStage):
    """A result stage that notes what the pipeline runs it on: "warm-up", or a frame's index."""

    name = "runs"

    def __init__(self) -> None:
        self.runs = []

    def __call__(self, frame, parse):
        self.runs.append(frame.index)
        return parse

    def warm_up(self, frame, parse):
        self.runs.append("warm-up")
        return parse


def test_a_camera_whose_first_frame_comes_late_is_warmed_up_on_it_first(media_dir, monkeypatch):
    """The steps build their graphs on the camera's first frame before it is taken (Pipeline.warm_up),
    so the frames after it are not dropped while they do. A first frame that came while the worker
    waited in `read` rather than in `peek` (about half the time) skipped the warm-up: cameras whose
    first frame comes 0.4 to 0.6 s after the open, spread over one peek-and-read round."""
    parser = load_parser("bodypix", device="cpu", max_people=1)  # shared by the runs
    clip = media_dir / "faults" / "squat30.mp4"
    first_runs = {}
    for step in range(6):
        first_s = 0.4 + step * 0.035
        monkeypatch.setattr("realtime.pipeline.open_source",
                            lambda spec, *, playback, **_: Source(LateCamera(clip, first_s), playback=playback))
        runs = Runs()
        pipeline = Pipeline(PipelineConfig(source="camera", device="cpu", max_people=1), stages=[runs], parser=parser)
        delivered = threading.Event()
        pipeline.subscribe(lambda result: delivered.set())
        try:
            pipeline.start()
            assert delivered.wait(60), "no frame delivered"
        finally:
            pipeline.stop()
        first_runs[f"{first_s:.3f} s"] = runs.runs[0]
    assert set(first_runs.values()) == {"warm-up"}, f"the first frame went through cold steps: {first_runs}"
