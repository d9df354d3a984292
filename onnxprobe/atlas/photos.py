"""The atlas's pictures from photos (`build_atlas(..., photo_pictures=True)`): for each photo
(the model's sample photos, or those given), every unit accentuated on it, and per layer its
caricature and its inversion, each drawn by `onnxprobe.optimize.photo.picture_from_photo`, the
function `optimize --from` calls, with the same preset and seed: an atlas's picture is the one
`optimize --from PHOTO --picture KIND --seed S --steps N` writes.

Layout under DIR (the per-unit store, optimize/store.py, keyed by these settings):

    photos/<safe layer>/unit_NNNNN_accentuate-<photo>.png  the unit accentuated on each photo
    photos/<safe layer>/unit_NNNNN.json                     its record (value, photo value, distance, curve)
    photos/<safe layer>/layer_photo-<photo>.png             the photo as the model sees it
    photos/<safe layer>/layer_caricature-<photo>.png        the layer's caricature of each photo
    photos/<safe layer>/layer_invert-<photo>.png            the photo reconstructed from the layer
    photos/<safe layer>/layer.json                          the layer's record

Each record is written last and holds the settings key, so a killed run resumes there and a run
with other photos, steps, seed or closeness redoes them. Cost: one lucid optimization per (unit,
photo) and two per (layer, photo) at the preset's steps, as `optimize --from` takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from onnxprobe.errors import ParameterError, ProbeError
from onnxprobe.fsutil import inside, safe_name
from onnxprobe.optimize.photo import PHOTO_PRESET, picture_from_photo
from onnxprobe.optimize.presets import Preset, get_preset
from onnxprobe.optimize.render import RenderSettings
from onnxprobe.optimize.store import UnitStore, job_key
from onnxprobe.atlas.site import PHOTO, PHOTO_DIR, PHOTO_PICTURES

LAYER_UNIT = -1  # the store's slot of a layer's own pictures (its stem: "layer")


@dataclass(frozen=True)
class PhotoPictures:
    """What the atlas draws from photos, resolved once: the photos (paths, and the names their
    files take), the lucid preset, the seed and the closeness weight of accentuation."""

    photos: tuple[str, ...]
    names: tuple[str, ...]
    digests: tuple[str, ...]
    preset: Preset
    seed: int = 0
    weight: float = 1.0

    @classmethod
    def resolve(cls, model_path, photos: bool | Sequence, settings: RenderSettings,
                weight: float = 1.0) -> "PhotoPictures":
        """`photos`: True for the photos in the `samples/` folder beside the model, or the image
        paths. The preset: the atlas's own when it is a lucid one (the engine that starts from a
        photo), else `optimize.photo.PHOTO_PRESET` as it is; the seed is the atlas's."""
        from onnxprobe.preprocess import read_image
        from onnxprobe.resources import sample_images

        paths = [Path(p) for p in (sample_images(model_path) if photos is True else photos)]
        if not paths:
            raise ParameterError("{photo_pictures} needs photos: the model has no samples/ folder beside it; "
                                 "give the photos", "photo_pictures")
        digests, names = [], []
        for path in paths:
            read_image(path, "photo")  # readable, or one line now, before any work
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
            name = safe_name(path.stem)
            names.append(name if name not in names else f"{name}-{len(names)}")
        preset = settings.preset if settings.preset.method == "lucid" else get_preset(PHOTO_PRESET)
        return cls(tuple(str(p) for p in paths), tuple(names), tuple(digests), preset, settings.seed, float(weight))

    def identity(self) -> dict:
        """What decides the pictures (the key's part beside the atlas's own)."""
        return {"photos": [{"name": n, "sha256": d} for n, d in zip(self.names, self.digests)],
                "preset": self.preset.to_json(), "seed": self.seed, "weight": self.weight}

    def to_json(self) -> dict:
        return {**self.identity(), "paths": list(self.photos)}

    def images(self) -> list:
        from onnxprobe.preprocess import read_image

        return [read_image(path, "photo") for path in self.photos]


class PhotoStore(UnitStore):
    """The pictures in the one per-unit store under `DIR/photos/`; a layer's own at LAYER_UNIT."""

    def __init__(self, root: Path, key: str):
        self.atlas_root = Path(root)
        super().__init__(inside(self.atlas_root, PHOTO_DIR), key)

    @staticmethod
    def stem(unit: int) -> str:
        return "layer" if unit == LAYER_UNIT else UnitStore.stem(unit)

    def relative(self, layer: str, unit: int, name: str) -> str:
        return self.path(layer, unit, name).resolve().relative_to(self.atlas_root.resolve()).as_posix()


def photo_store(root: Path, atlas_key: str, pictures: dict) -> PhotoStore:
    """The store of the pictures made with `pictures` (PhotoPictures.identity) in the atlas `atlas_key`."""
    return PhotoStore(root, job_key({"atlas": atlas_key, **pictures}))


def _numbers(pic) -> dict:
    record = pic.to_json()
    record.pop("seconds", None)  # files stay byte-identical between runs
    return record


def draw_layer(model, layer: str, pictures: PhotoPictures, photos: list, store: PhotoStore) -> dict:
    """The layer's caricature and inversion of every photo (and the photo as the model sees it)."""
    from onnxprobe.render.images import encode_png

    files, entries = {}, []
    for name, image in zip(pictures.names, photos):
        entry = {PHOTO: name}
        for kind in ("caricature", "invert"):
            try:
                pic = picture_from_photo(model, image, kind, layer=layer, preset=pictures.preset, seed=pictures.seed)
            except ProbeError as exc:  # a layer all zero on this photo: nothing to draw, said so
                entry[kind] = {"note": str(exc)}
                continue
            files[f"{kind}-{name}.png"] = encode_png(pic.image)
            files.setdefault(f"photo-{name}.png", encode_png(pic.photo))
            entry[kind] = {"file": store.relative(layer, LAYER_UNIT, f"{kind}-{name}.png"), **_numbers(pic)}
        if f"photo-{name}.png" in files:
            entry["image"] = store.relative(layer, LAYER_UNIT, f"photo-{name}.png")
        entries.append(entry)
    return store.write(layer, LAYER_UNIT, files, {PHOTO_PICTURES: entries})


def draw_unit(model, layer: str, unit: int, pictures: PhotoPictures, photos: list, store: PhotoStore,
              position=None) -> dict:
    """The unit accentuated on every photo (`position` as the atlas reads its units; none: the
    photo's own peak, as `optimize --from` reads a neuron)."""
    from onnxprobe.render.images import encode_png

    files, entries = {}, []
    for name, image in zip(pictures.names, photos):
        pic = picture_from_photo(model, image, "accentuate", layer=layer, unit=unit, position=position,
                                 preset=pictures.preset, seed=pictures.seed, weight=pictures.weight)
        files[f"accentuate-{name}.png"] = encode_png(pic.image)
        entries.append({PHOTO: name, "accentuate": {"file": store.relative(layer, unit, f"accentuate-{name}.png"),
                                                    **_numbers(pic)}})
    return store.write(layer, unit, files, {PHOTO_PICTURES: entries})


def draw_pictures(model, pictures: PhotoPictures, store: PhotoStore, wanted: dict[str, list[int]], position=None,
                  progress: Callable[[int, str], object] | None = None) -> int:
    """Every picture of `wanted` (layer -> units) not finished in `store`; returns how many
    layers and units were drawn."""
    todo_layers = [name for name in wanted if store.record(name, LAYER_UNIT) is None]
    todo_units = {name: store.pending(name, units) for name, units in wanted.items()}
    count = len(todo_layers) + sum(map(len, todo_units.values()))
    if not count:
        return 0
    photos = pictures.images()
    bar = progress(count, "photo pictures ") if progress else None
    try:
        for name in wanted:
            if name in todo_layers:
                draw_layer(model, name, pictures, photos, store)
                if bar is not None:
                    bar.update(1)
            for unit in todo_units[name]:
                draw_unit(model, name, unit, pictures, photos, store, position)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return count
