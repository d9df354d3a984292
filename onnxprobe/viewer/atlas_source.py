"""Reads the per-unit images of an atlas for the viewer (unit visuals and pattern mode).

Format (`DIR/manifest.json`), written by `onnxprobe atlas`:

    {"model": "...",
     "layers": {"<layer name>": {"units": {"0": {"optimized": "rel/path.png", "top9": "rel.png",
                                                 "top9_deconv": "rel.png", "stats": {...}}, ...}}}}

Paths are relative to DIR. The reader is tolerant: missing layers, units, keys or files, unreadable
images, paths leading outside DIR and unknown extra keys all just mean "no image" for that unit.
Only a missing or unparsable manifest is an error (`AtlasError`, one line).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from onnxprobe.atlas.site import MANIFEST, OPTIMIZED, VIEWER_KINDS
from onnxprobe.errors import InputError, OutputError
from onnxprobe.fsutil import inside


class AtlasError(InputError):
    """The atlas folder or its manifest cannot be used at all."""


class AtlasSource:
    def __init__(self, root: str | Path, cache_size: int = 2048):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not self.root.is_dir():
            raise AtlasError(f"atlas folder not found: {self.root}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AtlasError(f"no {MANIFEST} in atlas folder {self.root}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AtlasError(f"cannot read atlas manifest {path}: {exc}") from None
        if not isinstance(data, dict):
            raise AtlasError(f"atlas manifest {path} must hold a JSON object")
        self.model = data.get("model")
        self._layers: dict[str, dict[int, dict]] = {}
        layers = data.get("layers")
        for name, entry in (layers.items() if isinstance(layers, dict) else ()):
            units = entry.get("units") if isinstance(entry, dict) else None
            self._layers[str(name)] = _units(units)
        self._cache: OrderedDict[tuple[str, int, str], np.ndarray | None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def layer_names(self) -> list[str]:
        return list(self._layers)

    def unit_entry(self, layer: str, unit: int) -> dict:
        return self._layers.get(layer, {}).get(int(unit), {})

    def stats(self, layer: str, unit: int) -> dict:
        stats = self.unit_entry(layer, unit).get("stats")
        return stats if isinstance(stats, dict) else {}

    def image(self, layer: str, unit: int, kind: str = OPTIMIZED) -> np.ndarray | None:
        """The unit's image of this kind as HxWx3 uint8 RGB, or None when the atlas has none."""
        key = (layer, int(unit), kind)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        image = self._load(self.unit_entry(layer, unit).get(kind))
        with self._lock:
            self._cache[key] = image
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return image

    def unit_images(self, layer: str, unit: int) -> dict[str, np.ndarray | None]:
        return {kind: self.image(layer, unit, kind) for kind in VIEWER_KINDS}

    def pattern_tiles(self, layer: str, count: int, size: tuple[int, int]) -> tuple[np.ndarray, int]:
        """Every unit's optimized image resized to `size` (H, W): (count, H, W, 3) uint8, and how many
        units had one (missing ones are dark tiles)."""
        h, w = size
        tiles = np.full((count, h, w, 3), 24, np.uint8)
        found = 0
        for unit in range(count):
            image = self.image(layer, unit, OPTIMIZED)
            if image is not None:
                tiles[unit] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                found += 1
        return tiles, found

    def _load(self, relative) -> np.ndarray | None:
        if not isinstance(relative, str) or not relative:
            return None
        try:
            path = inside(self.root, relative)
            data = np.fromfile(str(path), dtype=np.uint8)
        except (OutputError, ValueError, OSError):  # a name leading outside the atlas: no image
            return None
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        return None if image is None else np.ascontiguousarray(image[:, :, ::-1])


def _units(units) -> dict[int, dict]:
    """{"0": {...}} (or a list indexed by unit) -> {0: {...}}, dropping anything malformed."""
    items = units.items() if isinstance(units, dict) else enumerate(units) if isinstance(units, list) else ()
    out = {}
    for key, entry in items:
        try:
            unit = int(key)
        except (TypeError, ValueError):
            continue
        if isinstance(entry, dict) and unit >= 0:
            out[unit] = entry
    return out
