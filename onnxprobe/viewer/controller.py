"""`Viewer`: wires the model (`ViewerState`), the frame sources and the worker threads. Qt-free.

Threads: the grabber reads frames; the forward worker runs the network on them (`Passes.compute`);
the draw worker draws the grid, unit, input and prediction panes from its results (`Passes.draw`),
so the next frame's forward runs while this one is drawn; the back worker runs `Passes.back` (the
back pane); the optimize worker steps a live optimization or a picture from the frame shown (`r`). Each takes only the newest job
(one-slot mailboxes). Results go into `LatestSlots`; the GUI thread calls `poll()` (when `notify`
fires) to move them into the model, which emits events to the widgets. The GUI thread never waits
on the network.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from onnxprobe.errors import ProbeError
from onnxprobe.viewer.keys import KEYMAP
from onnxprobe.viewer.mailbox import LatestSlots
from onnxprobe.viewer.optimize_live import LiveOptimization, LivePicture
from onnxprobe.viewer.passes import BackResult, ForwardResult, Frame, Passes, make_frame
from onnxprobe.viewer.snapshot import save_snapshot
from onnxprobe.viewer.sources import CameraSource, FrameSource
from onnxprobe.viewer.state import LayerEntry, ViewerState
from onnxprobe.viewer.workers import FrameGrabber, Worker


class Viewer:
    def __init__(self, model, source: FrameSource | None = None, atlas=None, camera_index: int = 0,
                 open_capture=None, save_dir: str | Path = ".", notify=None, words: dict[str, str] | None = None):
        self.model = model
        self.atlas = atlas
        self.save_dir = Path(save_dir)
        self.camera_index = camera_index
        self._open_capture = open_capture
        entries = [LayerEntry(l.name, l.units, l.is_spatial, l.channel_axis, l.spatial_axes, l.label) for l in model.layers]
        spatial = [i for i, e in enumerate(entries) if e.spatial]
        self.state = ViewerState(entries, default_layer=spatial[0] if spatial else 0, has_atlas=atlas is not None,
                                 model_name=model.path.name, words=words)
        self.passes = Passes(model, atlas)
        self.slots = LatestSlots(notify)
        self._settings = self.state.settings()
        self._frame: Frame | None = None
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._files_source = source if source is not None and not isinstance(source, CameraSource) else None
        self._initial_source = source
        self._on_camera = isinstance(source, CameraSource)
        self._optimization: LiveOptimization | LivePicture | None = None  # what the optimize worker steps
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self.last_forward: ForwardResult | None = None  # the results the model shows (for tests)
        self.last_back: BackResult | None = None
        self._early_back: BackResult | None = None  # a back map whose frame's grid is not shown yet
        self.snapshot_extras = None  # callable -> {name: image} added to saved panes (the Qt window's screenshot)
        self.forward = Worker("forward", self._run_forward, self._worker_failed)
        self.draw = Worker("draw", self._run_draw, self._worker_failed)
        self.back = Worker("back", self._run_back, self._worker_failed)
        self.optimizer = Worker("optimize", self._run_optimize, self._worker_failed)
        self.grabber = FrameGrabber(self._make_frame, self._on_frame, self._report,
                                    ready_for_more=self.forward.mailbox.wait_empty)
        self.state.events.connect(self._on_state_event)

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self) -> "Viewer":
        for thread in (self.forward, self.draw, self.back, self.optimizer, self.grabber):
            thread.start()
        self.set_source(self._initial_source)
        return self

    def stop(self) -> None:
        self._optimization = None
        for thread in (self.grabber, self.forward, self.draw, self.back, self.optimizer):
            thread.stop()

    def set_source(self, source: FrameSource | None) -> None:
        self.state.source_label = source.label if source is not None else "no source"
        self.grabber.set_source(source)
        self.state.events.emit("status")

    # ---- input from the user beyond the model (GUI thread) -------------------------------------------
    def select_layer(self, index: int) -> None:
        self.state.select_layer(index)

    def current_panes(self) -> dict:
        """The panes as `p` saves them (the model decides: ViewerState.saved_panes)."""
        return self.state.saved_panes()

    def handle_key(self, key: str) -> bool:
        """Run the action bound to a key (onnxprobe.viewer.keys); False if the key is not bound."""
        binding = KEYMAP.get(key)
        if binding is None:
            return False
        binding.action(self)
        return True

    def step_files(self, delta: int) -> None:
        source = self.grabber.source
        if source is None or source.live:
            self.state.message("e / w move between files: switch to files with c")
            return
        source.step(delta)
        self.state.source_label = source.label
        self.grabber.refresh()
        self.state.events.emit("status")

    def toggle_source(self) -> None:
        if not self._on_camera:
            self._on_camera = True
            self.state.message(f"opening camera {self.camera_index}")
            self.set_source(CameraSource(self.camera_index, self._open_capture))
        elif self._files_source is not None:
            self._on_camera = False
            self.set_source(self._files_source)
        else:
            self.state.message(f"no files to switch to: start with {self.state.words['files']}")

    def save_and_report(self) -> None:
        try:
            paths = self.save_panes(extra=self.snapshot_extras() if self.snapshot_extras else None)
            self.state.message(f"saved {len(paths)} files to {paths[0].parent}" if paths else "nothing to save yet")
        except (OSError, ValueError) as exc:
            self.state.message(f"cannot save panes: {exc}")

    def save_panes(self, directory: str | Path | None = None, extra: dict | None = None) -> list[Path]:
        """Write the panes as the model saves them (and `extra` images) plus a JSON of the settings."""
        info = {"model": str(self.model.path), "source": self.state.source_label, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "settings": self._settings.__dict__, "predictions": self.state.panes.predictions}
        return save_snapshot(directory or self.save_dir, {**self.state.saved_panes(), **(extra or {})},
                             self.state.layer.name, self.state.unit, info)

    def toggle_live_optimization(self) -> None:
        if self._optimization is not None:
            self._optimization = None
            self.state.picture_off()
            self.state.message("live optimization stopped")
            return
        layer, unit = self.state.layer.name, self.state.unit
        self._optimization = LiveOptimization(self.model, layer, unit)
        self.state.message(f"optimizing {layer}:{unit} live")
        self.optimizer.submit(self._optimization)

    def _picture_changed(self) -> None:
        """The model's picture from the current frame changed (`r`): start it on the frame shown,
        on the optimize worker (frames keep running), or stop the one running."""
        kind = self.state.picture
        running = isinstance(self._optimization, LivePicture)
        if kind == "off":
            if running:
                self._optimization = None
                self.state.message("picture from the frame stopped")
            return
        shown = self.last_forward
        if shown is None:
            self.state.message("no frame yet: a picture starts from the frame shown")
            self.state.picture_off()
            return
        layer = self.state.layer
        self._optimization = LivePicture(self.model, shown.frame.x, kind, layer.name, self.state.unit, label=layer.label)
        self.state.message(f"{kind} from the current frame ({layer.label}{':' + str(self.state.unit) if kind == 'accentuate' else ''})")
        self.optimizer.submit(self._optimization)

    # ---- model events -> jobs (GUI thread) ----------------------------------------------------------
    def _on_state_event(self, name: str) -> None:
        if name == "picture":
            self._picture_changed()
        if name in ("selection", "modes"):
            previous, self._settings = self._settings, self.state.settings()
            self.grabber.pause(self.state.frame_frozen)
            if self._frame is not None:
                self.forward.submit((self._frame, self._settings))
            if self._settings.resize != previous.resize:
                self.grabber.refresh()  # the same raw image again, resized the new way

    # ---- the grabber thread -------------------------------------------------------------------------
    def _make_frame(self, raw) -> Frame:
        with self._seq_lock:
            self._seq += 1
            seq = self._seq
        source = self.grabber.source
        return make_frame(self.model, raw, self._settings.resize, seq, source.label if source is not None else "")

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

    # ---- the workers ----------------------------------------------------------------------------------
    def _run_forward(self, job) -> None:
        computed = self.passes.compute(*job)
        if computed.back_job is not None:
            self.back.submit(computed.back_job)
        self.draw.submit(computed)

    def _run_draw(self, computed) -> None:
        result, note = self.passes.draw(computed)
        if note:
            self._report(note)
        self.slots.post("forward", result)

    def _run_back(self, job) -> None:
        self.slots.post("back", self.passes.back(job))

    def _run_optimize(self, optimization: LiveOptimization | LivePicture) -> None:
        optimization.start()
        while self._optimization is optimization and not optimization.done:
            optimization.step()
            self.slots.post("optimize", optimization)
        if optimization.done:
            self._report(optimization.finished())

    # ---- results -> model (GUI thread) ----------------------------------------------------------------
    def _grid_caught_up(self, back: BackResult) -> bool:
        """The grid is drawn on its own thread, so a back map can arrive before the grid of its
        frame: it waits (`_early_back`) until the grid shows that frame with the same settings, or
        a later frame. A newer back map replaces a waiting one."""
        shown = self.last_forward
        if shown is None:
            return False
        return shown.frame.seq > back.frame.seq or (shown.frame is back.frame and shown.settings is back.settings)

    def poll(self) -> set[str]:
        """Move the newest worker results into the model (GUI thread). Returns the kinds applied."""
        slots = self.slots.drain()
        state = self.state
        forward = slots.get("forward")
        if forward is not None:
            if forward.frame.label:
                state.source_label = forward.frame.label
            self.last_forward = forward
            state.update_panes("forward", **forward.values)
            state.frame_shown()
        back = slots.get("back", self._early_back)
        self._early_back = None
        if back is not None and not self._grid_caught_up(back):
            self._early_back, back = back, None
        if back is not None and state.show_back(back.settings, back.values):
            self.last_back = back
            if back.message:
                state.message(back.message)
        optimization = slots.get("optimize")
        if optimization is not None:
            image = optimization.image()
            if image is not None and optimization is self._optimization:  # not one stopped meanwhile
                state.update_panes("optimize", optimized=image, picture=optimization.progress)
        if "messages" in slots:
            with self._errors_lock:
                errors, self._errors = self._errors, []
            for text in errors:
                state.message(text)
        if forward is not None or back is not None:
            state.events.emit("status")
        return set(slots)
