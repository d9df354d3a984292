"""Progress bars: the text bar the commands draw on a terminal, and a notebook bar in Jupyter.

`Progress` is the plain-text bar (stderr, drawn only on a terminal unless told otherwise).
`progress_bar(total, label, unit)` picks what fits where the code runs: in a Jupyter kernel,
tqdm's notebook bar when tqdm and ipywidgets are installed, else the text bar forced on (the
notebook shows it as the cell's stderr); elsewhere the text bar. Each has `update(n)` and `close()`, what
the jobs' `progress(total, label)` factories return (`maxact.run_maxact`, `atlas.build_atlas`).
"""

from __future__ import annotations

import sys
import time

from onnxprobe.errors import printable


class Progress:
    """A plain-text progress bar on stderr: done/total, rate and ETA (no extra dependency)."""

    def __init__(self, total: int, unit: str = "it", enabled: bool | None = None, label: str = ""):
        self.total = total
        self.unit = unit
        self.label = printable(label)
        self.done = 0
        self.start = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            sys.stderr.write("\r" + self.text() + " " * 4)
            sys.stderr.flush()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def text(self) -> str:
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        eta_text = f"{eta:5.0f}s" if eta != float("inf") else "    ?"
        return f"{self.label}[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {rate:.2f} {self.unit}/s ETA {eta_text}"

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython's kernel app is loaded and running)."""
    kernel = sys.modules.get("ipykernel")
    if kernel is None:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(total: int, label: str = "", unit: str = "it"):
    """A bar for `total` items: a notebook bar in Jupyter, the text bar on a terminal (nothing
    drawn when stderr is not one)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401  (tqdm's notebook bar draws with it)
            from tqdm.notebook import tqdm
        except ImportError:  # no widgets: the text bar, which a notebook shows as stderr
            return Progress(total, unit=unit, enabled=True, label=label)
        return tqdm(total=total, desc=label.strip() or None, unit=unit, leave=False)
    return Progress(total, unit=unit, label=label)
