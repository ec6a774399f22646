"""The bench commands report what they claim: two settings compared on the same source, the
memory curve of a looped paced run, BlazePose's networks on every backend, and clear errors for
settings that are not run options.
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


def test_compare_takes_a_single_word_setting(single_clip, capsys):
    assert main(["bench", str(single_clip), "--size", "160x120", "--frames", "3", "--warmup", "1",
                 "--max-people", "1", "--pose", "parser", "--person-mask", "parser", "--compare", "", "--realtime"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["settings"]["a"]["options"], report["settings"]["b"]["options"]) == ("", "--realtime")
    assert report["frames"] == 3


def test_bench_plays_a_short_clip_again_until_it_has_its_frames(single_clip, capsys):
    # the clip has 100 frames; paced like a camera it would pass in 1.7 s, mostly while the models warm up
    for pacing in ([], ["--realtime"]):
        assert main(["bench", str(single_clip), "--size", "160x120", "--frames", "130", "--warmup", "2",
                     "--max-people", "1", "--pose", "parser", "--person-mask", "parser", *pacing]) == 0
        assert json.loads(capsys.readouterr().out)["frames"] == 130


def test_bench_reports_the_sources_rate_and_the_frames_it_dropped(media_dir, capsys):
    """`bench --realtime` paces a 30-fps clip like a camera and keeps only the newest frame: its JSON
    gives the source's rate and the frames dropped, so `fps` can be read against the camera's (it
    gave neither); a file read as fast as it decodes drops none."""
    clip = media_dir / "faults" / "squat30.mp4"
    reports = {}
    for pacing in ([], ["--realtime"]):
        assert main(["bench", str(clip), "--size", "160x120", "--frames", "20", "--warmup", "2",
                     "--max-people", "1", "--pose", "parser", "--person-mask", "parser", *pacing]) == 0
        reports[bool(pacing)] = json.loads(capsys.readouterr().out)
    print({paced: (report["fps"], report["source_fps"], report["dropped"]) for paced, report in reports.items()})
    assert reports[False]["source_fps"] == reports[True]["source_fps"] == 30.0
    assert reports[False]["dropped"] == 0
    assert isinstance(reports[True]["dropped"], int) and reports[True]["dropped"] >= 0


@pytest.mark.parametrize("options, message", [
    ("--output x.mp4", "--output x.mp4 is not a run option"),
    ("--backend tensorrt", "invalid choice: 'tensorrt'"),
    ("--smoothing 3", "must be from 0 (off) to 1"),
    ("--readout", "--compare '--readout': --readout is not a run option"),  # one word: a value of --compare all the same
])
def test_compare_settings_must_be_run_options(single_clip, capsys, options, message):
    assert main(["bench", str(single_clip), "--compare", "--max-people 1", options]) == 2  # a usage error
    err = capsys.readouterr().err
    assert err.startswith("partsight: error: --compare") and message in err and err.count("\n") == 1
    assert err.endswith(" (see 'partsight bench --help')\n")


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
    assert report["peak_rss_mb"] >= max(sample["rss_mb"] for sample in curve) and "note" not in report


def test_a_memory_run_shorter_than_the_warmup_says_why_it_has_no_growth(single_clip, capsys):
    """--seconds 3 with the 60 s warm-up: null growth with a note saying the run ended before the
    warm-up (the nulls were unexplained), the peak not below any sample; --help says so too."""
    assert main(["bench-memory", str(single_clip), "--size", "160x288", "--seconds", "3", "--interval", "1",
                 "--max-people", "1", "--no-record"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["growth_after_warmup"] is None and report["rss_mb"]["warm"] is None
    assert "before the 60 s warm-up" in report["note"] and "--warmup-seconds" in report["note"]
    assert report["peak_rss_mb"] >= max(sample["rss_mb"] for sample in report["curve"])
    with pytest.raises(SystemExit):
        main(["bench-memory", "--help"])
    assert "a run that ends before it has null growth and a 'note'" in " ".join(capsys.readouterr().out.split())


def test_pose_bench_times_every_network_on_every_backend_and_checks_their_agreement(single_clip, capsys):
    assert main(["bench-pose", str(single_clip), "--quick"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frame"] == single_clip.name and report["size"] == "640x480" and report["people_detected"] >= 1
    assert list(report["backends"]) == ["torch", "onnxruntime", "openvino"] and report["goal_ms_per_person"] == 15
    for backend in report["backends"].values():
        assert set(backend) == {"detector", "landmark", "landmark_without_segmentation", "selfie"}
        timings = [backend["detector"]["ms"], backend["detector"]["cpu_ms"], backend["selfie"]["ms"]]
        for kind in ("landmark", "landmark_without_segmentation"):
            assert list(backend[kind]) == ["1", "2"]  # --quick: ROI batches of 1 and 2 (else 1, 2, 4)
            for count, batch in backend[kind].items():
                assert batch["ms_per_person"]["median"] == pytest.approx(batch["batch_ms"]["median"] / int(count),
                                                                         abs=0.01)
                timings += [batch["batch_ms"], batch["cpu_ms_per_person"]]
        assert all(0 < timing["median"] <= timing["p95"] for timing in timings)
    assert set(report["agreement"]) == {"onnxruntime", "openvino"}
    for agreement in report["agreement"].values():
        assert agreement["agrees"], agreement
        assert 0 < agreement["landmarks_px"] <= 0.5, "another backend's floats differ a little, never much"


def test_pose_bench_needs_a_person(tmp_path, capsys):
    import cv2
    import numpy as np

    empty = tmp_path / "wall.png"
    cv2.imwrite(str(empty), np.full((480, 640, 3), 128, np.uint8))
    assert main(["bench-pose", str(empty), "--quick", "--backends", "torch"]) == 1
    err = capsys.readouterr().err
    assert "finds nobody in the frame" in err and err.count("\n") == 1


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
