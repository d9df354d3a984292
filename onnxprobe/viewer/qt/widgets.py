"""An image pane that draws a `PaneView` (the model decides what it holds): scales the image to fit,
dims it when stale, outlines the selection and maps clicks back to image pixels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

TITLE_HEIGHT = 16


def to_qimage(image: np.ndarray) -> QImage:
    # A 32-bit copy (Format_RGB32) was tried: faster to scale in a bare QPainter, but in the window
    # the GUI thread spent more per frame (3.0 vs 2.1-2.4 ms, ResNet-18 grid, bench_viewer's setup).
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def from_qimage(qimage: QImage) -> np.ndarray:
    qimage = qimage.convertToFormat(QImage.Format.Format_RGB888)
    h, w, stride = qimage.height(), qimage.width(), qimage.bytesPerLine()
    data = np.frombuffer(qimage.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return data[:, : 3 * w].reshape(h, w, 3).copy()


class ImagePane(QWidget):
    clicked = Signal(float, float)  # y, x in image pixels

    def __init__(self, parent=None, min_size=(120, 120), smooth: bool = False):
        super().__init__(parent)
        self.title = ""
        self.heading = ""
        self.setMinimumSize(*min_size)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._image: QImage | None = None
        self._source: np.ndarray | None = None  # the array _image was made from
        self._shape = (0, 0)
        self.stale = False
        self.selection: tuple[int, int, int, int] | None = None  # y, x, h, w in image pixels
        self.placeholder = ""
        self.smooth = smooth  # text panes scale smoothly; pixel panes stay crisp

    def present(self, view) -> None:
        """Draw `view` (an onnxprobe.viewer.state.PaneView) as it is."""
        # The window presents every pane on every event; panes hold new arrays when they change,
        # so the same array again needs no new QImage (a copy of up to a few MB). Titles and
        # selections may have changed: the repaint still happens.
        image = view.image
        if image is not self._source or image is None:
            self._source = image
            self._image = None if image is None else to_qimage(image)
            self._shape = (0, 0) if image is None else image.shape[:2]
        self.title, self.heading, self.stale = view.title, view.heading, view.stale
        self.selection, self.placeholder = view.selection, view.placeholder
        self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn: scaled to fit below the title, aspect kept, centred."""
        h, w = self._shape
        area = QRectF(0, TITLE_HEIGHT, self.width(), self.height() - TITLE_HEIGHT)
        if not h or not w:
            return area
        scale = min(area.width() / w, area.height() / h)
        dw, dh = w * scale, h * scale
        return QRectF(area.x() + (area.width() - dw) / 2, area.y() + (area.height() - dh) / 2, dw, dh)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(12, 12, 12))
        painter.setPen(QColor(200, 200, 200))
        painter.setFont(QFont("DejaVu Sans", 8))
        painter.drawText(QRectF(4, 0, self.width() - 8, TITLE_HEIGHT), Qt.AlignmentFlag.AlignVCenter, self.heading)
        if self._image is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        target = self.image_rect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        painter.drawImage(target, self._image)
        if self.stale:
            painter.fillRect(target, QColor(0, 0, 0, 150))
        if self.selection is not None:
            y, x, h, w = self.selection
            scale = target.width() / self._shape[1]
            painter.setPen(QPen(QColor(255, 255, 0), 2))
            painter.drawRect(QRectF(target.x() + x * scale - 1, target.y() + y * scale - 1, w * scale + 2, h * scale + 2))

    def mousePressEvent(self, event) -> None:
        if self._image is None:
            return
        target = self.image_rect()
        pos: QPointF = event.position()
        if target.contains(pos):
            scale = target.width() / self._shape[1]
            self.clicked.emit((pos.y() - target.y()) / scale, (pos.x() - target.x()) / scale)
