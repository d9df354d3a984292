"""`ProbeModel`: a loaded, normalised model with its preprocessing, layers and cached sessions."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnxprobe.errors import InputError, UsageError
from onnxprobe.graph.expose import expose_tensors
from onnxprobe.graph.layers import LayerInfo, find_layer, probeable_layers
from onnxprobe.graph.loading import fix_input_shape, image_input, load_model
from onnxprobe.graph.shapes import TensorInfo, infer_tensor_infos
from onnxprobe.preprocess import PreprocessSpec, resolve_spec
from onnxprobe.runtime.session import Session, SessionCache, resolve_device


class ProbeModel:
    """Everything the commands need about one model. Build it with `ProbeModel.load`."""

    def __init__(self, proto: onnx.ModelProto, path: Path, input_shape: tuple[int, ...], spec: PreprocessSpec,
                 infos: dict[str, TensorInfo], shape_source: str, device: str = "auto", threads: int | None = None):
        self.proto = proto
        self.path = path
        self.input_name = image_input(proto).name
        self.input_shape = input_shape  # batch 1
        self.spec = spec
        self.infos = infos
        self.shape_source = shape_source
        self.device = resolve_device(device)
        self.threads = threads
        self.output_names = [o.name for o in proto.graph.output]
        self._sessions = SessionCache(capacity=8)

    @classmethod
    def load(cls, path: str | Path, input_shape: Sequence[int] | None = None, device: str = "auto",
             preprocess: dict[str, Any] | None = None, threads: int | None = None) -> "ProbeModel":
        path = Path(path)
        proto = load_model(path)
        proto, fixed = fix_input_shape(proto, tuple(input_shape) if input_shape else None)
        metadata = {p.key: p.value for p in proto.metadata_props}
        spec = resolve_spec(path, fixed, metadata, preprocess)
        infos, source = infer_tensor_infos(proto, fixed)
        return cls(proto, path, fixed, spec, infos, source, device=device, threads=threads)

    # ---- layers ------------------------------------------------------------------------------
    @functools.cached_property
    def layers(self) -> list[LayerInfo]:
        return probeable_layers(self.proto, self.infos, self.input_name, self.spec.layout, self.differentiable)

    @functools.cached_property
    def differentiable(self) -> set[str] | None:
        try:
            from onnxprobe.autodiff import differentiable_tensors
        except ImportError:
            return None
        return differentiable_tensors(self.proto)

    @functools.cached_property
    def _layers_by_name(self) -> dict[str, LayerInfo]:
        return {layer.name: layer for layer in self.layers}

    def layer(self, name: str) -> LayerInfo:
        found = self._layers_by_name.get(name)
        return found if found is not None else find_layer(self.layers, name)  # raises, with suggestions

    @functools.cached_property
    def class_output(self) -> str | None:
        """The output holding class scores (N, classes), if the model has one."""
        for name in self.output_names:
            info = self.infos.get(name)
            if info is not None and info.is_float and len(info.shape) == 2 and info.shape[0] is None:
                return name
        return None

    # ---- running -----------------------------------------------------------------------------
    def session(self, key, build) -> Session:
        return self._sessions.get(key, lambda: Session(build(), device=self.device, threads=self.threads))

    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == len(self.input_shape) - 1:
            x = x[None]
        if tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            raise InputError(
                f"input tensor has shape {tuple(x.shape)}, the model needs (N, {', '.join(map(str, self.input_shape[1:]))})"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self.spec.to_tensor(image)

    def activations(self, x: np.ndarray, layers: Iterable[str] | None = None, with_outputs: bool = True) -> dict[str, np.ndarray]:
        """Activations of the named layers (all probeable layers when None) for a batch `x`."""
        names = tuple(self.layer(n).name for n in layers) if layers is not None else tuple(l.name for l in self.layers)
        if with_outputs:
            names = tuple(dict.fromkeys(names + tuple(self.output_names)))
        session = self.session(("forward", names), lambda: expose_tensors(self.proto, names, keep_outputs=False))
        return session.run({self.input_name: self.check_input(x)}, outputs=names)

    def forward_session(self) -> Session:
        return self.session(("forward-plain",), lambda: self.proto)

    def gradient_session(self, targets: Sequence[str], wrt: Sequence[str] | None = None, mode: str = "gradient",
                         extra_outputs: Sequence[str] = (), self_seeded: bool = False) -> "GradientSession":
        """extra_outputs: tensors the same run also returns (GradientSession.run's extra_outputs).
        self_seeded: the single target's seed is its own activation times a 0/1 mask given at run
        time (autodiff.objectives.self_seeded), so no forward pass is needed to build the seed."""
        from onnxprobe.autodiff import build_gradient_model

        targets = tuple(self.layer(t).name for t in targets)
        wrt = tuple(wrt) if wrt else (self.input_name,)
        extra = tuple(dict.fromkeys(extra_outputs))
        if self_seeded and len(targets) != 1:
            raise UsageError("a self-seeded gradient takes exactly one target")
        if self_seeded:  # the target is no graph output of its own there
            extra = tuple(dict.fromkeys(targets + extra))
        key = ("gradient", targets, wrt, mode, extra, self_seeded)

        def build():
            proto, names = self.proto, list(targets)
            if self_seeded:
                from onnxprobe.autodiff.objectives import self_seeded as square

                proto, square_name = square(proto, targets[0])
                names = [square_name]
            return build_gradient_model(proto, names, wrt=list(wrt), mode=mode, extra_outputs=list(extra))

        session = self.session(key, build)
        return GradientSession(self, session, targets, wrt, self_seeded=self_seeded)


class GradientSession:
    """Runs a gradient graph: activations of the targets and the gradient of sum(seed * target)."""

    def __init__(self, model: ProbeModel, session: Session, targets: tuple[str, ...], wrt: tuple[str, ...],
                 self_seeded: bool = False):
        from onnxprobe.autodiff import grad_name, seed_name

        self.model = model
        self.session = session
        self.targets = targets
        self.wrt = wrt
        self.self_seeded = self_seeded
        if self_seeded:  # the graph's target is target * target; its seed is half the mask
            self._square = next(n for n in session.input_names if n.startswith(seed_name("")))[len(seed_name("")):]
            self._seed_names = {targets[0]: seed_name(self._square)}
        else:
            self._seed_names = {t: seed_name(t) for t in targets}
        self._grad_names = {w: grad_name(w) for w in wrt}

    def run(self, x: np.ndarray, seeds: dict[str, np.ndarray], extra_outputs: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Returns each target's activation under its name, and each gradient under "grad" (for the
        input) or "grad:<tensor>". A self-seeded session takes each target's 0/1 mask as its seed."""
        x = self.model.check_input(x)
        feeds = {self.model.input_name: x}
        for target in self.targets:
            if target not in seeds:
                raise UsageError(f"no seed given for target '{target}'")
            seed = np.asarray(seeds[target], dtype=np.float32)
            if self.self_seeded:
                seed = seed * np.float32(0.5)  # see autodiff.objectives.self_seeded
            if seed.shape[0] != x.shape[0]:
                seed = np.broadcast_to(seed, (x.shape[0], *seed.shape[1:]))
            feeds[self._seed_names[target]] = np.ascontiguousarray(seed)
        names = list(dict.fromkeys(list(self.targets) + list(self._grad_names.values()) + list(extra_outputs)))
        values = self.session.run(feeds, outputs=names)
        out = {t: values[t] for t in self.targets}
        for w, g in self._grad_names.items():
            out["grad" if w == self.model.input_name else f"grad:{w}"] = values[g]
        for name in extra_outputs:
            out[name] = values[name]
        return out
