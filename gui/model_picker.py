"""Model picker: every model in the registry; those without weights are disabled and say why."""
from __future__ import annotations

from PyQt6.QtCore import QSignalBlocker, Qt, pyqtSignal
from PyQt6.QtGui import QStandardItemModel
from PyQt6.QtWidgets import QComboBox, QVBoxLayout, QWidget

from realtime.models.registry import ModelSpec
from realtime.weights import cached_path, how_to_get


def weights_present(spec: ModelSpec) -> bool:
    return cached_path(spec.weights).is_file()


class ModelPicker(QWidget):
    model_requested = pyqtSignal(str)

    def __init__(self, specs: dict[str, ModelSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._combo = QComboBox()
        self._combo.setObjectName("modelCombo")
        items: QStandardItemModel = self._combo.model()
        for name, spec in specs.items():
            present = weights_present(spec)
            self._combo.addItem(name if present else f"{name}  (no weights)", name)
            index = self._combo.count() - 1
            tip = f"{spec.description}\nLicence: {spec.licence}"
            if not present:
                tip = f"Weights missing. {how_to_get(spec.weights, spec.name)}"
                items.item(index).setEnabled(False)
            self._combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        self._combo.activated.connect(self._on_activated)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._combo)

    def is_enabled(self, name: str) -> bool:
        items: QStandardItemModel = self._combo.model()
        return items.item(self._combo.findData(name)).isEnabled()

    def tooltip(self, name: str) -> str:
        return self._combo.itemData(self._combo.findData(name), Qt.ItemDataRole.ToolTipRole)

    def set_current(self, name: str) -> None:
        with QSignalBlocker(self._combo):
            self._combo.setCurrentIndex(self._combo.findData(name))
        self._combo.setToolTip(self._combo.currentData(Qt.ItemDataRole.ToolTipRole) or "")

    def _on_activated(self, index: int) -> None:
        self.model_requested.emit(self._combo.itemData(index))
