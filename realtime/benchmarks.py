"""Speed measurements that print JSON: the parser against onnxruntime on the same inputs, and
the cost of multi-person decoding in the whole frame."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np
import torch

from realtime.models.bodypix import SINGLE_PERSON_HEADS, BodyPixParser
from realtime.types import Frame

PARSER_BENCH_SIZES = ((321, 241), (481, 321), (641, 481))


def _onnxruntime_session(onnx_path: str, threads: int):
    """An onnxruntime session over the graph with its initializers removed from the graph
    inputs (as shipped they block constant folding, which would handicap onnxruntime)."""
    import onnx
    import onnxruntime

    model = onnx.load(onnx_path)
    constants = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in constants]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    # Spinning worker threads would steal the cores from the interleaved torch runs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def bench_parser(parser: BodyPixParser, onnx_path: str, frame: np.ndarray, *, repeats: int = 30,
                 warmup: int = 5, sizes: tuple[tuple[int, int], ...] = PARSER_BENCH_SIZES) -> dict:
    """ms per forward of the torch parser vs onnxruntime, interleaved so load hits both alike."""
    import cv2

    threads = torch.get_num_threads()
    try:
        session = _onnxruntime_session(onnx_path, threads)
    except ImportError:
        session = None
    rows = []
    for width, height in sizes:
        image = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        batch = torch.from_numpy(image).permute(2, 0, 1)[None].float().contiguous()
        ort_input = {"input": (image.astype(np.float32) / 127.5 - 1.0)[None]}
        runs: dict[str, Callable[[], object]] = {"torch": lambda: parser.infer(batch, SINGLE_PERSON_HEADS)}
        if session is not None:
            runs["onnxruntime"] = lambda: session.run(None, ort_input)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(warmup + repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if i >= warmup:
                    times[name].append((time.perf_counter() - start) * 1000)
        row = {"size": f"{width}x{height}"}
        for name, values in times.items():
            row[f"{name}_ms"] = round(statistics.median(values), 2)
        if session is not None:
            row["torch_over_onnxruntime"] = round(row["torch_ms"] / row["onnxruntime_ms"], 3)
        rows.append(row)
    return {
        "model": parser.spec.name,
        "device": str(parser.device),
        "threads": threads,
        "repeats": repeats,
        "onnxruntime": session is not None,
        "sizes": rows,
    }


def bench_max_people(baseline, candidate, frames: list[Frame], *, warmup: int = 5) -> dict:
    """Frame time (parse, stages, render) of two unstarted Pipelines that differ only in
    max_people, on the same frames, interleaved so machine load hits both alike. Medians of
    wall time and of this process's CPU time (all its threads), which other processes on a
    shared machine disturb less."""
    times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    cpu_times: dict[str, list[float]] = {"baseline": [], "candidate": []}
    people: list[int] = []
    for i, frame in enumerate(frames):
        for name, pipeline in (("baseline", baseline), ("candidate", candidate)):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = pipeline.process(frame)
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
                cpu_times[name].append((time.process_time() - start_cpu) * 1000)
                if name == "candidate":
                    people.append(len(result.parse.people))
    if not people:
        raise ValueError(f"need more than {warmup} frames")
    baseline_ms = statistics.median(times["baseline"])
    candidate_ms = statistics.median(times["candidate"])
    return {
        "frames": len(people),
        "baseline_ms": round(baseline_ms, 2),
        "candidate_ms": round(candidate_ms, 2),
        "ratio": round(candidate_ms / baseline_ms, 3),
        "baseline_cpu_ms": round(statistics.median(cpu_times["baseline"]), 2),
        "candidate_cpu_ms": round(statistics.median(cpu_times["candidate"]), 2),
        "cpu_ratio": round(statistics.median(cpu_times["candidate"]) / statistics.median(cpu_times["baseline"]), 3),
        "people_per_frame": round(statistics.mean(people), 2),
    }
