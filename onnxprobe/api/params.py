"""The values the API's parameters take, and the readers that turn text into them: what a front end
(the command line, a config file, a form) needs to offer choices and check them before any work.

Each name has one home in the library; it is re-exported here, imported on first use (a module
`__getattr__`, as `onnxprobe/__init__.py` does), so that a command's parser can list the choices
without loading the library, and `onnxprobe.cli` needs no module but `onnxprobe.api`.

- choices: `METHODS` (attribution methods: name -> method, its `options` and `empty`),
  `IG_RULES` (integrated gradients' quadratures), `BACK_MODES` (backprop's modes: value,
  description), `FILTERS` (the back pane's filters), `PRESETS`, `PARAMS`, `DEFAULT_PRESET`
  (feature visualization), `PREPROCESS_KEYS` (the sidecar's keys, `load`'s keywords),
  `POSITION_HELP` / `POSITION_HELP_WITHOUT_IMAGE` (what a position may be, with and without an
  image), `viewer_key_help(arrows, words)` (the live viewer's keys, one line each),
  `default_model()` (the bundled ImageNet network's file), `sample_images(model_path)` (the
  photos in a `samples/` folder beside a model).
- readers (text -> typed value; a bad text is a `ParameterError` naming the parameter):
  `parse_position` ("3,4" / "max" / "centre" / "mean"), `parse_shape` ("1,3,224,224"),
  `parse_size` ("4G", "512M": a memory budget in bytes),
  `parse_units` ("0-15", "0,3,7", "all": `Units`), `read_array` (a .npy file, size-checked
  from its header), `read_image` (an image file as the library reads it: BGR or gray).
- checks before the work: `render_settings` (the render keywords of `Model.render_units` and
  `Model.atlas` resolved, and refused here when bad), `check_top_k` (the settings of `Model.top_k`).

>>> from onnxprobe.api.params import parse_position, parse_units
>>> parse_position("3,4"), parse_position("center")
((3, 4), 'centre')
>>> parse_units(["0-2", "7"])
[0, 1, 2, 7]
"""

from __future__ import annotations

import importlib

from onnxprobe.errors import ParameterError

# public name -> (the module that defines it, its name there)
_HOMES = {
    "METHODS": ("onnxprobe.attribution", "METHODS"),
    "IG_RULES": ("onnxprobe.attribution", "IG_RULES"),
    "BACK_MODES": ("onnxprobe.autodiff", "BackMode"),
    "FILTERS": ("onnxprobe.render.backmaps", "FILTERS"),
    "PRESETS": ("onnxprobe.optimize.presets", "PRESETS"),
    "PARAMS": ("onnxprobe.optimize.presets", "PARAMS"),
    "DEFAULT_PRESET": ("onnxprobe.optimize.presets", "DEFAULT_PRESET"),
    "PREPROCESS_KEYS": ("onnxprobe.preprocess", "KEYS"),
    "POSITION_HELP": ("onnxprobe.position", "HELP"),
    "POSITION_HELP_WITHOUT_IMAGE": ("onnxprobe.position", "HELP_WITHOUT_IMAGE"),
    "parse_position": ("onnxprobe.position", "parse_position"),
    "parse_shape": ("onnxprobe.graph.loading", "parse_shape"),
    "parse_size": ("onnxprobe.budget", "parse_size"),
    "read_array": ("onnxprobe.preprocess", "read_array"),
    "read_image": ("onnxprobe.preprocess", "read_image"),
    "viewer_key_help": ("onnxprobe.viewer.keys", "help_lines"),
    "default_model": ("onnxprobe.resources", "default_model"),
    "DEMO_STEPS": ("onnxprobe.api.demo", "DEFAULT_STEPS"),
    "DEMO_CLASSES": ("onnxprobe.api.demo", "DEFAULT_CLASSES"),
    "sample_images": ("onnxprobe.resources", "sample_images"),
}

# (the re-exported names are listed in the docstring, not in __all__: a reference tool would import
# them all, and a parser must not pay for the ones it does not read)
__all__ = ["check_top_k", "parse_units", "render_settings"]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'onnxprobe.api.params' has no attribute '{name}'")
    value = getattr(importlib.import_module(home[0]), home[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


def parse_units(texts: str | int | list, name: str = "units") -> list[int] | str:
    """Unit indices from text: each item an index, a range "0-15", a list "0,3,7", or "all"
    (which wins: the string "all" is returned, for the layer to expand). Sorted and unique;
    checked against a layer by the method that takes them (`Model.render_units`, `Model.atlas`).
    `name`: the parameter the errors name, "units" or "unit"."""
    items = texts if isinstance(texts, (list, tuple)) else [texts]
    units: list[int] = []
    for text in items:
        for part in str(text).split(","):
            part = part.strip()
            if part == "all":
                return "all"
            try:
                if "-" in part[1:] and not part.startswith("-"):
                    lo, hi = part.split("-", 1)
                    if int(hi) < int(lo):
                        raise _units_error(name, f"range '{part}' is reversed: write {int(hi)}-{int(lo)}")
                    units.extend(range(int(lo), int(hi) + 1))
                else:
                    units.append(int(part))
            except ValueError:
                raise _units_error(name, f"takes indices, ranges like 0-15, or 'all'; got '{part}'") from None
    return sorted(set(units))


def _units_error(name: str, text: str) -> ParameterError:
    """The error of `parse_units`, naming its parameter ("units", or "unit" where a caller takes one)."""
    if name == "unit":
        return ParameterError("{unit} " + text, "unit")
    return ParameterError("{units} " + text, "units")


def render_settings(preset: str | None = None, steps: int | None = None, param: str | None = None,
                    restarts: int = 1, seed: int = 0, batch: int = 8):
    """The render keywords (`preset`, `steps`, `param`, `restarts`, `seed`, `batch`) resolved
    into the library's typed `optimize.RenderSettings` (preset None: `DEFAULT_PRESET`); a bad value
    is refused here, so a front end can check them before loading a model."""
    from onnxprobe.optimize import RenderSettings
    from onnxprobe.optimize.presets import DEFAULT_PRESET

    return RenderSettings.resolve(DEFAULT_PRESET if preset is None else preset, steps, param, restarts, seed, batch)


def check_top_k(layers, top: int = 9, by: str = "max", batch_size: int = 32, shard_size: int = 256) -> None:
    """The settings of `Model.top_k` checked before any work (`ParameterError` naming the one at fault)."""
    from onnxprobe.maxact.job import check_settings

    check_settings(layers, top, by, batch_size, shard_size)
