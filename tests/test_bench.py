"""The bench commands report what they claim: two settings compared on the same source, the
memory curve of a looped paced run, and clear errors for settings that are not run options.
(Speed itself is never asserted: it lives in the printed figures.)"""
from __future__ import annotations

import json

import pytest

from realtime.cli import main


def test_compare_runs_both_settings_on_the_same_frames(single_clip, capsys):
    assert main(["bench", str(single_clip), "--size", "320x240", "--frames", "4", "--warmup", "1",
                 "--max-people", "1", "--compare", "--backend torch", "--backend openvino --smoothing 0"]) == 0
    report = json.loads(capsys.readouterr().out)
    a, b = report["settings"]["a"], report["settings"]["b"]
    assert report["frames"] == 4
    assert (a["backend"], b["backend"]) == ("torch", "openvino")
    assert "smooth" in a["stages_ms"] and "smooth" in b["stages_ms"]  # strength 0 passes results through
    assert a["people_per_frame"] == b["people_per_frame"] == 1  # --max-people 1 holds for both
    assert report["ratio"] == pytest.approx(b["frame_ms"] / a["frame_ms"], abs=1e-3)
    assert report["cpu_ratio"] == pytest.approx(b["cpu_ms"] / a["cpu_ms"], abs=1e-3)


@pytest.mark.parametrize("options, message", [
    ("--output x.mp4", "--output x.mp4 is not a run option"),
    ("--backend tensorrt", "invalid choice: 'tensorrt'"),
    ("--smoothing 3", "must be from 0 (off) to 1"),
])
def test_compare_settings_must_be_run_options(single_clip, capsys, options, message):
    assert main(["bench", str(single_clip), "--compare", "--max-people 1", options]) == 1
    err = capsys.readouterr().err
    assert err.startswith("partsight: error: --compare") and message in err and err.count("\n") == 1


def test_memory_bench_samples_a_looped_paced_run(single_clip, capsys):
    assert main(["bench-memory", str(single_clip), "--size", "160x288", "--seconds", "12", "--interval", "2",
                 "--warmup-seconds", "4", "--max-people", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    curve = report["curve"]
    assert len(curve) >= 5 and curve[-1]["t_s"] >= 11.5
    assert [sample["t_s"] for sample in curve] == sorted(sample["t_s"] for sample in curve)
    assert all(sample["rss_mb"] > 50 for sample in curve)
    assert report["frames"] == curve[-1]["frames"] > 0 and report["recorded"]
    warm = next(sample for sample in curve if sample["t_s"] >= 4)
    assert report["rss_mb"]["warm"] == warm["rss_mb"]
    assert report["growth_after_warmup"] == pytest.approx(curve[-1]["rss_mb"] / warm["rss_mb"] - 1, abs=1e-3)
    assert report["peak_rss_mb"] >= max(sample["rss_mb"] for sample in curve) - 1


@pytest.mark.slow
def test_the_gpu_check_runs_its_steps_here_on_the_cpu():
    """`make gpu-check` on a GPU machine runs these same steps; here its dry run proves the
    orchestration: the CUDA tests are collected, the GPU benchmarks and the 1080p bench run."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(repo / "tests" / "gpu_check.py"), "--dry-run"], capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["dry_run"] and report["errors"] == []
    collected = report["tests"]["collected"]
    assert "tests/test_cuda.py::test_bodypix_on_cuda_agrees_with_the_cpu" in collected
    assert any("test_cuda_fast_path_in_half_precision_agrees_with_float32" in name for name in collected)
    assert set(report["bench_gpu"]) >= {"bodypix", "blazepose"}
    assert report["bench_1080p"]["defaults"]["frames"] == 3
