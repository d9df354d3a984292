"""Saving the panes (`p`): every pane as `view-NNNN-<layer>-<unit>-<pane>.png` plus a JSON of the
settings, written atomically, numbered after the newest snapshot already in the folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from onnxprobe.fsutil import atomic_write_json, inside, safe_name
from onnxprobe.render.images import write_png


def save_snapshot(directory: str | Path, images: dict[str, np.ndarray], layer: str, unit: int,
                  info: dict) -> list[Path]:
    """Write `images` and `info` (plus the PNGs' names); [] when there is nothing to save."""
    if not images:
        return []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name[5:9]) for p in directory.glob("view-[0-9][0-9][0-9][0-9]-*")), default=0)
    stem = f"view-{number:04d}-{safe_name(layer)}-{unit}"
    paths = [write_png(inside(directory, f"{stem}-{name}.png"), image) for name, image in images.items()]
    info = {**info, "panes": [p.name for p in paths]}
    paths.append(atomic_write_json(inside(directory, f"{stem}.json"), json.loads(json.dumps(info, default=str))))
    return paths
