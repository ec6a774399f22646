"""The video view: the annotated frame, letterboxed to keep its aspect ratio, or a message in its
place (nothing open yet, loading, an error), with the window's readout painted over it at the
screen's resolution. In split view the original frame shows left of a divider the user drags and
the parsed frame right of it.

This is the one place where engine images (H x W x 3 uint8 RGB arrays) become QImages.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PyQt6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QFontMetrics, QFontMetricsF, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

PLACEHOLDER = "No video yet. Pick a webcam, open a file or connect to a stream."
_GRAB_PX = 10  # how near the divider a press grabs it
_READOUT_SHADE = QColor(0, 0, 0, 153)  # the engine's text slots keep 40 % of the picture under them


class Readout(NamedTuple):
    """Text painted over the frame at the screen's resolution (not drawn into the frame and scaled
    with it): `lines` in `box`, (x0, y0, x1, y1) in frame pixels (exclusive ends), white on the
    dark translucent box the engine's text slots have."""

    lines: list[str]
    box: tuple[int, int, int, int]


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

    def __init__(self, parent: QWidget | None = None, *, background: QColor = QColor(16, 16, 18)) -> None:
        super().__init__(parent)
        self.setObjectName("videoView")
        self._background = background
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._readout: Readout | None = None
        self._raw: QImage | None = None
        self._raw_array: np.ndarray | None = None
        self._message = PLACEHOLDER
        self._message_is_error = False
        self._split = 0.5  # divider position in split view, 0..1 of the frame's width
        self._dragging = False

    def set_frame(self, image: np.ndarray, raw: np.ndarray | None = None, *, readout: Readout | None = None) -> None:
        """Shows `image` with `readout` over it; with `raw` (the same frame before parsing) in split
        view."""
        self._image, self._array = to_qimage(image)
        self._raw, self._raw_array = to_qimage(raw) if raw is not None else (None, None)
        self._readout = readout
        self.update()

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Clears the frame and shows `text` in its place."""
        self._image = self._array = self._raw = self._raw_array = self._readout = None
        self._message, self._message_is_error = text, error
        self.setToolTip("")
        self.update()

    def message(self) -> str | None:
        """The text shown in place of a frame (None while a frame shows)."""
        return self._message if self._image is None else None

    @property
    def split(self) -> float | None:
        """The divider's position (0..1 of the frame's width) in split view, else None."""
        return self._split if self._raw is not None else None

    def set_split(self, share: float) -> None:
        self._split = min(max(share, 0.0), 1.0)
        self.update()

    def image(self) -> QImage | None:
        """The frame on screen at full resolution, without the readout painted over it (a copy,
        safe to keep)."""
        return None if self._image is None else self._image.copy()

    @property
    def readout(self) -> Readout | None:
        """The text painted over the frame on screen."""
        return self._readout if self._image is not None else None

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

    def _divider_x(self) -> float:
        rect = self.frame_rect()
        return rect.x() + self._split * rect.width()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._raw is not None \
                and abs(event.position().x() - self._divider_x()) <= _GRAB_PX:
            self._dragging = True
            return
        point = self.image_point(event.position()) if event.button() == Qt.MouseButton.LeftButton else None
        if point is None:
            super().mousePressEvent(event)
            return
        self.image_clicked.emit(*point)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            rect = self.frame_rect()
            self.set_split((event.position().x() - rect.x()) / max(rect.width(), 1))
            return
        near = self._raw is not None and abs(event.position().x() - self._divider_x()) <= _GRAB_PX
        self.setCursor(Qt.CursorShape.SplitHCursor if near else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._dragging = False
        super().mouseReleaseEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(960, 720)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self._background)
        if self._image is None:
            self._paint_message(painter)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        rect = self.frame_rect()
        painter.drawImage(QRectF(rect), self._image)
        if self._raw is not None:
            self._paint_split(painter, rect)
        if self._readout is not None:
            self._paint_readout(painter, rect)

    def _paint_readout(self, painter: QPainter, rect: QRect) -> None:
        """The readout's box where its frame pixels are on screen, its lines in a font as large as
        fills the box (the engine sized the box for them)."""
        lines, (x0, y0, x1, y1) = self._readout
        scale = rect.width() / self._image.width()
        box = QRectF(rect.x() + x0 * scale, rect.y() + y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale)
        painter.fillRect(box, _READOUT_SHADE)
        line_h = box.height() / (len(lines) + 0.4)  # the engine's padding: about 0.4 of a line
        font = QFont(self.font())
        font.setPixelSize(max(1, round(line_h * 0.62)))
        widest = max(QFontMetricsF(font).horizontalAdvance(line) for line in lines)
        pad = line_h * 0.3
        if widest > box.width() - 2 * pad:
            font.setPixelSize(max(1, int(font.pixelSize() * (box.width() - 2 * pad) / widest)))
        painter.setFont(font)
        painter.setPen(QColor(255, 255, 255))
        for n, line in enumerate(lines):
            area = QRectF(box.x() + pad, box.y() + line_h * (0.2 + n), box.width() - pad, line_h)
            painter.drawText(area, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)

    def _paint_message(self, painter: QPainter) -> None:
        """The message centred; an error's first paragraph (its headline) larger and bold."""
        headline, _, rest = self._message.partition("\n\n") if self._message_is_error else ("", "", self._message)
        area = self.rect().adjusted(32, 32, -32, -32)
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap
        painter.setPen(QColor(255, 170, 170) if self._message_is_error else QColor(150, 150, 155))
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 1.5)
        big.setBold(True)
        head_h = 0 if not headline else \
            QFontMetrics(big).boundingRect(area, flags, headline).height() + 16
        body_h = painter.fontMetrics().boundingRect(area, flags, rest).height()
        top = area.y() + max(0, (area.height() - head_h - body_h) // 2)
        if headline:
            painter.setFont(big)
            painter.drawText(QRect(area.x(), top, area.width(), head_h), flags, headline)
        painter.setFont(self.font())
        painter.drawText(QRect(area.x(), top + head_h, area.width(), body_h + 4), flags, rest)

    def _paint_split(self, painter: QPainter, rect: QRect) -> None:
        cut = self._split * self._raw.width()
        painter.drawImage(QRectF(rect.x(), rect.y(), self._split * rect.width(), rect.height()), self._raw,
                          QRectF(0, 0, cut, self._raw.height()))
        x = self._divider_x()
        painter.setPen(QPen(QColor(255, 255, 255), 2))
        painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setBrush(QColor(255, 255, 255))
        painter.drawEllipse(QPointF(x, rect.center().y()), 7, 7)
        painter.setPen(QColor(255, 255, 255))
        for text, flag, left in (("original", Qt.AlignmentFlag.AlignRight, True),
                                 ("parsed", Qt.AlignmentFlag.AlignLeft, False)):
            top = rect.center().y() + 12  # beside the handle: clear of the text slots in the corners
            area = QRectF(rect.x(), top, x - rect.x() - 8, 22) if left else QRectF(x + 8, top, rect.right() - x - 8, 22)
            painter.drawText(area, flag | Qt.AlignmentFlag.AlignVCenter, text)
