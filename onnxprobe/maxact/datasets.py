"""Datasets for the top-k job: an image folder, a text file listing images, or a video file.

A dataset is an ordered list of `Item`s, each with a global index (its identity in the top-k
state and the tie-breaker) and a source string (a path, or 'video.avi#frame=120'). The job cuts
the list into fixed shards; a `Shard` carries its own items, so a worker needs nothing else.
Unreadable files are reported by `load_images` as (index, source, reason), never raised.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from onnxprobe.errors import InputError, ParameterError, UsageError
from onnxprobe.preprocess import open_video
from onnxprobe.resources import IMAGE_SUFFIXES
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")
LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Item:
    index: int
    source: str  # image path, or video path + '#frame=N'
    frame: int | None = None  # video frame number


@dataclass(frozen=True)
class Shard:
    id: int
    items: tuple[Item, ...]
    video: str | None = None  # the video path when items are frames
    payload: tuple[bytes, ...] | None = None  # file bytes shipped to workers that cannot see the path


@dataclass(frozen=True)
class Dataset:
    kind: str  # "folder", "list" or "video"
    root: str
    items: tuple[Item, ...]
    video: str | None = None
    every: int = 1
    missing: tuple[str, ...] = field(default=())  # listed in a text file but not present

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        """Identifies the listing (not the pixels): a resumed job must see the same items."""
        h = hashlib.sha1(f"{self.kind}|{self.every}|".encode())
        for item in self.items:
            h.update(item.source.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()[:16]

    def stamps(self, size: int) -> list[str]:
        """Per shard of `size` items: a hash of its files' sizes and modification times (the video's
        for frames), so that a resumed job notices files replaced in place."""
        out = []
        video = _stat_text(self.video) if self.video else ""
        for start in range(0, len(self.items), size):
            h = hashlib.sha1(video.encode())
            for item in self.items[start:start + size]:
                h.update((item.source + "|" + (video or _stat_text(item.source)) + "\n").encode("utf-8", "surrogateescape"))
            out.append(h.hexdigest()[:16])
        return out

    def shards(self, size: int) -> list[Shard]:
        return [Shard(sid, self.items[start:start + size], self.video)
                for sid, start in enumerate(range(0, len(self.items), size))]


def _stat_text(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def with_payload(shard: Shard) -> Shard:
    """The shard with its files' bytes inside, for workers that cannot read the paths (images only)."""
    if shard.video is not None:
        return shard
    return Shard(shard.id, shard.items, None, tuple(_read_bytes(item.source) for item in shard.items))


def open_dataset(path: str | Path, every: int = 1, exclude: str | Path | None = None) -> Dataset:
    """An image folder (recursive), a text file listing images (one per line, relative to the
    file's folder; '#' comments), or a video file (every `every`-th frame). `exclude`: a folder
    inside the image folder whose files are not data (the job's own output folder). Only regular
    files are data: a named pipe or a device would block the scan."""
    from onnxprobe.fsutil import check_input_file, is_regular_file

    path = Path(path).absolute()
    if every < 1:
        raise ParameterError(f"{{every}} must be at least 1, got {every}", "every")
    if not path.exists():
        raise InputError(f"dataset not found: {path}")
    if path.is_dir():
        skip = Path(exclude).resolve() if exclude is not None else None
        if skip is not None and (skip == path.resolve() or skip in path.resolve().parents):
            raise UsageError(f"the output folder {exclude} holds the dataset folder {path}: the outputs would "
                             f"become data; write them outside it or into a folder inside it")
        def wanted(p: Path) -> bool:
            if p.suffix.lower() not in IMAGE_SUFFIXES or not is_regular_file(p):
                return False
            return skip is None or skip not in p.resolve().parents

        files = sorted((p for p in path.rglob("*") if wanted(p)), key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        return Dataset("folder", str(path), tuple(Item(i, str(p)) for i, p in enumerate(files)))
    check_input_file(path, "dataset")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return _video_dataset(path, every)
    if suffix in LIST_SUFFIXES:
        return _list_dataset(path)
    if suffix in IMAGE_SUFFIXES:
        return Dataset("list", str(path.parent), (Item(0, str(path)),))
    raise InputError(f"dataset must be an image folder, a list file ({', '.join(LIST_SUFFIXES)}) "
                     f"or a video ({', '.join(VIDEO_SUFFIXES)}): {path}")


def _list_dataset(path: Path) -> Dataset:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read image list {path}: {exc}") from None
    entries = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line)
            entries.append(str(p if p.is_absolute() else path.parent / p))
    if not entries:
        raise InputError(f"image list {path} names no images")
    # Missing files are kept as items: they are skipped and reported like corrupt ones.
    return Dataset("list", str(path.parent), tuple(Item(i, s) for i, s in enumerate(entries)))


def _video_dataset(path: Path, every: int) -> Dataset:
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise InputError(f"cannot open video {path}")
        count = 0
        while capture.grab():  # the container's frame count is unreliable; count by grabbing
            count += 1
    finally:
        capture.release()
    if count == 0:
        raise InputError(f"video {path} has no readable frames")
    frames = range(0, count, every)
    return Dataset("video", str(path.parent), tuple(Item(i, f"{path}#frame={f}", f) for i, f in enumerate(frames)),
                   video=str(path), every=every)


def _read_bytes(path: str) -> bytes:
    """A data file's bytes; b"" (then skipped as unreadable) for a missing file or one that is not
    a regular file (a named pipe would block)."""
    from onnxprobe.fsutil import is_regular_file

    if not is_regular_file(path):
        return b""
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def decode(data: bytes) -> np.ndarray | None:
    """The image, or None when the bytes are empty, corrupt, or declare an image over the limit."""
    from onnxprobe.preprocess import decode_image

    try:
        return decode_image(data)
    except InputError:
        return None


def load_images(shard: Shard) -> Iterator[tuple[Item, np.ndarray | None, str | None]]:
    """(item, image, None) for readable items, (item, None, reason) for the others, in order."""
    if shard.video is not None:
        yield from _video_frames(shard)
        return
    for n, item in enumerate(shard.items):
        if shard.payload is not None:
            data = shard.payload[n]
        else:
            from onnxprobe.fsutil import file_kind

            try:
                mode = Path(item.source).stat().st_mode
                if not stat.S_ISREG(mode):
                    yield item, None, f"not a regular file ({file_kind(mode)})"
                    continue
                data = Path(item.source).read_bytes()
            except OSError as exc:
                yield item, None, exc.strerror or type(exc).__name__
                continue
        from onnxprobe.preprocess import decode_image

        try:
            image = decode_image(data)
        except InputError as exc:
            yield item, None, str(exc)
            continue
        yield item, image, None


def _video_frames(shard: Shard):
    capture = open_video(shard.video)
    try:
        position = 0
        if shard.items and shard.items[0].frame:
            capture.set(cv2.CAP_PROP_POS_FRAMES, shard.items[0].frame)
            position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
            if position != shard.items[0].frame:  # some backends cannot seek: read from the start
                capture.release()
                capture = open_video(shard.video)
                position = 0
        for item in shard.items:
            while position < item.frame and capture.grab():
                position += 1
            ok, frame = capture.read() if position == item.frame else (False, None)
            if ok:
                position += 1
            if not ok or frame is None:
                yield item, None, "cannot read video frame"
                continue
            yield item, frame, None
    finally:
        capture.release()


def read_item(item: Item, video: str | None) -> np.ndarray | None:
    """One item's image again (for crops), or None when unreadable."""
    shard = Shard(-1, (item,), video)
    for _, image, _ in load_images(shard):
        return image
    return None
