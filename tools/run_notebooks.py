"""Run the notebooks under docs/notebooks from top to bottom and keep their outputs (what GitHub
renders), or check that they run (the suite does: tests/api/test_notebooks.py).

    python tools/run_notebooks.py                      # every notebook, outputs written back
    python tools/run_notebooks.py docs/notebooks/tour.ipynb

Needs nbclient, nbformat and ipykernel (the test extra); each notebook runs in a fresh kernel
whose working folder is the notebook's own.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "docs" / "notebooks"


def execute(path: str | Path, timeout: int = 600):
    """(the executed notebook, seconds it took). A cell that raises stops it with CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = settled_streams(cell.outputs)
    return notebook, seconds


def settled_streams(outputs: list) -> list:
    """A progress bar's stream as Jupyter shows it once done: consecutive writes to one stream
    joined, and each line's carriage-return rewrites settled to its last state (what the live
    notebook showed), so the saved file does not hold every intermediate state of the bar."""
    merged: list = []
    for output in outputs:
        if (output.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1]["name"] == output["name"]):
            merged[-1]["text"] += output["text"]
        else:
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = "\n".join(line.rstrip().rsplit("\r", 1)[-1] if "\r" in line else line
                                       for line in output["text"].split("\n"))
    return merged


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every one in docs/notebooks)")
    args = parser.parse_args(argv)
    for path in [Path(p) for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook, seconds = execute(path)
        nbformat.write(notebook, path)
        print(f"{path}: {len(notebook.cells)} cells in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
