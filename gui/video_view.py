"""The video view: the annotated frame, letterboxed to keep its aspect ratio.

This is the one place where engine images (H x W x 3 uint8 RGB arrays) become QImages.
"""
from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

PLACEHOLDER = "No video yet. Pick a webcam, open a file or connect to a stream."


def to_qimage(image: np.ndarray) -> tuple[QImage, np.ndarray]:
    """An RGB888 QImage over `image`'s memory, and the array it reads: keep both alive together."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.shape} {image.dtype}")
    array = np.ascontiguousarray(image)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, array.strides[0], QImage.Format.Format_RGB888), array


def fit_rect(image_size: QSize, bounds: QRect) -> QRect:
    """The largest rectangle of `image_size`'s aspect ratio centred in `bounds`."""
    scale = min(bounds.width() / image_size.width(), bounds.height() / image_size.height())
    width, height = round(image_size.width() * scale), round(image_size.height() * scale)
    return QRect(bounds.x() + (bounds.width() - width) // 2, bounds.y() + (bounds.height() - height) // 2,
                 width, height)


class VideoView(QWidget):
    """Paints the newest frame it was given; the window decides when a new one arrives.
    A left click on the frame emits `image_clicked(x, y)` in the frame's pixel coordinates."""

    image_clicked = pyqtSignal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 240)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._paused = False

    def set_frame(self, image: np.ndarray) -> None:
        self._image, self._array = to_qimage(image)
        self.update()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self.update()

    def image(self) -> QImage | None:
        """The frame on screen at full resolution (a copy, safe to keep)."""
        return None if self._image is None else self._image.copy()

    def frame_rect(self) -> QRect:
        """Where the frame is drawn inside the widget (empty before the first frame)."""
        return QRect() if self._image is None else fit_rect(self._image.size(), self.rect())

    def image_point(self, position: QPointF | QPoint) -> tuple[float, float] | None:
        """The frame pixel under a widget position, or None outside the frame."""
        rect = self.frame_rect()
        if self._image is None or rect.isEmpty() or not QRectF(rect).contains(QPointF(position)):
            return None
        x = (position.x() - rect.x()) * self._image.width() / rect.width()
        y = (position.y() - rect.y()) * self._image.height() / rect.height()
        return x, y

    def widget_point(self, x: float, y: float) -> QPoint:
        """The widget position showing frame pixel (x, y) (the inverse of image_point)."""
        rect = self.frame_rect()
        return QPoint(round(rect.x() + (x + 0.5) * rect.width() / self._image.width()),
                      round(rect.y() + (y + 0.5) * rect.height() / self._image.height()))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        point = self.image_point(event.position()) if event.button() == Qt.MouseButton.LeftButton else None
        if point is None:
            super().mousePressEvent(event)
            return
        self.image_clicked.emit(*point)

    def sizeHint(self) -> QSize:
        return QSize(960, 720)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 18))
        if self._image is None:
            painter.setPen(QColor(150, 150, 155))
            painter.drawText(self.rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, PLACEHOLDER)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF(self.frame_rect()), self._image)
        if self._paused:
            self._draw_badge(painter, "❚❚  Paused")

    def _draw_badge(self, painter: QPainter, text: str) -> None:
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        badge = QRect(0, 0, metrics.horizontalAdvance(text) + 28, metrics.height() + 14)
        badge.moveCenter(self.rect().center())
        badge.moveBottom(self.frame_rect().bottom() - 16)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(QRectF(badge), 8, 8)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
