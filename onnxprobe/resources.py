"""The networks and photos that ship inside the package: one home for where they are.

`onnxprobe/models` is the repository's `models/` folder (a symlink in the source tree, a real
folder in an installed wheel), so the bundled ImageNet network, its sidecar, labels and sample
photos are found the same way after `pip install .`, from a wheel, in an editable install and in a
clone, from any working folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def bundled_folder() -> Path:
    """The folder holding the bundled models (`imagenet/`, `digits/`)."""
    return Path(str(files("onnxprobe") / "models"))


def default_model() -> Path:
    """The bundled ImageNet MobileNetV2: what `demo` and `view` open when no model is given."""
    return bundled_folder() / "imagenet" / "mobilenet_v2.onnx"


def digits_model() -> Path:
    """The small digits CNN (28x28), the fast example."""
    return bundled_folder() / "digits" / "digits-cnn.onnx"


def sample_images(model_path: str | Path) -> list[Path]:
    """The photos in the `samples/` folder beside a model (the bundled ones have theirs), sorted."""
    folder = Path(model_path).parent / "samples"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
