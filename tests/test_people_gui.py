"""Choosing who is analysed in the window: a click on a person selects their ID (offscreen Qt,
real clip with several people)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtWidgets import QPushButton

from conftest import wait_for_frames
from gui.main_window import MainWindow
from gui.session import Session
from realtime.config import PipelineConfig

# pose2sim-multi-cam01: the walking man stays in this band of the 1080 x 1920 frame (his mask's
# centroid), the standing woman and the background woman never enter it.
MAN_BAND_X = (250, 700)
MAN_BAND_Y = (450, 1000)


@pytest.fixture
def window(qtbot, tmp_path: Path):
    settings = QSettings(str(tmp_path / "partsight.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Session(PipelineConfig(device="cpu", max_people=4)), settings)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def _inner_pixel(mask: np.ndarray) -> tuple[int, int]:
    """A pixel of the mask far from its edge (the middle of its longest row run near the centroid row)."""
    ys, xs = np.nonzero(mask)
    row = int(np.median(ys))
    cols = np.flatnonzero(mask[row])
    return int(cols[len(cols) // 2]), row


def test_clicking_the_moving_person_selects_their_id(window, qtbot, media_dir: Path):
    window.open_source(str(media_dir / "pose2sim-multi-cam01.mp4"))

    def man_in_frame():
        result = window.shown_result
        if result is None:
            return None
        for person in result.parse.people:
            ys, xs = np.nonzero(person.mask)
            if MAN_BAND_X[0] <= xs.mean() < MAN_BAND_X[1] and MAN_BAND_Y[0] <= ys.mean() < MAN_BAND_Y[1]:
                return person
        return None

    wait_for_frames(qtbot, window, until=lambda: len(window.shown_result.parse.people) >= 2)
    window.toggle_pause()
    if man_in_frame() is None:  # the frozen frame must show him apart; take a later one
        window.toggle_pause()
        wait_for_frames(qtbot, window, until=lambda: man_in_frame() is not None)
        window.toggle_pause()
    man = man_in_frame()
    x, y = _inner_pixel(man.mask)
    qtbot.mouseClick(window.video_view, Qt.MouseButton.LeftButton, pos=window.video_view.widget_point(x, y))
    assert window.people_picker.selected_people == frozenset({man.id})
    assert window.people_picker.choice_text() == f"Analysing: #{man.id}"

    corner = window.video_view.widget_point(window.shown_result.image.shape[1] - 2, 2)
    qtbot.mouseClick(window.video_view, Qt.MouseButton.LeftButton, pos=corner)
    assert window.people_picker.selected_people == frozenset({man.id}), "a click on nobody keeps the choice"

    window.people_picker.findChild(QPushButton).click()
    assert window.people_picker.selected_people is None
    assert window.people_picker.choice_text().startswith("Analysing: everyone")
