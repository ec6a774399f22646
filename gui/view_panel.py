"""How the parse is drawn: overlay opacity and skeleton, steadiness, which parts show.

Every choice goes to the session and is remembered: view/opacity, view/show_keypoints,
view/smoothing and parts/<label set>/hidden.
"""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QSettings, pyqtSignal
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from gui.group_box import group_box
from gui.overlay_controls import OverlayControls
from gui.part_toggles import PartToggles
from gui.session import Session
from gui.smoothing_control import SmoothingControl
from realtime.smoothing import DEFAULT_STRENGTH


class ViewPanel(QWidget):
    """Emits `view_changed` after a choice that changes how a frame is drawn (not the smoothing,
    which changes what the engine computes)."""

    view_changed = pyqtSignal()

    def __init__(self, session: Session, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = session
        self._settings = settings
        self.overlay_controls = OverlayControls()
        self.smoothing_control = SmoothingControl()
        self.part_toggles = PartToggles()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(group_box("Overlay", self.overlay_controls))
        layout.addWidget(group_box("Steadiness", self.smoothing_control))
        layout.addWidget(group_box("Body parts", self.part_toggles), 1)

        opacity = settings.value("view/opacity", 0.6, float)
        show_keypoints = settings.value("view/show_keypoints", True, bool)
        smoothing = settings.value("view/smoothing", DEFAULT_STRENGTH, float)
        self.overlay_controls.set_opacity(opacity)
        self.overlay_controls.set_show_keypoints(show_keypoints)
        self.smoothing_control.set_strength(smoothing)
        session.set_opacity(opacity)
        session.set_show_keypoints(show_keypoints)
        session.set_smoothing(smoothing)

        self.overlay_controls.opacity_changed.connect(self._on_opacity)
        self.overlay_controls.keypoints_toggled.connect(self._on_keypoints)
        self.smoothing_control.strength_changed.connect(self._on_smoothing)
        self.part_toggles.visibility_changed.connect(self._on_visibility)

    def show_state(self) -> None:
        """Rebuilds the part toggles when the model's label set changed, with its remembered hidden parts."""
        labels = self._session.labels
        if self.part_toggles.labels == labels:
            return
        hidden = self._settings.value(f"parts/{labels.name}/hidden", "", str)
        self.part_toggles.set_labels(labels, set(filter(None, hidden.split(","))))
        self._session.set_visible_parts(self.part_toggles.visible())

    def _on_opacity(self, opacity: float) -> None:
        self._session.set_opacity(opacity)
        self._settings.setValue("view/opacity", opacity)
        self.view_changed.emit()

    def _on_keypoints(self, show: bool) -> None:
        self._session.set_show_keypoints(show)
        self._settings.setValue("view/show_keypoints", show)
        self.view_changed.emit()

    def _on_smoothing(self, strength: float) -> None:
        self._session.set_smoothing(strength)
        self._settings.setValue("view/smoothing", strength)

    def _on_visibility(self, visible: np.ndarray) -> None:
        self._session.set_visible_parts(visible)
        labels = self.part_toggles.labels
        self._settings.setValue(f"parts/{labels.name}/hidden", ",".join(self.part_toggles.hidden_names()))
        self.view_changed.emit()
