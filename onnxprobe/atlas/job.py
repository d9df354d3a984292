"""The atlas job: settings, pure per-chunk rendering tasks, and the per-unit files they become.

A task is `render_chunk(spec, layer, units, shipped)`: a pure function of the model (path or
shipped files, identified by its hash), the layer, a chunk of units and the settings. It returns encoded
PNGs and the units' records; only the driver writes them (atomically), so a task that runs twice
(a worker died, Dask resubmitted it) changes nothing. A unit is finished when its record file
exists: it is written last, after the unit's images, and holds the settings key it was made with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from onnxprobe.distributed import ModelCache, ShippedModel, budget_for_workers, cluster_client, model_fields, run_tasks, \
    share_model
from onnxprobe.fsutil import inside
from onnxprobe.optimize.render import RenderSettings
from onnxprobe.optimize.store import UnitStore, job_key
from onnxprobe.position import Position

ATLAS_FORMAT = 1
STATE_DIR = ".atlas"
UNITS_DIR = "units"


@dataclass(frozen=True)
class AtlasSpec:
    """What a worker needs to render units (small and picklable)."""

    model_path: str
    model_hash: str
    input_shape: tuple[int, ...]
    preprocess: tuple[tuple[str, object], ...]
    settings: RenderSettings
    device: str = "auto"
    threads: int | None = None
    position: Position = None  # where a unit is read (onnxprobe.position; none: the centre)
    memory_budget: int | None = None  # bytes (distributed.budget_for_workers); None: each worker's default

    def key(self) -> str:
        """What must match for a finished unit to be kept: not the batch (rows do not depend on their
        batch), device or threads. (No position: the key atlases had before positions were taken.)"""
        where = [] if self.position is None else [{"position": self.position}]
        return job_key([ATLAS_FORMAT, self.model_hash, self.input_shape, self.preprocess, self.settings.identity(),
                        *where])

    @property
    def units_per_chunk(self) -> int:
        """Units rendered together: a chunk's (unit, restart) rows fill one batch."""
        return self.settings.units_per_chunk


def make_spec(model, settings: RenderSettings, device: str = "auto", threads: int | None = None,
              position: Position = None) -> AtlasSpec:
    return AtlasSpec(*model_fields(model), settings, device, threads, position, budget_for_workers(model))


# workers: one model per process
_MODELS = ModelCache()


def remember_model(spec: AtlasSpec, model) -> None:
    """Let this process's tasks use an already loaded model."""
    _MODELS.remember(spec, model)


def render_chunk(spec: AtlasSpec, layer: str, units: tuple[int, ...], shipped: ShippedModel | None = None,
                 on_step: Callable[[int], None] | None = None) -> list[dict]:
    """Render `units` of `layer`: per unit its record and encoded PNGs (best restart, each restart,
    the restarts' montage). Nothing is written here."""
    from onnxprobe.optimize import render_units
    from onnxprobe.render.images import encode_png, montage

    model = _MODELS.get(spec, shipped)
    results = render_units(model, layer, list(units), spec.settings, position=spec.position, on_step=on_step)
    out = []
    for result in results:
        record = result.to_json()
        record.pop("seconds", None)  # files stay byte-identical between runs
        record["hyperparameters"] = {k: v for k, v in record["hyperparameters"].items() if k != "batch"}
        best = max(range(result.restarts), key=lambda r: result.best_activation[r])
        record["best_restart"] = best
        images = {"optimized": encode_png(result.images[best]), "montage": encode_png(montage(result.images))}
        images.update({f"r{r:02d}": encode_png(image) for r, image in enumerate(result.images)})
        out.append({"layer": layer, "unit": result.unit, "record": record, "images": images})
    return out


# ---- the driver's side: per-unit files -----------------------------------------------------------

class AtlasStore(UnitStore):
    """The atlas's units in the one per-unit store (optimize.store) under `DIR/units/`; each record's
    `files` holds the paths the site and manifest use, relative to DIR."""

    def __init__(self, root: Path, key: str):
        self.atlas_root = Path(root)
        super().__init__(inside(self.atlas_root, UNITS_DIR), key)

    def write_item(self, item: dict) -> dict:
        layer, unit = item["layer"], item["unit"]
        files: dict = {"restarts": []}
        for name in item["images"]:
            path = self.relative(self.path(layer, unit, f"{name}.png"))
            if name.startswith("r") and name[1:].isdigit():
                files["restarts"].append(path)
            else:
                files[name] = path
        images = {f"{name}.png": data for name, data in item["images"].items()}
        return self.write(layer, unit, images, {"files": files, "optimization": item["record"]})

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.atlas_root.resolve()).as_posix()


def chunks(spec: AtlasSpec, layer: str, units: list[int]) -> list[tuple[str, tuple[int, ...]]]:
    size = spec.units_per_chunk
    return [(layer, tuple(units[i:i + size])) for i in range(0, len(units), size)]


def run_locally(spec: AtlasSpec, tasks: list[tuple[str, tuple[int, ...]]], store: AtlasStore,
                on_unit: Callable[[dict], None]) -> None:
    for layer, units in tasks:
        for item in render_chunk(spec, layer, units):
            on_unit(store.write_item(item))


def run_on_cluster(address, spec: AtlasSpec, tasks: list[tuple[str, tuple[int, ...]]], store: AtlasStore,
                   on_unit: Callable[[dict], None], ship_model: bool | None = None) -> None:
    """Submit every chunk to the Dask scheduler at `address` and write results as they arrive. A
    chunk whose worker dies is run again by Dask; its result is the same, whoever computes it."""

    def written(items: list[dict]) -> None:
        for item in items:
            on_unit(store.write_item(item))

    with cluster_client(address) as client:
        model_ref = share_model(client, spec, ship_model)
        calls = [(n, (spec, layer, units, model_ref)) for n, (layer, units) in enumerate(tasks)]
        run_tasks(client, render_chunk, calls, "atlas", written)
