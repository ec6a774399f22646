"""The steps after decoding on threads of their own (realtime.pipeline: consecutive frames
overlap), and large frames parsed on a smaller copy: the outputs equal one thread's, every frame
of a file in order, live sources keep at most two frames in flight, seeks drop what was read
before them, every thread is joined; the parse copy is the frame scaled, the results are scaled
back onto the frame. Real clips, real models."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import engine_threads

from realtime.build import build_pipeline, build_stages
from realtime.cli import main
from realtime.config import PipelineConfig
from realtime.geometry import parse_copy_size
from realtime.job import JobOutputs, run_job
from realtime.pipeline import PACED_IN_FLIGHT, Pipeline, step_groups
from realtime.sources import open_source
from realtime.types import ParseResult, PersonParse

pytestmark = pytest.mark.usefixtures("engine_threads_joined")

UNTIMED = ("timings_ms", "latency_ms")


@pytest.fixture(scope="module")
def squat30(media_dir: Path) -> Path:
    return media_dir / "faults" / "squat30.mp4"  # 192x424, 30 fps, 151 frames


def _processed(clip: Path, out: Path, *options: str) -> tuple[list[dict], list[Path]]:
    out.mkdir()
    assert main(["process", str(clip), "-o", str(out / "out.mp4"), "--metrics", str(out / "out.jsonl"),
                 "--labels-dir", str(out / "labels"), "--no-audio", *options]) == 0
    lines = [json.loads(line) for line in (out / "out.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in UNTIMED} for line in lines], sorted((out / "labels").glob("*.png"))


def _wait_for(seen: list, count: int, timeout_s: float = 120) -> None:
    """Waits until a subscriber has gathered `count` results (or `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _area(box: list[int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _frame_count(video: Path) -> int:
    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_overlapped_steps_write_what_one_thread_writes(squat30, tmp_path):
    """BlazePose's ROI tracking, the tracker and the smoother keep history: on their own threads
    they must still see every frame once, in order."""
    options = ("--pose", "blazepose-torch")
    one, one_labels = _processed(squat30, tmp_path / "one", *options, "--stage-threads", "1")
    many, many_labels = _processed(squat30, tmp_path / "many", *options, "--stage-threads", "0")
    assert [line["index"] for line in many] == list(range(151)), "every frame once, in order"
    assert many == one, "the same keypoints, areas and people"
    assert len(many_labels) == len(one_labels) == 151
    for a, b in zip(one_labels, many_labels):
        assert np.array_equal(cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED))
    assert _frame_count(tmp_path / "many" / "out.mp4") == 151


def test_one_thread_per_step_and_every_one_joined_on_stop(squat30):
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1)
    stages = build_stages(config)
    pipeline = build_pipeline(config, stages)
    assert pipeline.step_threads == len(stages.result) + 2, "the parser, each stage, the drawing"
    seen = []
    pipeline.subscribe(lambda result: seen.append(result.frame.index))
    pipeline.start()
    try:
        _wait_for(seen, 5)
        running = [t for t in threading.enumerate() if t.name.startswith("partsight-steps-")]
        assert len(running) == pipeline.step_threads - 1, "the first group runs on the inference thread"
    finally:
        pipeline.stop()
    assert not engine_threads(), [t.name for t in threading.enumerate()]
    assert seen == list(range(len(seen))), "frames in flight at the stop are delivered, in order"


def test_replacing_the_stages_while_running_drops_no_frame(squat30):
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1, person_mask="parser")
    stages = build_stages(config)
    pipeline = build_pipeline(config, stages)
    seen = []
    pipeline.subscribe(lambda result: seen.append((result.frame.index, tuple(result.timings_ms))))
    pipeline.start()
    try:
        _wait_for(seen, 20)
        before = pipeline.step_threads
        pipeline.set_stages([stage for stage in stages.result if stage is not stages.smoother])
        assert pipeline.wait(300)
        assert pipeline.step_threads == before - 1
    finally:
        pipeline.stop()
    assert [index for index, _ in seen] == list(range(151)), "every frame once, in order"
    assert "smooth" in seen[0][1] and "smooth" not in seen[-1][1]


def test_live_pacing_keeps_at_most_two_frames_in_flight(squat30):
    pipeline = build_pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1, pacing="realtime",
                                             loop=True))
    in_flight = []
    pipeline.subscribe(lambda result: in_flight.append(pipeline.in_flight))
    pipeline.start()
    try:
        _wait_for(in_flight, 30, timeout_s=300)
    finally:
        pipeline.stop()
    assert pipeline.step_threads > 2 and len(in_flight) >= 30
    assert max(in_flight) <= PACED_IN_FLIGHT, "a frame is taken only when a thread is about to be free"


def test_one_frame_warms_every_step_before_the_pipe_fills(squat30):
    """The steps build their graphs on their first frame: frames behind it would only wait."""
    pipeline = build_pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1))
    in_flight = []
    pipeline.subscribe(lambda result: in_flight.append(pipeline.in_flight))
    pipeline.start()
    try:
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    assert in_flight[0] == 1, "the first frame went through alone"
    assert max(in_flight) > PACED_IN_FLIGHT, "then a file fills the pipe"


def test_a_seek_while_playing_drops_the_frames_read_before_it(squat30):
    pipeline = build_pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1, smoothing=0.0,
                                             person_mask="parser"))
    seen = []
    pipeline.subscribe(lambda result: seen.append(result.frame))
    pipeline.start()
    try:
        _wait_for(seen, 10)
        pipeline.seek(4.0)  # frame 120; frames 10.. are in flight
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    indices = [frame.index for frame in seen]
    jump = next(i for i, frame in enumerate(seen) if frame.seeked)
    assert indices[jump:] == list(range(120, 151)), "from the seek on, every frame once, in order"
    assert indices[:jump] == list(range(jump)), "before it, in order"


def test_a_subscriber_that_raises_is_reported_and_the_run_goes_on_to_its_end(squat30, tmp_path):
    """A subscriber (`process`'s progress bar, a batch worker's count, serve's progress) that raised
    ended the last step thread: the frames behind it were never delivered, the thread before it
    blocked on a full queue and the run never finished (`process` hung until Ctrl-C). The error is
    the run's one line, every frame is written; the stop event only guards against the hang."""
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1, smoothing=0.0, person_mask="parser")

    def progress(result) -> None:
        if result.frame.index == 5:
            raise RuntimeError("the progress display is gone")

    hung = threading.Event()
    guard = threading.Timer(180, hung.set)
    guard.start()
    try:
        job = run_job(config, JobOutputs(video=str(tmp_path / "out.mp4"), metrics=str(tmp_path / "out.jsonl")),
                      on_result=progress, stop=hung)
    finally:
        guard.cancel()
        guard.join()
    assert not job.stopped, "the run hung after the subscriber's error"
    assert job.error == "delivering frame 5 failed: the progress display is gone"
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(151)) and job.frames == 151


def test_a_subscriber_that_raises_on_every_frame_starves_no_other_and_logs_its_traceback_once(squat30, caplog):
    """A subscriber failing on every frame (a progress display gone) stopped the frame's delivery
    there: the subscribers after it got no frame, and its traceback was logged for every frame
    (30 a second, for hours with a camera). The others get every frame; the traceback is logged
    once, the repeats at debug level."""
    pipeline = build_pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1, smoothing=0.0,
                                             person_mask="parser"))
    seen = []

    def gone(result) -> None:
        raise RuntimeError("the progress display is gone")

    pipeline.subscribe(gone)
    pipeline.subscribe(lambda result: seen.append(result.frame.index))
    caplog.set_level("DEBUG", logger="realtime.pipeline")
    pipeline.start()
    try:
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    assert seen == list(range(151)), "the subscriber after the failing one got every frame"
    assert pipeline.error == "delivering frame 150 failed: the progress display is gone"
    failures = [r for r in caplog.records if r.getMessage().startswith("delivering frame ")]
    assert [r.levelname for r in failures] == ["ERROR"] + ["DEBUG"] * 150, [r.levelname for r in failures][:3]
    assert failures[0].exc_info is not None


class Held:
    """A result stage that holds its first frame until `release` is set, and notes a close that
    came while it ran."""

    name = "held"

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.running = self.closed = self.closed_while_running = False

    def __call__(self, frame, parse):
        if not self.entered.is_set():
            self.running = True
            self.entered.set()
            self.release.wait(120)
            self.running = False
        return parse

    def warm_up(self, frame, parse):
        return parse

    def reset(self) -> None:
        pass

    def seek(self, position_s: float) -> None:
        pass

    def merge_people(self, new_id: int, into_id: int) -> None:
        pass

    def close(self) -> None:
        self.closed_while_running |= self.running
        self.closed = True


def test_a_stop_that_times_out_leaves_open_the_steps_a_running_thread_holds(squat30, caplog):
    """stop() closed every stage even when a thread it could not join within its timeout (Ctrl-C
    while a model builds its graphs on a busy machine) was still running one: closed under it. It
    stays open, and a later stop() joins the thread and closes it."""
    held = Held()
    pipeline = Pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1), stages=[held])
    pipeline.start()
    try:
        assert held.entered.wait(120)
        pipeline.stop(timeout_s=0.5)
        assert not held.closed, "closed while a thread ran it"
        assert "partsight-steps-1 did not end within 0.5 s of the stop" in caplog.text
    finally:
        held.release.set()
        pipeline.stop()
    assert held.closed and not held.closed_while_running
    assert not engine_threads(), [t.name for t in threading.enumerate()]


def test_step_groups_cut_the_steps_in_order():
    stages = [object(), object(), object()]
    one, = step_groups(stages, 1)
    assert one.parses and one.delivers and one.stages == tuple(stages)
    each = step_groups(stages, 0)
    assert [group.stages for group in each] == [(), (stages[0],), (stages[1],), (stages[2],), ()]
    assert each[0].parses and each[-1].delivers and not any(g.parses or g.delivers for g in each[1:-1])
    two = step_groups(stages, 2)
    assert [group.stages for group in two] == [(stages[0],), tuple(stages[1:])], "parse+1 step, 2 steps+delivery"
    assert len(step_groups(stages, 9)) == 5, "never more threads than steps"


def test_large_frames_carry_a_copy_divided_by_a_whole_factor(single_clip):
    source = open_source(str(single_clip), parse_side=960)
    source.start()
    try:
        frame = source.read(10)
    finally:
        source.stop()
    assert frame.size == (1080, 1920) and frame.parse_image.shape == (960, 540, 3)
    halves = frame.image.reshape(960, 2, 540, 2, 3).mean(axis=(1, 3))
    assert np.abs(halves - frame.parse_image).max() <= 1, "each pixel the mean of a 2x2 block"
    assert parse_copy_size(1280, 720, 960) == (640, 360) and parse_copy_size(3840, 2160, 960) == (960, 540)
    assert parse_copy_size(960, 540, 960) is None
    work = frame.for_parsing()
    assert work.image is frame.parse_image and work.placement.scale_x == pytest.approx(0.5)
    small = open_source(str(single_clip), size=(180, 320), parse_side=960)
    small.start()
    try:
        assert small.read(10).parse_image is None, "a frame within the parse side is parsed as it is"
    finally:
        small.stop()


def test_a_result_scaled_to_the_frame_keeps_its_picture():
    labels = np.array([[0, 1], [2, 3]], np.uint8)
    mask = labels > 0
    keypoints = np.array([[1.0, 0.5, 0.9]], np.float32)
    landmarks = np.array([[1.0, 0.5, 2.0, 0.9, 0.8]], np.float32)
    parse = ParseResult(labels=labels, person_mask=mask, label_names=("bg", "a", "b", "c"),
                        palette=np.zeros((4, 3), np.uint8), people=[PersonParse(3, mask, keypoints, 0.7, landmarks)])
    big = parse.scaled_to((4, 4))
    assert np.array_equal(big.labels, np.kron(labels, np.ones((2, 2), np.uint8)))
    assert np.array_equal(big.person_mask, big.labels > 0) and np.array_equal(big.people[0].mask, big.person_mask)
    assert big.people[0].keypoints.tolist() == [[2.0, 1.0, pytest.approx(0.9)]]
    assert big.people[0].landmarks[0, :3].tolist() == [2.0, 1.0, 4.0], "x, y and z (in x's scale)"
    assert parse.scaled_to((2, 2)) is parse


def test_process_parses_a_large_file_at_the_parse_side_and_writes_it_at_its_size(single_clip, tmp_path):
    full, full_labels = _processed(single_clip, tmp_path / "full", "--frames", "6", "--parse-side", "0")
    small, small_labels = _processed(single_clip, tmp_path / "small", "--frames", "6")
    assert [line["frame_size"] for line in small] == [[1080, 1920]] * 6
    for a, b in zip(full_labels, small_labels):
        person_full = cv2.imread(str(a), cv2.IMREAD_UNCHANGED) > 0
        person_small = cv2.imread(str(b), cv2.IMREAD_UNCHANGED) > 0
        assert person_small.shape == (1920, 1080), "labels at the frame's size"
        assert (person_full & person_small).sum() / (person_full | person_small).sum() > 0.9
    for a, b in zip(full, small):
        p, q = (max(line["people"], key=lambda person: _area(person["bbox"])) for line in (a, b))  # the athlete
        assert np.abs(np.subtract(p["bbox"], q["bbox"])).max() < 20, "masks at the frame's size, where the person is"
        seen = [i for i, (u, v) in enumerate(zip(p["keypoints"], q["keypoints"])) if min(u[2], v[2]) > 0.5]
        assert len(seen) > 8
        shift = [np.hypot(p["keypoints"][i][0] - q["keypoints"][i][0], p["keypoints"][i][1] - q["keypoints"][i][1])
                 for i in seen]
        assert np.median(shift) < 10, "keypoints in the frame's own pixels"
    with av.open(str(tmp_path / "small" / "out.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (1080, 1920)
