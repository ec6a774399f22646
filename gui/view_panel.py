"""How the parse is drawn: overlay opacity, skeleton, legend, split view, mirroring, steadiness,
which parts show.

Every choice goes to the session (or, for the split view, to the window) and is remembered:
view/opacity, view/show_keypoints, view/legend, view/compare, view/mirror, view/smoothing and
parts/<label set>/hidden.
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

# setting -> (OverlayControls check, default)
_CHECKS = {"view/show_keypoints": ("keypoints", True), "view/legend": ("legend", False),
           "view/compare": ("compare", False), "view/mirror": ("mirror", True)}


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
        smoothing = settings.value("view/smoothing", DEFAULT_STRENGTH, float)
        self.overlay_controls.set_opacity(opacity)
        self.smoothing_control.set_strength(smoothing)
        session.set_opacity(opacity)
        session.set_smoothing(smoothing)
        for key, (check, default) in _CHECKS.items():
            self.overlay_controls.set_checked(check, settings.value(key, default, bool))
        session.set_show_keypoints(self.overlay_controls.checked("keypoints"))
        session.set_show_legend(self.overlay_controls.checked("legend"))

        controls = self.overlay_controls
        controls.opacity_changed.connect(self._on_opacity)
        controls.keypoints_toggled.connect(lambda on: self._on_check("view/show_keypoints", session.set_show_keypoints, on))
        controls.legend_toggled.connect(lambda on: self._on_check("view/legend", session.set_show_legend, on))
        controls.compare_toggled.connect(lambda on: self._on_check("view/compare", None, on))
        controls.mirror_toggled.connect(lambda on: self._on_check("view/mirror", None, on))
        self.smoothing_control.strength_changed.connect(self._on_smoothing)
        self.part_toggles.visibility_changed.connect(self._on_visibility)

    @property
    def compare(self) -> bool:
        """Split view: the original frame beside the parsed one."""
        return self.overlay_controls.checked("compare")

    @property
    def mirror_webcams(self) -> bool:
        return self.overlay_controls.checked("mirror")

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

    def _on_check(self, key: str, apply, on: bool) -> None:
        if apply is not None:
            apply(on)
        self._settings.setValue(key, on)
        self.view_changed.emit()

    def _on_smoothing(self, strength: float) -> None:
        self._session.set_smoothing(strength)
        self._settings.setValue("view/smoothing", strength)

    def _on_visibility(self, visible: np.ndarray) -> None:
        self._session.set_visible_parts(visible)
        labels = self.part_toggles.labels
        self._settings.setValue(f"parts/{labels.name}/hidden", ",".join(self.part_toggles.hidden_names()))
        self.view_changed.emit()
