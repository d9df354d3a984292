"""Top-k dataset patches: for every unit of chosen layers, the k dataset images (and the patch
under the unit's receptive field) that excite it most, found in one streaming, mergeable pass.

Library API (what `onnxprobe maxact` and the atlas call)::

    from onnxprobe.maxact import run_maxact, load_result
    result = run_maxact("model.onnx", "images/", ["relu3"], top=9, by="max", out_dir="out",
                        scheduler=None, crops=True, deconv=True)
    rec = result.unit("relu3", 7)          # -> UnitRecord
    rec.patches, rec.deconv, rec.backprop  # montage PNG paths (None when not written)
    rec.mean, rec.max, rec.mean_max, rec.fire_rate   # over the dataset (fire: spatial max > 0)
    rec.hits                               # [{rank, index, image, score, location, box[, frame]}]
    load_result("out")                     # the same MaxactResult for an earlier run

- `dataset`: an image folder (recursive), a text file listing images, or a video (`every`-th frame).
  Unreadable files are skipped and listed in `result.skipped`.
- `by="max"` ranks images by the unit's spatial maximum, `"mean"` by its spatial mean; either
  way the location of the maximum is kept and the crop is centred there.
- The job is cut into shards of `shard_size` images; finished shards are stored under
  `out_dir/.maxact/` and skipped when the same job is run again (resume). `scheduler="tcp://..."`
  runs the shards on a Dask cluster; the result is bit-identical to a local run.
- `crops`: patch montages; `deconv`: also deconv and backprop montages (needs a gradient path);
  `units`: of these units only (e.g. the atlas's `units`), the scan and records cover every unit.
- `progress(total, label)`: a factory of objects with `update(n)` and `close()` (e.g.
  `cli.common.Progress`), called for the scan (images) and the crops (units); `on_shard(result)`
  is called after each stored shard.
"""

from __future__ import annotations

import time

from onnxprobe.maxact.records import MaxactResult, UnitRecord, load_result

__all__ = ["run_maxact", "load_result", "MaxactResult", "UnitRecord"]


def run_maxact(model, dataset, layers, top: int = 9, by: str = "max", out_dir="maxact-out", scheduler: str | None = None,
               crops: bool = True, deconv: bool = True, *, batch_size: int = 32, shard_size: int = 256, every: int = 1,
               device: str = "auto", threads: int | None = None, preprocess: dict | None = None,
               input_shape=None, fresh: bool = False, ship_data: bool = False, ship_model: bool | None = None,
               progress=None, on_shard=None, exclude=None, units=None) -> MaxactResult:
    """Run (or resume) the top-k job and write its records and images into `out_dir`. Files under
    `exclude` (default: `out_dir`) are not data, even inside a dataset folder. `units`: draw the
    montages of these units of each layer only (default all; the records hold every unit)."""
    from onnxprobe.distributed import threads_for_workers
    from onnxprobe.fsutil import checkpoint, make_output_folder, output_lock
    from onnxprobe.maxact.datasets import open_dataset
    from onnxprobe.maxact.job import StateStore, check_settings, dataset_items_file, make_spec, run_shards_locally
    from onnxprobe.maxact.records import drawn_units, write_records
    from onnxprobe.model import ProbeModel

    started = time.monotonic()
    check_settings(layers, top, by, batch_size, shard_size)
    if scheduler:
        from onnxprobe.distributed import check_scheduler_address

        check_scheduler_address(scheduler)
    if not isinstance(model, ProbeModel):
        model = ProbeModel.load(model, input_shape=input_shape, device=device, preprocess=preprocess, threads=threads)
    data = open_dataset(dataset, every=every, exclude=out_dir if exclude is None else exclude)
    spec = make_spec(model, layers, top, by, batch_size, shard_size,
                     threads_for_workers(threads) if scheduler else threads)
    out_dir = make_output_folder(out_dir)
    with output_lock(out_dir):
        shards = data.shards(shard_size)
        store = StateStore(out_dir, spec.key(data.fingerprint()), spec, len(shards), fresh=fresh,
                           stamps=data.stamps(shard_size))
        dataset_items_file(out_dir, data)
        todo = [s for s in shards if not store.done(s.id)]
        bar = progress(len(data), "scan ") if progress else None
        if bar is not None:
            bar.update(sum(len(s.items) for s in shards if store.done(s.id)))
        try:
            if scheduler:
                from onnxprobe.maxact.cluster import run_shards_on_cluster

                run_shards_on_cluster(scheduler, spec, todo, store, bar, on_shard, ship_model, ship_data)
            else:
                run_shards_locally(spec, todo, store, bar, on_shard)
        finally:
            store.checkpoint()
            if bar is not None:
                bar.close()
        if store.states is None:  # every file was unreadable: empty states, but still a record
            from onnxprobe.maxact.topk import LayerState

            store.states = {n: LayerState.empty(model.layer(n).units, top, len(model.layer(n).spatial_axes), by) for n in spec.layers}
        summary = {"model": str(model.path), "dataset": str(dataset), "top": top, "by": by,
                   "scheduler": scheduler, "seconds_scan": round(time.monotonic() - started, 3), "notes": store.notes}
        drawn = sum(len(drawn_units(s.units, units)) for s in store.states.values())
        bar = progress(drawn, "crops ") if progress and crops else None
        write_records(out_dir, model, data, store.states, store.skipped, crops, deconv, summary, bar, units)
        checkpoint()  # the finished job's records are a result of their own (the atlas reads them next)
        if bar is not None:
            bar.close()
        return MaxactResult(out_dir)
