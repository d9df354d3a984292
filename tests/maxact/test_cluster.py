"""The job on a local Dask cluster (two worker processes) equals the single-process job, also
when a worker is killed in the middle."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from onnxprobe.maxact import run_maxact

import distributed

LAYERS = ["relu1", "relu2", "logits"]
SETTINGS = dict(top=6, shard_size=5, batch_size=4, deconv=False)


def _records(out: Path) -> dict:
    summary = json.loads((out / "maxact.json").read_text())
    return {name: json.loads((out / file).read_text()) for name, file in summary["layers"].items()}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_result(gray_model_path, digits_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=out, **SETTINGS)
    return _records(out)


def test_cluster_equals_single_process(cluster, gray_model_path, digits_dir, local_result, tmp_path):
    arrived = []
    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path, scheduler=cluster.scheduler_address,
               on_shard=lambda r: arrived.append(r.shard_id), **SETTINGS)
    assert sorted(arrived) == list(range(12))
    assert _records(tmp_path) == local_result


def test_shipped_model_and_data_equal_single_process(cluster, gray_model_path, digits_dir, local_result, tmp_path):
    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path, scheduler=cluster.scheduler_address,
               ship_model=True, ship_data=True, **SETTINGS)
    assert _records(tmp_path) == local_result


def test_killed_worker_loses_nothing(cluster, gray_model_path, digits_dir, local_result, tmp_path):
    with distributed.Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
    killed = []

    def kill_one(result):
        if not killed:
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    arrived = []

    def on_shard(result):
        arrived.append(result.shard_id)
        kill_one(result)

    run_maxact(gray_model_path, digits_dir, LAYERS, out_dir=tmp_path, scheduler=cluster.scheduler_address,
               on_shard=on_shard, **SETTINGS)
    assert killed
    assert sorted(arrived) == list(range(12))  # every shard exactly once
    assert _records(tmp_path) == local_result
    with distributed.Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny replaced the killed worker
        assert killed[0] not in client.run(os.getpid).values()


# ---- a worker killed in the middle of a job on the bundled digits model ----------------------------

DIGIT_LAYERS = ["relu2", "logits"]


class BusyWorkerKiller:
    """Kills (SIGKILL) one worker process that is running a task of the job, once `after` results
    have arrived: a worker lost in the middle, with work in flight. `victim_tasks` records what the
    scheduler said it was processing."""

    def __init__(self, client, after: int):
        self.client = client
        self.after = after
        self.seen = 0
        self.killed: int | None = None
        self.victim_tasks: list = []

    def __call__(self, *_):
        self.seen += 1
        if self.killed is not None or self.seen < self.after:
            return
        pids = self.client.run(os.getpid)
        # The scheduler's view: a worker with a task of ours. Polled for a time, not a count of
        # tries: on a loaded machine a worker can sit between tasks for many quick polls (200 polls
        # found none in 2 of 4 runs at load 11).
        deadline = time.monotonic() + 30
        busy = {}
        while not busy and time.monotonic() < deadline:
            busy = {addr: keys for addr, keys in self.client.processing().items() if keys}
            if not busy:
                time.sleep(0.01)
        assert busy, "no worker ran a task of the job for 30 s (had the job already finished?)"
        addr, keys = sorted(busy.items())[0]
        self.victim_tasks = list(keys)
        self.killed = pids[addr]
        os.kill(self.killed, signal.SIGKILL)


def test_a_worker_killed_mid_job_gives_the_local_top_k_exactly(cluster, digits_model_path, digits_dir, tmp_path):
    """The digits CNN over 60 images in 12 shards: one busy worker SIGKILLed after 4 shards; the job
    completes, every shard arrives once, and the records (every unit's top-k: images, scores,
    positions, and the statistics) equal a clean single-process run exactly."""
    settings = dict(SETTINGS, crops=False)
    run_maxact(digits_model_path, digits_dir, DIGIT_LAYERS, out_dir=tmp_path / "local", **settings)
    arrived = []
    with distributed.Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)
        killer = BusyWorkerKiller(client, after=4)
        run_maxact(digits_model_path, digits_dir, DIGIT_LAYERS, out_dir=tmp_path / "cluster",
                   scheduler=cluster.scheduler_address,
                   on_shard=lambda r: (arrived.append(r.shard_id), killer(r)), **settings)
        assert killer.killed is not None and any(str(k).startswith("maxact-") for k in killer.victim_tasks)
        client.wait_for_workers(2, timeout=60)  # the nanny replaced it
        assert killer.killed not in client.run(os.getpid).values()
    assert sorted(arrived) == list(range(12))
    local, clustered = _records(tmp_path / "local"), _records(tmp_path / "cluster")
    assert clustered == local
    assert all(unit["hits"] for layer in local.values() for unit in layer["unit_records"])  # a real top-k


# ---- a model with external data (PyTorch's default exporter writes .onnx + .onnx.data) ----------

def _save_with_external_data(source: Path, folder: Path) -> Path:
    import onnx

    folder.mkdir(parents=True)
    path = folder / "gray.onnx"
    onnx.save_model(onnx.load(str(source)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="gray.onnx.data", size_threshold=0)
    assert (folder / "gray.onnx.data").stat().st_size > 0
    return path


def test_a_model_with_external_data_is_shipped_with_it(gray_model_path, digits_dir, local_result, tmp_path,
                                                        monkeypatch):
    """The worker cannot see the model's folder (it is moved away once the model is shipped) and
    its scratch folder is fresh: what it runs is the shipped .onnx and the .onnx.data beside it."""
    from onnxprobe.maxact import cluster as maxact_cluster

    model_path = _save_with_external_data(gray_model_path, tmp_path / "model")
    real_share = maxact_cluster.share_model

    def share_then_hide(client, spec, ship_model=None):
        shipped = real_share(client, spec, ship_model)
        (tmp_path / "model").rename(tmp_path / "hidden")  # from here on no process sees the original files
        return shipped

    monkeypatch.setattr(maxact_cluster, "share_model", share_then_hide)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))  # the worker's own folder for shipped models
    (tmp_path / "scratch").mkdir()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        run_maxact(model_path, digits_dir, LAYERS, out_dir=tmp_path / "out", scheduler=cluster.scheduler_address,
                   ship_model=True, **SETTINGS)
    assert _records(tmp_path / "out") == local_result  # the same weights as the inline model's
    shipped = [p.name for p in (tmp_path / "scratch" / "onnxprobe-models").rglob("*") if p.is_file()]
    assert sorted(shipped) == ["gray.onnx", "gray.onnx.data"]


def test_new_external_weights_are_another_model(gray_model_path, tmp_path):
    """Beside an unchanged .onnx, other weights in its .onnx.data change the model's hash, and a
    missing .onnx.data means a worker does not see the model."""
    from onnxprobe.distributed import file_hash, model_hash, sees_model

    path = _save_with_external_data(gray_model_path, tmp_path / "model")
    assert model_hash(gray_model_path) == file_hash(gray_model_path)  # inline weights: the file's own hash
    before, onnx_before = model_hash(path), file_hash(path)
    assert sees_model(path, before)
    data = tmp_path / "model" / "gray.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[0] ^= 1
    data.write_bytes(bytes(raw))
    assert file_hash(path) == onnx_before and model_hash(path) != before
    assert not sees_model(path, before)
    data.unlink()
    assert not sees_model(path, before)


def _faults_of_big_arrays() -> int:
    """Minor page faults of making and dropping a 1 MiB array 50 times (runs on a worker; smaller than a
    huge page, so that each fresh mapping faults once per 4 KiB page)."""
    import resource

    import numpy as np

    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(50):
        np.ones(1 << 18, np.float32)
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
                    reason="glibc's allocator only")
def test_a_worker_reuses_freed_arrays():
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_, which makes glibc map every large array
    afresh (a page fault per 4 KiB each time); `worker_allocator`, which a worker's first model load
    calls, lets it reuse them: 50 arrays of 1 MiB fault about once, not 50 times. (A fresh worker:
    the module's have loaded models already.)"""
    from onnxprobe.distributed import worker_allocator

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        assert all(env.get("MALLOC_TRIM_THRESHOLD_") for env in client.run(lambda: dict(os.environ)).values())
        pages = 50 * (1 << 20) // 4096
        assert min(client.run(_faults_of_big_arrays).values()) > pages / 2  # Dask's setting: mapped afresh
        client.run(worker_allocator)
        assert max(client.run(_faults_of_big_arrays).values()) < pages / 10
