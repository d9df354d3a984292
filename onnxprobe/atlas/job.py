"""The atlas job: settings, pure per-chunk rendering tasks, and the per-unit files they become.

A task is `render_chunk(spec, layer, units, model_bytes)`: a pure function of the model (path or
bytes, identified by its hash), the layer, a chunk of units and the settings. It returns encoded
PNGs and the units' records; only the driver writes them (atomically), so a task that runs twice
(a worker died, Dask resubmitted it) changes nothing. A unit is finished when its record file
exists: it is written last, after the unit's images, and holds the settings key it was made with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from onnxprobe.distributed import ModelCache, cluster_client, model_fields, run_tasks, share_model
from onnxprobe.errors import ParameterError
from onnxprobe.fsutil import atomic_write_bytes, atomic_write_json, checkpoint, inside, safe_name

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
    preset: str
    steps: int | None
    restarts: int
    seed: int
    param: str | None
    batch: int
    device: str = "auto"
    threads: int | None = None

    def key(self) -> str:
        """What must match for a finished unit to be kept: not the batch (rows do not depend on their
        batch), device or threads."""
        from onnxprobe.optimize import get_preset
        from onnxprobe.optimize.presets import resolve_param

        preset = get_preset(self.preset, self.steps)
        text = json.dumps([ATLAS_FORMAT, self.model_hash, self.input_shape, self.preprocess, preset.to_json(),
                           resolve_param(preset, self.param), self.restarts, self.seed], default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def units_per_chunk(self) -> int:
        """Units rendered together: a chunk's (unit, restart) rows fill one batch."""
        return max(1, self.batch // self.restarts)


def make_spec(model, preset: str, steps: int | None, restarts: int, seed: int, param: str | None, batch: int,
              device: str = "auto", threads: int | None = None) -> AtlasSpec:
    from onnxprobe.optimize import get_preset
    from onnxprobe.optimize.presets import resolve_param

    resolve_param(get_preset(preset, steps), param)  # bad preset / steps / param: one line, before any work
    if restarts < 1:
        raise ParameterError(f"{{restarts}} must be at least 1, got {restarts}", "restarts")
    if batch < 1:
        raise ParameterError(f"{{batch}} must be at least 1, got {batch}", "batch")
    return AtlasSpec(*model_fields(model), preset, steps, int(restarts), int(seed), param, int(batch), device, threads)


# workers: one model per process
_MODELS = ModelCache()


def remember_model(spec: AtlasSpec, model) -> None:
    """Let this process's tasks use an already loaded model."""
    _MODELS.remember(spec, model)


def render_chunk(spec: AtlasSpec, layer: str, units: tuple[int, ...], model_bytes: bytes | None = None,
                 on_step: Callable[[int], None] | None = None) -> list[dict]:
    """Render `units` of `layer`: per unit its record and encoded PNGs (best restart, each restart,
    the restarts' montage). Nothing is written here."""
    from onnxprobe.optimize import render_units
    from onnxprobe.render.images import encode_png, montage

    model = _MODELS.get(spec, model_bytes)
    results = render_units(model, layer, list(units), preset=spec.preset, restarts=spec.restarts, steps=spec.steps,
                           seed=spec.seed, batch=spec.batch, param=spec.param, on_step=on_step)
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

class UnitStore:
    """`DIR/units/<safe layer>/unit_NNNNN_*.png` and `unit_NNNNN.json` (the record, written last)."""

    def __init__(self, root: Path, key: str):
        self.root = Path(root)
        self.key = key

    def folder(self, layer: str) -> Path:
        return inside(self.root, UNITS_DIR, safe_name(layer))

    def record_path(self, layer: str, unit: int) -> Path:
        return self.folder(layer) / f"unit_{unit:05d}.json"

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def record(self, layer: str, unit: int) -> dict | None:
        """The unit's finished record, or None if it is missing, unreadable or from other settings."""
        try:
            data = json.loads(self.record_path(layer, unit).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get("key") != self.key or data.get("layer") != layer:
            return None
        files = data.get("files")
        if not isinstance(files, dict) or not all((self.root / p).is_file() for p in _paths(files)):
            return None
        return data

    def write(self, item: dict) -> dict:
        layer, unit = item["layer"], item["unit"]
        folder = self.folder(layer)
        files: dict = {"restarts": []}
        for name, data in item["images"].items():
            path = folder / f"unit_{unit:05d}_{name}.png"
            atomic_write_bytes(path, data)
            if name.startswith("r") and name[1:].isdigit():
                files["restarts"].append(self.relative(path))
            else:
                files[name] = self.relative(path)
        record = {"key": self.key, "layer": layer, "unit": unit, "files": files, "optimization": item["record"]}
        atomic_write_json(self.record_path(layer, unit), record)
        checkpoint()  # a finished unit stays finished even if the run is killed now
        return record


def _paths(files: dict) -> Iterable[str]:
    for value in files.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (v for v in value if isinstance(v, str))


def chunks(spec: AtlasSpec, layer: str, units: list[int]) -> list[tuple[str, tuple[int, ...]]]:
    size = spec.units_per_chunk
    return [(layer, tuple(units[i:i + size])) for i in range(0, len(units), size)]


def run_locally(spec: AtlasSpec, tasks: list[tuple[str, tuple[int, ...]]], store: UnitStore,
                on_unit: Callable[[dict], None]) -> None:
    for layer, units in tasks:
        for item in render_chunk(spec, layer, units):
            on_unit(store.write(item))


def run_on_cluster(address, spec: AtlasSpec, tasks: list[tuple[str, tuple[int, ...]]], store: UnitStore,
                   on_unit: Callable[[dict], None], ship_model: bool | None = None) -> None:
    """Submit every chunk to the Dask scheduler at `address` and write results as they arrive. A
    chunk whose worker dies is run again by Dask; its result is the same, whoever computes it."""

    def written(items: list[dict]) -> None:
        for item in items:
            on_unit(store.write(item))

    with cluster_client(address) as client:
        model_ref = share_model(client, spec, ship_model)
        calls = [(n, (spec, layer, units, model_ref)) for n, (layer, units) in enumerate(tasks)]
        run_tasks(client, render_chunk, calls, "atlas", written)
