"""Part toggles: one checkbox per part with its colour swatch, in the label set's groups."""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QSignalBlocker, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QPainter, QPixmap
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from realtime.models.labels import LabelSet

_ID_ROLE = Qt.ItemDataRole.UserRole
_SWATCH = 14


def display_name(part: str, group: str) -> str:
    """'left_upper_arm_front' in group 'left arm' -> 'upper front': the group already says the rest."""
    group_words = set(group.split())
    words = [w for w in part.split("_") if w not in group_words]
    return " ".join(words or part.split("_"))


def swatch(colors: list[tuple[int, int, int]]) -> QIcon:
    """Side-by-side squares of `colors`, outlined so dark colours stay visible on a dark panel."""
    pixmap = QPixmap(_SWATCH * len(colors), _SWATCH)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(QColor(0, 0, 0, 160))
    for i, (r, g, b) in enumerate(colors):
        painter.setBrush(QColor(r, g, b))
        painter.drawRect(i * _SWATCH, 0, _SWATCH - 2, _SWATCH - 1)
    painter.end()
    return QIcon(pixmap)


class PartToggles(QWidget):
    """Emits `visibility_changed(bool array per class id)` when the user shows or hides parts."""

    visibility_changed = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._labels: LabelSet | None = None
        self._parts: dict[int, QTreeWidgetItem] = {}
        self._tree = QTreeWidget()
        self._tree.setHeaderHidden(True)
        self._tree.setIconSize(QSize(_SWATCH, _SWATCH))
        self._tree.setUniformRowHeights(True)
        self._tree.itemChanged.connect(self._on_item_changed)
        buttons = QHBoxLayout()
        for text, tip, slot in (("All", "Show every part", lambda: self.set_all(True)),
                                ("None", "Hide every part", lambda: self.set_all(False)),
                                ("Invert", "Show hidden parts, hide shown ones", self.invert)):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._tree, 1)
        layout.addLayout(buttons)

    @property
    def labels(self) -> LabelSet | None:
        return self._labels

    def set_labels(self, labels: LabelSet, hidden: set[str] | None = None) -> None:
        """Rebuilds the toggles for `labels`, with the parts named in `hidden` unchecked."""
        hidden = hidden or set()
        groups = labels.groups or {"parts": tuple(range(1, len(labels)))}
        with QSignalBlocker(self._tree):
            self._tree.clear()
            self._parts = {}
            for group, ids in groups.items():
                group_item = QTreeWidgetItem(self._tree, [group])
                group_item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable
                                    | Qt.ItemFlag.ItemIsAutoTristate)
                group_item.setIcon(0, swatch([labels.colors[ids[0]]]))
                for class_id in ids:
                    name = labels.names[class_id]
                    item = QTreeWidgetItem(group_item, [display_name(name, group)])
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setIcon(0, swatch([labels.colors[class_id]]))
                    item.setToolTip(0, name.replace("_", " "))
                    item.setData(0, _ID_ROLE, class_id)
                    item.setCheckState(0, Qt.CheckState.Unchecked if name in hidden else Qt.CheckState.Checked)
                    self._parts[class_id] = item
            self._tree.expandAll()
            self._labels = labels

    def visible(self) -> np.ndarray:
        """Bool per class id; background is never drawn, so it is always False."""
        size = len(self._labels) if self._labels else 0
        shown = np.zeros(size, dtype=bool)
        for class_id, item in self._parts.items():
            shown[class_id] = item.checkState(0) == Qt.CheckState.Checked
        return shown

    def hidden_names(self) -> list[str]:
        return [self._labels.names[i] for i, item in self._parts.items()
                if item.checkState(0) != Qt.CheckState.Checked]

    def set_all(self, visible: bool) -> None:
        self._set_states({class_id: visible for class_id in self._parts})

    def invert(self) -> None:
        self._set_states({class_id: item.checkState(0) != Qt.CheckState.Checked
                          for class_id, item in self._parts.items()})

    def _set_states(self, visible: dict[int, bool]) -> None:
        with QSignalBlocker(self._tree):
            for class_id, shown in visible.items():
                self._parts[class_id].setCheckState(0, Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)
        self._tree.viewport().update()
        self.visibility_changed.emit(self.visible())

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if item.data(0, _ID_ROLE) is not None:
            self.visibility_changed.emit(self.visible())
