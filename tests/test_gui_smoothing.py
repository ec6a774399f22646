"""The window's smoothing slider: bound to the running pipeline and remembered between runs."""
from __future__ import annotations

from pathlib import Path

import pytest
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QLabel, QSlider

from conftest import wait_for_frames
from gui.main_window import MainWindow
from gui.session import Session
from realtime.config import PipelineConfig
from realtime.smoothing import DEFAULT_STRENGTH


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "partsight.ini"), QSettings.Format.IniFormat)


def _window(qtbot, settings: QSettings) -> tuple[MainWindow, Session]:
    session = Session(PipelineConfig(device="cpu", max_people=1))
    window = MainWindow(session, settings)
    qtbot.addWidget(window)
    window.show()
    return window, session


def test_the_slider_drives_the_pipeline_and_is_remembered(qtbot, settings, media_dir):
    window, session = _window(qtbot, settings)
    control = window.view_panel.smoothing_control
    slider = control.findChild(QSlider)
    assert control.strength() == pytest.approx(DEFAULT_STRENGTH)
    window.open_source(str(media_dir / "cg-mannequin-squat.mp4"))
    try:
        wait_for_frames(qtbot, window, 2)
        assert session.smoothing == pytest.approx(DEFAULT_STRENGTH)
        assert "smooth" in session.pipeline.latest().timings_ms
        slider.setValue(0)
        assert session.smoothing == 0.0
        assert "off" in [label.text() for label in control.findChildren(QLabel)]
        slider.setValue(35)
        assert session.smoothing == pytest.approx(0.35)
    finally:
        window.close()

    again, again_session = _window(qtbot, settings)
    try:
        assert again.view_panel.smoothing_control.strength() == pytest.approx(0.35)
    finally:
        again.close()
