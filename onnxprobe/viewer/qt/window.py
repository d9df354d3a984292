"""The viewer window, laid out like the toolbox: input, selected unit, back map and predictions on
top; the layer list and the layer grid below; unit visuals on the right; the status line last.
It draws what the model (`viewer.state`) says each pane shows and passes keys and clicks on."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QLabel, QListWidget, QWidget

from onnxprobe.viewer.controller import Viewer
from onnxprobe.viewer.keys import help_lines
from onnxprobe.viewer.qt.widgets import ImagePane, from_qimage

SPECIAL_KEYS = {Qt.Key.Key_Left: "Left", Qt.Key.Key_Right: "Right", Qt.Key.Key_Up: "Up", Qt.Key.Key_Down: "Down",
                Qt.Key.Key_Escape: "Escape"}


class _Bridge(QObject):
    """Carries "results are ready" from worker threads to the GUI thread (a queued signal)."""

    results_ready = Signal()


class ViewerWindow(QWidget):
    def __init__(self, viewer: Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.state = viewer.state
        self.setWindowTitle(self.state.window_title)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setStyleSheet("background: #101010; color: #dddddd;")
        self.bridge = _Bridge()
        self.bridge.results_ready.connect(self.viewer.poll, Qt.ConnectionType.QueuedConnection)
        viewer.slots.notify = self.bridge.results_ready.emit
        viewer.snapshot_extras = lambda: {"window": grab_window(self)}

        self.input_pane = ImagePane()
        self.unit_pane = ImagePane()
        self.back_pane = ImagePane()
        self.predictions_pane = ImagePane(smooth=True)
        self.grid_pane = ImagePane(min_size=(320, 240))
        self.visuals_pane = ImagePane(min_size=(160, 240))
        self.panes = {"input": self.input_pane, "unit": self.unit_pane, "back": self.back_pane,
                      "predictions": self.predictions_pane, "grid": self.grid_pane, "visuals": self.visuals_pane}
        self.layer_list = QListWidget()
        self.layer_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.layer_list.addItems(self.state.layer_labels())
        self.layer_list.setMaximumWidth(220)
        self.status = QLabel()
        self.status.setFont(QFont("DejaVu Sans Mono", 9))
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)

        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(4)
        grid.addWidget(self.input_pane, 0, 0)
        grid.addWidget(self.unit_pane, 0, 1)
        grid.addWidget(self.back_pane, 0, 2)
        grid.addWidget(self.predictions_pane, 0, 3)
        grid.addWidget(self.layer_list, 1, 0)
        grid.addWidget(self.grid_pane, 1, 1, 1, 3)
        grid.addWidget(self.visuals_pane, 0, 4, 2, 1)
        grid.addWidget(self.status, 2, 0, 1, 5)
        grid.setRowStretch(0, 2)
        grid.setRowStretch(1, 5)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 1)
        grid.setColumnStretch(3, 1)

        self.help = QLabel("\n".join(help_lines(words=self.state.words)), self)
        self.help.setFont(QFont("DejaVu Sans Mono", 10))
        self.help.setStyleSheet("background: rgba(0, 0, 0, 210); color: #f0f0a0; padding: 16px;")
        self.help.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.help.hide()

        self.grid_pane.clicked.connect(self.state.click_grid)
        self.layer_list.currentRowChanged.connect(self._layer_clicked)
        self.state.events.connect(self._on_event)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start(250)
        self.resize(1200, 760)
        self._refresh_all()

    # ---- input ----------------------------------------------------------------------------------
    def keyPressEvent(self, event) -> None:
        key = SPECIAL_KEYS.get(event.key(), event.text())
        if key and self.viewer.handle_key(key):
            event.accept()
        else:
            super().keyPressEvent(event)

    def _layer_clicked(self, row: int) -> None:
        if row >= 0:
            self.viewer.select_layer(row)

    def save_panes(self, directory=None):
        """Save every pane and a screenshot of the whole window."""
        return self.viewer.save_panes(directory, extra={"window": grab_window(self)})

    # ---- state -> widgets ----------------------------------------------------------------------------
    def _on_event(self, name: str) -> None:
        if name == "quit":
            self.close()
        elif name == "help":
            self._show_help()
        else:
            self._refresh_all()

    def _refresh_all(self) -> None:
        if self.layer_list.currentRow() != self.state.layer_index:
            self.layer_list.blockSignals(True)
            self.layer_list.setCurrentRow(self.state.layer_index)
            self.layer_list.blockSignals(False)
        for name, view in self.state.pane_views().items():
            self.panes[name].present(view)
            self.panes[name].setVisible(view.visible)
        self._refresh_status()

    def _refresh_status(self) -> None:
        self.status.setText(self.state.status_line())

    def _show_help(self) -> None:
        self.help.setGeometry(self.rect().adjusted(40, 40, -40, -40))
        self.help.setVisible(self.state.help_visible)
        self.help.raise_()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.help.isVisible():
            self.help.setGeometry(self.rect().adjusted(40, 40, -40, -40))

    def closeEvent(self, event) -> None:
        self._status_timer.stop()
        self.viewer.slots.notify = None
        self.viewer.stop()
        super().closeEvent(event)


def grab_window(window: QWidget) -> np.ndarray:
    return from_qimage(window.grab().toImage())
