"""`ProbeModel`: a loaded, normalised model with its preprocessing, layers and cached sessions."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import onnx

from onnxprobe.autodiff import BackMode, differentiable_tensors
from onnxprobe.budget import ELEMENT_BYTES, GRADIENT_FACTOR, SAFETY_FACTOR, STEP_INPUT_COPIES, MemoryBudget
from onnxprobe.errors import InputError, ParameterError, UsageError
from onnxprobe.graph.expose import expose_tensors
from onnxprobe.graph.batch import BatchAxis, resolve_batch
from onnxprobe.graph.layers import LayerInfo, probeable_layers
from onnxprobe.graph.names import LayerNames
from onnxprobe.graph.loading import fix_input_shape, image_input, input_dims, load_model
from onnxprobe.graph.facts import GraphFacts, TensorInfo
from onnxprobe.preprocess import PreprocessSpec, declared_preprocessing, resolve_spec
from onnxprobe.runtime.session import Session, SessionCache, resolve_device, to_numpy

if TYPE_CHECKING:
    from onnxprobe.objectives import Objective


class Prediction(NamedTuple):
    cls: int
    label: str
    score: float  # a probability (the scores' softmax where they are not one already)


def softmax_if_needed(scores: np.ndarray) -> np.ndarray:
    """Scores -> probabilities: kept when they already are (0..1, summing to 1), softmax otherwise.
    A model that yields NaN or infinities gets 0 for those classes (empty bars, not a crash)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size and scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3:
        return scores
    with np.errstate(all="ignore"):
        exp = np.exp(scores - np.max(scores, initial=0, where=np.isfinite(scores)))
        probs = exp / exp[np.isfinite(exp)].sum()
    return np.where(np.isfinite(probs), probs, 0.0)


def top_predictions(scores: np.ndarray, labels: Sequence[str] | None, k: int = 5) -> list[Prediction]:
    """The `k` most probable classes of one row of class scores, most probable first (ties in class
    order), labelled from `labels` ("class N" past their end): the one top-k of the viewer and the demo."""
    probs = softmax_if_needed(scores)
    order = np.argsort(-probs, kind="stable")[:k]
    return [Prediction(int(i), labels[i] if labels and i < len(labels) else f"class {int(i)}", float(probs[i]))
            for i in order]


class ProbeModel:
    """Everything the commands need about one model. Build it with `ProbeModel.load`."""

    def __init__(self, proto: onnx.ModelProto, path: Path, input_shape: tuple[int, ...], spec: PreprocessSpec,
                 facts: GraphFacts, device: str = "auto", threads: int | None = None,
                 batch: BatchAxis | None = None, memory_budget: MemoryBudget | str | int | None = None):
        self.proto = proto
        self.path = path
        self.input_name = image_input(proto).name
        self.input_shape = input_shape  # batch 1
        self.spec = spec
        self.facts = facts  # built once at load; everything that reads the graph reads it
        self.batch = batch or BatchAxis("dynamic", "N")
        self.device = resolve_device(device)
        self.threads = threads
        # what batched work may hold at once (onnxprobe.budget): every job reads it here
        self.memory_budget = MemoryBudget.of(memory_budget, self.device)
        self.output_names = [o.name for o in proto.graph.output]
        self._sessions = SessionCache()  # by memory: runtime.session.default_session_budget

    @classmethod
    def load(cls, path: str | Path, input_shape: Sequence[int] | None = None, device: str = "auto",
             preprocess: dict[str, Any] | None = None, threads: int | None = None,
             memory_budget: MemoryBudget | str | int | None = None) -> "ProbeModel":
        """`memory_budget`: what batched work may hold at once (onnxprobe.budget: a size such as
        '4G', bytes, or a MemoryBudget; None: the default share of the memory there is)."""
        path = Path(path)
        proto = load_model(path)
        metadata = {p.key: p.value for p in proto.metadata_props}
        declared = input_dims(image_input(proto))[0]
        hints = None if input_shape else declared_preprocessing(path, metadata, preprocess)
        proto, fixed = fix_input_shape(proto, tuple(input_shape) if input_shape else None, hints, copy=False)
        spec = resolve_spec(path, fixed, metadata, preprocess)
        proto, batch = resolve_batch(proto, image_input(proto).name, fixed, declared)
        facts = GraphFacts.of_loaded(proto, fixed, rows=batch.rows, off_axis=batch.off_axis, on_axis=batch.on_axis,
                                     batch_axes=batch.batch_axes)
        if not facts.follows:  # a declared dynamic batch that the graph does not honour: shapes at batch 1
            batch = BatchAxis("fixed", batch.declared, rows=1, why="the graph fails at batch 2")
            facts = GraphFacts.of_loaded(proto, fixed, rows=1)
        return cls(proto, path, fixed, spec, facts, device=device, threads=threads, batch=batch,
                   memory_budget=memory_budget)

    @property
    def infos(self) -> dict[str, TensorInfo]:
        """Every tensor's TensorInfo (element type, shape with the batch axis None)."""
        return self.facts.infos

    @property
    def shape_source(self) -> str:
        """How the shapes were found: "inference" or "execution"."""
        return self.facts.source

    # ---- layers ------------------------------------------------------------------------------
    @functools.cached_property
    def layers(self) -> list[LayerInfo]:
        return probeable_layers(self.facts, self.input_name, self.spec.layout, self.differentiable)

    def why_no_layers(self) -> str:
        """Why `layers` is empty, in one line (a layer is a float node output of rank >= 2 that
        carries the batch axis)."""
        outputs = [self.infos.get(o) for node in self.proto.graph.node for o in node.output if o]
        known = [i for i in outputs if i is not None]
        if not outputs:
            return "the graph has no nodes"
        if not known:
            return f"the shapes of the graph's {len(outputs)} tensors could not be found"
        floats = [i for i in known if i.is_float]
        if not floats:
            return f"none of the graph's {len(known)} tensors is a float tensor"
        batched = [i for i in floats if i.has_batch_axis]
        if not batched:
            return (f"none of the graph's {len(floats)} float tensors follows the input's batch axis "
                    f"({self.batch.describe()})")
        return f"the {len(batched)} float tensors that follow the batch have rank 1"

    @functools.cached_property
    def differentiable(self) -> set[str]:
        return differentiable_tensors(self.proto)

    @functools.cached_property
    def layer_names(self) -> LayerNames:
        return LayerNames(self.layers)

    def layer(self, name: str) -> LayerInfo:
        """The layer called `name`: its ONNX tensor name or its module path (`layer2.1.relu`), the
        one resolver of graph/names.py; unknown or ambiguous names raise a one-line UsageError."""
        return self.layer_names.resolve(name)

    @functools.cached_property
    def class_output(self) -> str | None:
        """The output holding class scores (N, classes), if the model has one: a softmax output
        first (detectors such as MTCNN also output (N, 4) box regressions), else the first."""
        candidates = [name for name in self.output_names
                      if (info := self.infos.get(name)) is not None and info.is_float and len(info.shape) == 2
                      and info.shape[0] is None]
        softmax = [name for name in candidates if getattr(self.facts.producers.get(name), "op_type", None) == "Softmax"]
        return (softmax or candidates or [None])[0]

    # ---- the memory budget --------------------------------------------------------------------
    @functools.cached_property
    def tensor_row_bytes(self) -> int:
        """Bytes of one batch row of the forward graph's tensors that depend on the input (the
        input included), from the facts' shapes (batch axis 1, each its element type's size; a
        tensor whose batch sits inside another axis counts at its batch-1 shape)."""
        reach = self.facts.reachable_from(self.input_name) | {self.input_name}
        total = 0
        for name, info in self.infos.items():
            if name in reach:
                total += ELEMENT_BYTES.get(info.elem_type, 4) * int(np.prod([1 if d is None else d for d in info.shape]))
        return max(total, 1)

    def row_bytes(self, kind: str = "gradient") -> int:
        """The estimated bytes one batch row costs in a run of `kind`: "forward" (the forward
        graph's tensors), "gradient" (those and their gradients: GRADIENT_FACTOR times) or "step"
        (a gradient row plus the optimizer's STEP_INPUT_COPIES input-sized buffers), times
        SAFETY_FACTOR (onnxprobe.budget)."""
        forward = self.tensor_row_bytes
        if kind == "forward":
            cost = forward
        elif kind in ("gradient", "step"):
            cost = forward * GRADIENT_FACTOR
            if kind == "step":
                cost += STEP_INPUT_COPIES * 4 * int(np.prod(self.input_shape[1:]))
        else:
            raise ValueError(f"unknown kind of run {kind!r}")
        return int(cost * SAFETY_FACTOR)

    def rows_per_run(self, kind: str = "gradient", limit: int | None = None) -> int:
        """Batch rows of a `kind` run (see `row_bytes`) that fit in the memory budget, at most
        `limit` when given; at least 1, else a one-line ParameterError naming memory_budget."""
        words = {"forward": "the forward graph", "gradient": "the gradient graph", "step": "the optimisation step"}
        rows = self.memory_budget.rows(self.row_bytes(kind), f"{words.get(kind, kind)} of this model")
        return rows if limit is None else max(1, min(rows, int(limit)))

    # ---- running -----------------------------------------------------------------------------
    def session(self, key, build) -> Session:
        """The cached session of the graph `build()` returns. On a fixed-batch model every session
        runs its batch `batch.rows` rows at a time (`RowSession`): the one place where rows loop."""
        def make():
            graph = build()
            # the graph's values at batch 1 for the cache's memory estimate, from the facts: the
            # forward tensors, and their gradients besides in any other graph
            values = self.tensor_row_bytes * (1 if key[0] in ("forward", "forward-plain") else GRADIENT_FACTOR)
            session = Session(graph, device=self.device, threads=self.threads, value_bytes=values)
            return RowSession(session, self.batch.rows, batched_inputs(graph)) if self.batch.fixed else session

        return self._sessions.get(key, make)

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
        exposed = lambda: expose_tensors(self.proto, names, keep_outputs=False, known=self.facts.value_infos)  # noqa: E731
        session = self.session(("forward", names), exposed)
        x = self.check_input(x)
        step = self.rows_per_run("forward", limit=len(x))  # the memory budget's rows per run
        parts = [session.run({self.input_name: x[start:start + step]}, outputs=names) for start in range(0, len(x), step)]
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def forward_session(self) -> Session:
        return self.session(("forward-plain",), lambda: self.proto)

    def gradient(self, x: np.ndarray, objective: "Objective", mode: str = BackMode.GRADIENT,
                 wrt: Sequence[str] | None = None, extra_outputs: Sequence[str] = (),
                 activations: dict[str, np.ndarray] | None = None, batch_size: int | None = None) -> "Gradient":
        """The one way to the gradient of `objective` (onnxprobe.objectives) for the batch `x`, under
        the back `mode` (BackMode: gradient, deconv, guided): w.r.t. the input, or w.r.t. the tensors
        `wrt` when given (the input among them only when named; an intermediate one for Grad-CAM).

        Its seeds: a linear objective's need no activations; an objective with an in-graph seed
        (`own_activation`'s `self_seed`) runs the self-seeded graph, which forms the seed in the same
        run (no forward first); any other reads its targets in a forward run first, unless
        `activations` (its targets', for this `x`) are given. `extra_outputs`: tensors the same run
        also returns (in `Gradient.activations`). `batch_size`: at most this many rows per run (None:
        as many as the memory budget holds, `rows_per_run`; a non-linear objective's seeds are those
        of each run's rows)."""
        x = self.check_input(x)
        wrt = tuple(wrt) if wrt else (self.input_name,)
        in_graph = objective.self_seed if activations is None and not objective.linear else None
        if in_graph is not None:
            session = self.gradient_session([in_graph.target], wrt, mode, extra_outputs, self_seeded=True,
                                            peak_axes=in_graph.peak_axes)
        else:
            session = self.gradient_session(objective.targets, wrt, mode, extra_outputs)
        n = len(x)
        if in_graph is not None:
            whole = {in_graph.target: in_graph.mask}
        elif objective.linear:
            whole = objective.seeds(None, n)
        elif activations is not None:
            whole = objective.seeds({t: activations[t] for t in objective.targets}, n)
        else:
            whole = None  # each run's rows read their targets first
        if batch_size is not None and not (int(batch_size) == batch_size and batch_size >= 1):
            raise ParameterError(f"{{batch_size}} must be a positive integer, got {batch_size!r}", "batch_size")
        step = self.rows_per_run("gradient", limit=n if batch_size is None else int(batch_size))
        parts = []
        for start in range(0, n, step):
            rows = x[start:start + step]
            seeds = objective.seeds_for(self, rows) if whole is None else \
                {t: s[start:start + step] if len(s) == n else s for t, s in whole.items()}
            parts.append(session.run(rows, seeds, extra_outputs=extra_outputs))
        out = parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        grads = {w: out["grad" if w == self.input_name else f"grad:{w}"] for w in wrt}
        acts = {k: v for k, v in out.items() if not (k == "grad" or k.startswith("grad:"))}
        return Gradient(objective, grads, acts, self.input_name)

    def gradient_session(self, targets: Sequence[str], wrt: Sequence[str] | None = None, mode: str = BackMode.GRADIENT,
                         extra_outputs: Sequence[str] = (), self_seeded: bool = False,
                         peak_axes: tuple[int, ...] = ()) -> "GradientSession":
        """The compiled gradient graph behind `gradient` (cached per targets, wrt, mode, extra outputs
        and self-seeding), for callers that run the same graph many times with seeds of their own.
        extra_outputs: tensors the same run also returns (GradientSession.run's extra_outputs).
        self_seeded: the single target's seed is its own activation times a 0/1 mask given at run
        time (objectives.self_seeded), so no forward pass is needed to build the seed;
        peak_axes: and only where it is largest over these (spatial) axes."""
        from onnxprobe.autodiff import build_gradient_model

        targets = tuple(self.layer(t).name for t in targets)
        wrt = tuple(wrt) if wrt else (self.input_name,)
        extra = tuple(dict.fromkeys(extra_outputs))
        if self_seeded and len(targets) != 1:
            raise UsageError("a self-seeded gradient takes exactly one target")
        if self_seeded:  # the target is no graph output of its own there
            extra = tuple(dict.fromkeys(targets + extra))
        key = ("gradient", targets, wrt, mode, extra, self_seeded, tuple(peak_axes))

        def build():
            proto, names = self.proto, list(targets)
            if self_seeded:
                from onnxprobe.objectives import self_seeded as square

                proto, square_name = square(proto, targets[0], tuple(peak_axes), facts=self.facts)
                names = [square_name]
            return build_gradient_model(proto, names, wrt=list(wrt), mode=mode, extra_outputs=list(extra),
                                        facts=self.facts)

        session = self.session(key, build)
        return GradientSession(self, session, targets, wrt, self_seeded=self_seeded)


@dataclass(frozen=True)
class Gradient:
    """What `ProbeModel.gradient` gives: `grads` (tensor name -> the objective's gradient w.r.t. it,
    batch first), `activations` (the objective's targets and the extra outputs asked for, from the
    same run)."""

    objective: "Objective"
    grads: dict[str, np.ndarray]
    activations: dict[str, np.ndarray]
    input_name: str

    @property
    def input(self) -> np.ndarray:
        """The gradient w.r.t. the model's input (N, *input shape)."""
        return self.grads[self.input_name]

    def values(self) -> np.ndarray:
        """The objective of each row, (N,) float64, from the run's activations."""
        return self.objective.value({t: self.activations[t] for t in self.objective.targets})


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
                seed = seed * np.float32(0.5)  # see objectives.self_seeded
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


def batched_inputs(graph: onnx.ModelProto) -> set[str]:
    """Inputs whose first dim is symbolic: the batch rows (images, seeds, optimizer state)."""
    names = set()
    initializers = {init.name for init in graph.graph.initializer}
    for value in graph.graph.input:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else ()
        if value.name not in initializers and dims and not dims[0].HasField("dim_value"):
            names.add(value.name)
    return names


class RowSession:
    """A session of a graph that only runs `rows` rows at a time (a fixed-batch model): a batch is
    cut into chunks of `rows` along the first axis of its batched inputs (the last one padded by
    repeating its last row), each chunk runs alone, and outputs whose first axis is the chunk's
    rows are joined back (others are the first chunk's). Rows are independent in the models
    onnxprobe probes, so the results equal one batched run."""

    def __init__(self, session: Session, rows: int, batched: set[str]):
        self.inner = session
        self.rows = rows
        self.batched = batched
        self.device = session.device
        self.input_names = session.input_names
        self.output_names = session.output_names
        self.nbytes = session.nbytes

    @property
    def providers(self) -> list[str]:
        return self.inner.providers

    def input_dtype(self, name: str) -> np.dtype:
        return self.inner.input_dtype(name)

    def run(self, feeds: dict, outputs: Iterable[str] | None = None, keep_on_device: Iterable[str] = ()) -> dict:
        # results come back to the host: joining chunks needs them there (callers accept either)
        feeds = {k: to_numpy(v) for k, v in feeds.items()}
        sizes = {feeds[k].shape[0] for k in feeds if k in self.batched and np.ndim(feeds[k]) >= 1}
        if len(sizes) > 1:
            raise InputError(f"batched inputs disagree on the number of rows: {sorted(sizes)}")
        n = sizes.pop() if sizes else self.rows
        if n == self.rows:
            return {k: to_numpy(v) for k, v in self.inner.run(feeds, outputs).items()}
        parts = []
        for start in range(0, n, self.rows):
            index = np.minimum(np.arange(start, start + self.rows), n - 1)
            chunk = {k: (np.ascontiguousarray(v[index]) if k in self.batched else v) for k, v in feeds.items()}
            parts.append({k: to_numpy(v) for k, v in self.inner.run(chunk, outputs).items()})
        out = {}
        for name in parts[0]:
            values = [p[name] for p in parts]
            if all(np.ndim(v) >= 1 and np.shape(v)[0] == self.rows for v in values):
                out[name] = np.concatenate(values, axis=0)[:n]
            else:
                out[name] = values[0]
        return out

