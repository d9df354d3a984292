"""Images as a notebook holds them -> the model's input tensor.

An image is a file path, a PIL image, or a numpy array HxW (gray), HxWx3 (RGB, as PIL, matplotlib
and imageio give it) or HxWx4 (RGBA), uint8 / uint16 / float in 0..1; a 4-D array is a ready input
batch in the model's own layout (preprocessing already applied). Many images: a list of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any, Union

import numpy as np

from onnxprobe.errors import InputError

ImageLike = Union[str, PathLike, np.ndarray, Any]  # Any: a PIL.Image.Image (PIL is optional)
Images = Union[ImageLike, Sequence[ImageLike]]


def is_one_image(images) -> bool:
    return not isinstance(images, (list, tuple))


def as_bgr(image: ImageLike) -> np.ndarray:
    """One image as the library reads images (OpenCV's order: BGR, or gray)."""
    from onnxprobe.preprocess import read_image

    if isinstance(image, (str, PathLike)):
        return read_image(image)
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise InputError(f"an image is a file path, a PIL image or a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (3, 4):  # RGB(A) -> BGR(A), as OpenCV would have read the file
        image = np.concatenate([image[:, :, 2::-1], image[:, :, 3:]], axis=2)
    return image


def to_tensor(probe, images: Images) -> np.ndarray:
    """(N, ...) float32: the model's input for `images` (one image or a list; a 4-D array as it is)."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return probe.check_input(images)
    items = [images] if is_one_image(images) else list(images)
    if not items:
        raise InputError("no images given")
    return np.concatenate([probe.preprocess(as_bgr(item)) for item in items], axis=0)


def names_of(images: Images) -> list[str]:
    """A short caption per image: the file name, else its index."""
    from pathlib import Path

    if isinstance(images, np.ndarray) and images.ndim == 4:
        return [f"input {i}" for i in range(len(images))]
    items = [images] if is_one_image(images) else list(images)
    return [Path(item).name if isinstance(item, (str, PathLike)) else f"image {i}" for i, item in enumerate(items)]
