"""The viewer's model: what the user selected, the modes, the latest results, and what each pane
shows (titles, zoom, stale flags, selection outlines, visibility). Qt-free.

Only the GUI thread mutates it (workers hand their results over through `LatestSlots`); every
change emits an event naming what changed, and the widgets draw `pane_views()` as they are.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from onnxprobe.autodiff import MODES, BackMode
from onnxprobe.optimize.presets import PICTURES

from onnxprobe.render.backmaps import FILTERS
from onnxprobe.render.grid import GAMMA_BOOSTS, PER_CHANNEL_BOOSTS, GridLayout
from onnxprobe.viewer.events import Emitter
from onnxprobe.viewer.panes import mark_selection, stale

BACK_MODES = ("off", *MODES)
QUICK_BACK_LOOP = (("off", "raw"), (BackMode.GRADIENT.value, "raw"), (BackMode.GRADIENT.value, "norm"),
                   (BackMode.DECONV.value, "raw"))
ZOOMS = ("none", "unit", "back")
# the picture from the current frame (onnxprobe.optimize.photo), in the order a key cycles them
PICTURE_LOOP = ("off", *PICTURES)
PICTURE_WORDS = {"accentuate": "accentuation of {layer}:{unit}", "caricature": "caricature of {layer}",
                 "invert": "inversion from {layer}"}
# How the user gives the viewer its inputs, in the library's words; a front end passes its own
# (the view command: its flags, from cli/flags.py) to Viewer / ViewerState as `words`.
INPUT_WORDS = {"atlas": "an atlas", "files": "image files or a video"}


@dataclass(frozen=True)
class Settings:
    """A snapshot of what the workers need from the state (immutable, safe to hand to threads)."""

    layer: str
    unit: int
    boost_indiv: float
    boost_gamma: float
    pattern: bool
    back_mode: str
    back_filter: str
    origin: tuple[str, int]  # (layer, unit) the backward pass starts from
    diffs: bool
    resize: str
    label_overlay: bool


def back_key(settings: Settings) -> tuple:
    """What a back map depends on besides the frame: a shown map whose key differs from the current
    settings' is stale (drawn dimmed until the new one arrives)."""
    return (settings.origin, settings.back_mode, settings.back_filter, settings.diffs,
            settings.layer if settings.diffs else None)


@dataclass(frozen=True)
class PictureProgress:
    """Where a picture from the current frame stands (`kind` of PICTURES): its objective on the
    frame (`photo_value`) and on the picture (`value`, without the closeness term), the RMS
    distance from the frame in 0..255 units, after `step` of `steps`."""

    kind: str
    layer: str  # as shown (the layer's label)
    unit: int | None
    step: int
    steps: int
    value: float
    photo_value: float
    distance: float

    @property
    def what(self) -> str:
        return PICTURE_WORDS[self.kind].format(layer=self.layer, unit=self.unit) + " from the frame"

    @property
    def numbers(self) -> str:
        if self.kind == "invert":
            said = f"relative error {-self.value:.3g}"
        else:
            said = f"{self.photo_value:.3g} on the frame, {self.value:.3g} here"
        return f"{said}, distance {self.distance:.1f}/255"

    @property
    def title(self) -> str:
        return f"{self.what}, step {self.step}/{self.steps}: {self.numbers}"


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class PaneView:
    """What one pane shows; the widgets draw exactly this."""

    title: str
    image: np.ndarray | None
    stale: bool = False  # out of date: drawn dimmed, "(stale)" in the heading
    selection: tuple[int, int, int, int] | None = None  # y, x, h, w in image pixels: outlined
    placeholder: str = "waiting for a frame"  # drawn while there is no image
    visible: bool = True

    @property
    def heading(self) -> str:
        return self.title + ("  (stale)" if self.stale and self.image is not None else "")


@dataclass
class LayerEntry:
    name: str
    units: int
    spatial: bool
    channel_axis: int
    spatial_axes: tuple[int, ...]
    label: str = ""  # what a person reads: the module path where there is one, else the name

    def __post_init__(self):
        self.label = self.label or self.name


@dataclass
class Panes:
    """The latest display images (HxWx3 uint8 RGB) and what they were computed from."""

    input: np.ndarray | None = None
    grid: np.ndarray | None = None
    grid_layout: GridLayout | None = None
    grid_layer: str | None = None
    diff_grid: np.ndarray | None = None
    diff_layout: GridLayout | None = None
    unit: np.ndarray | None = None
    predictions: list = field(default_factory=list)  # model.Prediction (class, label, score), most probable first
    predictions_image: np.ndarray | None = None
    back: np.ndarray | None = None
    back_settings: Settings | None = None  # what the shown back map was computed for
    visuals: np.ndarray | None = None
    optimized: np.ndarray | None = None  # the live optimization's image, or the picture from the frame's
    picture: PictureProgress | None = None  # what `optimized` shows when it is a picture from the frame
    frame_seq: int = -1


class ViewerState:
    def __init__(self, layers: list[LayerEntry], default_layer: int = 0, has_atlas: bool = False, model_name: str = "",
                 words: dict[str, str] | None = None):
        if not layers:
            raise ValueError("the viewer needs at least one layer")
        self.layers = layers
        self.words = {**INPUT_WORDS, **(words or {})}
        self.model_name = model_name
        self.default_layer = default_layer
        self.has_atlas = has_atlas
        self.events = Emitter()
        self.panes = Panes()
        self.messages: deque[tuple[float, str]] = deque(maxlen=4)
        self.source_label = ""
        self.fps = 0.0
        self._shown_at: deque[float] = deque(maxlen=120)
        self.quit_requested = False
        self._reset_modes()

    def _reset_modes(self) -> None:
        self.layer_index = self.default_layer
        self.unit = 0
        self.pattern = False
        self.back_mode = "off"
        self.back_filter = "raw"
        self.diffs = False
        self.boost_indiv_index = 0
        self.boost_gamma_index = 0
        self.origin_frozen: tuple[str, int] | None = None
        self.frame_frozen = False
        self.help_visible = False
        self.zoom = "none"
        self.resize = "crop"
        self.label_overlay = False
        self.unit_images = True
        self.picture = "off"  # the picture from the current frame being drawn (PICTURE_LOOP)
        self.columns = 1  # grid columns of the current layer (for up/down moves)

    # ---- reading ------------------------------------------------------------------------------
    @property
    def layer(self) -> LayerEntry:
        return self.layers[self.layer_index]

    @property
    def origin(self) -> tuple[str, int]:
        return self.origin_frozen or (self.layer.name, self.unit)

    def settings(self) -> Settings:
        return Settings(
            layer=self.layer.name, unit=self.unit, boost_indiv=PER_CHANNEL_BOOSTS[self.boost_indiv_index],
            boost_gamma=GAMMA_BOOSTS[self.boost_gamma_index], pattern=self.pattern, back_mode=self.back_mode,
            back_filter=self.back_filter, origin=self.origin, diffs=self.diffs, resize=self.resize,
            label_overlay=self.label_overlay,
        )

    def status_line(self) -> str:
        mode = "pattern" if self.pattern else ("back diffs" if self.diffs else "forward")
        back = "back off" if self.back_mode == "off" else f"back {self.back_mode} {self.back_filter}"
        if self.origin_frozen:
            back += f" (origin frozen at {self.origin_frozen[0]}:{self.origin_frozen[1]})"
        parts = [mode, f"{self.layer.label}:{self.unit}", back,
                 f"boost T={PER_CHANNEL_BOOSTS[self.boost_indiv_index]:g} t={GAMMA_BOOSTS[self.boost_gamma_index]:g}",
                 f"{self.fps:.1f} fps"]
        if self.frame_frozen:
            parts.append("frozen")
        if self.source_label:
            parts.append(self.source_label)
        now = time.monotonic()
        recent = [text for stamp, text in self.messages if now - stamp < 8.0]
        if recent:
            parts.append(recent[-1])
        return " | ".join(parts)

    # ---- changing (each emits what changed) ----------------------------------------------------
    def message(self, text: str) -> None:
        self.messages.append((time.monotonic(), " ".join(str(text).split())))
        self.events.emit("status")

    def select_layer(self, index: int) -> None:
        index = int(np.clip(index, 0, len(self.layers) - 1))
        if index != self.layer_index:
            self.layer_index = index
            self.unit = min(self.unit, self.layer.units - 1)
            self.events.emit("selection")

    def select_unit(self, unit: int) -> None:
        unit = int(np.clip(unit, 0, self.layer.units - 1))
        if unit != self.unit:
            self.unit = unit
            self.events.emit("selection")

    def move(self, dx: int = 0, dy: int = 0) -> None:
        self.select_unit(self.unit + dx + dy * max(1, self.columns))

    def _set(self, event: str, **values) -> None:
        for key, value in values.items():
            setattr(self, key, value)
        self.events.emit(event)

    def back_mode_next(self) -> None:
        self._set("modes", back_mode=BACK_MODES[(BACK_MODES.index(self.back_mode) + 1) % len(BACK_MODES)])

    def back_filter_next(self) -> None:
        self._set("modes", back_filter=FILTERS[(FILTERS.index(self.back_filter) + 1) % len(FILTERS)])

    def quick_back(self) -> None:
        current = (self.back_mode, self.back_filter)
        step = QUICK_BACK_LOOP.index(current) + 1 if current in QUICK_BACK_LOOP else 1
        mode, filt = QUICK_BACK_LOOP[step % len(QUICK_BACK_LOOP)]
        self._set("modes", back_mode=mode, back_filter=filt)

    def gamma_boost(self) -> None:
        self._set("modes", boost_gamma_index=(self.boost_gamma_index + 1) % len(GAMMA_BOOSTS))

    def channel_boost(self) -> None:
        self._set("modes", boost_indiv_index=(self.boost_indiv_index + 1) % len(PER_CHANNEL_BOOSTS))

    def pattern_mode(self) -> None:
        if not self.has_atlas and not self.pattern:
            self.message(f"pattern mode needs unit images: start with {self.words['atlas']}")
            return
        self._set("modes", pattern=not self.pattern)

    def toggle_diffs(self) -> None:
        self._set("modes", diffs=not self.diffs)
        if self.diffs and self.back_mode == "off":
            self.message("back diffs need a back mode: press n")

    def freeze_origin(self) -> None:
        self._set("modes", origin_frozen=None if self.origin_frozen else (self.layer.name, self.unit))

    def freeze_frame(self) -> None:
        self._set("modes", frame_frozen=not self.frame_frozen)

    def toggle_help(self) -> None:
        self._set("help", help_visible=not self.help_visible)

    def zoom_next(self) -> None:
        self._set("modes", zoom=ZOOMS[(ZOOMS.index(self.zoom) + 1) % len(ZOOMS)])

    def toggle_resize(self) -> None:
        self._set("modes", resize="stretch" if self.resize == "crop" else "crop")

    def toggle_label_overlay(self) -> None:
        self._set("modes", label_overlay=not self.label_overlay)

    def toggle_unit_images(self) -> None:
        self._set("modes", unit_images=not self.unit_images)

    def picture_next(self) -> None:
        """The next picture from the current frame: accentuation of the selected unit, caricature of
        the selected layer, inversion from it, then off (the controller starts and stops them)."""
        self._set("picture", picture=PICTURE_LOOP[(PICTURE_LOOP.index(self.picture) + 1) % len(PICTURE_LOOP)])

    def picture_off(self) -> None:
        if self.picture != "off":
            self._set("picture", picture="off")

    def reset(self) -> None:
        picture = self.picture
        self._reset_modes()
        self.events.emit("selection")
        self.events.emit("modes")
        if picture != "off":
            self.events.emit("picture")

    def quit(self) -> None:
        self._set("quit", quit_requested=True)

    # ---- what the panes show (the widgets draw it, `p` saves it) --------------------------------
    @property
    def window_title(self) -> str:
        return f"onnxprobe view: {self.model_name}"

    def layer_labels(self) -> list[str]:
        return [f"{e.label}  ({e.units})" for e in self.layers]

    @property
    def back_on(self) -> bool:
        return self.back_mode != "off"

    @property
    def back_stale(self) -> bool:
        """The shown back map was computed for other back settings than the current ones."""
        shown = self.panes.back_settings
        return self.panes.back is not None and shown is not None and back_key(shown) != back_key(self.settings())

    def grid_shown(self):
        """(image, layout, kind) of the layer grid unzoomed: the back diffs when asked for and
        computed, else the activations (the atlas's images in pattern mode)."""
        p = self.panes
        if self.diffs and p.diff_grid is not None:
            return p.diff_grid, p.diff_layout, "back diffs"
        return p.grid, p.grid_layout, "optimized images" if self.pattern else "activations"

    def pane_views(self) -> dict[str, PaneView]:
        p = self.panes
        optimized = p.optimized is not None
        return {
            "input": PaneView("input", p.input),
            "unit": PaneView(f"unit {self.layer.label}:{self.unit} | over the input", p.unit),
            "back": PaneView(f"back: {self.back_mode} {self.back_filter}" if self.back_on else "back: off",
                             p.back if self.back_on else None, stale=self.back_stale, placeholder="back mode off (n)"),
            "predictions": PaneView("predictions", p.predictions_image),
            "grid": self._grid_view(),
            "visuals": PaneView((p.picture.title if p.picture is not None else "live optimization") if optimized
                                else "unit visuals", p.optimized if optimized else p.visuals,
                                visible=self.unit_images and (self.has_atlas or optimized)),
        }

    def _grid_view(self) -> PaneView:
        p = self.panes
        if self.zoom == "unit":
            return PaneView(f"zoom: {self.layer.label}:{self.unit}", p.unit)
        if self.zoom == "back":
            return PaneView("zoom: back map", p.back if self.back_on else None, stale=self.back_stale)
        image, layout, kind = self.grid_shown()
        selection = None
        if layout is not None and p.grid_layer == self.layer.name and self.unit < layout.count:
            selection = layout.tile_rect(self.unit)
        return PaneView(f"{self.layer.label}: {kind} ({self.layer.units} units)", image, selection=selection,
                        stale=p.grid_layer is not None and p.grid_layer != self.layer.name)

    def click_grid(self, y: float, x: float) -> int | None:
        """Select the unit whose tile is at image pixel (y, x) of the grid pane; None where there is
        none (or the pane shows a zoom, or an older layer's grid)."""
        _, layout, _ = self.grid_shown()
        if self.zoom != "none" or layout is None or self.panes.grid_layer != self.layer.name:
            return None
        unit = layout.unit_at(y, x)
        if unit is not None:
            self.select_unit(unit)
        return unit

    def saved_panes(self) -> dict[str, np.ndarray]:
        """The panes as `p` saves them: unzoomed, the grid with the selection outlined, the back map
        dimmed when stale."""
        p = self.panes
        out = {}
        if p.input is not None:
            out["input"] = p.input
        grid, layout, _ = self.grid_shown()
        if grid is not None:
            out["grid"] = mark_selection(grid, layout, self.unit)
        for name in ("unit", "predictions_image", "visuals", "optimized"):
            if getattr(p, name) is not None:
                out[name.removesuffix("_image")] = getattr(p, name)
        if p.back is not None and self.back_on:
            out["back"] = stale(p.back) if self.back_stale else p.back
        return out

    # ---- results from the workers ----------------------------------------------------------------
    def frame_shown(self, now: float | None = None) -> None:
        """Count one displayed frame for the frames-per-second figure (over the last 2 s)."""
        now = time.monotonic() if now is None else now
        self._shown_at.append(now)
        while self._shown_at and now - self._shown_at[0] > 2.0:
            self._shown_at.popleft()
        span = now - self._shown_at[0] if len(self._shown_at) > 1 else 0.0
        self.fps = (len(self._shown_at) - 1) / span if span > 0 else 0.0

    def show_back(self, settings: Settings, values: dict) -> bool:
        """A back map computed for `settings` arrived: shown unless the back pane was turned off
        meanwhile (then False)."""
        if not self.back_on:
            return False
        self.panes.back_settings = settings
        self.update_panes("back", **values)
        return True

    def update_panes(self, event: str, **values) -> None:
        for key, value in values.items():
            setattr(self.panes, key, value)
        if values.get("grid_layout") is not None and values.get("grid_layer") == self.layer.name:
            self.columns = values["grid_layout"].columns
        self.events.emit(event)

