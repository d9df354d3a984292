"""The original toolbox's key bindings (plus a few of ours), as one table: key -> action."""

from __future__ import annotations

# (keys, action, help text); keys are the typed character, or a Qt-independent name for special keys.
BINDINGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("f",), "freeze_frame", "freeze / unfreeze the frame"),
    (("c",), "toggle_source", "switch between camera and files"),
    (("e",), "next_image", "next file"),
    (("w",), "previous_image", "previous file"),
    (("h",), "toggle_help", "this help"),
    (("0",), "toggle_resize", "crop vs stretch to the input size"),
    (("q",), "quit", "quit"),
    (("Escape",), "reset", "reset modes and selection"),
    (("Left", "j"), "left", "move left (J: 3 units)"),
    (("Right", "l"), "right", "move right (L: 3 units)"),
    (("Up", "i"), "up", "move up (I: 3 rows)"),
    (("Down", "k"), "down", "move down (K: 3 rows)"),
    (("J",), "left3", ""),
    (("L",), "right3", ""),
    (("I",), "up3", ""),
    (("K",), "down3", ""),
    (("u", "U"), "previous_layer", "previous layer"),
    (("o", "O"), "next_layer", "next layer"),
    (("z",), "zoom", "zoom cycle: none, selected unit, back map"),
    (("s",), "pattern_mode", "pattern mode: optimized images in the grid (needs --atlas)"),
    (("b",), "quick_back", "quick back loop: off, grad raw, grad norm, deconv raw"),
    (("d",), "freeze_origin", "freeze the back-pass origin unit"),
    (("a",), "toggle_diffs", "grid: activations vs back diffs"),
    (("n",), "back_mode", "back mode: off, gradient, deconv, guided"),
    (("m",), "back_filter", "back filter: raw, gray, norm, normblur"),
    (("t",), "gamma_boost", "gamma boost"),
    (("T",), "channel_boost", "per-channel boost"),
    (("8",), "label_overlay", "label overlay on the input"),
    (("9",), "unit_images", "unit visuals on / off"),
    (("p",), "save_panes", "save the panes as PNG images"),
    (("g",), "optimize_live", "optimize the selected unit live (again: stop)"),
)

KEYMAP: dict[str, str] = {key: action for keys, action, _ in BINDINGS for key in keys}


ARROWS = {"Left": "\u2190", "Right": "\u2192", "Up": "\u2191", "Down": "\u2193"}


def help_lines(arrows: bool = True) -> list[str]:
    """One line per documented binding; `arrows=False` spells the arrow keys out (for plain-text help)."""
    names = {**(ARROWS if arrows else {}), "Escape": "esc"}
    lines = []
    for keys, _, text in BINDINGS:
        if text:
            shown = " ".join(names.get(k, k) for k in keys)
            lines.append(f"{shown:<8} {text}")
    lines.append("mouse    click a tile to select its unit; click a layer to show it")
    return lines
