"""A job that runs out of disk space in the middle: one line (exit 2), only whole checkpointed pieces
left, and a rerun with space resumes to what one clean run writes.

The disk is a small tmpfs mounted for the test (the kernel's own ENOSPC, where mounting is allowed:
root or a user namespace); elsewhere a write hook gives the same error: after N temporary files,
every write goes to /dev/full (ENOSPC on the first write, as on a full file system).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from onnxprobe.cli import main
from tests.conftest import DIGITS_MODEL

SAMPLES = DIGITS_MODEL.parent / "samples"


class SmallDisk:
    """`root`, a folder where writing stops with ENOSPC after a while; `grow()` gives it room."""

    def __init__(self, root: Path, kib: int, files: int, monkeypatch):
        self.root = root
        root.mkdir()
        try:
            self.mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0777", "tmpfs", str(root)],
                                          capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):  # no mount command
            self.mounted = False
        self._undo = None
        if not self.mounted:  # the write hook instead
            from onnxprobe import fsutil

            real, budget = fsutil._open_temp, [files]

            def open_temp(tmp):
                fd = real(tmp)
                if not tmp.startswith(str(root)) or budget[0] > 0:
                    budget[0] -= tmp.startswith(str(root))
                    return fd
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY)

            monkeypatch.setattr(fsutil, "_open_temp", open_temp)
            self._undo = lambda: monkeypatch.setattr(fsutil, "_open_temp", real)

    def grow(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.root)], check=True)
        else:
            self._undo()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disks = []

    def make(kib: int, files: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path / "disk", kib, files, monkeypatch))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def _contents(root: Path) -> dict[str, object]:
    """Every file's bytes; JSON without the fields that hold times or name the folder."""
    def content(path: Path):
        if path.suffix != ".json":
            return path.read_bytes()
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in ("seconds", "seconds_scan")} if isinstance(data, dict) else data

    return {p.relative_to(root).as_posix(): content(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("maxact.json", "items.json", "job.json")}


def _whole_units(folder: Path) -> list[str]:
    """The units whose record is there; each record's files must all be there too (a whole piece),
    and no file may belong to a unit without its record."""
    records = sorted(folder.glob("unit_?????.json"))
    for record in records:
        for name in json.loads(record.read_text())["stored"]:
            assert (folder / name).is_file(), name
    stems = {r.stem for r in records}
    strays = [p.name for p in folder.iterdir() if p.name[:10] not in stems]
    assert not strays, strays  # nothing of an unfinished unit
    return [r.stem for r in records]


JOBS = {
    "optimize": (["optimize", str(DIGITS_MODEL), "--layer", "conv2", "--unit", "0-15", "--batch", "1", "--steps", "20",
                  "--quiet", "--out", "{o}"], "conv2"),
    "atlas": (["atlas", str(DIGITS_MODEL), "--layer", "conv2", "--units", "0-15", "--batch", "1", "--steps", "20",
               "--quiet", "--out", "{o}"], "units/conv2"),
}


@pytest.mark.parametrize("command", list(JOBS))
def test_running_out_of_space_keeps_whole_pieces_and_a_rerun_completes(small_disk, tmp_path, capsys, command):
    template, units = JOBS[command]
    argv = lambda out: [a.replace("{o}", str(out)) for a in template]  # noqa: E731
    disk = small_disk(kib=128, files=14)  # room for a few of the 16 units (about 20 KiB and 4 files each)
    out = disk.root / "out"
    assert main(argv(out)) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("onnxprobe: error: cannot write"), err
    assert "No space left on device" in err[0] and "run the command again" in err[0]
    kept = _whole_units(out / units)
    assert 0 < len(kept) < 16, kept  # it stopped in the middle, keeping what it had finished
    assert not list(out.rglob(".onnxprobe-*"))  # no temporary, no lock
    assert not (out / "manifest.json").exists()  # the atlas's site comes last, with every unit

    disk.grow()
    assert main(argv(out)) == 0
    said = capsys.readouterr().out
    assert command == "atlas" or f"resuming: {len(kept)} unit(s)" in said
    assert len(_whole_units(out / units)) == 16
    assert main(argv(tmp_path / "clean")) == 0
    assert _contents(out) == _contents(tmp_path / "clean")
