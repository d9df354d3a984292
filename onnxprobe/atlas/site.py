"""The atlas's manifest and static site (written by render/site.py, as the demo's page is).

    index.html                         layers: op, shape, units, receptive field
    layers/<safe layer>.html           every unit's image on one page (and the layer's pictures from photos)
    units/<safe layer>/unit_NNNNN.html one unit: optimized images, pictures from photos, top-9 patches
                                       and maps, numbers
    manifest.json                      what the viewer reads (viewer/atlas_source.py)

Every name shown is HTML-escaped; every link and file name is derived with fsutil.safe_name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onnxprobe.autodiff import BackMode
from onnxprobe.fsutil import atomic_write_json, atomic_write_text, inside, safe_name
from onnxprobe.maxact.records import GRADIENT_MODES
from onnxprobe.render.site import escape as _e, figure, href as _href, page as _page

# the atlas's vocabulary, one home: the builder writes it, the site and the viewer read it
MANIFEST = "manifest.json"
OPTIMIZED = "optimized"  # a unit's optimized image (best restart)
STAT_KEYS = ("mean", "max", "mean_max", "fire_rate")
# a unit's dataset images: (manifest key, the maxact UnitRecord field that holds it, caption); the
# back maps are those maxact draws, named by BackMode.file_word
DATA_KINDS = (("top9", "patches", "top-9 patches"),
              *((f"top9_{word}", word, f"{word} of the top 9") for word, _ in GRADIENT_MODES))
# what the viewer shows of a unit: the optimized image, the top-9 patches and their deconv
VIEWER_KINDS = (OPTIMIZED, "top9", f"top9_{BackMode.DECONV.file_word}")
# pictures from photos (atlas/photos.py): their folder, the key of a unit's and a layer's entries
# (the unit accentuated on each photo; the layer's caricature and inversion of each), the key naming
# the photo, and the layer's kinds with their captions
PHOTO_DIR = "photos"
PHOTO_PICTURES = "photo_pictures"
PHOTO = "photo"
LAYER_PHOTO_KINDS = (("caricature", "caricature of the layer"), ("invert", "inversion from the layer"))

@dataclass
class AtlasLayer:
    """A layer of the atlas: what its pages and its manifest entry say, and its finished units."""

    name: str
    op: str
    shape: list
    units_total: int
    receptive_field: dict | None
    units: dict[int, dict] = field(default_factory=dict)  # unit -> manifest entry (paths relative to DIR)
    hits: dict[int, list] = field(default_factory=dict)
    photo_pictures: list[dict] = field(default_factory=list)  # the layer's caricature and inversion per photo
    module_path: str | None = None  # shown where there is one; files stay keyed by the ONNX name

    @property
    def label(self) -> str:
        return self.module_path or self.name

    @property
    def page(self) -> str:
        return f"layers/{safe_name(self.name)}.html"

    def unit_page(self, unit: int) -> str:
        return f"units/{safe_name(self.name)}/unit_{unit:05d}.html"


def unit_entry(record: dict, data=None, photos: dict | None = None) -> dict:
    """The manifest entry of one unit from its atlas record, (optional) maxact UnitRecord paths and
    (optional) its record of pictures from photos."""
    files, opt = record["files"], record["optimization"]
    entry = {OPTIMIZED: files["optimized"], "optimized_montage": files.get("montage"),
             "restarts": list(files.get("restarts", []))}
    stats = {"best_activation": max(opt["best_activation"]), "initial_activation": max(opt["initial_activation"]),
             "restart_best_activations": opt["best_activation"]}
    if data is not None:
        paths, numbers = data
        entry.update({k: v for k, v in paths.items() if v})
        stats.update(numbers)
    entry["stats"] = stats
    if photos is not None:
        entry[PHOTO_PICTURES] = photos[PHOTO_PICTURES]
    return entry


def write_manifest(root, model: dict, settings: dict, layers: list[AtlasLayer], dataset: str | None,
                   photos: dict | None = None) -> None:
    """`photos`: the settings of the pictures from photos (PhotoPictures.to_json), when there are some."""
    manifest = {
        "model": model["name"], "model_path": model["path"], "model_sha256": model["sha256"], "format": 1,
        "settings": settings, "dataset": dataset, **({PHOTO_PICTURES: photos} if photos else {}),
        "layers": {layer.name: {"module_path": layer.module_path, "op": layer.op, "shape": layer.shape, "count": layer.units_total,
                                "receptive_field": layer.receptive_field, "page": layer.page,
                                **({PHOTO_PICTURES: layer.photo_pictures} if layer.photo_pictures else {}),
                                "units": {str(u): {**e, "page": layer.unit_page(u)} for u, e in sorted(layer.units.items())}}
                   for layer in layers},
    }
    atomic_write_json(inside(root, MANIFEST), manifest)


# ---- HTML ----------------------------------------------------------------------------------------

def _num(value) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    return _e(value)


def _shape(shape: list) -> str:
    return "&times;".join("N" if d is None else _e(d) for d in shape)


def _rf(rf: dict | None) -> str:
    if not rf:
        return '<span class="muted">whole input</span>'
    size = "&times;".join(_e(v) for v in rf["size"])
    stride = "&times;".join(_e(v) for v in rf["stride"])
    return f"{size} px, stride {stride}"


def write_site(root, model_name: str, layers: list[AtlasLayer], settings: dict, dataset: str | None) -> int:
    """Write every page; returns the number of pages."""
    pages = {"index.html": _index(model_name, layers, settings, dataset)}
    for layer in layers:
        pages[layer.page] = _layer_page(model_name, layer)
        units = sorted(layer.units)
        for n, unit in enumerate(units):
            neighbours = (units[n - 1] if n else None, units[n + 1] if n + 1 < len(units) else None)
            pages[layer.unit_page(unit)] = _unit_page(model_name, layer, unit, neighbours)
    for relative, text in pages.items():
        atomic_write_text(inside(root, relative), text)
    return len(pages)


def _index(model_name: str, layers: list[AtlasLayer], settings: dict, dataset: str | None) -> str:
    rows = "\n".join(
        f'<tr><td><a href="{_href("index.html", layer.page)}">{_e(layer.label)}</a></td><td>{_e(layer.op)}</td>'
        f'<td>{_shape(layer.shape)}</td><td class="num">{len(layer.units)} / {layer.units_total}</td>'
        f"<td>{_rf(layer.receptive_field)}</td></tr>" for layer in layers)
    opts = ", ".join(f"{_e(k)} {_e(v)}" for k, v in settings.items())
    data = f"dataset <code>{_e(dataset)}</code>" if dataset else '<span class="muted">no dataset (no top-9 patches)</span>'
    body = (f"<h1>Unit atlas of {_e(model_name)}</h1>\n<p>{opts}; {data}</p>\n"
            "<table><tr><th>layer</th><th>op</th><th>shape</th><th>units in atlas</th><th>receptive field</th></tr>\n"
            f"{rows}\n</table>")
    return _page(f"Unit atlas: {model_name}", body)


def _layer_page(model_name: str, layer: AtlasLayer) -> str:
    page = layer.page
    cards = []
    for unit, entry in sorted(layer.units.items()):
        link = _href(page, layer.unit_page(unit))
        images = f'<img src="{_href(page, entry[OPTIMIZED])}" alt="unit {unit}, optimized">'
        if entry.get("top9"):
            images += f'<img src="{_href(page, entry["top9"])}" alt="unit {unit}, top-9 patches">'
        cards.append(f'<a class="card" href="{link}">{images}{unit}</a>')
    body = (f'<div class="nav"><a href="{_href(page, "index.html")}">{_e(model_name)}</a> &rsaquo; {_e(layer.label)}</div>\n'
            f"<h1>{_e(layer.label)}</h1>\n<p>{_e(layer.op)}{_onnx_name(layer)} {_shape(layer.shape)}, {layer.units_total} units, "
            f"receptive field {_rf(layer.receptive_field)}</p>\n<div class=\"grid\">\n" + "\n".join(cards) + "\n</div>")
    if layer.photo_pictures:
        rows = "".join(f'<div class="views">{"".join(_layer_photo_views(page, entry))}</div>\n'
                       for entry in layer.photo_pictures)
        body += f"\n<h2>Pictures from the photos</h2>\n{rows}"
    return _page(f"{layer.label}: {model_name}", body)


def _photo_caption(kind: str, photo: str, numbers: dict) -> str:
    """A picture's caption: what its objective reads on the photo and on it, and how far it is."""
    value, before, distance = (_fmt(numbers.get(k)) for k in ("value", "photo_value", "distance"))
    if kind == "accentuate":
        rise = (_fmt(numbers["value"] - numbers["photo_value"])
                if all(isinstance(numbers.get(k), (int, float)) for k in ("value", "photo_value")) else "-")
        return (f"accentuated on {photo}: the unit {before} on the photo, {value} here (rise {rise}); "
                f"RMS distance {distance} of 255")
    if kind == "invert":
        error = _fmt(-numbers["value"]) if isinstance(numbers.get("value"), (int, float)) else "-"
        return f"inverted from the layer ({photo}): relative squared error {error}; RMS distance {distance} of 255"
    return f"caricature of the layer ({photo}): projection on the photo's activation {before} on the photo, {value} here"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def _layer_photo_views(page: str, entry: dict) -> list[str]:
    """A photo as the model sees it, the layer's caricature and its inversion of it."""
    photo = entry[PHOTO]
    views = [figure(page, entry["image"], f"photo {photo}")] if entry.get("image") else []
    for kind, caption in LAYER_PHOTO_KINDS:
        picture = entry.get(kind) or {}
        if picture.get("file"):
            views.append(figure(page, picture["file"], _photo_caption(kind, photo, picture)))
        elif picture.get("note"):
            views.append(f'<figure><figcaption>{_e(caption)} of {_e(photo)}: {_e(picture["note"])}</figcaption></figure>')
    return views


def _onnx_name(layer: AtlasLayer) -> str:
    return f" (ONNX tensor <code>{_e(layer.name)}</code>)" if layer.module_path else ""


def _unit_photo_section(page: str, layer: AtlasLayer, entry: dict) -> str:
    """Per photo: the unit accentuated on it (its rise and the distance from the photo) beside the
    photo and the layer's caricature and inversion of it."""
    if not entry.get(PHOTO_PICTURES):
        return ""
    of_layer = {e[PHOTO]: e for e in layer.photo_pictures}
    rows = []
    for picture in entry[PHOTO_PICTURES]:
        photo, accentuated = picture[PHOTO], picture["accentuate"]
        layer_entry = of_layer.get(photo, {PHOTO: photo})
        views = _layer_photo_views(page, layer_entry)
        views.insert(1 if layer_entry.get("image") else 0,
                     figure(page, accentuated["file"], _photo_caption("accentuate", photo, accentuated)))
        rows.append(f'<div class="views">{"".join(views)}</div>\n')
    return "<h2>Pictures from the photos</h2>\n" + "".join(rows)


def _unit_page(model_name: str, layer: AtlasLayer, unit: int, neighbours) -> str:
    page = layer.unit_page(unit)
    entry = layer.units[unit]
    stats = entry["stats"]
    nav = [f'<a href="{_href(page, "index.html")}">{_e(model_name)}</a>',
           f'<a href="{_href(page, layer.page)}">{_e(layer.label)}</a>', f"unit {unit}"]
    prev_next = " ".join(f'<a href="{_href(page, layer.unit_page(u))}">{label} (unit {u})</a>'
                         for u, label in zip(neighbours, ("previous", "next")) if u is not None)

    views = [figure(page, entry[OPTIMIZED], f"optimized (best of {len(entry['restarts'])} restart(s))")]
    if len(entry["restarts"]) > 1 and entry.get("optimized_montage"):
        views.append(figure(page, entry["optimized_montage"], "all restarts"))
    activations = stats.get("restart_best_activations", [])
    views += [figure(page, path, f"restart {r}: activation {activations[r]:.4g}" if r < len(activations) else f"restart {r}")
              for r, path in enumerate(entry["restarts"])] if len(entry["restarts"]) > 1 else []
    data_views = [figure(page, entry[key], caption) for key, _, caption in DATA_KINDS if entry.get(key)]
    numbers = [("best activation (optimized)", stats.get("best_activation")),
               ("initial activation (noise)", stats.get("initial_activation"))]
    labels = {"mean": "mean activation over the dataset", "max": "max activation over the dataset",
              "mean_max": "mean of the per-image max", "fire_rate": "fire rate (images with max > 0)"}
    numbers += [(labels[k], stats[k]) for k in STAT_KEYS if k in stats]
    table = "\n".join(f'<tr><td>{_e(label)}</td><td class="num">{_num(value)}</td></tr>' for label, value in numbers)
    hits = layer.hits.get(unit) or []
    hit_rows = "\n".join(
        f'<tr><td class="num">{_e(h.get("rank"))}</td><td>{_e(h.get("image"))}'
        f'{" frame " + _e(h["frame"]) if "frame" in h else ""}</td>'
        f'<td class="num">{_num(h.get("score"))}</td><td>{_e(h.get("box"))}</td></tr>' for h in hits)
    body = (f'<div class="nav">{" &rsaquo; ".join(nav)} &nbsp; {prev_next}</div>\n'
            f"<h1>{_e(layer.label)} &mdash; unit {unit}</h1>\n"
            f'<h2>Optimized images</h2>\n<div class="views">{"".join(views)}</div>\n'
            + (f'<h2>Top dataset patches</h2>\n<div class="views">{"".join(data_views)}</div>\n' if data_views else "")
            + _unit_photo_section(page, layer, entry)
            + f"<h2>Numbers</h2>\n<table>\n{table}\n</table>\n"
            + ("<h2>Top images</h2>\n<table><tr><th>rank</th><th>image</th><th>score</th><th>box [y0, x0, y1, x1]</th></tr>\n"
               f"{hit_rows}\n</table>\n" if hits else ""))
    return _page(f"{layer.label} unit {unit}: {model_name}", body)
