"""Speed and memory measurements behind the bench commands (realtime/bench_cli.py): a run as
`process` runs it, two settings compared frame by frame, resident memory over a long run, the
parser's forward against PyTorch, onnxruntime and OpenVINO on the same graph, and BlazePose's
networks and the selfie segmenter on each backend."""
from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from realtime.build import build_pipeline
from realtime.config import PipelineConfig
from realtime.geometry import parse_copy_size
from realtime.models.backends import available_backends, build_graph, export_onnx, sample_interleaved, time_interleaved
from realtime.models.bodypix import SINGLE_PERSON_HEADS, BodyPixParser
from realtime.render import plural

PARSER_BENCH_SIZES = ((321, 241), (449, 337), (641, 481))


def bench_parser(parser: BodyPixParser, frame: np.ndarray, *, repeats: int = 30, warmup: int = 5,
                 sizes: tuple[tuple[int, int], ...] = PARSER_BENCH_SIZES) -> dict:
    """ms per forward (medians, interleaved so load hits all alike) of the parser as it runs
    (its backend; "auto" picks one per size) against PyTorch, onnxruntime and OpenVINO each
    running the same graph (the parser's single-person heads) on the same input and threads;
    `parser_over_best_peer` is the parser's time over the faster of onnxruntime and OpenVINO."""
    import cv2

    threads = torch.get_num_threads()
    rows = []
    for width, height in sizes:
        image = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        batch = torch.from_numpy(image).permute(2, 0, 1)[None].float().contiguous()
        module = parser.head_set_module(SINGLE_PERSON_HEADS)
        onnx_model = export_onnx(module, batch)
        runs: dict[str, Callable[[], object]] = {"parser": lambda: parser.infer(batch, SINGLE_PERSON_HEADS)}
        for backend in available_backends():
            graph = build_graph(backend, module, batch, threads=threads, onnx_model=onnx_model)
            runs[backend] = lambda graph=graph: graph(batch)
        runs["parser"]()  # builds (or calibrates) the parser's graph for this size
        row = {"size": f"{width}x{height}", "parser_backend": parser.backend}
        row.update({f"{name}_ms": round(ms, 2) for name, ms in
                    time_interleaved(runs, runs=repeats, warmup=warmup).items()})
        peers = [row[f"{name}_ms"] for name in ("onnxruntime", "openvino") if f"{name}_ms" in row]
        if peers:
            row["parser_over_best_peer"] = round(row["parser_ms"] / min(peers), 3)
        rows.append(row)
    return {
        "model": parser.spec.name,
        "device": str(parser.device),
        "threads": threads,
        "repeats": repeats,
        "backends": list(available_backends()),
        "sizes": rows,
    }


POSE_BATCHES = (1, 2, 4)
POSE_GOAL_MS_PER_PERSON = 15.0  # issue 16: landmarks + segmentation per person, 640x480, a 2-core CPU
# what `bench_pose` calls agreement with PyTorch (as tests/test_backends.py): frame pixels for
# points, probabilities, metres, and logits relative to their largest magnitude (at least 1)
POSE_TOLERANCES = {"detector_keypoints_px": 0.5, "landmarks_px": 0.5, "visibility": 1e-3, "world_m": 1e-3,
                   "segmentation_logits": 1e-3, "selfie_probability": 1e-3}


def bench_pose(frame: np.ndarray, *, backends: tuple[str, ...] | None = None, repeats: int = 30, warmup: int = 5,
               batches: tuple[int, ...] = POSE_BATCHES, max_people: int = 4) -> dict:
    """BlazePose's networks and the selfie segmenter as the pose and person-mask stages call them
    (each call: the wrapper's pre- and post-processing and the network) on `frame` (H x W x 3
    uint8 RGB with a person in it), on each CPU backend (default: every one installed, PyTorch
    first): the detector per frame (up to `max_people`), the landmark network per batch of ROIs
    (`batches`: the detected person's ROI repeated) with and without its segmentation branch, and
    the selfie segmenter per frame. Wall and CPU ms (this process, all threads; the landmark
    network's also per person), median and p95; every call of every backend in turn, the order
    rotating, so that load hits all alike. `agreement`: each backend's outputs against PyTorch's
    (largest differences, and whether all are within POSE_TOLERANCES). ValueError when the
    detector finds nobody."""
    from realtime.models.blazepose_detector import BlazePoseDetector, load_blazepose_detector_net
    from realtime.models.blazepose_landmark import BlazePoseLandmarker, load_blazepose_landmark_net, roi_from_points
    from realtime.models.selfie_segmenter import SelfieSegmenter

    backends = ("torch", *(name for name in backends or available_backends() if name != "torch"))
    detector_net, landmark_net = load_blazepose_detector_net(), load_blazepose_landmark_net()
    without_segmentation = load_blazepose_landmark_net(segmentation=False)
    models = {name: {"detector": BlazePoseDetector(detector_net, backend=name),
                     "landmark": BlazePoseLandmarker(landmark_net, backend=name),
                     "landmark_without_segmentation": BlazePoseLandmarker(without_segmentation, backend=name),
                     "selfie": SelfieSegmenter("selfie", backend=name)} for name in backends}
    found = models["torch"]["detector"]([frame], max_people=max_people)[0]
    if not found:
        raise ValueError("BlazePose's detector finds nobody in the frame; bench-pose needs a picture of a person")
    roi = roi_from_points(found[0].keypoints[0], found[0].keypoints[1])
    calls: dict[tuple[str, str, int], Callable[[], object]] = {}
    for name, nets in models.items():
        calls[name, "detector", 1] = lambda nets=nets: nets["detector"]([frame], max_people=max_people)
        for count in batches:
            for kind in ("landmark", "landmark_without_segmentation"):
                calls[name, kind, count] = lambda net=nets[kind], rois=[roi] * count: net(frame, rois)
        calls[name, "selfie", 1] = lambda nets=nets: nets["selfie"]([frame])
    samples = sample_interleaved(calls, runs=repeats, warmup=warmup)
    report: dict = {name: {} for name in backends}
    for (name, kind, count), rows in samples.items():
        if kind in ("detector", "selfie"):
            report[name][kind] = {"ms": _stats(wall for wall, _ in rows), "cpu_ms": _stats(cpu for _, cpu in rows)}
        else:
            report[name].setdefault(kind, {})[str(count)] = {
                "batch_ms": _stats(wall for wall, _ in rows),
                "ms_per_person": _stats(wall / count for wall, _ in rows),
                "cpu_ms_per_person": _stats(cpu / count for _, cpu in rows)}
    return {
        "size": f"{frame.shape[1]}x{frame.shape[0]}",
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "people_detected": len(found),
        "goal_ms_per_person": POSE_GOAL_MS_PER_PERSON,
        "backends": report,
        "agreement": {name: _pose_agreement(models["torch"], models[name], frame, [roi], max_people)
                      for name in backends if name != "torch"},
    }


def _pose_agreement(reference: dict, other: dict, frame: np.ndarray, rois: list, max_people: int) -> dict:
    """Largest differences of `other`'s outputs from `reference`'s (bench_pose's models of two
    backends) on `frame`, and "agrees": all within POSE_TOLERANCES."""
    expected, got = (nets["detector"]([frame], max_people=max_people)[0] for nets in (reference, other))
    differences = {"detector_keypoints_px": max((float(np.abs(a.keypoints - b.keypoints).max())
                                                 for a, b in zip(expected, got)), default=0.0)
                   if len(expected) == len(got) else float("inf")}
    (theirs,), (mine,) = reference["landmark"](frame, rois), other["landmark"](frame, rois)
    scale = max(1.0, float(np.abs(theirs.segmentation).max()))
    differences.update({
        "landmarks_px": float(np.abs(mine.xyz[:33, :2] - theirs.xyz[:33, :2]).max()),
        "visibility": float(np.abs(mine.visibility - theirs.visibility).max()),
        "world_m": float(np.abs(mine.world - theirs.world).max()),
        "segmentation_logits": float(np.abs(mine.segmentation - theirs.segmentation).max()) / scale,
        "selfie_probability": float(np.abs(other["selfie"]([frame])[0] - reference["selfie"]([frame])[0]).max()),
    })
    return {**{key: round(value, 6) for key, value in differences.items()},
            "agrees": all(differences[key] <= limit for key, limit in POSE_TOLERANCES.items())}


def _stats(values) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(_percentile(ordered, 50), 2), "p95": round(_percentile(ordered, 95), 2)}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (getrusage: KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float:
    """This process's resident memory now in MiB (/proc/self/statm; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def bench_run(config: PipelineConfig, *, frames: int, warmup: int, record: bool = False) -> dict:
    """One run of `config`'s pipeline over `warmup` + `frames` frames of its source (a file
    played again at its end when `config.loop`), as `process` runs it (started: the capture
    thread decodes ahead, the inference thread runs the rest).
    Reports frames per second, latency percentiles, the mean ms of every stage (queue: a decoded
    frame's wait for the first step thread; handoff: its waits between step threads; scale_up:
    the results of a frame parsed at the parse size scaled to its size; encode and encode_queue
    with `record`), this process's CPU time per frame (all its threads), peak resident memory,
    the parser's backend and the sizes: the frames' (input_size), the copy parsed (parse_size)
    and the network's input; `source_fps` (Source.fps: measured for a camera that states none;
    None when unknown) and `dropped`: the source frames
    skipped over the whole run, warm-up included (a live source or --realtime pacing keeps only
    the newest frame); `unreadable`: an image folder's files skipped as unreadable
    (Source.skipped)."""
    pipeline = build_pipeline(config)
    results: list[tuple[float, dict, float]] = []
    cpu_marks: dict[int, float] = {}
    enough = threading.Event()
    wanted = frames + warmup

    def on_result(result) -> None:
        results.append((time.perf_counter(), result.timings_ms, result.latency_ms))
        if len(results) in (max(warmup, 1), wanted):
            cpu_marks[len(results)] = time.process_time()
        if len(results) >= wanted:
            enough.set()

    pipeline.subscribe(on_result)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = pipeline.start_recording(Path(tmp) / "bench.mp4", audio=False) if record else None
        try:
            info = pipeline.start()
            source = pipeline.source
            while not enough.is_set() and not pipeline.wait(0.1):
                pass
        finally:
            pipeline.stop()
    measured = results[warmup:wanted]
    if len(measured) < 2:
        raise ValueError(pipeline.error or f"{info.name} gave only {plural(len(results), 'frame')}; need more than "
                                           f"--warmup {warmup}")
    first = max(warmup, 1)  # the clock starts at the frame before the first one measured
    counted = len(results[first:wanted])
    wall_s = results[min(wanted, len(results)) - 1][0] - results[first - 1][0]
    cpu_end = cpu_marks.get(wanted, time.process_time())
    latencies = sorted(m[2] for m in measured)
    stage_names = list(dict.fromkeys(name for m in measured for name in m[1]))  # every stage that ran
    stages = {name: round(statistics.mean(m[1].get(name, 0.0) for m in measured), 2) for name in stage_names}
    if recorder is not None and recorder.frames_written:
        stages["encode"] = round(recorder.encode_ms_total / recorder.frames_written, 2)
        stages["encode_queue"] = round(recorder.queue_wait_ms_total / recorder.frames_written, 2)
    resolution = pipeline.stats.resolution
    parsed = resolution and (parse_copy_size(*resolution, config.parse_side) or resolution)
    network_input = getattr(pipeline.parser, "input_size", None)
    return {
        "source": info.name,
        "model": pipeline.stats.model,
        "backend": getattr(pipeline.parser, "backend", "torch"),
        "dtype": config.dtype,
        "device": pipeline.stats.device,
        "step_threads": pipeline.step_threads,
        "input_size": "x".join(map(str, resolution)) if resolution else None,
        "parse_size": "x".join(map(str, parsed)) if parsed else None,
        "network_input": "x".join(map(str, network_input(parsed))) if network_input and parsed else None,
        "frames": len(measured),
        "fps": round(counted / wall_s, 2),
        "latency_ms": {"p50": round(_percentile(latencies, 50), 2), "p95": round(_percentile(latencies, 95), 2)},
        "stages_ms": stages,
        "cpu_ms_per_frame": round((cpu_end - cpu_marks[first]) * 1000 / counted, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "source_fps": (source_fps := source.fps) and round(source_fps, 2),
        "dropped": source.dropped,
        "error": pipeline.error,
        "unreadable": source.skipped,
    }


COMPARE_BLOCK_FRAMES = 10
BLOCK_TIMEOUT_S = 120.0


def bench_compare(configs: dict[str, PipelineConfig], *, frames: int, warmup: int,
                  block: int = COMPARE_BLOCK_FRAMES) -> dict:
    """Two settings (`configs` "a" and "b"), each a started pipeline on its own reader of the
    same source (looped), run in turn `block` frames at a time, the order swapping every round,
    so machine load hits both alike; each runs as `process` runs it, its threads overlapping
    frames as its settings say, while the other is paused. A block's clock starts at its first
    result, so the pipe filling is not counted; the frames still in flight when it pauses are
    not counted either. Per setting: ms per frame (wall time over the frames counted), frames
    per second, latency percentiles, this process's CPU ms per frame (all threads), the mean ms
    per stage and the people per frame; then the ratios b / a; `unreadable`: an image folder's
    files skipped as unreadable by either (Source.skipped)."""
    pipelines = {name: build_pipeline(replace(config, loop=True)) for name, config in configs.items()}
    rows: dict[str, list[tuple[float, float, dict, float, int]]] = {name: [] for name in configs}
    counted: dict[str, list[tuple[float, float, dict, float, int]]] = {name: [] for name in configs}
    spans = {name: [0.0, 0.0] for name in configs}  # wall s, CPU s over the counted frames
    info = None
    for name, pipeline in pipelines.items():
        pipeline.playback.pause()
        pipeline.subscribe(lambda result, seen=rows[name]: seen.append(
            (time.perf_counter(), time.process_time(), result.timings_ms, result.latency_ms,
             len(result.parse.people))))
    try:
        for pipeline in pipelines.values():
            info = pipeline.start()
        sources = [pipeline.source for pipeline in pipelines.values()]
        for name in pipelines:
            _run_block(pipelines[name], rows[name], max(warmup, 1))
        order = list(configs)
        while min(len(counted[name]) for name in order) < frames:
            for name in order:
                block_rows = _run_block(pipelines[name], rows[name], min(block, frames - len(counted[name])) + 1)
                if len(block_rows) < 2:
                    raise ValueError(pipelines[name].error or f"{info.name} gave too few frames")
                counted[name] += block_rows[1:]
                spans[name][0] += block_rows[-1][0] - block_rows[0][0]
                spans[name][1] += block_rows[-1][1] - block_rows[0][1]
            order.reverse()
    finally:
        for pipeline in pipelines.values():
            pipeline.stop()
    settings = {}
    for name, samples in counted.items():
        stage_names = list(dict.fromkeys(stage for row in samples for stage in row[2]))
        frame_ms = spans[name][0] * 1000 / len(samples)
        latencies = sorted(row[3] for row in samples)
        settings[name] = {
            "backend": getattr(pipelines[name].parser, "backend", "torch"),
            "dtype": configs[name].dtype,
            "step_threads": pipelines[name].step_threads,
            "frame_ms": round(frame_ms, 2),
            "fps": round(1000 / frame_ms, 2),
            "latency_ms": {"p50": round(_percentile(latencies, 50), 2), "p95": round(_percentile(latencies, 95), 2)},
            "cpu_ms": round(spans[name][1] * 1000 / len(samples), 2),
            "stages_ms": {stage: round(statistics.mean(row[2].get(stage, 0.0) for row in samples), 2)
                          for stage in stage_names},
            "people_per_frame": round(statistics.mean(row[4] for row in samples), 2),
        }
    a, b = settings["a"], settings["b"]
    return {
        "source": info.name,
        "frames": len(counted["a"]),
        "block_frames": block,
        "settings": settings,
        "ratio": round(b["frame_ms"] / a["frame_ms"], 3),
        "cpu_ratio": round(b["cpu_ms"] / a["cpu_ms"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "unreadable": list(dict.fromkeys(name for source in sources for name in source.skipped)),
    }


def _run_block(pipeline, rows: list, count: int) -> list:
    """Plays a paused pipeline until `count` more results came (fewer at the end of a source that
    does not loop, or on a failure), pauses it and waits until its frames in flight are
    delivered; returns the `count` results' rows."""
    first = len(rows)
    pipeline.playback.resume()
    deadline = time.monotonic() + BLOCK_TIMEOUT_S
    while len(rows) < first + count and not pipeline.finished and time.monotonic() < deadline:
        time.sleep(0.002)
    pipeline.playback.pause()
    while pipeline.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    return rows[first:first + count]


FIRST_FRAME_TIMEOUT_S = 300.0


def bench_memory(config: PipelineConfig, *, seconds: float, interval_s: float, warmup_s: float,
                 record: bool = True) -> dict:
    """Resident memory of a run of `config` (meant looped and paced like a camera) sampled every
    `interval_s` for `seconds` from its first result on, recording to a temp file with `record`.
    Growth is measured from
    the first sample at or after `warmup_s`: `growth_after_warmup` (last / that - 1) and
    `max_growth_after_warmup` (highest / that - 1); a run that ends before it has them null and a
    `note` saying so. `peak_rss_mb`: the process's peak (getrusage), never below a sample (its
    high-water mark can trail a statm sample by some pages); `unreadable`: an image folder's files skipped as
    unreadable (Source.skipped)."""
    pipeline = build_pipeline(config)
    curve: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        if record:
            pipeline.start_recording(Path(tmp) / "memory.mp4", audio=False)
        try:
            info = pipeline.start()
            source = pipeline.source
            loading = time.monotonic() + FIRST_FRAME_TIMEOUT_S  # models load and calibrate before the clock starts
            while pipeline.stats.frames == 0 and not pipeline.wait(0.1) and time.monotonic() < loading:
                pass
            start = time.monotonic()
            while not pipeline.wait(min(interval_s, max(0.0, seconds - (time.monotonic() - start)))):
                elapsed = time.monotonic() - start
                curve.append({"t_s": round(elapsed, 1), "rss_mb": round(rss_mb(), 1), "frames": pipeline.stats.frames,
                              "dropped": pipeline.stats.dropped})
                if elapsed >= seconds:
                    break
        finally:
            pipeline.stop()
    warm = next((sample for sample in curve if sample["t_s"] >= warmup_s), None)
    after = [sample for sample in curve if warm is not None and sample["t_s"] >= warm["t_s"]]
    elapsed = curve[-1]["t_s"] if curve else 0.0
    frames = curve[-1]["frames"] if curve else 0
    return {
        "source": info.name,
        "seconds": elapsed,
        "frames": frames,
        "fps": round(frames / elapsed, 2) if elapsed else 0.0,
        "dropped": curve[-1]["dropped"] if curve else 0,
        "backend": getattr(pipeline.parser, "backend", "torch"),
        "dtype": config.dtype,
        "recorded": record,
        "rss_mb": {"warm": warm["rss_mb"] if warm else None, "last": curve[-1]["rss_mb"] if curve else None,
                   "max_after_warmup": max(s["rss_mb"] for s in after) if after else None},
        "growth_after_warmup": round(after[-1]["rss_mb"] / warm["rss_mb"] - 1, 4) if after else None,
        "max_growth_after_warmup": round(max(s["rss_mb"] for s in after) / warm["rss_mb"] - 1, 4) if after else None,
        "peak_rss_mb": round(max([peak_rss_mb(), *(sample["rss_mb"] for sample in curve)]), 1),
        **({} if warm else {"note": f"the run ({elapsed:g} s) ended before the {warmup_s:g} s warm-up: no growth "
                                    "measured (run longer than --warmup-seconds)"}),
        "curve": curve,
        "error": pipeline.error,
        "unreadable": source.skipped,
    }


def _percentile(sorted_values: list[float], q: float) -> float:
    index = (len(sorted_values) - 1) * q / 100
    low = int(index)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (index - low)


def bench_gpu(device: str, frame: np.ndarray, *, parts: tuple[str, ...], quick: bool = False) -> dict:
    """The GPU figures of the prepared check (`make gpu-check`), on `device` (also runs on the CPU:
    `quick` then uses small sizes and few repeats). `frame` is an H x W x 3 uint8 RGB picture of
    people. Parts:
    - bodypix: one 640x480 stream (parse per frame) and B streams batched (B frames parsed as one
      batch: ms per batch, per frame, and the most streams one batch serves at 30 FPS);
    - blazepose: the landmark network on batches of ROIs (ms per batch);
    - m2fp / schp: the fast path of M2FP-R101 (LIP, 512x384 canvas) and SCHP (LIP, 473x473) in
      fp32, fp16 and bf16 (bench-model's fast path, weights by the parity fixtures' rule: the
      published ones cannot be fetched automatically), with each one's label disagreement
      against the fp32 reference path."""
    import cv2

    from realtime.models import load_parser, resolve_device
    from realtime.models.reference_vs_fast import bench_model

    target = resolve_device(device)
    repeats, warmup = (2, 1) if quick else (20, 5)
    report: dict = {"device": str(target), "quick": quick}
    if target.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(target)
    stream = cv2.resize(frame, (160, 120) if quick else (640, 480), interpolation=cv2.INTER_AREA)
    if "bodypix" in parts:
        parser = load_parser("bodypix", device=target)
        single = _median_ms(lambda: parser.parse(stream), target, repeats=repeats, warmup=warmup)
        batched = {}
        for size in (1, 2) if quick else (1, 4, 8, 16, 32):
            frames = [stream] * size
            ms = _median_ms(lambda: parser.parse_batch(frames), target, repeats=repeats, warmup=warmup)
            batched[str(size)] = {"batch_ms": round(ms, 2), "frame_ms": round(ms / size, 2)}
        served = [int(size) for size, row in batched.items() if row["batch_ms"] <= 1000 / 30]
        report["bodypix"] = {"input": "x".join(map(str, stream.shape[1::-1])), "backend": parser.backend,
                             "single_stream_ms": round(single, 2), "single_stream_fps": round(1000 / single, 1),
                             "batched": batched, "streams_at_30fps": max(served, default=0)}
    if "blazepose" in parts:
        from realtime.models.blazepose_landmark import BlazePoseLandmarker, roi_from_points

        landmarker = BlazePoseLandmarker(device=target)
        height, width = stream.shape[:2]
        roi = roi_from_points(np.array([width / 2, height / 2]), np.array([width / 2, height * 0.1]))
        report["blazepose"] = {str(count): round(_median_ms(lambda: landmarker(stream, [roi] * count), target,
                                                            repeats=repeats, warmup=warmup), 2)
                               for count in ((1, 2) if quick else (1, 4, 16, 64))}
    for name, size in (("m2fp", (384, 512) if not quick else (96, 128)), ("schp", (473, 473) if not quick else (97, 97))):
        if name not in parts:
            continue
        image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        rows = {}
        for dtype in ("fp32", "fp16", "bf16"):
            result = bench_model(f"{name}-lip", image, device=str(target), dtype=dtype, threads=None,
                                 repeats=repeats, warmup=warmup)
            rows[dtype] = {"fast_ms": result["fast"]["total_ms"], "fast_fps": result["fast_fps"],
                           "label_disagreement_vs_reference_fp32": result["label_disagreement"]}
        report[name] = {"model": f"{name}-lip", "input": f"{size[0]}x{size[1]}", "weights": result["weights"], **rows}
    return report


def _median_ms(call: Callable[[], object], device: torch.device, *, repeats: int, warmup: int) -> float:
    """Median wall ms of `call` (the device synchronised after each)."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
