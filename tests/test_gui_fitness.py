"""The window's fitness panel on the real squat clip (pytest-qt, offscreen): pick squat, watch the
counter rise, export the repetitions."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from PyQt6.QtCore import QSettings

from conftest import FIRST_FRAMES_TIMEOUT_S, wait_for_frames
from gui.main_window import MainWindow
from gui.session import Session
from realtime.build import Stages
from realtime.config import PipelineConfig
from realtime.job import fitness_summary
from realtime.metrics import schema_path
from realtime.smoothing import TemporalSmoother

LONG_MS = FIRST_FRAMES_TIMEOUT_S * 1000  # liveness on a loaded machine, not speed


@pytest.fixture
def window(qtbot, tmp_path: Path):
    settings = QSettings(str(tmp_path / "partsight.ini"), QSettings.Format.IniFormat)
    settings.setValue("output_dir", str(tmp_path / "out"))
    window = MainWindow(Session(PipelineConfig(device="cpu", max_people=1)), settings)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def test_squat_counter_rises_on_the_squat_clip_and_exports(window, qtbot, media_dir):
    panel = window.fitness_panel
    panel.picker.choose("squat")
    window.open_source(str(media_dir / "faults" / "squat30.mp4"))  # 2 squats, 151 frames at 30 fps
    wait_for_frames(qtbot, window)
    qtbot.waitUntil(lambda: panel.counter.counts().get("0") == 0, timeout=LONG_MS)
    qtbot.waitUntil(lambda: panel.counter.counts().get("0", 0) >= 1, timeout=LONG_MS)
    qtbot.waitUntil(lambda: window.stalled, timeout=LONG_MS)  # the clip ended
    window.refresh_state()
    assert panel.counter.counts()["0"] == 2, "the window plays every frame: it counts what the CLI counts"
    assert panel.table.headers() == ["person", "rep", "time", "depth", "tempo", "symmetry"]
    assert panel.table.rows() == 2
    assert panel.table.cell(0, "person") == "#0" and panel.table.cell(1, "rep") == "2"
    assert panel.table.cell(0, "time").endswith(" s") and "–" in panel.table.cell(0, "time")
    assert panel.table.cell(0, "depth").endswith("° ✓")
    assert panel.plot.thresholds() == [150, 120]
    plotted = [deg for _, deg in panel.plot.samples("0") if deg == deg]
    assert min(plotted) < 120 < 150 < max(plotted)
    marks = panel.plot.marks()
    assert len(marks) == 2 and all(counted and deg < 120 for _, deg, counted in marks), "each rep marked, a hit"
    assert panel.plot.y_range() == (0.0, 180.0), "the angle axis stays at 0–180°"

    csv_path = window.recording_panel.export_reps("csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert [int(r["number"]) for r in rows] == [1, 2]
    assert all(float(r["rom_deg"]) > 60 and int(r["start_frame"]) < int(r["turn_frame"]) for r in rows)
    json_path = window.recording_panel.export_reps("json")
    summary = json.loads(json_path.read_text())
    assert summary["exercise"]["name"] == "squat" and summary["reps"] == 2 == len(summary["per_rep"])
    # the one summary format: what `process --summary` writes (realtime.job.fitness_summary), valid
    # against its schema (the window wrote the analyser's bare summary, without schema and pose_source)
    assert list(Draft202012Validator(json.loads(schema_path("summary").read_text())).iter_errors(summary)) == []
    pipeline = window._session.pipeline
    stages = Stages(result=[], analysers=[window._session.fitness], smoother=TemporalSmoother(0.0),
                    pose_source=pipeline.stats.pose_source)
    engine = fitness_summary(stages, pipeline.source_info, pipeline.source.skipped, dropped=pipeline.source.dropped)
    assert summary == json.loads(json.dumps(engine))
    assert summary["pose_source"] == "blazepose-torch" and summary["source"]["name"].endswith("squat30.mp4")


def test_switching_the_exercise_off_stops_the_analysis(window, qtbot, media_dir):
    panel = window.fitness_panel
    panel.picker.choose("push-up")
    window.open_source(str(media_dir / "faults" / "squat30.mp4"))
    wait_for_frames(qtbot, window)
    qtbot.waitUntil(lambda: "0" in panel.counter.counts(), timeout=LONG_MS)
    assert panel.plot.thresholds() == [145, 105]
    panel.picker.choose("")
    qtbot.waitUntil(lambda: panel.plot.thresholds() == [None, None], timeout=10000)
    assert not panel.counter.counts() and panel.counter.isHidden()
    assert window.recording_panel.export_reps("csv") is None


@pytest.mark.parametrize(("clip", "reason", "advice"), [("tiny.mp4", "nobody found", "move the camera closer"),
                                                       ("cut_edge.mp4", "out of frame", "whole body stays in view")])
def test_the_window_says_why_the_angle_is_unknown_and_what_to_try(clip, reason, advice, window, qtbot, media_dir):
    from PyQt6.QtWidgets import QLabel

    panel = window.fitness_panel
    panel.picker.choose("squat")
    window.open_source(str(media_dir / "faults" / clip))
    wait_for_frames(qtbot, window)
    qtbot.waitUntil(lambda: panel.findChild(QLabel, "repCount0") is not None, timeout=LONG_MS)
    counter = panel.findChild(QLabel, "repCount0")
    details = [label for label in counter.parent().findChildren(QLabel) if label is not counter]
    qtbot.waitUntil(lambda: reason in details[0].text(), timeout=LONG_MS)
    assert advice in details[0].toolTip()
    qtbot.waitUntil(lambda: advice in panel.reasons.text() and not panel.reasons.isHidden(), timeout=LONG_MS)


def test_a_rep_whose_turn_was_not_seen_is_marked_in_the_table_and_the_last_rep_line(qtbot):
    from gui.presentation_view import last_rep_text
    from gui.rep_table import COLUMNS, RepTable, rep_rows

    unseen = {"person": "0", "number": 1, "start_s": 0.83, "turn_s": 1.07, "end_s": 2.03, "depth_deg": 114.6,
              "out_s": 0.23, "hold_s": 0.0, "back_s": 0.97, "side_diff_deg": None, "turn_seen": False}
    seen = {**unseen, "number": 2, "start_s": 2.77, "turn_s": 3.33, "end_s": 3.97, "depth_deg": 58.8,
            "out_s": 0.5, "hold_s": 2.5, "back_s": 0.6, "turn_seen": True}
    table = RepTable()
    qtbot.addWidget(table)
    table.set_reps(rep_rows({"per_rep": [unseen, seen], "people": {"0": {}}}), turn_deg=120)
    assert [table.cell(row, "depth") for row in (0, 1)] == ["115°? ✓", "59° ✓"]
    tips = [table._table.item(row, COLUMNS.index("depth")).toolTip() for row in (0, 1)]
    assert "unknown at the turn" in tips[0] and "unknown" not in tips[1]
    squat = {"start_deg": 150, "turn_deg": 120}
    assert last_rep_text(unseen, squat) == ("last rep: 115° (target 120°), turn not seen\n"
                                            "down 0.2 s · hold 0.0 s · up 1.0 s")
    assert last_rep_text(seen, squat) == "last rep: 59° (target 120°)\ndown 0.5 s · hold 2.5 s · up 0.6 s"
