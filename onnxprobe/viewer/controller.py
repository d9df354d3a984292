"""`Viewer`: ties the state, the frame source and the workers together. Qt-free.

Threads: the grabber reads frames; the forward worker runs the model and renders the grid, unit,
input and prediction panes; the back worker runs the backward pass and renders the back pane; the
optimize worker steps a live optimization. Each takes only the newest job (one-slot mailboxes).
Results go into `LatestSlots`; the GUI thread calls `poll()` (when `notify` fires) to move them
into the state, which emits events to the widgets. The GUI thread never waits on the network.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxprobe.errors import ProbeError
from onnxprobe.fsutil import atomic_write_json, inside, safe_name
from onnxprobe.preprocess import with_overrides
from onnxprobe.position import strongest
from onnxprobe.render.backmaps import gradient_hwc, render_backmap
from onnxprobe.render.grid import NEG_POS_COLORS, layer_grid, units_first
from onnxprobe.render.images import write_png
from onnxprobe.viewer import panes
from onnxprobe.viewer.keys import KEYMAP
from onnxprobe.viewer.mailbox import LatestSlots
from onnxprobe.viewer.optimize_live import LiveOptimization
from onnxprobe.viewer.sources import CameraSource, FrameSource
from onnxprobe.viewer.state import ACTION_ALIASES, LayerEntry, Settings, ViewerState
from onnxprobe.viewer.workers import FrameGrabber, Worker

GRID_MIN_TILE = 24  # tiles smaller than this are repeated (nearest) so units stay clickable
PATTERN_TILE = 48


@dataclass(frozen=True)
class Frame:
    seq: int
    x: np.ndarray  # (1, ...) input tensor
    display: np.ndarray  # the input as the model sees it, HxWx3 uint8 RGB
    label: str


@dataclass
class ForwardResult:
    frame: Frame
    settings: Settings
    activation: np.ndarray  # the layer's activation, batch row 0
    tiles: np.ndarray  # (units, H, W)
    values: dict = field(default_factory=dict)  # pane name -> value for ViewerState.update_panes


@dataclass
class BackResult:
    frame: Frame
    settings: Settings
    grad: np.ndarray | None  # HxWxC gradient at the input
    values: dict = field(default_factory=dict)
    message: str | None = None


class Viewer:
    def __init__(self, model, source: FrameSource | None = None, atlas=None, camera_index: int = 0,
                 open_capture=None, save_dir: str | Path = ".", notify=None):
        self.model = model
        if model.threads is None:  # leave one core to the GUI thread and the grabber (sessions are built lazily)
            model.threads = max(1, (os.cpu_count() or 2) - 1)
        self.atlas = atlas
        self.save_dir = Path(save_dir)
        self.camera_index = camera_index
        self._open_capture = open_capture
        entries = [LayerEntry(l.name, l.units, l.is_spatial, l.channel_axis, l.spatial_axes) for l in model.layers]
        spatial = [i for i, e in enumerate(entries) if e.spatial]
        self.state = ViewerState(entries, default_layer=spatial[0] if spatial else 0, has_atlas=atlas is not None)
        self.slots = LatestSlots(notify)
        self._settings = self.state.settings()
        self._frame: Frame | None = None
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._files_source = source if source is not None and not isinstance(source, CameraSource) else None
        self._initial_source = source
        self._on_camera = isinstance(source, CameraSource)
        self._forward_cache: tuple[tuple, dict] | None = None
        self._back_cache: tuple[tuple, dict] | None = None
        self._optimization: LiveOptimization | None = None
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self.last_forward: ForwardResult | None = None  # the results the state shows (for tests and saving)
        self.last_back: BackResult | None = None
        self.snapshot_extras = None  # callable -> {name: image} added to saved panes (the Qt window's screenshot)
        self.forward = Worker("forward", self._run_forward, self._worker_failed)
        self.back = Worker("back", self._run_back, self._worker_failed)
        self.optimizer = Worker("optimize", self._run_optimize, self._worker_failed)
        self.grabber = FrameGrabber(self._make_frame, self._on_frame, self._report,
                                    ready_for_more=self.forward.mailbox.wait_empty)
        self.state.events.connect(self._on_state_event)

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self) -> "Viewer":
        for thread in (self.forward, self.back, self.optimizer, self.grabber):
            thread.start()
        self.set_source(self._initial_source)
        return self

    def stop(self) -> None:
        self._optimization = None
        for thread in (self.grabber, self.forward, self.back, self.optimizer):
            thread.stop()

    def set_source(self, source: FrameSource | None) -> None:
        self.state.source_label = source.label if source is not None else "no source"
        self.grabber.set_source(source)
        self.state.events.emit("status")

    # ---- input from the user (GUI thread) ----------------------------------------------------------
    def handle_key(self, key: str) -> bool:
        """Run the action bound to a key; False if the key is not bound."""
        action = KEYMAP.get(key)
        if action is None:
            return False
        own = getattr(self, f"_action_{action}", None)
        if own is not None:
            own()
        else:
            getattr(self.state, ACTION_ALIASES.get(action, action))()
        return True

    def click_grid(self, y: float, x: float) -> int | None:
        layout = self.state.panes.grid_layout if not self.state.diffs else (self.state.panes.diff_layout or self.state.panes.grid_layout)
        if layout is None or self.state.panes.grid_layer != self.state.layer.name:
            return None
        unit = layout.unit_at(y, x)
        if unit is not None:
            self.state.select_unit(unit)
        return unit

    def select_layer(self, index: int) -> None:
        self.state.select_layer(index)

    def _action_freeze_frame(self) -> None:
        self.state.freeze_frame()
        self.grabber.pause(self.state.frame_frozen)

    def _action_next_image(self) -> None:
        self._step_files(1)

    def _action_previous_image(self) -> None:
        self._step_files(-1)

    def _step_files(self, delta: int) -> None:
        source = self.grabber.source
        if source is None or source.live:
            self.state.message("e / w move between files: switch to files with c")
            return
        source.step(delta)
        self.state.source_label = source.label
        self.grabber.refresh()
        self.state.events.emit("status")

    def _action_toggle_source(self) -> None:
        if not self._on_camera:
            self._on_camera = True
            self.state.message(f"opening camera {self.camera_index}")
            self.set_source(CameraSource(self.camera_index, self._open_capture))
        elif self._files_source is not None:
            self._on_camera = False
            self.set_source(self._files_source)
        else:
            self.state.message("no files to switch to: start with --images, --image or --video")

    def _action_toggle_resize(self) -> None:
        self.state.toggle_resize()
        self._settings = self.state.settings()
        self.grabber.refresh()

    def _action_save_panes(self) -> None:
        try:
            paths = self.save_panes(extra=self.snapshot_extras() if self.snapshot_extras else None)
            self.state.message(f"saved {len(paths)} files to {paths[0].parent}" if paths else "nothing to save yet")
        except (OSError, ValueError) as exc:
            self.state.message(f"cannot save panes: {exc}")

    def _action_optimize_live(self) -> None:
        if self._optimization is not None:
            self._optimization = None
            self.state.message("live optimization stopped")
            return
        why = LiveOptimization.unavailable_reason()
        if why:
            self.state.message(f"live optimization unavailable: {why}")
            return
        layer, unit = self.state.layer.name, self.state.unit
        self._optimization = LiveOptimization(self.model, layer, unit)
        self.state.message(f"optimizing {layer}:{unit} live")
        self.optimizer.submit(self._optimization)

    # ---- state events -> jobs (GUI thread) ----------------------------------------------------------
    def _on_state_event(self, name: str) -> None:
        if name in ("selection", "modes"):
            self._settings = self.state.settings()
            self._submit_forward()
            self._refresh_stale()

    def _submit_forward(self) -> None:
        if self._frame is not None:
            self.forward.submit((self._frame, self._settings))

    def _refresh_stale(self) -> None:
        panes_ = self.state.panes
        if self._settings.back_mode == "off" or panes_.back is None:
            return
        stale = getattr(self, "_back_key_shown", None) != _back_key(self._settings, None)
        if stale != panes_.back_stale:
            self.state.update_panes("back", back_stale=stale)

    # ---- the grabber thread -------------------------------------------------------------------------
    def _make_frame(self, raw: np.ndarray) -> Frame:
        spec = self.model.spec
        if self._settings.resize != spec.resize:
            spec = with_overrides(spec, resize=self._settings.resize)
        x = spec.to_tensor(raw)
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        source = self.grabber.source
        return Frame(seq, x, spec.to_display(x[0]), source.label if source is not None else "")

    def _on_frame(self, frame: Frame) -> None:
        self._frame = frame
        self.forward.submit((frame, self._settings))

    def _report(self, text: str) -> None:
        with self._errors_lock:
            self._errors.append(text)
        self.slots.post("messages", True)

    def _worker_failed(self, worker: str, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, ProbeError) else f"{type(exc).__name__}: {exc}"
        self._report(f"{worker.removeprefix('onnxprobe-')}: {' '.join(text.split())[:200]}")

    # ---- the forward worker -------------------------------------------------------------------------
    def _run_forward(self, job) -> None:
        frame, settings = job
        layer = self.model.layer(settings.layer)
        key = (frame.seq, layer.name)
        if self._forward_cache is not None and self._forward_cache[0] == key:
            acts = self._forward_cache[1]
        else:
            names = [layer.name] + ([self.model.class_output] if self.model.class_output else [])
            acts = self.model.activations(frame.x, names, with_outputs=False)
            self._forward_cache = (key, acts)
        activation = acts[layer.name][0]
        tiles = units_first(activation, layer.channel_axis, layer.spatial_axes)
        unit = min(settings.unit, tiles.shape[0] - 1)
        values: dict = {"grid_layer": layer.name, "frame_seq": frame.seq}
        found = None
        if settings.pattern and self.atlas is not None:
            images, found = self.atlas.pattern_tiles(layer.name, tiles.shape[0], (PATTERN_TILE, PATTERN_TILE))
            values["grid"], values["grid_layout"] = layer_grid(None, images=images)
        else:
            values["grid"], values["grid_layout"] = layer_grid(
                tiles, settings.boost_indiv, settings.boost_gamma, min_tile=GRID_MIN_TILE if layer.is_spatial else 12)
        predictions = []
        if self.model.class_output:
            predictions = panes.top_predictions(acts[self.model.class_output][0], self.model.spec.labels)
        values["predictions"] = predictions
        values["predictions_image"] = panes.predictions_image(predictions)
        label = predictions[0][0] if settings.label_overlay and predictions else None
        values["input"] = panes.input_pane(frame.display, label)
        values["unit"] = panes.unit_pane(tiles[unit], frame.display, layer.is_spatial, float(tiles[unit].max()))
        if self.atlas is not None:
            values["visuals"] = panes.visuals_pane(self.atlas.unit_images(layer.name, unit))
        result = ForwardResult(frame, settings, activation, tiles, values)
        if found == 0:
            self._report(f"the atlas has no optimized images for layer '{layer.name}'")
        self.slots.post("forward", result)
        if settings.back_mode != "off":
            self.back.submit((frame, settings, acts if settings.origin[0] == layer.name else None))

    # ---- the back worker ----------------------------------------------------------------------------
    def _run_back(self, job) -> None:
        frame, settings, acts = job
        origin_name, unit = settings.origin
        origin = self.model.layer(origin_name)
        grid_layer = self.model.layer(settings.layer)
        want_diffs = settings.diffs and grid_layer.name != origin.name
        key = (frame.seq, origin.name, unit, settings.back_mode, grid_layer.name if want_diffs else None)
        if self._back_cache is not None and self._back_cache[0] == key:
            out = self._back_cache[1]
        else:
            if acts is None or origin.name not in acts:
                acts = self.model.activations(frame.x, [origin.name], with_outputs=False)
            activation = acts[origin.name]
            seed = np.zeros_like(activation)
            index = [slice(None)] * activation.ndim
            index[origin.channel_axis] = min(unit, activation.shape[origin.channel_axis] - 1)
            where = strongest(origin, activation, index[origin.channel_axis]) if origin.is_spatial else ()
            for axis, p in zip(origin.spatial_axes, where):  # where the unit fires most (onnxprobe.position)
                index[axis] = p
            seed[tuple(index)] = activation[tuple(index)]  # the toolbox's seed: the unit's own activation
            wrt = [self.model.input_name, grid_layer.name] if want_diffs else None
            session = self.model.gradient_session([origin.name], wrt=wrt, mode=settings.back_mode)
            out = session.run(frame.x, {origin.name: seed})
            out["seed"], out["where"] = seed, where
            self._back_cache = (key, out)
        grad = gradient_hwc(out["grad"][0], self.model.spec.layout)
        values = {"back": render_backmap(grad, settings.back_filter, rgb_order=self.model.spec.channel_order == "RGB"),
                  "back_stale": False}
        if settings.diffs:
            diff = out[f"grad:{grid_layer.name}"] if want_diffs else out["seed"]
            diff_tiles = units_first(diff[0], grid_layer.channel_axis, grid_layer.spatial_axes)
            values["diff_grid"], values["diff_layout"] = layer_grid(
                diff_tiles, settings.boost_indiv, settings.boost_gamma,
                min_tile=GRID_MIN_TILE if grid_layer.is_spatial else 12, neg_pos_colors=NEG_POS_COLORS)
        message = None
        if out["where"]:
            message = f"back map of {origin.name}:{unit} at {','.join(map(str, out['where']))}, where it fires most"
        if not np.any(out["grad"]):
            message = f"the back map is all zero: {origin.name}:{unit} is not active on this frame"
        self.slots.post("back", BackResult(frame, settings, grad, values, message))

    # ---- the optimize worker ------------------------------------------------------------------------
    def _run_optimize(self, optimization: LiveOptimization) -> None:
        optimization.start()
        while self._optimization is optimization and not optimization.done:
            optimization.step()
            self.slots.post("optimize", optimization)
        if optimization.done:
            self._report(f"optimization of {optimization.layer}:{optimization.unit} finished "
                         f"(activation {optimization.activation:.4g})")

    # ---- results -> state (GUI thread) --------------------------------------------------------------
    def poll(self) -> set[str]:
        """Move the newest worker results into the state (GUI thread). Returns the kinds applied."""
        slots = self.slots.drain()
        state = self.state
        forward = slots.get("forward")
        if forward is not None:
            if forward.frame.label:
                state.source_label = forward.frame.label
            self.last_forward = forward
            state.update_panes("forward", **forward.values)
            state.frame_shown()
        back = slots.get("back")
        if back is not None and self._settings.back_mode != "off":
            self._back_key_shown = _back_key(back.settings, None)
            self.last_back = back
            state.update_panes("back", **back.values)
            if back.message:
                state.message(back.message)
            self._refresh_stale()
        optimization = slots.get("optimize")
        if optimization is not None:
            image = optimization.image()
            if image is not None:
                state.update_panes("optimize", optimized=image)
        if "messages" in slots:
            with self._errors_lock:
                errors, self._errors = self._errors, []
            for text in errors:
                state.message(text)
        if forward is not None or back is not None:
            state.events.emit("status")
        return set(slots)

    # ---- saving -------------------------------------------------------------------------------------
    def current_panes(self) -> dict[str, np.ndarray]:
        """The panes as shown (grid with the selection outlined, back dimmed when stale)."""
        p = self.state.panes
        out = {}
        if p.input is not None:
            out["input"] = p.input
        grid, layout = (p.diff_grid, p.diff_layout) if self.state.diffs and p.diff_grid is not None else (p.grid, p.grid_layout)
        if grid is not None:
            out["grid"] = panes.mark_selection(grid, layout, self.state.unit)
        for name in ("unit", "predictions_image", "visuals", "optimized"):
            if getattr(p, name) is not None:
                out[name.removesuffix("_image")] = getattr(p, name)
        if p.back is not None and self.state.back_mode != "off":
            out["back"] = panes.stale(p.back) if p.back_stale else p.back
        return out

    def save_panes(self, directory: str | Path | None = None, extra: dict[str, np.ndarray] | None = None) -> list[Path]:
        """Write every pane as `view-NNNN-<layer>-<unit>-<pane>.png` plus a JSON of the settings."""
        directory = Path(directory or self.save_dir)
        images = {**self.current_panes(), **(extra or {})}
        if not images:
            return []
        directory.mkdir(parents=True, exist_ok=True)
        number = 1 + max((int(p.name[5:9]) for p in directory.glob("view-[0-9][0-9][0-9][0-9]-*")), default=0)
        stem = f"view-{number:04d}-{safe_name(self.state.layer.name)}-{self.state.unit}"
        paths = [write_png(inside(directory, f"{stem}-{name}.png"), image) for name, image in images.items()]
        info = {"model": str(self.model.path), "source": self.state.source_label, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "settings": self._settings.__dict__, "predictions": self.state.panes.predictions, "panes": [p.name for p in paths]}
        paths.append(atomic_write_json(inside(directory, f"{stem}.json"), json.loads(json.dumps(info, default=str))))
        return paths


def _back_key(settings: Settings, _frame) -> tuple:
    return (settings.origin, settings.back_mode, settings.back_filter, settings.diffs, settings.layer if settings.diffs else None)
