"""Safe file names and atomic writes: nothing outside the output folder, no partial files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

TEMP_PREFIX = ".onnxprobe-tmp-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, max_length: int = 80) -> str:
    """A file-name-safe, collision-resistant form of a layer or unit name ('a/b:c' -> 'a_b_c-1f3e...').

    Names that were already safe stay readable; anything changed gets a short hash of the original
    so that two names never map to the same file.
    """
    cleaned = _UNSAFE.sub("_", name).strip("._") or "tensor"
    if cleaned == name and len(name) <= max_length:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:max_length - 9]}-{digest}"


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts, refusing anything that resolves outside root."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"refusing to write outside {root}: {path}")
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save_npz(path: str | Path, arrays: dict) -> Path:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npy(path: str | Path, array) -> Path:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return atomic_write_bytes(path, buffer.getvalue())


def make_output_folder(path: str | Path) -> Path:
    """Create the output folder `path` (parents too); a file in its place or a folder that cannot be
    made is a one-line UsageError about --out."""
    from onnxprobe.errors import UsageError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out must be a folder, {path} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {path}: {exc.strerror or exc}") from None
    return path


def remove_temp_files(root: str | Path) -> int:
    """Delete temporaries a killed job left behind (they are never renamed into place)."""
    count = 0
    for path in Path(root).rglob(TEMP_PREFIX + "*"):
        path.unlink(missing_ok=True)
        count += 1
    return count


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
