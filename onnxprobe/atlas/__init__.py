"""Unit atlas: every unit of chosen layers rendered offline into a static site and a manifest.

Library API (what `onnxprobe atlas` calls)::

    from onnxprobe.atlas import build_atlas
    from onnxprobe.optimize import RenderSettings
    settings = RenderSettings.resolve(preset="lucid", steps=None, restarts=2, seed=0)
    result = build_atlas("model.onnx", ["relu2", "logits"], "atlas/", data="images/", settings=settings,
                         units=None, scheduler=None)
    result.manifest, result.units_total, result.units_rendered, result.units_per_second

Layout of DIR (open DIR/index.html from the file system; no network, no script):

    index.html, layers/<safe layer>.html, units/<safe layer>/unit_NNNNN.html   the site (site.py)
    manifest.json                                  what the viewer reads (viewer/atlas_source.py)
    units/<safe layer>/unit_NNNNN_optimized.png    best restart; _montage.png all restarts; _rNN.png each
    units/<safe layer>/unit_NNNNN.json             the unit's record, written last: "this unit is done"
    photos/<safe layer>/...                        pictures from photos (photo_pictures=True: atlas/photos.py)
    maxact/<job>/                                  top-k patches and statistics (onnxprobe.maxact)
    .atlas/job.json                                settings key, layers, which maxact job holds which layer

Optimized images come from `onnxprobe.optimize.render_units` (objective: the unit at the spatial
centre, or at `position` as onnxprobe.position reads it: "mean" is the channel); each (unit, restart) row draws its randomness from (seed, layer, unit, restart), so an
image does not depend on the batch, the process or the machine that made it. Top-9 patches, their
deconv / backprop maps and the statistics (mean, max, fire rate) come from `onnxprobe.maxact`.

Resumable and atomic: every file is written to a temporary name and renamed; stale temporaries are
removed at start; finished units (a record with the same settings key) are not redone; maxact
resumes by shard. Running again with other layers or units adds them to the same atlas; other
settings are refused unless `fresh=True`. With `scheduler="tcp://..."` chunks of units run as Dask
tasks (pure functions of model, layer, units and settings) and the driver writes their results,
so a task re-run after a lost worker changes nothing.
"""

from onnxprobe.atlas.builder import AtlasResult, build_atlas, choose_layers
from onnxprobe.atlas.job import AtlasSpec, render_chunk
from onnxprobe.atlas.site import MANIFEST

__all__ = ["AtlasResult", "AtlasSpec", "MANIFEST", "build_atlas", "choose_layers", "render_chunk"]
