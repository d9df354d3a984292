"""The original toolbox's key bindings (plus a few of ours), as one table: keys -> what they do.

Each binding's action is a callable taking the controller (`Viewer`): the ones that change the
selection or the modes call the Qt-free model (`viewer.state`); the ones that reach files, the
camera, the disk or the optimizer call the controller. `help_lines()` prints the table (the
window's help and the view command's help), naming the viewer's inputs in the `words` given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from onnxprobe.viewer.state import BACK_MODES, INPUT_WORDS


class Binding(NamedTuple):
    keys: tuple[str, ...]  # the typed character, or a Qt-independent name for special keys
    action: Callable[[Any], None]  # called with the controller
    help: str  # "" for keys documented by another line


BINDINGS: tuple[Binding, ...] = (
    Binding(("f",), lambda v: v.state.freeze_frame(), "freeze / unfreeze the frame"),
    Binding(("c",), lambda v: v.toggle_source(), "switch between camera and files"),
    Binding(("e",), lambda v: v.step_files(1), "next file"),
    Binding(("w",), lambda v: v.step_files(-1), "previous file"),
    Binding(("h",), lambda v: v.state.toggle_help(), "this help"),
    Binding(("0",), lambda v: v.state.toggle_resize(), "crop vs stretch to the input size"),
    Binding(("q",), lambda v: v.state.quit(), "quit"),
    Binding(("Escape",), lambda v: v.state.reset(), "reset modes and selection"),
    Binding(("Left", "j"), lambda v: v.state.move(dx=-1), "move left (J: 3 units)"),
    Binding(("Right", "l"), lambda v: v.state.move(dx=1), "move right (L: 3 units)"),
    Binding(("Up", "i"), lambda v: v.state.move(dy=-1), "move up (I: 3 rows)"),
    Binding(("Down", "k"), lambda v: v.state.move(dy=1), "move down (K: 3 rows)"),
    Binding(("J",), lambda v: v.state.move(dx=-3), ""),
    Binding(("L",), lambda v: v.state.move(dx=3), ""),
    Binding(("I",), lambda v: v.state.move(dy=-3), ""),
    Binding(("K",), lambda v: v.state.move(dy=3), ""),
    Binding(("u", "U"), lambda v: v.state.select_layer(v.state.layer_index - 1), "previous layer"),
    Binding(("o", "O"), lambda v: v.state.select_layer(v.state.layer_index + 1), "next layer"),
    Binding(("z",), lambda v: v.state.zoom_next(), "zoom cycle: none, selected unit, back map"),
    Binding(("s",), lambda v: v.state.pattern_mode(), "pattern mode: optimized images in the grid (needs {atlas})"),
    Binding(("b",), lambda v: v.state.quick_back(), "quick back loop: off, grad raw, grad norm, deconv raw"),
    Binding(("d",), lambda v: v.state.freeze_origin(), "freeze the back-pass origin unit"),
    Binding(("a",), lambda v: v.state.toggle_diffs(), "grid: activations vs back diffs"),
    Binding(("n",), lambda v: v.state.back_mode_next(), f"back mode: {', '.join(BACK_MODES)}"),
    Binding(("m",), lambda v: v.state.back_filter_next(), "back filter: raw, gray, norm, normblur"),
    Binding(("t",), lambda v: v.state.gamma_boost(), "gamma boost"),
    Binding(("T",), lambda v: v.state.channel_boost(), "per-channel boost"),
    Binding(("8",), lambda v: v.state.toggle_label_overlay(), "label overlay on the input"),
    Binding(("9",), lambda v: v.state.toggle_unit_images(), "unit visuals on / off"),
    Binding(("p",), lambda v: v.save_and_report(), "save the panes as PNG images"),
    Binding(("g",), lambda v: v.toggle_live_optimization(), "optimize the selected unit live (again: stop)"),
    Binding(("r",), lambda v: v.state.picture_next(),
            "picture from the current frame: accentuate the unit, caricature of the layer, inversion from it, off"),
)

KEYMAP: dict[str, Binding] = {key: binding for binding in BINDINGS for key in binding.keys}


ARROWS = {"Left": "\u2190", "Right": "\u2192", "Up": "\u2191", "Down": "\u2193"}


def help_lines(arrows: bool = True, words: dict[str, str] | None = None) -> list[str]:
    """One line per documented binding; `arrows=False` spells the arrow keys out (for plain-text help);
    `{atlas}` in a line is the viewer's input as `words` name it (INPUT_WORDS by default)."""
    names = {**(ARROWS if arrows else {}), "Escape": "esc"}
    words = {**INPUT_WORDS, **(words or {})}
    lines = []
    for keys, _, text in BINDINGS:
        if text:
            shown = " ".join(names.get(k, k) for k in keys)
            for word, said in words.items():
                text = text.replace("{" + word + "}", said)
            lines.append(f"{shown:<8} {text}")
    lines.append("mouse    click a tile to select its unit; click a layer to show it")
    return lines
