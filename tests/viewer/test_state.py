"""The Qt-free state: key bindings change the selection and modes as the toolbox's did."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from onnxprobe.render.grid import GAMMA_BOOSTS, PER_CHANNEL_BOOSTS, GridLayout
from onnxprobe.viewer.keys import BINDINGS, KEYMAP
from onnxprobe.viewer.state import LayerEntry, ViewerState

LAYERS = [LayerEntry("conv1", 16, True, 1, (2, 3)), LayerEntry("pool1", 16, True, 1, (2, 3)),
          LayerEntry("conv2", 32, True, 1, (2, 3)), LayerEntry("fc", 10, False, 1, ())]


def make_state(**kwargs) -> ViewerState:
    state = ViewerState(LAYERS, **kwargs)
    state.columns = 4  # a 4-column grid, as the forward worker would report
    return state


def press(state: ViewerState, keys: str | list[str]) -> None:
    for key in keys:
        KEYMAP[key].action(SimpleNamespace(state=state))  # these keys reach only the model


# keys typed from the start -> (layer index, unit)
MOVES = [
    ("l", (0, 1)), ("lll", (0, 3)), ("L", (0, 3)), ("j", (0, 0)), ("k", (0, 4)), ("K", (0, 12)),
    ("KK", (0, 15)), ("Ki", (0, 8)), ("KI", (0, 0)), (["Right", "Down"], (0, 5)), (["Left"], (0, 0)),
    ("o", (1, 0)), ("O", (1, 0)), ("oo", (2, 0)), ("ooou", (2, 0)), ("oooooo", (3, 0)), ("u", (0, 0)),
    ("KKoooo", (3, 9)),  # unit 15 is clamped to the fc layer's 10 units
]


@pytest.mark.parametrize("keys,expected", MOVES, ids=[str(k) for k, _ in MOVES])
def test_moves_select_layer_and_unit(keys, expected):
    state = make_state()
    press(state, keys)
    assert (state.layer_index, state.unit) == expected


def test_default_layer_and_events():
    state = make_state(default_layer=2)
    seen = []
    state.events.connect(seen.append)
    press(state, "lT")
    assert state.layer.name == "conv2" and seen == ["selection", "modes"]
    press(state, "j")  # back at unit 0
    press(state, "j")  # no change: no event
    assert seen == ["selection", "modes", "selection"]


# key pressed n times -> attribute and expected value (cycles of the toolbox)
CYCLES = [
    ("n", 1, "back_mode", "gradient"), ("n", 2, "back_mode", "deconv"), ("n", 3, "back_mode", "guided"),
    ("n", 4, "back_mode", "off"), ("m", 1, "back_filter", "gray"), ("m", 3, "back_filter", "normblur"),
    ("m", 4, "back_filter", "raw"), ("t", 1, "boost_gamma_index", 1), ("t", len(GAMMA_BOOSTS), "boost_gamma_index", 0),
    ("T", 2, "boost_indiv_index", 2), ("T", len(PER_CHANNEL_BOOSTS), "boost_indiv_index", 0),
    ("z", 1, "zoom", "unit"), ("z", 2, "zoom", "back"), ("z", 3, "zoom", "none"), ("a", 1, "diffs", True),
    ("a", 2, "diffs", False), ("h", 1, "help_visible", True), ("0", 1, "resize", "stretch"), ("0", 2, "resize", "crop"),
    ("8", 1, "label_overlay", True), ("9", 1, "unit_images", False), ("q", 1, "quit_requested", True),
]


@pytest.mark.parametrize("key,times,attribute,expected", CYCLES, ids=[f"{k}x{n}" for k, n, _, _ in CYCLES])
def test_mode_cycles(key, times, attribute, expected):
    state = make_state()
    press(state, key * times)
    assert getattr(state, attribute) == expected


@pytest.mark.parametrize("times,expected", [(1, ("gradient", "raw")), (2, ("gradient", "norm")), (3, ("deconv", "raw")),
                                            (4, ("off", "raw"))])
def test_quick_back_loop(times, expected):
    state = make_state()
    press(state, "b" * times)
    assert (state.back_mode, state.back_filter) == expected


def test_settings_carry_boost_values_and_frozen_origin():
    state = make_state()
    press(state, "lldTTtt")  # freeze the origin at conv1:2, then move on
    press(state, "oll")
    settings = state.settings()
    assert settings.origin == ("conv1", 2)
    assert (settings.layer, settings.unit) == ("pool1", 4)
    assert settings.boost_indiv == PER_CHANNEL_BOOSTS[2] and settings.boost_gamma == GAMMA_BOOSTS[2]
    press(state, "d")
    assert state.settings().origin == ("pool1", 4)


def test_escape_resets_everything():
    state = make_state()
    press(state, "olnnmTtsazh8")
    press(state, ["Escape"])
    fresh = make_state()
    assert state.settings() == fresh.settings()
    assert (state.zoom, state.help_visible, state.layer_index) == ("none", False, 0)


def test_pattern_mode_needs_an_atlas():
    without = make_state()
    press(without, "s")
    assert not without.pattern and "start with an atlas" in without.status_line()  # the library's words (view: --atlas DIR)
    with_atlas = make_state(has_atlas=True)
    press(with_atlas, "s")
    assert with_atlas.pattern and with_atlas.status_line().startswith("pattern")


def test_status_line_names_mode_unit_back_and_boosts():
    state = make_state()
    press(state, "lnmT")
    line = state.status_line()
    for part in ("forward", "conv1:1", "back gradient gray", f"T={PER_CHANNEL_BOOSTS[1]:g}", "fps"):
        assert part in line


def test_fps_counts_shown_frames():
    state = make_state()
    for i in range(11):
        state.frame_shown(now=100.0 + i * 0.05)  # 10 intervals of 50 ms
    assert state.fps == pytest.approx(20.0)


def test_grid_columns_follow_the_shown_layer():
    state = make_state()
    layout = GridLayout(16, 2, 8, 4, 4, 1)
    state.update_panes("forward", grid_layout=layout, grid_layer="pool1")  # an old result for another layer
    assert state.columns == 4
    state.update_panes("forward", grid_layout=layout, grid_layer="conv1")
    assert state.columns == 8


def test_every_original_key_is_bound():
    original = "f c e w h 0 q Escape j l k i J L K I u U o O z s b d a n m t T 8 9".split()
    assert not [k for k in original if k not in KEYMAP]
    assert len({k for keys, _, _ in BINDINGS for k in keys}) == sum(len(keys) for keys, _, _ in BINDINGS)


def test_qt_free_modules_do_not_import_qt():
    modules = ["onnxprobe.viewer", "onnxprobe.viewer.state", "onnxprobe.viewer.controller", "onnxprobe.viewer.sources",
               "onnxprobe.viewer.atlas_source", "onnxprobe.viewer.panes", "onnxprobe.viewer.workers",
               "onnxprobe.viewer.optimize_live", "onnxprobe.viewer.keys", "onnxprobe.viewer.passes",
               "onnxprobe.viewer.snapshot", "onnxprobe.cli.view"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_binding_calls_a_method_that_exists():
    """The key table holds callables: each reaches a real method of the controller or the model
    (a misspelt name fails here, not when the key is first pressed)."""
    from unittest.mock import Mock

    from onnxprobe.viewer.controller import Viewer

    viewer = Mock(spec=Viewer)
    viewer.state = make_state(has_atlas=True)
    for binding in BINDINGS:
        binding.action(viewer)
    called = {name for name, _, _ in viewer.method_calls}
    assert called == {"toggle_source", "step_files", "save_and_report", "toggle_live_optimization"}
