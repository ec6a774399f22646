"""Where a network's forward runs on the CPU: PyTorch itself, onnxruntime or OpenVINO.

The three run the same graph: onnxruntime and OpenVINO read the ONNX export of the very module
PyTorch runs (`export_onnx`), so their outputs agree with PyTorch's to float rounding. `auto`
builds every backend that installs here, checks that each agrees with PyTorch on the actual
input, times them interleaved (so machine load hits all alike) and keeps the fastest; the choice
is remembered per machine in a JSON file (`BackendCache`, in the user cache folder), keyed by
the model, its input shape, the thread count, the processor's model and the library versions,
so the calibration runs once; the ONNX exports are kept on disk beside it (`OnnxCache`), so
later processes skip the tracing too. On CUDA only PyTorch runs.

The dtype (`DTYPES`, the run option --dtype) is what the networks compute in: "fp32", or "bf16"
(bfloat16), which on the CPU runs on OpenVINO alone (its bf16 inference precision; on CPUs that
compute bf16 natively) and on CUDA under PyTorch's autocast. bf16 is not raced nor cached: no
other backend computes in it.

A Graph maps an N x C x H x W float32 tensor to a tuple of tensors, as the module's forward does.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import platformdirs
import torch
from torch import nn

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino")
BACKEND_CHOICES = ("auto", *BACKENDS)
BACKEND_CACHE_ENV = "PARTSIGHT_BACKEND_CACHE"
DTYPES = ("fp32", "bf16")
# the torch dtype autocast computes in for each dtype name (None: autocast off, float32): DTYPES,
# and fp16, which bench-model's fast path is also measured in
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# outputs agree when max |a - b| <= TOLERANCE * max(1, max |a|) for every output
TOLERANCE = 1e-3
SLOW_FACTOR = 3.0
# how calibrations were timed (see _race): a cache entry timed another way is calibrated again
CALIBRATION_RACE = "best-of-rounds"
ONNX_OPSET = 17


class Graph(Protocol):
    backend: str

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


class TupleOutputs(nn.Module):
    """`module` whose forward returns one tensor, returning it as a 1-tuple (what a Graph gives)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.module(x),)


class GraphCache:
    """The graphs of one network, one per input shape, built at first use on `backend` ("auto":
    calibrated_graph under `model`'s name; with `dtype` "bf16", OpenVINO on the CPU, PyTorch
    elsewhere) computing in `dtype` (DTYPES), and kept (the least recently used past `capacity`
    goes). ValueError for an unknown backend or dtype; at the first call, for a dtype the backend
    cannot compute in here (check_dtype)."""

    def __init__(self, module: nn.Module, *, backend: str, model: str, dtype: str = "fp32",
                 capacity: int = 6) -> None:
        if backend not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend '{backend}'; choose from {', '.join(BACKEND_CHOICES)}")
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype '{dtype}'; choose from {', '.join(DTYPES)}")
        self.module = module.eval()
        self.backend_choice = backend
        self.dtype = dtype
        self.model = model
        self.capacity = capacity
        self.built = 0
        self.backend: str | None = None  # of the last graph that ran
        self._graphs: dict[tuple[int, ...], Graph] = {}

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = tuple(batch.shape)
        graph = self._graphs.pop(key, None)
        if graph is None:
            if self.backend_choice == "auto" and self.dtype == "fp32":
                graph = calibrated_graph(self.module, batch, model=self.model)
            else:
                backend = self.backend_choice
                if backend == "auto":
                    backend = "openvino" if batch.device.type == "cpu" else "torch"
                graph = build_graph(backend, self.module, batch, dtype=self.dtype)
            self.built += 1
        self._graphs[key] = graph  # the most recently used last
        while len(self._graphs) > self.capacity:
            del self._graphs[next(iter(self._graphs))]
        self.backend = graph.backend
        return graph(batch)


class TorchGraph:
    """The module itself: on the CPU a frozen, oneDNN-optimised TorchScript trace of it (traced at
    construction on `example`'s shape; other shapes need their own), elsewhere eager, with
    `dtype` "bf16" under autocast to bfloat16 (outputs float32). bf16 on the CPU: ValueError
    (check_dtype)."""

    backend = "torch"

    def __init__(self, module: nn.Module, example: torch.Tensor, *, dtype: str = "fp32") -> None:
        check_dtype(dtype, self.backend, example.device)
        self._autocast = AUTOCAST_DTYPES[dtype]
        if example.device.type != "cpu":
            self._run = module
            return
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(module, example, check_trace=False)
            self._run = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=self._autocast or torch.float32,
                                                    enabled=self._autocast is not None):
            return tuple(output.float() for output in self._run(batch))


class OnnxRuntimeGraph:
    """An onnxruntime CPU session over an ONNX graph with one input. Worker threads do not spin
    while idle: on a busy laptop spinning threads steal the cores from the other stages."""

    backend = "onnxruntime"

    def __init__(self, onnx_model: bytes, *, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self._session.run(None, {self._input: _as_numpy(batch)})
        return tuple(torch.from_numpy(output) for output in outputs)


class OpenVinoGraph:
    """An OpenVINO CPU model compiled for one input shape (static shapes run fastest), computing in
    `dtype` (the inference precision: fp32 unless "bf16" is asked for, never the bf16 some CPUs
    default to; inputs and outputs float32 either way), latency hint, threads not pinned to
    cores."""

    backend = "openvino"

    def __init__(self, onnx_model: bytes, shape: tuple[int, ...], *, threads: int, dtype: str = "fp32") -> None:
        import openvino

        core = openvino.Core()
        model = core.read_model(onnx_model)
        model.reshape(list(shape))
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[dtype],
            "ENABLE_CPU_PINNING": False,
        })
        self._request = compiled.create_infer_request()
        self._outputs = len(compiled.outputs)

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._request.infer({0: _as_numpy(batch)})
        # the request's output buffers are overwritten by the next call: copy them out
        return tuple(torch.from_numpy(self._request.get_output_tensor(i).data.copy()) for i in range(self._outputs))


OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """What a network PyTorch runs eagerly on `device` computes in under autocast for the run's
    `dtype` (DTYPES): on CUDA AUTOCAST_DTYPES[dtype] (fp32: None, autocast off); on the CPU None
    (there it computes in float32, or a graph backend computes in `dtype`, check_dtype). ValueError
    for a dtype not in DTYPES."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; choose from {', '.join(DTYPES)}")
    return AUTOCAST_DTYPES[dtype] if device.type == "cuda" else None


def check_dtype(dtype: str, backend: str, device: torch.device) -> None:
    """ValueError (one line, saying why) unless networks on `backend` ("auto" or one of BACKENDS)
    and `device` can compute in `dtype` here: fp32 always; bf16 on CUDA (PyTorch's autocast) and,
    on the CPU, on OpenVINO ("auto" or "openvino") when it is installed and the CPU computes bf16
    natively (OpenVINO's CPU OPTIMIZATION_CAPABILITIES holds "BF16")."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; choose from {', '.join(DTYPES)}")
    if dtype == "fp32" or device.type != "cpu":
        return
    if backend not in ("auto", "openvino"):
        raise ValueError(f"--dtype {dtype} runs on OpenVINO on the CPU, not on --backend {backend}; "
                         "use --backend openvino (or auto) or --dtype fp32")
    missing = cpu_bf16_missing()
    if missing:
        raise ValueError(f"--dtype {dtype} cannot run here: {missing}; use --dtype fp32")


@functools.lru_cache(maxsize=1)
def cpu_bf16_missing() -> str | None:
    """Why this CPU cannot compute bf16 on OpenVINO, or None when it can."""
    try:
        import openvino
    except ImportError:
        return "on the CPU it runs on OpenVINO, which is not installed (pip install openvino)"
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "BF16" not in capabilities:
        return f"this CPU does not compute bfloat16 natively (OpenVINO's CPU capabilities: {', '.join(capabilities)})"
    return None


def _as_numpy(batch: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)


# torch.onnx.export keeps its state in module globals: two exports at once (two models loading in
# a service's threads) break each other, so they take turns.
_EXPORT_LOCK = threading.Lock()


def export_onnx(module: nn.Module, example: torch.Tensor) -> bytes:
    """The ONNX graph (ONNX_OPSET, PyTorch's TorchScript-based exporter) of `module` traced on
    `example`; input "images", batch, height and width dynamic. Python branches on the input's
    shape are fixed at the example's shape, as in a TorchScript trace."""
    buffer = io.BytesIO()
    with _EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example.detach().cpu(),), buffer, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["images"],
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}})
    return buffer.getvalue()


ONNX_CACHE_FILES = 48


class OnnxCache:
    """ONNX exports kept on disk, so that a process after the first reads the export of a network
    instead of tracing it again (export_onnx takes about 2 s per BlazePose network on a 2-core
    CPU, before the first frame). A file per module, input shape and what the export depends on
    (`onnx_key`); at most `capacity` files, the least recently used go. The folder is the backend
    cache's (BackendCache) with "-onnx" after its name. A file that cannot be read or written costs
    an export, nothing else."""

    def __init__(self, folder: str | Path | None = None, *, capacity: int = ONNX_CACHE_FILES) -> None:
        if folder is None:
            cache_file = BackendCache().path
            folder = cache_file.with_name(f"{cache_file.stem}-onnx")
        self.folder = Path(folder)
        self.capacity = capacity

    def export(self, module: nn.Module, example: torch.Tensor) -> bytes:
        """export_onnx(module, example), read from the cache when an earlier process made it."""
        shape = "x".join(map(str, example.shape))
        path = self.folder / f"{type(module).__name__}-{shape}-{onnx_key(module, example)[:24]}.onnx"
        try:
            onnx_model = path.read_bytes()
            os.utime(path)
            return onnx_model
        except OSError:
            pass
        onnx_model = export_onnx(module, example)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self.folder, suffix=".tmp", delete=False) as f:
                f.write(onnx_model)
            os.replace(f.name, path)
            self._evict()
        except OSError:
            log.info("cannot write the ONNX cache %s", self.folder, exc_info=True)
        return onnx_model

    def _evict(self) -> None:
        files = sorted(self.folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime)
        for old in files[:max(0, len(files) - self.capacity)]:
            old.unlink(missing_ok=True)


def onnx_key(module: nn.Module, example: torch.Tensor) -> str:
    """sha256 of what an ONNX export depends on: the module's structure (every submodule's class
    and plain settings, such as a branch switched off), its parameters and buffers (names,
    shapes, values), the example's shape and dtype, the PyTorch version, the opset and this
    package's code (a changed forward anywhere in it is a new export)."""
    digest = hashlib.sha256()
    structure = [(name, type(sub).__qualname__, sorted((key, repr(value)) for key, value in vars(sub).items()
                                                       if isinstance(value, (bool, int, float, str, tuple))))
                 for name, sub in module.named_modules()]
    for part in (repr(structure), str(tuple(example.shape)), str(example.dtype), torch.__version__,
                 str(ONNX_OPSET), _package_code_digest()):
        digest.update(part.encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _package_code_digest() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def available_backends() -> tuple[str, ...]:
    """The backends whose libraries import here (PyTorch always)."""
    found = ["torch"]
    for name, module in (("onnxruntime", "onnxruntime"), ("openvino", "openvino")):
        try:
            __import__(module)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def build_graph(backend: str, module: nn.Module, example: torch.Tensor, *, dtype: str = "fp32",
                threads: int | None = None, onnx_model: bytes | None = None) -> Graph:
    """`module` (eval mode, returning a tuple) on `backend` for inputs of `example`'s shape,
    computing in `dtype` (ValueError where it cannot: check_dtype). onnxruntime and OpenVINO run
    on the CPU only (ValueError for an example elsewhere) and read `onnx_model` (default: the
    module's export, from the OnnxCache when there)."""
    if backend == "torch":
        return TorchGraph(module, example, dtype=dtype)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}'; choose from {', '.join(BACKEND_CHOICES)}")
    if example.device.type != "cpu":
        raise ValueError(f"the {backend} backend runs on the CPU; use --device cpu or --backend torch")
    check_dtype(dtype, backend, example.device)
    threads = threads or torch.get_num_threads()
    onnx_model = onnx_model or OnnxCache().export(module, example)
    if backend == "onnxruntime":
        return OnnxRuntimeGraph(onnx_model, threads=threads)
    return OpenVinoGraph(onnx_model, tuple(example.shape), threads=threads, dtype=dtype)


def agrees(reference: tuple[torch.Tensor, ...], outputs: tuple[torch.Tensor, ...],
           tolerance: float = TOLERANCE) -> bool:
    """Same shapes and every output within `tolerance` of the reference, relative to its scale."""
    if len(reference) != len(outputs):
        return False
    for expected, got in zip(reference, outputs):
        expected, got = expected.float().cpu(), got.float().cpu()
        if expected.shape != got.shape:
            return False
        if (expected - got).abs().max() > tolerance * max(1.0, float(expected.abs().max())):
            return False
    return True


def time_interleaved(calls: dict[str, Callable[[], object]], *, runs: int, warmup: int) -> dict[str, float]:
    """Median ms per call of each callable (sample_interleaved's wall times)."""
    return {name: statistics.median(wall for wall, _ in samples)
            for name, samples in sample_interleaved(calls, runs=runs, warmup=warmup).items()}


def sample_interleaved(calls: dict[str, Callable[[], object]], *, runs: int,
                       warmup: int) -> dict[str, list[tuple[float, float]]]:
    """(wall ms, CPU ms of this process, all threads) of each call of each callable, called in
    turn so that load hits all alike; the order rotates every round, so none always follows the
    same one (a library whose workers stay busy after its call slows whichever call comes next).
    The first `warmup` rounds are not kept."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    order = list(calls)
    for i in range(warmup + runs):
        shift = i % len(order)
        for name in order[shift:] + order[:shift]:
            start, start_cpu = time.perf_counter(), time.process_time()
            calls[name]()
            if i >= warmup:
                samples[name].append(((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000))
    return samples


def _race(graphs: dict[str, Graph], example: torch.Tensor, *, runs: int, warmup: int,
          budget_s: float) -> dict[str, float]:
    """The best (least) ms per call of each graph over the timed rounds, called in turn (the
    order rotating). The best, not the median: other work on the machine only ever adds to a
    call's time, so the least time of a few calls is the one least disturbed (on 2 busy cores the
    medians of BlazePose's landmark network ranked onnxruntime and OpenVINO differently from one
    race to the next, the best times the same way every time). A graph whose best, from its second
    call on, is more than SLOW_FACTOR times the best of all is out (it cannot win, and on a loaded
    machine one call can take seconds); timing ends after `runs` rounds or, once a round was
    timed, when `budget_s` has passed."""
    times: dict[str, list[float]] = {name: [] for name in graphs}
    racing = dict(graphs)
    deadline = time.monotonic() + budget_s
    for round_index in range(warmup + runs):
        names = list(racing)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            racing[name](example)
            times[name].append((time.perf_counter() - start) * 1000)
        fastest = min(min(times[name]) for name in racing)
        for name in list(racing):
            if len(racing) > 1 and len(times[name]) > 1 and min(times[name]) > SLOW_FACTOR * fastest:
                del racing[name]
        if round_index >= warmup and time.monotonic() > deadline:
            break
    timed = {name: values[warmup:] or values[-1:] for name, values in times.items()}
    return {name: min(values) if name in racing else math.inf for name, values in timed.items()}


class BackendCache:
    """The calibration results of this machine: a JSON object {key: {"backend", "ms"}} in the
    user cache folder ($PARTSIGHT_BACKEND_CACHE: another file). A damaged file is started anew."""

    def __init__(self, path: str | Path | None = None) -> None:
        override = os.environ.get(BACKEND_CACHE_ENV)
        self.path = Path(path or override or platformdirs.user_cache_path("partsight") / "backends.json")

    def _entries(self) -> dict:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> str | None:
        entry = self._entries().get(key)
        backend = entry.get("backend") if isinstance(entry, dict) else None
        return backend if backend in BACKENDS else None

    def put(self, key: str, backend: str, ms: dict[str, float]) -> None:
        entries = self._entries()
        entries[key] = {"backend": backend,
                        "ms": {name: round(value, 3) if math.isfinite(value) else None for name, value in ms.items()}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, suffix=".tmp", delete=False) as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(f.name, self.path)
        except OSError:  # a read-only cache folder costs a calibration per run, nothing else
            log.info("cannot write the backend cache %s", self.path, exc_info=True)


@functools.cache
def cpu_model() -> str:
    """The processor's model, e.g. "AMD EPYC 7B13 64-Core Processor": Linux's /proc/cpuinfo
    (cpuinfo_model), macOS's sysctl machdep.cpu.brand_string, elsewhere platform.processor(); the
    architecture ("x86_64") where none of them tells."""
    name = ""
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
                name = cpuinfo_model(cpuinfo.read())
        elif sys.platform == "darwin":
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=10).stdout
        else:
            name = platform.processor()
    except (OSError, subprocess.SubprocessError):
        pass
    return " ".join(name.split()) or platform.machine()


def cpuinfo_model(text: str) -> str:
    """The processor's model from the text of Linux's /proc/cpuinfo: its first "model name"
    (x86), else its first core's "CPU implementer" and "CPU part" codes (ARM, whose cpuinfo names
    no model: "implementer 0x41 part 0xd0c" is an Arm Neoverse N1); "" when it has neither."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        field, _, value = line.partition(":")
        fields.setdefault(field.strip(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    if fields.get("CPU implementer") and fields.get("CPU part"):
        return f"implementer {fields['CPU implementer']} part {fields['CPU part']}"
    return ""


def calibration_key(model: str, shape: tuple[int, ...], threads: int) -> str:
    """What a calibration result depends on: model (and head set), input shape, threads, the
    processor's model (cpu_model: a cache folder shared between machines holds each one's own
    races), the libraries' versions and how the race is timed."""
    versions = [f"torch={torch.__version__}"]
    for module in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{module}={__import__(module).__version__}")
        except ImportError:
            versions.append(f"{module}=none")
    return "|".join([model, "x".join(map(str, shape)), f"threads={threads}", f"cpu={cpu_model()}", *versions,
                     f"race={CALIBRATION_RACE}"])


def calibrated_graph(module: nn.Module, example: torch.Tensor, *, model: str,
                     cache: BackendCache | None = None, runs: int = 9, warmup: int = 3,
                     budget_s: float = 3.0) -> Graph:
    """The fastest backend for `module` on inputs of `example`'s shape (see the module doc).
    Backends that fail to build or disagree with PyTorch are left out (and logged); the timing
    takes about `budget_s` at most (see _race)."""
    if example.device.type != "cpu":
        return TorchGraph(module, example)
    cache = cache or BackendCache()
    threads = torch.get_num_threads()
    key = calibration_key(model, tuple(example.shape), threads)
    remembered = cache.get(key)
    if remembered in available_backends():
        return build_graph(remembered, module, example, threads=threads)
    with torch.inference_mode():
        reference = tuple(module(example))
    onnx_model = OnnxCache().export(module, example)
    graphs: dict[str, Graph] = {}
    for backend in available_backends():
        try:
            graph = build_graph(backend, module, example, threads=threads, onnx_model=onnx_model)
            if not agrees(reference, graph(example)):
                log.warning("backend %s disagrees with PyTorch on %s; not used", backend, model)
                continue
        except Exception:  # noqa: BLE001 - a backend that cannot run here is simply not a candidate
            log.warning("backend %s cannot run %s here; not used", backend, model, exc_info=True)
            continue
        graphs[backend] = graph
    ms = _race(graphs, example, runs=runs, warmup=warmup, budget_s=budget_s)
    best = min(ms, key=ms.get)
    log.info("backend calibration for %s: %s -> %s", key, {k: round(v, 2) for k, v in ms.items()}, best)
    cache.put(key, best, ms)
    return graphs[best]
