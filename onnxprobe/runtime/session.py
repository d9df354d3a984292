"""ONNX Runtime sessions: provider choice, threads, IO binding on CUDA, and a session cache."""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable

import numpy as np
import onnx
import onnxruntime as ort

from onnxprobe.errors import ProbeError, UsageError

DEVICES = ("auto", "cpu", "cuda")
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
_TINY_MODEL = None

ort.set_default_logger_severity(3)  # provider-load chatter is not the user's problem; errors still surface


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True only when a CUDA session really starts (the GPU wheel lists CUDA even without a GPU)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    previous = 3
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(_tiny_model(), providers=_PROVIDERS["cuda"])
        return "CUDAExecutionProvider" in session.get_providers()
    except Exception:
        return False
    finally:
        ort.set_default_logger_severity(previous)


def resolve_device(device: str = "auto") -> str:
    if device not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}, got '{device}'")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ProbeError("device cuda: no usable CUDA device (onnxruntime-gpu found no GPU or no CUDA 13/cuDNN 9 "
                         "libraries); use device cpu or auto")
    return device


def spinning() -> bool:
    """Whether ONNX Runtime's idle pool threads spin (ONNXPROBE_ORT_SPIN=0 turns it off: then the
    process CPU time measures work done, and idle pool threads leave the cores to other threads)."""
    return os.environ.get("ONNXPROBE_ORT_SPIN", "1") != "0"


def env_threads() -> int | None:
    """ONNXPROBE_THREADS as a count (None when unset); anything but a whole number >= 1 is a one-line error."""
    env = os.environ.get("ONNXPROBE_THREADS")
    if env is None or not env.strip():
        return None
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"ONNXPROBE_THREADS must be a whole number of threads (at least 1), got '{env}'")
    return value


def default_threads() -> int:
    env = env_threads()
    return env if env is not None else 0  # 0: ONNX Runtime picks one per physical core


class Session:
    """One InferenceSession with dict-in, dict-out runs; on CUDA, inputs and outputs go through IO
    binding so that outputs asked to stay on the device are never copied back."""

    def __init__(self, model: onnx.ModelProto | bytes | str, device: str = "auto", threads: int | None = None,
                 one_off: bool = False, value_bytes: int | None = None):
        """`one_off`: a session run a few times and dropped (the batch proof, the shape fallback):
        no memory arena and no memory patterns, so that what its runs allocate is returned at once
        instead of staying reserved for runs that never come, and only the basic graph
        optimizations (the layout and fusion passes cost more at start than a few runs gain:
        ViT-B/16, 2 cores: 1.9 s instead of 2.6 s to start, runs within 10 %).
        `value_bytes`: the caller's estimate of the graph's intermediate values at batch 1 for the
        memory estimate (`session_bytes`; a ProbeModel knows it from its facts)."""
        self.device = resolve_device(device)
        options = ort.SessionOptions()
        if one_off:
            options.enable_cpu_mem_arena = False
            options.enable_mem_pattern = False
        options.intra_op_num_threads = default_threads() if threads is None else threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if one_off else \
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning():
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if isinstance(model, onnx.ModelProto):
            from onnxprobe.runtime.weights import session_options

            session_options(model, options)  # weights kept in their file: ONNX Runtime reads them there
            payload = model.SerializeToString()
        else:
            payload = model
        try:
            self._session = ort.InferenceSession(payload, sess_options=options, providers=_PROVIDERS[self.device])
        except Exception as exc:
            raise ProbeError(f"ONNX Runtime cannot load the model: {' '.join(str(exc).split())[:300]}") from None
        self.nbytes = 0 if one_off else session_bytes(model, value_bytes)  # what SessionCache counts against its budget
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        floats = {"tensor(float16)": np.float16, "tensor(double)": np.float64}
        # each input's numpy type, read once: every run casts float feeds to it (_own_type)
        self._input_dtypes = {i.name: floats.get(i.type, np.float32) for i in self._session.get_inputs()}
        self._lock = threading.Lock()  # InferenceSession.run is thread-safe; IO binding objects are not

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    def input_dtype(self, name: str) -> np.dtype:
        return self._input_dtypes[name]

    def run(self, feeds: dict[str, np.ndarray], outputs: Iterable[str] | None = None, keep_on_device: Iterable[str] = ()) -> dict:
        names = list(outputs) if outputs is not None else self.output_names
        feeds = {name: self._own_type(name, value) for name, value in feeds.items()}
        if self.device == "cpu":
            return self._run_cpu(feeds, names)
        return self._run_bound(feeds, names, set(keep_on_device))

    def _own_type(self, name: str, value):
        """A float array fed as the graph's own float type: onnxprobe's arrays are float32, and a
        graph computed in float16 or double takes its seeds (and any other float feed) in its type."""
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            wanted = self.input_dtype(name)
            if value.dtype != wanted:
                return value.astype(wanted)
        return value

    def _run_cpu(self, feeds, names) -> dict:
        # Binding reusable CPU output buffers was measured: the copy-out costs more than run()'s
        # own allocation (ResNet-18, 49 outputs: 83 vs 74 ms), so CPU runs use run(). Fresh bound
        # buffers per run (page faults) and run_with_ort_values + OrtValue.numpy() (no copy) were
        # measured too: no gain over run() in CPU time (bench/bench_expose.py, 2 cores under load).
        return dict(zip(names, self._session.run(names, feeds)))

    def _run_bound(self, feeds, names, keep) -> dict:
        binding = self._session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in names:
            binding.bind_output(name, "cuda" if name in keep else "cpu")
        with self._lock:
            self._session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return {name: (value if name in keep else value.numpy()) for name, value in zip(names, values)}


def to_numpy(value) -> np.ndarray:
    """A run's output on the host: an OrtValue kept on the device (`keep_on_device`) copied back, a
    numpy array as it is."""
    return value if isinstance(value, np.ndarray) or not hasattr(value, "numpy") else value.numpy()


def trim_memory() -> None:
    """Hand the heap that dropped sessions freed back to the system (glibc keeps it otherwise: after
    the batch proof of ViT-B/16, 515 MB of freed memory stayed resident). No-op elsewhere."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def create_session(model, device: str = "auto", threads: int | None = None, one_off: bool = False) -> Session:
    return Session(model, device=device, threads=threads, one_off=one_off)


def session_bytes(model: onnx.ModelProto | bytes | str, value_bytes: int | None = None) -> int:
    """An estimate of the memory a session of `model` holds: twice its initializers' bytes (ONNX
    Runtime's copy of the weights and the kernels' prepacked forms) plus a quarter of the bytes of
    its intermediate values at batch 1 (the memory arena reuses buffers across the graph):
    `value_bytes` where the caller knows them (a ProbeModel, from its one shape inference), else the
    shapes the graph declares (no inference of its own: one inference per load), a symbolic dim
    counted as 1. Measured by the session-cache change on the bundled MobileNetV2 (CPU, 1 thread),
    resident memory a session adds once built and run: the forward graph 39 MB estimated, 40 MB
    measured; gradient graphs 19 to 57 MB estimated, 25 to 69 MB measured. A model given as bytes
    (or a path): twice its size."""
    if not isinstance(model, onnx.ModelProto):
        return 2 * (len(model) if isinstance(model, bytes) else os.path.getsize(model))
    weights = sum(_tensor_bytes(t.data_type, t.dims) for t in model.graph.initializer)
    if value_bytes is None:
        value_bytes = 0
        for info in list(model.graph.value_info) + list(model.graph.output):
            tensor = info.type.tensor_type
            if tensor.HasField("shape"):
                value_bytes += _tensor_bytes(tensor.elem_type, [d.dim_value if d.HasField("dim_value") else 1
                                                                for d in tensor.shape.dim])
    return 2 * weights + value_bytes // 4


def _tensor_bytes(elem_type: int, dims) -> int:
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 4
    return int(np.prod([max(int(d), 0) for d in dims], dtype=np.int64)) * itemsize


def default_session_budget() -> int:
    """`SessionCache`'s memory budget: a quarter of the machine's memory, between 1 GiB and 8 GiB
    (1 GiB where the machine does not say)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = 0
    return min(max(total // 4, 1 << 30), 8 << 30)


class SessionCache:
    """Sessions keyed by what they were built from (model identity, exposed set, gradient spec),
    kept while their estimated memory (`Session.nbytes`, `session_bytes`) fits `budget` bytes;
    beyond it the least recently used go, but the `keep` most recently used always stay (the
    viewer's forward and back graphs of the current frame are never rebuilt for each other)."""

    def __init__(self, budget: int | None = None, keep: int = 2):
        self.budget = default_session_budget() if budget is None else budget
        self.keep = keep
        self._items: OrderedDict[Hashable, Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """The estimated memory of the sessions kept."""
        with self._lock:
            return sum(s.nbytes for s in self._items.values())

    def get(self, key: Hashable, build: Callable[[], Session]) -> Session:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        session = build()
        with self._lock:
            self._items[key] = session
            self._items.move_to_end(key)
            total = sum(s.nbytes for s in self._items.values())
            while len(self._items) > self.keep and total > self.budget:
                _, dropped = self._items.popitem(last=False)
                total -= dropped.nbytes
        return session


def _tiny_model() -> bytes:
    global _TINY_MODEL
    if _TINY_MODEL is None:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        # any opset ONNX Runtime reads serves (Identity is the same in all); runtime sits below graph,
        # so graph.loading.WORKING_OPSET, the opset of the models onnxprobe builds, is not imported here
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        _TINY_MODEL = model.SerializeToString()
    return _TINY_MODEL
