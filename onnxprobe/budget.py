"""The memory budget (one home): how many bytes batched work may hold at once, and how many rows of
a graph fit in it.

`MemoryBudget` is a frozen value in bytes with where it came from. Given: a size (`4G`, `512M`,
`1.5GiB`, a byte count; K, M, G, T are powers of 1024). Not given (`default_budget`): a stated
fraction (`BUDGET_FRACTION`) of the memory there is: on CUDA the device's free memory
(`cudaMemGetInfo` of the CUDA runtime library onnxruntime-gpu has loaded), else the host's
available memory (the kernel's MemAvailable, bounded by the cgroup's limit when the process runs in
one; else `os.sysconf`'s available pages), else `FALLBACK_BYTES`.

The batched jobs (optimize, integrated gradients, SmoothGrad, occlusion, maxact, the atlas) run
`budget.rows(row_bytes, what)` rows per run, where `row_bytes` is the model's own per-row cost
(`ProbeModel.row_bytes`: the sizes of the forward graph's batched tensors, plus the gradient
graph's, times `SAFETY_FACTOR`). A single row over the budget is a one-line ParameterError naming
`memory_budget`, never a MemoryError.

Imports nothing heavy: the command line parses `--memory-budget` with `parse_size` before any
library loads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from onnxprobe.errors import ParameterError

# The share of the memory there is that one job's batches may take: the rest is for the weights,
# the sessions' own arenas (ONNX Runtime's CUDA arena grows by doubling), the results kept, other
# processes (Dask runs several workers on one machine) and the estimate's error.
BUDGET_FRACTION = 0.5
# Where the memory there is cannot be read (no /proc/meminfo, no sysconf, no CUDA runtime).
FALLBACK_BYTES = 2 * 1024 ** 3
# The estimate of a row's bytes (the sum of the graph's batched tensors) times this: ONNX Runtime's
# working buffers (im2col, transposes, the backward rules' temporaries), its arena's growth (it
# extends by doubling), and the caller's own copies of inputs and results. Measured peak RSS growth
# per row (bench/bench_budget.py, CPU, one thread), as a share of the tensor sum: a gradient run
# 0.31 (ConvNeXt-T), 0.33 (ViT-B/16), 0.56 (MobileNetV2), 0.80 (ResNet-18), 1.7 (digits-cnn); a
# forward run returning every layer 0.46-1.5; the worst, integrated gradients on digits-cnn streamed
# 31 rows at a time for 2,000 steps through the command line, 3.0 (0.52 MiB a row against 0.175).
# With GRADIENT_FACTOR's 2 a gradient row is estimated at 6 times the sum: at least twice what was
# measured, up to 19 times on the large models (their batches are smaller than memory allows).
SAFETY_FACTOR = 3.0
# A gradient graph holds the forward's tensors (the backward reads them) and one gradient of each.
GRADIENT_FACTOR = 2.0
# An optimisation step's row also holds the optimizer's input-sized buffers (the parameterization,
# its spectrum, Adam's moments, the transformed copies, the gradient back through them).
STEP_INPUT_COPIES = 16

# bytes of one element of each ONNX element type (onnx.TensorProto.DataType), without importing onnx
ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2}

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
MAX_BUDGET = 2 ** 60  # 1 EiB: anything larger is a typo


def parse_size(text: str) -> int:
    """'4G', '512M', '1.5GiB', '64k', '1048576' -> bytes (K, M, G, T: powers of 1024). Anything
    else, zero, or more than an exbibyte: a ParameterError naming memory_budget."""
    match = _SIZE.match(str(text))
    if not match:
        raise ParameterError(f"{{memory_budget}} takes a size such as 4G, 512M or 1048576 (bytes), got '{text}'",
                             "memory_budget")
    if match.group(3) and match.group(3).lower() == "ib" and not match.group(2):
        raise ParameterError(f"{{memory_budget}}: 'iB' needs a unit (KiB, MiB, GiB), got '{text}'", "memory_budget")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise ParameterError(f"{{memory_budget}} must be at least 1 byte, got '{text}'", "memory_budget")
    if value > MAX_BUDGET:
        raise ParameterError(f"{{memory_budget}} '{text}' is more than {format_size(MAX_BUDGET)}", "memory_budget")
    return value


def format_size(n: int) -> str:
    """Bytes for a person: '1.5 GiB', '512 MiB', '300 B'."""
    for unit, size in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes that batched work may hold at once, and where the figure came from."""

    bytes: int
    source: str = "given"

    def __post_init__(self):
        if isinstance(self.bytes, bool) or not isinstance(self.bytes, int) or self.bytes < 1:
            raise ParameterError(f"{{memory_budget}} must be a whole number of bytes of at least 1, got {self.bytes!r}",
                                 "memory_budget")

    @classmethod
    def of(cls, value, device: str = "cpu") -> "MemoryBudget":
        """A budget from what a caller gives: None (the default for `device`), a MemoryBudget, a
        byte count, or a size string ('4G')."""
        if value is None:
            return default_budget(device)
        if isinstance(value, MemoryBudget):
            return value
        if isinstance(value, str):
            return cls(parse_size(value))
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{{memory_budget}} is a size such as '4G' or a number of bytes, got {value!r}",
                                 "memory_budget")
        return cls(int(value))

    def rows(self, row_bytes: int, what: str) -> int:
        """How many rows of `row_bytes` each fit in the budget (at least one, else a one-line
        ParameterError naming memory_budget: `what` says whose rows). A budget derived from the
        memory there is never refuses the one row: the per-row estimate runs 2 to 19 times over
        what a row measures (bench/bench_budget.py), so refusing would turn away ViT-B/16 gradients
        on a laptop with 5 GB free that run in well under 1 GB; only a budget the caller set is
        held to the estimate."""
        row_bytes = max(int(row_bytes), 1)
        rows = self.bytes // row_bytes
        if rows < 1 and not self.given:
            return 1
        if rows < 1:
            raise ParameterError(f"one row of {what} needs about {format_size(row_bytes)}, more than the "
                                 f"{{memory_budget}} of {format_size(self.bytes)} ({self.source})", "memory_budget")
        return rows

    @property
    def given(self) -> bool:
        """Set by the caller (not derived from the memory there is)."""
        return self.source == "given"

    def describe(self) -> str:
        return f"{format_size(self.bytes)} ({self.source})"


# ---- the memory there is ----------------------------------------------------------------------

def host_available() -> tuple[int, str] | None:
    """(bytes, how it was read) of the host memory available to this process, or None."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = (int(line.split()[1]) * 1024, "MemAvailable")
                break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available pages")
        except (AttributeError, ValueError, OSError):
            return None
    limit = _cgroup_room()
    if limit is not None and limit < available[0]:
        return limit, "the cgroup's memory limit"
    return available


def _cgroup_room() -> int | None:
    """What the cgroup (v2) still lets this process take: memory.max - memory.current, or None."""
    try:
        group = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        base = Path("/sys/fs/cgroup") / group.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((base / "memory.current").read_text().strip()), 0)
    except (OSError, ValueError, IndexError):
        return None


# the CUDA runtime's names: onnxruntime-gpu has loaded one of these when a CUDA session started
# (dlopen of the same soname returns the loaded library)
CUDART_NAMES = ("libcudart.so.13", "libcudart.so.12", "libcudart.so", "cudart64_13.dll", "cudart64_12.dll")


def cuda_free() -> int | None:
    """The current CUDA device's free memory in bytes (cudaMemGetInfo), or None where no CUDA
    runtime library loads or the call fails. Not tested here (no GPU on the test machines)."""
    import ctypes

    for name in CUDART_NAMES:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        try:
            status = library.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
        except AttributeError:
            continue
        return int(free.value) if status == 0 and free.value > 0 else None
    return None


def default_budget(device: str = "cpu") -> MemoryBudget:
    """`BUDGET_FRACTION` of the memory there is: the CUDA device's free memory on "cuda" (the host
    rule where it cannot be read), the host's available memory otherwise, `FALLBACK_BYTES` where
    neither can be read."""
    if device == "cuda":
        free = cuda_free()
        if free is not None:
            return MemoryBudget(max(int(free * BUDGET_FRACTION), 1), f"{BUDGET_FRACTION:g} of the GPU's free memory")
    host = host_available()
    if host is None:
        return MemoryBudget(FALLBACK_BYTES, "the fallback: the memory there is could not be read")
    return MemoryBudget(max(int(host[0] * BUDGET_FRACTION), 1), f"{BUDGET_FRACTION:g} of {host[1]}")
