"""`build_atlas`: top-k patches (maxact), optimized images (optimize), then the manifest and site."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from onnxprobe.atlas.job import STATE_DIR, UNITS_DIR, AtlasSpec, AtlasStore, chunks, make_spec, remember_model, \
    run_locally, run_on_cluster
from onnxprobe.atlas.photos import LAYER_UNIT, PhotoPictures, draw_pictures, photo_store
from onnxprobe.atlas.site import DATA_KINDS, MANIFEST, PHOTO_DIR, PHOTO_PICTURES, STAT_KEYS, AtlasLayer, unit_entry, \
    write_manifest, write_site
from onnxprobe.objectives import by_kind, differentiable_layer
from onnxprobe.errors import ParameterError, UsageError
from onnxprobe.fsutil import atomic_write_json, inside, make_output_folder, output_lock
from onnxprobe.optimize.render import RenderSettings

MAXACT_DIR = "maxact"
OWNED = (STATE_DIR, UNITS_DIR, PHOTO_DIR, "layers", MAXACT_DIR, "index.html", MANIFEST)  # what `fresh` may delete


@dataclass
class AtlasResult:
    out_dir: Path
    manifest: Path
    layers: list[str]
    units_total: int  # units in the atlas now
    units_rendered: int  # of which this run rendered
    seconds_render: float
    pages: int
    notes: list[str] = field(default_factory=list)  # e.g. the top-k patches were redone for changed images
    nonfinite: list[str] = field(default_factory=list)  # "layer:unit" whose numbers hold NaN or infinities
    photo_pictures_drawn: int = 0  # layers and units this run drew pictures from photos of

    @property
    def units_per_second(self) -> float:
        return self.units_rendered / self.seconds_render if self.seconds_render > 0 else 0.0


def choose_layers(model, names: list[str] | None, all_layers: bool = False) -> list[str]:
    """Layer names as the model spells them; `all_layers`: every layer with a gradient path."""
    if all_layers:
        chosen = [layer.name for layer in model.layers if layer.differentiable is not False]
    else:
        if not names:
            raise ParameterError("choose at least one {layers}, or {all_layers} (run 'onnxprobe layers MODEL' to list "
                                 "them)", "layers", "all_layers")
        chosen = [differentiable_layer(model, name).name for name in names]
    if not chosen:
        raise UsageError("the model has no layer with a gradient path to its input")
    return list(dict.fromkeys(chosen))


def build_atlas(model, layers: list[str] | None, out_dir, data=None, *, all_layers: bool = False,
                settings: RenderSettings | None = None, units: list[int] | None = None, top: int = 9, scheduler=None,
                device: str = "auto", threads: int | None = None, fresh: bool = False, ship_model: bool | None = None,
                progress=None, position=None, photo_pictures=False) -> AtlasResult:
    """Build (or resume, or extend) the atlas in `out_dir`; see the package docstring. `settings`
    as resolved by the caller (`RenderSettings.resolve(preset, steps, param, restarts, seed,
    batch)`; None: the defaults). `position`: where each unit is optimized, as
    `render_units` reads it (none: the centre; "mean": the channel). `photo_pictures`: True (the
    model's sample photos) or photo paths: each unit accentuated on each photo, each layer's
    caricature and inversion of it (atlas/photos.py; drawn in this process, also with a
    scheduler); an atlas that has them keeps showing them when a later run does not ask."""
    from onnxprobe.distributed import threads_for_workers
    from onnxprobe.model import ProbeModel

    settings = RenderSettings.resolve() if settings is None else settings
    if scheduler:
        from onnxprobe.distributed import check_scheduler_address

        check_scheduler_address(scheduler)
    if not isinstance(model, ProbeModel):
        model = ProbeModel.load(model, device=device, threads=threads)
    names = choose_layers(model, layers, all_layers)
    for name in names:  # a position that does not fit a layer is refused before any work
        by_kind(model, "neuron", name, 0, position, pre_activation=True)
    if scheduler:
        spec = make_spec(model, settings, device, threads_for_workers(threads), position)
    else:
        spec = make_spec(model, settings, model.device, model.threads, position)
        remember_model(spec, model)
    wanted = {name: _units_of(model.layer(name).units, units) for name in names}
    pictures = PhotoPictures.resolve(model.path, photo_pictures, settings) if photo_pictures else None
    if not any(wanted.values()):
        raise ParameterError(f"{{units}} selects no unit of the chosen layer(s): they have "
                             f"{', '.join(str(model.layer(n).units) for n in names)} units", "units")
    root = make_output_folder(Path(out_dir)).resolve()
    with output_lock(root):  # a second run on the same folder is refused while this one runs
        _prepare(root, fresh)
        state = _load_state(root, spec)
        notes: list[str] = []
        if data is not None:  # first, so that a bad dataset changes nothing in DIR
            maxact_dir = _run_maxact(root, model, data, wanted, top, scheduler, threads, progress, notes)
            state["maxact"].update({name: maxact_dir for name in names})
            state["dataset"] = str(data)
        state["layers"] = list(dict.fromkeys(state["layers"] + names))
        if pictures is not None:
            state[PHOTO_PICTURES] = pictures.to_json()
        _save_state(root, state)

        store = AtlasStore(root, spec.key())
        todo = {name: store.pending(name, wanted[name]) for name in names}
        tasks = [task for name in names for task in chunks(spec, name, todo[name])]
        count = sum(len(v) for v in todo.values())
        bar = progress(count, "units ") if progress and count else None
        started = time.perf_counter()
        try:
            on_unit = (lambda record: bar.update(1)) if bar is not None else (lambda record: None)
            if scheduler:
                run_on_cluster(scheduler, spec, tasks, store, on_unit, ship_model)
            else:
                run_locally(spec, tasks, store, on_unit)
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        photos = None
        if state.get(PHOTO_PICTURES):
            photos = photo_store(root, spec.key(), {k: v for k, v in state[PHOTO_PICTURES].items() if k != "paths"})
        drawn = draw_pictures(model, pictures, photos, wanted, position, progress) if pictures is not None else 0
        entries = _collect(root, model, state, store, photos)
        info = {"name": Path(model.path).name, "path": str(model.path), "sha256": spec.model_hash}
        shown = {"preset": settings.preset.name, "steps": settings.preset.steps, "restarts": settings.restarts,
                 "seed": settings.seed, "param": settings.preset.param, "objective": _objective_words(position)}
        write_manifest(root, info, shown, entries, state.get("dataset"), state.get(PHOTO_PICTURES))
        pages = write_site(root, info["name"], entries, shown, state.get("dataset"))
        return AtlasResult(root, root / MANIFEST, [e.name for e in entries], sum(len(e.units) for e in entries), count,
                           seconds, pages, notes, _nonfinite(entries), drawn)


def _nonfinite(entries: list[AtlasLayer]) -> list[str]:
    """The units whose optimized activations are NaN or infinite (a model that yields NaN; the
    manifest holds null for them). The dataset's statistics are left out: without a usable image
    they are null by rights."""
    def finite(value) -> bool:
        if isinstance(value, (list, tuple)):
            return all(finite(v) for v in value)
        return isinstance(value, (int, float)) and math.isfinite(value)  # null in a record: not finite

    keys = ("best_activation", "initial_activation", "restart_best_activations")
    return [f"{entry.name}:{unit}" for entry in entries for unit, unit_entry_ in sorted(entry.units.items())
            if not all(finite(unit_entry_["stats"].get(key)) for key in keys)]


def _objective_words(position) -> str:
    """What the site says a unit's image maximises."""
    if position is None or position == "centre":
        return "neuron (centre)"
    return "channel (mean over positions)" if position == "mean" else f"neuron (at {','.join(map(str, position))})"


def _units_of(count: int, units: list[int] | None) -> list[int]:
    return list(range(count)) if units is None else sorted({u for u in units if 0 <= u < count})


def _prepare(root: Path, fresh: bool) -> None:
    if fresh:
        for name in OWNED:
            path = inside(root, name)
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def _state_path(root: Path) -> Path:
    return inside(root, STATE_DIR, "job.json")


def _load_state(root: Path, spec: AtlasSpec) -> dict:
    path = _state_path(root)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"key": spec.key(), "layers": [], "maxact": {}, "dataset": None}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("layers"), list) or not isinstance(state.get("maxact"), dict):
        raise ParameterError(f"{path} is not an atlas state file; use another {{out_dir}} or add {{fresh}}", "out_dir", "fresh")
    if state.get("key") != spec.key():
        raise ParameterError(f"{root} holds an atlas made with other settings (model, preprocessing, preset, steps, "
                             "restarts or seed); use another {out_dir} or add {fresh} to start over", "out_dir", "fresh")
    return state


def _save_state(root: Path, state: dict) -> None:
    atomic_write_json(_state_path(root), state)


def _run_maxact(root: Path, model, data, wanted: dict[str, list[int]], top: int, scheduler, threads, progress,
                notes: list[str]) -> str:
    """Top-k patches of the chosen layers in `maxact/<job>/` (run once; maxact resumes by shard),
    with the montages of the `wanted` units (layer -> units) and of those drawn by earlier runs."""
    from onnxprobe.maxact import load_result, run_maxact
    from onnxprobe.maxact.datasets import open_dataset
    from onnxprobe.maxact.job import state_is_current
    from onnxprobe.maxact.records import SUMMARY

    names = list(wanted)
    data_path = Path(data)
    ident = json.dumps([sorted(names), str(data_path.resolve()) if data_path.exists() else str(data), top])
    relative = f"{MAXACT_DIR}/{hashlib.sha1(ident.encode()).hexdigest()[:12]}"
    folder = inside(root, relative)
    drawn: set[int] = set()
    if (folder / SUMMARY).is_file():  # written last: the job finished; reused while the images are the same
        try:
            result = load_result(folder)
            if all(name in result.layers for name in names):
                records = [rec for name in names for rec in result.units(name)]
                drawn = {rec.unit for rec in records if rec.patches is not None}
                missing = [rec for rec in records if rec.unit in wanted[rec.layer] and rec.hits and rec.patches is None]
                if not missing and state_is_current(folder, open_dataset(data, exclude=root)):
                    return relative
        except (UsageError, OSError, KeyError):
            drawn = set()
    units = sorted(drawn.union(*wanted.values()))  # redrawn with the records, which are rewritten
    result = run_maxact(model, data, names, top=top, out_dir=folder, scheduler=scheduler, crops=True, deconv=True,
                        threads=threads, progress=progress, exclude=root, units=units)
    notes.extend(f"top-k patches: {note}" for note in result.summary.get("notes", []) if "changed since" in note)
    return relative


def _collect(root: Path, model, state: dict, store: AtlasStore, photos=None) -> list[AtlasLayer]:
    """Every finished unit of every layer this atlas holds, with its dataset numbers and its
    pictures from photos (`photos`: their store)."""
    from onnxprobe.maxact import load_result

    results = {}
    entries = []
    for name in state["layers"]:
        try:
            layer = model.layer(name)
        except UsageError:
            continue
        rf = layer.receptive_field.to_json() if layer.receptive_field else None
        entry = AtlasLayer(name, layer.op, list(layer.shape), layer.units, rf, module_path=layer.module_path)
        own = photos.record(name, LAYER_UNIT) if photos is not None else None
        entry.photo_pictures = own[PHOTO_PICTURES] if own else []
        data = None
        relative = state["maxact"].get(name)
        if relative:
            if relative not in results:
                try:
                    results[relative] = load_result(inside(root, relative))
                except Exception:  # noqa: BLE001 - a missing or broken maxact folder just means no patches
                    results[relative] = None
            data = results[relative]
        for unit in range(layer.units):
            record = store.record(name, unit)
            if record is None:
                continue
            extra = None
            if data is not None and name in data.layers:
                rec = data.unit(name, unit)
                paths = {key: _relative(root, getattr(rec, field)) for key, field, _ in DATA_KINDS}
                extra = (paths, {key: getattr(rec, key) for key in STAT_KEYS})
                entry.hits[unit] = list(rec.hits)
            entry.units[unit] = unit_entry(record, extra, photos.record(name, unit) if photos is not None else None)
        entries.append(entry)
    return entries


def _relative(root: Path, path) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return Path(path).resolve().relative_to(root).as_posix()
