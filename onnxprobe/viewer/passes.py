"""The viewer's computations: a frame through the model into the forward panes (grid, unit, input,
predictions, unit visuals), and the backward pass into the back pane and the back-diffs grid.
Qt-free and thread-free: the controller's workers call `Passes.compute` (the network),
`Passes.draw` (the panes) and `Passes.back`.

With the back pane on, a new frame gets the back map too (one self-seeded gradient run, ~2.5
forwards on the CPU) when the back maps so far have taken less than BACK_SHARE of the forward
worker's time, and a plain forward otherwise: the grid keeps a frame rate near the forward's while
the back map still follows the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import thread_time

import numpy as np

from onnxprobe.model import top_predictions
from onnxprobe.objectives import own_activation, silence
from onnxprobe.position import strongest
from onnxprobe.preprocess import with_overrides
from onnxprobe.render.backmaps import gradient_hwc, render_backmap
from onnxprobe.render.compose import no_signal, predictions_image
from onnxprobe.render.grid import NEG_POS_COLORS, layer_grid, units_first
from onnxprobe.viewer import panes
from onnxprobe.viewer.state import Settings

GRID_MIN_TILE = 24  # tiles smaller than this are repeated (nearest) so units stay clickable
PATTERN_TILE = 48
BACK_SHARE = 0.15  # the most of the forward worker's time that back maps take on a moving video


@dataclass(frozen=True)
class Frame:
    seq: int
    x: np.ndarray  # (1, ...) input tensor
    display: np.ndarray  # the input as the model sees it, HxWx3 uint8 RGB
    label: str


@dataclass(frozen=True)
class Computed:
    """A frame through the network (`Passes.compute`), waiting to be drawn (`Passes.draw`)."""

    frame: Frame
    settings: Settings
    acts: dict  # the grid layer's (and class output's) activations
    back_job: tuple | None  # for the back worker, or None


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


def make_frame(model, raw: np.ndarray, resize: str, seq: int, label: str) -> Frame:
    """A raw frame (as OpenCV reads it) as the model's input tensor and as the model sees it."""
    spec = model.spec
    if resize != spec.resize:
        spec = with_overrides(spec, resize=resize)
    x = spec.to_tensor(raw)
    return Frame(seq, x, spec.to_display(x[0]), label)


def back_objective(model, origin, unit: int):
    """The back pane's objective: the toolbox's seed, the unit's own activation where it fires most
    (objectives.own_activation; a unit past the layer's last is the last). Its in-graph
    form (`self_seed`) gives the map in one run; its seeds from a forward run otherwise."""
    return own_activation(model, origin, min(unit, origin.units - 1))


def _back_out(run, origin, unit: int, grid: str | None) -> dict:
    """What the back pane draws from a gradient run of `back_objective`: the input gradient
    ("grad"), the grid layer's ("grad:<grid>", when the diffs show another layer's), the seed (the
    diffs of the origin layer) and where the unit fires most."""
    act = run.activations[origin.name]
    out = {"grad": run.input, origin.name: act, "seed": run.objective.seeds({origin.name: act}, len(act))[origin.name],
           "where": _peak(origin, act, unit)}
    if grid is not None:
        out[f"grad:{grid}"] = run.grads[grid]
    return out


def _peak(origin, activation: np.ndarray, unit: int) -> tuple[int, ...]:
    """Where the origin unit fires most (its spatial position; () for a non-spatial layer)."""
    return strongest(origin, activation, min(unit, activation.shape[origin.channel_axis] - 1)) if origin.is_spatial else ()


class Passes:
    """The forward and back computations, with what they keep between frames: the newest results
    (a still frame is not recomputed), the back settings last mapped, and the self-seeded graphs
    that failed (not retried). `compute` runs on the forward worker, `draw` on the draw worker,
    `back` on the back worker."""

    def __init__(self, model, atlas=None):
        self.model = model
        self.atlas = atlas
        self._forward_cache: tuple[tuple, dict] | None = None
        self._back_cache: tuple[tuple, dict] | None = None
        self._back_done: tuple | None = None  # the back settings of the newest back map
        self._work_since_back = 0.0  # CPU seconds of plain forwards since the newest back map
        self._back_extra = 0.0  # CPU seconds the newest back map's run took beyond a plain forward
        self._plain_seconds = 0.0  # a plain forward's CPU seconds (moving average)
        self._back_timed: set[tuple] = set()  # back settings whose run has been built (so it can be timed)
        self._back_seq = -1  # the frame of the newest back job
        self._no_one_run: set[tuple] = set()  # back settings whose one-run graph failed (not retried)

    def compute(self, frame: Frame, settings: Settings) -> "Computed":
        """The network's part of a frame: the grid layer's (and class output's) activations, with
        the back map from the same run when one is due (`back_due`)."""
        layer = self.model.layer(settings.layer)
        back_now = settings.back_mode != "off"
        if back_now:
            wanted = self._back_job_key(frame, settings)[1:]
            back_now = self.back_due(wanted != self._back_done or frame.seq == self._back_seq)
        key = (frame.seq, layer.name, self._back_job_key(frame, settings) if back_now else None)
        back_out = None
        if self._forward_cache is not None and self._forward_cache[0] == key:
            acts = self._forward_cache[1]
        else:
            names = [layer.name] + ([self.model.class_output] if self.model.class_output else [])
            start = thread_time()
            if back_now:
                acts, back_out = self.forward_with_back(frame, settings, names)
                self._back_done, self._work_since_back = wanted, 0.0
                if wanted in self._back_timed:
                    self._back_extra = max(0.0, thread_time() - start - self._plain_seconds)
                else:  # its first run builds the graph: not what a map costs; the next frame maps again, timed
                    self._back_timed.add(wanted)
                    self._back_extra = 0.0
            else:
                acts = self.model.activations(frame.x, names, with_outputs=False)
                took = thread_time() - start
                self._work_since_back += took
                self._plain_seconds = took if not self._plain_seconds else 0.8 * self._plain_seconds + 0.2 * took
            self._forward_cache = (key, acts)
        back_job = None
        if back_now:
            self._back_seq = frame.seq
            back_job = (frame, settings, acts if settings.origin[0] == layer.name else None, back_out)
        return Computed(frame, settings, acts, back_job)

    def back_due(self, must: bool) -> bool:
        """Whether this frame's run also computes the back map: when it `must` (new back settings,
        or the same frame again: a still), else once the plain forwards since the last back map
        have taken (1 - BACK_SHARE) / BACK_SHARE times what that map cost beyond a plain forward,
        so back maps take at most BACK_SHARE of the forward worker's time and the grid keeps the
        forward's frame rate, however the gradient's cost compares with the forward's. Runs are
        timed in CPU time of the worker thread, which other work on the machine does not inflate
        (the network runs on that thread; where it has more threads, both kinds of run spread alike)."""
        if must:
            return True
        return self._work_since_back * BACK_SHARE >= self._back_extra * (1 - BACK_SHARE)

    def draw(self, computed: "Computed") -> tuple[ForwardResult, str | None]:
        """The forward panes of a computed frame (grid, unit, input, predictions, unit visuals) and
        a note for the status line or None. Reads the model's description only: any thread."""
        frame, settings, acts = computed.frame, computed.settings, computed.acts
        layer = self.model.layer(settings.layer)
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
            predictions = top_predictions(acts[self.model.class_output][0], self.model.spec.labels)
        values["predictions"] = predictions
        values["predictions_image"] = predictions_image(predictions)
        label = predictions[0].label if settings.label_overlay and predictions else None
        values["input"] = panes.input_pane(frame.display, label)
        values["unit"] = panes.unit_pane(tiles[unit], frame.display, layer.is_spatial, float(tiles[unit].max()))
        if self.atlas is not None:
            values["visuals"] = panes.visuals_pane(self.atlas.unit_images(layer.name, unit))
        result = ForwardResult(frame, settings, activation, tiles, values)
        note = f"the atlas has no optimized images for layer '{layer.name}'" if found == 0 else None
        return result, note

    def _back_job_key(self, frame, settings) -> tuple:
        origin = self.model.layer(settings.origin[0])
        grid_layer = self.model.layer(settings.layer)
        want_diffs = settings.diffs and grid_layer.name != origin.name
        return (frame.seq, origin.name, settings.origin[1], settings.back_mode, grid_layer.name if want_diffs else None)

    def forward_with_back(self, frame, settings, names) -> tuple[dict, tuple | None]:
        """The grid's activations and the back map's gradient from ONE run of the gradient graph
        (its seed, the unit's own activation, is formed inside the graph: self-seeded). Falls back
        to a plain forward (the back worker then runs the gradient) where that cannot be built."""
        origin = self.model.layer(settings.origin[0])
        grid_layer = self.model.layer(settings.layer)
        want_diffs = settings.diffs and grid_layer.name != origin.name
        if any(d is None for d in origin.shape[1:]):
            return self.model.activations(frame.x, names, with_outputs=False), None
        wrt = [self.model.input_name, grid_layer.name] if want_diffs else None
        spec = (origin.name, tuple(wrt or ()), settings.back_mode, tuple(names))
        if spec in self._no_one_run:
            return self.model.activations(frame.x, names, with_outputs=False), None
        try:  # the objective's in-graph seed: one run, no forward first
            run = self.model.gradient(frame.x, back_objective(self.model, origin, settings.origin[1]),
                                      settings.back_mode, wrt=wrt, extra_outputs=names)
        except Exception:  # noqa: BLE001 -- the back worker meets it again and reports it; the grid goes on
            self._no_one_run.add(spec)
            return self.model.activations(frame.x, names, with_outputs=False), None
        out = _back_out(run, origin, settings.origin[1], grid_layer.name if want_diffs else None)
        return {n: run.activations[n] for n in names}, (self._back_job_key(frame, settings), out)

    def back(self, job) -> BackResult:
        frame, settings, acts, done = job
        origin_name, unit = settings.origin
        origin = self.model.layer(origin_name)
        grid_layer = self.model.layer(settings.layer)
        want_diffs = settings.diffs and grid_layer.name != origin.name
        key = self._back_job_key(frame, settings)
        if done is not None and done[0] == key:  # computed with the grid's activations, in one run
            out = done[1]
            self._back_cache = (key, out)
        elif self._back_cache is not None and self._back_cache[0] == key:
            out = self._back_cache[1]
        else:
            if acts is None or origin.name not in acts:
                acts = self.model.activations(frame.x, [origin.name], with_outputs=False)
            wrt = [self.model.input_name, grid_layer.name] if want_diffs else None
            run = self.model.gradient(frame.x, back_objective(self.model, origin, unit), settings.back_mode, wrt=wrt,
                                      activations={origin.name: acts[origin.name]})
            out = _back_out(run, origin, unit, grid_layer.name if want_diffs else None)
            self._back_cache = (key, out)
        grad = gradient_hwc(out["grad"][0], self.model.spec.layout)
        values = {"back": render_backmap(grad, settings.back_filter, rgb_order=self.model.spec.channel_order == "RGB")}
        if settings.diffs:
            diff = out[f"grad:{grid_layer.name}"] if want_diffs else out["seed"]
            diff_tiles = units_first(diff[0], grid_layer.channel_axis, grid_layer.spatial_axes)
            values["diff_grid"], values["diff_layout"] = layer_grid(
                diff_tiles, settings.boost_indiv, settings.boost_gamma,
                min_tile=GRID_MIN_TILE if grid_layer.is_spatial else 12, neg_pos_colors=NEG_POS_COLORS)
        message = None
        if out["where"]:
            message = f"back map of {origin.name}:{unit} at {','.join(map(str, out['where']))}, where it fires most"
        silent = silence(self.model, back_objective(self.model, origin, unit), out["grad"], "the back map",
                         {origin.name: out[origin.name]})
        if silent is not None:  # drawn as every command draws no signal
            values["back"] = no_signal(*values["back"].shape[:2])
            message = silent
        return BackResult(frame, settings, grad, values, message)
