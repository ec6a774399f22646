"""Playback of files in the engine, without Qt (realtime.playback through the Pipeline): pause
holds the whole chain, seeks and steps land on the right frame, seeking keeps the repetitions
completed before the seek point, a recording's times keep rising whatever playback does, loop,
pacing, and merging two person IDs. Real clip, real models."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.analysis.exercises import PRESETS
from realtime.analysis.fitness import FitnessAnalyser
from realtime.analysis.reps import RepCounter
from realtime.analysis.tracking import PersonTracker
from realtime.build import build_analysers, build_pipeline, build_run, build_stages, person_mask_stages
from realtime.config import PipelineConfig
from realtime.job import JobModels, JobOutputs, run_job
from realtime.pipeline import _InFlight, _Signals
from realtime.playback import Playback
from realtime.types import Frame
from conftest import MAIN
from test_engine import Runs
from test_fitness_analyser import H, W, leg_keypoints, parse_of, person, squat_degs

pytestmark = pytest.mark.usefixtures("engine_threads_joined")

FPS = 30.0
# faults/squat30.mp4 (30 fps, 192x424, 151 frames): squats counted from 0.83 to 2.03 s and from
# 2.73 to 3.93 s (test_fitness_clips.py counts the two).
BETWEEN_REPS_S = 2.4
SECOND_BOTTOM_S = 3.33


@pytest.fixture(scope="module")
def squat30(media_dir: Path) -> Path:
    return media_dir / "faults" / "squat30.mp4"


class Seen:
    """What a pipeline delivered, gathered on its thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results = []

    def __call__(self, result) -> None:
        with self.lock:
            self.results.append(result)

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def last(self):
        with self.lock:
            return self.results[-1] if self.results else None

    def seeked_since(self, count: int):
        """The first result after the first `count` whose frame is the one a seek landed on, or None:
        results may come in bursts, so the latest one may already be a later frame."""
        with self.lock:
            return next((r for r in self.results[count:] if r.frame.seeked), None)

    def reps(self, result=None) -> int:
        return (result or self.last()).analysis["fitness"]["people"]["0"]["reps"]


def wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def settled(seen: Seen, quiet_s: float = 1.0, timeout_s: float = 60.0) -> int:
    """Waits until no frame came for `quiet_s`; returns how many came."""
    deadline = time.monotonic() + timeout_s
    count = seen.count()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = seen.count()
        if now == count:
            return now
        count = now
    raise AssertionError("frames kept coming")


def start(clip: Path, *, exercise: bool = False, **config):
    pipeline = build_pipeline(PipelineConfig(source=str(clip), device="cpu", max_people=1,
                                             exercise=PRESETS["squat"] if exercise else None, **config))
    seen = Seen()
    pipeline.subscribe(seen)
    return pipeline, seen


def test_pause_holds_parsing_counting_and_recording_and_nothing_is_lost(squat30, tmp_path):
    pipeline, seen = start(squat30, person_mask="parser")
    recorder = pipeline.start_recording(tmp_path / "held.mp4", metrics_path=tmp_path / "held.jsonl")
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 10)
        pipeline.playback.pause()
        held = settled(seen, quiet_s=1.0)
        written = recorder.frames_written
        time.sleep(1.5)
        assert seen.count() == held and pipeline.stats.frames == held, "nothing is parsed while paused"
        assert recorder.frames_written == written, "nothing is recorded while paused"
        assert held < 151
        pipeline.playback.resume()
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    assert [r.frame.index for r in seen.results] == list(range(151)), "every frame once, in order"
    times = [json.loads(line)["pts_s"] for line in (tmp_path / "held.jsonl").read_text().splitlines()]
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3), "the pause left no hole in the recording's time"


def test_a_seek_while_paused_shows_that_frame_and_steps_go_one_frame_either_way(squat30):
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0)
    pipeline.playback.pause()
    try:
        pipeline.start()
        time.sleep(0.5)
        assert seen.count() == 0, "paused from the start: nothing parsed"
        pipeline.seek(2.0)
        wait_for(lambda: seen.count() == 1)
        first = seen.last().frame
        assert first.index == 60 and first.pts_s == pytest.approx(2.0, abs=1e-6) and first.seeked
        pipeline.step(1)
        wait_for(lambda: seen.count() == 2)
        assert seen.last().frame.index == 61 and not seen.last().frame.seeked
        pipeline.step(-1)
        wait_for(lambda: seen.count() == 3)
        assert seen.last().frame.index == 60 and seen.last().frame.seeked
        pipeline.step(-1)
        wait_for(lambda: seen.count() == 4)
        assert seen.last().frame.index == 59
        assert settled(seen, quiet_s=0.5) == 4, "each step shows exactly one frame"
        assert pipeline.playback.paused
        assert pipeline.source_info.seekable and pipeline.source_info.duration_s == pytest.approx(151 / FPS)
    finally:
        pipeline.stop()


def test_seeking_keeps_the_reps_done_before_and_counts_only_what_is_played(squat30):
    pipeline, seen = start(squat30, exercise=True)
    try:
        pipeline.start()
        assert pipeline.wait(300)
        assert seen.reps() == 2
        done = seen.count()
        pipeline.seek(BETWEEN_REPS_S)  # after the first squat: it stays, the second is counted again
        wait_for(lambda: seen.seeked_since(done))
        assert seen.reps(seen.seeked_since(done)) == 1
        assert pipeline.wait(300) and seen.reps() == 2
        done = seen.count()
        pipeline.seek(SECOND_BOTTOM_S)  # the bottom of the second squat: only its way up is played
        wait_for(lambda: seen.seeked_since(done))
        assert pipeline.wait(300)
        assert seen.reps() == 1, "half a squat played is not a squat"
        summary = pipeline._analysers[0].summary()
        assert [rep["end_s"] for rep in summary["per_rep"]] == pytest.approx([2.03], abs=0.1)
    finally:
        pipeline.stop()


def test_a_recording_never_goes_back_in_time_across_replays_seeks_and_pauses(squat30, tmp_path):
    video, metrics = tmp_path / "replays.mp4", tmp_path / "replays.jsonl"
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0)
    pipeline.start_recording(video, metrics_path=metrics)
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 20)
        done = seen.count()
        pipeline.seek(0.5)  # back
        wait_for(lambda: seen.seeked_since(done))
        done = seen.count()
        pipeline.seek(4.0)  # ahead
        wait_for(lambda: seen.seeked_since(done))
        assert seen.seeked_since(done).frame.pts_s > 3.9
        assert pipeline.wait(300)
        pipeline.switch_source(str(squat30))  # Play again
        wait_for(lambda: seen.count() > 10 and seen.last().frame.index >= 10)
        pipeline.stop_recording()
    finally:
        pipeline.stop()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    times = [line["pts_s"] for line in lines]
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3), "each jump continues one frame later"
    assert any(b["index"] < a["index"] for a, b in zip(lines, lines[1:])), "the source went back"
    with av.open(str(video)) as container:
        frame_times = [frame.time for frame in container.decode(video=0)]
    assert frame_times == pytest.approx(times, abs=1e-3), "the MP4 and the JSONL agree"


def test_loop_plays_the_file_again_running_on_and_keeps_the_earlier_passes_reps(squat30, tmp_path):
    """The window's Loop (Playback.loop) as `process --loop`: indices and times run on from pass to
    pass, the repetitions of earlier passes stay (squat30 holds 2, and ends as a third starts: that
    one is dropped at the seam, not joined to the next pass's start), the recording's indices rise
    and the seek bar's position is the place in the file. Before, each restart was a seek to 0: the
    count went back to 0 and the JSONL's index to 0 inside one file."""
    frames = 151
    video, metrics = tmp_path / "looped.mp4", tmp_path / "looped.jsonl"
    pipeline, seen = start(squat30, exercise=True)
    pipeline.playback.set_loop(True)
    pipeline.start_recording(video, metrics_path=metrics)
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 2 * frames + 15, timeout_s=600)
        pipeline.playback.pause()  # in the third pass, before its first squat (frames 25-62) ends
        settled(seen)
        pipeline.stop_recording()
        results = list(seen.results)
        summary = pipeline._analysers[0].summary()
    finally:
        pipeline.stop()
    assert 2 * frames + 15 <= len(results) < 2 * frames + 60
    assert [r.frame.index for r in results] == list(range(len(results))), "every frame once, numbered on"
    last = results[-1].frame
    times = [r.frame.pts_s for r in results]
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-3), "times run on across the seams"
    seams = [r.frame for r in results if r.frame.seeked]
    assert [f.index for f in seams] == [frames, 2 * frames], "each pass starts afresh (the stages forget motion)"
    assert [f.position_s for f in seams] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert last.position_s == pytest.approx((last.index - 2 * frames) / FPS, abs=1e-3), "the seek bar's place"
    assert seen.reps() == 4, "two passes, two squats each; none across a seam"
    starts = [rep["start_frame"] for rep in summary["per_rep"]]
    assert [start // frames for start in starts] == [0, 0, 1, 1], "the repetitions' frames run on"
    assert np.allclose([start % frames for start in starts[2:]], starts[:2], atol=2), "the same squats again"
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(len(lines))), "the JSONL never goes back"
    assert lines[-1]["analysis"]["fitness"]["people"]["0"]["reps"] == 4
    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(lines)


def test_a_seek_near_a_loop_seam_continues_in_the_pass_on_screen(squat30):
    """Loop on, paused near the end of the first pass: the capture thread has read on into the
    second pass (it reads up to a buffer ahead of the frame shown). A seek to 0 then went to the
    second pass (index 151, at 5.03 s), so the counter kept the first pass's squats and counted
    them again on the replay: 4. It continues in the pass shown, as the same seek earlier does."""
    frames = 151
    pipeline, seen = start(squat30, exercise=True, stage_threads=1)  # the frame delivered is the last taken
    pipeline.playback.set_loop(True)
    near_the_end = threading.Event()

    def pause_near_the_end(result) -> None:
        if result.frame.index >= frames - 8 and not near_the_end.is_set():  # the buffer (8) holds frame 151
            near_the_end.set()
            pipeline.playback.pause()

    pipeline.subscribe(pause_near_the_end)
    try:
        pipeline.start()
        wait_for(lambda: near_the_end.is_set() and pipeline.source.frames_read > frames, timeout_s=300)
        held = settled(seen)
        shown = seen.last().frame
        assert shown.index < frames and seen.reps() == 2, "shown: the first pass, both squats counted"
        pipeline.seek(0.0)
        pipeline.playback.resume()
        wait_for(lambda: seen.count() > held and seen.last().frame.position_s >= shown.position_s, timeout_s=300)
        pipeline.playback.pause()
        results = list(seen.results[held:])
    finally:
        pipeline.stop()
    replayed = next(i for i, r in enumerate(results) if r.frame.position_s >= shown.position_s)  # back where it was
    assert results[replayed].analysis["fitness"]["people"]["0"]["reps"] == 2, \
        "the replay counts the pass's two squats again, and only those"
    first = results[0].frame
    assert (first.index, first.pts_s, first.seeked) == (0, 0.0, True), \
        "the seek continues in the pass shown"
    assert [r.frame.index for r in results[:replayed + 1]] == list(range(replayed + 1)), \
        "every frame of the replay once, numbered as the first time"


def test_an_ended_file_plays_again_from_a_seek(squat30):
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0)
    try:
        pipeline.start()
        pipeline.seek(4.8)
        assert pipeline.wait(120)
        ended = seen.count()
        pipeline.seek(1.0)
        assert not pipeline.finished
        wait_for(lambda: seen.count() > ended)
        assert seen.results[ended].frame.index == 30
        assert pipeline.wait(120) and seen.last().frame.index == 150
    finally:
        pipeline.stop()


def test_pacing_keeps_to_the_chosen_speed_and_every_frame_drops_none(squat30):
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0)
    pipeline.playback.set_speed(0.25)
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 12)
        paced = seen.results[:12]
        pipeline.playback.set_speed(None)
        # the worker takes a frame when the pacing clock, set at the frame before (a frame waited for
        # is taken a hair late, and a late frame restarts the clock from itself), reaches it: at a
        # quarter speed, four times the frames' time apart at least (when taken: captured, then queued)
        taken_s = [r.frame.captured_s + r.timings_ms["queue"] / 1000 for r in paced]
        ahead_s = [(b.frame.pts_s - a.frame.pts_s) / 0.25 - (tb - ta)
                   for a, b, ta, tb in zip(paced, paced[1:], taken_s, taken_s[1:])]
        print(f"a frame taken ahead of the clock by at most {max(ahead_s) * 1000:.1f} ms")
        assert [r.frame.index for r in paced] == list(range(12)) and max(ahead_s) < 0.02, ahead_s
        assert pipeline.wait(300)
        assert pipeline.stats.dropped == 0 and [r.frame.index for r in seen.results] == list(range(151))
    finally:
        pipeline.stop()


def test_real_time_pacing_drops_the_frames_a_slow_parser_is_late_for(squat30):
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0)
    pipeline.playback.set_speed(1.0)
    pipeline.playback.set_drop_late(True)
    infer = pipeline.parser.infer

    def slower(batch, *args, **kwargs):
        time.sleep(0.1)  # 10 frames a second at most, against the clip's 30
        return infer(batch, *args, **kwargs)

    pipeline.parser.infer = slower
    try:
        pipeline.start()
        assert pipeline.wait(120)
    finally:
        pipeline.stop()
    indices = [r.frame.index for r in seen.results]
    assert indices == sorted(indices) and indices[-1] == 150
    assert len(indices) < 100 and pipeline.stats.dropped > 50, "late frames were skipped, not played later"


def test_a_seek_in_real_time_is_heard_when_the_worker_is_busy_past_its_first_frame(squat30):
    """Real time (the window's, `process --realtime`) keeps only the newest frame for the worker:
    when the worker was busy as the frame after a seek's first came due, the first (the only one
    marked `seeked`) was replaced and its mark with it, so the analysers never heard the seek: the
    squats after the seek point stayed and the replay counted them again. Real time is on only
    around the seek (the window's toggle), so that the counts do not hang on the machine's speed."""
    pipeline, seen = start(squat30, exercise=True, stage_threads=1)
    playback, sought = pipeline.playback, []

    def seek_back_in_real_time_while_busy(result) -> None:
        """On the one step thread: it takes no frame until the seek's second frame replaced its first."""
        if result.frame.index >= 125 and not sought:
            sought.append(result.analysis["fitness"]["people"]["0"]["reps"])
            playback.set_speed(1.0)
            playback.set_drop_late(True)
            pipeline.seek(0.5)  # frame 15

            def replaced() -> bool:
                waiting = pipeline.source.peek(timeout_s=0.05)
                return waiting is not None and 15 < waiting.index < 100
            wait_for(replaced, timeout_s=30)
            playback.set_drop_late(False)
            playback.set_speed(None)

    pipeline.subscribe(seek_back_in_real_time_while_busy)
    try:
        pipeline.start()
        wait_for(lambda: sought)
        assert pipeline.wait(120)
    finally:
        pipeline.stop()
    assert pipeline.error is None, pipeline.error  # the subscriber's wait for the replaced frame held
    assert sought == [2], "both squats were counted before the seek"
    indices = [r.frame.index for r in seen.results]
    back = seen.results[next(i for i in range(1, len(indices)) if indices[i] < indices[i - 1])]
    assert back.frame.index > 15 and back.frame.seeked, (back.frame.index, back.frame.seeked)
    assert back.analysis["fitness"]["people"]["0"]["reps"] == 0, "the squats after the seek point were forgotten"
    assert seen.reps() == 2, "and counted once more"


def test_real_time_playback_starts_its_clock_once_the_models_are_warm(squat30, tmp_path):
    """`process --realtime` (the user's command): the models build their graphs on the first frame
    (about a second on a CPU) before the clock starts, so the frames after it are played, not
    dropped as late, and both squats are counted; the frames dropped later, if the machine falls
    behind, are counted in the summary and the closing line."""
    metrics, summary = tmp_path / "rt.jsonl", tmp_path / "rt.json"
    run = subprocess.run([sys.executable, str(MAIN), "process", str(squat30), "-o", str(tmp_path / "rt.mp4"),
                          "--realtime", "--metrics", str(metrics), "--summary", str(summary), "--exercise", "squat"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    indices = [json.loads(line)["index"] for line in metrics.read_text().splitlines()]
    # frame 1 comes due once frame 0 is delivered (the frames after it, on a loaded machine, may be late)
    assert indices[:2] == [0, 1], indices[:10]
    counted = json.loads(summary.read_text())
    assert counted["people"]["0"]["reps"] == 2, (counted, indices)
    dropped = 151 - len(indices)  # every frame was decoded: those not processed were dropped
    assert counted["source"].get("dropped", 0) == dropped
    assert (f"{dropped} frames dropped" in run.stdout) == (dropped > 0), run.stdout


def test_a_run_that_dropped_frames_says_how_many_in_its_summary(squat30, tmp_path):
    """A parser slower than the clip's frame rate, played in real time: the job's result and the
    summary count the frames dropped (Source.dropped), one for each frame not processed."""
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1, exercise=PRESETS["squat"],
                            person_mask="parser", smoothing=0.0, pacing="realtime")
    models = JobModels()
    parser, _ = models.lend(config)
    infer = parser.infer

    def slower(batch, *args, **kwargs):
        time.sleep(0.1)  # 10 frames a second at most, against the clip's 30
        return infer(batch, *args, **kwargs)

    parser.infer = slower
    try:
        job = run_job(config, JobOutputs(video=str(tmp_path / "out.mp4"), summary=str(tmp_path / "summary.json")),
                      models=models)
    finally:
        models.close()
    assert 50 < job.dropped == 151 - job.frames
    assert json.loads((tmp_path / "summary.json").read_text())["source"]["dropped"] == job.dropped


def test_a_speed_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0.25x to 2x"):
        Playback(speed=4.0)
    with pytest.raises(ValueError, match="0.25x to 2x"):
        Playback().set_speed(0.1)


def test_the_counter_forgets_the_rep_in_progress_and_those_after_the_seek_point():
    counter = RepCounter(start_deg=150, turn_deg=105)
    degs = squat_degs(3)
    for i, deg in enumerate(degs):
        counter.update(deg, i / FPS, i)
    assert counter.count == 3
    second_end = counter.reps[1].end_s
    counter.seek(second_end + 0.1)
    assert counter.count == 2 and counter.state == "waiting"
    counter.seek(0.0)
    assert counter.count == 0


def test_a_shallow_movement_is_a_partial_rep_and_sway_is_nothing():
    counter = RepCounter(start_deg=150, turn_deg=105)
    shallow = [175.0] * 10 + [175 - 50 * np.sin(np.pi * i / 30) for i in range(31)] + [175.0] * 10  # to 125°
    sway = [175.0] * 10 + [151 - 8 * np.sin(np.pi * i / 30) for i in range(31)] + [175.0] * 10  # to 143°
    for i, deg in enumerate(shallow + sway):
        counter.update(float(deg), i / FPS, i)
    assert counter.count == 0 and counter.partials == 1
    (partial,) = counter.partial_reps
    assert partial.depth_deg == pytest.approx(125, abs=0.5) and partial.start_s < partial.turn_s < partial.end_s


def test_merging_a_new_id_adds_their_reps_to_the_earlier_person():
    analyser = FitnessAnalyser(PRESETS["squat"])
    index = 0

    def play(pid: int, reps: int) -> dict:
        nonlocal index
        out = None
        for deg in squat_degs(reps):
            out = analyser.update(Frame(np.zeros((H, W, 3), np.uint8), index, index / FPS),
                                  parse_of([person(pid, leg_keypoints(deg, 80))]))
            index += 1
        return out

    play(0, 2)  # person 0 squats twice, leaves, comes back as #3 (the tracker lost them)
    play(3, 1)
    assert analyser.summary()["people"]["3"]["reps"] == 1
    analyser.merge_people(3, 0)
    summary = analyser.summary()
    assert list(summary["people"]) == ["0"] and summary["people"]["0"]["reps"] == 3
    assert [rep["number"] for rep in summary["people"]["0"]["per_rep"]] == [1, 2, 3]
    starts = [rep["start_s"] for rep in summary["people"]["0"]["per_rep"]]
    assert starts == sorted(starts)
    assert play(0, 1)["people"]["0"]["reps"] == 4, "counting goes on under the earlier ID"


def test_the_tracker_gives_the_merged_person_the_earlier_id():
    tracker = PersonTracker()
    keypoints = leg_keypoints(170, 80)
    first = tracker(Frame(np.zeros((H, W, 3), np.uint8), 0, 0.0), parse_of([person(0, keypoints)]))
    assert [p.id for p in first.people] == [0]
    tracker.merge_people(0, 5)
    again = tracker(Frame(np.zeros((H, W, 3), np.uint8), 1, 1 / FPS), parse_of([person(0, keypoints)]))
    assert [p.id for p in again.people] == [5]


def test_the_pipeline_merges_people_between_frames_and_the_selection_follows(squat30):
    pipeline, seen = start(squat30, exercise=True)
    try:
        pipeline.set_selected_people({0})
        pipeline.start()
        wait_for(lambda: seen.count() >= 3)
        pipeline.merge_people(0, 7)
        assert pipeline.selected_people == frozenset({7})
        # frames parsed before the tracker merged them still hold #0, whom nobody chose now
        wait_for(lambda: any([p.id for p in r.parse.people] == [7] for r in seen.results))
        merged = next(r for r in seen.results if [p.id for p in r.parse.people] == [7])
        assert list(merged.analysis["fitness"]["people"]) == ["7"]
        assert merged.analysis["fitness"]["people"]["7"]["signal_reason"] != "nobody_found"
        with pytest.raises(ValueError):
            pipeline.merge_people(1, 1)
    finally:
        pipeline.stop()


def test_with_none_of_the_chosen_people_in_frame_nobody_is_measured(media_dir):
    """Two people in frame, the one chosen absent (stepped out): the analysers were handed the
    frame's part masks, which are the unchosen people's, and counted them as a person "0"
    (frames, angles, counter input). Nobody is measured now, and the frames are the chosen
    person's, not in view (they were a person "0" with nobody found, a row nobody chose in the
    window's table)."""
    pipeline = build_pipeline(PipelineConfig(source=str(media_dir / "pose2sim-multi-cam01.mp4"), device="cpu",
                                             max_people=2, exercise=PRESETS["squat"], frame_limit=3))
    seen = Seen()
    pipeline.subscribe(seen)
    pipeline.set_selected_people({7})
    pipeline.start()
    try:
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    assert pipeline.error is None, pipeline.error
    assert seen.count() == 3 and all(len(r.parse.people) == 2 for r in seen.results), "both people are in frame"
    measured = {(r.frame.index, pid, name): angle["raw_deg"] for r in seen.results
                for pid, person in r.analysis["fitness"]["people"].items()
                for name, angle in person["angles"].items() if angle["raw_deg"] is not None}
    assert not measured, measured
    assert all(list(r.analysis["fitness"]["people"]) == ["7"] for r in seen.results)
    assert {r.analysis["fitness"]["people"]["7"]["signal_reason"] for r in seen.results} == {"nobody_found"}
    empty = pipeline._analysed_people(replace(seen.results[0].parse, people=[]))  # nobody in view at all
    assert [(p.id, p.mask.any()) for p in empty.people] == [(7, False)] and not empty.person_mask.any()


@pytest.mark.parametrize("realtime", [True, False], ids=["real-time", "every-frame-at-1x"])
def test_a_first_frame_that_fails_is_reported_and_paced_playback_goes_on(squat30, realtime):
    """The pacing clock waits for the first frame after a start (Playback.hold_clock): one that
    failed in a step (a model error) never released it, so `process --realtime` and the window
    (1x, every frame) stalled for ever on the frame after it."""
    pipeline, seen = start(squat30, person_mask="parser", smoothing=0.0, pacing="realtime" if realtime else "every-frame")
    pipeline.playback.set_speed(1.0)
    infer, calls = pipeline.parser.infer, []

    def failing_on_the_first_picture(batch, *args, **kwargs):
        calls.append(len(calls))
        if len(calls) <= 2:  # the warm-up and frame 0: it runs on frame 0's picture
            raise RuntimeError("the model failed on this frame")
        return infer(batch, *args, **kwargs)

    pipeline.parser.infer = failing_on_the_first_picture
    try:
        pipeline.start()
        assert pipeline.wait(60), f"stalled after the failed frame: {seen.count()} frames delivered"
    finally:
        pipeline.stop()
    assert "processing frame 0 failed: the model failed on this frame" in pipeline.error
    indices = [r.frame.index for r in seen.results]
    if realtime:
        assert 0 not in indices and indices[-1] == 150 and indices == sorted(indices)
    else:
        assert indices == list(range(1, 151)), "every frame after the failed one, in order"


def test_a_model_switch_in_real_time_warms_the_new_model_up_and_holds_the_clock_until_then(squat30):
    """A model switch while playing in real time: the new parser builds its graphs (BodyPix at
    stride 8 picks its backend on its first frame) on the next frame before it is taken, and the
    clock waits for it, so the frames after are played, not dropped as late. A frame taken before
    the switch and delivered after it passed the warm-up over and released the clock. The clock was
    held only once the new model had loaded: the frames decoded during the load were dropped.
    Each result names the model that parsed it (the frame in flight at the switch, the old one:
    it was named after the new one, with the IDs before the switch, and the window took the
    people chosen before it for the new model's)."""
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1, person_mask="parser", smoothing=0.0,
                            pacing="realtime")
    stages, runs = build_stages(config), Runs()
    stages.result.append(runs)
    pipeline, seen = build_pipeline(config, stages), Seen()
    pipeline.subscribe(seen)
    pipeline.playback.set_speed(0.5)
    asked = threading.Event()

    def switch_after_ten(result) -> None:
        """On the last step thread, which holds this frame in flight: the switch comes once the
        next frame is taken too, and is carried out before either is delivered."""
        if result.frame.index >= 10 and not asked.is_set():
            asked.set()
            wait_for(lambda: pipeline.in_flight == 2, timeout_s=30)
            pipeline.switch_model("bodypix-s8")
            wait_for(lambda: pipeline.stats.model == "bodypix-s8", timeout_s=30)

    pipeline.subscribe(switch_after_ten)
    load, loaded = pipeline._load_parser, []

    def slow_load(*args):
        """The real load, a second longer (as on a slower machine): 15 frames come due meanwhile."""
        dropped = pipeline.source.dropped
        parser = load(*args)
        time.sleep(1.0)
        loaded.append(pipeline.source.dropped - dropped)
        return parser

    pipeline._load_parser = slow_load
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 1)
        stride_16 = seen.results[0].parse.part_probs.shape  # the grid of the model's outputs
        wait_for(lambda: sum(r.parse.part_probs.shape != stride_16 for r in seen.results) >= 3 or pipeline.finished)
    finally:
        pipeline.stop()
    switched = [r.frame.index for r in seen.results if r.parse.part_probs.shape != stride_16]
    assert asked.is_set() and len(switched) >= 3, switched
    warm_ups = [i for i, run in enumerate(runs.runs) if run == "warm-up"]
    assert len(warm_ups) == 2 and runs.runs[warm_ups[1] + 1] == switched[0], \
        f"no warm-up before the new model's first frame: {runs.runs}"
    assert switched[:2] == [switched[0], switched[0] + 1], f"frames dropped while the new model warmed up: {switched}"
    labels = [(r.frame.index, r.model, r.id_restarts) for r in seen.results]
    assert all((r.model, r.id_restarts) == (("bodypix-s8", 1) if r.frame.index in switched else ("bodypix", 0))
               for r in seen.results), f"a frame parsed before the switch, delivered after it, named the new model: {labels}"
    assert pipeline.error is None, pipeline.error
    assert loaded == [0] or loaded == [1], f"{loaded} frames dropped while the new model loaded (one passes the hold)"


class _WatchedLock:
    """A lock that sets `blocked` when a thread waits for it (what the test waits for)."""

    def __init__(self, blocked: threading.Event) -> None:
        self._lock, self.blocked = threading.Lock(), blocked

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self.blocked.set()
            self._lock.acquire()

    def __exit__(self, *exc) -> None:
        self._lock.release()


def test_a_model_switch_between_a_frames_warm_up_check_and_its_end_starts_a_warm_up_that_stands(squat30):
    """The first frame of a warm-up, delivered on the last step thread, checked that no cool came
    after it was taken, then ended the warm-up and released the held clock; a model switch's cool on
    the first thread falling between the two (driven here: it runs while the check is made) was
    undone, so the new model was never warmed up and its clock ran from an old frame."""
    pipeline = build_pipeline(PipelineConfig(source=str(squat30), device="cpu", max_people=1, person_mask="parser"))
    reached = threading.Event()  # the switch's cool ran, or waits for the check to be done
    pipeline._warmth = _WatchedLock(reached)

    def cool() -> None:
        pipeline._cool()  # what a model switch does first (Pipeline._apply_commands)
        reached.set()

    switch = threading.Thread(target=cool, name="test-model-switch")

    class Cools(int):
        """The frame's count of cools, which lets the switch in while it is compared."""

        __hash__ = int.__hash__

        def __eq__(self, other: object) -> bool:
            switch.start()
            assert reached.wait(30), "the switch neither ran nor waited"
            return int(self) == other

    try:
        pipeline._cool()  # a warm-up began (the start)
        taken = _InFlight(Frame(np.zeros((8, 8, 3), np.uint8), 0, 0.0), 0, 0, Cools(pipeline._cools), _Signals(), {})
        pipeline._warmed_by(taken)  # its first frame is through
        switch.join(30)
        assert not switch.is_alive()
        assert not pipeline._warm and pipeline.playback._held, "the switch came last: its warm-up is to come"
    finally:
        pipeline.stop()


def test_a_model_that_fails_to_load_changes_nothing_and_the_reps_stay(squat30, tmp_path):
    """A model switch whose weights fail to load (a damaged file) says the old model goes on, and
    it does; but every stage and analyser was reset before the load was tried, so the rep count
    went back to 0 and the tracker numbered people again, the parser unchanged."""
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a network\n" * 100)
    pipeline, seen = start(squat30, exercise=True)
    asked = []

    def switch_after_both_squats(result) -> None:
        """On the last step thread: the frames after this one wait until the load failed."""
        if result.frame.index >= 125 and not asked:
            asked.append(result.analysis["fitness"]["people"]["0"]["reps"])
            pipeline.switch_model("bodypix-s8", str(damaged))
            wait_for(lambda: pipeline.error is not None, timeout_s=60)

    pipeline.subscribe(switch_after_both_squats)
    try:
        pipeline.start()
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    assert asked == [2], "both squats were counted before the switch"
    # the load's error, not the subscriber's (its wait for the load timing out would be "delivering frame …")
    assert pipeline.error.startswith("cannot load model bodypix-s8: ") and pipeline.error.endswith(
        "; still parsing with bodypix"), pipeline.error
    assert [r.frame.index for r in seen.results] == list(range(151)), "every frame once, in order"
    assert {p.id for r in seen.results for p in r.parse.people} == {0}, "the person kept their ID"
    assert seen.reps() == 2, "the count went on"


def test_changing_the_exercise_or_adding_a_stage_keeps_the_people_and_their_ids(squat30):
    """What the window's exercise picker does while it plays at 1x (Session.set_exercise: new
    analysers, the running stages kept): the warm-up that a change of steps started reset every
    stage, the tracker too, so people were numbered again from 0 (a selection or merge made before
    then named someone else). A stage added while playing is warmed up; those running keep on."""
    config = PipelineConfig(source=str(squat30), device="cpu", max_people=1, exercise=PRESETS["squat"],
                            person_mask="parser")
    stages, pipeline = build_run(config)
    seen = Seen()
    pipeline.subscribe(seen)
    pipeline.playback.set_speed(1.0)
    try:
        pipeline.start()
        wait_for(lambda: seen.count() >= 3)
        pipeline.merge_people(0, 7)  # person 0 is now #7, an ID a new tracker would not give
        wait_for(lambda: [p.id for p in seen.last().parse.people] == [7])
        merged = seen.count()
        pipeline.set_analysers(build_analysers(config))
        wait_for(lambda: seen.count() >= merged + 10)
        pipeline.set_stages([*person_mask_stages(replace(config, person_mask="selfie")), *stages.result])
        assert pipeline.wait(300)
    finally:
        pipeline.stop()
    after = seen.results[merged:]
    assert {p.id for r in after for p in r.parse.people} == {7}, "the people kept their IDs"
    assert [r.frame.index for r in seen.results] == list(range(151)), "every frame once, in order"
    assert list(seen.last().analysis["fitness"]["people"]) == ["7"]
    assert "selfie-mask" in seen.last().timings_ms, "the added stage ran"
