"""What the Dask jobs (maxact, atlas) share: a model's identity in a job spec, the ProbeModel cache
of a worker process, and the driver's side of a cluster (connect, ship the model, run tasks).

A job spec is any small picklable object with `model_path`, `model_hash`, `input_shape`,
`preprocess`, `device` and `threads` (see `model_fields`), and optionally `memory_budget` (bytes;
`budget_for_workers`). Workers reach the model by its path when
they see the same files (same hash: the model file and the external-data files it references);
otherwise those files are scattered to every worker once (a `ShippedModel`) and a worker keeps them,
laid out as beside the original, in a folder named by the hash. (Dask's package is also called `distributed`; the
imports below are absolute, so they reach it, not this module.)
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from onnxprobe.errors import ParameterError, ProbeError

CONNECT_TIMEOUT = "20s"
WORKERS_TIMEOUT = 60  # seconds to wait for a first worker on a scheduler that has none yet
TASK_RETRIES = 3  # a task whose worker died is run again elsewhere


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_hash(path: str | Path) -> str:
    """The sha256 identity of a model: of its file alone (`file_hash`) when it holds its weights, else
    of the file and of each external-data file it references (by name and content), so that new
    weights beside an unchanged `.onnx` are another model."""
    from onnxprobe.graph.loading import external_data_locations

    locations = external_data_locations(path)
    if not locations:
        return file_hash(path)
    h = hashlib.sha256(b"onnxprobe-model\0" + file_hash(path).encode())
    folder = Path(path).parent
    for location in locations:
        h.update(b"\0" + location.encode() + b"\0" + file_hash(folder / location).encode())
    return h.hexdigest()


def model_fields(model) -> tuple[str, str, tuple[int, ...], tuple[tuple[str, object], ...]]:
    """A loaded ProbeModel as a spec holds it: (resolved path, sha256, input shape, the resolved
    preprocessing as hashable overrides)."""
    preprocess = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in model.spec.to_json().items())
    return str(Path(model.path).resolve()), model_hash(model.path), tuple(model.input_shape), preprocess


def budget_for_workers(model) -> int | None:
    """The memory budget a job spec carries to its workers: the bytes given to the driver's model,
    or None when it took the default (then each worker takes its own machine's)."""
    budget = model.memory_budget
    return budget.bytes if budget.given else None


def threads_for_workers(default: int | None) -> int:
    """ONNX Runtime threads in each task of a cluster: 1 unless asked (a worker's Dask threads are the parallelism)."""
    from onnxprobe.runtime.session import env_threads

    if default is not None:
        return default
    env = env_threads()
    return env if env is not None else 1


# ---- workers: one model per process, keyed by its hash -----------------------------------------

MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its dynamic mmap threshold on 64-bit machines


def worker_allocator() -> None:
    """Let a Dask worker reuse the memory of freed arrays as a plain process does. Dask's nanny
    starts workers with MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's dynamic thresholds:
    every array over 128 KiB (each batch of images, gradients, activations) is then mapped afresh
    and unmapped when freed, or the heap's top handed back and grown again, page faults each step.
    Measured on an atlas task (MobileNetV2, 8 units a batch, 1 thread, 2-core machine): 1.45x the
    CPU time of the same task in a plain process, and as in a plain process with glibc's dynamic
    thresholds at their ceiling, set here (mapped: over 32 MiB; trimmed: 64 MiB free at the top).
    Does nothing without that variable, when MALLOC_MMAP_THRESHOLD_ is set too (chosen on
    purpose), or off glibc."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 2 * MMAP_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class ModelCache:
    """The ProbeModels of this process, loaded once per (model hash, input shape, preprocess,
    device, threads) and kept with their sessions between tasks."""

    def __init__(self):
        self._models: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._models)

    @staticmethod
    def key(spec) -> tuple:
        return spec.model_hash, spec.input_shape, spec.preprocess, spec.device, spec.threads, \
            getattr(spec, "memory_budget", None)

    def get(self, spec, shipped: ShippedModel | None = None):
        """The spec's model; `shipped` (by the driver) is used only when the model at
        `spec.model_path` is missing here or is another model."""
        from onnxprobe.model import ProbeModel

        key = self.key(spec)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                worker_allocator()
                path = Path(spec.model_path)
                if shipped is not None and not sees_model(path, spec.model_hash):
                    path = cached_model_file(spec.model_hash, shipped)
                model = ProbeModel.load(path, input_shape=spec.input_shape, device=spec.device,
                                        preprocess=dict(spec.preprocess), threads=spec.threads,
                                        memory_budget=getattr(spec, "memory_budget", None))
                self._models[key] = model
        return model

    def remember(self, spec, model) -> None:
        """Let this process's tasks use an already loaded model."""
        with self._lock:
            self._models.setdefault(self.key(spec), model)


@dataclass(frozen=True)
class ShippedModel:
    """A model's files as the driver ships them: the model file's name and bytes, and each
    external-data file it references as (location relative to the model's folder, bytes)."""

    name: str
    data: bytes
    external: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def read(cls, path: str | Path) -> ShippedModel:
        from onnxprobe.graph.loading import external_data_locations

        path = Path(path)
        external = tuple((loc, (path.parent / loc).read_bytes()) for loc in external_data_locations(path))
        return cls(path.name, path.read_bytes(), external)


def cached_model_file(model_hash: str, shipped: ShippedModel) -> Path:
    """A shipped model as files, in a folder named by its hash: the model file and its external data
    beside it, where it references them (each written once per machine, atomically, so worker
    processes on one machine may race)."""
    from onnxprobe.fsutil import atomic_write_bytes
    from onnxprobe.graph.loading import inside_folder

    folder = (Path(tempfile.gettempdir()) / "onnxprobe-models" / model_hash).resolve()
    files = [(shipped.name, shipped.data), *shipped.external]
    for location, data in files:
        if not inside_folder(location):
            raise ProbeError(f"a shipped model names a file outside its folder: {location!r}")
        target = folder / location
        if not (target.is_file() and target.stat().st_size == len(data)):
            atomic_write_bytes(target, data)
    return folder / shipped.name


def sees_model(path: str | Path, expected_hash: str) -> bool:
    """Whether this process sees the model at `path`, external data included (runs on each worker)."""
    p = Path(path)
    try:
        return p.is_file() and model_hash(p) == expected_hash
    except Exception:  # an external-data file missing here, an unreadable or unparsable file: not the model
        return False


# ---- the driver's side ---------------------------------------------------------------------------

_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::[0-9]{1,5})?/?$")


def check_scheduler_address(address: str) -> str:
    """`address` if it looks like a Dask scheduler address (tcp://host:8786, host:8786, tls://...),
    else a one-line ProbeError: before any connection attempt or file is made."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise ProbeError(f"the scheduler address {address!r} is not an address like tcp://host:8786")
    return address


@contextmanager
def cluster_client(address: str) -> Iterator:
    """A Dask client of the scheduler at `address` with at least one worker; a scheduler that
    cannot be reached (or has no worker in time) is a one-line ProbeError. The client is always
    closed, also when connecting fails or is interrupted (else Dask's Client.__del__ prints a
    traceback when the process ends)."""
    check_scheduler_address(address)
    try:
        from distributed import Client
    except ImportError:
        raise ParameterError("{scheduler} needs the 'distributed' package (pip install distributed)", "scheduler") from None

    class ClosingClient(Client):
        def __init__(self, *args, **kwargs):
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                _abandon(self)
                raise

    try:
        client = ClosingClient(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ProbeError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(exc).split())[:200]}") from None
    try:
        if not client.scheduler_info().get("workers"):
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
            except (OSError, TimeoutError):
                raise ProbeError(f"the Dask scheduler at {address} has no worker after {WORKERS_TIMEOUT} s") from None
        yield client
    except BaseException:
        _abandon(client)
        raise
    else:
        client.close()


def _abandon(client) -> None:
    """Close a client that failed or was interrupted without waiting on a scheduler that may be
    gone, and mark it closed so that its __del__ does nothing."""
    from contextlib import suppress

    with suppress(Exception):
        client.close(timeout=2)
    client.status = "closed"
    with suppress(Exception):
        client._loop_runner.stop()


def share_model(client, spec, ship_model: bool | None = None):
    """What tasks pass as the shipped model: None, or the model's files (`ShippedModel`: the model
    file and its external data) scattered to every worker. `ship_model=None`: ship them only if
    some worker cannot see the model."""
    if ship_model is None:
        ship_model = not all(client.run(sees_model, spec.model_path, spec.model_hash).values())
    if not ship_model:
        return None
    return client.scatter(ShippedModel.read(spec.model_path), broadcast=True, hash=False)


def run_tasks(client, function: Callable, calls: Iterable[tuple[int, tuple]], name: str,
              on_result: Callable[[object], None]) -> None:
    """Submit `function(*args)` for each `(number, args)` and hand each result to `on_result` as it
    completes (in completion order); what has not finished when this returns or raises is cancelled."""
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    futures = [client.submit(function, *args, key=f"{name}-{run_id}-{number:06d}", pure=False, retries=TASK_RETRIES)
               for number, args in calls]
    try:
        for future in as_completed(futures, loop=client.loop):
            on_result(future.result())
            future.release()
    finally:
        client.cancel(futures)
