"""The job on a local Dask cluster (two worker processes) equals the single-process job, also
when a worker is killed in the middle."""

from __future__ import annotations

import json
import os
import signal
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
