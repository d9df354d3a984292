"""Running the shards of a top-k job on an existing Dask distributed cluster.

Each task is `process_shard(spec, shard)`: the worker process loads the model once (a cache keyed
by the model's hash, see `job.worker_model`) and keeps its ONNX Runtime sessions between tasks.
Workers reach the model by its path when they see the same file (same hash); otherwise its bytes
are scattered to every worker once. Images are read by path (a shared file system) unless
`ship_data` puts each shard's file bytes into its task. Results are stored as they arrive; a
worker that dies is replaced by Dask and its shards run again elsewhere, so nothing is lost and
nothing is counted twice (the driver keeps exactly one result per shard).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from onnxprobe.errors import ProbeError
from onnxprobe.maxact.datasets import Shard, with_payload
from onnxprobe.maxact.job import JobSpec, ShardResult, StateStore, file_hash, process_shard

CONNECT_TIMEOUT = "20s"


def _sees_model(path: str, model_hash: str) -> bool:
    p = Path(path)
    return p.is_file() and file_hash(p) == model_hash


def run_shards_on_cluster(address: str, spec: JobSpec, shards: list[Shard], store: StateStore, progress=None,
                          on_shard: Callable[[ShardResult], None] | None = None, ship_model: bool | None = None,
                          ship_data: bool = False) -> None:
    """Submit every shard, store results as they complete. `ship_model=None`: ship the model's
    bytes only if some worker cannot see the file."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ProbeError("--scheduler needs the 'distributed' package (pip install distributed)") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ProbeError(f"cannot reach the Dask scheduler at {address}: {' '.join(str(exc).split())[:200]}") from None
    with client:
        if not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=60)
        if ship_model is None:
            seen = client.run(_sees_model, spec.model_path, spec.model_hash)
            ship_model = not all(seen.values())
        model_ref = None
        if ship_model:
            model_ref = client.scatter(Path(spec.model_path).read_bytes(), broadcast=True, hash=False)
        sizes = {shard.id: len(shard.items) for shard in shards}
        run_id = uuid.uuid4().hex[:8]
        futures = [client.submit(process_shard, spec, with_payload(shard) if ship_data else shard, model_ref, key=f"maxact-{run_id}-{shard.id:06d}",
                                 pure=False, retries=3) for shard in shards]
        try:
            for future in as_completed(futures, loop=client.loop):
                result = future.result()
                store.add(result)
                future.release()
                if progress is not None:
                    progress.update(sizes[result.shard_id])
                if on_shard is not None:
                    on_shard(result)
        finally:
            client.cancel(futures)

