"""The Qt window offscreen (pytest-qt): frames arrive, keys and clicks select, panes update, saving."""

from __future__ import annotations

import os

import numpy as np
import pytest

import pytestqt  # noqa: F401  (a test dependency: missing means fail, never skip)
from PySide6.QtCore import QPoint, Qt  # noqa: E402

from onnxprobe.model import ProbeModel  # noqa: E402
from onnxprobe.viewer.atlas_source import AtlasSource  # noqa: E402
from onnxprobe.viewer.controller import Viewer  # noqa: E402
from onnxprobe.viewer.qt.window import ViewerWindow  # noqa: E402
from onnxprobe.viewer.sources import VideoSource  # noqa: E402
from tests.viewer.conftest import FakeCapture, write_atlas  # noqa: E402

assert os.environ.get("QT_QPA_PLATFORM") == "offscreen"


@pytest.fixture
def window(qtbot, viewer_model_path, video_path, tmp_path):
    model = ProbeModel.load(viewer_model_path, device="cpu")
    first_spatial = next(layer for layer in model.layers if layer.is_spatial)
    atlas = AtlasSource(write_atlas(tmp_path / "atlas", first_spatial.name, first_spatial.units))
    capture = FakeCapture(good=8)
    viewer = Viewer(model, VideoSource(video_path), atlas=atlas, open_capture=lambda index: capture,
                    save_dir=tmp_path / "snaps")
    win = ViewerWindow(viewer)
    win.capture = capture
    qtbot.addWidget(win)
    viewer.start()
    win.show()
    qtbot.waitUntil(lambda: viewer.state.panes.grid is not None, timeout=20000)
    yield win
    win.close()


def test_grid_updates_as_frames_arrive(qtbot, window):
    viewer = window.viewer
    first = viewer.state.panes.frame_seq
    qtbot.waitUntil(lambda: viewer.state.panes.frame_seq >= first + 3, timeout=20000)
    assert window.grid_pane._image is not None and window.input_pane._image is not None
    assert window.grid_pane.selection == viewer.state.panes.grid_layout.tile_rect(0)
    assert "fps" in window.status.text() and viewer.state.layer.name in window.status.text()


def test_keys_and_mouse_select_units(qtbot, window):
    viewer = window.viewer
    qtbot.keyClick(window, "l")
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert viewer.state.unit == 2
    layout = viewer.state.panes.grid_layout
    y, x, h, w = layout.tile_rect(layout.count - 1)
    target = window.grid_pane.image_rect()
    scale = target.width() / viewer.state.panes.grid.shape[1]
    point = QPoint(int(target.x() + (x + w / 2) * scale), int(target.y() + (y + h / 2) * scale))
    qtbot.mouseClick(window.grid_pane, Qt.MouseButton.LeftButton, pos=point)
    assert viewer.state.unit == layout.count - 1
    assert window.grid_pane.selection == layout.tile_rect(layout.count - 1)
    qtbot.keyClick(window, "o")
    assert window.layer_list.currentRow() == viewer.state.layer_index
    window.layer_list.setCurrentRow(0)
    assert viewer.state.layer_index == 0


def test_back_pane_for_each_mode_and_filter(qtbot, window):
    viewer = window.viewer
    for mode in ("gradient", "deconv", "guided"):
        qtbot.keyClick(window, "n")
        for filt in ("raw", "gray", "norm", "normblur"):
            assert window.back_pane.title == f"back: {mode} {filt}"
            qtbot.waitUntil(lambda: viewer.last_back is not None and viewer.last_back.settings.back_mode == mode
                            and viewer.last_back.settings.back_filter == filt, timeout=20000)
            qtbot.waitUntil(lambda: window.back_pane._image is not None and not window.back_pane.stale, timeout=20000)
            qtbot.keyClick(window, "m")
    qtbot.keyClick(window, "n")
    assert window.back_pane._image is None and window.back_pane.title == "back: off"


def test_pattern_mode_and_unit_visuals(qtbot, window):
    viewer = window.viewer
    assert window.visuals_pane.isVisible()
    qtbot.waitUntil(lambda: viewer.state.panes.visuals is not None, timeout=20000)
    qtbot.keyClick(window, "s")
    qtbot.waitUntil(lambda: viewer.last_forward.settings.pattern, timeout=20000)
    assert "optimized images" in window.grid_pane.title
    qtbot.keyClick(window, "9")
    assert not window.visuals_pane.isVisible()


def test_picture_from_the_frame_in_the_visuals_pane(qtbot, window):
    """`r`: the selected unit accentuated on the frame shown, drawn in the visuals pane as it goes,
    while the grid keeps following the frames; `r` three more times: caricature, inversion, off."""
    viewer = window.viewer
    qtbot.keyClick(window, "r")
    first = viewer.state.panes.frame_seq
    qtbot.waitUntil(lambda: window.visuals_pane.title.startswith("accentuation of")
                    and window.visuals_pane._image is not None, timeout=20000)
    assert window.visuals_pane.isVisible() and "distance" in window.visuals_pane.title
    qtbot.waitUntil(lambda: viewer.state.panes.frame_seq > first, timeout=20000)
    qtbot.keyClick(window, "r")
    qtbot.waitUntil(lambda: window.visuals_pane.title.startswith("caricature of"), timeout=20000)
    qtbot.keyClick(window, "r")
    qtbot.keyClick(window, "r")
    assert viewer.state.picture == "off" and "stopped" in window.status.text()


def test_camera_failure_keeps_the_window_running(qtbot, window):
    viewer = window.viewer
    qtbot.keyClick(window, "c")
    qtbot.waitUntil(lambda: "stopped delivering frames" in window.status.text(), timeout=20000)
    assert window.isVisible() and window.capture.released
    qtbot.keyClick(window, "c")
    qtbot.waitUntil(lambda: viewer.last_forward.frame.label.startswith("video"), timeout=20000)


def test_help_zoom_and_save(qtbot, window, tmp_path):
    qtbot.keyClick(window, "h")
    assert window.help.isVisible() and "pattern mode" in window.help.text()
    qtbot.keyClick(window, "h")
    qtbot.keyClick(window, "z")
    assert window.grid_pane.title.startswith("zoom") and window.grid_pane.selection is None
    qtbot.keyClick(window, "p")
    saved = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert any(name.endswith("-window.png") for name in saved) and any(name.endswith("-grid.png") for name in saved)
    shot = window.save_panes(tmp_path / "more")
    window_png = [p for p in shot if p.name.endswith("-window.png")][0]
    import cv2
    image = cv2.imread(str(window_png))
    assert image.shape[:2] == (window.height(), window.width()) and image.std() > 5


def test_quit_key_closes(qtbot, window):
    qtbot.keyClick(window, "q")
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert not window.viewer.forward.is_alive()


def test_pane_images_are_copies_that_keep_every_pixel(qapp):
    """to_qimage hands the painter a 32-bit image of its own: the same pixels (colour and gray
    arrays), and a later change to the array does not reach what is painted."""
    from onnxprobe.viewer.qt.widgets import from_qimage, to_qimage

    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    image = to_qimage(rgb)
    rgb_before = rgb.copy()
    rgb[:] = 0
    np.testing.assert_array_equal(from_qimage(image), rgb_before)
    gray = np.random.default_rng(1).integers(0, 256, (4, 6), dtype=np.uint8)
    np.testing.assert_array_equal(from_qimage(to_qimage(gray)), np.repeat(gray[:, :, None], 3, axis=2))
