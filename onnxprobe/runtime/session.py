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
                 one_off: bool = False):
        """`one_off`: a session run a few times and dropped (the batch proof, the shape fallback):
        no memory arena and no memory patterns, so that what its runs allocate is returned at once
        instead of staying reserved for runs that never come, and only the basic graph
        optimizations (the layout and fusion passes cost more at start than a few runs gain:
        ViT-B/16, 2 cores: 1.9 s instead of 2.6 s to start, runs within 10 %)."""
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
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        self._input_types = {i.name: i.type for i in self._session.get_inputs()}
        self._lock = threading.Lock()  # InferenceSession.run is thread-safe; IO binding objects are not

    @property
    def providers(self) -> list[str]:
        return self._session.get_providers()

    def input_dtype(self, name: str) -> np.dtype:
        return {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}.get(
            self._input_types[name], np.float32
        )

    def run(self, feeds: dict[str, np.ndarray], outputs: Iterable[str] | None = None, keep_on_device: Iterable[str] = ()) -> dict:
        names = list(outputs) if outputs is not None else self.output_names
        if self.device == "cpu":
            return self._run_cpu(feeds, names)
        return self._run_bound(feeds, names, set(keep_on_device))

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


class SessionCache:
    """Sessions keyed by what they were built from (model identity, exposed set, gradient spec)."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Session]) -> Session:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        session = build()
        with self._lock:
            self._items[key] = session
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
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
