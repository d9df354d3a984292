"""What each pane shows, decided by the Qt-free model (titles, zoom, stale flags, selection,
visibility, what `p` saves): checked on the model alone, with hand-made pane images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from onnxprobe.render.grid import GridLayout
from onnxprobe.viewer.keys import KEYMAP
from onnxprobe.viewer.panes import stale
from onnxprobe.viewer.state import LayerEntry, ViewerState

LAYERS = [LayerEntry("conv1", 4, True, 1, (2, 3)), LayerEntry("fc", 3, False, 1, ())]
LAYOUT = GridLayout(4, 2, 2, 5, 5, 1)  # 2x2 tiles of 5 px, 1 px apart: an 11x11 grid


def image(value: int, shape=(11, 11)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def press(state: ViewerState, keys) -> None:
    for key in keys:
        KEYMAP[key].action(SimpleNamespace(state=state))


def shown_state(**kwargs) -> ViewerState:
    """A model that has shown one forward result for conv1 (and no back map yet)."""
    state = ViewerState(LAYERS, model_name="m.onnx", **kwargs)
    state.update_panes("forward", grid=image(100), grid_layout=LAYOUT, grid_layer="conv1", input=image(1),
                       unit=image(2), predictions_image=image(3))
    return state


def test_titles_follow_the_selection_and_modes():
    state = shown_state()
    press(state, "l")
    views = state.pane_views()
    assert views["unit"].title == "unit conv1:1 | over the input"
    assert views["grid"].title == "conv1: activations (4 units)"
    assert views["back"].title == "back: off" and views["back"].image is None
    press(state, "nm")
    assert state.pane_views()["back"].title == "back: gradient gray"
    assert state.window_title == "onnxprobe view: m.onnx" and state.layer_labels() == ["conv1  (4)", "fc  (3)"]


def test_grid_selection_and_stale_when_the_layer_changes():
    state = shown_state()
    press(state, "lk")  # unit 3: second row, second column
    grid = state.pane_views()["grid"]
    assert grid.selection == LAYOUT.tile_rect(3) == (6, 6, 5, 5) and not grid.stale
    press(state, "o")  # fc is selected; the grid still shows conv1 until the next result
    grid = state.pane_views()["grid"]
    assert grid.stale and grid.selection is None and grid.heading.endswith("(stale)")
    assert state.click_grid(1, 1) is None  # an older layer's tiles are not clickable


def test_zoom_cycle_shows_unit_then_back_and_blocks_clicks():
    state = shown_state()
    press(state, "z")
    grid = state.pane_views()["grid"]
    assert grid.title == "zoom: conv1:0" and grid.image is state.panes.unit and grid.selection is None
    assert state.click_grid(7, 7) is None and state.unit == 0
    press(state, "z")
    assert state.pane_views()["grid"].title == "zoom: back map" and state.pane_views()["grid"].image is None
    press(state, "z")
    assert state.click_grid(7, 7) == 3 and state.unit == 3
    assert state.click_grid(5, 5) is None  # the padding between tiles


def test_back_map_goes_stale_when_its_settings_change_and_fresh_when_the_next_arrives():
    state = shown_state()
    press(state, "n")
    assert state.show_back(state.settings(), {"back": image(200)})
    assert not state.back_stale and state.pane_views()["back"].heading == "back: gradient raw"
    press(state, "l")  # the origin follows the selection: the map shown is for unit 0
    assert state.back_stale and state.pane_views()["back"].heading == "back: gradient raw  (stale)"
    assert np.array_equal(state.saved_panes()["back"], stale(image(200)))
    press(state, "d")  # freezing the origin at the new unit does not change the origin
    assert state.back_stale
    assert state.show_back(state.settings(), {"back": image(210)})
    assert not state.back_stale and state.saved_panes()["back"] is state.panes.back
    press(state, "o")  # another grid layer does not touch a frozen origin's map (no diffs)...
    assert not state.back_stale
    press(state, "a")  # ...but the back diffs depend on the grid layer
    assert state.back_stale


def test_a_back_map_arriving_after_the_pane_was_turned_off_is_dropped():
    state = shown_state()
    press(state, "n")
    settings = state.settings()
    press(state, "nnn")  # back off
    assert not state.show_back(settings, {"back": image(200)}) and state.panes.back is None
    assert "back" not in state.saved_panes()


def test_diffs_grid_shown_and_clicked_once_computed():
    state = shown_state()
    press(state, "na")
    assert state.pane_views()["grid"].title == "conv1: activations (4 units)"  # no diffs computed yet
    diff_layout = GridLayout(4, 1, 4, 5, 5, 1)
    state.show_back(state.settings(), {"back": image(200), "diff_grid": image(50, (5, 23)), "diff_layout": diff_layout})
    grid = state.pane_views()["grid"]
    assert grid.title == "conv1: back diffs (4 units)" and grid.image is state.panes.diff_grid
    assert state.click_grid(1, 19) == 3  # picked in the diff grid's own layout
    assert state.saved_panes()["grid"].shape == (5, 23, 3)


def test_visuals_pane_visibility_and_live_optimization_title():
    without = shown_state()
    assert not without.pane_views()["visuals"].visible
    without.update_panes("optimize", optimized=image(9))
    visuals = without.pane_views()["visuals"]
    assert visuals.visible and visuals.title == "live optimization" and visuals.image is without.panes.optimized
    with_atlas = shown_state(has_atlas=True)
    assert with_atlas.pane_views()["visuals"].visible and with_atlas.pane_views()["visuals"].title == "unit visuals"
    press(with_atlas, "9")
    assert not with_atlas.pane_views()["visuals"].visible


def test_saved_panes_outline_the_selection_and_ignore_zoom():
    state = shown_state()
    press(state, "lz")
    saved = state.saved_panes()
    assert sorted(saved) == ["grid", "input", "predictions", "unit"]
    y, x, h, w = LAYOUT.tile_rect(1)
    assert tuple(saved["grid"][y + 2, x - 1]) == (255, 255, 0)  # unit 1's left edge, in the padding
    assert tuple(saved["grid"][2, 2]) == (100, 100, 100) and state.panes.grid[y + 2, x - 1, 2] == 100  # a copy


def test_back_objective_covers_the_units_channel_on_any_axis():
    """The back pane's objective (the unit's own activation where it fires most): its in-graph mask
    is the unit's whole channel on any channel axis (the graph finds the peak), a unit past the
    last is the last, and its seed from an activation is the activation at the peak only."""
    from onnxprobe.graph.layers import LayerInfo
    from onnxprobe.viewer.passes import back_objective

    nhwc = LayerInfo("t", "Conv", (None, 4, 5, 3), 3, (1, 2), None)
    objective = back_objective(None, nhwc, 2)
    mask = objective.self_seed.mask
    assert mask[..., 2].min() == 1 and mask[..., :2].max() == 0 and mask.sum() == 20
    assert objective.self_seed.peak_axes == (1, 2)
    act = np.random.default_rng(0).random((1, 4, 5, 3)).astype(np.float32)
    act[0, 3, 1, 2] = 2.0  # where unit 2 fires most
    seed = objective.seeds({"t": act}, 1)["t"]
    assert np.count_nonzero(seed) == 1 and seed[0, 3, 1, 2] == 2.0
    clamped = back_objective(None, LayerInfo("v", "Gemm", (None, 3), 1, (), None), 9)  # past the last unit
    assert clamped.self_seed.mask.tolist() == [[0.0, 0.0, 1.0]] and clamped.self_seed.peak_axes == ()


def test_the_controller_leaves_the_shared_model_alone(tmp_path):
    """The viewer used to set `model.threads` on the model it was given; the CLI now loads the
    model with the viewer's thread count (workers.inference_threads) and the controller does not
    touch it."""
    from onnxprobe.model import ProbeModel
    from onnxprobe.viewer.controller import Viewer
    from tests.conftest import make_conv_model

    path = tmp_path / "tiny.onnx"
    make_conv_model(path)
    model = ProbeModel.load(path, device="cpu")
    viewer = Viewer(model)
    assert model.threads is None and viewer.model is model


def test_the_picture_key_cycles_the_pictures_and_escape_stops_them():
    """`r` is a model change the controller follows ("picture" events): accentuation of the unit,
    caricature of the layer, inversion from it, off; Escape turns it off (and says so)."""
    state = shown_state()
    events = []
    state.events.connect(events.append)
    seen = []
    for _ in range(4):
        press(state, "r")
        seen.append(state.picture)
    assert seen == ["accentuate", "caricature", "invert", "off"] and events == ["picture"] * 4
    press(state, "r")
    events.clear()
    press(state, ["Escape"])
    assert state.picture == "off" and "picture" in events
    events.clear()
    press(state, ["Escape"])
    assert "picture" not in events  # nothing to stop


def test_the_visuals_pane_shows_the_picture_with_its_numbers():
    from onnxprobe.viewer.state import PictureProgress

    state = shown_state()
    progress = PictureProgress("accentuate", "conv1", 2, 40, 512, 5.25, 1.5, 12.34)
    state.update_panes("optimize", optimized=image(7), picture=progress)
    visuals = state.pane_views()["visuals"]
    assert visuals.visible and visuals.image is state.panes.optimized
    assert visuals.title == "accentuation of conv1:2 from the frame, step 40/512: 1.5 on the frame, 5.25 here, distance 12.3/255"
    state.update_panes("optimize", picture=PictureProgress("invert", "conv1", None, 8, 512, -0.25, 0.0, 80.0))
    assert state.pane_views()["visuals"].title.startswith("inversion from conv1 from the frame, step 8/512: relative error 0.25")
    state.update_panes("optimize", optimized=image(8), picture=None)  # a live optimization (g) after it
    assert state.pane_views()["visuals"].title == "live optimization"
    assert "optimized" in state.saved_panes()
