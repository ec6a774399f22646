"""A coaching session is long: 20 000 frames of a looped real clip with memory and queues sampled,
and 100 pipeline starts and stops with threads and file handles counted. Slow; .ci/run runs them."""
from __future__ import annotations

import gc
import json
import os
import threading
from pathlib import Path

import av
import cv2
import pytest

from realtime.config import PipelineConfig
from realtime.pipeline import Pipeline

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
pytestmark = pytest.mark.usefixtures("engine_threads_joined")
SIZE = (90, 160)  # the portrait clip, scaled: the run tests endurance, not the model's detail
INTERNAL_SIZE = 161


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory, single_clip) -> Path:
    """The real clip at 90x160, so that decoding it costs little next to parsing."""
    path = tmp_path_factory.mktemp("long") / "small.mp4"
    with av.open(str(single_clip)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for frame in source.decode(video=0):
            image = cv2.resize(frame.to_ndarray(format="rgb24"), SIZE, interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_twenty_thousand_frames_keep_memory_and_queues_flat(small_clip, tmp_path):
    frames, warmup, every = 20_000, 2_000, 500
    pipeline = Pipeline(PipelineConfig(source=str(small_clip), device="cpu", loop=True, internal_size=INTERNAL_SIZE, max_people=1))
    samples: list[tuple[int, int, int, int]] = []  # frames done, RSS bytes, source buffer, recorder queue
    peaks = {"in flight": 0, "queued": 0}  # frames in flight, and in any step thread's inbox, at every result
    bounds: set[int] = set()  # of the step threads' inboxes
    done = threading.Event()
    count = 0

    def on_result(result) -> None:
        nonlocal count
        count += 1
        queues = pipeline.step_queues  # a running peak, not a list: the test measures memory
        peaks["in flight"] = max(peaks["in flight"], pipeline.in_flight)
        peaks["queued"] = max(peaks["queued"], *(queued for queued, _ in queues), 0)
        bounds.update(bound for _, bound in queues)
        if count % every == 0:
            samples.append((count, _rss_bytes(), pipeline.source.buffered, pipeline.recorder.queued))
        if count >= frames:
            done.set()

    pipeline.subscribe(on_result)
    recorder = pipeline.start_recording(tmp_path / "long.mp4", metrics_path=tmp_path / "long.jsonl")
    pipeline.start()
    try:
        assert done.wait(2200), f"only {count} frames"
    finally:
        pipeline.stop()
    assert pipeline.error is None and recorder.error is None

    warm_rss = next(rss for n, rss, _, _ in samples if n == warmup)
    later = [rss for n, rss, _, _ in samples if n > warmup]
    growth = max(later) / warm_rss - 1
    print(f"RSS after {warmup} frames {warm_rss / 2**20:.1f} MiB, max after {max(later) / 2**20:.1f} MiB "
          f"({growth * 100:+.2f} %) over {frames} frames; first sample {samples[0][1] / 2**20:.1f} MiB")
    assert growth <= 0.05, [(n, round(rss / 2**20, 1)) for n, rss, _, _ in samples]
    assert max(s[2] for s in samples) <= 8 and max(s[3] for s in samples) <= 16, "queues stay within their bounds"
    full_pipe = 2 * pipeline.step_threads  # the most frames in flight for a file read as fast as it decodes
    print(f"{pipeline.step_threads} step threads, peaks {peaks}, inbox bounds {bounds}")
    assert pipeline.step_threads > 1 and bounds, "the step threads' inboxes were sampled"
    assert 0 < min(bounds) and max(bounds) <= full_pipe, f"inbox bounds {bounds}, at most {full_pipe} frames fly"
    assert peaks["in flight"] <= full_pipe and peaks["queued"] <= full_pipe, peaks

    with open(tmp_path / "long.jsonl") as metrics:
        indices = [json.loads(line)["index"] for line in metrics]
    assert indices == list(range(len(indices))) and len(indices) == recorder.frames_written >= frames
    with av.open(str(tmp_path / "long.mp4")) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == recorder.frames_written
    assert all(b > a for a, b in zip(times, times[1:])), "looped time runs on"


def _run_briefly(clip: Path, folder: Path) -> None:
    pipeline = Pipeline(PipelineConfig(source=str(clip), device="cpu", internal_size=INTERNAL_SIZE, max_people=1))
    arrived = threading.Event()
    pipeline.subscribe(lambda result: arrived.set())
    pipeline.start_recording(folder / "cycle.mp4", metrics_path=folder / "cycle.jsonl")
    pipeline.start()
    try:
        assert arrived.wait(60)
    finally:
        pipeline.stop()
    assert pipeline.error is None


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_hundred_starts_and_stops_leak_no_thread_or_file_handle(small_clip, tmp_path):
    for _ in range(3):  # the first runs create what lives for the whole process (thread pools, codecs)
        _run_briefly(small_clip, tmp_path)
    gc.collect()
    threads, fds = sorted(t.name for t in threading.enumerate()), _open_fds()
    for _ in range(100):
        _run_briefly(small_clip, tmp_path)
    gc.collect()
    print(f"after 100 cycles: {len(threading.enumerate())} threads (before {len(threads)}), "
          f"{len(_open_fds())} open files (before {len(fds)})")
    assert sorted(t.name for t in threading.enumerate()) == threads
    assert len(_open_fds()) <= len(fds)
