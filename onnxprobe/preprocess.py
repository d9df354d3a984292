"""How images become a model's input tensor and back.

A `PreprocessSpec` comes from, in order of precedence: command-line flags, a sidecar file next to
the model (`<model stem>.onnxprobe.json`), the model's `metadata_props` (keys `onnxprobe.<key>`,
JSON values), and defaults derived from the input shape. The format is documented in README.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# FFmpeg's own log off (its 'moov atom not found' on a corrupt video would come before our one line):
# OpenCV reads this when FFmpeg starts, at the process's first video capture or writer, so it is set
# as soon as onnxprobe reads images at all; a value the user set is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from onnxprobe.errors import InputError, ModelError, UsageError

SIDECAR_SUFFIX = ".onnxprobe.json"
METADATA_PREFIX = "onnxprobe."
KEYS = ("input_size", "layout", "channels", "channel_order", "value_range", "mean", "std", "labels", "resize", "invert")


@dataclass(frozen=True)
class PreprocessSpec:
    input_size: tuple[int, int]  # H, W
    layout: str = "NCHW"  # or "NHWC" (tf2onnx exports)
    channels: int = 3  # 1 (grayscale) or 3
    channel_order: str = "RGB"  # or "BGR" (Caffe-era models)
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel 0..255 maps linearly onto this range
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    labels: tuple[str, ...] | None = None
    resize: str = "crop"  # "crop": centre-crop to the aspect ratio, then resize; "stretch": resize
    invert: bool = False  # 255 - pixel before scaling (white-on-black digit models)
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # key -> where it came from

    # ---- image -> tensor -------------------------------------------------------------------
    def to_tensor(self, image: np.ndarray) -> np.ndarray:
        """An image of any size and channel count (as OpenCV reads it: HxW, HxWx1, BGR or BGRA,
        uint8 or uint16 or float 0..1) -> a (1, ...) float32 input tensor."""
        pixels = self.model_pixels(image)
        return self.pixels_to_tensor(pixels)[None]

    def model_pixels(self, image: np.ndarray) -> np.ndarray:
        """Resized, channel-converted pixels in 0..255 float32, HxWxC in the model's channel order."""
        pixels = _as_float255(image)
        pixels = _convert_channels(pixels, self.channels, bgr_to_rgb=self.channel_order == "RGB")
        pixels = fit_to_size(pixels, self.input_size, self.resize)
        if self.invert:
            pixels = 255.0 - pixels
        return pixels

    def pixels_to_tensor(self, pixels: np.ndarray) -> np.ndarray:
        lo, hi = self.value_range
        x = pixels * ((hi - lo) / 255.0) + lo
        x = (x - self._vec(self.mean)) / self._vec(self.std)
        if self.layout == "NCHW":
            x = np.transpose(x, (2, 0, 1))
        return np.ascontiguousarray(x, dtype=np.float32)

    # ---- tensor -> display -----------------------------------------------------------------
    def tensor_to_pixels(self, x: np.ndarray) -> np.ndarray:
        """One input tensor (without batch axis) -> HxWxC float pixels in 0..255 (model channel order)."""
        x = np.asarray(x, dtype=np.float32)
        if self.layout == "NCHW":
            x = np.transpose(x, (1, 2, 0))
        lo, hi = self.value_range
        x = x * self._vec(self.std) + self._vec(self.mean)
        pixels = (x - lo) * (255.0 / (hi - lo))
        if self.invert:
            pixels = 255.0 - pixels
        return pixels

    def to_display(self, x: np.ndarray) -> np.ndarray:
        """One input tensor (without batch axis) -> HxWx3 uint8 RGB, preprocessing undone."""
        pixels = np.clip(self.tensor_to_pixels(x), 0, 255).astype(np.uint8)
        if pixels.shape[2] == 1:
            return np.repeat(pixels, 3, axis=2)
        return pixels if self.channel_order == "RGB" else pixels[:, :, ::-1].copy()

    def valid_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (low, high) of the input tensor for pixels 0..255, broadcastable to one
        input tensor (without batch axis) in the model's layout."""
        low = self.pixels_to_tensor(np.zeros((1, 1, self.channels), np.float32))
        high = self.pixels_to_tensor(np.full((1, 1, self.channels), 255.0, np.float32))
        return np.minimum(low, high), np.maximum(low, high)

    def input_shape(self) -> tuple[int, ...]:
        h, w = self.input_size
        return (1, self.channels, h, w) if self.layout == "NCHW" else (1, h, w, self.channels)

    def _vec(self, values) -> np.ndarray:
        v = np.asarray(values, dtype=np.float32)
        if v.size == 1:
            v = np.repeat(v, self.channels)
        return v.reshape(1, 1, self.channels)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("sources")
        return data


# ---- building a spec --------------------------------------------------------------------------

def sidecar_path(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SIDECAR_SUFFIX)


def resolve_spec(model_path: str | Path, input_shape: tuple[int, ...], metadata: dict[str, str],
                 overrides: dict[str, Any] | None = None) -> PreprocessSpec:
    """Merge flags > sidecar > metadata_props > defaults, validate, and check against the input shape."""
    from onnxprobe.limits import input_shape_problem

    problem = input_shape_problem(input_shape)
    if problem:
        raise ModelError(f"the model's {problem}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [("defaults", _defaults(input_shape)), ("metadata", _from_metadata(metadata))]
    path = sidecar_path(model_path)
    if path.exists():
        layers.append((f"sidecar {path.name}", _from_sidecar(path)))
    layers.append(("flags", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for source, layer in layers:
        for key, value in layer.items():
            values[key] = value
            sources[key] = source
    if isinstance(values.get("labels"), (str, Path)):
        values["labels"] = _read_labels(values["labels"], path.parent if sources["labels"].startswith("sidecar") else Path.cwd())
    spec = _validated(values, sources)
    _check_fits(spec, input_shape)
    return spec


def declared_preprocessing(model_path: str | Path, metadata: dict[str, str],
                           overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """What flags > sidecar > metadata_props say about the input's geometry ("input_size",
    "layout", "channels"), without defaults: fills a model's dynamic height and width."""
    values = {k: v for k, v in _from_metadata(metadata).items() if k in ("input_size", "layout", "channels")}
    path = sidecar_path(model_path)
    if path.exists():
        values.update({k: v for k, v in _from_sidecar(path).items() if k in ("input_size", "layout", "channels")})
    values.update({k: v for k, v in (overrides or {}).items() if k in ("input_size", "layout", "channels") and v is not None})
    return values


def _defaults(input_shape: tuple[int, ...]) -> dict[str, Any]:
    layout = guess_layout(input_shape)
    if layout == "NCHW":
        channels, h, w = input_shape[1], input_shape[2], input_shape[3]
    else:
        h, w, channels = input_shape[1], input_shape[2], input_shape[3]
    imagenet = channels == 3
    return {
        "input_size": (h, w),
        "layout": layout,
        "channels": channels,
        "channel_order": "RGB",
        "value_range": (0.0, 1.0),
        "mean": (0.485, 0.456, 0.406) if imagenet else (0.0,),
        "std": (0.229, 0.224, 0.225) if imagenet else (1.0,),
        "resize": "crop",
        "invert": False,
    }


def guess_layout(input_shape: tuple[int, ...]) -> str:
    if len(input_shape) != 4:
        raise ModelError(f"onnxprobe needs a 4-D image input (N,C,H,W or N,H,W,C), got shape {input_shape}")
    if input_shape[1] in (1, 3) or input_shape[3] not in (1, 3):
        return "NCHW"
    return "NHWC"


def _from_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    out = {}
    for key, raw in metadata.items():
        if key.startswith(METADATA_PREFIX) and key[len(METADATA_PREFIX):] in KEYS:
            try:
                out[key[len(METADATA_PREFIX):]] = json.loads(raw)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX):]] = raw
    return out


def _from_sidecar(path: Path) -> dict[str, Any]:
    from onnxprobe.fsutil import check_input_file

    try:
        check_input_file(path, "preprocessing sidecar")
    except InputError as exc:
        raise ModelError(str(exc)) from None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read preprocessing sidecar {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ModelError(f"preprocessing sidecar {path} must hold a JSON object")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ModelError(f"preprocessing sidecar {path} has unknown keys: {', '.join(unknown)} (known: {', '.join(KEYS)})")
    return data


def _read_labels(path: str | Path, base: Path) -> tuple[str, ...]:
    from onnxprobe.fsutil import check_input_file

    path = Path(path)
    if not path.is_absolute():
        path = base / path
    try:
        check_input_file(path, "labels file")  # a named pipe would block the read
    except InputError as exc:
        raise UsageError(str(exc)) from None
    try:
        return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _validated(values: dict[str, Any], sources: dict[str, str]) -> PreprocessSpec:
    def bad(key, why):
        raise UsageError(f"preprocessing '{key}' from {sources.get(key, 'defaults')}: {why}")

    try:
        size = tuple(int(v) for v in values["input_size"])
    except (TypeError, ValueError):
        bad("input_size", f"must be [height, width], got {values['input_size']!r}")
    layout = str(values["layout"]).upper()
    if layout not in ("NCHW", "NHWC"):
        bad("layout", f"must be NCHW or NHWC, got {values['layout']!r}")
    channels = int(values["channels"])
    if channels not in (1, 3):
        bad("channels", f"must be 1 or 3, got {channels}")
    order = str(values["channel_order"]).upper()
    if order not in ("RGB", "BGR"):
        bad("channel_order", f"must be RGB or BGR, got {values['channel_order']!r}")
    value_range = tuple(float(v) for v in values["value_range"])
    if len(value_range) != 2 or value_range[0] == value_range[1]:
        bad("value_range", f"must be [low, high], got {values['value_range']!r}")
    mean = tuple(float(v) for v in np.atleast_1d(values["mean"]))
    std = tuple(float(v) for v in np.atleast_1d(values["std"]))
    for key, vec in (("mean", mean), ("std", std)):
        if len(vec) not in (1, channels):
            bad(key, f"needs 1 or {channels} values, got {len(vec)}")
    for key, vec in (("value_range", value_range), ("mean", mean), ("std", std)):
        if not all(np.isfinite(vec)):
            bad(key, f"must be finite numbers, got {list(vec)}")
    if any(s == 0 for s in std):
        bad("std", "must not contain 0")
    resize = str(values["resize"]).lower()
    if resize not in ("crop", "stretch"):
        bad("resize", f"must be crop or stretch, got {values['resize']!r}")
    labels = values.get("labels")
    return PreprocessSpec(
        input_size=size, layout=layout, channels=channels, channel_order=order, value_range=value_range,
        mean=mean, std=std, labels=tuple(str(x) for x in labels) if labels else None, resize=resize,
        invert=bool(values.get("invert", False)), sources=dict(sources),
    )


def _check_fits(spec: PreprocessSpec, input_shape: tuple[int, ...]) -> None:
    expected = spec.input_shape()[1:]
    if tuple(input_shape[1:]) != expected:
        raise UsageError(
            f"preprocessing (layout {spec.layout}, {spec.channels} channel(s), size {spec.input_size[0]}x{spec.input_size[1]}) "
            f"does not fit the model input shape {tuple(input_shape)}"
        )


def with_overrides(spec: PreprocessSpec, **changes) -> PreprocessSpec:
    return replace(spec, **changes)


# ---- pixels ----------------------------------------------------------------------------------

def _as_float255(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"expected an image HxW, HxWx1, HxWx3 or HxWx4, got an array of shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 257.0
    if np.iscomplexobj(image):
        raise InputError("the image has complex-valued pixels")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise InputError("the image has NaN or infinite pixels (a float TIFF?); onnxprobe needs finite pixel values")
    return image * 255.0 if image.max(initial=0) <= 1.0 else image


def _convert_channels(pixels: np.ndarray, channels: int, bgr_to_rgb: bool) -> np.ndarray:
    if pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if pixels.shape[2] == 3 and channels == 1:
        gray = pixels @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma weights
        return gray[:, :, None]
    if pixels.shape[2] == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=2)
    if bgr_to_rgb and pixels.shape[2] == 3:
        return pixels[:, :, ::-1]
    return pixels


def fit_to_size(pixels: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize HxWxC pixels to `size` (H, W): "stretch" directly, "crop" after a centre crop to the aspect."""
    h, w = pixels.shape[:2]
    th, tw = size
    if mode == "crop":
        scale = min(h / th, w / tw)
        ch, cw = max(1, round(th * scale)), max(1, round(tw * scale))
        top, left = (h - ch) // 2, (w - cw) // 2
        pixels = pixels[top:top + ch, left:left + cw]
    if pixels.shape[:2] != (th, tw):
        shrinking = pixels.shape[0] > th or pixels.shape[1] > tw
        channels = pixels.shape[2]
        pixels = cv2.resize(np.ascontiguousarray(pixels), (tw, th),
                            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        assert pixels.shape[2] == channels
    return np.ascontiguousarray(pixels, dtype=np.float32)


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """Read an image file as OpenCV does (BGR / gray, any depth); one-line error if unreadable, not
    a regular file (a named pipe would block), or declared larger than `limits.MAX_IMAGE_PIXELS`."""
    from onnxprobe.fsutil import check_input_file

    path = check_input_file(path, what)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return decode_image(data.tobytes() if data.size else b"", f"{what} {path}")


def open_video(source: str | Path | int):
    """`cv2.VideoCapture(source)`, the one way onnxprobe opens a video file or a camera, with no
    chatter of its own on a corrupt file (ours is the one line): FFmpeg's log is off (above), and
    files are read by FFmpeg alone where OpenCV has it (its built-in MJPEG reader, tried after FFmpeg
    fails, prints 'Unexpected list type' with stray bytes on a cut .avi), with OpenCV's warning that
    FFmpeg could not open the file held back."""
    if isinstance(source, int):
        return cv2.VideoCapture(source)
    backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(min(level, cv2.utils.logging.LOG_LEVEL_ERROR))  # its "can't be used to capture" warning
    try:
        return cv2.VideoCapture(str(source), backend)
    finally:
        cv2.utils.logging.setLogLevel(level)


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Encoded image bytes -> the array OpenCV reads (HxW or HxWxC, BGR(A), any depth), checked:
    a header declaring more than `limits.MAX_IMAGE_PIXELS` is refused before decoding; an empty,
    corrupt or unsupported file is an InputError naming `what`."""
    from onnxprobe.limits import image_size_problem

    if not data:
        raise InputError(f"cannot read {what}: the file is empty")
    size = image_header_size(data)
    if size is not None:
        problem = image_size_problem(*size)
        if problem:
            raise InputError(f"refusing {what}: {problem}")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        reason = " ".join(str(exc).split())[-160:]
        raise InputError(f"cannot read {what} (OpenCV: {reason})") from None
    if image is None or image.ndim not in (2, 3) or min(image.shape[:2]) == 0:
        raise InputError(f"cannot read {what} (unsupported or corrupt file)")
    if np.iscomplexobj(image):
        raise InputError(f"cannot read {what}: complex-valued pixels")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"cannot use {what}: it has NaN or infinite pixels; onnxprobe needs finite pixel values")
    return image


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) declared by a PNG, BMP, JPEG or TIFF header, or None when unknown."""
    import struct

    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return height, width
        if data[:2] == b"BM" and len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            return abs(height), width
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    import struct

    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return height, width
        i += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    import struct

    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    size = {}
    for n in range(min(count, 4096)):
        entry = data[offset + 2 + 12 * n: offset + 14 + 12 * n]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return (size[257], size[256]) if len(size) == 2 else None


def read_array(path: str | Path, what: str = "array") -> np.ndarray:
    """A floating-point, finite .npy array (an input tensor), checked from its header before it is
    loaded: a regular file (not a pipe), not empty, not an .npz archive or a pickle, no boolean,
    integer, complex or object values,
    at most `limits.MAX_ARRAY_ELEMENTS` values."""
    from numpy.lib import format as npy_format

    from onnxprobe.fsutil import check_input_file
    from onnxprobe.limits import array_size_problem

    path = check_input_file(path, what)
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
            if not head:
                raise InputError(f"cannot read {what} {path}: the file is empty")
            if head[:4] == b"PK\x03\x04":
                raise InputError(f"cannot read {what} {path}: it is an .npz archive; give one array saved with numpy.save (.npy)")
            if head != b"\x93NUMPY":
                raise InputError(f"cannot read {what} {path}: not a .npy file (no NUMPY header)")
            handle.seek(0)
            version = npy_format.read_magic(handle)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            if dtype.hasobject:
                raise InputError(f"cannot read {what} {path}: it holds Python objects (a pickle), not numbers")
            if not np.issubdtype(dtype, np.floating):  # an input tensor: bool, integers or text are no image
                kind = ("complex numbers" if np.issubdtype(dtype, np.complexfloating) else
                        "booleans" if dtype == np.bool_ else f"{dtype} values")
                raise InputError(f"cannot read {what} {path}: it holds {kind}; an input tensor holds floating-point "
                                 "numbers (save it as float32)")
            problem = array_size_problem(shape)
            if problem:
                raise InputError(f"refusing {what} {path}: {problem}")
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if path.stat().st_size - handle.tell() < expected:
                raise InputError(f"cannot read {what} {path}: truncated, its header declares shape {tuple(shape)} of {dtype}")
            handle.seek(0)
            array = npy_format.read_array(handle, allow_pickle=False)
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read {what} {path}: {' '.join(str(exc).split())[:200]}") from None
    array = np.asarray(array)
    if array.size == 0:
        raise InputError(f"cannot read {what} {path}: it holds no values (shape {array.shape})")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(f"cannot read {what} {path}: it holds NaN or infinite values")
    return array
