"""Resume of per-unit work: the one store of `optimize` (DIR/<layer>/) and the atlas (DIR/units/<layer>/).

Layout under the store's root, the same for both:

    <safe layer>/unit_NNNNN_<name>.<ext>   the unit's files (PNG, .npy), each written atomically
    <safe layer>/unit_NNNNN.json           the record, written last: its presence marks the unit finished

A record holds the job key (a hash of the settings that decide the unit's files: `job_key`), the
layer, the unit and the names of the files written with it; a unit whose record is missing,
unreadable, from another job, or whose files are gone is not finished and is redone. Every
finished unit is a checkpoint (`fsutil.checkpoint()`): a run killed afterwards keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from onnxprobe.fsutil import atomic_save_npy, atomic_write_bytes, atomic_write_json, checkpoint, inside, json_text, \
    safe_name


def job_key(settings) -> str:
    """The identity of a job: a short hash of its settings (JSON; dicts in any key order)."""
    text = json.dumps(json.loads(json_text(settings, indent=None)), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class UnitStore:
    """Finished units of one job under `root` (see the module docstring)."""

    def __init__(self, root: str | Path, key: str):
        self.root = Path(root)
        self.key = key

    def folder(self, layer: str) -> Path:
        return inside(self.root, safe_name(layer))

    @staticmethod
    def stem(unit: int) -> str:
        return f"unit_{int(unit):05d}"

    def path(self, layer: str, unit: int, name: str) -> Path:
        """The unit's file `name` ("restart00.png", "montage.png", ...)."""
        return self.folder(layer) / f"{self.stem(unit)}_{name}"

    def record_path(self, layer: str, unit: int) -> Path:
        return self.folder(layer) / f"{self.stem(unit)}.json"

    def record(self, layer: str, unit: int) -> dict | None:
        """The unit's finished record, or None if it is missing, unreadable, from another job, or
        one of its files is gone."""
        try:
            data = json.loads(self.record_path(layer, unit).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get("job") != self.key or data.get("layer") != layer \
                or data.get("unit") != unit or not isinstance(data.get("stored"), list):
            return None
        folder = self.folder(layer)
        if not all(isinstance(name, str) and (folder / name).is_file() for name in data["stored"]):
            return None
        return data

    def pending(self, layer: str, units: Iterable[int]) -> list[int]:
        """`units` without the finished ones, in order."""
        return [u for u in units if self.record(layer, u) is None]

    def write(self, layer: str, unit: int, files: dict[str, bytes | np.ndarray], record: dict) -> dict:
        """Write the unit's files (bytes as they are, arrays as .npy), then its record (`record`
        plus the job key, layer, unit and the stored file names), then checkpoint."""
        stored = []
        for name, data in files.items():
            path = self.path(layer, unit, name)
            if isinstance(data, np.ndarray):
                atomic_save_npy(path, data)
            else:
                atomic_write_bytes(path, data)
            stored.append(path.name)
        full = {"job": self.key, "layer": layer, "unit": int(unit), **record, "stored": stored}
        atomic_write_json(self.record_path(layer, unit), full)
        checkpoint()  # a finished unit stays finished even if the run is killed now
        return full


def optimize_job(model, layer: str, objective: str, position, settings) -> dict:
    """What decides `optimize`'s files of a unit (its job key is `job_key` of this): the model's
    hash (`distributed.model_hash`: its external data included), the objective and position, the
    layer, the render settings' identity (`RenderSettings.identity`: not the batch) and the
    preprocessing."""
    from onnxprobe.distributed import model_hash

    return {"model_sha256": model_hash(model.path), "objective": objective,
            "position": list(position) if isinstance(position, tuple) else position,
            "layer": layer, **settings.identity(), "preprocess": model.spec.to_json()}


def render_into(store: UnitStore, model, layer: str, units: list[int], settings, job: dict, *,
                objective: str = "neuron", position=None, on_step=None) -> list:
    """`optimize`'s rendering into the store: `units` (the pending ones: `store.pending`) in
    chunks of one batch (`settings`: a RenderSettings), each unit written (`write_result`, with
    `job`, the settings its key was made from) as its chunk ends, so a killed run keeps what it
    finished. A row's images depend only on (seed, layer, unit, restart): the chunking changes
    nothing in them. Returns the UnitResults in order."""
    from onnxprobe.optimize.render import render_units

    results = []
    chunk = settings.units_per_chunk
    for start in range(0, len(units), chunk):
        done = render_units(model, layer, units[start:start + chunk], settings, objective=objective, position=position,
                            on_step=on_step)
        for result in done:
            write_result(store, result, job)
        results.extend(done)
    return results


def write_result(store: UnitStore, result, settings: dict) -> dict:
    """`optimize`'s files of one UnitResult: per restart the image (PNG) and the optimized input
    (.npy), the restarts' montage, and the record saying which file is which."""
    from onnxprobe.render.images import encode_png, montage, upscale

    files: dict[str, bytes | np.ndarray] = {}
    for r, image in enumerate(result.images):
        files[f"restart{r:02d}.png"] = encode_png(image)
        files[f"restart{r:02d}.npy"] = np.asarray(result.inputs[r], np.float32)
    files["montage.png"] = encode_png(montage([upscale(im, 64) for im in result.images]))
    stem = store.stem(result.unit)
    shown = ("contrast-stretched around the mean pixel, as the toolbox showed the paper's images"
             if result.display == "stretched" else "the optimized image as it is")
    about = {"png": f"{stem}_restartRR.png: {shown}",
             "npy": f"{stem}_restartRR.npy: the optimized model input itself (float32, the model's layout, "
                    "no batch axis; the PNG's source)",
             "montage": f"{stem}_montage.png: the PNGs side by side"}
    return store.write(result.layer, result.unit, files, {**result.to_json(), "files": about, "settings": settings})


def read_result(store: UnitStore, layer: str, unit: int):
    """The UnitResult `write_result` stored for a finished unit (its images and optimized inputs
    read back), or None when the unit is not finished in `store`."""
    from onnxprobe.optimize.render import UnitResult
    from onnxprobe.preprocess import read_array, read_image

    record = store.record(layer, unit)
    if record is None:
        return None
    fields = ("objective", "preset", "param", "hyperparameters", "seed", "steps", "display", "initial_activation",
              "best_activation", "final_activation", "seconds")
    result = UnitResult(layer=layer, unit=unit, **{k: record[k] for k in fields if k in record})
    for r in range(int(record["restarts"])):
        result.images.append(read_image(store.path(layer, unit, f"restart{r:02d}.png"))[:, :, ::-1].copy())
        result.inputs.append(read_array(store.path(layer, unit, f"restart{r:02d}.npy")))
    return result
