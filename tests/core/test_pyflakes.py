"""A cheap gate against the bugs a merge leaves (a NameError landed on main before): pyflakes over
the package, the tests, the tools and the benchmarks fails on anything but an unused import (the
package re-exports names and imports for side effects, about 40 of them, none a bug). Seconds."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("onnxprobe", "tests", "tools", "bench")


def problems(paths) -> list[str]:
    """pyflakes' messages for `paths` (files or folders), all but unused imports, as 'file:line: message'."""
    from pyflakes import api, messages, reporter

    class Collect(reporter.Reporter):
        def __init__(self):
            self.found: list[str] = []

        def flake(self, message):
            if not isinstance(message, messages.UnusedImport):
                self.found.append(f"{message.filename}:{message.lineno}: {message.message % message.message_args}")

        def syntaxError(self, filename, msg, lineno, offset, text):
            self.found.append(f"{filename}:{lineno}: syntax error: {msg}")

        def unexpectedError(self, filename, msg):
            self.found.append(f"{filename}: {msg}")

    collect = Collect()
    api.checkRecursive([str(p) for p in paths], collect)
    return collect.found


def test_pyflakes_finds_nothing_but_unused_imports():
    found = problems([ROOT / f for f in FOLDERS if (ROOT / f).is_dir()])
    assert not found, "pyflakes:\n" + "\n".join(found)


def test_the_gate_sees_undefined_names_and_unused_variables(tmp_path):
    (tmp_path / "merged.py").write_text("import os\n\n\ndef f():\n    unused = 1\n    return missing\n")
    found = problems([tmp_path])
    assert len(found) == 2 and "undefined name 'missing'" in found[1] and "'unused'" in found[0], found
