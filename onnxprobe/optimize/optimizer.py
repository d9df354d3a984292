"""`Optimizer`: feature visualization one step at a time (what a live viewer needs).

Three engines run the same loop: "graph" (the seed's whole step inside ONNX Runtime, state kept
on the device on CUDA), "numpy" (the seed's step with the priors in numpy, the reference and the
path for non-linear objectives) and "lucid" (the modern parameterization, see lucid.py).
"""

from __future__ import annotations

import numpy as np

from onnxprobe.errors import ParameterError, UsageError
from onnxprobe.optimize import lucid as lucid_mod, maco as maco_mod
from onnxprobe.objectives import Objective, differentiable_layer
from onnxprobe.optimize.presets import DEFAULT_PRESET, Preset, get_preset, lr_scale
from onnxprobe.optimize.priors import BLUR_TRUNCATE, PixelSpace, seed_update
from onnxprobe.runtime.session import to_numpy
from onnxprobe.optimize.stepgraph import OUTPUTS, blur_feeds, build_step_model, io, percentile_feeds

ENGINES = ("auto", "graph", "numpy")


def _rngs(seed, batch: int) -> list[np.random.Generator]:
    if isinstance(seed, (int, np.integer)):
        return [np.random.default_rng(np.random.SeedSequence([int(seed), i])) for i in range(batch)]
    return [s if isinstance(s, np.random.Generator) else np.random.default_rng(s) for s in seed]


class Optimizer:
    """Maximise `objective` for a batch of images.

    `seed` is an int (row i uses SeedSequence([seed, i])) or one seed / SeedSequence / Generator
    per batch row, in which case `batch` is their count. `param` defaults to the preset's own.
    After `start()`, `step(n)` advances; `image(i)` is the current image of row i (display RGB
    uint8), `activation` the objective per row at the latest step (of the image that step
    started from; lucid's of its randomly transformed view: progress only), `best_image(i)` /
    `best_activation` the best so far, `history` one array per step; `initial_activation` and
    `final_activation` measure the start and final images as `best_activation` does. Images of the paper's presets are shown contrast-stretched around the mean pixel (as the
    toolbox showed them); `raw_image(i)` / `current_input()` are the optimized input itself.
    `preset` is a Preset, resolved once by its caller (`presets.get_preset(name, steps, param)`,
    as the command line does; None: the default preset as it is).
    """

    def __init__(self, model, objective: Objective, preset: Preset | None = None, seed=0, batch: int = 1,
                 engine: str = "auto", start: np.ndarray | None = None):
        self.model = model
        self.objective = objective
        self.preset = get_preset(DEFAULT_PRESET) if preset is None else preset
        if not isinstance(self.preset, Preset):
            raise TypeError(f"Optimizer takes a Preset (presets.get_preset resolves a name once), got {preset!r}")
        # start: display images (N or 1, C, H, W) in 0..1 to start from (pictures from a photo)
        self.start_images = None if start is None else np.asarray(start, np.float32)
        self.param = self.preset.param
        if engine not in ENGINES:
            raise UsageError(f"unknown engine '{engine}' (known: {', '.join(ENGINES)})")
        self.rngs = _rngs(seed, batch)
        self.batch = len(self.rngs)
        if self.batch < 1:
            raise UsageError("the batch needs at least one image")
        fits = model.rows_per_run("step")  # one step graph runs every row: they must fit in the budget together
        if self.batch > fits:
            raise ParameterError(f"a {{batch}} of {self.batch} rows is more than the {{memory_budget}} of "
                                 f"{model.memory_budget.describe()} holds in one optimisation step ({fits} rows)",
                                 "batch", "memory_budget")
        for target in objective.targets:
            differentiable_layer(model, target)
        self.space = PixelSpace.from_spec(model.spec)
        if self.preset.method in ("lucid", "maco"):
            self.engine_name = self.preset.method
        elif engine == "auto":
            self.engine_name = "graph" if objective.linear and _graph_blur_fits(self.preset, model.spec.input_size) else "numpy"
        else:
            self.engine_name = engine
        if (self.start_images is not None or objective.anchor is not None) and self.engine_name != "lucid":
            raise UsageError(f"pictures from a photo take the lucid parameterization (preset lucid or lucid-fast), "
                             f"not preset '{self.preset.name}'")
        if self.engine_name == "graph" and not objective.linear:
            raise UsageError(f"objective '{objective.description}' is not linear: it needs engine 'numpy'")
        self._engine = None
        self.history: list[np.ndarray] = []
        self.steps_done = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return self.preset.steps

    @property
    def done(self) -> bool:
        return self.steps_done >= self.steps

    def start(self) -> "Optimizer":
        cls = {"graph": _GraphEngine, "numpy": _NumpyEngine, "lucid": _LucidEngine, "maco": _MacoEngine}[self.engine_name]
        self._engine = cls(self)
        self.history = []
        self.steps_done = 0
        return self

    def step(self, n: int = 1) -> "Optimizer":
        if self._engine is None:
            self.start()
        for _ in range(n):
            if self.done:
                break
            value = self._engine.step(self.steps_done, last=self.steps_done == self.steps - 1)
            self.history.append(np.asarray(value, np.float64))
            self.steps_done += 1
        return self

    def run(self, on_step=None) -> "Optimizer":
        if self._engine is None:
            self.start()
        while not self.done:
            self.step()
            if on_step is not None:
                on_step(self)
        return self

    # ---- results -----------------------------------------------------------------------------
    def _require_started(self):
        if self._engine is None:
            raise RuntimeError("call start() first")
        return self._engine

    def image(self, i: int = 0) -> np.ndarray:
        return self._require_started().display(i, best=False)

    def best_image(self, i: int = 0) -> np.ndarray:
        return self._require_started().display(i, best=True)

    def images(self, best: bool = True) -> list[np.ndarray]:
        return [self._require_started().display(i, best=best) for i in range(self.batch)]

    @property
    def stretched(self) -> bool:
        """Whether `image()` is contrast-stretched (the paper's presets) rather than the input as is."""
        return self.preset.method == "seed"

    def raw_image(self, i: int = 0, best: bool = True) -> np.ndarray:
        """Row i's image exactly as optimized (preprocessing undone, no stretch), HxWx3 uint8 RGB."""
        return self._require_started().display(i, best=best, raw=True)

    @property
    def activation(self) -> np.ndarray | None:
        return self.history[-1] if self.history else None

    @property
    def initial_activation(self) -> np.ndarray | None:
        """The objective of the starting images, measured as `best_activation` is (on the image
        itself at the model's resolution, never through lucid's random transforms)."""
        return self._require_started().initial_value() if self.history else None

    @property
    def final_activation(self) -> np.ndarray | None:
        """The objective of the final images (`image()`) once the run is done, measured as
        `best_activation` is; None before."""
        return self._require_started().final_value() if self.done and self.history else None

    @property
    def best_activation(self) -> np.ndarray | None:
        return self._require_started().best_value() if self.history else None

    def display_images(self, best: bool = False) -> np.ndarray:
        """The current (or best) images in display space, (N, C, H, W) float32 in 0..1 (the lucid
        and maco engines, whose parameterizations produce display images)."""
        engine = self._require_started()
        if not isinstance(engine, _DisplayEngine):
            raise UsageError(f"engine '{self.engine_name}' keeps pixel units; use image() or current_input()")
        return (engine.best_images if best else engine.current).copy()

    def current_input(self, best: bool = False) -> np.ndarray:
        """The model input tensors (N, ...) of the current (or best) images."""
        return self._require_started().model_input(best)

    def hyperparameters(self) -> dict:
        data = self.preset.to_json()
        data.update(param=self.param, engine=self.engine_name, batch=self.batch)
        return data


def _graph_blur_fits(preset: Preset, size: tuple[int, int]) -> bool:
    radius = int(BLUR_TRUNCATE * preset.blur_radius + 0.5)
    return preset.blur_radius <= 0 or preset.blur_every <= 0 or radius < min(size)


def _gradient_pass(opt: Optimizer, session, x: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One run of the gradient graph on the batch `x`: its outputs and the objective of each row
    (`objective.value` on the targets' activations the run also gives)."""
    objective = opt.objective
    acts = None if objective.linear else opt.model.activations(x, list(objective.targets), with_outputs=False)
    out = session.run(x, objective.seeds(acts, opt.batch))
    return out, objective.value({t: out[t] for t in objective.targets})


class _SeedState:
    """The paper's start: the model's mean pixel (input zero) plus N(0, sd) pixel noise per row,
    and the per-row scale of the constant rates (presets.lr_scale) from the gradient there."""

    def __init__(self, opt: Optimizer):
        self.opt = opt
        self.space = opt.space
        c = opt.model.spec.channels
        h, w = opt.model.spec.input_size
        self.q0 = np.stack([rng.normal(0.0, opt.preset.init_sd, (c, h, w)) for rng in opt.rngs]).astype(np.float32)
        self.lr_scale = self._calibrate()

    def _calibrate(self) -> np.ndarray:
        opt = self.opt
        session = opt.model.gradient_session(list(opt.objective.targets))
        out, _ = _gradient_pass(opt, session, self.space.to_input(self.space.clip(self.q0)))
        grad = self.space.gradient_to_q(out["grad"]).reshape(opt.batch, -1).astype(np.float64)
        return lr_scale(np.sqrt((grad ** 2).mean(axis=1)))

    def initial_value(self) -> np.ndarray:
        return self.opt.history[0]  # step 0 measures the starting images themselves

    def final_value(self) -> np.ndarray:
        return self.opt.history[-1]  # the last step measures the final images (it does not move them)

    def display_q(self, q_row, raw=False):
        q_row = self.space.clip(q_row[None])[0]
        return self.space.to_display(q_row) if raw else self.space.to_display_stretched(q_row)


class _NumpyEngine(_SeedState):
    def __init__(self, opt: Optimizer):
        super().__init__(opt)
        self.session = opt.model.gradient_session(list(opt.objective.targets))
        self.q = self.q0.copy()
        self.best_q = self.space.clip(self.q0)
        self.best = np.full(opt.batch, -np.inf)

    def step(self, index: int, last: bool) -> np.ndarray:
        opt = self.opt
        q = self.space.clip(self.q)
        x = self.space.to_input(q)
        out, value = _gradient_pass(opt, self.session, x)
        better = value > self.best
        self.best = np.where(better, value, self.best)
        self.best_q[better] = q[better]
        grad = self.space.gradient_to_q(out["grad"])
        self.q = q if last else seed_update(q, grad, opt.preset, index, self.lr_scale)
        return value

    def display(self, i, best, raw=False):
        return self.display_q(self.best_q[i] if best else self.q[i], raw)

    def best_value(self):
        return self.best.copy()

    def model_input(self, best):
        return self.space.to_input(self.best_q if best else self.space.clip(self.q))


class _GraphEngine(_SeedState):
    def __init__(self, opt: Optimizer):
        super().__init__(opt)
        model, preset = opt.model, opt.preset
        from onnxprobe.autodiff import build_gradient_model, grad_name, seed_name

        targets = tuple(opt.objective.targets)
        seeds = {t: seed_name(t) for t in targets}
        space = self.space

        def build():
            gradient = build_gradient_model(model.proto, list(targets), wrt=[model.input_name], facts=model.facts)
            return build_step_model(gradient, model.input_name, grad_name(model.input_name), opt.objective, seeds,
                                    space.slope, space.low, space.high, space.nhwc)

        self.session = model.session(("optimize-step", targets), build)
        self.on_device = self.session.device == "cuda"
        h, w = model.spec.input_size
        c = model.spec.channels
        constant = {
            "lr": (self.lr_scale * np.float32(preset.lr)).astype(np.float32),
            "max_lr": (self.lr_scale * np.float32(preset.max_lr)).astype(np.float32),
            "desired_progress": np.array([preset.desired_progress], np.float32),
            "progress": np.array(preset.lr_policy == "progress"), "keep": np.array([1.0 - preset.decay], np.float32),
            **blur_feeds(preset.blur_radius, c), **percentile_feeds("norm_", h * w, preset.norm_pct),
            **percentile_feeds("contrib_", h * w, preset.contrib_pct),
        }
        constant = {io(k): v for k, v in constant.items()}
        constant.update({seeds[t]: s for t, s in opt.objective.seeds(None, opt.batch).items()})
        self.blurs = preset.blur_every > 0 and preset.blur_radius > 0
        flags = {(name, v): np.array(v) for name in ("update", "blur_now") for v in (False, True)}
        self.constant = {k: self._device(v) for k, v in constant.items()}
        self.flags = {k: self._device(v) for k, v in flags.items()}
        # the step graph's output names (its own, onnxprobe.step.*), resolved once for every step
        self.outputs = [io(o) for o in OUTPUTS]
        self.kept = [io(o) for o in ("q_next", "best_q_next", "best_value_next")]  # stay on the device
        self.state = {"q": self._device(self.q0), "best_q": self._device(space.clip(self.q0)),
                      "best_value": self._device(np.full(opt.batch, -np.inf, np.float32))}

    def _device(self, array):
        if not self.on_device:
            return array
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)

    def step(self, index: int, last: bool) -> np.ndarray:
        feeds = dict(self.constant)
        feeds.update({io(k): v for k, v in self.state.items()})
        feeds[io("update")] = self.flags[("update", not last)]
        feeds[io("blur_now")] = self.flags[("blur_now", bool(self.blurs and index % self.opt.preset.blur_every == 0))]
        ran = self.session.run(feeds, outputs=self.outputs, keep_on_device=self.kept)
        out = dict(zip(OUTPUTS, (ran[name] for name in self.outputs)))
        self.state = {"q": out["q_next"], "best_q": out["best_q_next"], "best_value": out["best_value_next"]}
        value = np.asarray(out["value"], np.float64)
        return value

    def display(self, i, best, raw=False):
        return self.display_q(to_numpy(self.state["best_q" if best else "q"])[i], raw)

    def best_value(self):
        return to_numpy(self.state["best_value"]).astype(np.float64)

    def model_input(self, best):
        q = to_numpy(self.state["best_q" if best else "q"])
        return self.space.to_input(q if best else self.space.clip(q))


class _DisplayEngine:
    """What the lucid and maco engines share: images in display space 0..1 (N, C, H, W) <-> the
    model's input and its gradient, the results as display images."""

    def __init__(self, opt: Optimizer):
        self.opt = opt
        spec = opt.model.spec
        self.spec = spec
        self.size = spec.input_size
        self.session = opt.model.gradient_session(list(opt.objective.targets))
        lo, hi = spec.value_range
        std = np.broadcast_to(np.asarray(spec.std, np.float32), (spec.channels,))
        mean = np.broadcast_to(np.asarray(spec.mean, np.float32), (spec.channels,))
        self.slope = ((hi - lo) / 255.0 / std).reshape(1, -1, 1, 1).astype(np.float32)
        self.offset = ((lo - mean) / std).reshape(1, -1, 1, 1).astype(np.float32)
        self.flip = spec.channels == 3 and spec.channel_order == "BGR"

    def _to_model(self, display01: np.ndarray) -> np.ndarray:
        pixels = display01 * 255.0
        if self.flip:
            pixels = pixels[:, ::-1]
        if self.spec.invert:
            pixels = 255.0 - pixels
        x = pixels * self.slope + self.offset
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self.spec.layout == "NHWC" else x, np.float32)

    def _from_model_grad(self, grad_x: np.ndarray) -> np.ndarray:
        g = grad_x.transpose(0, 3, 1, 2) if self.spec.layout == "NHWC" else grad_x
        g = g * self.slope
        if self.spec.invert:
            g = -g
        if self.flip:
            g = g[:, ::-1]
        return np.ascontiguousarray(g * 255.0, np.float32)

    def display(self, i, best, raw=False):
        image = (self.best_images if best else self.current)[i]
        rgb = np.clip(np.rint(image.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb

    def best_value(self):
        return self.best.copy()

    def initial_value(self) -> np.ndarray:
        return self.initial.copy()

    def final_value(self) -> np.ndarray:
        return self.best.copy()  # the result is the final image, measured as it is after the last step

    def model_input(self, best):
        return self._to_model(self.best_images if best else self.current)


class _LucidEngine(_DisplayEngine):
    def __init__(self, opt: Optimizer):
        super().__init__(opt)
        self.image_fn = lucid_mod.LucidImage(self.spec.channels, self.size, opt.param, opt.preset.decorrelate)
        self.params = np.stack([self.image_fn.init(rng, opt.preset.init_sd) for rng in opt.rngs])
        if opt.start_images is not None:
            self.params = np.ascontiguousarray(np.broadcast_to(self.image_fn.from_display(opt.start_images),
                                                               self.params.shape), np.float32)
        self.anchor = opt.objective.anchor
        self.adam = lucid_mod.Adam(self.params.shape, opt.preset.lr)
        self.current = self.image_fn.forward(self.params)
        self.best_images = self.current.copy()
        self.best = np.full(opt.batch, -np.inf)
        # the steps measure transformed images (progress only); the start is measured as the result is
        self.initial = self._anchored(_gradient_pass(opt, self.session, self._to_model(self.current))[1], self.current)

    def _anchored(self, value: np.ndarray, images: np.ndarray) -> np.ndarray:
        """The objective's value with accentuation's closeness term (on the untransformed images)."""
        return value if self.anchor is None else value + self.anchor.value(images)

    def step(self, index: int, last: bool) -> np.ndarray:
        opt = self.opt
        image = self.image_fn.forward(self.params)
        self.current = image
        matrices = np.stack([lucid_mod.random_transform(opt.preset, self.size, rng) for rng in opt.rngs])[:, :2, :]
        sampler = lucid_mod.AffineSampler(matrices, self.size, self.size, fill=0.5)
        x = self._to_model(sampler.forward(image))
        out, value = _gradient_pass(opt, self.session, x)
        better = value > self.best
        self.best = np.where(better, value, self.best)
        self.best_images[better] = image[better]
        grad_image = sampler.backward(self._from_model_grad(out["grad"]))
        if self.anchor is not None:
            value = self._anchored(value, image)
            grad_image = grad_image + self.anchor.gradient(image)
        grad_params = self.image_fn.backward(self.params, image, grad_image)
        self.params = self.adam.ascend(self.params, grad_params)
        if last:
            # Values under random transforms only track progress; as in Lucid the result is the
            # final image, and its activation is measured on that image as saved (untransformed).
            self.current = self.image_fn.forward(self.params)
            _, final = _gradient_pass(opt, self.session, self._to_model(self.current))
            self.best_images = self.current.copy()
            self.best = self._anchored(final, self.current)
        return value


class _MacoEngine(_DisplayEngine):
    """MACO (maco.py): the phase of a canvas larger than the input; each step `crops` random crops
    per row, resized to the input, with noise; NAdam on the mean objective over the crops. The
    result is the canvas resized to the input."""

    def __init__(self, opt: Optimizer):
        super().__init__(opt)
        preset = opt.preset
        self.canvas = max(int(round(preset.canvas * max(self.size))), max(self.size))
        self.image_fn = maco_mod.MacoImage(self.spec.channels, self.canvas)
        self.params = np.stack([self.image_fn.init(rng, preset.init_sd) for rng in opt.rngs])
        self.nadam = maco_mod.NAdam(self.params.shape, preset.lr)
        self.crops = max(1, preset.crops)
        self.boxes = np.linspace(preset.box[0], preset.box[-1], max(preset.steps, 1)) if preset.box else None
        canvas, _ = self.image_fn.forward(self.params)
        self.current = maco_mod.to_model_size(canvas, self.size, self.opt.preset.view)
        self.best_images = self.current.copy()
        self.best = np.full(opt.batch, -np.inf)
        self.initial = _gradient_pass(opt, self.session, self._to_model(self.current))[1]

    def _crop_pass(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gradient of the mean objective over each row's crops (rows i*K .. i*K+K-1 of `x`)
        w.r.t. `x`, and each row's mean objective."""
        opt, k = self.opt, self.crops
        objective = opt.objective
        acts = None if objective.linear else opt.model.activations(x, list(objective.targets), with_outputs=False)
        per_crop = [objective.seeds(None if acts is None else {t: a[j::k] for t, a in acts.items()}, opt.batch)
                    for j in range(k)]
        seeds = {t: np.stack([s[t] for s in per_crop], axis=1).reshape(-1, *per_crop[0][t].shape[1:]) / np.float32(k)
                 for t in objective.targets}
        out = self.session.run(x, seeds)
        values = np.mean([objective.value({t: out[t][j::k] for t in objective.targets}) for j in range(k)], axis=0)
        return out["grad"], values

    def step(self, index: int, last: bool) -> np.ndarray:
        opt, preset, k = self.opt, self.opt.preset, self.crops
        canvas, cache = self.image_fn.forward(self.params)
        self.current = maco_mod.to_model_size(canvas, self.size, self.opt.preset.view)  # what a live view shows (image())
        box = float(self.boxes[min(index, len(self.boxes) - 1)]) if self.boxes is not None else 1.0
        matrices = np.concatenate([maco_mod.crop_matrices(rng, k, self.canvas, self.size, box) for rng in opt.rngs])
        sampler = maco_mod.crops_of(canvas, matrices, self.size)
        crops = sampler.forward(canvas)
        if preset.noise:  # Gaussian and uniform noise, each row's from its own stream
            shape = (k, *crops.shape[1:])
            crops = crops + np.float32(preset.noise) * np.concatenate(
                [rng.standard_normal(shape, dtype=np.float32) + rng.random(shape, dtype=np.float32) - 0.5
                 for rng in opt.rngs])
        grad_x, value = self._crop_pass(self._to_model(crops))
        grad_canvas = sampler.backward(self._from_model_grad(grad_x))  # summed over each row's crops
        self.params = self.nadam.ascend(self.params, self.image_fn.backward(cache, grad_canvas))
        if last:
            canvas, _ = self.image_fn.forward(self.params)
            self.current = maco_mod.to_model_size(canvas, self.size, self.opt.preset.view)
            self.canvas_images = canvas
            _, final = _gradient_pass(opt, self.session, self._to_model(self.current))
            self.best_images = self.current.copy()
            self.best = final
        return value


def optimize(model, objective: Objective, preset: Preset | None = None, seed=0, batch: int = 1,
             engine: str = "auto", start: np.ndarray | None = None) -> Optimizer:
    """Run an `Optimizer` to the end and return it."""
    return Optimizer(model, objective, preset, seed, batch, engine, start).run()


__all__ = ["ENGINES", "Optimizer", "optimize"]
