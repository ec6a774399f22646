"""Shared test data: real clips from PARTSIGHT_MEDIA_DIR, weights from PARTSIGHT_WEIGHTS_DIR."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
os.environ.setdefault("PARTSIGHT_WEIGHTS_DIR", str(SHARED / "weights"))
os.environ.setdefault("PARTSIGHT_MEDIA_DIR", str(SHARED / "media"))
# the tests' log, apart from the user's (realtime/logs.py), one per test process: pytest-xdist's
# workers (`make test` runs two) inherit the environment of the process that started them
if "PARTSIGHT_LOG_FILE" not in os.environ or "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["PARTSIGHT_LOG_FILE"] = str(Path(tempfile.gettempdir()) / f"partsight-tests-{os.getpid()}.log")
# the tests' backend calibrations (realtime/models/backends.py), apart from the user's and kept
# between runs on this machine, as the user's are
os.environ.setdefault("PARTSIGHT_BACKEND_CACHE", str(Path(tempfile.gettempdir()) / "partsight-tests-backends.json"))


def nvidia_gpu_present() -> bool:
    """An NVIDIA GPU is on this machine (its driver's device node or tool), usable or not."""
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


RAY_FILES = {"test_batch.py", "test_serve_ray.py"}  # the test files that start Ray clusters


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`make test`'s workers (pytest-xdist's --dist loadfile) take a test file each at a time, and
    the files that start Ray share one, so that two Rays never run at once. (xdist's loadgroup
    would do it with marks, but cannot rename pytest 9.2's node IDs.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class RayFilesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "ray" if Path(scope).name in RAY_FILES else scope

    return RayFilesTogether(config, log)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `cuda` run where PyTorch sees a GPU; where there is an NVIDIA GPU it cannot
    use (or PARTSIGHT_REQUIRE_CUDA=1, as `make gpu-check` sets) they fail: a broken CUDA setup
    must never pass as skipped. Elsewhere they are skipped."""
    if item.get_closest_marker("cuda") is None or torch.cuda.is_available():
        return
    if nvidia_gpu_present() or os.environ.get("PARTSIGHT_REQUIRE_CUDA") == "1":
        pytest.fail(f"CUDA is broken here: an NVIDIA GPU is present (or required) but PyTorch {torch.__version__} "
                    f"(built for CUDA {torch.version.cuda}) cannot use it", pytrace=False)
    pytest.skip("no NVIDIA GPU here")


@pytest.fixture(scope="session")
def media_dir() -> Path:
    path = Path(os.environ["PARTSIGHT_MEDIA_DIR"])
    if not path.is_dir():
        pytest.fail(f"PARTSIGHT_MEDIA_DIR={path} is not a folder; point it at the shared media")
    return path


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return Path(os.environ["PARTSIGHT_WEIGHTS_DIR"])


@pytest.fixture(scope="session")
def truncated_tiff() -> bytes:
    """A real photo (CCP's img_0002.jpg) as a TIFF the way libtiff writes one (its directory and
    the tags' data at the end), cut 4 bytes short: its last tag's data is missing. PIL warns
    "Truncated File Read" on it, libtiff prints a TIFF_Error."""
    import cv2
    from _paths import datasets_dir

    photo = cv2.imread(str(datasets_dir() / "ccp_dev" / "img_0002.jpg"))
    if photo is None:
        pytest.fail(f"no CCP photo in {datasets_dir() / 'ccp_dev'}; point PARTSIGHT_FIXTURES_DIR at the shared fixtures")
    return cv2.imencode(".tif", photo)[1].tobytes()[:-4]


@pytest.fixture(scope="session")
def single_clip(media_dir: Path) -> Path:
    return media_dir / "pose2sim-single-cam01.mp4"


def read_frames(path: Path, indices: list[int]) -> list[np.ndarray]:
    wanted = set(indices)
    frames = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return [frames[i] for i in indices]


@pytest.fixture(scope="session")
def single_frames(single_clip: Path) -> list[np.ndarray]:
    return read_frames(single_clip, [0, 30, 60, 99])


@pytest.fixture(scope="session")
def bodypix():
    from realtime.models import load_parser

    return load_parser("bodypix", device="cpu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """The parity fixtures were made on a 2-core machine; one thread is fastest while other
    jobs share it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("partsight-")]


@pytest.fixture
def engine_threads_joined():
    """Fails the test when a pipeline, source, recorder or webcam probe thread outlives it: each
    has an owner that joins it, so none is left when the test ends (no grace)."""
    yield
    assert not engine_threads(), "an engine thread outlived its owner"


MAIN = Path(__file__).resolve().parents[1] / "main.py"


def kill_process_after_lines(args: list[str], metrics: Path, lines: int, timeout_s: float = 180, *,
                             sig: signal.Signals = signal.SIGKILL, again_after_s: float | None = None,
                             as_a_terminal_shows: bool = False) -> subprocess.CompletedProcess:
    """Runs `main.py ARGS` (writing the JSONL `metrics`) and sends it `sig` (default SIGKILL) once
    that file holds `lines` lines, and again `again_after_s` later when given; fails the test when
    the process ended or stalled before. Returns how it ended (exit status, stdout and stderr as
    text); `as_a_terminal_shows`: stderr merged into stdout, each line written when printed (as in
    a terminal), stderr None."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"} if as_a_terminal_shows else None
    process = subprocess.Popen([sys.executable, str(MAIN), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT if as_a_terminal_shows else subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.05)
    assert process.poll() is None, (process.stderr or process.stdout).read()
    process.send_signal(sig)
    if again_after_s is not None:
        time.sleep(again_after_s)
        if process.poll() is None:
            process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# Before a window's first frame the models load and their CPU graphs are built (and, once per
# machine and input shape, calibrated: realtime/models/backends.py): seconds on a quiet laptop,
# minutes on a loaded 2-core runner. Waits are on the window's frame signal, so a generous
# deadline costs nothing when frames come quickly.
FIRST_FRAMES_TIMEOUT_S = 300


def wait_for_frames(qtbot, window, count: int = 1, *, until=None, timeout_s: float = FIRST_FRAMES_TIMEOUT_S) -> None:
    """Waits on `window.frame_shown` until it has shown `count` frames and `until()` (if given)
    holds for the frame on screen; fails after `timeout_s`."""
    def done(*_) -> bool:
        return window.frames_shown >= count and (until is None or bool(until()))

    if done():
        return
    with qtbot.waitSignal(window.frame_shown, timeout=int(timeout_s * 1000), check_params_cb=done,
                          raising=True):
        pass


def open_window(qtbot, tmp_path: Path, **config):
    """The app's MainWindow on a PipelineConfig(device="cpu", **config), shown, with its settings
    and output folder in tmp_path; the caller closes it."""
    from PyQt6.QtCore import QSettings

    from gui.main_window import MainWindow
    from gui.session import Session
    from realtime.config import PipelineConfig

    settings = QSettings(str(tmp_path / "partsight.ini"), QSettings.Format.IniFormat)
    settings.setValue("output_dir", str(tmp_path / "out"))
    window = MainWindow(Session(PipelineConfig(device="cpu", **config)), settings)
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window_settings(tmp_path: Path):
    """The window's settings in a file of the test's own, writing into tmp_path/out."""
    from PyQt6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "partsight.ini"), QSettings.Format.IniFormat)
    settings.setValue("output_dir", str(tmp_path / "out"))
    return settings


@pytest.fixture
def make_window(qtbot, window_settings):
    """make_window(max_people=1, **settings) -> a shown MainWindow on the CPU; every window made
    is closed at the end (a recording still running is stopped first, so closing never asks)."""
    from gui.main_window import MainWindow
    from gui.session import Session
    from realtime.config import PipelineConfig

    windows = []

    def make(max_people: int = 1, **values):
        for key, value in values.items():
            window_settings.setValue(key, value)
        window = MainWindow(Session(PipelineConfig(device="cpu", max_people=max_people)), window_settings)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.recording_panel.recording_path is not None:
            window.recording_panel.stop_recording()
        window.close()
