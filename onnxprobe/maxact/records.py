"""Output of the top-k job: one JSON record per layer, per-unit montages, and `MaxactResult`
(the reader the atlas uses). Layout of DIR:

    maxact.json                      summary: model, dataset, layers -> record file, skipped files
    <safe layer name>.json           per unit: statistics, hits (image, score, location, box), montages
    <safe layer name>/unit_00007_patches.png | _deconv.png | _backprop.png
    .maxact/                         resumable job state (see job.py)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxprobe.autodiff import BackMode
from onnxprobe.errors import InputError, ProbeError
from onnxprobe.fsutil import atomic_write_json, inside, make_dirs, safe_name
from onnxprobe.objectives import is_silent, neuron, silence, stack
from onnxprobe.maxact.crops import backmap_patch, crop_box, crop_padded, unit_montage
from onnxprobe.maxact.datasets import Dataset, read_item
from onnxprobe.maxact.topk import LayerState
from onnxprobe.render.compose import no_signal
from onnxprobe.render.images import write_png

SUMMARY = "maxact.json"
UNITS_PER_CHUNK = 64  # images of this many units are held in memory at once while cropping
GRADIENT_MODES = tuple((mode.file_word, mode.value) for mode in (BackMode.DECONV, BackMode.GRADIENT))  # (files, mode)


def layer_paths(out_dir: Path, layer: str) -> tuple[Path, Path]:
    """(record file, image folder) of a layer, both inside out_dir whatever the layer is called."""
    stem = safe_name(layer)
    return inside(out_dir, stem + ".json"), inside(out_dir, stem)


def hits_of(state: LayerState, rf, image_hw) -> list[list[dict]]:
    out = []
    filled = state.filled()
    for unit in range(state.units):
        hits = []
        for rank in range(state.k):
            if not filled[unit, rank]:
                break
            location = [int(v) for v in state.location[unit, rank]]
            hits.append({"rank": rank, "index": int(state.index[unit, rank]), "score": float(state.score[unit, rank]),
                         "location": location, "box": list(crop_box(rf, location, image_hw))})
        out.append(hits)
    return out


def drawn_units(count: int, units: Iterable[int] | None) -> list[int]:
    """The units of a `count`-unit layer whose montages are drawn: `units` in range (None: all)."""
    return list(range(count)) if units is None else sorted({int(u) for u in units if 0 <= u < count})


def write_layer_images(model, layer, hits: list[list[dict]], k: int, dataset: Dataset, out_dir: Path, deconv: bool,
                       notes: list[str], progress=None, units: Iterable[int] | None = None) -> list[dict]:
    """Patch (and deconv / backprop) montages of `units` (None: every unit); returns the per-unit
    file names (empty for the units not drawn)."""
    _, image_dir = layer_paths(out_dir, layer.name)
    make_dirs(image_dir)
    modes = _gradient_modes(layer, notes) if deconv else {}
    files: list[dict] = [{} for _ in hits]
    drawn = drawn_units(len(hits), units)
    for start in range(0, len(drawn), UNITS_PER_CHUNK):
        chunk = drawn[start:start + UNITS_PER_CHUNK]
        needed = sorted({hit["index"] for u in chunk for hit in hits[u]})
        tensors, displays = {}, {}
        for index in needed:
            image = read_item(dataset.items[index], dataset.video)
            if image is not None:
                tensors[index] = model.preprocess(image)[0]
                displays[index] = model.spec.to_display(tensors[index])
        rows = [(u, hit) for u in chunk for hit in hits[u] if hit["index"] in tensors]
        maps = {}
        for name, mode in list(modes.items()):
            try:
                maps[name] = _gradient_maps(model, layer, mode, rows, tensors)
            except (ImportError, ProbeError, NotImplementedError) as exc:
                notes.append(f"{layer.name}: {name} maps skipped ({' '.join(str(exc).split())[:200]})")
                del modes[name]
        by_unit: dict[int, list[int]] = {}
        for row, (unit, _) in enumerate(rows):
            by_unit.setdefault(unit, []).append(row)
        for unit, row_ids in by_unit.items():
            patches = [crop_padded(displays[rows[r][1]["index"]], tuple(rows[r][1]["box"]))
                       for r in row_ids]
            files[unit]["patches"] = _write(image_dir, unit, "patches", unit_montage(patches, k))
            for name, grads in maps.items():
                tiles = [backmap_patch(grads[r], model.spec.layout, tuple(rows[r][1]["box"])) for r in row_ids]
                silent = _silent_maps(model, layer, unit, [rows[r][1] for r in row_ids], [grads[r] for r in row_ids], name)
                if silent is not None:  # drawn and recorded as every command does
                    tiles = [no_signal(*tile.shape[:2]) for tile in tiles]
                    files[unit].setdefault("no_signal", {})[name] = silent
                files[unit][name] = _write(image_dir, unit, name, unit_montage(tiles, k))
        if progress is not None:
            progress.update(len(chunk))
    return files


def _write(image_dir: Path, unit: int, kind: str, image: np.ndarray) -> str:
    path = image_dir / f"unit_{unit:05d}_{kind}.png"
    write_png(path, image)
    return f"{image_dir.name}/{path.name}"


def _gradient_modes(layer, notes: list[str]) -> dict[str, str]:
    """{file word: back mode} of the maps drawn for `layer` (none without a gradient path)."""
    if layer.differentiable is False:
        notes.append(f"{layer.name}: no gradient path to the input, deconv/backprop maps skipped")
        return {}
    return dict(GRADIENT_MODES)


def _gradient_maps(model, layer, mode: str, rows, tensors, batch_size: int = 16) -> list[np.ndarray]:
    """Input gradient of each row's unit at its location, seeded with the unit's activation.

    The gradient is linear in the seed, so one run with the row's neuron as its objective gives
    both the activation (a graph output: the objective's value) and the gradient, which is then
    scaled by that activation."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        x = np.stack([tensors[hit["index"]] for _, hit in chunk])
        objective = stack([neuron(model, layer, unit, hit["location"]) for unit, hit in chunk])
        result = model.gradient(x, objective, mode=mode)
        values = result.values().astype(np.float32)
        grads = result.input * values.reshape((-1,) + (1,) * (result.input.ndim - 1))
        out.extend(grads)
    return out


def _silent_maps(model, layer, unit: int, hits: list[dict], grads: list[np.ndarray], name: str) -> str | None:
    """objectives.silence's line when every one of a unit's maps holds no signal, else None."""
    if not grads or any(is_silent(g) is None for g in grads):
        return None
    return silence(model, neuron(model, layer, unit, hits[0]["location"]), np.stack(grads), f"the {name} maps of its top hits")


def write_records(out_dir: Path, model, dataset: Dataset, states: dict[str, LayerState], skipped: list,
                  crops: bool, deconv: bool, summary_extra: dict, progress=None, units: Iterable[int] | None = None) -> Path:
    """Every unit's statistics and hits; the montages of `units` only (None: all) when `crops`."""
    notes: list[str] = []
    layers_summary = {}
    image_hw = tuple(model.spec.input_size)
    for name, state in states.items():
        layer = model.layer(name)
        record_path, _ = layer_paths(out_dir, name)
        hits = hits_of(state, layer.receptive_field, image_hw)
        for unit_hits in hits:
            for hit in unit_hits:
                item = dataset.items[hit["index"]]
                hit["image"] = item.source
                if item.frame is not None:
                    hit["frame"] = item.frame
        files = write_layer_images(model, layer, hits, state.k, dataset, out_dir, deconv, notes, progress, units) \
            if crops else [{} for _ in hits]
        records = []
        for unit in range(state.units):
            records.append({
                "unit": unit,
                "mean": _num(state.mean_activation()[unit]), "max": _num(state.max[unit]),
                "mean_max": _num(state.mean_max()[unit]), "fire_rate": _num(state.fire_rate()[unit]),
                "hits": hits[unit], "images": files[unit],
            })
        rf = layer.receptive_field
        atomic_write_json(record_path, {
            "layer": name, "shape": list(layer.shape), "units": state.units, "top": state.k, "by": state.by,
            "images_seen": state.count, "receptive_field": rf.to_json() if rf else None,
            "input_size": list(image_hw), "box_format": "[y0, x0, y1, x1] input pixels, half-open, unclipped",
            "unit_records": records,
        })
        layers_summary[name] = record_path.name
    summary_path = inside(out_dir, SUMMARY)
    notes = list(summary_extra.get("notes", [])) + notes
    atomic_write_json(summary_path, {
        **summary_extra, "layers": layers_summary,
        "images": len(dataset), "images_used": next(iter(states.values())).count if states else 0,
        "skipped": [{"index": i, "source": s, "reason": r} for i, s, r in skipped], "notes": notes,
    })
    return summary_path


def _num(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


# ---- reading results back ---------------------------------------------------------------------

@dataclass(frozen=True)
class UnitRecord:
    layer: str
    unit: int
    mean: float | None  # mean over images of the unit's spatial mean
    max: float | None  # max over images and positions
    mean_max: float | None  # mean over images of the unit's spatial max
    fire_rate: float | None  # fraction of images whose spatial max is > 0
    hits: tuple[dict, ...]  # rank, index, image, score, location, box (+ frame)
    patches: Path | None
    deconv: Path | None  # the back maps, in GRADIENT_MODES' order, named by BackMode.file_word
    backprop: Path | None


class MaxactResult:
    """The records of a finished job in `out_dir` (see `load_result`)."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        try:
            self.summary = json.loads(inside(self.out_dir, SUMMARY).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"no maxact result in {self.out_dir}: {exc}") from None
        self._records: dict[str, dict] = {}

    @property
    def layers(self) -> list[str]:
        return list(self.summary["layers"])

    @property
    def skipped(self) -> list[dict]:
        return self.summary["skipped"]

    def record(self, layer: str) -> dict:
        if layer not in self.summary["layers"]:
            from onnxprobe.errors import UsageError

            raise UsageError(f"layer '{layer}' is not in this maxact result (it has {', '.join(self.layers)})")
        if layer not in self._records:
            self._records[layer] = json.loads(inside(self.out_dir, self.summary["layers"][layer]).read_text())
        return self._records[layer]

    def unit(self, layer: str, unit: int) -> UnitRecord:
        data = self.record(layer)["unit_records"][unit]
        path = lambda kind: inside(self.out_dir, data["images"][kind]) if kind in data["images"] else None  # noqa: E731
        return UnitRecord(layer, unit, data["mean"], data["max"], data["mean_max"], data["fire_rate"],
                          tuple(data["hits"]), path("patches"), *(path(word) for word, _ in GRADIENT_MODES))

    def units(self, layer: str) -> list[UnitRecord]:
        return [self.unit(layer, u) for u in range(self.record(layer)["units"])]


def load_result(out_dir: str | Path) -> MaxactResult:
    return MaxactResult(out_dir)
