"""The prepared GPU check (`make gpu-check`): every CUDA test and the GPU benchmarks, one JSON.

    python3 tests/gpu_check.py [--venv .venv-gpu] [--bundle DIR] [--budget-s 470]
    python3 tests/gpu_check.py --dry-run        # here, on the CPU: the same steps, CPU-sized

Steps, each under a share of the time budget (the whole check must end within 8 minutes):
  1. setup: the venv (default .venv-gpu). When the Python running this already holds a CUDA build
     of PyTorch (a GPU machine's image), the venv sees that Python's packages (a .pth file);
     otherwise torch==2.13.0 is installed from PyPI, whose Linux wheel is the CUDA build. Engine
     packages still missing (av, platformdirs, tflite, ...) come from --bundle's wheels/ folder
     (offline: `make gpu-bundle` fills it) or the package registry.
  2. cuda: PyTorch's CUDA build, the GPU, and one matrix product on it.
  3. tests: every test marked `cuda` (tests/test_*.py), with PARTSIGHT_REQUIRE_CUDA=1 so that a
     test that cannot use the GPU fails instead of skipping; each skip is listed with its reason.
  4. bench_gpu: `main.py bench-gpu` (BodyPix single and batched 640x480 streams, BlazePose ROI
     batches, M2FP-R101 and SCHP at 384x512 / 473x473 in fp32/fp16/bf16 with the fixture-rule
     weights).
  5. bench_1080p: `main.py bench` with the defaults and --device cuda on the 1080x1920 clip
     pose2sim-single-cam01.mp4, and again with --exercise squat (the BlazePose stage on).
Data: weights, media and the M2FP fixture image from --bundle (weights/, media/, fixtures/),
else $PARTSIGHT_WEIGHTS_DIR / $PARTSIGHT_MEDIA_DIR / $PARTSIGHT_FIXTURES_DIR, else shared/ in
the repository, else ../shared. Prints {"ok": ..., "elapsed_s": ..., step: result, "errors": [...]}
and exits 1 unless every step passed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = "pose2sim-single-cam01.mp4"
# import name -> distribution, for what the engine and its CUDA tests import
ENGINE_PACKAGES = {"numpy": "numpy", "cv2": "opencv-python-headless", "av": "av", "onnx": "onnx",
                   "platformdirs": "platformdirs", "tqdm": "tqdm", "tflite": "tflite",
                   "flatbuffers": "flatbuffers", "pytest": "pytest", "pytest_timeout": "pytest-timeout"}
TORCH = "torch==2.13.0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(REPO / ".venv-gpu"))
    parser.add_argument("--bundle", help="folder with weights/, media/, fixtures/ and wheels/ (make gpu-bundle)")
    parser.add_argument("--budget-s", type=float, default=470.0, help="time for all steps (default 470)")
    parser.add_argument("--dry-run", action="store_true",
                        help="no venv and no GPU: run the steps here with this Python on the CPU, CPU-sized")
    args = parser.parse_args(argv)
    check = Check(args)
    report = check.run()
    print(json.dumps(report))
    return 0 if report["ok"] else 1


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry_run = args.dry_run
        self.start = time.monotonic()
        self.errors: list[str] = []
        self.bundle = Path(args.bundle).resolve() if args.bundle else None
        self.python = sys.executable if self.dry_run else str(Path(args.venv).resolve() / "bin" / "python")
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PARTSIGHT_REQUIRE_CUDA="0" if self.dry_run else "1",
                        PYTHONUNBUFFERED="1", QT_QPA_PLATFORM="offscreen")
        for variable, name in (("PARTSIGHT_WEIGHTS_DIR", "weights"), ("PARTSIGHT_MEDIA_DIR", "media"),
                               ("PARTSIGHT_FIXTURES_DIR", "fixtures")):
            self.env[variable] = str(self._data_dir(variable, name))
        self.env.setdefault("PARTSIGHT_BACKEND_CACHE", str(Path(tempfile.gettempdir()) / "partsight-gpu-check-backends.json"))

    def _data_dir(self, variable: str, name: str) -> Path:
        candidates = [self.bundle / name] if self.bundle else []
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
        candidates += [REPO / "shared" / name, REPO.parent / "shared" / name]
        return next((path for path in candidates if path.is_dir()), candidates[-1])

    def left_s(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.start)

    def run(self) -> dict:
        report: dict = {"dry_run": self.dry_run}
        steps = [("setup", self.setup, 0.25), ("cuda", self.cuda, 0.1), ("tests", self.tests, 0.45),
                 ("bench_gpu", self.bench_gpu, 0.6), ("bench_1080p", self.bench_1080p, 1.0)]
        for name, step, share in steps:
            timeout = max(self.left_s() * share, 1.0)
            try:
                report[name] = step(timeout)
            except Exception as exc:  # noqa: BLE001 - every step reports, the check goes on
                self.errors.append(f"{name}: {exc}")
                report[name] = {"error": str(exc)}
            if name == "setup" and "error" in report[name]:
                break
        report["data"] = {variable: self.env[variable] for variable in
                          ("PARTSIGHT_WEIGHTS_DIR", "PARTSIGHT_MEDIA_DIR", "PARTSIGHT_FIXTURES_DIR")}
        report["elapsed_s"] = round(time.monotonic() - self.start, 1)
        report["errors"] = self.errors
        report["ok"] = not self.errors
        return report

    # --- steps -----------------------------------------------------------------------------
    def setup(self, timeout: float) -> dict:
        if self.dry_run:
            return {"python": self.python, "venv": None}
        venv = Path(self.args.venv).resolve()
        deadline = time.monotonic() + timeout
        done = []
        if not (venv / "bin" / "python").exists():
            own_cuda_torch = _probe(sys.executable, "import torch; print(torch.version.cuda or '')")
            system = bool(own_cuda_torch)
            options = ["--system-site-packages"] if system else []
            try:
                _call([sys.executable, "-m", "venv", *options, str(venv)], deadline)
            except RuntimeError:  # no ensurepip in this Python: pip comes from outside the venv
                _call([sys.executable, "-m", "venv", "--without-pip", *options, str(venv)], deadline)
            if system:  # this Python may itself be a venv: --system-site-packages would not reach its packages
                paths = json.loads(_probe(sys.executable, "import json, site; print(json.dumps(site.getsitepackages()))"))
                site_dir = Path(_probe(self.python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
                (site_dir / "partsight_gpu_parent.pth").write_text("\n".join(paths) + "\n")
                done.append(f"uses the CUDA torch of {sys.executable} (CUDA {own_cuda_torch})")
        if not _probe(self.python, "import torch; print(torch.version.cuda or '')"):
            self._pip([TORCH], deadline)
            done.append(f"installed {TORCH}")
        missing = [dist for module, dist in ENGINE_PACKAGES.items()
                   if not _probe(self.python, f"import importlib.util; print(importlib.util.find_spec('{module}') is not None)") == "True"]
        if missing:
            self._pip(missing, deadline)
            done.append(f"installed {', '.join(missing)}")
        return {"python": self.python, "venv": str(venv), "done": done}

    def _pip(self, packages: list[str], deadline: float) -> None:
        """pip install into the venv: its own pip, else this Python's (pip --python)."""
        wheels = self.bundle / "wheels" if self.bundle else None
        source = ["--no-index", "--no-deps", "--find-links", str(wheels)] if wheels and wheels.is_dir() else []
        pip = [self.python, "-m", "pip"] if _probe(self.python, "import pip; print(1)") else \
            [sys.executable, "-m", "pip", "--python", self.python]
        _call([*pip, "install", "-q", *source, *packages], deadline)

    def cuda(self, timeout: float) -> dict:
        code = ("import json, torch; ok = torch.cuda.is_available(); a = torch.ones(256, 256, device='cuda') if ok else None;"
                "print(json.dumps({'torch': torch.__version__, 'cuda_build': torch.version.cuda, 'available': ok,"
                "'device': torch.cuda.get_device_name() if ok else None,"
                "'capability': list(torch.cuda.get_device_capability()) if ok else None,"
                "'matmul_ok': bool(((a @ a) == 256).all()) if ok else None}))")
        info = json.loads(_run([self.python, "-c", code], self.env, time.monotonic() + timeout))
        if not self.dry_run and not (info["available"] and info["matmul_ok"]):
            raise RuntimeError(f"PyTorch {info['torch']} (CUDA build {info['cuda_build']}) cannot use a GPU here")
        return info

    def tests(self, timeout: float) -> dict:
        files = sorted(str(path.relative_to(REPO)) for path in (REPO / "tests").glob("test_*.py")
                       if "mark.cuda" in path.read_text())
        junit = Path(tempfile.mkdtemp()) / "cuda.xml"
        command = [self.python, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}",
                   *files]
        if self.dry_run:
            command.append("--collect-only")
        output = _run(command, self.env, time.monotonic() + timeout, check=False, cwd=REPO)
        summary = {"files": files, "tail": output.strip().splitlines()[-1] if output.strip() else ""}
        if self.dry_run:
            summary["collected"] = [line for line in output.splitlines() if "::" in line]
            return summary
        cases = ElementTree.parse(junit).getroot().iter("testcase") if junit.exists() else []
        results = {"passed": [], "failed": [], "skipped": []}
        for case in cases:
            name = f"{case.get('classname')}::{case.get('name')}"
            failure = case.find("failure") if case.find("failure") is not None else case.find("error")
            skipped = case.find("skipped")
            if failure is not None:
                results["failed"].append({"test": name, "message": (failure.get("message") or "")[:300]})
            elif skipped is not None:
                results["skipped"].append({"test": name, "reason": skipped.get("message", "")})
            else:
                results["passed"].append(name)
        summary.update(results)
        if results["failed"] or not results["passed"]:
            self.errors.append(f"tests: {len(results['failed'])} failed, {len(results['passed'])} passed ({summary['tail']})")
        return summary

    def bench_gpu(self, timeout: float) -> dict:
        clip = str(Path(self.env["PARTSIGHT_MEDIA_DIR"]) / CLIP)
        command = [self.python, str(REPO / "main.py"), "bench-gpu", "--frame", clip]
        command += ["--device", "cpu", "--quick", "--parts", "bodypix,blazepose"] if self.dry_run else ["--device", "cuda"]
        return json.loads(_last_line(_run(command, self.env, time.monotonic() + timeout, cwd=REPO)))

    def bench_1080p(self, timeout: float) -> dict:
        clip = str(Path(self.env["PARTSIGHT_MEDIA_DIR"]) / CLIP)
        deadline = time.monotonic() + timeout
        common = [self.python, str(REPO / "main.py"), "bench", clip]
        if self.dry_run:
            runs = {"defaults": [*common, "--device", "cpu", "--frames", "3", "--warmup", "1", "--size", "108x192"]}
        else:
            runs = {"defaults": [*common, "--device", "cuda", "--frames", "60", "--warmup", "10"],
                    "exercise_squat": [*common, "--device", "cuda", "--frames", "60", "--warmup", "10",
                                       "--exercise", "squat"]}
        return {name: json.loads(_last_line(_run(command, self.env, deadline, cwd=REPO))) for name, command in runs.items()}


def _probe(python: str, code: str) -> str:
    """What `python -c code` prints (stripped), "" when it fails."""
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    return done.stdout.strip() if done.returncode == 0 else ""


def _call(command: list[str], deadline: float) -> None:
    _run(command, dict(os.environ), deadline)


def _run(command: list[str], env: dict, deadline: float, *, check: bool = True, cwd: Path | None = None) -> str:
    """stdout (and stderr) of `command`, killed at `deadline`; RuntimeError naming the command and
    the end of its output when it fails (with `check`) or runs out of time."""
    try:
        done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{_short(command)} ran out of time ({exc.timeout:.0f} s)") from None
    output = done.stdout + done.stderr
    if check and done.returncode != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        raise RuntimeError(f"{_short(command)} exited {done.returncode}: {tail}")
    return done.stdout if check else output


def _last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON in the output: {output[-300:]}")
    return lines[-1]


def _short(command: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(Path(part).name if "/" in part else part for part in command[:6]))


if __name__ == "__main__":
    sys.exit(main())
