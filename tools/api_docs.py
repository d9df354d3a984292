"""Build onnxprobe's API reference (HTML) from the docstrings with pdoc: the public API
(`onnxprobe`, what `import onnxprobe` offers) and its implementation modules (`onnxprobe.api.*`).

    python tools/api_docs.py --out docs/api        # then open docs/api/index.html

pdoc is a test/docs dependency (`pip install -e '.[test]'`); the suite builds the reference
(tests/api/test_docs.py), so a docstring that pdoc cannot render fails there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# the public API and the modules that implement it; nothing else of the package
MODULES = ("onnxprobe", "onnxprobe.api", r"!onnxprobe\.(?!api).*")


def build(out: str | Path) -> Path:
    """Write the reference into `out` (index.html, onnxprobe.html, onnxprobe/api/*.html)."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="markdown", search=False, show_source=False, math=False, mermaid=False)
    out = Path(out)
    pdoc.pdoc(*MODULES, output_directory=out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/api", help="output folder (default docs/api)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"wrote the API reference to {build(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
