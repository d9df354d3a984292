"""Running the shards of a top-k job on an existing Dask distributed cluster.

Each task is `process_shard(spec, shard)`: the worker process loads the model once (a cache keyed
by the model's hash, see `onnxprobe.distributed.ModelCache`) and keeps its ONNX Runtime sessions
between tasks. Workers reach the model by its path when they see the same file (same hash);
otherwise its bytes are scattered to every worker once. Images are read by path (a shared file
system) unless `ship_data` puts each shard's file bytes into its task. Results are stored as they
arrive; a worker that dies is replaced by Dask and its shards run again elsewhere, so nothing is
lost and nothing is counted twice (the driver keeps exactly one result per shard).
"""

from __future__ import annotations

from collections.abc import Callable

from onnxprobe.distributed import cluster_client, run_tasks, share_model
from onnxprobe.maxact.datasets import Shard, with_payload
from onnxprobe.maxact.job import JobSpec, ShardResult, StateStore, process_shard


def run_shards_on_cluster(address: str, spec: JobSpec, shards: list[Shard], store: StateStore, progress=None,
                          on_shard: Callable[[ShardResult], None] | None = None, ship_model: bool | None = None,
                          ship_data: bool = False) -> None:
    """Submit every shard, store results as they complete. `ship_model=None`: ship the model's
    bytes only if some worker cannot see the file."""
    sizes = {shard.id: len(shard.items) for shard in shards}

    def stored(result: ShardResult) -> None:
        store.add(result)
        if progress is not None:
            progress.update(sizes[result.shard_id])
        if on_shard is not None:
            on_shard(result)

    with cluster_client(address) as client:
        model_ref = share_model(client, spec, ship_model)
        calls = [(shard.id, (spec, with_payload(shard) if ship_data else shard, model_ref)) for shard in shards]
        run_tasks(client, process_shard, calls, "maxact", stored)
