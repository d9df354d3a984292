"""Safe file names, atomic writes and staged output: nothing outside the output folder, no partial
files, no input overwritten, no hang on a pipe or a device given as an input file.

Every file onnxprobe writes goes through `atomic_write_bytes`: a temporary file next to the target
(created with the process umask, like any other file), renamed into place. Inside `staged()`
(the CLI runs every command in one) the renames wait for the end of the command: a command that
fails, is interrupted or terminated leaves no file and no folder it created. Long resumable jobs
call `checkpoint()` when a piece of work is finished, so that a rerun resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

from onnxprobe.errors import InputError, OutputError

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
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{cleaned[:max_length - 9]}-{digest}"


def file_word(text: str, max_length: int = 60) -> str:
    """A readable file-name part: lowercase letters and digits, the words joined by '-' ('Egyptian
    cat' -> 'egyptian-cat', 'features.3/conv/Relu' -> 'features-3-conv-relu'); 'x' when nothing is
    left. Two texts can give the same word: callers number what could collide (a class index, a
    layer's place), where `safe_name` hashes instead."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].strip("-") or "x"


def inside(root: str | Path, *parts: str) -> Path:
    """root/parts, refusing (a one-line OutputError) anything that resolves outside root: a name
    with '..', or a symbolic link in the folder that leads elsewhere."""
    root = Path(root).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        named = root.joinpath(*parts)
        raise OutputError(f"refusing to use {named}: it leads outside the folder {root} (to {path}, through a "
                          "symbolic link or '..')")
    return path


# ---- inputs: regular files only (a FIFO or a device would block or never end) ---------------------

_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_input_file(path: str | Path, what: str = "input file") -> Path:
    """`path` if it is a regular file (symlinks followed); otherwise a one-line InputError. Checked
    with stat before anything opens it, so a named pipe or a device never blocks a read."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} must be a regular file, {path} is {file_kind(mode)}")
    return path


def is_regular_file(path: str | Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether the two paths name one file (or would: equal once resolved)."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


# ---- staging: what a command writes appears only when it succeeds ---------------------------------

class Stage:
    """Writes waiting for `commit` (renamed in the order they were made), folders made on the way
    (removed on `abort` when left empty), and files that must never be replaced (the inputs)."""

    def __init__(self, protected=()):
        self.pending: list[tuple[str, Path]] = []  # (temporary, final)
        self.created: list[Path] = []
        self.protected: list[tuple[Path, str]] = [(Path(p), what) for p, what in protected]
        self._lock = threading.Lock()

    def check_target(self, path: Path) -> None:
        for source, what in self.protected:
            if same_file(path, source):
                raise OutputError(f"refusing to overwrite the {what} {source} with an output")

    def add(self, tmp: str, path: Path) -> None:
        with self._lock:
            self.pending.append((tmp, _identity(path)))

    def holds(self, tmp: str) -> bool:
        return any(t == tmp for t, _ in self.pending)

    def pending_file(self, path: Path) -> str | None:
        """The temporary holding the newest uncommitted write to `path`, if any."""
        with self._lock:
            key = _identity(path)
            found = [tmp for tmp, final in self.pending if final == key]
        return found[-1] if found else None

    def commit(self) -> None:
        """Rename every pending file into place, in order; each leaves `pending` only once renamed,
        so an interrupt in the middle leaves the rest to `abort`."""
        with self._lock:
            while self.pending:
                tmp, path = self.pending[0]
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
                self.pending.pop(0)

    def abort(self) -> None:
        with self._lock:
            pending, self.pending = self.pending, []
        for tmp, _ in pending:
            _unlink(tmp)
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only when empty: a folder that held something before stays
            except OSError:
                pass


def _identity(path: str | Path) -> Path:
    """The one identity of an output path in a stage: absolute and normalised (not resolved, so a
    symlinked folder keeps its name), so 'out/a.png', './out/a.png' and '/cwd/out/a.png' are one file
    whether a command writes through a relative folder and reads back through an absolute one."""
    return Path(os.path.abspath(path))


_STAGES: list[Stage] = []


def current_stage() -> Stage | None:
    return _STAGES[-1] if _STAGES else None


@contextmanager
def staged(protected=()):
    """Writes inside are committed at the end, or removed when the block raises (also on
    KeyboardInterrupt). `protected`: (path, what) pairs that no write may replace."""
    stage = Stage(protected)
    _STAGES.append(stage)
    try:
        yield stage
    except BaseException:
        stage.abort()
        raise
    else:
        try:
            stage.commit()
        except BaseException:
            stage.abort()  # what could not be renamed is removed, with the folders left empty
            raise
    finally:
        _STAGES.remove(stage)


LOCK_NAME = ".onnxprobe-lock"


@contextmanager
def output_lock(folder: str | Path):
    """Hold the output folder `folder` (it exists) for this process for the block: a second run
    given the same folder meanwhile is refused with a one-line OutputError instead of writing into
    it too. An flock on `folder/.onnxprobe-lock`, which the kernel releases when the holder dies
    (a killed run leaves no stale lock: the next run takes it); the file holds the holder's pid
    and goes at the end. What the block wrote in the current stage is committed when it ends
    without an error (a run started next must find it in place: once it holds the lock it removes the
    temporaries it finds, which only a killed run can have left).
    Where the file system has no locks, the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield None
        return
    folder = Path(folder)
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _lock_owner(fd)
            os.close(fd)
            raise OutputError(f"the output folder {folder} is in use by another onnxprobe run{owner}; wait for it to "
                              "finish or choose another folder") from None
        except OSError:  # no locks on this file system (ENOLCK, EOPNOTSUPP)
            os.close(fd)
            yield None
            return
        try:  # the holder before us may have removed the file between our open and our lock
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:  # (a full disk) the pid is only for the message
            pass
        remove_temp_files(folder)  # what a killed holder was writing: nobody else writes here now
        yield path
        checkpoint()  # the block's writes are in place before another run may take the folder
    finally:
        _unlink(path)  # before the lock goes: whoever opened it meanwhile sees it gone and retries
        os.close(fd)


def _lock_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {int(text)})" if text.isdigit() else ""


def written_file(path: str | Path) -> Path:
    """Where the command's own newest write to `path` can be read back: its staged temporary while
    the stage is open, else `path` itself (a command that composes a summary from its own outputs)."""
    stage = current_stage()
    tmp = stage.pending_file(Path(path)) if stage is not None else None
    return Path(tmp) if tmp is not None else Path(path)


def checkpoint() -> None:
    """Commit what the current stage holds (a finished piece of a resumable job); no-op outside one."""
    stage = current_stage()
    if stage is not None:
        stage.commit()
        stage.created.clear()  # they hold committed files now


def make_dirs(path: str | Path) -> Path:
    """mkdir -p, remembering in the current stage which folders it created; OSError -> OutputError."""
    path = Path(path)
    missing = []
    probe = path
    while not os.path.lexists(probe):  # (os.path: never raises, e.g. on a name too long)
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for folder in missing:  # deepest first: the parents this call made before failing
            try:
                folder.rmdir()
            except OSError:
                pass
        why = "a file of that name exists" if isinstance(exc, FileExistsError) else _why(exc)
        raise OutputError(f"cannot create folder {path}: {why}") from None
    stage = current_stage()
    if stage is not None:
        stage.created.extend(reversed(missing))
    return path


# ---- atomic writes ----------------------------------------------------------------------------------

def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder (mode 0666 & ~umask, as
    open() gives), renamed into place now, or at the end of the current `staged()` block. A
    path that cannot be written is a one-line OutputError."""
    path = Path(path)
    stage = current_stage()
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a directory")
    if stage is not None:
        stage.check_target(path)
    make_dirs(path.parent)
    _check_name_length(path)
    tmp = None
    try:
        while True:  # the name is known before the file exists: an interrupt at any point leaves nothing
            tmp = str(path.parent / (TEMP_PREFIX + secrets.token_hex(6)))
            try:
                fd = _open_temp(tmp)
                break
            except FileExistsError:
                continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if stage is not None:
            stage.add(tmp, path)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and (stage is None or not stage.holds(tmp)):
            _unlink(tmp)
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None
    except BaseException:
        if tmp is not None and (stage is None or not stage.holds(tmp)):
            _unlink(tmp)
        raise
    return path


def _open_temp(tmp: str) -> int:
    """Create the temporary file `tmp` (it must not exist), open for writing. Mode 0666, so that the
    process umask applies as for any file open() creates (mkstemp would give 0600)."""
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def json_text(data, indent: int | None = 2) -> str:
    """Strict JSON (what a browser's JSON.parse accepts): NaN and infinities become null, numpy
    values plain numbers, paths strings. The one way onnxprobe writes JSON."""
    return json.dumps(_finite(data), indent=indent, sort_keys=False, default=_json_default, allow_nan=False)


def atomic_write_json(path: str | Path, data) -> Path:
    return atomic_write_text(path, json_text(data) + "\n")


NPZ_NAMES = ".onnxprobe-names.json"  # the member that maps renamed members back (safe_name never makes a dot-name)


def npz_member(name: str) -> str:
    """The .npz member name (less numpy's '.npy') that holds the array named `name`: the name itself
    when unzipping it is harmless, else its `safe_name` (a name with '..', a leading '/', a
    backslash, NUL or another control character would write outside the folder it is unzipped
    in, or be stored cut short)."""
    parts = name.split("/")
    harmless = (name and not name.startswith("/") and ".." not in parts and "\\" not in name
                and name != NPZ_NAMES and not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in name))
    return name if harmless else safe_name(name)


def atomic_save_npz(path: str | Path, arrays: dict) -> Path:
    """The arrays as a compressed .npz, one member per name (`npz_member`); when a name had to be
    changed, the member NPZ_NAMES (JSON: member -> name) says which, and `load_npz` reads the
    arrays back by their own names."""
    import io
    import zipfile

    import numpy as np

    members = {npz_member(str(name)): (str(name), value) for name, value in arrays.items()}
    if len(members) != len(arrays):
        raise OutputError(f"cannot write {path}: two array names map to one archive member")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{member: value for member, (_, value) in members.items()})
    renamed = {member: name for member, (name, _) in members.items() if member != name}
    if renamed:
        with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(NPZ_NAMES, json_text(renamed))
    return atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: str | Path) -> dict:
    """The arrays of an .npz that `atomic_save_npz` wrote, keyed by their own names (renamed
    members mapped back through NPZ_NAMES)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        renamed = json.loads(archive.zip.read(NPZ_NAMES)) if NPZ_NAMES in archive.files else {}
        return {renamed.get(member, member): archive[member] for member in archive.files if member != NPZ_NAMES}


def atomic_save_npy(path: str | Path, array) -> Path:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return atomic_write_bytes(path, buffer.getvalue())


def make_output_folder(path: str | Path) -> Path:
    """Create the output folder `path` (parents too); a file in its place or a folder that cannot be
    made is a one-line OutputError."""
    path = Path(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"the output folder {path} exists and is not a directory")
    return make_dirs(path)


def remove_temp_files(root: str | Path) -> int:
    """Delete temporaries a killed job left behind (they are never renamed into place), except the
    ones a stage of this process is still holding."""
    keep = {os.path.abspath(tmp) for stage in _STAGES for tmp, _ in stage.pending}
    count = 0
    for path in Path(root).rglob(TEMP_PREFIX + "*"):
        if os.path.abspath(path) not in keep:
            path.unlink(missing_ok=True)
            count += 1
    return count


def _check_name_length(path: Path) -> None:
    """A name the file system cannot hold fails now, not when the staged file is renamed."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    if limit and len(os.fsencode(path.name)) > limit:
        raise OutputError(f"cannot write {path}: File name too long (the limit is {limit} bytes)")


def _why(exc: OSError) -> str:
    """What went wrong in a write, in words; a full disk (or quota) says what to do about it."""
    import errno

    text = str(exc.strerror or exc)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        text += " (free some space and run the command again; a resumable job keeps what it finished)"
    return text


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    import numpy as np

    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return value


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
