"""The top-k job: shards of the dataset -> per-shard states -> one state folded in shard order ->
records and images. Shards run in this process or on a Dask cluster (`cluster.py`).

Resumable: each finished shard's state is written atomically to `DIR/.maxact/shard-NNNNNN.npz`
as it arrives; the prefix of shards folded so far is checkpointed to `DIR/.maxact/folded.npz`
(then the shard files it covers are deleted). A restart loads both and runs only what is missing.
The shard cut and the batches inside a shard are part of the job definition, so one process and a
cluster compute exactly the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnxprobe.distributed import ModelCache, ShippedModel, budget_for_workers, model_fields
from onnxprobe.errors import InputError, ParameterError
from onnxprobe.fsutil import atomic_save_npz, atomic_write_json, checkpoint, make_dirs, remove_temp_files
from onnxprobe.maxact.datasets import Dataset, Shard, load_images
from onnxprobe.maxact.topk import BY, LayerState

STATE_DIR = ".maxact"
JOB_FORMAT = 1
CHECKPOINT_SECONDS = 10.0
MAX_TOP = 10_000


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to process a shard (small and picklable)."""

    model_path: str
    model_hash: str
    input_shape: tuple[int, ...]
    preprocess: tuple[tuple[str, object], ...]  # the resolved PreprocessSpec, as overrides
    layers: tuple[str, ...]
    top: int
    by: str
    batch_size: int
    shard_size: int
    device: str = "auto"
    threads: int | None = None
    memory_budget: int | None = None  # bytes (distributed.budget_for_workers); None: each worker's default

    def key(self, dataset_fingerprint: str) -> str:
        """What must match for a saved state to be resumed (not device or threads)."""
        text = json.dumps([JOB_FORMAT, self.model_hash, self.input_shape, self.preprocess, self.layers, self.top,
                           self.by, self.batch_size, self.shard_size, dataset_fingerprint], default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


# workers: one model per process, keyed by its hash
_MODELS = ModelCache()


@dataclass
class ShardResult:
    shard_id: int
    states: dict[str, LayerState]
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # (index, source, reason)

    @property
    def images(self) -> int:
        return next(iter(self.states.values())).count if self.states else 0

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"shard_id": np.asarray(self.shard_id), "skipped": np.asarray(json.dumps(self.skipped)),
                  "layers": np.asarray(json.dumps(list(self.states)))}
        for n, state in enumerate(self.states.values()):
            arrays.update(state.to_arrays(f"L{n}."))
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "ShardResult":
        names = json.loads(str(arrays["layers"]))
        states = {name: LayerState.from_arrays(arrays, f"L{n}.") for n, name in enumerate(names)}
        skipped = [tuple(s) for s in json.loads(str(arrays["skipped"]))]
        return cls(int(arrays["shard_id"]), states, skipped)


def _batches(spec: JobSpec, model, shard: Shard, skipped: list) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    xs, indices = [], []
    for item, image, reason in load_images(shard):
        if image is not None:
            try:
                xs.append(model.preprocess(image)[0])
                indices.append(item.index)
            except InputError as exc:  # e.g. a 2-channel TIFF
                image, reason = None, str(exc)
        if image is None:
            skipped.append((item.index, item.source, reason))
        if len(xs) == spec.batch_size:
            yield np.stack(xs), np.asarray(indices, np.int64)
            xs, indices = [], []
    if xs:
        yield np.stack(xs), np.asarray(indices, np.int64)


def _prefetched(iterator: Iterator, depth: int = 2) -> Iterator:
    """Decode the next batches in a thread while ONNX Runtime (which releases the GIL) runs."""
    import queue

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for value in iterator:
                q.put(value)
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer
            q.put(exc)

    threading.Thread(target=produce, daemon=True).start()
    while True:
        value = q.get()
        if value is done:
            return
        if isinstance(value, BaseException):
            raise value
        yield value


def process_shard(spec: JobSpec, shard: Shard, shipped: ShippedModel | None = None,
                  on_batch: Callable[[int], None] | None = None) -> ShardResult:
    """Run one shard: batched inference, streaming top-k and statistics per chosen layer."""
    model = _MODELS.get(spec, shipped)
    layers = [model.layer(name) for name in spec.layers]
    states = {layer.name: LayerState.empty(layer.units, spec.top, len(layer.spatial_axes), spec.by) for layer in layers}
    skipped: list = []
    for x, indices in _prefetched(_batches(spec, model, shard, skipped)):
        step = model.rows_per_run("forward", limit=len(x))  # the memory budget's rows per run
        for start in range(0, len(x), step):
            acts = model.activations(x[start:start + step], spec.layers, with_outputs=False)
            for layer in layers:
                states[layer.name].update(acts[layer.name], indices[start:start + step], layer.channel_axis,
                                          layer.spatial_axes)
        if on_batch is not None:
            on_batch(len(indices))
    if on_batch is not None and skipped:
        on_batch(len(skipped))
    return ShardResult(shard.id, states, skipped)


# ---- the driver's side: state on disk, folded in shard order ---------------------------------

class StateStore:
    """`DIR/.maxact/`: job.json, folded.npz (shards < next folded), shard-NNNNNN.npz (finished,
    not yet folded). Everything is written atomically, so a kill at any moment loses at most the
    shards that were running."""

    def __init__(self, out_dir: Path, job_key: str, spec: JobSpec, shard_count: int, fresh: bool = False,
                 stamps: list[str] | None = None):
        """`stamps`: per shard, what its files looked like (`Dataset.stamps`); saved shards whose
        files changed since are redone, and `notes` says so."""
        self.root = make_dirs(out_dir / STATE_DIR)
        remove_temp_files(self.root)
        self.notes: list[str] = []
        job_file = self.root / "job.json"
        saved = None
        if job_file.exists() and not fresh:
            try:
                saved = json.loads(job_file.read_text())
            except (OSError, json.JSONDecodeError):
                saved = None
            if not isinstance(saved, dict) or saved.get("key") != job_key:
                raise ParameterError(f"{out_dir} holds the state of a different maxact job (other model, data, layers "
                                     "or settings); use another {out_dir} or add {fresh} to start over", "out_dir", "fresh")
        if fresh or saved is None:
            for old in self.root.glob("*.npz"):
                old.unlink()
        job = {"key": job_key, "layers": list(spec.layers), "top": spec.top, "by": spec.by,
               "shards": shard_count, "shard_size": spec.shard_size, "stamps": stamps}
        if saved is not None and stamps is not None:
            self._forget_changed(saved.get("stamps"), stamps)
        if saved != job:
            atomic_write_json(job_file, job)
        self.states: dict[str, LayerState] | None = None
        self.skipped: list = []
        self.next = 0
        self.pending: dict[int, ShardResult] = {}
        self._last_checkpoint = time.monotonic()
        self._load()

    def _forget_changed(self, saved_stamps, stamps: list[str]) -> None:
        """Delete the saved state of shards whose files changed (size or modification time) since it
        was made; the folded prefix goes whole when one of its shards changed (it cannot be unfolded)."""
        if not isinstance(saved_stamps, list) or len(saved_stamps) != len(stamps):
            changed = list(range(len(stamps)))
        else:
            changed = [n for n, (a, b) in enumerate(zip(saved_stamps, stamps)) if a != b]
        if not changed:
            return
        redo = set(changed)
        folded = self.root / "folded.npz"
        if folded.exists():
            try:
                with np.load(folded) as arrays:
                    covered = int(arrays["next"])
            except (OSError, ValueError, KeyError):
                covered = len(stamps)
            if min(changed) < covered:
                folded.unlink()
                redo.update(range(covered))
        for sid in changed:
            self._shard_path(sid).unlink(missing_ok=True)
        self.notes.append(f"the files of {len(changed)} shard(s) changed since the saved state (size or modification "
                          f"time): rescanning {len(redo)} of {len(stamps)} shard(s)")

    def _load(self) -> None:
        folded = self.root / "folded.npz"
        if folded.exists():
            with np.load(folded) as arrays:
                result = ShardResult.from_arrays(arrays)
                self.next = int(arrays["next"])
            self.states, self.skipped = result.states, result.skipped
        for path in sorted(self.root.glob("shard-*.npz")):
            with np.load(path) as arrays:
                result = ShardResult.from_arrays(arrays)
            if result.shard_id >= self.next:
                self.pending[result.shard_id] = result
        self._fold()

    def done(self, shard_id: int) -> bool:
        return shard_id < self.next or shard_id in self.pending

    def add(self, result: ShardResult) -> None:
        atomic_save_npz(self._shard_path(result.shard_id), result.to_arrays())
        checkpoint()  # a finished shard is kept even if the run is killed now (with job.json and items.json)
        self.pending[result.shard_id] = result
        self._fold()
        if time.monotonic() - self._last_checkpoint > CHECKPOINT_SECONDS:
            self.checkpoint()

    def _fold(self) -> None:
        while self.next in self.pending:
            result = self.pending.pop(self.next)
            if self.states is None:
                self.states = {name: state.copy() for name, state in result.states.items()}
            else:
                self.states = {name: self.states[name].merge(state) for name, state in result.states.items()}
            self.skipped.extend(result.skipped)
            self.next += 1

    def checkpoint(self) -> None:
        if self.states is None:
            return
        arrays = ShardResult(-1, self.states, self.skipped).to_arrays()
        arrays["next"] = np.asarray(self.next)
        atomic_save_npz(self.root / "folded.npz", arrays)
        checkpoint()  # on disk before the shard files it covers go
        for sid in range(self.next):  # now covered by folded.npz
            self._shard_path(sid).unlink(missing_ok=True)
        self._last_checkpoint = time.monotonic()

    def _shard_path(self, shard_id: int) -> Path:
        return self.root / f"shard-{shard_id:06d}.npz"


def run_shards_locally(spec: JobSpec, shards: list[Shard], store: StateStore, progress=None,
                       on_shard: Callable[[ShardResult], None] | None = None) -> None:
    for shard in shards:
        result = process_shard(spec, shard, on_batch=progress.update if progress else None)
        store.add(result)
        if on_shard is not None:
            on_shard(result)


def check_settings(layers, top: int, by: str, batch_size: int, shard_size: int) -> None:
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ParameterError(f"{{top}} must be a whole number of at least 1, got {top!r}", "top")
    if top > MAX_TOP:
        raise ParameterError(f"{{top}} must be at most {MAX_TOP} (the state holds units x top entries), got {top}", "top")
    if by not in BY:
        raise ParameterError(f"{{by}} must be one of {', '.join(BY)}, got '{by}'", "by")
    if batch_size < 1 or shard_size < 1:
        raise ParameterError("{batch_size} and {shard_size} must be at least 1", "batch_size", "shard_size")
    if not layers:
        raise ParameterError("choose at least one {layers} (run 'onnxprobe layers MODEL' to list them)", "layers")


def make_spec(model, layers, top: int, by: str, batch_size: int, shard_size: int, threads: int | None) -> JobSpec:
    check_settings(layers, top, by, batch_size, shard_size)
    names = tuple(dict.fromkeys(model.layer(name).name for name in layers))
    return JobSpec(*model_fields(model), names, int(top), by, int(batch_size), int(shard_size), model.device, threads,
                   budget_for_workers(model))


def state_is_current(out_dir: Path, dataset: Dataset) -> bool:
    """Whether the saved job in `out_dir` was made from files of the same sizes and modification
    times as `dataset`'s now."""
    try:
        saved = json.loads((Path(out_dir) / STATE_DIR / "job.json").read_text())
        return saved["stamps"] == dataset.stamps(int(saved["shard_size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def dataset_items_file(out_dir: Path, dataset: Dataset) -> None:
    """The index -> source table, so that records can be read without re-listing the data."""
    atomic_write_json(out_dir / STATE_DIR / "items.json",
                      {"kind": dataset.kind, "video": dataset.video, "every": dataset.every,
                       "sources": [item.source for item in dataset.items]})
